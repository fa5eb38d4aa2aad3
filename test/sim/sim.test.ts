// The simulator in CI: many seeds of random faults with no violation, a few with real BLS signatures, and proof that
// the checker catches a deliberately broken safety rule.
import { describe, expect, it } from "vitest";
import { sweep } from "./run.ts";
import { blsKeys, scenario } from "./scenario.ts";
import { simulate } from "./simulator.ts";

const SEEDS = Number(process.env.SIM_SEEDS ?? 240);

function describeFailures(report: ReturnType<typeof sweep>): string {
  return report.failures
    .map((f) => `${f.replay}: ${f.result.violations.map((v) => `${v.kind} ${v.detail}`).join("; ")}`)
    .join("\n");
}

describe("consensus simulator", () => {
  it(`${SEEDS} seeds with 4, 7 and 10 validators under random faults: no violation`, () => {
    const report = sweep({ seeds: SEEDS, firstSeed: 1, validators: [4, 7, 10] });
    expect(describeFailures(report)).toBe("");
    // The faults really happened and the chain really advanced.
    expect(report.heights).toBeGreaterThan(SEEDS * 3);
    expect(report.maxRound).toBeGreaterThan(0);
    expect(report.evidence).toBeGreaterThan(0);
    expect(report.crashes).toBeGreaterThan(0);
    expect(report.syncedBlocks).toBeGreaterThan(0);
    // CPU-bound: about 30 s on 2 idle cores, more on a busy machine.
  }, 240_000);

  it("with real BLS signatures (blst) and certificates: no violation", () => {
    const report = sweep({ seeds: 4, firstSeed: 1, validators: [4], keys: blsKeys });
    expect(describeFailures(report)).toBe("");
    expect(report.heights).toBeGreaterThan(4 * 3);
  });

  it("replays a seed exactly", () => {
    const a = simulate(scenario(42, { validators: 7 }));
    const b = simulate(scenario(42, { validators: 7 }));
    expect(b).toEqual(a);
  });

  it("catches a broken safety rule: the same seeds are safe with persisted safety data and double-sign without it", () => {
    const base = { seeds: 60, firstSeed: 1, validators: [4, 7] } as const;
    const correct = sweep(base);
    expect(describeFailures(correct)).toBe("");
    const broken = sweep({ ...base, forgetSafetyData: true });
    const kinds = new Set(broken.failures.flatMap((f) => f.result.violations.map((v) => v.kind)));
    expect(kinds.has("double_sign")).toBe(true);
  });
});
