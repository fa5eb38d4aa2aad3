// Rewards on anvil: a work report certified by more than 2/3 of the epoch's stake (BLS aggregate verified on chain)
// releases the epoch's emission, split by work and stake, commission to operators, the rest through the per-share
// accumulator; claims, compounding, and every refusal (below 2/3, bad signature, replay, early, unfunded, double claim).
import type { Address, Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import { type WorkReportEntry, workReportDigest } from "../../consensus/signing.ts";
import {
  DEFAULTS,
  LUMIA,
  type OperatorKeys,
  operatorKeys,
  revertOf,
  type StakingChain,
  SUBNET_CHAIN_ID,
  startStakingChain,
  type WorkCertificate,
} from "./fixture.ts";

const ACC_SCALE = 10n ** 36n;
const BPS = 10_000n;

let chain: StakingChain;
let snapshot: Hex;
/** Set order of epoch 1 (powers 4000, 3000, 2000, 1000). */
let setKeys: OperatorKeys[];
let ids: number[];
let operators: Address[];
let delegator: Address;

interface Validator {
  readonly seed: number;
  readonly selfStake: bigint;
  readonly delegated: bigint;
  readonly commissionBps: number;
}
const VALIDATORS: readonly Validator[] = [
  { seed: 1, selfStake: 4_000n * LUMIA, delegated: 0n, commissionBps: 500 },
  { seed: 2, selfStake: 2_000n * LUMIA, delegated: 1_000n * LUMIA, commissionBps: 1_000 },
  { seed: 3, selfStake: 2_000n * LUMIA, delegated: 0n, commissionBps: 0 },
  { seed: 4, selfStake: 1_000n * LUMIA, delegated: 0n, commissionBps: 2_000 },
];

const ENTRIES: WorkReportEntry[] = [
  { blocksProposed: 40n, precommitsSigned: 100n, batchesPosted: 2n },
  { blocksProposed: 30n, precommitsSigned: 100n, batchesPosted: 1n },
  { blocksProposed: 20n, precommitsSigned: 90n, batchesPosted: 0n },
  { blocksProposed: 10n, precommitsSigned: 50n, batchesPosted: 0n },
];

const user = (i: number) => {
  const u = chain.users[i];
  if (u === undefined) throw new Error(`no user ${i}`);
  return u;
};

beforeAll(async () => {
  chain = await startStakingChain();
  operators = VALIDATORS.map((_, i) => user(i));
  delegator = user(10);
  for (const a of [...operators, delegator, chain.governance]) {
    if (a !== chain.governance) await chain.fundAccount(a, 100_000n * LUMIA);
  }
  await chain.mined(chain.token.write.approve([chain.addresses.rewards, 2n ** 255n], chain.gov));
  await chain.mined(chain.rewards.write.fund([50_000n * LUMIA], chain.gov));
  ids = [];
  const byKey = new Map<string, OperatorKeys>();
  for (const [i, v] of VALIDATORS.entries()) {
    const keys = operatorKeys(v.seed);
    byKey.set(keys.publicKey, keys);
    const { id } = await chain.addSequencer(user(i), keys, v.selfStake, v.commissionBps);
    ids.push(id);
    if (v.delegated > 0n) await chain.mined(chain.staking.write.stake([id, v.delegated], chain.as(delegator)));
  }
  await chain.advanceEpoch(); // epoch 1 with the four
  await chain.advanceEpoch(); // epoch 1 is over
  setKeys = await chain.keysInSetOrder(1n, byKey);
  expect(setKeys.map((k) => k.publicKey)).toEqual(VALIDATORS.map((v) => operatorKeys(v.seed).publicKey));
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

const submit = (epoch: bigint, entries: readonly WorkReportEntry[], cert: WorkCertificate) =>
  chain.rewards.write.submitReport([epoch, entries, cert], chain.gov);
const simulateSubmit = (epoch: bigint, entries: readonly WorkReportEntry[], cert: WorkCertificate) =>
  chain.rewards.simulate.submitReport([epoch, entries, cert], chain.gov);

/** The contract's arithmetic, from the epoch snapshot. */
function expectedRewards(entries: readonly WorkReportEntry[]) {
  const emission = DEFAULTS.emissionPerEpoch;
  const workPool = (emission * BigInt(DEFAULTS.workShareBps)) / BPS;
  const stakePool = emission - workPool;
  const w = DEFAULTS.weights;
  const scores = entries.map(
    (e) =>
      e.blocksProposed * w.blocksProposed + e.precommitsSigned * w.precommitsSigned + e.batchesPosted * w.batchesPosted,
  );
  const totalScore = scores.reduce((a, b) => a + b, 0n);
  const stakes = VALIDATORS.map((v) => v.selfStake + v.delegated);
  const totalStake = stakes.reduce((a, b) => a + b, 0n);
  return VALIDATORS.map((v, i) => {
    const reward = (workPool * (scores[i] ?? 0n)) / totalScore + (stakePool * (stakes[i] ?? 0n)) / totalStake;
    const commission = (reward * BigInt(v.commissionBps)) / BPS;
    const shares = stakes[i] ?? 0n;
    const acc = ((reward - commission) * ACC_SCALE) / shares;
    return {
      reward,
      commission,
      acc,
      selfShare: (v.selfStake * acc) / ACC_SCALE,
      delegatedShare: (v.delegated * acc) / ACC_SCALE,
    };
  });
}

describe("work reports", () => {
  it("the contract's digest is consensus/signing.ts workReportDigest", async () => {
    expect(await chain.rewards.read.workReportDigest([1n, ENTRIES])).toBe(
      toHex(workReportDigest(SUBNET_CHAIN_ID, 1n, ENTRIES)),
    );
    expect(await chain.rewards.read.workReportDigest([7n, []])).toBe(toHex(workReportDigest(SUBNET_CHAIN_ID, 7n, [])));
  });

  it("a report signed by > 2/3 is accepted once and pays by work and stake, commission to operators", async () => {
    const cert = chain.certify(1n, ENTRIES, setKeys, [0, 1]); // 7000 of 10000
    const receipt = await chain.mined(submit(1n, ENTRIES, cert));
    expect(receipt.gasUsed).toBeLessThan(1_500_000n);
    const expected = expectedRewards(ENTRIES);
    const distributed = expected.reduce((a, e) => a + e.reward, 0n);
    expect(await chain.rewards.read.unallocated()).toBe(50_000n * LUMIA - distributed);
    for (const [i, e] of expected.entries()) {
      const id = ids[i] ?? 0;
      expect(await chain.rewards.read.accRewardPerShare([id])).toBe(e.acc);
      expect(await chain.rewards.read.commissionOf([operators[i] ?? "0x"])).toBe(e.commission);
      expect(await chain.rewards.read.pendingRewards([id, operators[i] ?? "0x"])).toBe(e.selfShare);
    }
    expect(await chain.rewards.read.pendingRewards([ids[1] ?? 0, delegator])).toBe(expected[1]?.delegatedShare);
    // Dust: what was distributed and cannot be claimed, a few wei.
    const claimable = expected.reduce((a, e) => a + e.commission + e.selfShare + e.delegatedShare, 0n);
    expect(distributed - claimable).toBeGreaterThanOrEqual(0n);
    expect(distributed - claimable).toBeLessThan(10n);

    const [accepted] = await chain.rewards.getEvents.ReportAccepted({ epoch: 1n }, { fromBlock: receipt.blockNumber });
    expect(accepted?.args.signingPower).toBe(7_000n);
    expect(accepted?.args.totalPower).toBe(10_000n);
    expect(accepted?.args.signers).toBe("0x03");
    expect(accepted?.args.signature).toBe(cert.signature);

    expect(await revertOf(simulateSubmit(1n, ENTRIES, cert))).toBe("ReportAlreadyAccepted");
  });

  it("refuses a certificate below 2/3 of the power (InsufficientSigningPower), even with most validators", async () => {
    // Indices 1, 2, 3: three of four validators but 6000 of 10000.
    expect(await revertOf(simulateSubmit(1n, ENTRIES, chain.certify(1n, ENTRIES, setKeys, [1, 2, 3])))).toBe(
      "InsufficientSigningPower",
    );
    expect(await revertOf(simulateSubmit(1n, ENTRIES, chain.certify(1n, ENTRIES, setKeys, [0])))).toBe(
      "InsufficientSigningPower",
    );
  });

  it("refuses bad signatures: other entries, another epoch, a lying bitmap, a flipped bit", async () => {
    const other = ENTRIES.map((e, i) => (i === 0 ? { ...e, blocksProposed: e.blocksProposed + 1n } : e));
    const forOther = chain.certify(1n, other, setKeys, [0, 1, 2]);
    expect(await revertOf(simulateSubmit(1n, ENTRIES, forOther))).toBe("InvalidSignature");
    expect(await revertOf(simulateSubmit(1n, ENTRIES, chain.certify(2n, ENTRIES, setKeys, [0, 1, 2])))).toBe(
      "InvalidSignature",
    );
    // Signed by 0 and 1, bitmap claims 0, 1 and 2.
    const lying = { ...chain.certify(1n, ENTRIES, setKeys, [0, 1]), signers: "0x07" as Hex };
    expect(await revertOf(simulateSubmit(1n, ENTRIES, lying))).toBe("InvalidSignature");
    const good = chain.certify(1n, ENTRIES, setKeys, [0, 1, 2]);
    const g2 = fromHex(good.signatureG2);
    g2[255] = (g2[255] ?? 0) ^ 1; // same x and sign of y, but off the curve: the pairing precompile refuses it
    expect(await revertOf(simulateSubmit(1n, ENTRIES, { ...good, signatureG2: toHex(g2) }))).toBe("InvalidSignature");
    const compressed = fromHex(good.signature);
    compressed[95] = (compressed[95] ?? 0) ^ 1;
    expect(await revertOf(simulateSubmit(1n, ENTRIES, { ...good, signature: toHex(compressed) }))).toBe(
      "SignatureEncodingMismatch",
    );
  });

  it("refuses a malformed bitmap, a wrong entry count, an unfinished epoch and an unfunded emission", async () => {
    const good = chain.certify(1n, ENTRIES, setKeys, [0, 1, 2]);
    expect(await revertOf(simulateSubmit(1n, ENTRIES, { ...good, signers: "0x1f" }))).toBe("BadSignerBitmap");
    expect(await revertOf(simulateSubmit(1n, ENTRIES, { ...good, signers: "0x0700" }))).toBe("BadSignerBitmap");
    expect(await revertOf(simulateSubmit(1n, ENTRIES.slice(0, 3), good))).toBe("ReportSizeMismatch");
    expect(await revertOf(simulateSubmit(2n, ENTRIES, chain.certify(2n, ENTRIES, setKeys, [0, 1, 2])))).toBe(
      "EpochNotFinished",
    );
    expect(await revertOf(simulateSubmit(0n, [], good))).toBe("EpochNotFinished");
    // Five accepted reports use the 50,000 funded; the sixth finds too little.
    for (let e = 2n; e <= 6n; e++) {
      await chain.advanceEpoch();
      await chain.mined(submit(e - 1n, ENTRIES, chain.certify(e - 1n, ENTRIES, setKeys, [0, 1, 2])));
    }
    await chain.advanceEpoch();
    const before = await chain.rewards.read.unallocated();
    expect(before).toBeLessThan(DEFAULTS.emissionPerEpoch);
    expect(await revertOf(simulateSubmit(6n, ENTRIES, chain.certify(6n, ENTRIES, setKeys, [0, 1, 2])))).toBe(
      "InsufficientFunding",
    );
  });

  it("with no work at all the work half goes back to the unallocated funds", async () => {
    const idle = ENTRIES.map(() => ({ blocksProposed: 0n, precommitsSigned: 0n, batchesPosted: 0n }));
    await chain.mined(submit(1n, idle, chain.certify(1n, idle, setKeys, [0, 1, 2, 3])));
    const unallocated = await chain.rewards.read.unallocated();
    const stakeHalf = DEFAULTS.emissionPerEpoch / 2n;
    expect(50_000n * LUMIA - unallocated).toBeLessThanOrEqual(stakeHalf);
    expect(50_000n * LUMIA - unallocated).toBeGreaterThan(stakeHalf - 10n);
  });
});

describe("claims", () => {
  it("claim pays the accumulated rewards once; a second claim reverts with NothingToClaim", async () => {
    await chain.mined(submit(1n, ENTRIES, chain.certify(1n, ENTRIES, setKeys, [0, 1, 2])));
    const id = ids[1] ?? 0;
    const owed = await chain.rewards.read.pendingRewards([id, delegator]);
    expect(owed).toBe(expectedRewards(ENTRIES)[1]?.delegatedShare);
    const before = await chain.token.read.balanceOf([delegator]);
    await chain.mined(chain.rewards.write.claim([id], chain.as(delegator)));
    expect(await chain.token.read.balanceOf([delegator])).toBe(before + owed);
    expect(await chain.rewards.read.pendingRewards([id, delegator])).toBe(0n);
    expect(await revertOf(chain.rewards.simulate.claim([id], chain.as(delegator)))).toBe("NothingToClaim");
    // Nothing in another pool either.
    expect(await revertOf(chain.rewards.simulate.claim([ids[0] ?? 0], chain.as(delegator)))).toBe("NothingToClaim");
  });

  it("commission is claimed once by the operator", async () => {
    await chain.mined(submit(1n, ENTRIES, chain.certify(1n, ENTRIES, setKeys, [0, 1, 2])));
    const op = operators[3] ?? "0x";
    const owed = await chain.rewards.read.commissionOf([op]);
    expect(owed).toBe(expectedRewards(ENTRIES)[3]?.commission);
    const before = await chain.token.read.balanceOf([op]);
    await chain.mined(chain.rewards.write.claimCommission(chain.as(op)));
    expect(await chain.token.read.balanceOf([op])).toBe(before + owed);
    expect(await revertOf(chain.rewards.simulate.claimCommission(chain.as(op)))).toBe("NothingToClaim");
  });

  it("compound stakes the rewards into the same pool; stake changes settle what was earned before them", async () => {
    await chain.mined(submit(1n, ENTRIES, chain.certify(1n, ENTRIES, setKeys, [0, 1, 2])));
    const id = ids[1] ?? 0;
    const owed = await chain.rewards.read.pendingRewards([id, delegator]);
    const stakeBefore = await chain.staking.read.stakeOf([id, delegator]);
    await chain.mined(chain.rewards.write.compound([id], chain.as(delegator)));
    expect(await chain.staking.read.stakeOf([id, delegator])).toBe(stakeBefore + owed);
    expect(await chain.rewards.read.pendingRewards([id, delegator])).toBe(0n);

    // A newcomer who stakes after the report earns nothing from it.
    const newcomer = user(11);
    await chain.fundAccount(newcomer, 1_000n * LUMIA);
    await chain.mined(chain.staking.write.stake([id, 1_000n * LUMIA], chain.as(newcomer)));
    expect(await chain.rewards.read.pendingRewards([id, newcomer])).toBe(0n);
    // The operator unbonds: its earned rewards stay claimable.
    const opOwed = await chain.rewards.read.pendingRewards([id, operators[1] ?? "0x"]);
    await chain.mined(chain.staking.write.unbond([id, 2n ** 256n - 1n], chain.as(operators[1] ?? "0x")));
    expect(await chain.rewards.read.pendingRewards([id, operators[1] ?? "0x"])).toBe(opOwed);
  });
});
