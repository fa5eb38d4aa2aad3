// Doppelganger protection (src/node/driver.ts): a message signed by this validator's key that its safety record cannot
// account for means another process holds the key; the driver then signs nothing until consensus.doppelgangerWaitMs
// after that message. Real BLS keys, a real store; the tests play the other process.
import { afterEach, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { NO_LOCK, type TimeoutParams } from "../../consensus/machine.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { Signer, Vote } from "../../consensus/types.ts";
import { indexOfAddress, validatorAddress } from "../../consensus/validator-set.ts";
import type { NodeMetrics } from "../../src/node/metrics.ts";
import { type DriverHarness, driverHarness, SOLO_TIMEOUTS } from "./driver-harness.ts";

const CHAIN = 77_003n;
const V = `0x${"cd".repeat(32)}` as Hex;
const LONG = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metric(metrics: NodeMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  if (m === undefined) throw new Error(`no metric ${name}`);
  const values = (await m.get()).values.filter((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  );
  return values.reduce((sum, v) => sum + v.value, 0);
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("doppelganger protection", () => {
  let harness: DriverHarness | null = null;

  afterEach(async () => {
    await harness?.close();
    harness = null;
  });

  /**
   * Validator 0 of 4 at height 1, not its round-0 proposer: its first signature is a nil prevote when the 150 ms propose
   * timeout ends (nothing else times out). A prevote of its key for V at (1, 0), which it never signed, arrives first.
   */
  async function foreignPrevoteFirst(doppelgangerWaitMs: number) {
    const timeouts: TimeoutParams = {
      proposeMs: 150,
      proposeDeltaMs: 0,
      prevoteMs: LONG,
      prevoteDeltaMs: 0,
      precommitMs: LONG,
      precommitDeltaMs: 0,
    };
    let self = -1;
    for (;;) {
      harness = await driverHarness({
        chainId: CHAIN,
        validators: 4,
        timeouts,
        rebroadcastMs: LONG,
        doppelgangerWaitMs,
      });
      const set = harness.driver.validatorSetFor(1);
      if (set === undefined) throw new Error("no set for height 1");
      self = indexOfAddress(set, validatorAddress((harness.signers[0] as Signer).publicKey));
      if (set.proposerIndex !== self) break;
      await harness.close();
    }
    const h = harness;
    const own: Vote = { type: "prevote", height: 1, round: 0, value: V, validatorIndex: self };
    h.driver.onVote({ ...own, signature: (h.signers[0] as Signer).sign(voteDigestOf(CHAIN, own)) });
    const fatal: Error[] = [];
    await h.driver.start((error) => fatal.push(error));
    await sleep(600);
    await h.driver.idle();
    return { h, fatal };
  }

  it("signs nothing after a vote of its key it did not sign, and says so", async () => {
    const startedS = Date.now() / 1000;
    const { h, fatal } = await foreignPrevoteFirst(LONG);
    expect(fatal).toEqual([]);
    expect(h.published).toEqual([]);
    expect(await metric(h.metrics, "dcn_consensus_doppelganger_signatures_total", { source: "vote" })).toBe(1);
    expect(await metric(h.metrics, "dcn_consensus_signing_refusals_total", { code: "doppelganger" })).toBe(1);
    const until = await metric(h.metrics, "dcn_consensus_signing_paused_until_seconds");
    expect(until).toBeGreaterThan(startedS + LONG / 1000 - 5);
    expect(until).toBeLessThan(startedS + LONG / 1000 + 5);
    // /status and lumia_status say so (NodeStatus.signingPausedForMs comes from here).
    expect(h.driver.status().signingPausedUntilMs).toBeGreaterThan(Date.now() + LONG - 5_000);
  });

  it("with doppelgangerWaitMs 0 only counts it: the nil prevote goes out", async () => {
    const { h, fatal } = await foreignPrevoteFirst(0);
    expect(fatal).toEqual([]);
    expect(h.published).toMatchObject([{ type: "prevote", height: 1, round: 0, value: null }]);
    expect(await metric(h.metrics, "dcn_consensus_doppelganger_signatures_total", { source: "vote" })).toBe(1);
    expect(await metric(h.metrics, "dcn_consensus_signing_refusals_total", { code: "doppelganger" })).toBe(0);
    expect(await metric(h.metrics, "dcn_consensus_signing_paused_until_seconds")).toBe(0);
    expect(h.driver.status().signingPausedUntilMs).toBeNull();
  });

  it("once the pause ends, signs what it held back, but never where the other process signed", async () => {
    const { h, fatal } = await foreignPrevoteFirst(800);
    // The nil prevote (1, 0) it held back is where the other process prevoted V: it stays unsigned.
    await sleep(900);
    await h.driver.idle();
    expect(h.published).toEqual([]);
    // Three others prevote nil: a nil polka, and its precommit at (1, 0) is a position the other process did not sign.
    const set = h.driver.validatorSetFor(1);
    if (set === undefined) throw new Error("no set for height 1");
    for (const signer of h.signers.slice(1)) {
      const vote: Vote = {
        type: "prevote",
        height: 1,
        round: 0,
        value: null,
        validatorIndex: indexOfAddress(set, validatorAddress(signer.publicKey)),
      };
      h.driver.onVote({ ...vote, signature: signer.sign(voteDigestOf(CHAIN, vote)) });
    }
    await waitUntil("its precommit", () => h.published.length > 0, 5_000);
    expect(h.published).toMatchObject([{ type: "precommit", height: 1, round: 0, value: null }]);
    expect(h.evidence).toEqual([]);
    expect(fatal).toEqual([]);
  });

  /** A one-validator chain: it proposes and commits every height alone, so a pause stops the chain. */
  async function soloChain(): Promise<DriverHarness> {
    harness = await driverHarness({
      chainId: CHAIN,
      validators: 1,
      timeouts: SOLO_TIMEOUTS,
      rebroadcastMs: 1_000,
      doppelgangerWaitMs: 1_500,
    });
    const fatal: Error[] = [];
    await harness.driver.start((error) => fatal.push(error));
    await waitUntil("height 5", () => (harness?.state.store.headHeight ?? 0) >= 5, 20_000);
    expect(fatal).toEqual([]);
    return harness;
  }

  it("a restart with its safety record signs on at once: its own signatures are its own", async () => {
    const h = await soloChain();
    const driver = await h.restart();
    const head = h.state.store.headHeight;
    await driver.start(() => {});
    await waitUntil("3 more heights", () => h.state.store.headHeight >= head + 3, 10_000);
    expect(await metric(h.metrics, "dcn_consensus_doppelganger_signatures_total")).toBe(0);
    expect(await metric(h.metrics, "dcn_consensus_signing_refusals_total", { code: "doppelganger" })).toBe(0);
  });

  it("a restart that lost its safety record waits out its own recent certificates, then signs on", async () => {
    const h = await soloChain();
    const driver = await h.restart();
    // As after a wiped data directory restored from elsewhere, or a state sync: the chain is there, the record is not.
    await h.state.store.saveSafety({
      mark: null,
      height: 0,
      lock: NO_LOCK,
      proofOfLock: [],
      ownVotes: [],
      ownProposal: null,
      blocks: [],
    });
    const head = h.state.store.headHeight;
    const restartedMs = Date.now();
    await driver.start(() => {});
    // The certificates of its last heights carry its key's precommits that the empty record cannot account for.
    expect(
      await metric(h.metrics, "dcn_consensus_doppelganger_signatures_total", { source: "certificate" }),
    ).toBeGreaterThan(0);
    await sleep(700);
    expect(h.state.store.headHeight).toBe(head);
    expect(await metric(h.metrics, "dcn_consensus_signing_refusals_total", { code: "doppelganger" })).toBeGreaterThan(
      0,
    );
    // 1.5 s after the newest of those blocks it signs again, and the chain goes on from where it was.
    await waitUntil("the next height", () => h.state.store.headHeight > head, 10_000);
    expect(Date.now() - restartedMs).toBeGreaterThan(700);
    await waitUntil("3 more heights", () => h.state.store.headHeight >= head + 3, 10_000);
  });
});
