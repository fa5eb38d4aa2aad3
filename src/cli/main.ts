// The `dcn` command line (commander). Each command returns its exit code; errors with a `code` (config, keystore,
// storage) print their message, which names the problem and the fix, without a stack trace.
import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError } from "commander";

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
    .description("run a local subnet: N validator processes and read-only replicas on 127.0.0.1 (Ctrl-C stops all)")
    .option("--validators <n>", "number of validators", int(1, 64), 4)
    .option("--replicas <n>", "number of read-only replicas", int(0, 16), 1)
    .option("--data-dir <dir>", "where keys, genesis, configs and chain data live (reused across runs)", ".devnet")
    .option("--fresh", "wipe the data dir first")
    .option("--base-port <port>", "p2p port of the first node (then +1 per node)", int(1024, 65000), 26656)
    .option("--metrics-base-port <port>", "metrics/status port of the first node", int(1024, 65000), 9100)
    .option("--rpc-base-port <port>", "JSON-RPC port of the first node", int(1024, 65000), 8545)
    .option("--chain-id <id>", "L2 chain id", chainId)
    .option("--log-level <level>", "log level of the nodes (fatal, error, warn, info, debug, trace)", "info")
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
          },
          out,
        );
      },
    );

  program
    .command("status")
    .description("show height, round and peers of each node of a devnet (or of the given status URLs)")
    .option("--devnet <file>", "devnet.json to read", undefined)
    .option("--url <url...>", "node status endpoints (http://HOST:METRICS_PORT)")
    .action(async (o: { devnet?: string; url?: string[] }) => {
      const { statusCommand } = await import("./status.ts");
      code = await statusCommand({ urls: o.url ?? [], devnet: o.devnet }, out);
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
