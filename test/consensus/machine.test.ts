// Table tests of the pure state machine: each case feeds inputs and checks the actions, citing the paper's lines.
import { describe, expect, it } from "vitest";
import { concatBytes, type Hex, keccak256, toHex, uintBytes } from "../../consensus/bytes.ts";
import {
  type Action,
  type ConsensusParams,
  type ConsensusState,
  DEFAULT_TIMEOUTS,
  type Input,
  initialState,
  NO_LOCK,
  proposerOf,
  step,
  voteAddsNothing,
} from "../../consensus/machine.ts";
import type { SignedProposal, SignedVote, ValidatorSet, VoteType } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";

const SIG = new Uint8Array(96);

function publicKey(i: number): Uint8Array {
  return concatBytes(keccak256(uintBytes(i, 4)), new Uint8Array(16));
}

function makeSet(powers: readonly bigint[]): ValidatorSet {
  return createValidatorSet(powers.map((votingPower, i) => ({ publicKey: publicKey(i), votingPower })));
}

function value(tag: string): Hex {
  return toHex(keccak256(new TextEncoder().encode(tag)));
}

const V = value("block-v");
const W = value("block-w");

function params(set: ValidatorSet, selfIndex: number | null): ConsensusParams {
  const self = selfIndex === null ? null : (set.validators[selfIndex]?.address ?? null);
  return { chainId: 1n, self, timeouts: DEFAULT_TIMEOUTS, maxRoundsAhead: 10, maxProposalsPerRound: 2 };
}

/** A node of `set` at height 1 (index `self`, or a replica), with every action recorded. */
class Harness {
  state: ConsensusState;
  readonly log: Action[] = [];

  constructor(
    readonly set: ValidatorSet,
    self: number | null,
  ) {
    this.state = initialState(params(set, self));
  }

  feed(input: Input): Action[] {
    const t = step(this.state, input);
    this.state = t.state;
    this.log.push(...t.actions);
    return [...t.actions];
  }

  start(height = 1): Action[] {
    return this.feed({ kind: "startHeight", height, validatorSet: this.set });
  }

  proposal(round: number, v: Hex, polRound = -1, valid = true): Action[] {
    const p: SignedProposal = {
      height: this.state.height,
      round,
      polRound,
      value: v,
      proposerIndex: proposerOf(this.state, round),
      signature: SIG,
    };
    return this.feed({ kind: "proposal", proposal: p, valid });
  }

  vote(type: VoteType, round: number, v: Hex | null, validatorIndex: number, sig = SIG): Action[] {
    const vote: SignedVote = { type, height: this.state.height, round, value: v, validatorIndex, signature: sig };
    return this.feed({ kind: "vote", vote });
  }

  votes(type: VoteType, round: number, v: Hex | null, validators: readonly number[]): Action[] {
    return validators.flatMap((i) => this.vote(type, round, v, i));
  }
}

function kinds(actions: readonly Action[]): string[] {
  return actions.map(describeAction);
}

function describeAction(a: Action): string {
  switch (a.kind) {
    case "vote":
      return `vote:${a.vote.type}:${a.vote.round}:${a.vote.value === null ? "nil" : a.vote.value === V ? "V" : "W"}`;
    case "scheduleTimeout":
      return `timeout:${a.step}:${a.round}`;
    case "propose":
      return `propose:${a.proposal.round}:${a.proposal.value === V ? "V" : a.proposal.value === W ? "W" : "x"}:${a.proposal.polRound}`;
    case "decide":
      return `decide:${a.round}:${a.value === V ? "V" : "W"}`;
    case "getValue":
      return `getValue:${a.round}`;
    case "evidence":
      return `evidence:${a.evidence.kind}`;
  }
}

/** Index of a validator that is not the proposer of `round` at height 1. */
function nonProposer(set: ValidatorSet, round: number): number {
  const h = new Harness(set, null);
  h.start();
  const p = proposerOf(h.state, round);
  return p === 0 ? 1 : 0;
}

