// The Tendermint consensus algorithm as a pure state machine: step(state, input) -> { state, actions }.
//
// Follows Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon, Milosevic, 2018); comments cite its
// line numbers. No I/O, clock, randomness or timers: the driver feeds inputs (messages it has already
// signature-checked, value validity it has computed, timeouts it scheduled) and carries out the actions (sign and
// broadcast, persist safety data, schedule timeouts, build values, commit decisions, forward evidence).
//
// `step` never mutates its input state: it returns a new state that shares unchanged parts with the old one.
//
// Deviations from the paper, each safe:
// - The proposer also schedules timeoutPropose for its own round, so a node whose block building stalls prevotes nil
//   instead of waiting for other validators' messages (as Malachite does).
// - Messages for rounds more than `maxRoundsAhead` ahead of the current round are ignored (memory bound); messages
//   for other heights are ignored: the driver buffers next-height messages and syncs when far behind.
// - Conflicting messages from one validator for one (round, type) are reported once as evidence. Its first vote
//   counts toward "2f+1 of any value"; each vote counts toward its own value if that value is nil or was proposed at
//   this height (see Tally); other conflicting votes are dropped (memory bound).
import type { Hex } from "./bytes.ts";
import type { Evidence, Proposal, SignedProposal, SignedVote, ValidatorSet, ValueId, Vote, VoteType } from "./types.ts";
import { exceedsOneThird, hasQuorum, indexOfAddress, proposerIndex } from "./validator-set.ts";

export type Step = "propose" | "prevote" | "precommit" | "commit";
export type TimeoutStep = "propose" | "prevote" | "precommit";

/** Timeout of round r = base + r * delta (paper: timeouts grow with the round so that they eventually exceed Δ). */
export interface TimeoutParams {
  readonly proposeMs: number;
  readonly proposeDeltaMs: number;
  readonly prevoteMs: number;
  readonly prevoteDeltaMs: number;
  readonly precommitMs: number;
  readonly precommitDeltaMs: number;
}

export interface ConsensusParams {
  readonly chainId: bigint;
  /** This node's consensus address, or null for a read-only replica. */
  readonly self: Hex | null;
  readonly timeouts: TimeoutParams;
  /** Messages for rounds above currentRound + maxRoundsAhead are ignored. */
  readonly maxRoundsAhead: number;
  /** Distinct proposals kept per round from an equivocating proposer (the first one drives the prevote). */
  readonly maxProposalsPerRound: number;
}

export const DEFAULT_TIMEOUTS: TimeoutParams = {
  proposeMs: 1000,
  proposeDeltaMs: 500,
  prevoteMs: 500,
  prevoteDeltaMs: 250,
  precommitMs: 500,
  precommitDeltaMs: 250,
};

/** Locking state of the paper (lines 1-10). Persisted with every vote: a node must not forget its lock. */
export interface LockState {
  readonly lockedValue: ValueId | null;
  readonly lockedRound: number;
  readonly validValue: ValueId | null;
  readonly validRound: number;
}

export const NO_LOCK: LockState = { lockedValue: null, lockedRound: -1, validValue: null, validRound: -1 };

export type Input =
  /** Start (or, after a restart, resume at `recovered.round` with its lock) consensus for `height`. */
  | {
      readonly kind: "startHeight";
      readonly height: number;
      readonly validatorSet: ValidatorSet;
      readonly recovered?: { readonly round: number; readonly lock: LockState };
    }
  /** A proposal with a valid signature from the driver, and whether the proposed value is valid (paper: valid(v)). */
  | { readonly kind: "proposal"; readonly proposal: SignedProposal; readonly valid: boolean }
  /** A vote with a valid signature, including this node's own votes once signed. */
  | { readonly kind: "vote"; readonly vote: SignedVote }
  /** The driver's answer to a getValue action (paper line 18: getValue()). */
  | { readonly kind: "proposeValue"; readonly height: number; readonly round: number; readonly value: ValueId }
  | { readonly kind: "timeout"; readonly height: number; readonly round: number; readonly step: TimeoutStep };

