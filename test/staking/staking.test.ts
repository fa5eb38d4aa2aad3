// Staking on anvil: self-stake and delegation, unbonding and its period, commission rules, per-epoch snapshots.
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LUMIA, operatorKeys, revertOf, type StakingChain, startStakingChain } from "./fixture.ts";

let chain: StakingChain;
let snapshot: Hex;
let seq: number;

const user = (i: number) => {
  const u = chain.users[i];
  if (u === undefined) throw new Error(`no user ${i}`);
  return u;
};

beforeAll(async () => {
  chain = await startStakingChain({ unbondingEpochs: 2n, maxCommissionBps: 2_000, maxCommissionChangeBps: 100 });
  for (const u of chain.users.slice(0, 6)) await chain.fundAccount(u, 100_000n * LUMIA);
  seq = (await chain.addSequencer(user(0), operatorKeys(1), 2_000n * LUMIA, 500)).id;
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

describe("stake and delegation", () => {
  it("self-stake and delegations add to the pool; shares are 1:1 until a slash", async () => {
    await chain.mined(chain.staking.write.stake([seq, 500n * LUMIA], chain.as(user(1))));
    await chain.mined(chain.staking.write.stake([seq, 250n * LUMIA], chain.as(user(2))));
    expect(await chain.staking.read.selfStake([seq])).toBe(2_000n * LUMIA);
    expect(await chain.staking.read.stakeOf([seq, user(1)])).toBe(500n * LUMIA);
    expect(await chain.staking.read.totalStake([seq])).toBe(2_750n * LUMIA);
    expect(await chain.staking.read.sharesOf([seq, user(2)])).toBe(250n * LUMIA);
    expect(await chain.token.read.balanceOf([chain.addresses.staking])).toBe(2_750n * LUMIA);
    const logs = await chain.staking.getEvents.Staked({ sequencerId: seq }, { fromBlock: 0n });
    expect(logs.map((l) => l.args.amount)).toEqual([2_000n * LUMIA, 500n * LUMIA, 250n * LUMIA]);
  });

  it("refuses zero, an unknown sequencer, and stakeFor from anyone but Rewards", async () => {
    expect(await revertOf(chain.staking.simulate.stake([seq, 0n], chain.as(user(1))))).toBe("ZeroAmount");
    expect(await revertOf(chain.staking.simulate.stake([99, LUMIA], chain.as(user(1))))).toBe("SequencerNotOpen");
    expect(await revertOf(chain.staking.simulate.stakeFor([user(1), seq, LUMIA], chain.as(user(1))))).toBe(
      "NotRewards",
    );
  });

  it("each epoch keeps the stake snapshotted at its boundary", async () => {
    const e1 = await chain.advanceEpoch();
    await chain.mined(chain.staking.write.stake([seq, 1_000n * LUMIA], chain.as(user(1))));
    const [m1] = await chain.registry.read.epochMembers([e1]);
    expect(m1?.stake).toBe(2_000n * LUMIA);
    expect(m1?.power).toBe(2_000n);
    const e2 = await chain.advanceEpoch();
    const [m2] = await chain.registry.read.epochMembers([e2]);
    expect(m2?.stake).toBe(3_000n * LUMIA);
    expect(m2?.power).toBe(3_000n);
    expect((await chain.registry.read.epochMembers([e1]))[0]?.power).toBe(2_000n);
  });
});

describe("unbonding", () => {
  it("withdrawal before the unbonding period is refused (UnbondingNotMature), after it pays exactly", async () => {
    await chain.mined(chain.staking.write.stake([seq, 600n * LUMIA], chain.as(user(1))));
    const before = await chain.token.read.balanceOf([user(1)]);
    const epoch = await chain.registry.read.currentEpoch();
    await chain.mined(chain.staking.write.unbond([seq, 400n * LUMIA], chain.as(user(1))));
    expect(await chain.staking.read.stakeOf([seq, user(1)])).toBe(200n * LUMIA);
    expect(await chain.staking.read.unbondingOf([seq, user(1)])).toBe(400n * LUMIA);
    const [entry] = await chain.staking.read.unbondingsOf([seq, user(1)]);
    expect(entry?.maturityEpoch).toBe(epoch + 2n);

    expect(await revertOf(chain.staking.simulate.withdraw([seq], chain.as(user(1))))).toBe("UnbondingNotMature");
    await chain.advanceEpoch();
    expect(await revertOf(chain.staking.simulate.withdraw([seq], chain.as(user(1))))).toBe("UnbondingNotMature");
    await chain.advanceEpoch();
    await chain.mined(chain.staking.write.withdraw([seq], chain.as(user(1))));
    expect(await chain.token.read.balanceOf([user(1)])).toBe(before + 400n * LUMIA);
    expect(await chain.staking.read.unbondingsOf([seq, user(1)])).toEqual([]);
    expect(await revertOf(chain.staking.simulate.withdraw([seq], chain.as(user(1))))).toBe("NothingToWithdraw");
  });

  it("unbonding stake stops counting at the next boundary; unbond-all empties the position", async () => {
    await chain.mined(chain.staking.write.stake([seq, 1_000n * LUMIA], chain.as(user(1))));
    await chain.mined(chain.staking.write.unbond([seq, 2n ** 256n - 1n], chain.as(user(1))));
    expect(await chain.staking.read.sharesOf([seq, user(1)])).toBe(0n);
    const e = await chain.advanceEpoch();
    expect((await chain.registry.read.epochMembers([e]))[0]?.stake).toBe(2_000n * LUMIA);
  });

  it("refuses more than the stake, no stake, and more than 16 open entries", async () => {
    await chain.mined(chain.staking.write.stake([seq, 100n * LUMIA], chain.as(user(1))));
    expect(await revertOf(chain.staking.simulate.unbond([seq, 101n * LUMIA], chain.as(user(1))))).toBe(
      "InsufficientStake",
    );
    expect(await revertOf(chain.staking.simulate.unbond([seq, LUMIA], chain.as(user(2))))).toBe("NoStake");
    for (let i = 0; i < 16; i++) await chain.mined(chain.staking.write.unbond([seq, LUMIA], chain.as(user(1))));
    expect(await revertOf(chain.staking.simulate.unbond([seq, LUMIA], chain.as(user(1))))).toBe("TooManyUnbondings");
  });
});

describe("commission", () => {
  it("changes by at most maxCommissionChangeBps, once per epoch, up to maxCommissionBps, by the operator only", async () => {
    expect(await revertOf(chain.staking.simulate.setCommission([seq, 550], chain.as(user(0))))).toBe(
      "CommissionChangedThisEpoch", // registration counted as this epoch's change
    );
    await chain.advanceEpoch();
    expect(await revertOf(chain.staking.simulate.setCommission([seq, 601], chain.as(user(0))))).toBe(
      "CommissionChangeTooLarge",
    );
    expect(await revertOf(chain.staking.simulate.setCommission([seq, 600], chain.as(user(1))))).toBe("NotOperator");
    await chain.mined(chain.staking.write.setCommission([seq, 600], chain.as(user(0))));
    expect(await revertOf(chain.staking.simulate.setCommission([seq, 650], chain.as(user(0))))).toBe(
      "CommissionChangedThisEpoch",
    );
    expect((await chain.staking.read.pool([seq])).commissionBps).toBe(600);
  });

  it("the new rate reaches the set snapshot at the next boundary, not the current epoch", async () => {
    const e1 = await chain.advanceEpoch();
    await chain.mined(chain.staking.write.setCommission([seq, 400], chain.as(user(0))));
    expect((await chain.registry.read.epochMembers([e1]))[0]?.commissionBps).toBe(500);
    const e2 = await chain.advanceEpoch();
    expect((await chain.registry.read.epochMembers([e2]))[0]?.commissionBps).toBe(400);
  });

  it("never above the maximum", async () => {
    const other = await chain.addSequencer(user(3), operatorKeys(2), 1_000n * LUMIA, 2_000);
    for (let i = 0; i < 1; i++) await chain.advanceEpoch();
    expect(await revertOf(chain.staking.simulate.setCommission([other.id, 2_001], chain.as(user(3))))).toBe(
      "CommissionTooHigh",
    );
  });
});

describe("slashing entry point", () => {
  it("only the slasher role may slash", async () => {
    expect(await revertOf(chain.staking.simulate.slash([seq, 1_000], chain.as(user(1))))).toBe(
      "AccessControlUnauthorizedAccount",
    );
  });
});
