// `dcn bridge`: move LUMIA and ETH between L1 and the L2 through the Portal (docs/hard-finality.md).
//   dcn bridge deposit  --asset lumia|eth --amount N [--to L2ADDR]     L1 -> L2 (on L2 within a few L1 blocks)
//   dcn bridge withdraw --asset lumia|eth --amount N [--to L1ADDR]     starts a withdrawal on the L2
//   dcn bridge prove    --tx L2TXHASH                                  once an output covers it
//   dcn bridge finalize --tx L2TXHASH                                  after the Portal's delay
//   dcn bridge status   --tx L2TXHASH
// The key (the same account on both chains) comes from --key-file or $DCN_L1_KEY; the L1, the Portal and an L2 node
// from --devnet or --l1/--portal/--rpc.
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { type Address, formatUnits, type Hex, isAddress, isHex, parseUnits } from "viem";

interface BridgeFlags {
  readonly devnet?: string;
  readonly l1?: string;
  readonly portal?: string;
  readonly rpc?: string;
  readonly keyFile?: string;
  readonly json?: boolean;
}

/** The L1 URL, the Portal and an L2 node's JSON-RPC, from the flags or a devnet.json. */
async function resolveBridgeTarget(o: BridgeFlags): Promise<{ l1: string; portal: Address; l2: string }> {
  let l1 = o.l1;
  let portal = o.portal;
  let l2 = o.rpc;
  if (o.devnet !== undefined) {
    const path =
      existsSync(o.devnet) && (await stat(o.devnet)).isDirectory() ? join(o.devnet, "devnet.json") : o.devnet;
    const { BridgeError } = await import("../l1/bridge.ts");
    let json: { l1?: { rpc?: string; contracts?: Record<string, string> } | null; nodes?: { rpc?: string }[] };
    try {
      json = JSON.parse(await readFile(path, "utf8")) as typeof json;
    } catch (cause) {
      throw new BridgeError("not_found", `cannot read ${path}: start the devnet first (dcn devnet)`, { cause });
    }
    l1 ??= json.l1?.rpc;
    portal ??= json.l1?.contracts?.portal;
    l2 ??= json.nodes?.[0]?.rpc;
  }
  const { BridgeError } = await import("../l1/bridge.ts");
  if (l1 === undefined) throw new BridgeError("not_found", "no L1: pass --l1 URL or --devnet DIR");
  if (portal === undefined || !isAddress(portal)) {
    throw new BridgeError(
      "not_found",
      "no Portal: pass --portal ADDRESS or --devnet DIR of a devnet with hard finality",
    );
  }
  if (l2 === undefined) throw new BridgeError("not_found", "no L2 node: pass --rpc URL (an L2 node's JSON-RPC)");
  return { l1, portal, l2 };
}

function asset(value: string): "lumia" | "eth" {
  if (value !== "lumia" && value !== "eth") throw new InvalidArgumentError("expected lumia or eth");
  return value;
}

function amount(value: string): bigint {
  if (!/^\d+(\.\d{1,18})?$/.test(value)) throw new InvalidArgumentError("expected an amount such as 10 or 0.5");
  const wei = parseUnits(value, 18);
  if (wei === 0n) throw new InvalidArgumentError("expected more than 0");
  return wei;
}

function address(value: string): Address {
  if (!isAddress(value)) throw new InvalidArgumentError("expected an address (0x + 40 hex digits)");
  return value;
}

function txHash(value: string): Hex {
  if (!isHex(value) || value.length !== 66) throw new InvalidArgumentError("expected a transaction hash (0x + 64 hex)");
  return value;
}

function targetOptions(command: Command): Command {
  return command
    .option("--devnet <path>", "a devnet data dir or its devnet.json: L1, Portal and L2 node from there")
    .option("--l1 <url>", "L1 JSON-RPC endpoint")
    .option("--portal <address>", "the L1 Portal (genesis l1.finality.portal)")
    .option("--rpc <url>", "an L2 node's JSON-RPC endpoint")
    .option("--key-file <file>", "file holding the private key (0x + 64 hex); default: $DCN_L1_KEY")
    .option("--json", "print JSON");
}

