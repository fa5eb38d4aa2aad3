// The `dcn` command line (commander). Each command returns its exit code; errors with a `code` (config, keystore,
// storage) print their message, which names the problem and the fix, without a stack trace.
import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { CONFIG_LIMITS } from "../config/config.ts";
import { registerBenchCommand } from "./bench.ts";
import { registerBridgeCommands } from "./bridge.ts";
import { registerOperatorCommands } from "./operator.ts";
import { registerStakeCommands } from "./stake-commands.ts";

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "unknown";
}

function int(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return n;
  };
}

function chainId(value: string): bigint {
  if (!/^[1-9][0-9]{0,15}$/.test(value) || BigInt(value) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError("expected a decimal chain id from 1 to 2^53 - 1");
  }
  return BigInt(value);
}

function hexArgument(bytes: number, what: string) {
  return (value: string): string => {
    if (!new RegExp(`^0x[0-9a-fA-F]{${2 * bytes}}$`).test(value)) {
      throw new InvalidArgumentError(`expected ${what}: 0x followed by ${2 * bytes} hex digits`);
    }
    return value.toLowerCase();
  };
}

export async function main(argv: readonly string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  let code = 0;
  const program = new Command("dcn")
    .description("Lumia Decentralised Sequencer Network node")
    .version(version(), "-V, --version")
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });

  program
    .command("init")
    .description("create the three operator keys (BLS consensus, Ed25519 peer, secp256k1 operator) in keystores")
    .requiredOption("--dir <dir>", "node directory (keys go to <dir>/keys, the public identity to <dir>/identity.json)")
    .option("--password-file <file>", "file holding the keystore password (else env DCN_KEY_PASSWORD)")
    .option("--insecure", "store keys unencrypted (devnets only)")
    .action(async (o: { dir: string; passwordFile?: string; insecure?: boolean }) => {
      const { initCommand } = await import("./init.ts");
      code = await initCommand(o, out);
    });

  program
    .command("genesis")
    .description("build a genesis file from the validators' identity.json files (proofs of possession verified)")
    .requiredOption("--chain-id <id>", "L2 chain id", chainId)
    .requiredOption(
      "--validator <identity...>",
      "identity.json of each validator as PATH or PATH:POWER (voting power, default 100)",
    )
    .option("--out <file>", "where to write the genesis", "genesis.json")
    .option("--genesis-time <ms>", "genesis time, ms since the epoch (default: now)", int(0, Number.MAX_SAFE_INTEGER))
    .action(async (o: { chainId: bigint; validator: string[]; out: string; genesisTime?: number }) => {
      const { genesisCommand } = await import("./genesis.ts");
      code = await genesisCommand(
        { chainId: o.chainId, validators: o.validator, out: o.out, genesisTimeMs: o.genesisTime ?? Date.now() },
        out,
      );
    });

  program
    .command("start")
    .description("run a node")
    .requiredOption("--config <file>", "node config (JSON); see docs/operations.md")
    .option("--parent-pid <pid>", "exit when this process disappears", int(1, 2 ** 31))
    .action(async (o: { config: string; parentPid?: number }) => {
      const { startCommand } = await import("./start.ts");
      code = await startCommand(
        o.parentPid === undefined ? { config: o.config } : { config: o.config, parentPid: o.parentPid },
      );
    });

  program
    .command("devnet")
    .description(
      "run a local subnet: an L1 (anvil), N validator processes and read-only replicas on 127.0.0.1 (Ctrl-C stops all)",
    )
    .option("--validators <n>", "number of validators", int(1, 64), 4)
    .option("--replicas <n>", "number of read-only replicas", int(0, 16), 1)
    .option("--data-dir <dir>", "where keys, genesis, configs and chain data live (reused across runs)", ".devnet")
    .option("--fresh", "wipe the data dir first")
    .option("--base-port <port>", "p2p port of the first node (then +1 per node)", int(1024, 65000), 26656)
    .option("--metrics-base-port <port>", "metrics/status port of the first node", int(1024, 65000), 9100)
    .option("--rpc-base-port <port>", "JSON-RPC port of the first node", int(1024, 65000), 8545)
    .option("--chain-id <id>", "L2 chain id", chainId)
    .option("--log-level <level>", "log level of the nodes (fatal, error, warn, info, debug, trace)", "info")
    .option("--l1 <url>", "use this L1 JSON-RPC endpoint (http(s) or ws(s)) instead of starting anvil")
    .option("--l1-port <port>", "port of the embedded L1 (anvil) on 127.0.0.1", int(1024, 65535), 8645)
    .option(
      "--l1-block-time <s>",
      "seconds between blocks of the embedded L1 (0: a block per transaction)",
      int(0, 3600),
      1,
    )
    .option("--blob-batches", "validator-0 posts batches as EIP-4844 blobs (it loads the KZG setup: seconds of CPU)")
    .option(
      "--state-history <n>",
      "heights of state each node keeps (config storage.stateHistory; 0: all; default: the node's)",
      int(0, 1_000_000_000),
    )
    .option(
      "--block-history <n>",
      "heights of blocks, receipts and transaction index each node keeps (config storage.blockHistory; 0: all, the default; else >= 256)",
      (value: string) => {
        const n = int(0, CONFIG_LIMITS.maxBlockHistory)(value);
        if (n > 0 && n < CONFIG_LIMITS.minBlockHistory) {
          throw new InvalidArgumentError(`expected 0 (keep all) or at least ${CONFIG_LIMITS.minBlockHistory}`);
        }
        return n;
      },
    )
    .action(
      async (o: {
        validators: number;
        replicas: number;
        dataDir: string;
        fresh?: boolean;
        basePort: number;
        metricsBasePort: number;
        rpcBasePort: number;
        chainId?: bigint;
        logLevel: string;
        l1?: string;
        l1Port: number;
        l1BlockTime: number;
        blobBatches?: boolean;
        stateHistory?: number;
        blockHistory?: number;
      }) => {
        const { runDevnet, DEFAULT_CHAIN_ID } = await import("./devnet.ts");
        code = await runDevnet(
          {
            dir: o.dataDir,
            validators: o.validators,
            replicas: o.replicas,
            basePort: o.basePort,
            metricsBasePort: o.metricsBasePort,
            rpcBasePort: o.rpcBasePort,
            fresh: o.fresh === true,
            chainId: o.chainId ?? DEFAULT_CHAIN_ID,
            logLevel: o.logLevel,
            ...(o.l1 === undefined ? {} : { l1Url: o.l1 }),
            l1Port: o.l1Port,
            l1BlockTimeS: o.l1BlockTime,
            blobBatches: o.blobBatches === true,
            ...(o.stateHistory === undefined && o.blockHistory === undefined
              ? {}
              : {
                  storage: {
                    ...(o.stateHistory === undefined ? {} : { stateHistory: o.stateHistory }),
                    ...(o.blockHistory === undefined ? {} : { blockHistory: o.blockHistory }),
                  },
                }),
          },
          out,
        );
      },
    );

  program
    .command("status")
    .description(
      "a table of the validators (voting power, height, round, last proposer, peers, lag) of a devnet, " +
        "of a node's JSON-RPC, or of status URLs",
    )
    .option("--devnet <path>", "devnet data dir or its devnet.json (default .devnet)")
    .option("--rpc <url>", "a node's JSON-RPC endpoint (uses lumia_status and lumia_getValidatorSet)")
    .option("--url <url...>", "node status endpoints (http://HOST:METRICS_PORT)")
    .option("--json", "print JSON instead of a table")
    .action(async (o: { devnet?: string; rpc?: string; url?: string[]; json?: boolean }) => {
      const { statusCommand } = await import("./status.ts");
      code = await statusCommand({ urls: o.url ?? [], devnet: o.devnet, rpc: o.rpc, json: o.json === true }, out);
    });

  program
    .command("verify")
    .description(
      "ask a node for a balance or a transaction and verify the answer (certificate of > 2/3 of the trusted " +
        "validators, Merkle proofs) instead of trusting it; prints REFUSED: <code>: <why> and exits 1 on a lie",
    )
    .requiredOption("--rpc <url>", "the node's JSON-RPC endpoint")
    .option("--tx <hash>", "a committed transaction: proves it and its receipt", hexArgument(32, "a transaction hash"))
    .option("--balance <address>", "an account: proves its balance", hexArgument(20, "an address"))
    .option("--block <n>", "with --balance: the block height (default: the latest)", int(1, Number.MAX_SAFE_INTEGER))
    .option("--genesis <file>", "the genesis file to trust (default: .devnet/genesis.json when present)")
    .option("--json", "print JSON instead of text")
    .action(
      async (o: { rpc: string; tx?: string; balance?: string; block?: number; genesis?: string; json?: boolean }) => {
        const { verifyCommand } = await import("./verify.ts");
        code = await verifyCommand({ ...o, json: o.json === true }, out);
      },
    );

  registerBenchCommand(program, out, (c) => {
    code = c;
  });
  registerStakeCommands(program, out, (c) => {
    code = c;
  });
  registerOperatorCommands(program, out, (c) => {
    code = c;
  });
  registerBridgeCommands(program, out, (c) => {
    code = c;
  });

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof Error && "code" in error && typeof error.code === "string") {
      process.stderr.write(`dcn: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  if (argv.length === 0) program.outputHelp();
  return code;
}
