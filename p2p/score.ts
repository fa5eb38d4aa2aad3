// Our own peer score: the only thing that disconnects and bans peers. Gossipsub keeps its internal score (mesh
// management) but it never bans; this one is driven by explicit rejects (gossip verdicts, rejected requests and the
// node's report()) so the penalty for "served a bad certificate" is the same as for "sent an invalid vote".
// Pure bookkeeping with an injected clock: the Network carries out the disconnect.

export interface ScoreParams {
  /** Subtracted from the score for every reject. */
  readonly rejectPenalty: number;
  /** At or below this score the peer is disconnected and banned. Negative. */
  readonly disconnectBelow: number;
  /** How long the connection gater refuses a banned peer. */
  readonly banMs: number;
  /** Linear recovery toward 0, so an occasional reject from a flaky peer is forgotten. */
  readonly decayPerSecond: number;
}

export const DEFAULT_SCORE_PARAMS: ScoreParams = {
  rejectPenalty: 10,
  disconnectBelow: -50,
  banMs: 60_000,
  decayPerSecond: 1,
};

export function resolveScoreParams(partial: Partial<ScoreParams> | undefined): ScoreParams {
  const params = { ...DEFAULT_SCORE_PARAMS, ...partial };
  if (!(params.rejectPenalty > 0)) throw new RangeError(`rejectPenalty must be > 0, got ${params.rejectPenalty}`);
  if (!(params.disconnectBelow < 0)) throw new RangeError(`disconnectBelow must be < 0, got ${params.disconnectBelow}`);
  if (!(params.banMs >= 0)) throw new RangeError(`banMs must be >= 0, got ${params.banMs}`);
  if (!(params.decayPerSecond >= 0)) throw new RangeError(`decayPerSecond must be >= 0, got ${params.decayPerSecond}`);
  return params;
}

interface Entry {
  score: number;
  updatedAtMs: number;
}

export type PenaltyOutcome =
  | { readonly banned: false; readonly score: number }
  | { readonly banned: true; readonly score: number; readonly untilMs: number };

export class PeerScores {
  private readonly entries = new Map<string, Entry>();
  private readonly bans = new Map<string, number>();

  constructor(
    private readonly params: ScoreParams,
    private readonly maxPeers: number,
    private readonly nowMs: () => number = Date.now,
  ) {}

  score(peer: string): number {
    const entry = this.entries.get(peer);
    return entry === undefined ? 0 : this.decayed(entry, this.nowMs());
  }

  /** Applies one reject. A peer that crosses disconnectBelow is banned and its score reset, so it starts from 0. */
  penalize(peer: string): PenaltyOutcome {
    const now = this.nowMs();
    const entry = this.entries.get(peer);
    const score = (entry === undefined ? 0 : this.decayed(entry, now)) - this.params.rejectPenalty;
    if (score <= this.params.disconnectBelow) {
      this.entries.delete(peer);
      const untilMs = now + this.params.banMs;
      this.ban(peer, untilMs);
      return { banned: true, score, untilMs };
    }
    if (entry === undefined && this.entries.size >= this.maxPeers) this.prune(now);
    // Still full: every tracked peer is negative. Keep the worse picture rather than grow without bound.
    if (entry === undefined && this.entries.size >= this.maxPeers) return { banned: false, score };
    this.entries.set(peer, { score, updatedAtMs: now });
    return { banned: false, score };
  }

  isBanned(peer: string): boolean {
    const until = this.bans.get(peer);
    if (until === undefined) return false;
    if (until > this.nowMs()) return true;
    this.bans.delete(peer);
    return false;
  }

  bannedUntilMs(peer: string): number | undefined {
    return this.isBanned(peer) ? this.bans.get(peer) : undefined;
  }

  forget(peer: string): void {
    this.entries.delete(peer);
    this.bans.delete(peer);
  }

  /** Drops recovered scores and expired bans; called periodically so the maps only hold peers that matter. */
  prune(now = this.nowMs()): void {
    for (const [peer, entry] of this.entries) if (this.decayed(entry, now) >= 0) this.entries.delete(peer);
    for (const [peer, until] of this.bans) if (until <= now) this.bans.delete(peer);
  }

  get trackedPeers(): number {
    return this.entries.size;
  }

  private ban(peer: string, untilMs: number): void {
    if (!this.bans.has(peer) && this.bans.size >= this.maxPeers) this.prune();
    // Bans are for admitted peers only (the caller checks), so maxPeers bounds them; overflow means a broken caller.
    if (!this.bans.has(peer) && this.bans.size >= this.maxPeers) throw new Error(`ban table full (${this.maxPeers})`);
    this.bans.set(peer, untilMs);
  }

  private decayed(entry: Entry, now: number): number {
    const elapsedS = Math.max(0, now - entry.updatedAtMs) / 1000;
    return Math.min(0, entry.score + elapsedS * this.params.decayPerSecond);
  }
}
