// A bounded pool of opaque transaction payloads, gossiped and put into blocks in arrival order. It stands where the
// execution core's mempool (validation, nonces, fees) plugs in: the driver only needs `take` and `committed`.
import { type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import type { PayloadSource } from "./driver.ts";

export interface PoolLimits {
  readonly maxCount: number;
  readonly maxBytes: number;
  readonly maxTransactionBytes: number;
}

export type AddResult =
  | { readonly ok: true; readonly hash: Hex }
  | { readonly ok: false; readonly code: "known" | "too_large" | "full" };

export class OpaquePool implements PayloadSource {
  private readonly items = new Map<Hex, Uint8Array>();
  private bytes = 0;

  constructor(private readonly limits: PoolLimits) {}

  get size(): number {
    return this.items.size;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  add(tx: Uint8Array): AddResult {
    if (tx.length === 0 || tx.length > this.limits.maxTransactionBytes) return { ok: false, code: "too_large" };
    const hash = toHex(keccak256(tx));
    if (this.items.has(hash)) return { ok: false, code: "known" };
    // Full: refuse the newcomer rather than evict, so a flood cannot push out what is already queued.
    if (this.items.size >= this.limits.maxCount || this.bytes + tx.length > this.limits.maxBytes) {
      return { ok: false, code: "full" };
    }
    this.items.set(hash, tx);
    this.bytes += tx.length;
    return { ok: true, hash };
  }

  take(maxBytes: number, maxCount: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let bytes = 0;
    for (const tx of this.items.values()) {
      if (out.length >= maxCount || bytes + tx.length + 4 > maxBytes) break;
      out.push(tx);
      bytes += tx.length + 4;
    }
    return out;
  }

  committed(transactions: readonly Uint8Array[]): void {
    for (const tx of transactions) {
      const hash = toHex(keccak256(tx));
      const held = this.items.get(hash);
      if (held === undefined) continue;
      this.items.delete(hash);
      this.bytes -= held.length;
    }
  }
}
