// The consensus driver: one serial loop feeds the pure state machine (consensus/machine.ts) with verified messages,
// timer events and the answers to its requests, and carries out its actions with real I/O: building blocks, signing
// through the safety guard, persisting safety data with sync before a vote or proposal leaves the process,
// broadcasting, committing blocks with their certificates, scheduling timeouts.
//
// The driver contract (docs/consensus.md) is the one the simulator (test/sim/simulator.ts) checks over thousands of
// seeds: persist mark + lock + proof-of-lock + the signed vote before it leaves; after a restart resume the height at
// the persisted round with the persisted lock and feed back the own proposal, the proof-of-lock and the own votes;
// when stalled, fetch what peers hold for this height (the relay rules); buffer the next height; sync when further behind.
//
// Signatures are verified before messages reach the loop (in the gossip validators, see verifier.ts), so the loop
// only orders and applies them.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import {
  buildCertificate,
  type Certificate,
  certificateSigners,
  decodeCertificate,
  verifyCertificate,
} from "../../consensus/certificate.ts";
import {
  type Action,
  type ConsensusState,
  countedVotesOf,
  type Input,
  initialState,
  type LockState,
  NO_LOCK,
  proposalsOf,
  step,
  type TimeoutParams,
  type TimeoutStep,
  voteAddsNothing,
  voteCounts,
  votesFor,
} from "../../consensus/machine.ts";
import { checkSign, type SigningMark, type SignStep, signedAfter } from "../../consensus/safety.ts";
import { proposalDigest, voteDigestOf } from "../../consensus/signing.ts";
import type {
  Evidence,
  Proposal,
  SignatureScheme,
  SignedProposal,
  SignedVote,
  Signer,
  ValidatorSet,
  Vote,
  VoteType,
} from "../../consensus/types.ts";
import { indexOfAddress, validatorAddress } from "../../consensus/validator-set.ts";
import { verifyVoteSignature } from "../../consensus/wire.ts";
import { type Block, blamesProposer, blockHash, decodeBlock, decodeBlockHead, problem } from "../chain/block.ts";
import type { ChainStore, SafetyRecord } from "../storage/chain-store.ts";
import { ClockWatch } from "./clock-watch.ts";
import type { BlockExecutor, DecidingSets } from "./executor.ts";
import { failpoint } from "./failpoints.ts";
import type { Logger } from "./log.ts";
import type { Membership } from "./membership.ts";
import type { HeightStateResponse } from "./messages.ts";
import type { NodeMetrics } from "./metrics.ts";

/** The driver's outputs to the network; the node wires them to gossip topics and sync requests. */
export interface Outbox {
  publishProposal(proposal: SignedProposal, block: Uint8Array): void;
  publishVote(vote: SignedVote): void;
  publishCertificate(certificate: Certificate): void;
  publishEvidence(evidence: Evidence): void;
  /** The driver makes no progress at `height`: ask peers for their head and the height's messages. */
  stalled(height: number, round: number): void;
  /** The subnet has committed `height` (a certificate or a peer's status says so): catch up, from `peer` if given. */
  behind(height: number, peer: string | undefined): void;
  committed(height: number, hash: Hex): void;
  /**
   * The validator with BLS key `proposerKey` signed a proposal of an invalid block (`code`): a fault of its own, not of
   * whoever relayed it (relays cannot tell), so its peer is the one to score down.
   */
  invalidProposal?(proposerKey: Hex, height: number, code: string): void;
  /** The head reached `params.haltHeight`: the driver does nothing more; the node should stop. */
  halted?(height: number): void;
}