const EQUAL4 = makeSet([10n, 10n, 10n, 10n]);

describe("consensus state machine", () => {
  it("waits for startHeight and ignores messages before it", () => {
    const h = new Harness(EQUAL4, 0);
    expect(h.vote("prevote", 0, V, 1)).toEqual([]);
    expect(h.state.validatorSet).toBeNull();
  });

  it("non-proposer: schedules timeoutPropose, prevotes a valid proposal, locks and precommits on a polka, decides", () => {
    const me = nonProposer(EQUAL4, 0);
    const h = new Harness(EQUAL4, me);
    expect(kinds(h.start())).toEqual(["timeout:propose:0"]); // line 21
    expect(kinds(h.proposal(0, V))).toEqual(["vote:prevote:0:V"]); // line 24
    const others = [0, 1, 2, 3].filter((i) => i !== me);
    // Own prevote comes back from the driver; two more make 3 of 4 = +2/3.
    h.vote("prevote", 0, V, me);
    h.vote("prevote", 0, V, others[0] ?? -1);
    const onPolka = h.vote("prevote", 0, V, others[1] ?? -1);
    expect(kinds(onPolka)).toEqual(["timeout:prevote:0", "vote:precommit:0:V"]); // lines 34, 36-41
    expect(h.state.lock).toEqual({ lockedValue: V, lockedRound: 0, validValue: V, validRound: 0 });
    const precommitAction = onPolka[1];
    expect(precommitAction?.kind === "vote" && precommitAction.lock.lockedValue).toBe(V);
    h.vote("precommit", 0, V, me);
    expect(h.vote("precommit", 0, V, others[0] ?? -1)).toEqual([]);
    const decided = h.vote("precommit", 0, V, others[1] ?? -1);
    expect(kinds(decided)).toEqual(["decide:0:V"]); // line 49
    const d = decided[0];
    expect(d?.kind === "decide" && d.precommits.map((p) => p.validatorIndex)).toEqual(
      [...[me, ...others.slice(0, 2)]].sort(),
    );
    expect(h.state.step).toBe("commit");
    // After the decision nothing but startHeight moves it.
    expect(h.vote("precommit", 0, V, others[2] ?? -1)).toEqual([]);
  });

  it("proposer: asks for a value, proposes it once, ignores stale or repeated answers", () => {
    const h = new Harness(EQUAL4, null);
    h.start();
    const proposer = proposerOf(h.state, 0);
    const p = new Harness(EQUAL4, proposer);
    expect(kinds(p.start())).toEqual(["getValue:0", "timeout:propose:0"]);
    expect(p.feed({ kind: "proposeValue", height: 1, round: 1, value: V })).toEqual([]);
    expect(kinds(p.feed({ kind: "proposeValue", height: 1, round: 0, value: V }))).toEqual(["propose:0:V:-1"]);
    expect(p.feed({ kind: "proposeValue", height: 1, round: 0, value: W })).toEqual([]);
  });

  it("prevotes nil for an invalid proposal (line 26)", () => {
    const h = new Harness(EQUAL4, nonProposer(EQUAL4, 0));
    h.start();
    expect(kinds(h.proposal(0, V, -1, false))).toEqual(["vote:prevote:0:nil"]);
  });

  it("ignores a proposal from a validator that is not the round's proposer", () => {
    const h = new Harness(EQUAL4, nonProposer(EQUAL4, 0));
    h.start();
    const wrong = (proposerOf(h.state, 0) + 1) % 4;
    const p: SignedProposal = { height: 1, round: 0, polRound: -1, value: V, proposerIndex: wrong, signature: SIG };
    expect(h.feed({ kind: "proposal", proposal: p, valid: true })).toEqual([]);
  });

  it("timeouts: propose -> prevote nil, prevote -> precommit nil, precommit -> next round; stale ones ignored", () => {
    const me = nonProposer(EQUAL4, 0);
    const h = new Harness(EQUAL4, me);
    h.start();
    expect(h.feed({ kind: "timeout", height: 1, round: 1, step: "propose" })).toEqual([]);
    expect(kinds(h.feed({ kind: "timeout", height: 1, round: 0, step: "propose" }))).toEqual(["vote:prevote:0:nil"]); // 57
    expect(h.feed({ kind: "timeout", height: 1, round: 0, step: "propose" })).toEqual([]);
    expect(kinds(h.feed({ kind: "timeout", height: 1, round: 0, step: "prevote" }))).toEqual(["vote:precommit:0:nil"]); // 61
    const next = h.feed({ kind: "timeout", height: 1, round: 0, step: "precommit" }); // 65
    expect(h.state.round).toBe(1);
    expect(kinds(next)).toContain("timeout:propose:1");
    const t = next.find((a) => a.kind === "scheduleTimeout");
    expect(t?.kind === "scheduleTimeout" && t.durationMs).toBe(
      DEFAULT_TIMEOUTS.proposeMs + DEFAULT_TIMEOUTS.proposeDeltaMs,
    );
  });

  it("precommits nil on +2/3 prevotes for nil (line 44) and schedules timeoutPrecommit on +2/3 precommits (line 47)", () => {
    const h = new Harness(EQUAL4, nonProposer(EQUAL4, 0));
    h.start();
    h.feed({ kind: "timeout", height: 1, round: 0, step: "propose" });
    expect(kinds(h.votes("prevote", 0, null, [0, 1, 2]))).toEqual(["timeout:prevote:0", "vote:precommit:0:nil"]);
    expect(kinds(h.votes("precommit", 0, null, [0, 1, 2]))).toEqual(["timeout:precommit:0"]);
  });

  it("counts voting power, not validators: 3 of 4 validators without +2/3 of the power is no quorum", () => {
    const set = makeSet([100n, 10n, 10n, 10n]);
    const big = set.validators.findIndex((v) => v.votingPower === 100n);
    const small = [0, 1, 2, 3].filter((i) => i !== big);
    const h = new Harness(set, null);
    h.start();
    h.proposal(0, V);
    expect(kinds(h.votes("precommit", 0, V, small))).toEqual([]);
    expect(kinds(h.vote("precommit", 0, V, big))).toEqual(["decide:0:V"]);
  });

  it("skips to a higher round on messages from more than 1/3 of the power (line 55), not on less", () => {
    const set = makeSet([40n, 30n, 20n, 10n]);
    const h = new Harness(set, null);
    h.start();
    // 20 + 10 = 30 of 100 is not > 1/3.
    h.vote("prevote", 5, null, 2);
    h.vote("prevote", 5, null, 3);
    expect(h.state.round).toBe(0);
    // + 30 = 60 > 1/3.
    h.vote("precommit", 5, null, 1);
    expect(h.state.round).toBe(5);
    expect(h.state.step).toBe("propose");
  });

  it("ignores messages beyond maxRoundsAhead and from other heights", () => {
    const h = new Harness(EQUAL4, null);
    h.start();
    expect(h.votes("prevote", 11, null, [0, 1, 2])).toEqual([]);
    expect(h.state.round).toBe(0);
    const other: SignedVote = { type: "prevote", height: 2, round: 0, value: V, validatorIndex: 0, signature: SIG };
    expect(h.feed({ kind: "vote", vote: other })).toEqual([]);
    expect(h.state.rounds.size).toBe(0);
  });

  it("a locked validator prevotes nil for another value without a newer proof-of-lock (line 30)", () => {
    const me = nonProposer(EQUAL4, 0);
    const h = new Harness(EQUAL4, me);
    h.start();
    h.proposal(0, V);
    h.votes("prevote", 0, V, [0, 1, 2, 3]);
    expect(h.state.lock.lockedRound).toBe(0);
    h.feed({ kind: "timeout", height: 1, round: 0, step: "precommit" });
    expect(h.state.round).toBe(1);
    expect(kinds(h.proposal(1, W))).toEqual(["vote:prevote:1:nil"]);
  });

  it("a locked validator prevotes for a value with a proof-of-lock at or after its locked round (lines 28-33)", () => {
    const me = nonProposer(EQUAL4, 0);
    const h = new Harness(EQUAL4, me);
    h.start();
    h.proposal(0, V);
    h.votes("prevote", 0, V, [0, 1, 2, 3]);
    h.feed({ kind: "timeout", height: 1, round: 0, step: "precommit" });
    expect(h.state.round).toBe(1);
    expect(kinds(h.proposal(1, W))).toEqual(["vote:prevote:1:nil"]); // locked on V
    expect(kinds(h.feed({ kind: "timeout", height: 1, round: 1, step: "prevote" }))).toEqual(["vote:precommit:1:nil"]);
    // A polka for W seen after precommitting: validValue moves (lines 42-43), the lock does not.
    h.votes(
      "prevote",
      1,
      W,
      [0, 1, 2, 3].filter((i) => i !== me),
    );
    expect(h.state.lock).toEqual({ lockedValue: V, lockedRound: 0, validValue: W, validRound: 1 });
    h.feed({ kind: "timeout", height: 1, round: 1, step: "precommit" });
    expect(h.state.round).toBe(2);
    // lockedRound 0 <= vr 1: prevote W.
    expect(kinds(h.proposal(2, W, 1, true))).toEqual(["vote:prevote:2:W"]);
  });

  it("the proposer re-proposes its validValue with validRound (lines 14-15)", () => {
    const set = EQUAL4;
    const probe = new Harness(set, null);
    probe.start();
    const proposer1 = proposerOf(probe.state, 1);
    const h = new Harness(set, proposer1);
    h.start();
    h.proposal(0, V);
    h.votes("prevote", 0, V, [0, 1, 2, 3]);
    expect(h.state.lock.validValue).toBe(V);
    const next = h.feed({ kind: "timeout", height: 1, round: 0, step: "precommit" });
    expect(kinds(next)).toContain("propose:1:V:0");
  });

  it("reports a double vote once as evidence and does not count the second vote", () => {
    const h = new Harness(EQUAL4, null);
    h.start();
    h.vote("prevote", 0, V, 1);
    expect(kinds(h.vote("prevote", 0, W, 1))).toEqual(["evidence:duplicateVote"]);
    expect(h.vote("prevote", 0, null, 1)).toEqual([]);
    expect(h.vote("prevote", 0, V, 1)).toEqual([]);
    h.vote("prevote", 0, W, 2);
    h.vote("prevote", 0, W, 3);
    // W has validators 2 and 3 only (1's W vote was not counted): no polka for W.
    expect(h.state.lock.validValue).toBeNull();
  });

  it("reports conflicting proposals as evidence and keeps at most maxProposalsPerRound", () => {
    const h = new Harness(EQUAL4, null);
    h.start();
    h.proposal(0, V);
    expect(kinds(h.proposal(0, W))).toEqual(["evidence:duplicateProposal"]);
    expect(h.proposal(0, value("third"))).toEqual([]);
    // The second proposal can still be decided if +2/3 precommit it (line 49 needs proposal(h, r, v)).
    expect(kinds(h.votes("precommit", 0, W, [0, 1, 2]))).toEqual(["decide:0:W"]);
  });

  it("a replica tracks and decides but never votes or proposes", () => {
    const h = new Harness(EQUAL4, null);
    h.start();
    h.proposal(0, V);
    h.votes("prevote", 0, V, [0, 1, 2]);
    h.votes("precommit", 0, V, [0, 1, 2]);
    expect(h.log.some((a) => a.kind === "vote" || a.kind === "propose" || a.kind === "getValue")).toBe(false);
    expect(h.log.some((a) => a.kind === "decide")).toBe(true);
  });

  it("resumes after a restart at the recovered round with the recovered lock", () => {
    const h = new Harness(EQUAL4, nonProposer(EQUAL4, 3));
    h.feed({
      kind: "startHeight",
      height: 7,
      validatorSet: EQUAL4,
      recovered: { round: 3, lock: { ...NO_LOCK, lockedValue: V, lockedRound: 2 } },
    });
    expect(h.state.round).toBe(3);
    expect(kinds(h.proposal(3, W))).toEqual(["vote:prevote:3:nil"]);
  });

  it("never mutates the state it is given", () => {
    const h = new Harness(EQUAL4, nonProposer(EQUAL4, 0));
    h.start();
    const before = h.state;
    const snapshot = JSON.stringify(before, replacer);
    h.proposal(0, V);
    h.votes("prevote", 0, V, [0, 1, 2, 3]);
    h.votes("precommit", 0, V, [0, 1, 2]);
    expect(JSON.stringify(before, replacer)).toBe(snapshot);
    expect(h.state).not.toBe(before);
  });

  it("is deterministic: the same inputs give the same actions and state", () => {
    const run = (): string => {
      const h = new Harness(makeSet([5n, 7n, 11n, 13n, 17n]), 2);
      h.start();
      h.proposal(0, V);
      h.votes("prevote", 0, V, [0, 1, 3, 4]);
      h.votes("precommit", 0, null, [0, 1, 3]);
      h.feed({ kind: "timeout", height: 1, round: 0, step: "precommit" });
      return JSON.stringify({ log: h.log, state: h.state }, replacer);
    };
    expect(run()).toBe(run());
  });

  it("refuses to go back to a lower height (driver bug) with an assertion", () => {
    const h = new Harness(EQUAL4, 0);
    h.start(5);
    expect(() => h.start(4)).toThrow(/below current height/);
  });

  it("says which votes add nothing: the value has more than 2/3 in that step and the voter has not voted there", () => {
    const h = new Harness(EQUAL4, 0);
    h.start(1);
    const vote = (type: VoteType, value: Hex | null, validatorIndex: number, round = 0, height = 1) => ({
      type,
      height,
      round,
      value,
      validatorIndex,
    });
    h.votes("prevote", 0, V, [1, 2]);
    expect(voteAddsNothing(h.state, vote("prevote", V, 3))).toBe(false); // 2 of 4: not yet
    h.vote("prevote", 0, V, 0);
    expect(voteAddsNothing(h.state, vote("prevote", V, 3))).toBe(true);
    expect(voteAddsNothing(h.state, vote("prevote", null, 3))).toBe(false); // another value
    expect(voteAddsNothing(h.state, vote("prevote", V, 2))).toBe(false); // 2 voted: maybe half of an equivocation
    expect(voteAddsNothing(h.state, vote("precommit", V, 3))).toBe(false); // another step
    expect(voteAddsNothing(h.state, vote("prevote", V, 3, 1))).toBe(false); // another round
    expect(voteAddsNothing(h.state, vote("prevote", V, 3, 0, 2))).toBe(false); // another height
    // Weighted: one validator with more than 2/3 of the power is a quorum alone.
    const w = new Harness(makeSet([10n, 1n, 1n, 1n]), 1);
    w.start(1);
    const heavy = w.set.validators.findIndex((v) => v.votingPower === 10n);
    w.vote("precommit", 0, W, heavy);
    expect(voteAddsNothing(w.state, vote("precommit", W, heavy === 0 ? 1 : 0))).toBe(true);
  });
});

function replacer(_key: string, v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Map) return [...v.entries()];
  if (v instanceof Set) return [...v.values()];
  if (v instanceof Uint8Array) return toHex(v);
  return v;
}