export type Action =
  /** Build a value (block) for (height, round) and answer with a proposeValue input. */
  | { readonly kind: "getValue"; readonly height: number; readonly round: number }
  /** Sign (through the safety guard) and broadcast this proposal, then feed it back as a proposal input. */
  | { readonly kind: "propose"; readonly proposal: Proposal }
  /**
   * Persist `lock` and `proofOfLock` with the signing mark, sign, broadcast, then feed the signed vote back as a vote
   * input. `proofOfLock` are the prevotes for lock.validValue in lock.validRound: after a restart the driver feeds them
   * back and relays them, because a node locked on a value needs others to see its proof to agree on it again.
   */
  | {
      readonly kind: "vote";
      readonly vote: Vote;
      readonly lock: LockState;
      readonly proofOfLock: readonly SignedVote[];
    }
  | {
      readonly kind: "scheduleTimeout";
      readonly height: number;
      readonly round: number;
      readonly step: TimeoutStep;
      readonly durationMs: number;
    }
  /** Commit `value` at `height`; `precommits` (sorted by validator index) carry more than 2/3 of the voting power. */
  | {
      readonly kind: "decide";
      readonly height: number;
      readonly round: number;
      readonly value: ValueId;
      readonly precommits: readonly SignedVote[];
    }
  | { readonly kind: "evidence"; readonly evidence: Evidence };

interface StoredProposal {
  readonly proposal: SignedProposal;
  readonly valid: boolean;
}

/**
 * Votes of one (round, type). `first` holds each validator's first vote: it counts once toward `total` ("2f+1 of
 * any value"). `byValue` holds, per value ("nil" for nil), every validator that signed a vote for it, so a validator
 * that equivocated counts for each value it signed, as the paper counts messages for id(v) from distinct validators.
 * That keeps safety (two +2/3 quorums intersect in an honest validator, who signs one vote) and is needed for
 * liveness: a proof-of-lock that includes an equivocator's vote must be countable by nodes that saw the other vote.
 */
interface Tally {
  readonly first: ReadonlyMap<number, SignedVote>;
  readonly byValue: ReadonlyMap<string, ReadonlyMap<number, SignedVote>>;
  readonly power: ReadonlyMap<string, bigint>;
  readonly total: bigint;
}

// "For the first time" flags of the paper, per round.
const FIRED_PREVOTE_TIMEOUT = 1; // line 34
const FIRED_POLKA = 2; // line 36
const FIRED_PRECOMMIT_TIMEOUT = 4; // line 47
const FIRED_PROPOSAL_EVIDENCE = 8;

interface RoundState {
  readonly proposals: readonly StoredProposal[];
  readonly prevotes: Tally;
  readonly precommits: Tally;
  /** Validators with any message in this round (line 55). */
  readonly senders: ReadonlySet<number>;
  /** Validators already reported as equivocating in this round, keyed `${type}:${index}`. */
  readonly equivocators: ReadonlySet<string>;
  readonly fired: number;
  /** This node asked for a value (getValue) in this round, as proposer. */
  readonly valueRequested: boolean;
  /** This node sent its proposal for this round. */
  readonly proposed: boolean;
}

export interface ConsensusState {
  readonly params: ConsensusParams;
  readonly height: number;
  readonly round: number;
  readonly step: Step;
  /** Null until the first startHeight input. */
  readonly validatorSet: ValidatorSet | null;
  /** Index of this node in validatorSet, or -1 when it does not vote at this height. */
  readonly selfIndex: number;
  readonly lock: LockState;
  readonly decision: { readonly round: number; readonly value: ValueId } | null;
  readonly rounds: ReadonlyMap<number, RoundState>;
}

export interface Transition {
  readonly state: ConsensusState;
  readonly actions: readonly Action[];
}

export class ConsensusAssertionError extends Error {
  override readonly name = "ConsensusAssertionError";
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new ConsensusAssertionError(message);
}

const NIL_KEY = "nil";
const EMPTY_TALLY: Tally = { first: new Map(), byValue: new Map(), power: new Map(), total: 0n };
const EMPTY_ROUND: RoundState = {
  proposals: [],
  prevotes: EMPTY_TALLY,
  precommits: EMPTY_TALLY,
  senders: new Set(),
  equivocators: new Set(),
  fired: 0,
  valueRequested: false,
  proposed: false,
};

