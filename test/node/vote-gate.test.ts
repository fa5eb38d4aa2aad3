// The vote gate (src/node/vote-gate.ts) against a scripted driver view: four validators of power 10 at height 5.
import { afterEach, describe, expect, it } from "vitest";
import type { SignedVote, VoteType } from "../../consensus/types.ts";
import { type GateRelease, VoteGate, type VoteGateView } from "../../src/node/vote-gate.ts";

const HEIGHT = 5;

function vote(validatorIndex: number, round = 0, type: VoteType = "prevote", height = HEIGHT): SignedVote {
  return {
    type,
    height,
    round,
    value: `0x${"ab".repeat(32)}`,
    validatorIndex,
    signature: new Uint8Array(96),
  } as SignedVote;
}

/** A driver view whose counts the test sets. */
function view() {
  const state = {
    deciding: true,
    height: HEIGHT,
    round: 0,
    voters: new Map<string, Set<number>>(),
    senders: new Map<number, Set<number>>(),
  };
  const v: VoteGateView = {
    position: () =>
      state.deciding ? { height: state.height, round: state.round, powers: [10n, 10n, 10n, 10n], total: 40n } : null,
    counts: (round, type) => ({
      voters: state.voters.get(`${round}:${type}`) ?? new Set(),
      senders: state.senders.get(round) ?? new Set(),
    }),
  };
  return { state, v };
}

/** Settles pending promise callbacks. */
const flush = () => new Promise((r) => setImmediate(r));

describe("VoteGate", () => {
  const gates: VoteGate[] = [];
  const gateOf = (v: VoteGateView, holdMs = 10_000) => {
    const releases: [GateRelease, number][] = [];
    const gate = new VoteGate(v, { holdMs, onRelease: (reason, n) => releases.push([reason, n]) });
    gates.push(gate);
    return { gate, releases };
  };
  afterEach(() => {
    for (const g of gates.splice(0)) g.stop();
  });

  it("does not hold a vote of another height, or while the driver is not deciding", async () => {
    const { state, v } = view();
    const { gate } = gateOf(v);
    expect(await gate.wait(vote(1, 0, "prevote", HEIGHT + 1))).toBe("ungated");
    state.deciding = false;
    expect(await gate.wait(vote(1))).toBe("ungated");
    expect(gate.waiting).toBe(0);
  });

  it("holds votes until the counted and the waiting ones could cross 2/3, then releases them together", async () => {
    const { state, v } = view();
    state.voters.set("0:prevote", new Set([0])); // this node's own prevote is counted
    const { gate, releases } = gateOf(v);
    const outcomes: GateRelease[] = [];
    void gate.wait(vote(1)).then((r) => outcomes.push(r));
    await flush();
    expect(outcomes).toEqual([]); // 20 of 40
    expect(gate.waiting).toBe(1);
    void gate.wait(vote(2)).then((r) => outcomes.push(r));
    await flush();
    expect(outcomes).toEqual(["quorum", "quorum"]); // 30 of 40
    expect(releases).toEqual([["quorum", 2]]);
    // Precommits are another step: held on their own.
    void gate.wait(vote(1, 0, "precommit")).then((r) => outcomes.push(r));
    await flush();
    expect(gate.waiting).toBe(1);
  });

  it("releases on recheck when the driver's own vote completes the threshold", async () => {
    const { state, v } = view();
    const { gate } = gateOf(v);
    const outcomes: GateRelease[] = [];
    for (const i of [1, 2]) void gate.wait(vote(i)).then((r) => outcomes.push(r));
    await flush();
    expect(outcomes).toEqual([]); // 20 of 40, nothing counted yet
    gate.recheck();
    await flush();
    expect(outcomes).toEqual([]);
    state.voters.set("0:prevote", new Set([0]));
    gate.recheck();
    await flush();
    expect(outcomes).toEqual(["quorum", "quorum"]);
  });

  it("counts a validator once: an equivocator's second vote adds nothing and waits for the deadline", async () => {
    const { state, v } = view();
    state.voters.set("0:prevote", new Set([0, 1]));
    const { gate, releases } = gateOf(v, 30);
    const second = gate.wait({ ...vote(1), value: null } as SignedVote);
    await flush();
    expect(gate.waiting).toBe(1);
    expect(await second).toBe("deadline");
    expect(releases).toEqual([["deadline", 1]]);
  });

  it("releases votes of a later round once its senders and waiting validators exceed 1/3 (round skip)", async () => {
    const { v } = view();
    const { gate } = gateOf(v);
    const outcomes: GateRelease[] = [];
    void gate.wait(vote(1, 2, "prevote")).then((r) => outcomes.push(r));
    await flush();
    expect(outcomes).toEqual([]); // 10 of 40
    void gate.wait(vote(2, 2, "precommit")).then((r) => outcomes.push(r));
    await flush();
    expect(outcomes.sort()).toEqual(["round_skip", "round_skip"]); // 20 of 40 in round 2, either step
  });

  it("releases what waits when the driver moves to another height, and everything on stop", async () => {
    const { state, v } = view();
    const { gate } = gateOf(v);
    const first = gate.wait(vote(1));
    state.height = HEIGHT + 1;
    gate.recheck();
    expect(await first).toBe("moved");
    state.height = HEIGHT;
    const second = gate.wait(vote(3));
    gate.stop();
    expect(await second).toBe("stopped");
    expect(gate.waiting).toBe(0);
  });
});
