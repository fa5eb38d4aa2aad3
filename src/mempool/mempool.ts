// The transaction pool: admission of raw signed Ethereum transactions, per-sender nonce queues, replacement, eviction
// when full, and block-building order. Semantics follow geth's legacypool where this file is silent; the deviations
// are listed in docs/mempool.md.
//
// Concurrency model: every change to the pool happens in a synchronous stretch of code. `add` reads the sender's
// account (async) first, then checks and mutates without awaiting. `onCommitted` bumps a head epoch before it reads
// accounts; an `add` whose read straddled a commit reads again, so no transaction is admitted against a stale head.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { isSvmEntry } from "../chain/block.ts";
import { fastKeccak256 } from "../execution/keccak.ts";
import { type DecodedTx, effectiveTip } from "../execution/tx.ts";
import { TxDecodeCache } from "../execution/tx-cache.ts";
import { Heap } from "./heap.ts";
import { TokenBuckets } from "./rate-limit.ts";
import type { SvmLane } from "./svm-lane.ts";

/** The committed head state the pool checks nonces and balances against. */
export interface AccountView {
  nonce(address: Hex): Promise<bigint>;
  balance(address: Hex): Promise<bigint>;
  /** Both in one read, when the view can (one trie walk instead of two per admitted transaction). */
  account?(address: Hex): Promise<{ readonly nonce: bigint; readonly balance: bigint }>;
}

export interface MempoolLimits {
  /** Transactions held at most. */
  readonly maxCount: number;
  /** Sum of raw transaction sizes held at most. */
  readonly maxBytes: number;
  /** Transactions held at most per sender (executable and waiting). */
  readonly maxPerSender: number;
  /** Largest raw transaction accepted (at most execution's MAX_TX_BYTES). */
  readonly maxTxBytes: number;
  /** A transaction that cannot fit in a block is refused. */
  readonly blockGasLimit: bigint;
  /** A replacement must raise both fee fields by at least this many percent (geth: 10). */
  readonly minReplacementBumpPercent: number;
  /** A transaction more than this far ahead of the account nonce is refused. */
  readonly maxNonceGap: number;
  /** Sustained transactions per second accepted from one peer (burst: one second's worth). */
  readonly peerRatePerSecond: number;
}

export type AddSource = { readonly kind: "local" } | { readonly kind: "peer"; readonly peer: string };

export type AddRefusalCode =
  | "malformed"
  | "unsupported_type"
  | "bad_signature"
  | "wrong_chain"
  | "too_large"
  | "intrinsic_gas"
  | "gas_limit"
  | "nonce_too_low"
  | "nonce_gap"
  | "insufficient_funds"
  | "fee_too_low"
  | "underpriced_replacement"
  | "known"
  | "pool_full"
  | "rate_limited"
  | "sender_full"
  /** SVM: the recent blockhash is not in the 150-block window */
  | "stale_blockhash"
  /** SVM: the fee payer has no account */
  | "unknown_payer"
  /** SVM: the signature was processed within the replay window */
  | "already_processed";

export type AddResult =
  | {
      readonly ok: true;
      /** keccak256 of the entry (for an SVM entry too). */
      readonly hash: Hex;
      readonly replaced: Hex | null;
      /** The base58 first signature, for an SVM entry. */
      readonly signature?: string;
    }
  | { readonly ok: false; readonly code: AddRefusalCode; readonly message: string };

export interface PendingOptions {
  readonly gasLimit: bigint;
  readonly maxBytes: number;
  readonly maxCount: number;
  readonly baseFee: bigint;
}

export interface MempoolDeps {
  readonly chainId: bigint;
  readonly accounts: AccountView;
  /** Base fee of the next block. */
  readonly baseFee: () => bigint;
  readonly nowMs: () => number;
  /**
   * Decodes admitted transactions and remembers them, so that validating the block that carries them reuses the
   * sender recovery (the block executor decodes through `Mempool.decoder`). Default: a cache of the default size.
   */
  readonly decoder?: TxDecodeCache;
  /** The Solana lane: SVM entries (0x53 || wire bytes) go there; without it they are refused as unsupported. */
  readonly svm?: SvmLane;
}

export type MempoolErrorCode =
  /** The account view failed (storage error); the cause is attached. */
  | "account_read_failed"
  /** The head moved on every attempt to read an account (commits arriving faster than one account read). */
  | "head_race";

