// The staker's commands against the L1 staking contracts: `dcn rewards` (read-only) and `dcn stake`, `dcn delegate`,
// `dcn unbond`, `dcn withdraw`, `dcn claim` (L1 transactions signed with the user's key). The key comes from a file
// (--key-file) or the DCN_L1_KEY environment variable, never from the command line (shell history, `ps`). The L1 and
// the registry come from --l1/--registry or from a devnet's devnet.json (--devnet). Each transaction is simulated
// first, so a refusal is reported with the contract's own error (decoded with the ABIs) and nothing is sent.
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  formatUnits,
  http,
  isAddress,
  maxUint256,
  type PrivateKeyAccount,
  type PublicClient,
  parseUnits,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { LumiaToken, Rewards, SequencerRegistry, Staking } from "../../staking-contracts/artifacts.ts";
import { l1Chain, stakingRevert } from "../l1/deploy.ts";
import {
  readStakerReport,
  resolveStakingContracts,
  type StakerReport,
  type StakingContracts,
  stakerReportFromJson,
  stakerReportJson,
} from "../l1/staker.ts";

export const L1_KEY_ENV = "DCN_L1_KEY";
const REQUEST_TIMEOUT_MS = 30_000;

export type StakeCliErrorCode = "usage" | "key" | "l1" | "refused";

/** A staker command cannot run (bad arguments, no key, L1 unreachable) or the contract refused it. */
export class StakeCliError extends Error {
  override readonly name = "StakeCliError";
  constructor(
    readonly code: StakeCliErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface L1TargetOptions {
  /** L1 JSON-RPC URL. */
  readonly l1?: string | undefined;
  /** SequencerRegistry address. */
  readonly registry?: string | undefined;
  /** A devnet data dir or its devnet.json: the L1 URL and the registry from there. */
  readonly devnet?: string | undefined;
}

/** The L1 URL and the registry address, from the flags or a devnet.json. */
export async function resolveTarget(o: L1TargetOptions): Promise<{ rpcUrl: string; registry: Address }> {
  let rpcUrl = o.l1;
  let registry = o.registry;
  if (o.devnet !== undefined) {
    const path =
      existsSync(o.devnet) && (await stat(o.devnet)).isDirectory() ? join(o.devnet, "devnet.json") : o.devnet;
    let json: { l1?: { rpc?: string; contracts?: Record<string, string> } | null };
    try {
      json = JSON.parse(await readFile(path, "utf8")) as typeof json;
    } catch (cause) {
      throw new StakeCliError("usage", `cannot read ${path}: ${String(cause)}; start the devnet first (dcn devnet)`, {
        cause,
      });
    }
    rpcUrl ??= json.l1?.rpc;
    registry ??= json.l1?.contracts?.registry;
  }
  if (rpcUrl === undefined)
    throw new StakeCliError("usage", "no L1: pass --l1 URL, or --devnet DIR of a running devnet");
  if (registry === undefined) {
    throw new StakeCliError("usage", "no registry: pass --registry ADDRESS, or --devnet DIR with deployed contracts");
  }
  if (!isAddress(registry)) throw new StakeCliError("usage", `--registry ${registry} is not an address (0x + 40 hex)`);
  return { rpcUrl, registry };
}

/** The user's L1 key from --key-file or DCN_L1_KEY (a 0x-prefixed 32-byte hex private key). */
export async function loadL1Key(
  keyFile: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<PrivateKeyAccount> {
  let text: string | undefined;
  let source: string;
  if (keyFile !== undefined) {
    source = keyFile;
    try {
      text = await readFile(keyFile, "utf8");
    } catch (cause) {
      throw new StakeCliError("key", `cannot read the key file ${keyFile}: ${String(cause)}`, { cause });
    }
  } else {
    source = `$${L1_KEY_ENV}`;
    text = env[L1_KEY_ENV];
  }
  if (text === undefined || text.trim() === "") {
    throw new StakeCliError(
      "key",
      `no L1 key: pass --key-file FILE (a file holding the 0x-prefixed private key) or set ${L1_KEY_ENV}`,
    );
  }
  const key = text.trim();
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) {
    throw new StakeCliError("key", `${source} does not hold a private key (0x followed by 64 hex digits)`);
  }
  return privateKeyToAccount(key as `0x${string}`);
}

function clientFor(rpcUrl: string): PublicClient {
  return createPublicClient({ transport: http(rpcUrl, { timeout: REQUEST_TIMEOUT_MS }), cacheTime: 0 });
}

async function contractsOf(client: PublicClient, registry: Address): Promise<StakingContracts> {
  try {
    return await resolveStakingContracts(client, registry, { blockNumber: await client.getBlockNumber() });
  } catch (cause) {
    throw new StakeCliError(
      "l1",
      `cannot read the staking contracts from the registry ${registry}: ${firstLine(cause)} (is the L1 up, and is this the registry address?)`,
      { cause },
    );
  }
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? ((e as { shortMessage?: string }).shortMessage ?? e.message) : String(e);
  return text.split("\n")[0] ?? "";
}

/** What to do about the refusals a staker meets most. */
const REVERT_HINTS: Readonly<Record<string, string>> = {
  NothingToClaim: "there are no rewards to claim in this pool yet (see dcn rewards --address)",
  UnbondingNotMature: "the unbonding period has not passed yet: withdraw after the epoch named",
  NoStake: "this address has no stake in that pool",
  UnknownSequencer: "no sequencer has that id",
  SequencerNotActive: "that sequencer is exiting or exited: it takes no new stake",
  ERC20InsufficientBalance: "the account does not hold that much LUMIA",
};

const formatArg = (a: unknown) => (typeof a === "bigint" ? a.toString() : String(a));

/** A contract refusal as "Name(args): hint", or null when `error` is no revert. */
export function describeRevert(error: unknown): string | null {
  const revert = stakingRevert(error);
  if (revert === null) return null;
  const hint = REVERT_HINTS[revert.name];
  return `${revert.name}(${revert.args.map(formatArg).join(", ")})${hint === undefined ? "" : `: ${hint}`}`;
}

const lumia = (wei: bigint) => `${formatUnits(wei, 18)} LUMIA`;

export interface RewardsOptions extends L1TargetOptions {
  readonly address: string;
  readonly json?: boolean;
  /** A node's JSON-RPC URL: the report from its staking index (lumia_getRewards) instead of the L1's views and logs. */
  readonly node?: string | undefined;
}

/** lumia_getRewards of `address` from the node at `url`. */
async function reportFromNode(url: string, address: string): Promise<StakerReport> {
  let answer: { result?: unknown; error?: { code?: number; message?: string } };
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "lumia_getRewards", params: [address] }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    answer = (await res.json()) as typeof answer;
  } catch (cause) {
    throw new StakeCliError("l1", `the node at ${url} does not answer JSON-RPC: ${String(cause)}`, { cause });
  }
  if (answer.error !== undefined) {
    throw new StakeCliError("l1", `the node at ${url} answered ${answer.error.code}: ${answer.error.message}`);
  }
  const report = stakerReportFromJson(answer.result);
  if (report === null) throw new StakeCliError("l1", `the node at ${url} answered something that is not a report`);
  return report;
}

