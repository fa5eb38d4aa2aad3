// The bench workload: deterministic senders, a setup phase that funds them (not measured), and the measured
// transactions, all signed before the measured phase starts.
//
// Setup: the chain's funded accounts ("funders": the devnet's dev accounts, given the same balances on anvil) send
// each sender enough ETH for the whole run; for ERC-20 the first funder deploys Token, hands a share to the other
// funders, and each funder hands tokens to its senders. Each round goes to one endpoint with at most
// SETUP_WINDOW transactions of a sender outstanding (the node refuses nonces further ahead: mempool maxNonceGap 64),
// and waits until every sender's nonce has moved past its last transaction.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { BenchError } from "./errors.ts";
import { type HttpRpc, MAX_BATCH } from "./rpc.ts";
import { type BenchAccount, createdAddress, deployData, erc20TransferData, type SignedTx, signEip1559 } from "./tx.ts";

export type WorkloadKind = "transfers" | "erc20" | "mix";

const GWEI = 1_000_000_000n;
const ETHER = 10n ** 18n;
/** Fee cap far above the base fee a busy run reaches (1 gwei at genesis, +12.5% per full block). */
export const MAX_FEE_PER_GAS = 100n * GWEI;
export const MAX_PRIORITY_FEE_PER_GAS = 1n * GWEI;
export const TRANSFER_GAS = 21_000n;
/**
 * Gas limit of an ERC-20 transfer: ~35k used between funded holders, with headroom. Blocks are filled by gas limit,
 * so a loose limit would cap transactions per block for no reason (30M / 60k = 500).
 */
export const ERC20_TRANSFER_GAS = 60_000n;
const DEPLOY_GAS = 2_000_000n;
const TOKEN_SUPPLY = 10n ** 30n;
const TOKENS_PER_SENDER = 10n ** 21n;
/** Transactions of one sender in flight during setup (below the pool's maxNonceGap of 64). */
const SETUP_WINDOW = 48;
const SETUP_POLL_MS = 150;
export const DEFAULT_SETUP_TIMEOUT_MS = 180_000;

/** One pre-signed measured transaction. */
export interface PlannedTx {
  /** 0x-hex raw transaction, ready for eth_sendRawTransaction. */
  readonly rawHex: Hex;
  readonly hash: Hex;
  readonly sender: number;
}

/** What the chain needs to hold before the measured phase: funded senders and, for ERC-20, the token. */
export interface PreparedChain {
  readonly chainId: bigint;
  readonly token: Hex | null;
  /** Next nonce of every sender (advanced by each built workload). */
  readonly nonces: number[];
}

/** Wei a sender needs to pay for `txs` measured transactions at the fee cap, with 2x headroom; at least 1 ETH. */
export function fundingWei(txs: number, kind: WorkloadKind): bigint {
  const gas = kind === "transfers" ? TRANSFER_GAS : ERC20_TRANSFER_GAS;
  const need = 2n * BigInt(txs) * (gas * MAX_FEE_PER_GAS + 1n);
  return need > ETHER ? need : ETHER;
}

async function nonces(rpc: HttpRpc, addresses: readonly Hex[], tag: "latest" | "pending"): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < addresses.length; i += MAX_BATCH) {
    const chunk = addresses.slice(i, i + MAX_BATCH);
    const answers = await rpc.batch(chunk.map((a) => ({ method: "eth_getTransactionCount", params: [a, tag] })));
    for (const [j, a] of answers.entries()) {
      if (!a.ok) throw new BenchError("setup_failed", `eth_getTransactionCount(${chunk[j]}): ${a.message}`);
      out.push(Number(BigInt(a.result as string)));
    }
  }
  return out;
}

async function balances(rpc: HttpRpc, addresses: readonly Hex[]): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let i = 0; i < addresses.length; i += MAX_BATCH) {
    const chunk = addresses.slice(i, i + MAX_BATCH);
    const answers = await rpc.batch(chunk.map((a) => ({ method: "eth_getBalance", params: [a, "latest"] })));
    for (const [j, a] of answers.entries()) {
      if (!a.ok) throw new BenchError("setup_failed", `eth_getBalance(${chunk[j]}): ${a.message}`);
      out.push(BigInt(a.result as string));
    }
  }
  return out;
}