export class MempoolError extends Error {
  override readonly name = "MempoolError";
  readonly code: MempoolErrorCode;
  readonly address: Hex | undefined;

  constructor(code: MempoolErrorCode, message: string, context: { address?: Hex; cause?: unknown } = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.code = code;
    this.address = context.address;
  }
}

/** Cheapest possible transaction: below this much gas left, block building stops looking. */
const MIN_TX_GAS = 21_000n;
const MIN_TX_GAS_NUM = 21_000;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Senders not touched by a block whose account is re-read per commit, round robin (catches nonces moved by
 * transactions this pool never saw, e.g. a replacement that reached the proposer first). */
const RECHECK_SWEEP_SENDERS = 256;
/** Account reads restarted because a commit landed meanwhile, before giving up with "head_race". */
const MAX_ACCOUNT_READ_ATTEMPTS = 8;
/** Stale eviction-heap nodes tolerated on top of one per sender before the heap is rebuilt. */
const STALE_EVICTION_NODES_SLACK = 1024;
/** Peers with a rate bucket at most (the network is permissioned: a few dozen peers). */
const MAX_RATE_LIMITED_PEERS = 4096;
/**
 * Hashes of committed transactions remembered to answer late copies without decoding them: a few full blocks' worth
 * (1,428 transfers each), ~2 MB. Older copies are decoded and refused by their nonce as before.
 */
const RECENTLY_INCLUDED = 16_384;

interface Entry {
  readonly tx: DecodedTx;
  readonly bytes: number;
  /** Arrival order: breaks fee ties (first come first served) and picks the newest when evicting. */
  readonly seq: number;
  /** Most the transaction can take from the balance: gasLimit * maxFeePerGas + value. */
  readonly cost: bigint;
  /** Doubles for block building: gas limit (always safe, <= blockGasLimit), fee fields (null above 2^53 wei). */
  readonly gas: number;
  readonly maxFeeNum: number | null;
  readonly tipCapNum: number | null;
}

interface Sender {
  readonly address: Hex;
  /** Account nonce and balance at the head, as last read. */
  accountNonce: bigint;
  balance: bigint;
  /** Ascending, distinct nonces, all >= accountNonce. */
  readonly txs: Entry[];
  /** Length of the prefix of `txs` with nonces accountNonce, accountNonce + 1, ...: what can run now. */
  executable: number;
  /** Bumped on every change; eviction heap nodes with an older version are stale. */
  version: number;
}

/** An eviction candidate: the highest-nonce transaction of one sender (evicting only tails never opens a gap). */
interface TailNode {
  readonly sender: Sender;
  readonly version: number;
  readonly index: number;
  readonly executable: boolean;
  readonly tip: bigint;
  readonly seq: number;
}

interface PendingCursor {
  readonly sender: Sender;
  index: number;
  /** Effective tip of txs[index] as a double: exact below 2^53 wei, else rounded (then `tipExact` is set). */
  tip: number;
  tipExact: bigint | null;
  seq: number;
}

// Who goes first when room is needed: transactions that cannot run yet (behind a gap), then the lowest effective tip,
// then the newest arrival.
function evictsBefore(a: TailNode, b: TailNode): boolean {
  if (a.executable !== b.executable) return !a.executable;
  if (a.tip !== b.tip) return a.tip < b.tip;
  return a.seq > b.seq;
}

// Number() of a bigint rounds monotonically, so differing doubles order exactly like the bigints; only equal doubles
// of which one was rounded (tips above 2^53 wei, ~9M gwei) need the exact comparison.
function buildsBefore(a: PendingCursor, b: PendingCursor): boolean {
  if (a.tip !== b.tip) return a.tip > b.tip;
  if (a.tipExact !== null || b.tipExact !== null) {
    const exactA = a.tipExact ?? BigInt(a.tip);
    const exactB = b.tipExact ?? BigInt(b.tip);
    if (exactA !== exactB) return exactA > exactB;
  }
  return a.seq < b.seq;
}

function safeNumber(value: bigint): number | null {
  return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : null;
}

