import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkSign, type SigningMark, type SignStep, signedAfter } from "../../consensus/safety.ts";

const D1 = new Uint8Array(32).fill(1);
const D2 = new Uint8Array(32).fill(2);

describe("signing high-water mark", () => {
  const last: SigningMark = { height: 10, round: 2, step: "prevote", digest: D1 };

  it.each([
    ["first signature", null, 1, 0, "proposal", D1, true],
    ["higher height", last, 11, 0, "proposal", D2, true],
    ["higher round", last, 10, 3, "proposal", D2, true],
    ["higher step", last, 10, 2, "precommit", D2, true],
    ["identical re-sign after a crash", last, 10, 2, "prevote", D1, true],
    ["conflicting digest at the same step", last, 10, 2, "prevote", D2, false],
    ["lower step", last, 10, 2, "proposal", D1, false],
    ["lower round", last, 10, 1, "precommit", D2, false],
    ["lower height", last, 9, 5, "precommit", D2, false],
  ] as const)("%s", (_name, prior, height, round, step, digest, ok) => {
    const r = checkSign(prior, height, round, step, digest);
    expect(r.ok).toBe(ok);
    if (r.ok) expect(r.mark).toEqual({ height, round, step, digest });
  });

  it("names why it refused", () => {
    const r = checkSign(last, 10, 2, "prevote", D2);
    expect(r.ok === false && r.refusal.code).toBe("conflicting_digest");
    const s = checkSign(last, 9, 0, "prevote", D1);
    expect(s.ok === false && s.refusal.code).toBe("height_regression");
  });

  it("over any sequence of requests, never accepts two different digests for one (height, round, step)", () => {
    const steps: SignStep[] = ["proposal", "prevote", "precommit"];
    const request = fc.record({
      height: fc.integer({ min: 1, max: 3 }),
      round: fc.integer({ min: 0, max: 3 }),
      step: fc.constantFrom(...steps),
      digest: fc.constantFrom(D1, D2),
    });
    fc.assert(
      fc.property(fc.array(request, { maxLength: 60 }), (requests) => {
        let mark: SigningMark | null = null;
        const signed = new Map<string, Uint8Array>();
        for (const q of requests) {
          const r = checkSign(mark, q.height, q.round, q.step, q.digest);
          if (!r.ok) continue;
          mark = r.mark;
          const key = `${q.height}/${q.round}/${q.step}`;
          const prior = signed.get(key);
          if (prior !== undefined && prior !== q.digest) return false;
          signed.set(key, q.digest);
        }
        return true;
      }),
    );
  });

  it("tells which positions a record cannot have signed: only those after its mark", () => {
    expect(signedAfter(null, 1, 0, "proposal")).toBe(true);
    expect(signedAfter(last, 11, 0, "proposal")).toBe(true);
    expect(signedAfter(last, 10, 3, "proposal")).toBe(true);
    expect(signedAfter(last, 10, 2, "precommit")).toBe(true);
    expect(signedAfter(last, 10, 2, "prevote")).toBe(false);
    expect(signedAfter(last, 10, 2, "proposal")).toBe(false);
    expect(signedAfter(last, 10, 1, "precommit")).toBe(false);
    expect(signedAfter(last, 9, 7, "precommit")).toBe(false);
    // Exactly the positions checkSign would accept a new digest at.
    const steps: SignStep[] = ["proposal", "prevote", "precommit"];
    for (let h = 9; h <= 11; h++)
      for (let r = 0; r <= 3; r++)
        for (const st of steps) expect(signedAfter(last, h, r, st)).toBe(checkSign(last, h, r, st, D2).ok);
  });
});