/** A node before its first height: it waits for a startHeight input. */
export function initialState(params: ConsensusParams): ConsensusState {
  assert(params.maxRoundsAhead >= 1, "maxRoundsAhead must be >= 1");
  assert(params.maxProposalsPerRound >= 1, "maxProposalsPerRound must be >= 1");
  return {
    params,
    height: 0,
    round: 0,
    step: "commit",
    validatorSet: null,
    selfIndex: -1,
    lock: NO_LOCK,
    decision: null,
    rounds: new Map(),
  };
}

export function timeoutDurationMs(params: TimeoutParams, step: TimeoutStep, round: number): number {
  switch (step) {
    case "propose":
      return params.proposeMs + round * params.proposeDeltaMs;
    case "prevote":
      return params.prevoteMs + round * params.prevoteDeltaMs;
    case "precommit":
      return params.precommitMs + round * params.precommitDeltaMs;
  }
}

/** The one transition function. Inputs that do not apply (stale, other height, duplicates) leave the state as is. */
export function step(state: ConsensusState, input: Input): Transition {
  const t = new Builder(state);
  switch (input.kind) {
    case "startHeight":
      t.startHeight(input.height, input.validatorSet, input.recovered);
      break;
    case "proposal":
      t.onProposal(input.proposal, input.valid);
      break;
    case "vote":
      t.onVote(input.vote);
      break;
    case "proposeValue":
      t.onProposeValue(input.height, input.round, input.value);
      break;
    case "timeout":
      t.onTimeout(input.height, input.round, input.step);
      break;
    default:
      return assertNever(input);
  }
  return { state: t.s, actions: t.actions };
}

function assertNever(x: never): never {
  throw new ConsensusAssertionError(`unhandled input ${JSON.stringify(x)}`);
}

/** The proposer of (state.height, round), or -1 before the first height. */
export function proposerOf(state: ConsensusState, round: number): number {
  return state.validatorSet === null ? -1 : proposerIndex(state.validatorSet, round);
}

/** Accumulates one transition. Mutates only its own copy `s` (copy-on-write of the parts that change). */
class Builder {
  s: ConsensusState;
  readonly actions: Action[] = [];

  constructor(state: ConsensusState) {
    this.s = state;
  }

  private get vset(): ValidatorSet {
    assert(this.s.validatorSet !== null, "no validator set before startHeight");
    return this.s.validatorSet;
  }

  private roundState(round: number): RoundState {
    return this.s.rounds.get(round) ?? EMPTY_ROUND;
  }

  private putRound(round: number, rs: RoundState): void {
    const rounds = new Map(this.s.rounds);
    rounds.set(round, rs);
    this.s = { ...this.s, rounds };
  }

  private update(patch: Partial<ConsensusState>): void {
    this.s = { ...this.s, ...patch };
  }

  private fire(round: number, flag: number): boolean {
    const rs = this.roundState(round);
    if ((rs.fired & flag) !== 0) return false;
    this.putRound(round, { ...rs, fired: rs.fired | flag });
    return true;
  }

  private isSelfProposer(round: number): boolean {
    return this.s.selfIndex >= 0 && proposerIndex(this.vset, round) === this.s.selfIndex;
  }

  private acceptsRound(round: number): boolean {
    return Number.isSafeInteger(round) && round >= 0 && round <= this.s.round + this.s.params.maxRoundsAhead;
  }

  // ---- inputs ----

  startHeight(height: number, validatorSet: ValidatorSet, recovered?: { round: number; lock: LockState }): void {
    assert(Number.isSafeInteger(height) && height >= 1, `height must be a positive integer, got ${height}`);
    assert(
      this.s.validatorSet === null || height >= this.s.height,
      `startHeight ${height} below current height ${this.s.height}`,
    );
    const selfIndex = this.s.params.self === null ? -1 : indexOfAddress(validatorSet, this.s.params.self);
    this.s = {
      params: this.s.params,
      height,
      round: 0,
      step: "propose",
      validatorSet,
      selfIndex,
      lock: recovered?.lock ?? NO_LOCK,
      decision: null,
      rounds: new Map(),
    };
    this.startRound(recovered?.round ?? 0);
    this.evaluate();
  }

