// The SVM counterpart of ../tx-cache.ts: the pool verifies a Solana transaction's signatures once at admission, and
// the block that carries it reuses that work. Successes only, keyed by keccak256 of the wire bytes, bytes compared on
// a hit, least recently used evicted: a hit is exactly what decodeSvmTransaction would return.
import { bytesEqual, type Hex, toHex } from "../../../consensus/bytes.ts";
import { fastKeccak256 } from "../keccak.ts";
import { type DecodedSvmTx, decodeSvmTransaction, type SvmDecodeResult } from "./tx.ts";

/** A decoded transaction holds well under 2 KB: a few MB at most. */
export const DEFAULT_SVM_DECODE_CACHE_ENTRIES = 8_192;

export class SvmDecodeCache {
  private readonly entries = new Map<Hex, DecodedSvmTx>();
  hits = 0;
  misses = 0;

  constructor(private readonly maxEntries: number = DEFAULT_SVM_DECODE_CACHE_ENTRIES) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError(`maxEntries ${maxEntries} < 1`);
  }

  /** decodeSvmTransaction(wire), from the cache when these bytes decoded before. */
  decode(wire: Uint8Array): SvmDecodeResult {
    const key = toHex(fastKeccak256(wire));
    const cached = this.entries.get(key);
    if (cached !== undefined && bytesEqual(cached.raw, wire)) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, cached);
      return { ok: true, tx: cached };
    }
    this.misses++;
    const result = decodeSvmTransaction(wire);
    if (result.ok) {
      if (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
      this.entries.set(key, result.tx);
    }
    return result;
  }

  /** Drops a committed transaction's entry. */
  forget(wire: Uint8Array): void {
    this.entries.delete(toHex(fastKeccak256(wire)));
  }

  get size(): number {
    return this.entries.size;
  }
}