/** `dcn rewards --address A`: stake, unbonding, pending and claimed LUMIA per pool and epoch. Exit code. */
export async function rewardsCommand(o: RewardsOptions, print: (line: string) => void): Promise<number> {
  if (!isAddress(o.address)) throw new StakeCliError("usage", `--address ${o.address} is not an address`);
  let report: StakerReport;
  if (o.node !== undefined) {
    report = await reportFromNode(o.node, o.address);
  } else {
    const target = await resolveTarget(o);
    const client = clientFor(target.rpcUrl);
    const contracts = await contractsOf(client, target.registry);
    report = await readStakerReport(client, contracts, o.address, { blockNumber: await client.getBlockNumber() }, true);
  }
  if (o.json === true) {
    print(JSON.stringify(stakerReportJson(report), null, 2));
    return 0;
  }
  print(`${report.address} at L1 block ${report.block.number}, epoch ${report.epoch}`);
  if (report.positions.length === 0) print("  no stake, unbonding stake or pending rewards in any pool");
  for (const p of report.positions) {
    print(
      `  sequencer ${String(p.sequencerId).padEnd(4)} stake ${lumia(p.stake)}  unbonding ${lumia(p.unbonding)}  ` +
        `pending ${lumia(p.pending)}`,
    );
  }
  print(
    `  total: stake ${lumia(report.totalStake)}, unbonding ${lumia(report.totalUnbonding)}, pending ${lumia(report.totalPending)}`,
  );
  if (report.commissionOwed > 0n) print(`  commission owed (operator): ${lumia(report.commissionOwed)}`);
  for (const e of report.claimedByEpoch ?? []) print(`  claimed in epoch ${e.epoch}: ${lumia(e.amount)}`);
  print(`  claimed in all: ${lumia(report.totalClaimed ?? 0n)}`);
  return 0;
}

export type StakerAction = "stake" | "delegate" | "unbond" | "withdraw" | "claim";