  onProposal(p: SignedProposal, valid: boolean): void {
    if (this.s.validatorSet === null || this.s.step === "commit" || p.height !== this.s.height) return;
    if (!this.acceptsRound(p.round)) return;
    // A proposal counts only from proposer(h, r) and with -1 <= polRound < round (line 22, 28).
    if (p.proposerIndex !== proposerIndex(this.vset, p.round)) return;
    if (!Number.isSafeInteger(p.polRound) || p.polRound < -1 || p.polRound >= p.round) return;
    const rs = this.roundState(p.round);
    const existing = rs.proposals;
    if (existing.some((e) => e.proposal.value === p.value && e.proposal.polRound === p.polRound)) return;
    const first = existing[0];
    let next: RoundState = rs;
    if (first !== undefined && (next.fired & FIRED_PROPOSAL_EVIDENCE) === 0) {
      this.actions.push({
        kind: "evidence",
        evidence: { kind: "duplicateProposal", first: first.proposal, second: p },
      });
      next = { ...next, fired: next.fired | FIRED_PROPOSAL_EVIDENCE };
    }
    if (existing.length < this.s.params.maxProposalsPerRound) {
      next = { ...next, proposals: [...existing, { proposal: p, valid }] };
    }
    next = withSender(next, p.proposerIndex);
    this.putRound(p.round, next);
    this.evaluate();
  }

  onVote(v: SignedVote): void {
    if (this.s.validatorSet === null || this.s.step === "commit" || v.height !== this.s.height) return;
    if (!this.acceptsRound(v.round)) return;
    const member = this.vset.validators[v.validatorIndex];
    if (member === undefined) return;
    const rs = this.roundState(v.round);
    const tally = v.type === "prevote" ? rs.prevotes : rs.precommits;
    const key = v.value ?? NIL_KEY;
    if (tally.byValue.get(key)?.has(v.validatorIndex) === true) return;
    let next = rs;
    const prior = tally.first.get(v.validatorIndex);
    if (prior !== undefined) {
      const id = `${v.type}:${v.validatorIndex}`;
      if (!rs.equivocators.has(id)) {
        this.actions.push({ kind: "evidence", evidence: { kind: "duplicateVote", first: prior, second: v } });
        next = { ...next, equivocators: new Set(rs.equivocators).add(id) };
      }
      // Memory bound: an equivocator's further votes count only for nil or a value proposed at this height.
      if (v.value !== null && !this.proposedAtHeight(v.value)) {
        if (next !== rs) this.putRound(v.round, next);
        return;
      }
    }
    const added = addVote(tally, v, member.votingPower, prior === undefined);
    next = v.type === "prevote" ? { ...next, prevotes: added } : { ...next, precommits: added };
    this.putRound(v.round, withSender(next, v.validatorIndex));
    this.evaluate();
  }

  private proposedAtHeight(value: ValueId): boolean {
    for (const rs of this.s.rounds.values()) if (rs.proposals.some((p) => p.proposal.value === value)) return true;
    return false;
  }

  onProposeValue(height: number, round: number, value: ValueId): void {
    if (this.s.validatorSet === null || height !== this.s.height || round !== this.s.round) return;
    if (this.s.step !== "propose" || !this.isSelfProposer(round)) return;
    const rs = this.roundState(round);
    if (!rs.valueRequested || rs.proposed) return;
    this.putRound(round, { ...rs, proposed: true });
    // Line 19: broadcast ⟨PROPOSAL, hp, roundp, proposal, validRoundp⟩ (validRound is -1 when getValue was used).
    this.actions.push({
      kind: "propose",
      proposal: { height, round, polRound: -1, value, proposerIndex: this.s.selfIndex },
    });
  }

