// A vote that can add nothing is left unverified (the gossip path asks driver.redundantVote), but it may be half of an
// equivocation: when its validator's conflicting vote arrives, the driver checks the kept vote and counts it first,
// so that the evidence has both. A kept vote with a bad signature is dropped.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { Evidence, SignedVote, Signer } from "../../consensus/types.ts";
import { indexOfAddress, validatorAddress } from "../../consensus/validator-set.ts";
import { buildGenesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { describeKeys, generateKeys } from "../../src/keys/keys.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { ConsensusDriver, realClock } from "../../src/node/driver.ts";
import { createMetrics } from "../../src/node/metrics.ts";

const CHAIN = 77_002n;
const V = `0x${"ab".repeat(32)}` as Hex;

/** Validator 0 of a 7-validator subnet (equal power: 5 votes are a quorum), on a real store; nothing times out. */
async function member() {
  const dir = await mkdtemp(join(tmpdir(), "dcn-driver-evidence-"));
  const keys = Array.from({ length: 7 }, () => generateKeys());
  const genesis = parseGenesis(
    buildGenesis({
      chainId: CHAIN,
      genesisTimeMs: Date.now() - 1_000,
      validators: keys.map((k, i) => ({ name: `v${i}`, votingPower: 10n, identity: describeKeys(k) })),
    }),
  );
  const state = await openNodeState({
    dataDir: dir,
    genesis,
    executor: { maxBlockBytes: 1 << 20, maxBlockTransactions: 1_000, maxClockDriftMs: 5_000 },
    nowMs: () => Date.now(),
    log: pino({ level: "silent" }),
  });
  const signers = keys.map((k) => createBlstSigner(k.consensus));
  const evidence: Evidence[] = [];
  const long = 60_000;
  const driver = new ConsensusDriver(
    {
      chainId: CHAIN,
      genesisHash: genesis.hash,
      genesisTimeMs: genesis.genesisTimeMs,
      timeouts: {
        proposeMs: long,
        proposeDeltaMs: 0,
        prevoteMs: long,
        prevoteDeltaMs: 0,
        precommitMs: long,
        precommitDeltaMs: 0,
      },
      rebroadcastMs: long,
      blockIntervalMs: 0,
      emptyBlockIntervalMs: 0,
      maxRoundsAhead: 8,
      maxBufferedMessages: 64,
      maxQueuedEvents: 64,
    },
    {
      store: state.store,
      signer: signers[0] as Signer,
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
        publishEvidence: (e) => evidence.push(e),
        stalled: () => {},
        behind: () => {},
        committed: () => {},
      },
    },
  );
  return { dir, state, driver, signers, evidence };
}

describe("driver: votes left unverified because they added nothing", () => {
  let dir = "";
  let state: NodeState | null = null;
  let driver: ConsensusDriver | null = null;

  afterEach(async () => {
    await driver?.stop();
    await state?.store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function setUp() {
    const made = await member();
    ({ dir, state, driver } = made);
    const d = made.driver;
    const fatal: Error[] = [];
    await d.start((error) => fatal.push(error));
    const set = d.validatorSetFor(1);
    if (set === undefined) throw new Error("no set for height 1");
    const prevote = (signer: Signer, value: Hex | null, signWith: Signer = signer): SignedVote => {
      const vote = {
        type: "prevote" as const,
        height: 1,
        round: 0,
        value,
        validatorIndex: indexOfAddress(set, validatorAddress(signer.publicKey)),
      };
      return { ...vote, signature: signWith.sign(voteDigestOf(CHAIN, vote)) };
    };
    const others = made.signers.slice(1);
    // Five of seven prevote V: a quorum.
    for (const s of others.slice(0, 5)) d.onVote(prevote(s, V));
    await d.idle();
    return { d, prevote, late: others[5] as Signer, liar: others[0] as Signer, evidence: made.evidence, fatal };
  }

  it("checks the kept vote when its validator's conflicting vote arrives, and produces the evidence", async () => {
    const { d, prevote, late, evidence, fatal } = await setUp();
    const kept = prevote(late, V);
    expect(d.redundantVote(kept)).toBe(true);
    expect(evidence).toEqual([]);
    const conflicting = prevote(late, null);
    d.onVote(conflicting);
    await d.idle();
    expect(fatal).toEqual([]);
    expect(evidence).toEqual([{ kind: "duplicateVote", first: kept, second: conflicting }]);
  });

  it("drops a kept vote whose signature is bad: no evidence, the conflicting vote counts alone", async () => {
    const { d, prevote, late, liar, evidence, fatal } = await setUp();
    const forged = prevote(late, V, liar);
    expect(d.redundantVote(forged)).toBe(true);
    d.onVote(prevote(late, null));
    await d.idle();
    expect(fatal).toEqual([]);
    expect(evidence).toEqual([]);
    // Its validator has voted now (nil): a vote of it for V is no longer redundant, it gets checked.
    expect(d.redundantVote(prevote(late, V))).toBe(false);
  });
});