export interface StakerTxOptions extends L1TargetOptions {
  readonly keyFile?: string | undefined;
  /** Sequencer id (pool); `stake` defaults to the sender's own, `claim` to every pool with rewards. */
  readonly sequencer?: number | undefined;
  /** LUMIA as a decimal ("100", "0.5"); `unbond` also takes "max". */
  readonly amount?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

function parseAmount(text: string | undefined, allowMax: boolean): bigint {
  if (text === undefined) throw new StakeCliError("usage", "pass --amount LUMIA (e.g. --amount 100)");
  if (allowMax && text === "max") return maxUint256;
  if (!/^\d+(\.\d{1,18})?$/.test(text)) {
    throw new StakeCliError(
      "usage",
      `--amount ${text} is not an amount of LUMIA (e.g. 100 or 0.5${allowMax ? ", or max" : ""})`,
    );
  }
  const wei = parseUnits(text, 18);
  if (wei === 0n) throw new StakeCliError("usage", "--amount must be more than 0");
  return wei;
}

/** One staker transaction (or one per pool for `claim` without --sequencer). Prints what happened; exit code. */
export async function stakerTxCommand(
  action: StakerAction,
  o: StakerTxOptions,
  print: (line: string) => void,
): Promise<number> {
  const target = await resolveTarget(o);
  const account = await loadL1Key(o.keyFile, o.env);
  const client = clientFor(target.rpcUrl);
  const contracts = await contractsOf(client, target.registry);
  const chain = l1Chain(target.rpcUrl, await client.getChainId());
  const wallet = createWalletClient({
    account,
    chain,
    transport: http(target.rpcUrl, { timeout: REQUEST_TIMEOUT_MS }),
  });

  async function send(
    what: string,
    request: { address: Address; abi: readonly unknown[]; functionName: string; args: readonly unknown[] },
  ): Promise<void> {
    let hash: `0x${string}`;
    try {
      const simulated = await client.simulateContract({
        ...request,
        abi: request.abi as never,
        functionName: request.functionName as never,
        args: request.args as never,
        account,
        chain,
      });
      hash = await wallet.writeContract(simulated.request as never);
    } catch (cause) {
      const refusal = describeRevert(cause);
      if (refusal !== null)
        throw new StakeCliError("refused", `${what} refused by the contract: ${refusal}`, { cause });
      throw new StakeCliError("l1", `${what} failed: ${firstLine(cause)}`, { cause });
    }
    const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: 200, timeout: 120_000 });
    if (receipt.status !== "success") throw new StakeCliError("refused", `${what}: transaction ${hash} reverted`);
    print(`${what}: tx ${hash} in L1 block ${receipt.blockNumber}`);
  }

  const sequencerOrFail = (): number => {
    if (o.sequencer === undefined) throw new StakeCliError("usage", "pass --sequencer ID (the pool's sequencer id)");
    return o.sequencer;
  };

  switch (action) {
    case "stake":
    case "delegate": {
      let id = o.sequencer;
      if (id === undefined && action === "stake") {
        id = Number(
          await client.readContract({
            address: contracts.registry,
            abi: SequencerRegistry.abi,
            functionName: "sequencerIdOf",
            args: [account.address],
          }),
        );
        if (id === 0) {
          throw new StakeCliError(
            "usage",
            `${account.address} operates no sequencer: pass --sequencer ID, or use dcn delegate --sequencer ID`,
          );
        }
      }
      if (id === undefined) id = sequencerOrFail();
      const amount = parseAmount(o.amount, false);
      const allowance = await client.readContract({
        address: contracts.token,
        abi: LumiaToken.abi,
        functionName: "allowance",
        args: [account.address, contracts.staking],
      });
      if (allowance < amount) {
        await send(`approve ${lumia(amount)} for Staking`, {
          address: contracts.token,
          abi: LumiaToken.abi,
          functionName: "approve",
          args: [contracts.staking, amount],
        });
      }
      await send(`${action} ${lumia(amount)} in sequencer ${id}`, {
        address: contracts.staking,
        abi: Staking.abi,
        functionName: "stake",
        args: [id, amount],
      });
      return 0;
    }
    case "unbond": {
      const id = sequencerOrFail();
      const amount = parseAmount(o.amount, true);
      await send(`unbond ${amount === maxUint256 ? "all" : lumia(amount)} from sequencer ${id}`, {
        address: contracts.staking,
        abi: Staking.abi,
        functionName: "unbond",
        args: [id, amount],
      });
      return 0;
    }
    case "withdraw": {
      const id = sequencerOrFail();
      await send(`withdraw matured unbondings from sequencer ${id}`, {
        address: contracts.staking,
        abi: Staking.abi,
        functionName: "withdraw",
        args: [id],
      });
      return 0;
    }
    case "claim": {
      let ids: number[];
      if (o.sequencer !== undefined) ids = [o.sequencer];
      else {
        const report = await readStakerReport(
          client,
          contracts,
          account.address,
          { blockNumber: await client.getBlockNumber() },
          false,
        );
        ids = report.positions.filter((p) => p.pending > 0n).map((p) => p.sequencerId);
        if (ids.length === 0) {
          print(`${account.address} has no pending rewards`);
          return 0;
        }
      }
      for (const id of ids) {
        const pending = await client.readContract({
          address: contracts.rewards,
          abi: Rewards.abi,
          functionName: "pendingRewards",
          args: [id, account.address],
        });
        await send(`claim ${lumia(pending)} from sequencer ${id}`, {
          address: contracts.rewards,
          abi: Rewards.abi,
          functionName: "claim",
          args: [id],
        });
      }
      return 0;
    }
  }
}