  onTimeout(height: number, round: number, timeoutStep: TimeoutStep): void {
    if (this.s.validatorSet === null || this.s.step === "commit") return;
    if (height !== this.s.height || round !== this.s.round) return;
    switch (timeoutStep) {
      case "propose":
        // Lines 57-60: OnTimeoutPropose: if step = propose, broadcast prevote nil, step ← prevote.
        if (this.s.step === "propose") this.castVote("prevote", null, "prevote");
        break;
      case "prevote":
        // Lines 61-64: OnTimeoutPrevote: if step = prevote, broadcast precommit nil, step ← precommit.
        if (this.s.step === "prevote") this.castVote("precommit", null, "precommit");
        break;
      case "precommit":
        // Lines 65-67: OnTimeoutPrecommit: StartRound(roundp + 1).
        this.startRound(round + 1);
        break;
      default:
        assertNever(timeoutStep);
    }
    this.evaluate();
  }

  // ---- the algorithm ----

  /** Lines 11-21: StartRound(round). */
  private startRound(round: number): void {
    this.update({ round, step: "propose" });
    const h = this.s.height;
    if (this.isSelfProposer(round)) {
      const rs = this.roundState(round);
      if (this.s.lock.validValue !== null) {
        // Lines 14-15: proposal ← validValue, re-proposed with its validRound (proof-of-lock round).
        this.putRound(round, { ...rs, valueRequested: true, proposed: true });
        this.actions.push({
          kind: "propose",
          proposal: {
            height: h,
            round,
            polRound: this.s.lock.validRound,
            value: this.s.lock.validValue,
            proposerIndex: this.s.selfIndex,
          },
        });
      } else {
        // Line 18: proposal ← getValue(); answered by a proposeValue input.
        this.putRound(round, { ...rs, valueRequested: true });
        this.actions.push({ kind: "getValue", height: h, round });
      }
    }
    // Line 21 (and, as a deviation, also for the proposer itself): schedule OnTimeoutPropose(hp, roundp).
    this.scheduleTimeout("propose", round);
  }

  private scheduleTimeout(timeoutStep: TimeoutStep, round: number): void {
    this.actions.push({
      kind: "scheduleTimeout",
      height: this.s.height,
      round,
      step: timeoutStep,
      durationMs: timeoutDurationMs(this.s.params.timeouts, timeoutStep, round),
    });
  }

  /** Broadcasts this node's vote (if it votes at this height) and moves to `nextStep`. */
  private castVote(type: VoteType, value: ValueId | null, nextStep: Step): void {
    this.update({ step: nextStep });
    if (this.s.selfIndex < 0) return;
    const vote: Vote = { type, height: this.s.height, round: this.s.round, value, validatorIndex: this.s.selfIndex };
    const { validValue, validRound } = this.s.lock;
    const proofOfLock = validValue === null ? [] : votesFor(this.s, validRound, "prevote", validValue);
    this.actions.push({ kind: "vote", vote, lock: this.s.lock, proofOfLock });
  }

  /** Applies every rule whose condition holds, until none does. Each rule changes step or a fired flag, so it ends. */
  private evaluate(): void {
    for (let guard = 0; guard < 64; guard++) {
      if (this.s.step === "commit") return;
      if (this.tryDecide()) return;
      if (this.tryRoundSkip()) continue;
      if (this.tryCurrentRoundRules()) continue;
      return;
    }
    assert(false, "rule evaluation did not reach a fixed point");
  }

  /** Lines 49-54: proposal(h, r, v) from proposer(h, r) and 2f+1 precommits for id(v) in round r, valid(v): decide. */
  private tryDecide(): boolean {
    const total = this.vset.totalVotingPower;
    for (const [round, rs] of this.s.rounds) {
      for (const { proposal, valid } of rs.proposals) {
        if (!valid) continue;
        const power = rs.precommits.power.get(proposal.value) ?? 0n;
        if (!hasQuorum(power, total)) continue;
        const precommits = [...(rs.precommits.byValue.get(proposal.value)?.values() ?? [])].sort(
          (a, b) => a.validatorIndex - b.validatorIndex,
        );
        this.update({ step: "commit", decision: { round, value: proposal.value } });
        this.actions.push({ kind: "decide", height: this.s.height, round, value: proposal.value, precommits });
        return true;
      }
    }
    return false;
  }

