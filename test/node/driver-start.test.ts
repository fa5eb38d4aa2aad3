// The driver's start-up window: the network is up (gossip flows) before the driver has loaded its state. Events that
// arrive then must wait, not stop the node.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { Vote } from "../../consensus/types.ts";
import { buildGenesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { describeKeys, generateKeys } from "../../src/keys/keys.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { ConsensusDriver, realClock } from "../../src/node/driver.ts";
import { createMetrics } from "../../src/node/metrics.ts";

const CHAIN = 77_001n;

/** A one-validator chain on a real store: it proposes and commits every height by itself. */
async function singleValidator() {
  const dir = await mkdtemp(join(tmpdir(), "dcn-driver-start-"));
  const keys = generateKeys();
  const genesis = parseGenesis(
    buildGenesis({
      chainId: CHAIN,
      genesisTimeMs: Date.now() - 1_000,
      validators: [{ name: "v0", votingPower: 10n, identity: describeKeys(keys) }],
    }),
  );
  const state = await openNodeState({
    dataDir: dir,
    genesis,
    executor: { maxBlockBytes: 1 << 20, maxBlockTransactions: 1_000, maxClockDriftMs: 5_000 },
    nowMs: () => Date.now(),
    log: pino({ level: "silent" }),
  });
  const signer = createBlstSigner(keys.consensus);
  const commits: number[] = [];
  const driver = new ConsensusDriver(
    {
      chainId: CHAIN,
      genesisHash: genesis.hash,
      genesisTimeMs: genesis.genesisTimeMs,
      timeouts: {
        proposeMs: 200,
        proposeDeltaMs: 50,
        prevoteMs: 100,
        prevoteDeltaMs: 50,
        precommitMs: 100,
        precommitDeltaMs: 50,
      },
      rebroadcastMs: 1_000,
      blockIntervalMs: 0,
      emptyBlockIntervalMs: 0,
      maxRoundsAhead: 8,
      maxBufferedMessages: 64,
      maxQueuedEvents: 64,
    },
    {
      store: state.store,
      signer,
      scheme: blstScheme,
      executor: state.executor,
      membership: state.membership,
      clock: realClock,
      log: pino({ level: "silent" }),
      metrics: createMetrics({ defaultMetrics: false }),
      outbox: {
        publishProposal: () => {},
        publishVote: () => {},
        publishCertificate: () => {},
        publishEvidence: () => {},
        stalled: () => {},
        behind: () => {},
        committed: (height) => commits.push(height),
      },
    },
  );
  return { dir, state, driver, signer, commits };
}

describe("driver start-up", () => {
  let dir = "";
  let state: NodeState | null = null;
  let driver: ConsensusDriver | null = null;

  afterEach(async () => {
    await driver?.stop();
    await state?.store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("queues gossip that arrives before start() and handles it after, without stopping", async () => {
    const made = await singleValidator();
    ({ dir, state, driver } = made);
    const { signer, commits } = made;
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
    ({ dir, state, driver } = await singleValidator());
    const fatal: Error[] = [];
    await driver.start((error) => fatal.push(error));
    const store = state.store;
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
