// The evidence reporter's decisions (src/node/evidence-reporter.ts) on a real store holding real evidence: who submits
// first, what is not slashable, what is settled and what is tried again. The submitter here records calls and answers
// as told; the whole path through L1 (the Slashing contract slashes and jails) is test/cli/devnet-membership.test.ts.
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { SignedVote, Signer, ValidatorSet, Vote } from "../../consensus/types.ts";
import { indexOfAddress, validatorAddress } from "../../consensus/validator-set.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import type { EvidenceOutcome, SlashingSubmitter } from "../../src/l1/slashing.ts";
import type { L1Answer, L1Epoch } from "../../src/l1/view.ts";
import { EvidenceReporter, type EvidenceReportOutcome } from "../../src/node/evidence-reporter.ts";
import { type DriverHarness, driverHarness } from "./driver-harness.ts";

const CHAIN = 77_004n;
const T = { proposeMs: 1, proposeDeltaMs: 0, prevoteMs: 1, prevoteDeltaMs: 0, precommitMs: 1, precommitDeltaMs: 0 };

describe("equivocation evidence reporter", () => {
  let harness: DriverHarness | null = null;

  afterEach(async () => {
    await harness?.close();
    harness = null;
  });

  /** A 4-validator store (head 0) holding evidence against `offender` (a genesis index) at height 1. */
  async function setUp(offender: number) {
    harness = await driverHarness({ chainId: CHAIN, validators: 4, timeouts: T, rebroadcastMs: 60_000 });
    const h = harness;
    const set = h.driver.validatorSetFor(1) as ValidatorSet;
    const signer = h.signers[offender] as Signer;
    const index = indexOfAddress(set, validatorAddress(signer.publicKey));
    const vote = (label: string): SignedVote => {
      const v: Vote = {
        type: "prevote",
        height: 1,
        round: 0,
        value: toHex(keccak256(utf8(label))),
        validatorIndex: index,
      };
      return { ...v, signature: signer.sign(voteDigestOf(CHAIN, v)) };
    };
    expect(await h.state.store.saveEvidence({ kind: "duplicateVote", first: vote("a"), second: vote("b") })).toBe(true);
    return { h, set };
  }

  function reporter(
    h: DriverHarness,
    self: Signer,
    opts: { epoch?: L1Answer<L1Epoch>; answers?: EvidenceOutcome[]; staggerMs?: number; setId?: Hex } = {},
  ) {
    const calls: { epoch: bigint; first: SignedVote }[] = [];
    const outcomes: EvidenceReportOutcome[] = [];
    const answers = [...(opts.answers ?? [])];
    const submitter = {
      submit: async (epoch: bigint, first: SignedVote) => {
        calls.push({ epoch, first });
        return answers.shift() ?? { kind: "slashed", txHash: `0x${"11".repeat(32)}`, l1Block: 5n };
      },
    } as unknown as SlashingSubmitter;
    // As if anchored to an L1 registry: the reporter reads the genesis origin for heights 1 and 2.
    const genesis: Genesis = {
      ...h.genesis,
      l1: {
        chainId: 1n,
        registry: `0x${"22".repeat(20)}`,
        origin: { number: 7n, hash: `0x${"33".repeat(32)}` },
        finality: null,
      },
    };
    const set = h.driver.validatorSetFor(1) as ValidatorSet;
    const r = new EvidenceReporter(
      { pollMs: 1_000, staggerMs: opts.staggerMs ?? 3_600_000, maxAttempts: 3 },
      {
        store: h.state.store,
        genesis,
        originOf: (height) => h.state.membership.originOf(height),
        epochAt: async () =>
          opts.epoch ?? { kind: "ok", value: { epoch: 4n, members: [], setId: opts.setId ?? set.id } },
        submitter,
        self: validatorAddress(self.publicKey),
        log: pino({ level: "silent" }),
        onOutcome: (o) => outcomes.push(o),
        nowMs: () => Date.now(),
      },
    );
    return { r, calls, outcomes };
  }

  it("the validators other than the offender take turns: one submits at once, for the epoch whose set decided it", async () => {
    const { h } = await setUp(2);
    const submitted: number[] = [];
    for (const i of [0, 1, 3]) {
      const { r, calls, outcomes } = reporter(h, h.signers[i] as Signer);
      await r.tick();
      if (calls.length > 0) {
        submitted.push(i);
        expect(calls[0]?.epoch).toBe(4n);
        expect(outcomes).toEqual(["slashed"]);
      }
    }
    expect(submitted).toHaveLength(1);
  });

  it("settles without submitting: its own key, a set that is not the registry epoch's, an unknown L1 waits", async () => {
    const { h, set } = await setUp(0);
    const own = reporter(h, h.signers[0] as Signer, { staggerMs: 0 });
    await own.r.tick();
    expect(own.calls).toEqual([]);
    expect(own.outcomes).toEqual(["not_slashable"]);

    const other = reporter(h, h.signers[1] as Signer, { staggerMs: 0, setId: `0x${"44".repeat(32)}` });
    await other.r.tick();
    expect(other.calls).toEqual([]);
    expect(other.outcomes).toEqual(["not_slashable"]);

    const later = reporter(h, h.signers[1] as Signer, { staggerMs: 0, epoch: { kind: "unknown", reason: "lagging" } });
    await later.r.tick();
    expect(later.calls).toEqual([]);
    expect(later.outcomes).toEqual([]);
    expect(set.validators).toHaveLength(4);
  });

  it("a refusal or evidence already used is final; a failed send is tried again, then given up", async () => {
    const { h } = await setUp(3);
    const used = reporter(h, h.signers[0] as Signer, {
      staggerMs: 0,
      answers: [{ kind: "already_used", reason: "EvidenceAlreadyUsed" }],
    });
    await used.r.tick();
    await used.r.tick();
    expect(used.calls).toHaveLength(1);
    expect(used.outcomes).toEqual(["already_used"]);

    const failing = reporter(h, h.signers[0] as Signer, {
      staggerMs: 0,
      answers: [1, 2, 3, 4].map(() => ({ kind: "failed", reason: "L1 down" }) as const),
    });
    for (let i = 0; i < 5; i++) await failing.r.tick();
    expect(failing.calls).toHaveLength(3);
    expect(failing.outcomes).toEqual(["failed", "failed", "failed", "given_up"]);
  });
});
