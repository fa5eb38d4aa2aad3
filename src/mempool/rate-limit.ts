// Per-peer token buckets for transaction admission. A peer that floods is refused before any decoding or signature
// recovery, so a flood costs us a map lookup per message; the node turns repeated refusals into a peer score penalty.

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface TokenBucketOptions {
  /** Sustained admissions per second per peer. */
  readonly ratePerSecond: number;
  /** Largest burst a quiet peer may send at once. */
  readonly burst: number;
  /** Buckets kept at most; the network is permissioned, so this is far above the expected peer count. */
  readonly maxPeers: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly options: TokenBucketOptions,
    private readonly nowMs: () => number,
  ) {
    if (!(options.ratePerSecond > 0) || !Number.isFinite(options.ratePerSecond)) {
      throw new RangeError(`ratePerSecond must be a positive finite number, got ${options.ratePerSecond}`);
    }
    if (!(options.burst >= 1) || !Number.isFinite(options.burst)) {
      throw new RangeError(`burst must be >= 1, got ${options.burst}`);
    }
    if (!Number.isInteger(options.maxPeers) || options.maxPeers < 1) {
      throw new RangeError(`maxPeers must be a positive integer, got ${options.maxPeers}`);
    }
  }

  get trackedPeers(): number {
    return this.buckets.size;
  }

  /** Takes one token for `peer`; false when the peer is over its rate. */
  take(peer: string): boolean {
    const now = this.nowMs();
    let bucket = this.buckets.get(peer);
    if (bucket === undefined) {
      if (this.buckets.size >= this.options.maxPeers) this.prune(now);
      bucket = { tokens: this.options.burst, updatedMs: now };
      this.buckets.set(peer, bucket);
    } else {
      this.refill(bucket, now);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private refill(bucket: Bucket, now: number): void {
    // A clock that steps backwards must not mint tokens nor freeze the bucket forever.
    const elapsedMs = Math.max(0, now - bucket.updatedMs);
    bucket.tokens = Math.min(this.options.burst, bucket.tokens + (elapsedMs * this.options.ratePerSecond) / 1000);
    bucket.updatedMs = now;
  }

  // A full bucket carries no memory (a new one starts full), so dropping those loses nothing. If every tracked peer is
  // mid-burst, the oldest entries go: at worst a peer among thousands gets a fresh burst.
  private prune(now: number): void {
    for (const [peer, bucket] of this.buckets) {
      this.refill(bucket, now);
      if (bucket.tokens >= this.options.burst) this.buckets.delete(peer);
    }
    for (const peer of this.buckets.keys()) {
      if (this.buckets.size < this.options.maxPeers) break;
      this.buckets.delete(peer);
    }
  }
}
