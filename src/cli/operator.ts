// The operator's commands on the L1 SequencerRegistry: `dcn approve` (governance approves an operator address),
// `dcn register` (a node joins the registry: its identity.json's BLS key, proof of possession and peer id, signed by
// the node's operator key) and `dcn exit` (the sequencer leaves the set at the next epoch boundary). The operator key
// is the node's keys/operator.json keystore (password from DCN_KEY_PASSWORD or --password-file, as `dcn start` reads
// keys), or --key-file as for the staker commands. viem and the keystore code load only when one of these runs.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import type { PrivateKeyAccount } from "viem";
import type { Hex } from "../../consensus/bytes.ts";

export const KEY_PASSWORD_ENV = "DCN_KEY_PASSWORD";
/** identity.json is a few hundred bytes; anything much larger is not one. */
const IDENTITY_MAX_BYTES = 16 * 1024;
const PASSWORD_MAX_BYTES = 4 * 1024;
const DEFAULT_COMMISSION_BPS = 500;

interface TargetFlags {
  readonly l1?: string | undefined;
  readonly registry?: string | undefined;
  readonly devnet?: string | undefined;
}

export interface OperatorKeyOptions {
  /** The node directory (`dcn init --dir`): identity.json and keys/operator.json. */
  readonly dir?: string | undefined;
  /** A file with the 0x-prefixed private key instead of the keystore. */
  readonly keyFile?: string | undefined;
  /** A file with the keystore password (else DCN_KEY_PASSWORD). */
  readonly passwordFile?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The operator's L1 account: from --key-file, else from <dir>/keys/operator.json. */
export async function loadOperatorKey(o: OperatorKeyOptions): Promise<{ account: PrivateKeyAccount; key: Hex }> {
  const { StakeCliError, loadL1Key } = await import("./stake.ts");
  if (o.keyFile !== undefined) {
    const account = await loadL1Key(o.keyFile, {});
    const key = (await readFile(o.keyFile, "utf8")).trim() as Hex;
    return { account, key };
  }
  if (o.dir === undefined) throw new StakeCliError("usage", "pass --dir NODE_DIR (its keys/operator.json signs)");
  const { loadKeystore } = await import("../keys/keystore.ts");
  const { toHex } = await import("../../consensus/bytes.ts");
  const { privateKeyToAccount } = await import("viem/accounts");
  let password: string | undefined;
  if (o.passwordFile !== undefined) {
    const text = await readSmallFile(o.passwordFile, PASSWORD_MAX_BYTES, "password file");
    password = text.replace(/\r?\n$/, "");
  } else {
    const fromEnv = (o.env ?? process.env)[KEY_PASSWORD_ENV];
    password = fromEnv === "" ? undefined : fromEnv;
  }
  const loaded = await loadKeystore(join(o.dir, "keys", "operator.json"), "operator", password);
  const key = toHex(loaded.secret);
  return { account: privateKeyToAccount(key), key };
}

async function readSmallFile(path: string, maxBytes: number, what: string): Promise<string> {
  const { StakeCliError } = await import("./stake.ts");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new StakeCliError("usage", `cannot read the ${what} ${path}: ${String(cause)}`, { cause });
  }
  if (text.length > maxBytes) throw new StakeCliError("usage", `${path} is ${text.length} bytes: not a ${what}`);
  return text;
}

export interface RegisterOptions extends TargetFlags, OperatorKeyOptions {
  readonly dir: string;
  readonly commissionBps?: number | undefined;
  /** Self-stake this many LUMIA right after registering (same key). */
  readonly stake?: string | undefined;
}

/** `dcn register --dir NODE_DIR`: registers the node's identity on the registry. Exit code. */
export async function registerCommand(o: RegisterOptions, print: (line: string) => void): Promise<number> {
  const { resolveTarget, stakerTxCommand, L1_KEY_ENV, StakeCliError } = await import("./stake.ts");
  // Checked before registering: a bad amount must not leave a registered sequencer without its stake.
  if (o.stake !== undefined && (!/^\d+(\.\d{1,18})?$/.test(o.stake) || /^[0.]+$/.test(o.stake))) {
    throw new StakeCliError("usage", `--stake ${o.stake} is not an amount of LUMIA (e.g. 100 or 0.5)`);
  }
  const { checkIdentity, registerSequencer } = await import("../l1/operator.ts");
  const { formatUnits } = await import("viem");
  const target = await resolveTarget(o);
  const identityPath = join(o.dir, "identity.json");
  const text = await readSmallFile(identityPath, IDENTITY_MAX_BYTES, "identity file");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  const identity = checkIdentity(json, identityPath);
  const { account, key } = await loadOperatorKey(o);
  if (account.address.toLowerCase() !== identity.operator.toLowerCase()) {
    print(`note: ${identityPath} names operator ${identity.operator}; registering with ${account.address} instead`);
  }
  const r = await registerSequencer(
    { rpcUrl: target.rpcUrl, registry: target.registry },
    { identity, account, commissionBps: o.commissionBps ?? DEFAULT_COMMISSION_BPS },
  );
  print(
    `registered sequencer ${r.sequencerId}: operator ${r.operator}, consensus address ${identity.address}, ` +
      `peer ${identity.peerId}: tx ${r.txHash} in L1 block ${r.blockNumber}`,
  );
  if (o.stake !== undefined) {
    await stakerTxCommand(
      "stake",
      { l1: target.rpcUrl, registry: target.registry, amount: o.stake, env: { [L1_KEY_ENV]: key } },
      print,
    );
  }
  print(
    `the sequencer joins the set of the first epoch that starts while it has at least ` +
      `${formatUnits(r.minSelfStake, 18)} LUMIA of self-stake (dcn stake --amount N); the next epoch can start at ` +
      `L1 block ${r.nextEpochBlock} (now epoch ${r.epoch}). Start the node now: the other nodes admit its peer id ` +
      "once the registration is confirmed on L1",
  );
  return 0;
}