export function registerBridgeCommands(program: Command, out: (line: string) => void, setCode: (c: number) => void) {
  const bridge = program
    .command("bridge")
    .description(
      "deposit to and withdraw from the L2 through the L1 Portal (deposit, withdraw, prove, finalize, status)",
    );

  const print = (json: boolean | undefined, value: Record<string, unknown>, text: string) =>
    out(json === true ? JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)) : text);

  targetOptions(
    bridge
      .command("deposit")
      .description("lock LUMIA or ETH in the L1 Portal; the L2 credits it in the first block anchored after it")
      .requiredOption("--asset <asset>", "lumia or eth", asset)
      .requiredOption("--amount <n>", "amount, e.g. 10 or 0.5", amount)
      .option("--to <address>", "L2 recipient (default: your address)", address),
  ).action(async (o: BridgeFlags & { asset: "lumia" | "eth"; amount: bigint; to?: Address }) => {
    const b = await import("../l1/bridge.ts");
    const { loadL1Key } = await import("./stake.ts");
    const target = await resolveBridgeTarget(o);
    const account = await loadL1Key(o.keyFile);
    const l1 = await b.endpoint(target.l1);
    const to = o.to ?? account.address;
    const r = await b.deposit(l1, account, target.portal, { asset: o.asset, amount: o.amount, to });
    print(
      o.json,
      { ...r, asset: o.asset, amount: o.amount, to },
      `deposited ${formatUnits(o.amount, 18)} ${o.asset.toUpperCase()} to ${to}: deposit nonce ${r.nonce}, L1 tx ${r.txHash} in block ${r.l1Block}`,
    );
    setCode(0);
  });

  targetOptions(
    bridge
      .command("withdraw")
      .description("start a withdrawal on the L2 (LUMIA: native coin; ETH: BridgedEth tokens); then prove and finalize")
      .requiredOption("--asset <asset>", "lumia or eth", asset)
      .requiredOption("--amount <n>", "amount, e.g. 10 or 0.5", amount)
      .option("--to <address>", "L1 recipient (default: your address)", address),
  ).action(async (o: BridgeFlags & { asset: "lumia" | "eth"; amount: bigint; to?: Address }) => {
    const b = await import("../l1/bridge.ts");
    const { loadL1Key } = await import("./stake.ts");
    const target = await resolveBridgeTarget(o);
    const account = await loadL1Key(o.keyFile);
    const l2 = await b.endpoint(target.l2);
    const w = await b.startWithdrawal(l2, account, {
      asset: o.asset,
      amount: o.amount,
      l1Recipient: o.to ?? account.address,
    });
    print(
      o.json,
      { ...w },
      `withdrawal ${w.hash} started in L2 tx ${w.l2TxHash} at height ${w.height}; next: dcn bridge prove --tx ${w.l2TxHash} once an output covers height ${w.height}`,
    );
    setCode(0);
  });

  for (const [name, description] of [
    ["prove", "prove a withdrawal on L1 against the first output covering it"],
    ["finalize", "pay a proven withdrawal on L1 once the Portal's delay has passed"],
    ["status", "where a withdrawal stands: covering output, proven, finalizable from, finalized"],
  ] as const) {
    targetOptions(
      bridge
        .command(name)
        .description(description)
        .requiredOption("--tx <hash>", "the L2 transaction that started it", txHash),
    ).action(async (o: BridgeFlags & { tx: Hex }) => {
      const b = await import("../l1/bridge.ts");
      const target = await resolveBridgeTarget(o);
      const [l1, l2] = await Promise.all([b.endpoint(target.l1), b.endpoint(target.l2)]);
      const started = await b.findWithdrawal(l2, o.tx);
      if (name === "status") {
        const s = await b.withdrawalStatus(l1, target.portal, started);
        print(
          o.json,
          { ...started, ...s },
          [
            `withdrawal ${s.hash} (${formatUnits(started.withdrawal.amount, 18)} ${started.withdrawal.asset === 0 ? "ETH" : "LUMIA"} to ${started.withdrawal.l1Recipient}, L2 height ${started.height})`,
            `  output:      ${s.output === null ? "none covers it yet" : `#${s.output.index} at height ${s.output.height}`}`,
            `  proven:      ${s.provenAt === null ? "no" : new Date(Number(s.provenAt) * 1000).toISOString()}`,
            `  finalizable: ${s.finalizableAt === null ? "-" : new Date(Number(s.finalizableAt) * 1000).toISOString()}`,
            `  finalized:   ${s.finalized ? "yes" : "no"}`,
          ].join("\n"),
        );
        setCode(0);
        return;
      }
      const { loadL1Key } = await import("./stake.ts");
      const account = await loadL1Key(o.keyFile);
      if (name === "prove") {
        const r = await b.proveWithdrawal(l1, l2, account, target.portal, started);
        print(
          o.json,
          { ...r },
          `proven against output #${r.outputIndex} (height ${r.outputHeight}): L1 tx ${r.txHash}`,
        );
      } else {
        const r = await b.finalizeWithdrawal(l1, account, target.portal, started);
        print(o.json, { ...r }, `finalized: L1 tx ${r.txHash} paid ${started.withdrawal.l1Recipient}`);
      }
      setCode(0);
    });
  }
}
