// The production node stack (driver, sync, verifiers, executor, mempool, LevelDB store) under the seeded network and
// clock of driver-sim.ts. Each scenario must commit, keep every invariant and lose no transaction.
import { describe, expect, it } from "vitest";
import { DEFAULT_TIMEOUTS, DriverSim, type DriverSimConfig } from "./driver-sim.ts";

const base: DriverSimConfig = {
  seed: 1,
  validators: 4,
  durationMs: 16_000,
  gstMs: 6_000,
  delayMs: { min: 2, max: 40, maxBeforeGst: 400 },
  lossBeforeGst: 0.1,
  duplicate: 0.05,
  partitions: [],
  crashes: [],
  crashAfterVote: 0,
  doubleVoter: null,
  transactions: 60,
  livenessHeights: 5,
  livenessWindowMs: 8_000,
  timeouts: DEFAULT_TIMEOUTS,
  blockIntervalMs: 250,
  emptyBlockIntervalMs: 600,
  // As in production (4 x the propose timeout): every scenario runs with the adaptive propose timeout.
  proposeTimeoutMaxMs: 1_200,
};

async function run(cfg: Partial<DriverSimConfig>) {
  const sim = await DriverSim.create({ ...base, ...cfg });
  return sim.run();
}

function expectHealthy(r: Awaited<ReturnType<typeof run>>) {
  expect(r.violations, r.violations.join("\n")).toEqual([]);
  expect(r.lostTransactions).toBe(0);
  expect(Math.min(...r.heads.filter((h) => h >= 0))).toBeGreaterThan(5);
}

/** A network that neither loses nor duplicates messages, from the start (GST at 0). */
const RELIABLE_NETWORK = { gstMs: 0, lossBeforeGst: 0, duplicate: 0 } as const;

describe("driver simulation: the real node stack under a seeded network and clock", () => {
  it("commits through loss, duplication and delay, and one seed replays the same chain", async () => {
    const first = await run({ seed: 11 });
    expectHealthy(first);
    expect(first.committedTransactions).toBe(base.transactions);
    const again = await run({ seed: 11 });
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(again.events).toBe(first.events);
  }, 120_000);

  it("survives a partition that splits the validators 2/2, then heals", async () => {
    const r = await run({
      seed: 12,
      partitions: [{ startMs: 1_000, endMs: 5_000, groupOf: [0, 0, 1, 1] }],
    });
    expectHealthy(r);
  }, 120_000);

  it("restarts crashed validators from their LevelDB, including right after a vote was made durable", async () => {
    const r = await run({
      seed: 13,
      crashes: [
        { node: 1, atMs: 1_500, downMs: 1_500 },
        { node: 2, atMs: 3_500, downMs: 800 },
      ],
      crashAfterVote: 0.01,
    });
    expectHealthy(r);
    expect(r.crashes).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("changes the validator set at a registry epoch: one leaves, one joins, later certificates verify against the new set", async () => {
    const membership = {
      genesisMembers: [0, 1, 2, 3],
      laterMembers: [1, 2, 3, 4],
      switchAtBlock: 5,
      l1BlockMs: 1_000,
      confirmations: 1,
      maxMirrorLagMs: 800,
    };
    const sim = await DriverSim.create({ ...base, seed: 15, validators: 5, membership });
    const before = sim.setIdOf(membership.genesisMembers);
    const after = sim.setIdOf(membership.laterMembers);
    const r = await sim.run();
    expectHealthy(r);
    // Every node's chain was decided by the genesis set, then by the new one (certificates checked per height).
    for (const history of r.setHistory) expect(history).toEqual([before, after]);
  }, 120_000);

  it("starts a height only when there is work: an idle subnet waits, a transaction does not", async () => {
    // A 4 s idle interval: without waiting for work, 20 s at a 50 ms minimum interval would be ~200 heights.
    const r = await run({
      seed: 16,
      ...RELIABLE_NETWORK,
      transactions: 12,
      durationMs: 20_000,
      blockIntervalMs: 50,
      emptyBlockIntervalMs: 4_000,
      livenessHeights: 2,
    });
    expectHealthy(r);
    expect(r.committedTransactions).toBe(12);
    // Each transaction started a height (or joined the one under way) instead of waiting out the idle interval.
    expect(Math.max(...r.txLatencyMs)).toBeLessThan(1_500);
    expect(Math.max(...r.heads)).toBeLessThan(12 + 20_000 / 4_000 + 4);
  }, 120_000);

  it("adapts the propose timeout to late proposals: heights commit in round 0 instead of timing out round after round", async () => {
    // Every proposal arrives 750 ms after it is sent, past the 300 ms propose timeout: with fixed timeouts a height
    // needs the round whose timeout (300 + 100 r ms) exceeds that, so round 5 or later.
    const late = {
      seed: 21,
      ...RELIABLE_NETWORK,
      transactions: 20,
      durationMs: 30_000,
      livenessHeights: 1,
      livenessWindowMs: 20_000,
      proposalDelayMs: 750,
    };
    const fixed = await run({ ...late, proposeTimeoutMaxMs: 0 });
    expectHealthy(fixed);
    const adaptive = await run({ ...late, proposeTimeoutMaxMs: 3_000 });
    expectHealthy(adaptive);
    expect(adaptive.lostTransactions).toBe(0);
    const roundZero = (rounds: readonly number[]) =>
      rounds.slice(3).filter((r) => r === 0).length / (rounds.length - 3);
    expect(roundZero(fixed.commitRounds)).toBe(0);
    expect(roundZero(adaptive.commitRounds)).toBeGreaterThan(0.8);
    expect(Math.min(...adaptive.heads)).toBeGreaterThan(Math.max(...fixed.heads));
  }, 180_000);

  it("puts one certificate per height on the wire, and the others' when the block's builder stays silent", async () => {
    const quiet = {
      seed: 22,
      ...RELIABLE_NETWORK,
      transactions: 30,
      durationMs: 6_000,
      livenessHeights: 1,
      livenessWindowMs: 5_000,
      // Heights back to back, as under load: a fallback announcement must survive the start of the next height.
      blockIntervalMs: 0,
      emptyBlockIntervalMs: 0,
    };
    const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
    const normal = await run(quiet);
    expectHealthy(normal);
    const heights = Math.min(...normal.heads);
    expect(sum(normal.certificatesPublished)).toBeGreaterThanOrEqual(heights);
    expect(sum(normal.certificatesPublished)).toBeLessThanOrEqual(heights + 2);
    // Validator 0's certificates never leave it: for the blocks it built, every other validator publishes its own.
    const silent = await run({ ...quiet, silentCertificates: [0] });
    expectHealthy(silent);
    const [own = 0, ...others] = silent.certificatesPublished;
    expect(own).toBeGreaterThan(2);
    expect(sum(others)).toBeGreaterThanOrEqual(Math.min(...silent.heads) - own + 2 * own);
  }, 120_000);

  it("keeps safety and liveness with a double-voting validator, and produces evidence against it only", async () => {
    // Seed 14 sends the two versions of an equivocator's prevote so that two honest validators lock on different
    // values; they get unstuck only by pulling the proof-of-lock prevotes from peers while rounds keep failing.
    const r = await run({ seed: 14, doubleVoter: 3, durationMs: 20_000, gstMs: 8_000, blockIntervalMs: 50 });
    expectHealthy(r);
    expect(r.evidenceAgainst).toEqual([3]);
  }, 120_000);
});