interface SenderQueue {
  readonly address: Hex;
  readonly firstNonce: number;
  readonly txs: readonly SignedTx[];
  sent: number;
  committed: number;
  lastProgressMs: number;
}

/** A sender whose nonce has not moved for this long gets its window sent again (a pool may have dropped it). */
const SETUP_RESEND_AFTER_MS = 5_000;

/**
 * Sends every queue's transactions (consecutive nonces from `firstNonce`) with at most SETUP_WINDOW of a sender
 * beyond its committed nonce, until all are committed. Refusals other than duplicates fail the setup.
 */
async function submitAndWait(
  rpc: HttpRpc,
  all: readonly { address: Hex; firstNonce: number; txs: readonly SignedTx[] }[],
  what: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let open: SenderQueue[] = all
    .filter((q) => q.txs.length > 0)
    .map((q) => ({ ...q, sent: 0, committed: q.firstNonce, lastProgressMs: Date.now() }));
  for (;;) {
    const current = await nonces(
      rpc,
      open.map((q) => q.address),
      "latest",
    );
    const now = Date.now();
    for (const [i, q] of open.entries()) {
      const c = current[i] as number;
      if (c > q.committed) {
        q.committed = c;
        q.lastProgressMs = now;
      } else if (now - q.lastProgressMs > SETUP_RESEND_AFTER_MS) {
        q.sent = Math.max(0, c - q.firstNonce);
        q.lastProgressMs = now;
      }
    }
    open = open.filter((q) => q.committed < q.firstNonce + q.txs.length);
    if (open.length === 0) return;
    if (now > deadline) {
      throw new BenchError(
        "setup_timeout",
        `${what}: ${open.length} senders still have uncommitted transactions after ${timeoutMs} ms`,
      );
    }
    const calls: { method: string; params: unknown[] }[] = [];
    for (const q of open) {
      const limit = Math.min(q.txs.length, Math.max(0, q.committed - q.firstNonce) + SETUP_WINDOW);
      for (; q.sent < limit; q.sent++) {
        calls.push({ method: "eth_sendRawTransaction", params: [toHex((q.txs[q.sent] as SignedTx).raw)] });
      }
    }
    for (let i = 0; i < calls.length; i += MAX_BATCH) {
      const answers = await rpc.batch(calls.slice(i, i + MAX_BATCH));
      for (const a of answers) {
        if (!a.ok && !/already known|known transaction|nonce too low/i.test(a.message)) {
          throw new BenchError("setup_failed", `${what}: eth_sendRawTransaction refused: ${a.message} (${a.code})`);
        }
      }
    }
    await new Promise((r) => setTimeout(r, SETUP_POLL_MS));
  }
}