export interface Clock {
  nowMs(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  nowMs: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface DriverParams {
  readonly chainId: bigint;
  readonly genesisHash: Hex;
  readonly genesisTimeMs: number;
  readonly timeouts: TimeoutParams;
  /** No progress for this long: fetch the height's messages from peers. */
  readonly rebroadcastMs: number;
  /** Minimum time between the starts of two heights (CometBFT's timeout_commit); 0 = as fast as consensus. */
  readonly blockIntervalMs: number;
  /**
   * With nothing to include (`DriverModules.work` says so), the next height starts only this long after the last one
   * started, or as soon as work or a peer's message of that height arrives (CometBFT's create_empty_blocks_interval).
   * 0 = start at once, empty or not.
   */
  readonly emptyBlockIntervalMs: number;
  /**
   * Upper bound of the adaptive propose timeout: the propose timeout grows to 1.5 x the slowest of the last
   * round-0 proposal delays this node saw (height start -> proposal), up to this. Absent or not above the configured
   * propose timeout: no adaptation.
   */
  readonly proposeTimeoutMaxMs?: number;
  readonly maxRoundsAhead: number;
  readonly maxBufferedMessages: number;
  readonly maxQueuedEvents: number;
  /**
   * Doppelganger protection: after seeing a message signed by this validator's key that its safety record cannot
   * account for (another process holds the key), sign nothing until this long after it was seen.
   * 0 or absent: such messages are logged and counted, and signing goes on.
   */
  readonly doppelgangerWaitMs?: number;
  /** Commit up to this height, then halt (outbox.halted): nothing is signed or committed above it. */
  readonly haltHeight?: number | null;
}

/** What the next block could carry, for the driver to skip empty heights while there is nothing. */
export interface PendingWork {
  pending(): boolean;
  /** Calls `listener` when something new arrives; returns the unsubscribe. */
  onWork(listener: () => void): () => void;
}

export interface DriverModules {
  readonly store: ChainStore;
  /** Null for a read-only replica. */
  readonly signer: Signer | null;
  readonly scheme: SignatureScheme;
  readonly outbox: Outbox;
  readonly executor: BlockExecutor;
  /** Where the set of height + 1 comes from (the L1 registry's epochs, or the genesis set for good). */
  readonly membership: Membership;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  /** Whether a block would carry anything (the mempool); without it every height starts at once. */
  readonly work?: PendingWork;
}

/**
 * What applyCommits did: how many it committed, and whether it stopped because this node cannot check the next one yet
 * (its L1 view lags: not the peer's fault) rather than because it is invalid.
 */
export interface CommitsApplied {
  readonly applied: number;
  readonly waiting: boolean;
}

/** The state machine's actions that sign something. */
type SigningAction = Extract<Action, { kind: "propose" | "vote" }>;

/** One validator's vote slot: a second vote there with another value is an equivocation. */
function stepKey(vote: Vote): string {
  return `${vote.height}:${vote.round}:${vote.type}:${vote.validatorIndex}`;
}

/** A verified commit: block bytes whose hash the certificate certifies, for the next height. */
export interface CommitCandidate {
  readonly block: Uint8Array;
  readonly certificate: Certificate;
}

type Event =
  | {
      readonly kind: "proposal";
      readonly proposal: SignedProposal;
      readonly block: Block;
      readonly bytes: Uint8Array;
      /** Clock time the proposal reached the driver (ClockWatch's sample). */
      readonly receivedMs: number;
    }
  | { readonly kind: "vote"; readonly vote: SignedVote }
  | { readonly kind: "certificate"; readonly certificate: Certificate; readonly from: string | undefined }
  | {
      readonly kind: "commits";
      readonly commits: readonly CommitCandidate[];
      readonly done: (result: CommitsApplied) => void;
    }
  | { readonly kind: "timeout"; readonly height: number; readonly round: number; readonly step: TimeoutStep }
  | { readonly kind: "startHeight"; readonly height: number }
  | { readonly kind: "tick" }
  /** Doppelganger protection's pause may have ended: sign what it held back. */
  | { readonly kind: "resumeSigning" };

/** Round-0 proposal delays the adaptive propose timeout looks at. */
const PROPOSAL_DELAYS_KEPT = 8;

/** A proposal this node cannot judge yet (its L1 view trails) is checked again this often. */
const L1_RECHECK_MS = 250;
/** At most this many checks again per block (L1 view or early timestamp). */
const MAX_RECHECKS = 8;
/**
 * A proposal stamped ahead of this node's clock by more than the bound is checked again once it is within it, if that
 * is at most this far off; beyond, the height ends long before (a certificate brings the block if +2/3 took it).
 */
const MAX_EARLY_WAIT_MS = 30_000;
/** Clock offsets beyond this are reported (the refusal bound is 5 s). */
const CLOCK_WARN_MS = 1_000;
const CLOCK_LOG_EVERY_MS = 60_000;

/** Events the loop never drops: losing one would stall the node. */
const ESSENTIAL: ReadonlySet<Event["kind"]> = new Set(["timeout", "startHeight", "commits", "tick", "resumeSigning"]);

export class DriverError extends Error {
  override readonly name = "DriverError";
  constructor(
    readonly code: "not_started" | "stopped" | "persist_failed" | "invariant",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface KnownBlock {
  readonly block: Block;
  readonly bytes: Uint8Array;
  readonly valid: boolean;
}

export interface DriverStatus {
  readonly height: number;
  readonly round: number;
  readonly step: string;
  readonly headHeight: number;
  readonly headHash: Hex | null;
  readonly validator: boolean;
  readonly address: Hex | null;
  readonly lastCommitMs: number | null;
  /** Doppelganger protection: signing paused until this clock time (ms); null when not paused. */
  readonly signingPausedUntilMs: number | null;
  /** This node's clock against the other validators' (ClockWatch, > 0 ahead); null until it can be told. */
  readonly clockOffsetMs: number | null;
}

export class ConsensusDriver {
  private cs: ConsensusState;
  private readonly address: Hex | null;
  private readonly queue: Event[] = [];
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private stopped = false;
  private started = false;
  private readonly timers = new Set<unknown>();
  /** Blocks seen at the current height, by hash (bounded by maxProposalsPerRound x rounds). */
  private blocks = new Map<Hex, KnownBlock>();
  /** Proposals of the current height checked again (L1 view, early timestamp): value -> checks so far. */
  private rechecks = new Map<Hex, number>();
  /** Other validators' clocks against this node's, from their proposals. */
  private readonly clockWatch = new ClockWatch(CLOCK_WARN_MS);
  /** Proposals of the current height sampled for clockWatch. */
  private clockSampled = new Set<Hex>();
  /** When the clock of "self" or of a proposer (address) was last reported, by `<who>:<ahead|behind>`. */
  private readonly clockLoggedMs = new Map<string, number>();
  private earlyLoggedMs = Number.NEGATIVE_INFINITY;
  /** The head reached params.haltHeight (halt()). */
  private halted = false;
  /** The set clockWatch was last pruned to. */
  private clockSetId: Hex | null = null;
  /** Verified proposals and votes of the next height, replayed when it starts. */
  private buffered: Event[] = [];
  private safety: SafetyRecord;
  /** The deciding sets of the next height, once known (they may wait on the L1 view). */
  private setsCache: { forHeight: number; sets: DecidingSets } | null = null;
  private pendingDecision: { height: number; round: number; value: Hex; precommits: readonly SignedVote[] } | null =
    null;
  private heightStartedMs = 0;
  /** Recent heights a peer relayed a certificate of (publishCertificate). */
  private readonly certificatesSeen = new Set<number>();
  /** Pending fallback announcements of this node's certificates (publishCertificate); they outlive their height. */
  private readonly announceTimers = new Set<unknown>();
  /**
   * Votes of the current height left unverified because they added nothing (redundantVote), by validator and step.
   * One is checked only if the same validator's conflicting vote arrives: the evidence needs both.
   */
  private skippedVotes = new Map<string, SignedVote>();
  /** performance.now() when the last commit (and its follow-up) finished, for the timings in the debug log. */
  private committedAt = 0;
  private lastBuildMs = 0;
  /** Round-0 proposal delays seen here lately (height start -> proposal), newest last; the height of the last one. */
  private readonly proposalDelaysMs: number[] = [];
  private proposalDelayHeight = -1;
  private lastCommitMs: number | null = null;
  private lastProgress = "";
  private tickHandle: unknown = null;
  /** Set while the next height waits for work (emptyBlockIntervalMs). */
  private idleWait: { readonly height: number; readonly handle: unknown; readonly unsubscribe: () => void } | null =
    null;
  private fatal: ((error: Error) => void) | null = null;
  /** Doppelganger protection: nothing is signed before this time (clock ms); see foreignSignature. */
  private signingPausedUntilMs = 0;
  private doppelgangerLog = { atMs: Number.NEGATIVE_INFINITY, unlogged: 0 };
  /**
   * The proposal and votes of the current height the pause held back, in order: signed when it ends (the state
   * machine took them as sent, and without them a round this node must complete would wait forever).
   */
  private deferred: SigningAction[] = [];
  /** The furthest position (height, round, step) at which another process signed with this key: never signed here. */
  private foreignMark: SigningMark | null = null;
  private resumeTimer: unknown = null;

  constructor(
    private readonly params: DriverParams,
    private readonly m: DriverModules,
  ) {
    this.address = m.signer === null ? null : validatorAddress(m.signer.publicKey);
    this.cs = initialState({
      chainId: params.chainId,
      self: this.address,
      timeouts: params.timeouts,
      maxRoundsAhead: params.maxRoundsAhead,
      maxProposalsPerRound: 4,
    });
    this.safety = emptySafety();
  }

  /** Loads the head and the safety record and starts (or resumes) the next height. `onFatal` gets broken invariants and disk failures. */
  async start(onFatal: (error: Error) => void): Promise<void> {
    this.fatal = onFatal;
    const store = this.m.store;
    const saved = await store.loadSafety();
    const height = store.headHeight + 1;
    if (saved !== null) this.safety = saved;
    await this.checkRecentCertificates();
    const mark = this.safety.mark;
    const resume = mark !== null && mark.height === height && this.safety.height === height;
    const halt = this.params.haltHeight ?? null;
    if (halt !== null && height > halt) {
      // Started again at or past the halt height: halt at once, before anything is resumed or signed.
      this.started = true;
      this.halt(height - 1);
      return;
    }
    if (resume) {
      // Re-execute the bodies kept with the safety record: a decision on one of them needs its state writes.
      const preload: KnownBlock[] = [];
      for (const b of this.safety.blocks) {
        const block = decodeBlock(b.block);
        const problem = await this.validateNext(block, b.block, height, true);
        preload.push({ block, bytes: b.block, valid: problem === null });
      }
      this.m.log.info(
        { height, round: mark.round, step: mark.step, locked: this.safety.lock.lockedValue },
        "resuming height from persisted safety data",
      );
      await this.startHeight(height, { round: mark.round, lock: this.safety.lock }, preload);
      const own = this.safety.ownProposal;
      if (own !== null && own.height === height) await this.feed({ kind: "proposal", proposal: own, valid: true });
      for (const v of this.safety.proofOfLock) await this.feed({ kind: "vote", vote: v });
      for (const v of this.safety.ownVotes) if (v.height === height) await this.feed({ kind: "vote", vote: v });
    } else {
      await this.startHeight(height);
    }
    // Events that arrived while starting (gossip flows as soon as the network is up) waited in the queue; only now,
    // with the height set up, may the loop handle them, one at a time.
    this.started = true;
    if (!this.draining && this.queue.length > 0) this.drained = this.drain();
    if (!this.halted) this.scheduleTick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.endIdleWait();
    for (const t of [...this.timers, ...this.announceTimers]) this.m.clock.clearTimeout(t);
    this.timers.clear();
    this.announceTimers.clear();
    if (this.tickHandle !== null) this.m.clock.clearTimeout(this.tickHandle);
    if (this.resumeTimer !== null) this.m.clock.clearTimeout(this.resumeTimer);
    // Let an event in progress (possibly a synced write) finish before the store closes.
    while (this.draining) await new Promise((r) => setTimeout(r, 5));
  }

  /** Resolves once no event is queued or being handled, with whether it had to wait (the simulation steps on this). */
  async idle(): Promise<boolean> {
    let waited = false;
    while (this.draining) {
      waited = true;
      await this.drained;
    }
    return waited;
  }

  // ---- inputs from the network (already signature-checked) ----

  onProposal(proposal: SignedProposal, block: Block, bytes: Uint8Array): void {
    this.enqueue({ kind: "proposal", proposal, block, bytes, receivedMs: this.m.clock.nowMs() });
  }

  onVote(vote: SignedVote): void {
    this.enqueue({ kind: "vote", vote });
  }

  onCertificate(certificate: Certificate, from: string | undefined): void {
    this.certificateSeen(certificate.height);
    this.enqueue({ kind: "certificate", certificate, from });
  }

  /** Applies synced commits in order; resolves with how many were committed. Each must be for the next height. */
  applyCommits(commits: readonly CommitCandidate[]): Promise<CommitsApplied> {
    return new Promise((resolve) => this.enqueue({ kind: "commits", commits, done: resolve }));
  }

  // ---- reads for peers and operators ----

  /** Called after each event this driver handled: its counts may have changed (src/node/vote-gate.ts rechecks). */
  onEventHandled: (() => void) | null = null;
  private powersCache: { readonly id: Hex; readonly powers: readonly bigint[] } | null = null;

  /** The height being decided, its round, and its set's power by validator index (VoteGateView.position). */
  votePosition(): { height: number; round: number; powers: readonly bigint[]; total: bigint } | null {
    const set = this.cs.validatorSet;
    if (!this.started || this.stopped || set === null) return null;
    if (this.powersCache?.id !== set.id) {
      this.powersCache = { id: set.id, powers: set.validators.map((v) => v.votingPower) };
    }
    return {
      height: this.cs.height,
      round: this.cs.round,
      powers: this.powersCache.powers,
      total: set.totalVotingPower,
    };
  }

  /** consensus/machine.ts voteCounts at the height being decided (VoteGateView.counts). */
  voteCounts(round: number, type: VoteType): { voters: Iterable<number>; senders: ReadonlySet<number> } {
    return voteCounts(this.cs, round, type);
  }

  /** The validator set that signs `height`, for heights this node can check now: the current and the next one. */
  validatorSetFor(height: number): ValidatorSet | undefined {
    const head = this.m.store.headHeight;
    if (height === head + 1) return this.m.store.validatorSetFor(height);
    if (height === head + 2) {
      const cached = this.setsCache;
      return cached?.forHeight === head + 1 ? cached.sets.next : undefined;
    }
    return undefined;
  }

  get headHeight(): number {
    return this.m.store.headHeight;
  }

  status(): DriverStatus {
    return {
      height: this.cs.height,
      round: this.cs.round,
      step: this.cs.step,
      headHeight: this.m.store.headHeight,
      headHash: this.m.store.headHash(),
      validator: this.cs.selfIndex >= 0,
      address: this.address,
      lastCommitMs: this.lastCommitMs,
      signingPausedUntilMs: this.m.clock.nowMs() < this.signingPausedUntilMs ? this.signingPausedUntilMs : null,
      clockOffsetMs: this.clockWatch.selfOffsetMs(),
    };
  }

  /** What this node holds at `height` for a stalled peer: proposals with blocks and votes of recent and POL rounds. */
  heightState(height: number, maxBytes: number): HeightStateResponse {
    const cs = this.cs;
    if (height !== cs.height) return { proposals: [], votes: [] };
    const rounds = new Set<number>();
    for (const r of [cs.round, cs.round - 1, cs.lock.validRound, cs.lock.lockedRound]) if (r >= 0) rounds.add(r);
    const proposals: { proposal: SignedProposal; block: Uint8Array }[] = [];
    const votes: SignedVote[] = [];
    let bytes = 0;
    for (const r of rounds) {
      for (const type of ["prevote", "precommit"] as const) {
        for (const v of countedVotesOf(cs, r, type)) {
          if (bytes + 145 > maxBytes) return { proposals, votes };
          votes.push(v);
          bytes += 145;
        }
      }
    }
    for (const r of rounds) {
      for (const p of proposalsOf(cs, r)) {
        const known = this.blocks.get(p.value);
        if (known === undefined || bytes + known.bytes.length + 160 > maxBytes || proposals.length >= 16) continue;
        proposals.push({ proposal: p, block: known.bytes });
        bytes += known.bytes.length + 160;
      }
    }
    return { proposals, votes };
  }

  // ---- the loop ----

  private enqueue(e: Event): void {
    if (this.stopped) return;
    if (this.queue.length >= this.params.maxQueuedEvents && !ESSENTIAL.has(e.kind)) {
      this.m.metrics.droppedEvents.inc({ kind: e.kind });
      return;
    }
    this.queue.push(e);
    if (!this.draining && this.started) this.drained = this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let e = this.queue.shift(); e !== undefined && !this.stopped; e = this.queue.shift()) {
        await this.handle(e);
        this.onEventHandled?.();
      }
    } catch (error) {
      this.stopped = true;
      const err = error instanceof Error ? error : new Error(String(error));
      this.m.log.fatal({ err }, "consensus driver stopped");
      this.fatal?.(err);
    } finally {
      this.draining = false;
    }
  }

  private async handle(e: Event): Promise<void> {
    if (!this.started) throw new DriverError("not_started", "event before start()");
    if (this.halted) {
      // Nothing above the halt height is committed; the peers that served it are not at fault.
      if (e.kind === "commits") e.done({ applied: 0, waiting: true });
      return;
    }
    switch (e.kind) {
      case "proposal":
        return this.handleProposal(e);
      case "vote":
        return this.handleVote(e.vote);
      case "certificate":
        return this.handleCertificate(e.certificate, e.from);
      case "commits": {
        let applied = 0;
        let waiting = false;
        for (const c of e.commits) {
          const outcome = await this.applyCommit(c);
          waiting = outcome === "waiting";
          if (outcome !== "committed") break;
          applied++;
        }
        e.done({ applied, waiting });
        return;
      }
      case "timeout":
        this.m.log.debug({ height: e.height, round: e.round, step: e.step, at: this.cs.step }, "timeout");
        if (e.height === this.cs.height)
          await this.feed({ kind: "timeout", height: e.height, round: e.round, step: e.step });
        return;
      case "startHeight":
        if (e.height === this.m.store.headHeight + 1 && this.cs.height < e.height) await this.startHeight(e.height);
        return;
      case "tick":
        this.onTick();
        return;
      case "resumeSigning":
        return this.resumeSigning();
      default: {
        const never: never = e;
        throw new DriverError("invariant", `unhandled event ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Every rebroadcastMs: pull the height's messages from peers when nothing moved, and also when only rounds moved
   * (round > 0 and the same height as the last tick). Rounds that keep failing mean this node lacks something others
   * have, typically the prevotes of a proof-of-lock that went to other peers (an equivocator can send each version of
   * its vote to different peers): advancing rounds is not progress.
   */
  private onTick(): void {
    this.scheduleTick();
    const cs = this.cs;
    const progress = `${cs.height}/${cs.round}/${cs.step}`;
    const sameHeight = this.lastProgress.startsWith(`${cs.height}/`);
    // Waiting for work between heights is not a stall: nobody has anything to send.
    const stalled = this.idleWait === null && (progress === this.lastProgress || (sameHeight && cs.round > 0));
    this.lastProgress = progress;
    if (stalled) this.m.outbox.stalled(cs.height, cs.round);
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.tickHandle = this.m.clock.setTimeout(() => this.enqueue({ kind: "tick" }), this.params.rebroadcastMs);
  }

  private async handleProposal(e: Extract<Event, { kind: "proposal" }>): Promise<void> {
    const { proposal, block, bytes } = e;
    const current = this.m.store.headHeight + 1;
    if (proposal.height < current) return;
    if (proposal.round === 0 && proposal.height === this.cs.height && this.proposalDelayHeight !== proposal.height) {
      this.noteProposalDelay(proposal.height);
    }
    const pending = this.pendingDecision;
    if (pending !== null && pending.height === proposal.height && pending.value === proposal.value) {
      // The body of a block +2/3 already precommitted: execute it (the state comes from it) and commit it now.
      const problem = await this.validateNext(block, bytes, proposal.height, true);
      if (problem !== null) {
        this.m.log.error(
          { height: proposal.height, code: problem.code, reason: problem.message },
          "decided block fails validation here",
        );
        return;
      }
      this.rememberBlock(block, bytes, true);
      await this.decide(pending.height, pending.round, pending.value, pending.precommits);
      return;
    }
    if (proposal.height > current || this.cs.step === "commit" || this.cs.height !== current) {
      this.buffer(e);
      return;
    }
    let valid = this.blocks.get(proposal.value)?.valid;
    let validateMs: number | undefined;
    if (valid === undefined) {
      this.observeClock(proposal, block, e.receivedMs);
      const started = performance.now();
      const verdict = await this.checkProposedBlock(proposal, block, bytes);
      validateMs = Math.round(performance.now() - started);
      if (verdict === "waiting") {
        this.recheckLater(e, L1_RECHECK_MS);
        return;
      }
      if (verdict === "early") {
        // Acceptable once this node's clock reaches the timestamp less the bound; prevote nil meanwhile if the
        // round's timeout comes first. The round is lost, the block is not judged invalid and nobody is blamed.
        const waitMs = block.header.timestampMs - this.m.executor.maxClockDriftMs - this.m.clock.nowMs() + 1;
        if (waitMs <= MAX_EARLY_WAIT_MS) this.recheckLater(e, Math.max(1, waitMs));
        return;
      }
      valid = verdict === "valid";
      this.rememberBlock(block, bytes, valid);
    }
    this.m.log.debug(
      { height: proposal.height, round: proposal.round, proposer: proposal.proposerIndex, valid, validateMs },
      "proposal",
    );
    if (proposal.proposerIndex === this.cs.selfIndex) this.checkOwnProposal(proposal);
    await this.feed({ kind: "proposal", proposal, valid });
  }

  private async handleVote(vote: SignedVote): Promise<void> {
    const current = this.m.store.headHeight + 1;
    if (vote.height < current) return;
    if (vote.height > current || this.cs.step === "commit" || this.cs.height !== current) {
      this.buffer({ kind: "vote", vote });
      return;
    }
    const skipped = this.skippedVotes.size === 0 ? undefined : this.skippedVotes.get(stepKey(vote));
    if (skipped !== undefined && skipped.value !== vote.value) {
      // Half of an equivocation was left unverified: check it now and count it first, so that the state machine
      // sees both votes and produces the evidence.
      this.skippedVotes.delete(stepKey(vote));
      const set = this.cs.validatorSet;
      if (set !== null && verifyVoteSignature(this.params.chainId, set, skipped, this.m.scheme)) {
        await this.feed({ kind: "vote", vote: skipped });
      }
    }
    if (vote.validatorIndex === this.cs.selfIndex) this.checkOwnVote(vote);
    await this.feed({ kind: "vote", vote });
  }

  private buffer(e: Event): void {
    if (this.idleWait !== null && eventHeight(e) === this.idleWait.height) {
      this.endIdleWait();
      this.enqueue({ kind: "startHeight", height: eventHeight(e) });
    }
    if (this.buffered.length >= this.params.maxBufferedMessages) {
      this.m.metrics.droppedEvents.inc({ kind: "buffer_full" });
      return;
    }
    this.buffered.push(e);
  }

  private async handleCertificate(certificate: Certificate, from: string | undefined): Promise<void> {
    const head = this.m.store.headHeight;
    if (certificate.height <= head) return;
    if (certificate.height > head + 1) {
      this.m.outbox.behind(certificate.height, from);
      return;
    }
    // The next height is certified: commit it now if this node has the block (it missed the precommits), else sync.
    const known = this.blocks.get(certificate.blockHash);
    if (known === undefined) {
      this.m.outbox.behind(certificate.height, from);
      return;
    }
    await this.applyCommit({ block: known.bytes, certificate });
  }

  /** Commits a certified block for the next height without running consensus for it (catch-up). */
  private async applyCommit(c: CommitCandidate): Promise<"committed" | "refused" | "waiting"> {
    const height = this.m.store.headHeight + 1;
    const cert = c.certificate;
    if (cert.height !== height || this.halted) return "refused";
    const sets = await this.setsFor(height);
    if (sets === null) return "waiting";
    const set = sets.set;
    const verdict = verifyCertificate(cert, set, { scheme: this.m.scheme, chainId: this.params.chainId });
    if (!verdict.ok) {
      this.m.log.warn({ height, code: verdict.code, reason: verdict.message }, "refused a certificate");
      return "refused";
    }
    let block: Block;
    try {
      block = decodeBlock(c.block);
    } catch (error) {
      this.m.log.warn({ height, err: error }, "refused a certified block that does not decode");
      return "refused";
    }
    if (blockHash(block.header) !== cert.blockHash) {
      this.m.log.warn({ height }, "refused a block whose hash the certificate does not certify");
      return "refused";
    }
    // Executed like any block (the state comes from it); only the clock bound is waived: +2/3 accepted it already.
    const problem = await this.m.executor.validate(block, c.block, sets, true);
    if (problem?.code === "l1_origin_not_confirmed") return "waiting";
    if (problem !== null) {
      // More than 2/3 of the stake certified a block this node computes differently: a local fault (or a subnet
      // one). Never commit state it did not compute; say why.
      this.m.log.error(
        { height, code: problem.code, reason: problem.message },
        "certified block fails validation here",
      );
      return "refused";
    }
    this.m.metrics.syncedBlocks.inc();
    await this.commit(height, block, c.block, cert, sets);
    await this.startHeight(height + 1);
    return "committed";
  }

  // ---- feeding the state machine and carrying out its actions ----

  private async feed(first: Input): Promise<void> {
    const inputs: Input[] = [first];
    for (let input = inputs.shift(); input !== undefined; input = inputs.shift()) {
      if (this.stopped) return;
      const t = step(this.cs, input);
      this.cs = t.state;
      for (const action of t.actions) {
        if (this.stopped) return;
        await this.act(action, inputs);
      }
    }
    this.m.metrics.round.set(this.cs.round);
  }

  private async act(action: Action, inputs: Input[]): Promise<void> {
    switch (action.kind) {
      case "getValue": {
        const started = performance.now();
        const value = await this.buildBlock(action.height);
        this.lastBuildMs = Math.round(performance.now() - started);
        // No value (the L1 view cannot say who decides the next height yet): propose nothing; timeoutPropose
        // makes everyone prevote nil and the next round tries again.
        if (value !== null) inputs.push({ kind: "proposeValue", height: action.height, round: action.round, value });
        return;
      }
      case "propose":
        return this.propose(action.proposal, inputs);
      case "vote":
        return this.vote(action.vote, action.lock, action.proofOfLock, inputs);
      case "scheduleTimeout": {
        const { height, round, step: s } = action;
        const durationMs = s === "propose" ? this.proposeTimeoutMs(action.durationMs) : action.durationMs;
        const handle = this.m.clock.setTimeout(() => {
          this.timers.delete(handle);
          this.enqueue({ kind: "timeout", height, round, step: s });
        }, durationMs);
        this.timers.add(handle);
        return;
      }
      case "decide":
        return this.decide(action.height, action.round, action.value, action.precommits);
      case "evidence": {
        const e = action.evidence;
        this.m.metrics.evidence.inc({ kind: e.kind });
        if (await this.m.store.saveEvidence(e)) this.m.outbox.publishEvidence(e);
        this.m.log.warn({ kind: e.kind, height: e.first.height, round: e.first.round }, "equivocation evidence");
        return;
      }
      default: {
        const never: never = action;
        throw new DriverError("invariant", `unhandled action ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * The set deciding `height` (the next height) and the one deciding height + 1, which the block header names and the
   * commit records; null while the L1 view cannot answer what the last commit changed (src/node/membership.ts).
   */
  private async setsFor(height: number): Promise<DecidingSets | null> {
    const cached = this.setsCache;
    if (cached?.forHeight === height) return cached.sets;
    const set = this.m.store.validatorSetFor(height);
    const next = await this.m.membership.nextSet(height, set);
    if ("unknown" in next) {
      this.m.log.warn({ height, reason: next.unknown }, "the next validator set waits on L1");
      return null;
    }
    // The store may have moved on while waiting for L1: cache only what is still the next height.
    if (this.m.store.headHeight + 1 === height) this.setsCache = { forHeight: height, sets: { set, next } };
    return { set, next };
  }

  private async validateNext(block: Block, bytes: Uint8Array, height: number, certified: boolean) {
    const sets = await this.setsFor(height);
    if (sets === null) return problem("l1_origin_not_confirmed", "the next validator set waits on L1");
    return this.m.executor.validate(block, bytes, sets, certified);
  }

  private async buildBlock(height: number): Promise<Hex | null> {
    const sets = await this.setsFor(height);
    if (sets === null) return null;
    const proposer = this.address ?? (`0x${"00".repeat(20)}` as Hex);
    const built = await this.m.executor.build(height, proposer, sets);
    if (built === null) return null;
    return this.rememberBlock(built.block, built.bytes, true);
  }

  private async propose(proposal: Proposal, inputs: Input[]): Promise<void> {
    const signer = this.m.signer;
    if (signer === null) return;
    const known = this.blocks.get(proposal.value);
    if (known === undefined) {
      // Re-proposing a validValue whose body this node lost: proposing it would only earn nil prevotes.
      this.m.log.warn(
        { height: proposal.height, round: proposal.round, value: proposal.value },
        "no body for the value to propose",
      );
      return;
    }
    if (this.paused({ kind: "propose", proposal })) return;
    const digest = proposalDigest(this.params.chainId, proposal);
    const mark = this.checkSign(proposal.height, proposal.round, "proposal", digest);
    if (mark === null) return;
    const signed: SignedProposal = { ...proposal, signature: signer.sign(digest) };
    // A new height starts a new record: carrying the last height's votes and lock over would grow the record by
    // every height this validator proposes in a row (until it no longer fits) and restore a stale lock on restart.
    const base = this.safety.height === proposal.height ? this.safety : { ...emptySafety(), lock: this.cs.lock };
    await this.persist({ ...base, mark, height: proposal.height, ownProposal: signed }, proposal.height);
    failpoint("proposing", proposal.height);
    this.m.outbox.publishProposal(signed, known.bytes);
    this.m.log.debug(
      { height: proposal.height, round: proposal.round, value: proposal.value, buildMs: this.lastBuildMs },
      "proposed",
    );
    this.m.metrics.proposals.inc();
    inputs.push({ kind: "proposal", proposal: signed, valid: true });
  }

  private async vote(vote: Vote, lock: LockState, proofOfLock: readonly SignedVote[], inputs: Input[]): Promise<void> {
    const signer = this.m.signer;
    if (signer === null) return;
    if (this.paused({ kind: "vote", vote, lock, proofOfLock })) return;
    const digest = voteDigestOf(this.params.chainId, vote);
    const mark = this.checkSign(vote.height, vote.round, vote.type, digest);
    if (mark === null) return;
    const signed: SignedVote = { ...vote, signature: signer.sign(digest) };
    const sameHeight = this.safety.height === vote.height;
    const ownVotes = [...(sameHeight ? this.safety.ownVotes.filter((v) => v.round >= vote.round - 1) : []), signed];
    await this.persist(
      {
        mark,
        height: vote.height,
        lock,
        proofOfLock,
        ownVotes,
        ownProposal: sameHeight ? this.safety.ownProposal : null,
        blocks: [],
      },
      vote.height,
    );
    this.m.outbox.publishVote(signed);
    failpoint(vote.type === "prevote" ? "after-prevote" : "after-precommit", vote.height);
    this.m.metrics.votes.inc({ type: vote.type });
    inputs.push({ kind: "vote", vote: signed });
  }

  /** Null (and counted) when signing would be unsafe; the state machine never asks for that unless state was lost. */
  private checkSign(
    height: number,
    round: number,
    s: "proposal" | "prevote" | "precommit",
    digest: Uint8Array,
  ): SigningMark | null {
    const foreign = this.foreignMark;
    if (foreign !== null && !signedAfter(foreign, height, round, s) && (this.params.doppelgangerWaitMs ?? 0) > 0) {
      // Another process signed at this position or later: a signature here could be the second of an equivocation.
      this.m.metrics.signingRefusals.inc({ code: "doppelganger" });
      this.m.log.warn(
        { height, round, step: s, foreign: `${foreign.height}/${foreign.round}/${foreign.step}` },
        "refused to sign where another process signed with this key",
      );
      return null;
    }
    const check = checkSign(this.safety.mark, height, round, s, digest);
    if (check.ok) return check.mark;
    this.m.metrics.signingRefusals.inc({ code: check.refusal.code });
    // Expected after a restart (the machine resumes a step it had already signed); anything else is a bug upstream.
    this.m.log.warn({ height, round, step: s, refusal: check.refusal.code }, "refused to sign");
    return null;
  }

  // ---- doppelganger protection ----
  //
  // A valid signature by this validator's key on a message its own safety record cannot account for (a position after
  // its mark, or another value where the record holds its own vote or proposal) was made by another process holding
  // the key: a second instance started by mistake, a copy of the keys on a restored machine, a data directory wiped
  // while the old process still ran. Signing on could equivocate, so the validator signs nothing until
  // doppelgangerWaitMs after it last saw such a message and follows the chain meanwhile: while the other process
  // runs, its signatures keep coming and the pause goes on; once it is gone, this one signs again. A restart with an intact record sees its own signatures
  // as its own, so restarting a whole subnet at once never stalls it. Modelled on the doppelganger protection of
  // Ethereum consensus clients, without their listening period at every start.

  /**
   * While the pause lasts: keeps `action` to sign when it ends (counted as refused) and returns true. The first one
   * held back arms the timer that resumes.
   */
  private paused(action: SigningAction): boolean {
    const now = this.m.clock.nowMs();
    if (now >= this.signingPausedUntilMs) return false;
    this.m.metrics.signingRefusals.inc({ code: "doppelganger" });
    const height = action.kind === "vote" ? action.vote.height : action.proposal.height;
    this.deferred = [
      ...this.deferred.filter((a) => (a.kind === "vote" ? a.vote : a.proposal).height === height),
      action,
    ];
    if (this.resumeTimer === null) {
      this.m.log.warn(
        { height, pausedForMs: this.signingPausedUntilMs - now },
        "signing paused: this validator's key signs elsewhere (doppelganger protection)",
      );
      this.armResume();
    }
    return true;
  }

  private armResume(): void {
    // Not one of the height's timers (startHeight clears those): the pause outlives heights. stop() clears it.
    this.resumeTimer = this.m.clock.setTimeout(
      () => {
        this.resumeTimer = null;
        this.enqueue({ kind: "resumeSigning" });
      },
      Math.max(0, this.signingPausedUntilMs - this.m.clock.nowMs()),
    );
  }

  /** The pause ended (unless a newer message extended it): signs the held-back proposal and votes of this height. */
  private async resumeSigning(): Promise<void> {
    if (this.m.clock.nowMs() < this.signingPausedUntilMs) {
      if (this.resumeTimer === null) this.armResume();
      return;
    }
    const held = this.deferred.filter((a) => (a.kind === "vote" ? a.vote : a.proposal).height === this.cs.height);
    this.deferred = [];
    this.m.log.warn(
      { height: this.cs.height, held: held.length },
      "signing resumes: no message of this key signed elsewhere lately",
    );
    const inputs: Input[] = [];
    for (const action of held) await this.act(action, inputs);
    for (const input of inputs) await this.feed(input);
  }

  /**
   * Counts, logs (at most every 10 s) and pauses signing for a message of this key signed elsewhere (at `atMs`: a
   * certificate's block time, a vote's arrival).
   */
  private foreignSignature(
    source: "certificate" | "vote" | "proposal",
    height: number,
    round: number,
    step: SignStep,
    atMs: number,
  ): void {
    this.m.metrics.doppelgangerSignatures.inc({ source });
    if (signedAfter(this.foreignMark, height, round, step)) {
      this.foreignMark = { height, round, step, digest: new Uint8Array(0) };
    }
    const wait = this.params.doppelgangerWaitMs ?? 0;
    const now = this.m.clock.nowMs();
    // From now, not from when it was signed: a node catching up sees old blocks, but the process that signed them may
    // be signing the heights it has not reached yet.
    if (wait > 0 && now + wait > this.signingPausedUntilMs) {
      this.signingPausedUntilMs = now + wait;
      this.m.metrics.signingPausedUntil.set(Math.ceil(this.signingPausedUntilMs / 1000));
    }
    const log = this.doppelgangerLog;
    if (now - log.atMs < 10_000) {
      log.unlogged++;
      return;
    }
    this.m.log.error(
      {
        source,
        height,
        round,
        step,
        signedAgoMs: Math.max(0, now - atMs),
        pausedForMs: Math.max(0, this.signingPausedUntilMs - now),
        alsoSeen: log.unlogged,
      },
      "another process signs with this validator's consensus key: stop it; this node signs nothing until it is gone",
    );
    this.doppelgangerLog = { atMs: now, unlogged: 0 };
  }

  private checkOwnVote(vote: SignedVote): void {
    if (this.m.signer === null) return;
    const s = this.safety;
    const other =
      s.height === vote.height &&
      s.ownVotes.some((v) => v.round === vote.round && v.type === vote.type && v.value !== vote.value);
    if (other || signedAfter(s.mark, vote.height, vote.round, vote.type)) {
      this.foreignSignature("vote", vote.height, vote.round, vote.type, this.m.clock.nowMs());
    }
  }

  private checkOwnProposal(proposal: SignedProposal): void {
    if (this.m.signer === null) return;
    const own = this.safety.ownProposal;
    const other =
      own !== null &&
      own.height === proposal.height &&
      own.round === proposal.round &&
      (own.value !== proposal.value || own.polRound !== proposal.polRound);
    if (other || signedAfter(this.safety.mark, proposal.height, proposal.round, "proposal")) {
      this.foreignSignature("proposal", proposal.height, proposal.round, "proposal", this.m.clock.nowMs());
    }
  }

  /** Whether `cert` (of `set`) carries this validator's precommit and its record cannot account for it. */
  private foreignInCertificate(cert: Certificate, set: ValidatorSet): boolean {
    if (this.address === null) return false;
    const index = indexOfAddress(set, this.address);
    if (index < 0 || !certificateSigners(cert, set).includes(index)) return false;
    const s = this.safety;
    const other =
      s.height === cert.height &&
      s.ownVotes.some((v) => v.type === "precommit" && v.round === cert.round && v.value !== cert.blockHash);
    return other || signedAfter(s.mark, cert.height, cert.round, "precommit");
  }

  /** The certificate of a height committed here, and the one of its parent the block carries. */
  private async checkCommittedCertificates(
    height: number,
    block: Block,
    certificate: Certificate,
    set: ValidatorSet,
  ): Promise<void> {
    if (this.m.signer === null) return;
    const at = block.header.timestampMs;
    if (this.foreignInCertificate(certificate, set)) {
      this.foreignSignature("certificate", height, certificate.round, "precommit", at);
    }
    // The parent's: only worth decoding when the record has signed nothing at this height (catching up, or a new
    // record), as any position at height - 1 is before a mark at this height.
    const mark = this.safety.mark;
    if (block.lastCertificate.length === 0 || (mark !== null && mark.height >= height)) return;
    const parent = decodeCertificate(block.lastCertificate);
    const parentSet = await this.m.store.getValidatorSet(parent.validatorSetId);
    if (parentSet !== undefined && this.foreignInCertificate(parent, parentSet)) {
      this.foreignSignature("certificate", parent.height, parent.round, "precommit", at);
    }
  }

  /**
   * At start: the certificates of the newest 256 stored heights that the record cannot account for (a wiped data
   * directory restored from elsewhere, a state sync). Stops at the first height the mark covers: after a plain restart,
   * at once.
   */
  private async checkRecentCertificates(): Promise<void> {
    if (this.m.signer === null) return;
    const store = this.m.store;
    const mark = this.safety.mark;
    const lowest = Math.max(1, store.headHeight - 255);
    for (let h = store.headHeight; h >= lowest && (mark === null || mark.height <= h); h--) {
      const [bytes, cert] = await Promise.all([store.getBlock(h), store.getCertificate(h)]);
      if (bytes === undefined || cert === undefined) break;
      const set = await store.getValidatorSet(cert.validatorSetId);
      if (set !== undefined && this.foreignInCertificate(cert, set)) {
        this.foreignSignature("certificate", h, cert.round, "precommit", decodeBlockHead(bytes).header.timestampMs);
      }
    }
  }

  /** Writes the safety record with sync; the message it guards leaves only after this resolves. */
  private async persist(rec: SafetyRecord, height: number): Promise<void> {
    const keep = new Set<Hex>();
    for (const v of [rec.lock.lockedValue, rec.lock.validValue, rec.ownProposal?.value ?? null])
      if (v !== null) keep.add(v);
    const blocks: { hash: Hex; block: Uint8Array }[] = [];
    for (const hash of keep) {
      const known = this.blocks.get(hash);
      if (known !== undefined) blocks.push({ hash, block: known.bytes });
    }
    const full: SafetyRecord = { ...rec, height, blocks };
    const started = performance.now();
    try {
      await this.m.store.saveSafety(full);
    } catch (cause) {
      throw new DriverError("persist_failed", "cannot persist consensus safety data: refusing to sign on", { cause });
    }
    this.m.metrics.persistSeconds.observe((performance.now() - started) / 1000);
    this.safety = full;
  }

  private async decide(height: number, round: number, value: Hex, precommits: readonly SignedVote[]): Promise<void> {
    const known = this.blocks.get(value);
    if (known === undefined) {
      // +2/3 precommitted a block this node never received: fetch it by height from a peer that committed it.
      this.pendingDecision = { height, round, value, precommits };
      this.m.outbox.behind(height, undefined);
      return;
    }
    const sets = await this.setsFor(height);
    if (sets === null) {
      // Only reachable if the L1 view forgot what it answered when this block was validated: decide again later.
      this.pendingDecision = { height, round, value, precommits };
      return;
    }
    const certificate = buildCertificate(this.params.chainId, sets.set, precommits, this.m.scheme);
    await this.commit(height, known.block, known.bytes, certificate, sets);
    this.publishCertificate(certificate, known.block.header.proposer === this.address);
    const work = this.m.work;
    if (this.params.emptyBlockIntervalMs > 0 && work !== undefined && !work.pending()) {
      this.waitForWork(height + 1, work);
    } else {
      this.scheduleStart(height + 1, this.params.blockIntervalMs);
    }
  }

  /**
   * One certificate per height on the wire, not one per validator: the validator that built the block publishes its
   * certificate at once; any other validator publishes its own only if no certificate of that height has reached it
   * from a peer within the precommit timeout (the builder crashed, or is cut off). Replicas and validators that
   * missed the precommits commit from whichever arrives.
   */
  private publishCertificate(certificate: Certificate, builtHere: boolean): void {
    if (builtHere) {
      this.m.outbox.publishCertificate(certificate);
      return;
    }
    // Not a height timer: the next height usually starts before it fires, and must not cancel it.
    const handle = this.m.clock.setTimeout(() => {
      this.announceTimers.delete(handle);
      if (!this.certificatesSeen.has(certificate.height)) this.m.outbox.publishCertificate(certificate);
    }, this.params.timeouts.precommitMs);
    this.announceTimers.add(handle);
  }

  /**
   * Whether `vote` can add nothing to what this node already counted (consensus/machine.ts voteAddsNothing). Such a
   * vote is kept aside unverified: should its validator's conflicting vote arrive, it is checked then (handleVote).
   */
  redundantVote(vote: SignedVote): boolean {
    // Kept aside or verified: a vote that could not be kept is checked like any other. A vote of this validator's own
    // index is always checked: it may be another process's (doppelganger protection).
    if (vote.validatorIndex === this.cs.selfIndex && this.address !== null) return false;
    if (!voteAddsNothing(this.cs, vote) || this.skippedVotes.size >= this.params.maxBufferedMessages) return false;
    this.skippedVotes.set(stepKey(vote), vote);
    return true;
  }

  /**
   * A peer relayed a certificate of `height` (verified or not: one that arrives after this node committed the height
   * is not checked). Holds back this node's own certificate of that height (publishCertificate).
   */
  certificateSeen(height: number): void {
    this.certificatesSeen.add(height);
    if (this.certificatesSeen.size > 256) {
      const floor = this.m.store.headHeight - 64;
      for (const h of this.certificatesSeen) if (h < floor) this.certificatesSeen.delete(h);
    }
  }

  /** Starts `height` once `intervalMs` has passed since the current height started (at once if it has). */
  private scheduleStart(height: number, intervalMs: number): void {
    const wait = intervalMs - (this.m.clock.nowMs() - this.heightStartedMs);
    if (wait <= 0) {
      // Through the queue, not a direct call: a validator that decides alone (one validator, or more than 2/3 of the
      // power) would otherwise run height after height inside this one event, starving gossip and never returning.
      this.enqueue({ kind: "startHeight", height });
      return;
    }
    const handle = this.m.clock.setTimeout(() => {
      this.timers.delete(handle);
      this.enqueue({ kind: "startHeight", height });
    }, wait);
    this.timers.add(handle);
  }

  /**
   * Nothing to include: starts `height` emptyBlockIntervalMs after the current height started, or blockIntervalMs
   * after it once work arrives, or at once when a peer's proposal or vote of `height` arrives (a peer had work: its
   * proposer's timeout is running).
   */
  private waitForWork(height: number, work: PendingWork): void {
    this.endIdleWait();
    const startAfter = (intervalMs: number) => {
      if (this.idleWait?.height !== height) return;
      this.endIdleWait();
      this.scheduleStart(height, intervalMs);
    };
    const idleMs = Math.max(this.params.blockIntervalMs, this.params.emptyBlockIntervalMs);
    const handle = this.m.clock.setTimeout(
      () => {
        this.timers.delete(handle);
        startAfter(idleMs);
      },
      idleMs - (this.m.clock.nowMs() - this.heightStartedMs),
    );
    this.timers.add(handle);
    const unsubscribe = work.onWork(() => startAfter(this.params.blockIntervalMs));
    this.idleWait = { height, handle, unsubscribe };
    this.m.metrics.idleWaits.inc();
  }

  private endIdleWait(): void {
    const w = this.idleWait;
    if (w === null) return;
    this.idleWait = null;
    w.unsubscribe();
    this.m.clock.clearTimeout(w.handle);
    this.timers.delete(w.handle);
  }

  private async commit(
    height: number,
    block: Block,
    bytes: Uint8Array,
    certificate: Certificate,
    sets: DecidingSets,
  ): Promise<void> {
    const hash = certificate.blockHash;
    if (block.header.nextValidatorSetId !== sets.next.id) {
      throw new DriverError("invariant", `committing height ${height} whose header names another next validator set`);
    }
    const extras = this.m.executor.commitExtras(hash);
    const storeStarted = performance.now();
    await this.m.store.commit({
      height,
      blockHash: hash,
      block: bytes,
      certificate,
      nextValidatorSet: sets.next,
      stateWrites: extras.stateWrites,
      receipts: extras.receipts,
      transactionHashes: extras.transactionHashes,
      ...(extras.parentCertificate === undefined ? {} : { parentCertificate: extras.parentCertificate }),
    });
    failpoint("mid-commit", height);
    this.pendingDecision = null;
    await this.checkCommittedCertificates(height, block, certificate, sets.set);
    const hookStarted = performance.now();
    await this.m.executor.committed(block, hash, certificate);
    this.committedAt = performance.now();
    const now = this.m.clock.nowMs();
    this.lastCommitMs = now;
    this.m.metrics.height.set(height);
    this.m.metrics.commits.inc();
    this.m.metrics.commitRounds.observe(certificate.round);
    this.m.metrics.heightSeconds.observe(Math.max(0, now - this.heightStartedMs) / 1000);
    this.m.metrics.blockTransactions.observe(block.transactions.length);
    this.m.log.info(
      {
        height,
        round: certificate.round,
        hash,
        txs: block.transactions.length,
        proposer: block.header.proposer,
        // Wall time of the durable write and of the follow-up (head, mempool): where a slow commit went.
        storeMs: Math.round(hookStarted - storeStarted),
        afterMs: Math.round(this.committedAt - hookStarted),
      },
      "committed",
    );
    this.m.outbox.committed(height, hash);
  }

  private async startHeight(
    height: number,
    recovered?: { round: number; lock: LockState },
    preload: readonly KnownBlock[] = [],
  ): Promise<void> {
    const halt = this.params.haltHeight ?? null;
    if (halt !== null && height > halt) {
      this.halt(height - 1);
      return;
    }
    this.endIdleWait();
    for (const t of this.timers) this.m.clock.clearTimeout(t);
    this.timers.clear();
    this.blocks = new Map(preload.map((k) => [blockHash(k.block.header), k]));
    this.rechecks = new Map();
    this.clockSampled = new Set();
    this.skippedVotes = new Map();
    this.heightStartedMs = this.m.clock.nowMs();
    // Learn the next two sets now: gossip checks of the height after this one need the second.
    await this.setsFor(height);
    this.m.log.debug(
      { height, buffered: this.buffered.length, sinceCommitMs: Math.round(performance.now() - this.committedAt) },
      "start height",
    );
    const validatorSet = this.m.store.validatorSetFor(height);
    if (validatorSet.id !== this.clockSetId) {
      this.clockSetId = validatorSet.id;
      const members = new Set(validatorSet.validators.map((v) => v.address.toLowerCase()));
      this.clockWatch.retain(members);
      for (const key of this.clockLoggedMs.keys()) {
        const who = key.slice(0, key.indexOf(":"));
        if (who !== "self" && !members.has(who)) this.clockLoggedMs.delete(key);
      }
    }
    await this.feed(
      recovered === undefined
        ? { kind: "startHeight", height, validatorSet }
        : { kind: "startHeight", height, validatorSet, recovered },
    );
    this.m.metrics.validator.set(indexOfAddress(validatorSet, this.address ?? "0x") >= 0 ? 1 : 0);
    const replay = this.buffered.filter((e) => eventHeight(e) === height);
    this.buffered = this.buffered.filter((e) => eventHeight(e) > height);
    for (const e of replay) await this.handle(e);
  }

  // ---- blocks ----

  /** Keeps a block of the current height (already decoded by whoever received or built it); returns its hash. */
  private rememberBlock(block: Block, bytes: Uint8Array, valid: boolean): Hex {
    const hash = blockHash(block.header);
    this.blocks.set(hash, { block, bytes, valid });
    return hash;
  }

  /**
   * "waiting" when this node cannot judge the block yet because its own L1 view trails the proposer's (its mirror
   * has not confirmed the block's L1 origin, or the next set waits on L1): not the proposer's fault, and not final.
   * "early" when its timestamp is ahead of this node's clock by more than the bound: acceptable later. A block refused
   * for what only this node's view says (its clock, its L1 head: `blamesProposer`) costs the round, not the proposer's
   * peer score: with the blame, one validator whose clock was behind scored down every proposer and banned them all.
   */
  private async checkProposedBlock(
    proposal: SignedProposal,
    block: Block,
    bytes: Uint8Array,
  ): Promise<"valid" | "invalid" | "waiting" | "early"> {
    const height = this.m.store.headHeight + 1;
    const problem = await this.validateNext(block, bytes, height, false);
    if (problem === null) return "valid";
    if (problem.code === "l1_origin_not_confirmed") {
      this.m.log.info({ height, reason: problem.message }, "proposal waits on this node's L1 view");
      return "waiting";
    }
    this.m.metrics.invalidBlocks.inc({ code: problem.code });
    if (problem.code === "timestamp_in_future") {
      // Every proposal is early while this node's clock is behind: one line per 10 s at warn, the rest at debug.
      const now = this.m.clock.nowMs();
      const loud = now - this.earlyLoggedMs >= 10_000;
      if (loud) this.earlyLoggedMs = now;
      this.m.log[loud ? "warn" : "debug"](
        {
          height,
          round: proposal.round,
          proposer: proposal.proposerIndex,
          aheadMs: block.header.timestampMs - now,
          boundMs: this.m.executor.maxClockDriftMs,
        },
        "proposal stamped ahead of this node's clock by more than the bound: not voted for until the clock reaches it",
      );
      return "early";
    }
    this.m.log.warn(
      { height, proposer: proposal.proposerIndex, code: problem.code, reason: problem.message },
      "invalid block proposed",
    );
    const proposer = this.m.store.validatorSetFor(height).validators[proposal.proposerIndex];
    if (proposer !== undefined && blamesProposer(problem.code)) {
      this.m.outbox.invalidProposal?.(toHex(proposer.publicKey), height, problem.code);
    }
    return "invalid";
  }

  /**
   * The head reached the configured halt height: from now on the driver ignores everything (nothing is signed, buffered
   * or committed above the head) and tells the node, which stops. Once.
   */
  private halt(head: number): void {
    if (this.halted) return;
    this.halted = true;
    this.endIdleWait();
    for (const t of this.timers) this.m.clock.clearTimeout(t);
    this.timers.clear();
    this.buffered = [];
    this.m.log.info({ head, haltHeight: this.params.haltHeight }, "halt height reached: committing nothing more");
    this.m.outbox.halted?.(head);
  }

  /**
   * Checks a proposal again after `delayMs`, a bounded number of times per block: its L1 origin is usually confirmed
   * here one mirror poll later; an early timestamp is acceptable at a known time. Meanwhile the round's propose
   * timeout runs as if no proposal had come (prevote nil), so a block that stays unverifiable costs at most the round,
   * and one verified in time is voted for. The timers end with the height.
   */
  private recheckLater(e: Extract<Event, { kind: "proposal" }>, delayMs: number): void {
    const value = e.proposal.value;
    const tries = this.rechecks.get(value) ?? 0;
    if (tries >= MAX_RECHECKS) return;
    this.rechecks.set(value, tries + 1);
    const handle = this.m.clock.setTimeout(() => {
      this.timers.delete(handle);
      this.enqueue(e);
    }, delayMs);
    this.timers.add(handle);
  }

  /**
   * Feeds ClockWatch the first sight of another validator's proposal of the height under way, and says what it makes
   * of the clocks (at most once a minute): this node's clock off from the others', or one proposer's.
   */
  private observeClock(proposal: SignedProposal, block: Block, receivedMs: number): void {
    const h = block.header;
    const head = this.m.executor.head;
    if (h.proposer === this.address || h.height !== head.height + 1 || this.clockSampled.has(proposal.value)) return;
    this.clockSampled.add(proposal.value);
    this.clockWatch.observe(h.proposer, h.timestampMs, head.timestampMs, receivedMs);
    const readings = this.clockWatch.readings();
    const self = this.clockWatch.selfOffsetMs(readings);
    if (self !== null) this.m.metrics.clockOffset.set(self / 1000);
    for (const r of readings) this.m.metrics.proposerClockOffset.set({ validator: r.validator }, r.offsetMs / 1000);
    const others = this.m.store.validatorSetFor(h.height).validators.length - (this.cs.selfIndex >= 0 ? 1 : 0);
    const verdict = this.clockWatch.verdict(Math.min(2, others), readings);
    if (verdict.kind === "ok") return;
    // Once a minute per culprit (this node's clock, or one proposer's) and direction.
    const culprit = `${verdict.kind === "self" ? "self" : verdict.validator}:${verdict.offsetMs > 0 ? "ahead" : "behind"}`;
    const now = this.m.clock.nowMs();
    if (now - (this.clockLoggedMs.get(culprit) ?? Number.NEGATIVE_INFINITY) < CLOCK_LOG_EVERY_MS) return;
    this.clockLoggedMs.set(culprit, now);
    const boundMs = this.m.executor.maxClockDriftMs;
    if (verdict.kind === "self") {
      this.m.log.error(
        { offsetMs: Math.round(verdict.offsetMs), proposers: verdict.proposers, boundMs },
        `this node's clock is ${describeOffset(verdict.offsetMs)} the other validators' (their proposals' timestamps against their arrival): fix its time synchronisation (NTP); past ${boundMs / 1000} s ${verdict.offsetMs < 0 ? "it refuses their blocks as early and votes nil" : "its own blocks are refused as early"}`,
      );
      return;
    }
    this.m.log.warn(
      {
        validator: verdict.validator,
        offsetMs: Math.round(verdict.offsetMs),
        comparedWith: verdict.comparedWith,
        boundMs,
      },
      `the clock of validator ${verdict.validator} is ${describeOffset(verdict.offsetMs)} ${verdict.comparedWith > 0 ? "the other proposers'" : "this node's"}: ${verdict.offsetMs > 0 ? `past ${boundMs / 1000} s its blocks are refused as early` : "its blocks carry the parent's time + 1 ms while its clock trails the chain's"}`,
    );
  }

  /**
   * The propose timeout to wait: the configured one (which grows with the round), or longer when round-0 proposals
   * have lately been arriving later than that. Under load a proposer starts its height late (it committed the last one
   * late) and builds slowly; with a fixed timeout every validator prevotes nil before its proposal arrives, the next
   * round's proposer builds a bigger block from a fuller pool, which arrives later still, and throughput collapses.
   * Waiting up to 1.5 x the slowest of the last delays (bounded by proposeTimeoutMaxMs) commits those blocks in round
   * 0. A proposer that is down costs that longer wait once per height it leads. Timeouts only bear on liveness.
   */
  private proposeTimeoutMs(configuredMs: number): number {
    const maxMs = this.params.proposeTimeoutMaxMs ?? 0;
    let ms = configuredMs;
    if (maxMs > configuredMs && this.proposalDelaysMs.length > 0) {
      ms = Math.min(maxMs, Math.max(configuredMs, Math.ceil(1.5 * Math.max(...this.proposalDelaysMs))));
    }
    this.m.metrics.proposeTimeoutSeconds.set(ms / 1000);
    return ms;
  }

  private noteProposalDelay(height: number): void {
    this.proposalDelayHeight = height;
    this.proposalDelaysMs.push(Math.max(0, this.m.clock.nowMs() - this.heightStartedMs));
    if (this.proposalDelaysMs.length > PROPOSAL_DELAYS_KEPT) this.proposalDelaysMs.shift();
  }

  /** Votes (any round) this driver holds for the current height, for tests and status. */
  votes(round: number, type: "prevote" | "precommit", value: Hex | null): SignedVote[] {
    return votesFor(this.cs, round, type, value);
  }
}

/** "3.2 s ahead of" / "3.2 s behind" for a clock offset in ms (> 0 ahead). */
function describeOffset(offsetMs: number): string {
  const s = (Math.abs(offsetMs) / 1000).toFixed(1);
  return offsetMs >= 0 ? `${s} s ahead of` : `${s} s behind`;
}

function eventHeight(e: Event): number {
  if (e.kind === "vote") return e.vote.height;
  if (e.kind === "proposal") return e.proposal.height;
  return 0;
}

function emptySafety(): SafetyRecord {
  return { mark: null, height: 0, lock: NO_LOCK, proofOfLock: [], ownVotes: [], ownProposal: null, blocks: [] };
}
