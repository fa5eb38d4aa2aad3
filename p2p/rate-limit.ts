// Per-peer token buckets for inbound requests. Capacity equals the per-second rate, so a peer may burst one
// second's worth of requests and then sustain the rate. The table only holds admitted peers (the caller checks
// admission first), and entries are dropped when a peer disconnects or leaves the allow list.

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; updatedAtMs: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly maxPeers: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    if (!(ratePerSecond > 0)) throw new RangeError(`maxRequestsPerSecondPerPeer must be > 0: ${ratePerSecond}`);
  }

  /** Takes one token; false when the peer is over its rate. */
  take(peer: string): boolean {
    const now = this.nowMs();
    let bucket = this.buckets.get(peer);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxPeers) this.evictFull(now);
      // Over capacity even after eviction means many peers are actively requesting: refuse rather than grow.
      if (this.buckets.size >= this.maxPeers) return false;
      bucket = { tokens: this.ratePerSecond, updatedAtMs: now };
      this.buckets.set(peer, bucket);
    }
    const refilled = Math.min(
      this.ratePerSecond,
      bucket.tokens + (Math.max(0, now - bucket.updatedAtMs) / 1000) * this.ratePerSecond,
    );
    bucket.updatedAtMs = now;
    if (refilled < 1) {
      bucket.tokens = refilled;
      return false;
    }
    bucket.tokens = refilled - 1;
    return true;
  }

  forget(peer: string): void {
    this.buckets.delete(peer);
  }

  get size(): number {
    return this.buckets.size;
  }

  private evictFull(now: number): void {
    for (const [peer, bucket] of this.buckets) {
      const tokens = bucket.tokens + (Math.max(0, now - bucket.updatedAtMs) / 1000) * this.ratePerSecond;
      if (tokens >= this.ratePerSecond) this.buckets.delete(peer);
    }
  }
}

/**
 * Per-key concurrency slots (key = peer + protocol) for outbound requests. The serving side resets streams beyond
 * its per-connection limit; waiting for a slot here turns that into a short queue instead of a failed request.
 * Waiters are bounded by the caller's in-flight limit and leave the queue when their signal aborts.
 */
export class KeyedSlots {
  private readonly slots = new Map<string, { active: number; waiters: (() => void)[] }>();

  async acquire(key: string, limit: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = { active: 0, waiters: [] };
      this.slots.set(key, slot);
    }
    if (slot.active < limit) {
      slot.active++;
      return;
    }
    const waiting = slot;
    // The releasing request hands its slot over directly, so `active` stays unchanged when a waiter wakes.
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = waiting.waiters.indexOf(wake);
        if (i >= 0) waiting.waiters.splice(i, 1);
        reject(signal.reason);
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      waiting.waiters.push(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  release(key: string): void {
    const slot = this.slots.get(key);
    if (slot === undefined) throw new Error(`release of ${key} without acquire`);
    const next = slot.waiters.shift();
    if (next !== undefined) {
      next();
      return;
    }
    slot.active--;
    if (slot.active === 0) this.slots.delete(key);
  }

  get keys(): number {
    return this.slots.size;
  }
}