export interface PrepareOptions {
  /** Setup goes through this endpoint only (one pool sees every nonce in order). */
  readonly rpc: HttpRpc;
  readonly kind: WorkloadKind;
  readonly funders: readonly BenchAccount[];
  readonly senders: readonly BenchAccount[];
  /** Most measured transactions any sender will send over the whole bench (sizes the funding). */
  readonly maxTxsPerSender: number;
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** Funds the senders (ETH, and tokens for erc20/mix) and reads their nonces. Not part of any measurement. */
export async function prepareChain(opts: PrepareOptions): Promise<PreparedChain> {
  const { rpc, funders, senders, kind } = opts;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;
  const log = opts.log ?? (() => {});
  const deployer = funders[0];
  if (deployer === undefined) throw new BenchError("setup_failed", "no funded account to fund the senders from");
  // Compiled first: solc blocks this process for seconds, which must not happen between RPC calls.
  const tokenContract =
    kind === "transfers" ? null : (await import("../../test/fixtures/contracts.ts")).contracts().Token;
  const chainId = BigInt(await rpc.call<string>("eth_chainId"));
  const funderNonces = await nonces(
    rpc,
    funders.map((f) => f.address),
    "pending",
  );
  const sign = (from: number, to: Hex | null, value: bigint, data: Uint8Array, gas: bigint): SignedTx => {
    const nonce = funderNonces[from] as number;
    funderNonces[from] = nonce + 1;
    return signEip1559(
      {
        chainId,
        nonce,
        maxPriorityFeePerGas: MAX_PRIORITY_FEE_PER_GAS,
        maxFeePerGas: MAX_FEE_PER_GAS,
        gas,
        to,
        value,
        data,
      },
      (funders[from] as BenchAccount).privateKey,
    );
  };
  const queue = () => funders.map(() => [] as SignedTx[]);
  const round = async (txs: SignedTx[][], firstNonces: readonly number[], what: string) => {
    const t0 = performance.now();
    await submitAndWait(
      rpc,
      funders.map((f, i) => ({ address: f.address, firstNonce: firstNonces[i] as number, txs: txs[i] ?? [] })),
      what,
      timeoutMs,
    );
    log(`  setup: ${what}: ${txs.flat().length} transactions in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  };

  let token: Hex | null = null;
  if (tokenContract !== null) {
    const first = [...funderNonces];
    token = createdAddress(deployer.address, funderNonces[0] as number);
    const txs = queue();
    txs[0]?.push(sign(0, null, 0n, deployData(tokenContract.bytecode, TOKEN_SUPPLY), DEPLOY_GAS));
    await round(txs, first, "deploy Token");
    const code = await rpc.call<string>("eth_getCode", [token, "latest"]);
    if (code === "0x") throw new BenchError("setup_failed", `Token deployment at ${token} left no code (reverted?)`);
  }

  const wei = fundingWei(opts.maxTxsPerSender, kind);
  const have = await balances(
    rpc,
    senders.map((s) => s.address),
  );
  const first = [...funderNonces];
  const fund = queue();
  for (const [i, s] of senders.entries()) {
    if ((have[i] as bigint) >= wei) continue;
    const f = i % funders.length;
    fund[f]?.push(sign(f, s.address, wei, new Uint8Array(0), TRANSFER_GAS));
  }
  const share = TOKENS_PER_SENDER * BigInt(Math.ceil(senders.length / funders.length));
  if (token !== null) {
    for (let f = 1; f < funders.length; f++) {
      const to = (funders[f] as BenchAccount).address;
      fund[0]?.push(sign(0, token, 0n, erc20TransferData(to, share), ERC20_TRANSFER_GAS));
    }
  }
  await round(fund, first, `fund ${senders.length} senders with ${Number(wei) / 1e18} ETH`);

  if (token !== null) {
    const first2 = [...funderNonces];
    const hand = queue();
    for (const [i, s] of senders.entries()) {
      const f = i % funders.length;
      hand[f]?.push(sign(f, token, 0n, erc20TransferData(s.address, TOKENS_PER_SENDER), ERC20_TRANSFER_GAS));
    }
    await round(hand, first2, `hand tokens to ${senders.length} senders`);
  }
  return {
    chainId,
    token,
    nonces: await nonces(
      rpc,
      senders.map((s) => s.address),
      "pending",
    ),
  };
}

/**
 * `count` measured transactions, sender k mod N with that sender's next nonce, each sending to the next sender
 * (existing accounts: no account creation in the measured phase). transfers: 1 wei; erc20: Token.transfer of 1 unit;
 * mix: alternating. Advances `chain.nonces`.
 */
export function buildWorkload(
  chain: PreparedChain,
  kind: WorkloadKind,
  senders: readonly BenchAccount[],
  count: number,
): PlannedTx[] {
  if (kind !== "transfers" && chain.token === null) throw new BenchError("bad_option", `${kind} needs the token`);
  const n = senders.length;
  const out: PlannedTx[] = [];
  for (let k = 0; k < count; k++) {
    const s = k % n;
    const from = senders[s] as BenchAccount;
    const to = (senders[(s + 1) % n] as BenchAccount).address;
    const nonce = chain.nonces[s] as number;
    chain.nonces[s] = nonce + 1;
    const erc20 = kind === "erc20" || (kind === "mix" && k % 2 === 1);
    const signed = signEip1559(
      {
        chainId: chain.chainId,
        nonce,
        maxPriorityFeePerGas: MAX_PRIORITY_FEE_PER_GAS,
        maxFeePerGas: MAX_FEE_PER_GAS,
        gas: erc20 ? ERC20_TRANSFER_GAS : TRANSFER_GAS,
        to: erc20 ? (chain.token as Hex) : to,
        value: erc20 ? 0n : 1n,
        data: erc20 ? erc20TransferData(to, 1n) : new Uint8Array(0),
      },
      from.privateKey,
    );
    out.push({ rawHex: toHex(signed.raw), hash: signed.hash, sender: s });
  }
  return out;
}
