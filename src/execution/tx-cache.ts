// A node decodes a transaction and recovers its sender when the pool admits it; the block that carries it a few
// hundred milliseconds later would pay for the same work again (~0.1-0.2 ms per transaction per node, sender
// recovery most of it). This cache remembers successful decodes by transaction hash, so block validation reuses
// them. Only successes are kept: a transaction that failed a check is decoded (and refused) again every time, and a
// block carrying transactions this node never saw gets every check. A hit is exactly what decoding would return:
// the checks are stateless, the hash is of the very bytes, and the bytes are compared besides.
import { bytesEqual, type Hex, toHex } from "../../consensus/bytes.ts";
import { fastKeccak256 } from "./keccak.ts";
import { type DecodedTx, decodeTransaction, type TxDecodeResult } from "./tx.ts";

/**
 * Entries kept by default: a little more than a pool's worth of transfers in flight (two full blocks of 1,428 plus
 * what waits). A decoded plain transfer holds about 0.9 KB of heap besides its raw bytes, so ~15 MB of transfers; a
 * transaction decoded through @ethereumjs/tx (a contract call) also keeps that object.
 */
export const DEFAULT_TX_DECODE_CACHE_ENTRIES = 16_384;

export interface TxDecodeCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly size: number;
}

export class TxDecodeCache {
  private readonly entries = new Map<Hex, DecodedTx>();
  private hits = 0;
  private misses = 0;

  constructor(
    readonly chainId: bigint,
    private readonly maxEntries: number = DEFAULT_TX_DECODE_CACHE_ENTRIES,
  ) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError(`maxEntries ${maxEntries} < 1`);
  }

  /**
   * decodeTransaction(raw, chainId), answered from the cache when these bytes decoded successfully before.
   * `knownHash`, when the caller already hashed `raw`, must be keccak256(raw).
   */
  decode(raw: Uint8Array, knownHash?: Hex): TxDecodeResult {
    const hash = knownHash ?? toHex(fastKeccak256(raw));
    const cached = this.entries.get(hash);
    if (cached !== undefined && bytesEqual(cached.raw, raw)) {
      this.hits++;
      // Refresh its place: the least recently used entry is the one evicted.
      this.entries.delete(hash);
      this.entries.set(hash, cached);
      return { ok: true, tx: cached };
    }
    this.misses++;
    const result = decodeTransaction(raw, this.chainId, hash);
    if (result.ok) this.remember(result.tx);
    return result;
  }

  /** Adds an already decoded transaction (for example one the node built a block from). */
  remember(tx: DecodedTx): void {
    if (tx.chainId !== this.chainId)
      throw new RangeError(`transaction of chain ${tx.chainId} in a ${this.chainId} cache`);
    this.entries.delete(tx.hash);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(tx.hash, tx);
  }

  /** Drops a transaction (committed: it will not be seen again, except in a replayed block, which decodes anew). */
  forget(hash: Hex): void {
    this.entries.delete(hash);
  }

  get stats(): TxDecodeCacheStats {
    return { hits: this.hits, misses: this.misses, size: this.entries.size };
  }
}
