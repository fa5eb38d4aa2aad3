// The driver's start-up window: the network is up (gossip flows) before the driver has loaded its state. Events that
// arrive then must wait, not stop the node.
import { afterEach, describe, expect, it } from "vitest";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { Signer, Vote } from "../../consensus/types.ts";
import { type DriverHarness, driverHarness, SOLO_TIMEOUTS } from "./driver-harness.ts";

const CHAIN = 77_001n;

/** A one-validator chain on a real store: it proposes and commits every height by itself. */
function singleValidator(): Promise<DriverHarness> {
  return driverHarness({
    chainId: CHAIN,
    validators: 1,
    timeouts: SOLO_TIMEOUTS,
    rebroadcastMs: 1_000,
  });
}

describe("driver start-up", () => {
  let harness: DriverHarness | null = null;

  afterEach(async () => {
    await harness?.close();
    harness = null;
  });

  it("queues gossip that arrives before start() and handles it after, without stopping", async () => {
    harness = await singleValidator();
    const { driver, commits } = harness;
    const signer = harness.signers[0] as Signer;
    const fatal: Error[] = [];
    // A peer's prevote for nil at height 1, gossiped before the driver has started.
    const vote: Vote = { type: "prevote", height: 1, round: 0, value: null, validatorIndex: 0 };
    driver.onVote({ ...vote, signature: signer.sign(voteDigestOf(CHAIN, vote)) });
    expect(await driver.idle()).toBe(false); // queued, not handled
    await driver.start((error) => fatal.push(error));
    const deadline = Date.now() + 10_000;
    while (commits.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(fatal).toEqual([]);
    expect(commits.slice(0, 3)).toEqual([1, 2, 3]);
  });

  it("a validator that proposes every height keeps a bounded safety record (one height's votes)", async () => {
    // One validator: it proposes and votes every height. Its record once kept every earlier height's votes.
    harness = await singleValidator();
    const fatal: Error[] = [];
    await harness.driver.start((error) => fatal.push(error));
    const store = harness.state.store;
    const deadline = Date.now() + 60_000;
    while (store.headHeight < 600 && fatal.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(fatal).toEqual([]);
    expect(store.headHeight).toBeGreaterThanOrEqual(600);
    const record = await store.loadSafety();
    expect(record?.ownVotes.length).toBeLessThanOrEqual(4);
    expect(record?.ownVotes.every((v) => v.height === record.height)).toBe(true);
  }, 90_000);
});

describe("halt height", () => {
  let harness: DriverHarness | null = null;

  afterEach(async () => {
    await harness?.close();
    harness = null;
  });

  it("commits up to it, signs nothing above it, halts once; restarted at it, halts at once", async () => {
    harness = await driverHarness({
      chainId: CHAIN,
      validators: 1,
      timeouts: SOLO_TIMEOUTS,
      rebroadcastMs: 1_000,
      haltHeight: 4,
    });
    const fatal: Error[] = [];
    await harness.driver.start((error) => fatal.push(error));
    const deadline = Date.now() + 10_000;
    while (harness.halts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Time for anything it would still do above the halt height.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(fatal).toEqual([]);
    expect(harness.halts).toEqual([4]);
    expect(harness.commits).toEqual([1, 2, 3, 4]);
    expect(harness.state.store.headHeight).toBe(4);
    expect(harness.published.filter((m) => m.height > 4)).toEqual([]);
    expect((await harness.state.store.loadSafety())?.mark?.height).toBe(4);

    const published = harness.published.length;
    const driver = await harness.restart();
    await driver.start((error) => fatal.push(error));
    expect(harness.halts).toEqual([4, 4]);
    await new Promise((r) => setTimeout(r, 300));
    expect(harness.published.length).toBe(published);
    expect(harness.state.store.headHeight).toBe(4);
  });
});
