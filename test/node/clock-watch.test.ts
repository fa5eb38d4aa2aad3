import { describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { ClockWatch } from "../../src/node/clock-watch.ts";

const A = "0x00000000000000000000000000000000000000aa" as Hex;
const B = "0x00000000000000000000000000000000000000bb" as Hex;
const C = "0x00000000000000000000000000000000000000cc" as Hex;

/** `n` proposals of `validator` stamped `offsetMs` against their arrival (parent stamped 100 ms before). */
function feed(w: ClockWatch, validator: Hex, offsetMs: number, n = 5): void {
  for (let i = 0; i < n; i++) {
    const arrival = 1_000_000 + i * 1000;
    w.observe(validator, arrival + offsetMs, arrival + offsetMs - 100, arrival);
  }
}

describe("ClockWatch", () => {
  it("says nothing before a proposer has three samples, or when every clock agrees", () => {
    const w = new ClockWatch(1000);
    feed(w, A, 9000, 2);
    expect(w.readings()).toEqual([]);
    expect(w.verdict()).toEqual({ kind: "ok" });
    const v = new ClockWatch(1000);
    feed(v, A, -40);
    feed(v, B, -60);
    feed(v, C, -20);
    expect(v.verdict()).toEqual({ kind: "ok" });
    expect(v.selfOffsetMs()).toBe(40);
  });

  it("blames this node's clock when the proposers agree with each other and not with it", () => {
    const w = new ClockWatch(1000);
    feed(w, A, 8000);
    feed(w, B, 7950);
    feed(w, C, 8030);
    expect(w.selfOffsetMs()).toBe(-8000);
    expect(w.verdict()).toEqual({ kind: "self", offsetMs: -8000, proposers: 3 });
    const fast = new ClockWatch(1000);
    feed(fast, A, -8000);
    feed(fast, B, -8100);
    expect(fast.verdict()).toEqual({ kind: "self", offsetMs: 8050, proposers: 2 });
  });

  it("blames the one proposer whose clock is off from the others'", () => {
    const w = new ClockWatch(1000);
    feed(w, A, -50);
    feed(w, B, 7950);
    feed(w, C, -30);
    expect(w.selfOffsetMs()).toBe(30);
    expect(w.verdict()).toEqual({ kind: "proposer", validator: B, offsetMs: 7980, comparedWith: 2 });
  });

  it("against one proposer, or proposers that disagree, compares with this node's clock", () => {
    const one = new ClockWatch(1000);
    feed(one, A, 6000);
    expect(one.selfOffsetMs()).toBeNull();
    expect(one.verdict()).toEqual({ kind: "proposer", validator: A, offsetMs: 6000, comparedWith: 0 });
    // With other proposers in the set, one reading waits for a second: the first may be this node's own clock.
    expect(one.verdict(2)).toEqual({ kind: "ok" });
    const two = new ClockWatch(1000);
    feed(two, A, 0);
    feed(two, B, -7000);
    expect(two.selfOffsetMs()).toBeNull();
    expect(two.verdict()).toEqual({ kind: "proposer", validator: B, offsetMs: -7000, comparedWith: 0 });
  });

  it("skips timestamps clamped to parent + 1 ms, keeps the last 15 samples, takes medians, forgets old members", () => {
    const w = new ClockWatch(1000);
    for (let i = 0; i < 5; i++) w.observe(A, 1001, 1000, 9000);
    expect(w.readings()).toEqual([]);
    feed(w, A, 9000, 20);
    feed(w, A, 0, 3);
    expect(w.readings()).toEqual([{ validator: A, offsetMs: 9000, samples: 15 }]);
    feed(w, A, 0, 5);
    expect(w.readings()[0]?.offsetMs).toBe(0);
    w.observe(B.toUpperCase().replace("0X", "0x") as Hex, 2000, 1000, 1500);
    feed(w, B, 500, 2);
    expect(w.readings().map((r) => r.validator)).toEqual([A, B]);
    w.retain(new Set([B]));
    expect(w.readings().map((r) => r.validator)).toEqual([B]);
  });
});