/** Sets the cursor's tip for `entry`; false if the entry's fee cap is below the base fee (it cannot be included). */
function aimCursor(cursor: PendingCursor, entry: Entry, baseFee: bigint, baseFeeNum: number | null): boolean {
  // Block building is bigint-bound; doubles are exact for every realistic fee (< 2^53 wei), bigints are the fallback.
  // The formula is execution's effectiveTip: min(maxPriority, maxFee - baseFee).
  if (baseFeeNum !== null && entry.maxFeeNum !== null && entry.tipCapNum !== null) {
    const headroom = entry.maxFeeNum - baseFeeNum;
    if (headroom < 0) return false;
    cursor.tip = entry.tipCapNum < headroom ? entry.tipCapNum : headroom;
    cursor.tipExact = null;
  } else {
    if (entry.tx.maxFeePerGas < baseFee) return false;
    const tip = effectiveTip(entry.tx, baseFee);
    cursor.tip = Number(tip);
    cursor.tipExact = tip;
  }
  cursor.seq = entry.seq;
  return true;
}

function refuse(code: AddRefusalCode, message: string): AddResult {
  return { ok: false, code, message };
}

/** Index of the first entry with nonce >= `nonce`. */
function lowerBound(txs: readonly Entry[], nonce: bigint): number {
  let lo = 0;
  let hi = txs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((txs[mid] as Entry).tx.nonce < nonce) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function assertLimit(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be an integer >= ${min}`);
}

export class Mempool {
  private readonly byHash = new Map<Hex, Entry>();
  private readonly senders = new Map<Hex, Sender>();
  private readonly rate: TokenBuckets;
  private readonly evictHeap = new Heap<TailNode>(evictsBefore);
  /** Base fee the eviction heap's tips were computed at; the heap is rebuilt when the base fee moves. */
  private evictBaseFee: bigint;
  private accounts: AccountView;
  private bytes = 0;
  private nextSeq = 0;
  private headEpoch = 0;
  private committing: Promise<void> | null = null;
  private sweep: Iterator<Hex> | null = null;
  private readonly addedListeners = new Set<(tx: DecodedTx) => void>();
  private readonly workListeners = new Set<() => void>();
  /** The Solana lane (./svm-lane.ts), null when the node runs no SVM. */
  readonly svm: SvmLane | null;
  /** Decodes (once per node) what the pool admits and what blocks carry. */
  readonly decoder: TxDecodeCache;
  /** Hashes of the transactions of the last committed blocks, oldest first (at most RECENTLY_INCLUDED). */
  private readonly included = new Set<Hex>();

  constructor(
    private readonly limits: MempoolLimits,
    private readonly deps: MempoolDeps,
  ) {
    assertLimit("maxCount", limits.maxCount, 1);
    assertLimit("maxBytes", limits.maxBytes, 1);
    assertLimit("maxPerSender", limits.maxPerSender, 1);
    assertLimit("maxTxBytes", limits.maxTxBytes, 1);
    assertLimit("minReplacementBumpPercent", limits.minReplacementBumpPercent, 0);
    assertLimit("maxNonceGap", limits.maxNonceGap, 0);
    if (limits.maxTxBytes > limits.maxBytes) throw new RangeError("maxTxBytes exceeds maxBytes");
    if (limits.blockGasLimit < MIN_TX_GAS || limits.blockGasLimit > MAX_SAFE) {
      throw new RangeError(`blockGasLimit must be in [${MIN_TX_GAS}, 2^53 - 1]`);
    }
    this.rate = new TokenBuckets(
      {
        ratePerSecond: limits.peerRatePerSecond,
        burst: Math.max(1, limits.peerRatePerSecond),
        maxPeers: MAX_RATE_LIMITED_PEERS,
      },
      deps.nowMs,
    );
    this.accounts = deps.accounts;
    this.evictBaseFee = deps.baseFee();
    this.decoder = deps.decoder ?? new TxDecodeCache(deps.chainId);
    this.svm = deps.svm ?? null;
    if (this.decoder.chainId !== deps.chainId) throw new RangeError("the decoder serves another chain");
  }

  /** Transactions held, both lanes. */
  get size(): number {
    return this.byHash.size + (this.svm?.size ?? 0);
  }

  get sizeBytes(): number {
    return this.bytes + (this.svm?.sizeBytes ?? 0);
  }

  get(hash: Hex): DecodedTx | undefined {
    return this.byHash.get(hash.toLowerCase() as Hex)?.tx;
  }

  has(hash: Hex): boolean {
    return this.byHash.has(hash.toLowerCase() as Hex);
  }

  /** Next nonce for `address` counting its executable queued transactions; undefined if the pool holds none. */
  senderNonce(address: Hex): bigint | undefined {
    const sender = this.senders.get(address.toLowerCase() as Hex);
    return sender === undefined ? undefined : sender.accountNonce + BigInt(sender.executable);
  }

  /** EVM transactions held (txpool_status): `pending` runnable now, `queued` waiting behind a nonce gap. */
  counts(): { readonly pending: number; readonly queued: number } {
    let pending = 0;
    let queued = 0;
    for (const sender of this.senders.values()) {
      pending += sender.executable;
      queued += sender.txs.length - sender.executable;
    }
    return { pending, queued };
  }

  /** One sender's transactions in nonce order (txpool_contentFrom): its runnable run, then those behind a gap. */
  ofSender(address: Hex): { readonly pending: readonly DecodedTx[]; readonly queued: readonly DecodedTx[] } {
    const sender = this.senders.get(address.toLowerCase() as Hex);
    if (sender === undefined) return { pending: [], queued: [] };
    const txs = sender.txs.map((e) => e.tx);
    return { pending: txs.slice(0, sender.executable), queued: txs.slice(sender.executable) };
  }

  async add(raw: Uint8Array, source: AddSource): Promise<AddResult> {
    // Cheapest refusals first: a flood must not buy signature recoveries or state reads.
    if (source.kind === "peer" && !this.rate.take(source.peer)) {
      return refuse("rate_limited", `peer ${source.peer} exceeds ${this.limits.peerRatePerSecond} transactions/s`);
    }
    if (raw.length > this.limits.maxTxBytes) {
      return refuse("too_large", `${raw.length} bytes exceed the pool's maximum ${this.limits.maxTxBytes}`);
    }
    if (isSvmEntry(raw)) return this.addSvm(raw);
    // Every supported type's hash is keccak256 of its raw encoding, so duplicates are caught before decoding.
    const hash = toHex(fastKeccak256(raw));
    if (this.byHash.has(hash)) return refuse("known", `transaction ${hash} is already pooled`);
    // A copy that arrives after its block (relayed late, or sent again by a client): its nonce is spent, and the
    // answer costs no decode or sender recovery (the decoder forgot it at the commit).
    if (this.included.has(hash)) return refuse("nonce_too_low", `transaction ${hash} is in a committed block`);
    const decoded = this.decoder.decode(raw, hash);
    if (!decoded.ok) return refuse(decoded.code, decoded.message);
    const tx = decoded.tx;
    if (tx.hash !== hash) throw new Error(`decoder hash ${tx.hash} differs from keccak256(raw) ${hash}`);
    if (tx.gasLimit > this.limits.blockGasLimit) {
      return refuse("gas_limit", `gas limit ${tx.gasLimit} exceeds the block gas limit ${this.limits.blockGasLimit}`);
    }
    const early = this.checkFee(tx);
    if (early !== null) return early;

    const account = await this.readAccount(tx.from);
    // From here to the end nothing awaits: the checks and the changes see one pool state.
    if (this.byHash.has(hash)) return refuse("known", `transaction ${hash} is already pooled`);
    const fee = this.checkFee(tx);
    if (fee !== null) return fee;
    const sender = this.senders.get(tx.from);
    if (sender !== undefined) this.refresh(sender, account.nonce, account.balance);
    const result = this.admit(tx, account.nonce, account.balance);
    if (result.ok) {
      this.notifyWork();
      for (const listener of [...this.addedListeners]) {
        try {
          listener(tx);
        } catch {
          // A listener's failure is its own to report (the RPC logs its own): the transaction stays admitted.
        }
      }
    }
    return result;
  }

  private async addSvm(entry: Uint8Array): Promise<AddResult> {
    if (this.svm === null) return refuse("unsupported_type", "this node runs no SVM");
    const added = await this.svm.add(entry);
    if (!added.ok) return refuse(added.code, added.message);
    this.notifyWork();
    return { ok: true, hash: added.hash, replaced: null, signature: added.signature };
  }

  private notifyWork(): void {
    for (const listener of [...this.workListeners]) {
      try {
        listener();
      } catch {
        // The block producer's wake-up; its failure is its own.
      }
    }
  }

  /** Calls `listener` whenever either lane admits a transaction (wakes a block producer waiting for work). */
  onWork(listener: () => void): () => void {
    this.workListeners.add(listener);
    return () => {
      this.workListeners.delete(listener);
    };
  }

  /** Calls `listener` with every transaction admitted from now on (eth_subscribe newPendingTransactions). */
  onAdded(listener: (tx: DecodedTx) => void): () => void {
    this.addedListeners.add(listener);
    return () => {
      this.addedListeners.delete(listener);
    };
  }

  /**
   * Transactions for the next block: each sender's executable run in nonce order, senders interleaved by effective
   * tip at `baseFee` (ties: earlier arrival first). A transaction that does not fit the remaining budget, or whose
   * fee cap is below `baseFee`, ends its sender's run (its later nonces cannot precede it); others still get a turn.
   */
  pending(opts: PendingOptions): DecodedTx[] {
    const out: DecodedTx[] = [];
    if (opts.maxCount <= 0) return out;
    const baseFeeNum = safeNumber(opts.baseFee);
    const heads: PendingCursor[] = [];
    for (const sender of this.senders.values()) {
      if (sender.executable === 0) continue;
      const cursor: PendingCursor = { sender, index: 0, tip: 0, tipExact: null, seq: 0 };
      if (aimCursor(cursor, sender.txs[0] as Entry, opts.baseFee, baseFeeNum)) heads.push(cursor);
    }
    const heap = new Heap<PendingCursor>(buildsBefore);
    heap.reset(heads);
    // Every pooled gas limit is <= blockGasLimit (a safe integer), so counting gas in doubles is exact.
    let gasLeft = Number(opts.gasLimit < MAX_SAFE ? opts.gasLimit : MAX_SAFE);
    let bytesLeft = opts.maxBytes;
    while (out.length < opts.maxCount && gasLeft >= MIN_TX_GAS_NUM) {
      const cursor = heap.peek();
      if (cursor === undefined) break;
      const entry = cursor.sender.txs[cursor.index] as Entry;
      if (entry.gas > gasLeft || entry.bytes > bytesLeft) {
        heap.pop();
        continue;
      }
      out.push(entry.tx);
      gasLeft -= entry.gas;
      bytesLeft -= entry.bytes;
      const next = cursor.index + 1;
      cursor.index = next;
      if (
        next < cursor.sender.executable &&
        aimCursor(cursor, cursor.sender.txs[next] as Entry, opts.baseFee, baseFeeNum)
      ) {
        heap.topChanged();
      } else {
        heap.pop();
      }
    }
    return out;
  }

  /**
   * A block was committed: drops its transactions, everything their senders can no longer run (stale nonces, cost
   * above the new balance), and does the same for a rotating slice of the other senders. `accounts` is the new head
   * and is used by later `add` calls too.
   */
  async onCommitted(included: readonly Hex[], accounts: AccountView): Promise<void> {
    while (this.committing !== null) await this.committing;
    let release = (): void => {};
    this.committing = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.headEpoch++;
    this.accounts = accounts;
    try {
      const affected = new Set<Hex>();
      for (const hash of included) {
        const lower = hash.toLowerCase() as Hex;
        this.decoder.forget(lower);
        this.included.add(lower);
      }
      for (const oldest of this.included) {
        if (this.included.size <= RECENTLY_INCLUDED) break;
        this.included.delete(oldest);
      }
      for (const hash of included) {
        const entry = this.byHash.get(hash.toLowerCase() as Hex);
        if (entry === undefined) continue;
        const sender = this.senders.get(entry.tx.from);
        if (sender === undefined) throw new Error(`pooled transaction ${hash} has no sender queue`);
        affected.add(sender.address);
        // Inclusion proves the account nonce moved past it: block building sees the right run before the re-read.
        const nonceAfter = entry.tx.nonce + 1n;
        this.refresh(sender, nonceAfter > sender.accountNonce ? nonceAfter : sender.accountNonce, sender.balance);
      }
      for (const address of this.sweepSenders()) affected.add(address);
      const addresses = [...affected];
      const reads = await Promise.all(addresses.map((address) => this.readFrom(accounts, address)));
      for (const [i, address] of addresses.entries()) {
        const sender = this.senders.get(address);
        const read = reads[i];
        if (sender !== undefined && read !== undefined) this.refresh(sender, read.nonce, read.balance);
      }
    } finally {
      this.committing = null;
      release();
    }
  }

  /** Throws if an internal invariant does not hold. O(n): for tests and debugging. */
  verifyInvariants(): void {
    let count = 0;
    let bytes = 0;
    for (const [address, sender] of this.senders) {
      if (sender.address !== address) throw new Error(`sender keyed ${address} is ${sender.address}`);
      if (sender.txs.length === 0) throw new Error(`sender ${address} kept with no transactions`);
      if (sender.txs.length > this.limits.maxPerSender) throw new Error(`sender ${address} over maxPerSender`);
      let executable = 0;
      let spent = 0n;
      for (const [i, entry] of sender.txs.entries()) {
        if (entry.tx.from !== address) throw new Error(`transaction ${entry.tx.hash} queued under another sender`);
        if (this.byHash.get(entry.tx.hash) !== entry) throw new Error(`transaction ${entry.tx.hash} not indexed`);
        const previous = sender.txs[i - 1];
        if (previous !== undefined && previous.tx.nonce >= entry.tx.nonce) throw new Error(`${address} out of order`);
        if (entry.tx.nonce < sender.accountNonce) throw new Error(`${address} keeps a stale nonce`);
        if (executable === i && entry.tx.nonce === sender.accountNonce + BigInt(i)) executable++;
        spent += entry.cost;
        if (spent > sender.balance) throw new Error(`${address} keeps transactions it cannot pay for`);
        count++;
        bytes += entry.bytes;
      }
      if (executable !== sender.executable)
        throw new Error(`${address} executable ${sender.executable} != ${executable}`);
    }
    if (count !== this.byHash.size) throw new Error(`index holds ${this.byHash.size}, queues ${count}`);
    if (bytes !== this.bytes) throw new Error(`sizeBytes ${this.bytes}, queues hold ${bytes}`);
    if (count > this.limits.maxCount || bytes > this.limits.maxBytes) throw new Error("pool over its limits");
  }

  private checkFee(tx: DecodedTx): AddResult | null {
    const baseFee = this.deps.baseFee();
    if (tx.maxFeePerGas >= baseFee) return null;
    return refuse("fee_too_low", `max fee per gas ${tx.maxFeePerGas} is below the base fee ${baseFee}`);
  }

  private admit(tx: DecodedTx, accountNonce: bigint, balance: bigint): AddResult {
    const limits = this.limits;
    if (tx.nonce < accountNonce)
      return refuse("nonce_too_low", `nonce ${tx.nonce} is below the account's ${accountNonce}`);
    const highest = accountNonce + BigInt(limits.maxNonceGap);
    if (tx.nonce > highest) {
      return refuse(
        "nonce_gap",
        `nonce ${tx.nonce} is more than ${limits.maxNonceGap} ahead of the account's ${accountNonce}`,
      );
    }
    const sender = this.senders.get(tx.from);
    const txs = sender?.txs ?? [];
    const index = lowerBound(txs, tx.nonce);
    const at = txs[index];
    const old = at !== undefined && at.tx.nonce === tx.nonce ? at : undefined;
    if (old !== undefined) {
      const bump = BigInt(100 + limits.minReplacementBumpPercent);
      // geth's thresholds: old * (100 + bump) / 100, rounded down, for both fee fields.
      const minFee = (old.tx.maxFeePerGas * bump) / 100n;
      const minTip = (old.tx.maxPriorityFeePerGas * bump) / 100n;
      if (tx.maxFeePerGas < minFee || tx.maxPriorityFeePerGas < minTip) {
        return refuse(
          "underpriced_replacement",
          `replacing nonce ${tx.nonce} needs max fee >= ${minFee} and tip >= ${minTip}, got ${tx.maxFeePerGas} and ${tx.maxPriorityFeePerGas}`,
        );
      }
    } else if (txs.length >= limits.maxPerSender) {
      return refuse("sender_full", `sender ${tx.from} already has ${txs.length} pooled transactions`);
    }
    const cost = tx.gasLimit * tx.maxFeePerGas + tx.value;
    let spent = 0n;
    for (let i = 0; i < index; i++) spent += (txs[i] as Entry).cost;
    if (spent + cost > balance) {
      return refuse(
        "insufficient_funds",
        `balance ${balance} does not cover ${cost} on top of ${spent} for the sender's lower nonces`,
      );
    }

    const bytes = tx.raw.length;
    const needCount = this.byHash.size + (old === undefined ? 1 : 0) - limits.maxCount;
    const needBytes = this.bytes + bytes - (old?.bytes ?? 0) - limits.maxBytes;
    let evicted: Entry[] = [];
    if (needCount > 0 || needBytes > 0) {
      const executable = tx.nonce <= accountNonce + BigInt(sender?.executable ?? 0);
      const plan = this.planEviction(tx, executable, needCount, needBytes);
      if (plan === null) {
        return refuse("pool_full", `pool is full and transaction ${tx.hash} does not outpay the cheapest evictable`);
      }
      evicted = plan;
    }

    for (const entry of evicted) this.evict(entry);
    const target = sender ?? this.createSender(tx.from, accountNonce, balance);
    if (old !== undefined) this.removeAt(target, index);
    const entry: Entry = {
      tx,
      bytes,
      seq: this.nextSeq++,
      cost,
      gas: Number(tx.gasLimit),
      maxFeeNum: safeNumber(tx.maxFeePerGas),
      tipCapNum: safeNumber(tx.maxPriorityFeePerGas),
    };
    target.txs.splice(index, 0, entry);
    this.byHash.set(tx.hash, entry);
    this.bytes += bytes;
    // A costlier replacement or a filled gap can leave later nonces unaffordable: those go (geth refuses the newcomer
    // instead; see docs/mempool.md).
    this.dropUnaffordable(target);
    this.touch(target);
    return { ok: true, hash: tx.hash, replaced: old?.tx.hash ?? null };
  }

  /**
   * The sender tails to evict so that the newcomer fits, cheapest first, or null if the newcomer does not outpay
   * every one of them. Read-only: the caller evicts. The newcomer's own sender is never a candidate (evicting its
   * tail would open a gap right below the newcomer, or evict the transaction being replaced).
   */
  private planEviction(tx: DecodedTx, executable: boolean, needCount: number, needBytes: number): Entry[] | null {
    const baseFee = this.deps.baseFee();
    if (baseFee !== this.evictBaseFee) this.rebuildEvictHeap(baseFee);
    const newcomer: TailNode = {
      sender: this.senders.get(tx.from) ?? this.placeholderSender(tx.from),
      version: -1,
      index: -1,
      executable,
      tip: effectiveTip(tx, baseFee),
      seq: Number.POSITIVE_INFINITY,
    };
    const setAside: TailNode[] = [];
    // Once a tail is chosen, the same sender's next-highest transaction becomes a candidate; those live here so the
    // shared heap is left as it was.
    const uncovered = new Heap<TailNode>(evictsBefore);
    const plan: Entry[] = [];
    let freedCount = 0;
    let freedBytes = 0;
    let feasible = true;
    while (freedCount < needCount || freedBytes < needBytes) {
      let top = this.evictHeap.peek();
      while (top !== undefined && (!this.isCurrent(top) || top.sender.address === tx.from)) {
        this.evictHeap.pop();
        if (this.isCurrent(top)) setAside.push(top);
        top = this.evictHeap.peek();
      }
      const alternative = uncovered.peek();
      let node: TailNode;
      if (top !== undefined && (alternative === undefined || evictsBefore(top, alternative))) {
        this.evictHeap.pop();
        setAside.push(top);
        node = top;
      } else if (alternative !== undefined) {
        uncovered.pop();
        node = alternative;
      } else {
        feasible = false;
        break;
      }
      if (!evictsBefore(node, newcomer)) {
        feasible = false;
        break;
      }
      const entry = node.sender.txs[node.index] as Entry;
      plan.push(entry);
      freedCount++;
      freedBytes += entry.bytes;
      if (node.index > 0) uncovered.push(this.tailNode(node.sender, node.index - 1));
    }
    for (const node of setAside) this.evictHeap.push(node);
    return feasible ? plan : null;
  }

  private evict(entry: Entry): void {
    const sender = this.senders.get(entry.tx.from);
    if (sender === undefined) throw new Error(`evicting ${entry.tx.hash} of an unknown sender`);
    const index = sender.txs.indexOf(entry);
    if (index !== sender.txs.length - 1) throw new Error(`evicting ${entry.tx.hash}, which is not its sender's tail`);
    this.removeAt(sender, index);
    this.touch(sender);
  }

  /** Applies a fresh account read: drops stale nonces and what the balance no longer covers. */
  private refresh(sender: Sender, accountNonce: bigint, balance: bigint): void {
    sender.accountNonce = accountNonce;
    sender.balance = balance;
    let stale = 0;
    while (stale < sender.txs.length && (sender.txs[stale] as Entry).tx.nonce < accountNonce) stale++;
    for (let i = stale - 1; i >= 0; i--) this.removeAt(sender, i);
    this.dropUnaffordable(sender);
    this.touch(sender);
  }

  // Costs are cumulative in nonce order: the first transaction the balance cannot cover, and all after it, go.
  private dropUnaffordable(sender: Sender): void {
    let spent = 0n;
    for (let i = 0; i < sender.txs.length; i++) {
      spent += (sender.txs[i] as Entry).cost;
      if (spent <= sender.balance) continue;
      for (let j = sender.txs.length - 1; j >= i; j--) this.removeAt(sender, j);
      return;
    }
  }

  /** Removes one entry from the indexes; the caller calls `touch` once it has finished with the sender. */
  private removeAt(sender: Sender, index: number): void {
    const entry = sender.txs[index];
    if (entry === undefined) throw new Error(`no transaction at index ${index} for ${sender.address}`);
    sender.txs.splice(index, 1);
    this.byHash.delete(entry.tx.hash);
    this.bytes -= entry.bytes;
  }

  /** After any change to a sender: recount its executable run, retire its old eviction node, forget it if empty. */
  private touch(sender: Sender): void {
    sender.version++;
    if (sender.txs.length === 0) {
      this.senders.delete(sender.address);
      return;
    }
    let executable = 0;
    while (
      executable < sender.txs.length &&
      (sender.txs[executable] as Entry).tx.nonce === sender.accountNonce + BigInt(executable)
    ) {
      executable++;
    }
    sender.executable = executable;
    this.evictHeap.push(this.tailNode(sender, sender.txs.length - 1));
    // Every change leaves a stale node behind; rebuilding when they outnumber live ones keeps the heap O(senders).
    if (this.evictHeap.length > 2 * this.senders.size + STALE_EVICTION_NODES_SLACK) {
      this.rebuildEvictHeap(this.evictBaseFee);
    }
  }

  private createSender(address: Hex, accountNonce: bigint, balance: bigint): Sender {
    const sender: Sender = { address, accountNonce, balance, txs: [], executable: 0, version: 0 };
    this.senders.set(address, sender);
    return sender;
  }

  private placeholderSender(address: Hex): Sender {
    return { address, accountNonce: 0n, balance: 0n, txs: [], executable: 0, version: -1 };
  }

  private tailNode(sender: Sender, index: number): TailNode {
    const entry = sender.txs[index] as Entry;
    return {
      sender,
      version: sender.version,
      index,
      executable: index < sender.executable,
      tip: effectiveTip(entry.tx, this.evictBaseFee),
      seq: entry.seq,
    };
  }

  private isCurrent(node: TailNode): boolean {
    return this.senders.get(node.sender.address) === node.sender && node.sender.version === node.version;
  }

  private rebuildEvictHeap(baseFee: bigint): void {
    this.evictBaseFee = baseFee;
    const nodes: TailNode[] = [];
    for (const sender of this.senders.values()) nodes.push(this.tailNode(sender, sender.txs.length - 1));
    this.evictHeap.reset(nodes);
  }

  private *sweepSenders(): Generator<Hex> {
    const limit = Math.min(RECHECK_SWEEP_SENDERS, this.senders.size);
    let restarted = false;
    let produced = 0;
    while (produced < limit) {
      this.sweep ??= this.senders.keys();
      const next = this.sweep.next();
      if (next.done === true) {
        this.sweep = null;
        if (restarted) return;
        restarted = true;
        continue;
      }
      produced++;
      yield next.value;
    }
  }

  private async readAccount(address: Hex): Promise<{ nonce: bigint; balance: bigint }> {
    for (let attempt = 0; attempt < MAX_ACCOUNT_READ_ATTEMPTS; attempt++) {
      while (this.committing !== null) await this.committing;
      const epoch = this.headEpoch;
      const read = await this.readFrom(this.accounts, address);
      if (epoch === this.headEpoch && this.committing === null) return read;
    }
    throw new MempoolError("head_race", `head moved during ${MAX_ACCOUNT_READ_ATTEMPTS} reads of ${address}`, {
      address,
    });
  }

  private async readFrom(accounts: AccountView, address: Hex): Promise<{ nonce: bigint; balance: bigint }> {
    try {
      if (accounts.account !== undefined) {
        const { nonce, balance } = await accounts.account(address);
        return { nonce, balance };
      }
      const [nonce, balance] = await Promise.all([accounts.nonce(address), accounts.balance(address)]);
      return { nonce, balance };
    } catch (cause) {
      throw new MempoolError("account_read_failed", `reading account ${address} failed`, { address, cause });
    }
  }
}