  /** Lines 55-56: f+1 messages (by voting power) of a round r > roundp: StartRound(r). Takes the highest such r. */
  private tryRoundSkip(): boolean {
    const set = this.vset;
    let target = -1;
    for (const [round, rs] of this.s.rounds) {
      if (round <= this.s.round || round <= target) continue;
      let power = 0n;
      for (const i of rs.senders) power += set.validators[i]?.votingPower ?? 0n;
      if (exceedsOneThird(power, set.totalVotingPower)) target = round;
    }
    if (target < 0) return false;
    this.startRound(target);
    return true;
  }

  private tryCurrentRoundRules(): boolean {
    const { round, lock } = this.s;
    const total = this.vset.totalVotingPower;
    const rs = this.roundState(round);

    if (this.s.step === "propose") {
      for (const { proposal, valid } of rs.proposals) {
        const v = proposal.value;
        if (proposal.polRound === -1) {
          // Lines 22-27: prevote id(v) if valid(v) ∧ (lockedRound = −1 ∨ lockedValue = v), else nil.
          const ok = valid && (lock.lockedRound === -1 || lock.lockedValue === v);
          this.castVote("prevote", ok ? v : null, "prevote");
          return true;
        }
        // Lines 28-33: proposal with vr ≥ 0 and 2f+1 prevotes for id(v) in round vr (vr < roundp):
        // prevote id(v) if valid(v) ∧ (lockedRound ≤ vr ∨ lockedValue = v), else nil.
        const pol = this.roundState(proposal.polRound).prevotes.power.get(v) ?? 0n;
        if (hasQuorum(pol, total)) {
          const ok = valid && (lock.lockedRound <= proposal.polRound || lock.lockedValue === v);
          this.castVote("prevote", ok ? v : null, "prevote");
          return true;
        }
      }
    }

    // Lines 34-35: 2f+1 prevotes (any value) while step = prevote, first time: schedule OnTimeoutPrevote.
    if (this.s.step === "prevote" && hasQuorum(rs.prevotes.total, total) && this.fire(round, FIRED_PREVOTE_TIMEOUT)) {
      this.scheduleTimeout("prevote", round);
      return true;
    }

    // Lines 36-43: proposal(h, r, v) and 2f+1 prevotes for id(v), valid(v), step ≥ prevote, first time.
    if (this.s.step === "prevote" || this.s.step === "precommit") {
      for (const { proposal, valid } of rs.proposals) {
        if (!valid || !hasQuorum(rs.prevotes.power.get(proposal.value) ?? 0n, total)) continue;
        if (!this.fire(round, FIRED_POLKA)) break;
        const v = proposal.value;
        if (this.s.step === "prevote") {
          // Lines 38-41: lock on v and precommit id(v).
          this.update({ lock: { ...this.s.lock, lockedValue: v, lockedRound: round } });
          this.update({ lock: { ...this.s.lock, validValue: v, validRound: round } });
          this.castVote("precommit", v, "precommit");
        } else {
          // Lines 42-43: validValue ← v, validRound ← roundp.
          this.update({ lock: { ...this.s.lock, validValue: v, validRound: round } });
        }
        return true;
      }
    }

    // Lines 44-46: 2f+1 prevotes for nil while step = prevote: precommit nil.
    if (this.s.step === "prevote" && hasQuorum(rs.prevotes.power.get(NIL_KEY) ?? 0n, total)) {
      this.castVote("precommit", null, "precommit");
      return true;
    }

    // Lines 47-48: 2f+1 precommits (any value) for the first time: schedule OnTimeoutPrecommit.
    if (hasQuorum(rs.precommits.total, total) && this.fire(round, FIRED_PRECOMMIT_TIMEOUT)) {
      this.scheduleTimeout("precommit", round);
      return true;
    }
    return false;
  }
}

