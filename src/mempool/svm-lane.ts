// The pool's Solana lane: SVM entries (0x53 || Solana wire transaction, src/chain/block.ts) waiting for a block.
// Solana has no nonces: a transaction is unique by its first signature and lives while its recent blockhash is in the
// 150-block window. Admission checks what is cheap and mirrors the executor's "inapplicable" rules on the committed
// head (blockhash in the window, fee payer exists and holds the base fee, signature not processed, not pooled), so
// almost everything pooled is includable. Order: first come, first served (no priority fee ordering yet).
import { concatBytes, type Hex, toHex } from "../../consensus/bytes.ts";
import { SVM_TX_PREFIX } from "../chain/block.ts";
import { fastKeccak256 } from "../execution/keccak.ts";
import { LAMPORTS_PER_SIGNATURE } from "../execution/svm/account.ts";
import type { DecodedSvmTx } from "../execution/svm/tx.ts";
import { SvmDecodeCache } from "../execution/svm/tx-cache.ts";

/** The committed head as the lane sees it. */
export interface SvmHeadView {
  /** The blockhashes a transaction may name to be included in the next block. */
  window(): ReadonlySet<string>;
  /** Lamports of the account at the head; null when it does not exist (or is a reserved runtime account). */
  lamports(address: string): Promise<bigint | null>;
  /** The slot that processed this signature, if it is still in the replay window. */
  processedAt(signature: string): Promise<bigint | null>;
}

export interface SvmLaneLimits {
  readonly maxCount: number;
  /** Sum of entry sizes held at most. */
  readonly maxBytes: number;
}

export const DEFAULT_SVM_LANE_LIMITS: SvmLaneLimits = { maxCount: 20_000, maxBytes: 32 * 1024 * 1024 };

export type SvmAddRefusalCode =
  | "malformed"
  | "unsupported_type"
  | "bad_signature"
  | "too_large"
  | "stale_blockhash"
  | "unknown_payer"
  | "insufficient_funds"
  | "already_processed"
  | "known"
  | "pool_full";

export type SvmAddResult =
  | { readonly ok: true; readonly hash: Hex; readonly signature: string }
  | { readonly ok: false; readonly code: SvmAddRefusalCode; readonly message: string };

interface LaneEntry {
  readonly tx: DecodedSvmTx;
  readonly bytes: number;
}

export class SvmLane {
  /** By first signature, in arrival order (Map order). */
  private readonly entries = new Map<string, LaneEntry>();
  private bytes = 0;
  readonly decoder: SvmDecodeCache;

  constructor(
    private readonly limits: SvmLaneLimits,
    private head: SvmHeadView,
    decoder?: SvmDecodeCache,
  ) {
    if (!Number.isSafeInteger(limits.maxCount) || limits.maxCount < 1) throw new RangeError("maxCount must be >= 1");
    if (!Number.isSafeInteger(limits.maxBytes) || limits.maxBytes < 1) throw new RangeError("maxBytes must be >= 1");
    this.decoder = decoder ?? new SvmDecodeCache();
  }

  get size(): number {
    return this.entries.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  has(signature: string): boolean {
    return this.entries.has(signature);
  }

  /** Admits an SVM entry (0x53 || wire bytes). Never throws on bad input; a failing head read throws. */
  async add(entry: Uint8Array): Promise<SvmAddResult> {
    if (entry[0] !== SVM_TX_PREFIX) throw new RangeError("not an SVM entry");
    const decoded = this.decoder.decode(entry.subarray(1));
    if (!decoded.ok) {
      const code = decoded.code === "unsupported" ? "unsupported_type" : decoded.code;
      return refuse(code, `SVM transaction: ${decoded.message}`);
    }
    const tx = decoded.tx;
    const early = this.precheck(tx, entry.length);
    if (early !== null) return early;
    const processed = await this.head.processedAt(tx.signature);
    if (processed !== null)
      return refuse("already_processed", `transaction ${tx.signature} was processed in slot ${processed}`);
    const payer = tx.accounts[0] as string;
    const lamports = await this.head.lamports(payer);
    if (lamports === null) return refuse("unknown_payer", `fee payer ${payer} has no account`);
    const fee = LAMPORTS_PER_SIGNATURE * BigInt(tx.numSignatures);
    if (lamports < fee) {
      return refuse("insufficient_funds", `fee payer ${payer} holds ${lamports} lamports, the fee is ${fee}`);
    }
    // The reads awaited: the pool (and the window) may have moved meanwhile.
    const late = this.precheck(tx, entry.length);
    if (late !== null) return late;
    this.entries.set(tx.signature, { tx, bytes: entry.length });
    this.bytes += entry.length;
    return { ok: true, hash: toHex(fastKeccak256(entry)), signature: tx.signature };
  }

  private precheck(tx: DecodedSvmTx, bytes: number): SvmAddResult | null {
    if (this.entries.has(tx.signature)) return refuse("known", `transaction ${tx.signature} is already pooled`);
    if (!this.head.window().has(tx.recentBlockhash)) {
      return refuse("stale_blockhash", `blockhash ${tx.recentBlockhash} is not among the recent blockhashes`);
    }
    if (this.entries.size >= this.limits.maxCount || this.bytes + bytes > this.limits.maxBytes) {
      return refuse("pool_full", `the SVM lane holds ${this.entries.size} transactions, ${this.bytes} bytes`);
    }
    return null;
  }

  /** Transactions for the next block, in arrival order, within the byte and count budgets. */
  pending(opts: { readonly maxBytes: number; readonly maxCount: number }): DecodedSvmTx[] {
    const out: DecodedSvmTx[] = [];
    const window = this.head.window();
    let bytesLeft = opts.maxBytes;
    for (const { tx, bytes } of this.entries.values()) {
      if (out.length >= opts.maxCount || bytesLeft < 1 + 64) break;
      if (bytes > bytesLeft || !window.has(tx.recentBlockhash)) continue;
      out.push(tx);
      bytesLeft -= bytes;
    }
    return out;
  }

  /** Drops transactions (included in a block, or found inapplicable while building). */
  drop(signatures: Iterable<string>): void {
    for (const signature of signatures) {
      const entry = this.entries.get(signature);
      if (entry === undefined) continue;
      this.entries.delete(signature);
      this.bytes -= entry.bytes;
      this.decoder.forget(entry.tx.raw);
    }
  }

  /** A block was committed: its transactions go, and so does everything whose blockhash left the window. */
  onCommitted(included: readonly string[], head: SvmHeadView): void {
    this.head = head;
    this.drop(included);
    const window = head.window();
    const expired: string[] = [];
    for (const [signature, { tx }] of this.entries) if (!window.has(tx.recentBlockhash)) expired.push(signature);
    this.drop(expired);
  }
}

/** The block entry of a decoded transaction. */
export function svmEntryOf(tx: DecodedSvmTx): Uint8Array {
  return concatBytes(Uint8Array.of(SVM_TX_PREFIX), tx.raw);
}

function refuse(code: SvmAddRefusalCode, message: string): SvmAddResult {
  return { ok: false, code, message };
}