export interface ExitOptions extends TargetFlags, OperatorKeyOptions {}

/** `dcn exit --dir NODE_DIR`: requestExit for the operator's sequencer. Exit code. */
export async function exitCommand(o: ExitOptions, print: (line: string) => void): Promise<number> {
  const { resolveTarget } = await import("./stake.ts");
  const { exitSequencer } = await import("../l1/operator.ts");
  const target = await resolveTarget(o);
  const { account } = await loadOperatorKey(o);
  const r = await exitSequencer({ rpcUrl: target.rpcUrl, registry: target.registry }, account);
  print(`exit requested for sequencer ${r.sequencerId}: tx ${r.txHash} in L1 block ${r.blockNumber}`);
  print(
    `it leaves the validator set with epoch ${r.effectiveEpoch} (from L1 block ${r.nextEpochBlock} on); keep the ` +
      `node running until then. Its stake stays in the pool: dcn unbond --sequencer ${r.sequencerId} --amount max, ` +
      `then dcn withdraw --sequencer ${r.sequencerId} after the unbonding epochs`,
  );
  return 0;
}

export interface ApproveOptions extends TargetFlags {
  readonly operator: string;
  readonly keyFile?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** `dcn approve --operator ADDR`: governance approves an operator address. Exit code. */
export async function approveCommand(o: ApproveOptions, print: (line: string) => void): Promise<number> {
  const { resolveTarget, loadL1Key } = await import("./stake.ts");
  const { approveOperator } = await import("../l1/operator.ts");
  const target = await resolveTarget(o);
  const governor = await loadL1Key(o.keyFile, o.env);
  const r = await approveOperator({ rpcUrl: target.rpcUrl, registry: target.registry }, governor, o.operator);
  if (r.tx === null) print(`${r.operator} is approved already`);
  else print(`approved operator ${r.operator}: tx ${r.tx.txHash} in L1 block ${r.tx.blockNumber}`);
  return 0;
}

function commission(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 10_000) {
    throw new InvalidArgumentError("expected basis points from 0 to 10000 (500 = 5%)");
  }
  return n;
}

function address(value: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value)) throw new InvalidArgumentError("expected an address: 0x + 40 hex digits");
  return value;
}

const TARGET_HELP = {
  l1: "L1 JSON-RPC endpoint (default: the devnet's, with --devnet)",
  registry: "SequencerRegistry address (default: the devnet's, with --devnet)",
  devnet: "a devnet data dir or its devnet.json: the L1 URL and the registry from there",
} as const;

function withTarget(command: Command): Command {
  return command
    .option("--l1 <url>", TARGET_HELP.l1)
    .option("--registry <address>", TARGET_HELP.registry)
    .option("--devnet <path>", TARGET_HELP.devnet);
}

function withOperatorKey(command: Command): Command {
  return command
    .requiredOption("--dir <dir>", "the node directory (dcn init --dir): identity.json and keys/operator.json")
    .option("--password-file <file>", "file holding the keystore password (else env DCN_KEY_PASSWORD)")
    .option("--key-file <file>", "sign with the private key in this file (0x + 64 hex) instead of keys/operator.json");
}

export function registerOperatorCommands(
  program: Command,
  out: (line: string) => void,
  setCode: (c: number) => void,
): void {
  withTarget(
    withOperatorKey(
      program
        .command("register")
        .description(
          "register this node on the L1 SequencerRegistry (BLS key, proof of possession, peer id), signed by its " +
            "operator key; governance must have approved the operator (dcn approve)",
        ),
    )
      .option(
        "--commission <bps>",
        "commission on the pool's rewards in basis points",
        commission,
        DEFAULT_COMMISSION_BPS,
      )
      .option("--stake <lumia>", "then self-stake this many LUMIA with the same key (as dcn stake)"),
  ).action(async (o: RegisterOptions & { commission: number }) => {
    setCode(await registerCommand({ ...o, commissionBps: o.commission }, out));
  });

  withTarget(
    withOperatorKey(
      program
        .command("exit")
        .description("request the exit of this node's sequencer: it leaves the validator set at the next epoch"),
    ),
  ).action(async (o: ExitOptions) => {
    setCode(await exitCommand(o, out));
  });

  withTarget(
    program
      .command("approve")
      .description("governance: approve an operator address so that it may register a sequencer")
      .requiredOption("--operator <address>", "the operator's L1 address (identity.json `operator`)", address)
      .option("--key-file <file>", "file holding the governance key (0x + 64 hex); default: $DCN_L1_KEY"),
  ).action(async (o: ApproveOptions) => {
    setCode(await approveCommand(o, out));
  });
}
