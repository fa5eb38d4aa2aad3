// Slashing on anvil: two conflicting votes in the node's wire format, signed by one validator of an epoch's set,
// verified on chain; the pool (active and unbonding, delegators pro rata) is cut, the validator jailed and dropped from
// the next set, and the same evidence is refused a second time.
import type { Address, Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { voteDigest, type WorkReportEntry } from "../../consensus/signing.ts";
import type { VoteType } from "../../consensus/types.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import { g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import {
  LUMIA,
  type OperatorKeys,
  operatorKeys,
  revertOf,
  type StakingChain,
  SUBNET_CHAIN_ID,
  startStakingChain,
} from "./fixture.ts";

let chain: StakingChain;
let snapshot: Hex;
let setKeys: OperatorKeys[];
/** Sequencer id and operator by set index of epoch 1. */
let seqAt: { id: number; operator: Address }[];
let delegator: Address;

const user = (i: number) => {
  const u = chain.users[i];
  if (u === undefined) throw new Error(`no user ${i}`);
  return u;
};
const block = (label: string): Hex => toHex(keccak256(utf8(label)));

beforeAll(async () => {
  chain = await startStakingChain({ slashBps: 1_000, unbondingEpochs: 3n });
  delegator = user(10);
  await chain.fundAccount(delegator, 10_000n * LUMIA);
  const byKey = new Map<string, OperatorKeys>();
  const byOperator = new Map<string, number>();
  for (let i = 0; i < 4; i++) {
    const keys = operatorKeys(30 + i);
    byKey.set(keys.publicKey, keys);
    await chain.fundAccount(user(i), 10_000n * LUMIA);
    const { id } = await chain.addSequencer(user(i), keys, 2_000n * LUMIA + BigInt(i) * LUMIA);
    byOperator.set(keys.publicKey, id);
  }
  await chain.advanceEpoch();
  setKeys = await chain.keysInSetOrder(1n, byKey);
  seqAt = await Promise.all(
    setKeys.map(async (k) => {
      const id = byOperator.get(k.publicKey) ?? 0;
      return { id, operator: await chain.registry.read.operatorOf([id]) };
    }),
  );
  // The delegator backs set index 0 and has part of it unbonding.
  const target = seqAt[0]?.id ?? 0;
  await chain.mined(chain.staking.write.stake([target, 1_000n * LUMIA], chain.as(delegator)));
  await chain.mined(chain.staking.write.unbond([target, 400n * LUMIA], chain.as(delegator)));
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(async () => {
  snapshot = await chain.snapshot();
});
afterEach(async () => {
  await chain.revert(snapshot);
});

interface VoteSpec {
  type?: VoteType;
  height?: number;
  round?: number;
  value?: Hex | null;
  index?: number;
  /** Signs with these keys instead of the index's. */
  keys?: OperatorKeys | undefined;
}

function vote(spec: VoteSpec) {
  const index = spec.index ?? 0;
  const keys = spec.keys ?? setKeys[index];
  if (keys === undefined) throw new Error(`no keys at ${index}`);
  const v = {
    type: spec.type ?? "precommit",
    height: spec.height ?? 1_234,
    round: spec.round ?? 0,
    value: spec.value === undefined ? block("a") : spec.value,
    validatorIndex: index,
  } as const;
  const signature = keys.signer.sign(voteDigest(SUBNET_CHAIN_ID, v.type, v.height, v.round, v.value));
  const encoded = encodeSignedVote({ ...v, signature });
  return { encoded: toHex(encoded), signatureG2: toHex(g2ToEip2537(signature)) };
}

const submit = (epoch: bigint, a: ReturnType<typeof vote>, b: ReturnType<typeof vote>) =>
  chain.slashing.write.submitEvidence([epoch, a, b], chain.as(user(15)));
const simulate = (epoch: bigint, a: ReturnType<typeof vote>, b: ReturnType<typeof vote>) =>
  chain.slashing.simulate.submitEvidence([epoch, a, b], chain.as(user(15)));

describe("equivocation evidence", () => {
  it("slashes the pool pro rata (active and unbonding), pays the treasury, jails, and drops it from the next set", async () => {
    const victim = seqAt[0];
    if (victim === undefined) throw new Error("setup");
    const poolBefore = await chain.staking.read.pool([victim.id]);
    const delegatorBefore = await chain.staking.read.stakeOf([victim.id, delegator]);
    const unbondingBefore = await chain.staking.read.unbondingOf([victim.id, delegator]);
    const treasuryBefore = await chain.token.read.balanceOf([chain.treasury]);

    const receipt = await chain.mined(submit(1n, vote({ value: block("a") }), vote({ value: block("b") })));
    expect(receipt.gasUsed).toBeLessThan(700_000n);

    const pool = await chain.staking.read.pool([victim.id]);
    const cutActive = poolBefore.activeStake / 10n;
    const cutUnbonding = poolBefore.unbondingStake / 10n;
    expect(pool.activeStake).toBe(poolBefore.activeStake - cutActive);
    expect(pool.unbondingStake).toBe(poolBefore.unbondingStake - cutUnbonding);
    expect(pool.activeShares).toBe(poolBefore.activeShares);
    expect(await chain.token.read.balanceOf([chain.treasury])).toBe(treasuryBefore + cutActive + cutUnbonding);
    // Delegators lose the same fraction as the operator (up to a wei of rounding).
    const delegatorAfter = await chain.staking.read.stakeOf([victim.id, delegator]);
    expect(delegatorBefore - delegatorAfter - delegatorBefore / 10n).toBeLessThanOrEqual(1n);
    const unbondingAfter = await chain.staking.read.unbondingOf([victim.id, delegator]);
    expect(unbondingBefore - unbondingAfter - unbondingBefore / 10n).toBeLessThanOrEqual(1n);

    expect(await chain.registry.read.isJailed([victim.id])).toBe(true);
    const [event] = await chain.slashing.getEvents.EquivocationSlashed({}, { fromBlock: receipt.blockNumber });
    expect(event?.args.sequencerId).toBe(victim.id);
    expect(event?.args.height).toBe(1_234n);
    expect(event?.args.slashedAmount).toBe(cutActive + cutUnbonding);

    const e2 = await chain.advanceEpoch();
    const members = await chain.registry.read.epochMembers([e2]);
    expect(members.map((m) => m.sequencerId)).not.toContain(victim.id);
    expect(members).toHaveLength(3);
    // Governance unjails: back at the following boundary.
    await chain.mined(chain.registry.write.unjail([victim.id], chain.gov));
    const e3 = await chain.advanceEpoch();
    expect((await chain.registry.read.epochMembers([e3])).map((m) => m.sequencerId)).toContain(victim.id);
  });

  it("refuses the same evidence again, in either order (EvidenceAlreadyUsed), and a second offence in the epoch", async () => {
    const a = vote({ index: 2, value: block("a") });
    const b = vote({ index: 2, value: block("b") });
    await chain.mined(submit(1n, a, b));
    expect(await revertOf(simulate(1n, a, b))).toBe("EvidenceAlreadyUsed");
    expect(await revertOf(simulate(1n, b, a))).toBe("EvidenceAlreadyUsed");
    const c = vote({ index: 2, height: 1_300, value: block("c") });
    const d = vote({ index: 2, height: 1_300, value: null });
    expect(await revertOf(simulate(1n, c, d))).toBe("AlreadySlashed");
  });

  it("a nil vote and a block vote in the same round conflict", async () => {
    const a = vote({ type: "prevote", index: 1, value: null });
    const b = vote({ type: "prevote", index: 1, value: block("x") });
    await chain.mined(submit(1n, a, b));
    expect(await chain.registry.read.isJailed([seqAt[1]?.id ?? 0])).toBe(true);
  });

  it("refuses votes that do not conflict (VotesDoNotConflict)", async () => {
    const a = vote({ value: block("a") });
    expect(await revertOf(simulate(1n, a, a))).toBe("VotesDoNotConflict");
    expect(await revertOf(simulate(1n, a, vote({ value: block("b"), height: 1_235 })))).toBe("VotesDoNotConflict");
    expect(await revertOf(simulate(1n, a, vote({ value: block("b"), round: 1 })))).toBe("VotesDoNotConflict");
    expect(await revertOf(simulate(1n, a, vote({ value: block("b"), type: "prevote" })))).toBe("VotesDoNotConflict");
    expect(await revertOf(simulate(1n, a, vote({ value: block("b"), index: 1 })))).toBe("VotesDoNotConflict");
  });

  it("refuses a vote not signed by the validator at that index (InvalidVoteSignature)", async () => {
    const a = vote({ index: 0, value: block("a") });
    const forged = vote({ index: 0, value: block("b"), keys: setKeys[1] });
    expect(await revertOf(simulate(1n, a, forged))).toBe("InvalidVoteSignature");
    // Signed for another chain id.
    const keys = setKeys[0];
    if (keys === undefined) throw new Error("setup");
    const sig = keys.signer.sign(voteDigest(SUBNET_CHAIN_ID + 1n, "precommit", 1_234, 0, block("b")));
    const otherChain = {
      encoded: toHex(
        encodeSignedVote({
          type: "precommit",
          height: 1_234,
          round: 0,
          value: block("b"),
          validatorIndex: 0,
          signature: sig,
        }),
      ),
      signatureG2: toHex(g2ToEip2537(sig)),
    };
    expect(await revertOf(simulate(1n, a, otherChain))).toBe("InvalidVoteSignature");
  });

  it("refuses malformed votes, unknown epochs, indices outside the set, and evidence older than the unbonding period", async () => {
    const a = vote({ value: block("a") });
    const b = vote({ value: block("b") });
    const badVersion = { ...b, encoded: `0x02${b.encoded.slice(4)}` as Hex };
    expect(await revertOf(simulate(1n, a, badVersion))).toBe("MalformedVote");
    const short = { ...b, encoded: b.encoded.slice(0, -2) as Hex };
    expect(await revertOf(simulate(1n, a, short))).toBe("MalformedVote");
    // nil flag with a non-zero value
    const nilWithValue = { ...b, encoded: `${b.encoded.slice(0, 2 + 28)}00${b.encoded.slice(2 + 30)}` as Hex };
    expect(await revertOf(simulate(1n, a, nilWithValue))).toBe("MalformedVote");
    expect(await revertOf(simulate(5n, a, b))).toBe("UnknownEpoch");
    expect(await revertOf(simulate(0n, a, b))).toBe("UnknownEpoch");
    const outside = vote({ index: 4, keys: setKeys[0], value: block("a") });
    const outsideB = vote({ index: 4, keys: setKeys[0], value: block("b") });
    expect(await revertOf(simulate(1n, outside, outsideB))).toBe("BadValidatorIndex");
    for (let i = 0; i < 3; i++) await chain.advanceEpoch(); // epoch 4: epoch 1's stake may have left
    expect(await revertOf(simulate(1n, a, b))).toBe("EvidenceTooOld");
  });

  it("a validator jailed when its epoch's report lands forfeits that epoch's reward", async () => {
    await chain.mined(chain.token.write.approve([chain.addresses.rewards, 2n ** 255n], chain.gov));
    await chain.mined(chain.rewards.write.fund([100_000n * LUMIA], chain.gov));
    await chain.mined(submit(1n, vote({ index: 3, value: block("a") }), vote({ index: 3, value: block("b") })));
    await chain.advanceEpoch();
    const entries: WorkReportEntry[] = setKeys.map(() => ({
      blocksProposed: 5n,
      precommitsSigned: 10n,
      batchesPosted: 1n,
    }));
    const receipt = await chain.mined(
      chain.rewards.write.submitReport([1n, entries, chain.certify(1n, entries, setKeys, [0, 1, 2, 3])], chain.gov),
    );
    const forfeited = await chain.rewards.getEvents.RewardForfeited({}, { fromBlock: receipt.blockNumber });
    expect(forfeited.map((e) => e.args.sequencerId)).toEqual([seqAt[3]?.id]);
    expect(await chain.rewards.read.accRewardPerShare([seqAt[3]?.id ?? 0])).toBe(0n);
    expect(await chain.rewards.read.accRewardPerShare([seqAt[2]?.id ?? 0])).toBeGreaterThan(0n);
  });
});