function addVote(tally: Tally, v: SignedVote, power: bigint, isFirst: boolean): Tally {
  const key = v.value ?? NIL_KEY;
  const forValue = new Map(tally.byValue.get(key));
  forValue.set(v.validatorIndex, v);
  const byValue = new Map(tally.byValue);
  byValue.set(key, forValue);
  const powerByValue = new Map(tally.power);
  powerByValue.set(key, (powerByValue.get(key) ?? 0n) + power);
  if (!isFirst) return { first: tally.first, byValue, power: powerByValue, total: tally.total };
  const first = new Map(tally.first);
  first.set(v.validatorIndex, v);
  return { first, byValue, power: powerByValue, total: tally.total + power };
}

function withSender(rs: RoundState, index: number): RoundState {
  return rs.senders.has(index) ? rs : { ...rs, senders: new Set(rs.senders).add(index) };
}

/**
 * The votes of a round for one value (null = nil), including an equivocator's votes for it; sorted by validator.
 * Drivers relay these, e.g. the proof-of-lock prevotes of validValue for nodes that missed them.
 */
export function votesFor(state: ConsensusState, round: number, type: VoteType, value: ValueId | null): SignedVote[] {
  const rs = state.rounds.get(round);
  if (rs === undefined) return [];
  const votes = (type === "prevote" ? rs.prevotes : rs.precommits).byValue.get(value ?? NIL_KEY);
  return votes === undefined ? [] : [...votes.values()].sort((a, b) => a.validatorIndex - b.validatorIndex);
}

/**
 * Whether `vote` can add nothing at this node: more than 2/3 of the voting power already voted its value in its
 * round and step, and its validator has no vote there yet (so it cannot be half of an equivocation either). A driver
 * may leave such a vote unverified: whatever it would complete (a polka, a decision, a proof of lock) is complete.
 */
export function voteAddsNothing(state: ConsensusState, vote: Vote): boolean {
  if (vote.height !== state.height || state.validatorSet === null) return false;
  const rs = state.rounds.get(vote.round);
  if (rs === undefined) return false;
  const tally = vote.type === "prevote" ? rs.prevotes : rs.precommits;
  if (tally.first.has(vote.validatorIndex)) return false;
  return hasQuorum(tally.power.get(vote.value ?? NIL_KEY) ?? 0n, state.validatorSet.totalVotingPower);
}

/**
 * Validators counted toward "2f+1 of any value" in (round, type) at this node's height (each one's first vote), and
 * validators with any message in that round (the f+1 rule, lines 55-56). What a driver compares the votes it has not
 * verified yet against, to know whether they could complete anything.
 */
export function voteCounts(
  state: ConsensusState,
  round: number,
  type: VoteType,
): { readonly voters: Iterable<number>; readonly senders: ReadonlySet<number> } {
  const rs = state.rounds.get(round);
  if (rs === undefined) return { voters: [], senders: new Set() };
  return { voters: (type === "prevote" ? rs.prevotes : rs.precommits).first.keys(), senders: rs.senders };
}

/** Each validator's first vote of a round, in arrival order. */
export function votesOf(state: ConsensusState, round: number, type: VoteType): readonly SignedVote[] {
  const rs = state.rounds.get(round);
  if (rs === undefined) return [];
  return [...(type === "prevote" ? rs.prevotes : rs.precommits).first.values()];
}

/**
 * Every vote of a round that counts toward some value: each validator's first vote plus an equivocator's conflicting
 * votes for nil or proposed values (bounded, see Tally). What a node serves a stalled peer: with the first votes alone,
 * a peer that first saw the other version of an equivocator's vote could never assemble a proof-of-lock that needs it.
 */
export function countedVotesOf(state: ConsensusState, round: number, type: VoteType): SignedVote[] {
  const rs = state.rounds.get(round);
  if (rs === undefined) return [];
  const out: SignedVote[] = [];
  for (const votes of (type === "prevote" ? rs.prevotes : rs.precommits).byValue.values()) out.push(...votes.values());
  return out;
}

/** Read-only view of the proposals of a round, in arrival order. */
export function proposalsOf(state: ConsensusState, round: number): readonly SignedProposal[] {
  return (state.rounds.get(round)?.proposals ?? []).map((p) => p.proposal);
}
