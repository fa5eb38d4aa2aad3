// Conservation of LUMIA under random sequences of staking actions, against the real contracts on anvil. fast-check
// draws the sequences (stake, unbond, withdraw, advance the epoch, certified reports, claims, compounding, commission,
// equivocation slashing, funding); after every action: the balances of every party and contract sum to the supply;
// Staking holds exactly its pools plus its dust; Rewards holds its unallocated funds, the commission owed and every
// staker's pending rewards, plus a dust of a few wei (the rounding the contracts keep). A failing run prints its seed.
import fc from "fast-check";
import { type Address, createPublicClient, getContract, type Hex, http } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keccak256, toHex, uintBytes } from "../../consensus/bytes.ts";
import { voteDigest, type WorkReportEntry } from "../../consensus/signing.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import { Rewards, Staking } from "../../staking-contracts/artifacts.ts";
import { g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import {
  LUMIA,
  type OperatorKeys,
  operatorKeys,
  revertName,
  type StakingChain,
  SUBNET_CHAIN_ID,
  SUPPLY,
  startStakingChain,
} from "./fixture.ts";

/** Refusals the contracts are expected to give to some random actions: the action is then skipped. */
const EXPECTED_REFUSALS = new Set([
  "ZeroAmount",
  "SequencerNotOpen",
  "StakeTooSmall",
  "NoStake",
  "InsufficientStake",
  "TooManyUnbondings",
  "NothingToWithdraw",
  "UnbondingNotMature",
  "NothingToClaim",
  "ReportAlreadyAccepted",
  "EpochNotFinished",
  "InsufficientFunding",
  "AlreadySlashed",
  "EvidenceAlreadyUsed",
  "EvidenceTooOld",
  "UnknownEpoch",
  "PoolDepleted",
  "ERC20InsufficientBalance",
]);

const OPERATORS = 3;
const DELEGATORS = 3;
const NUM_RUNS = 30;
const MAX_ACTIONS = 30;

let chain: StakingChain;
let base: Hex;
let operators: Address[];
let delegators: Address[];
let stakers: Address[];
let seqIds: number[];
const keysByPublicKey = new Map<string, OperatorKeys>();

beforeAll(async () => {
  chain = await startStakingChain({
    epochLengthBlocks: 4n,
    minSelfStake: 100n * LUMIA,
    unbondingEpochs: 1n, // short, so that random sequences reach withdrawals
    emissionPerEpoch: 1_000n * LUMIA + 7n, // an odd emission, so the splits round
    slashBps: 1_500,
  });
  operators = chain.users.slice(0, OPERATORS);
  delegators = chain.users.slice(OPERATORS, OPERATORS + DELEGATORS);
  stakers = [...operators, ...delegators];
  for (const a of stakers) await chain.fundAccount(a, 20_000n * LUMIA);
  await chain.mined(chain.token.write.approve([chain.addresses.rewards, 2n ** 255n], chain.gov));
  await chain.mined(chain.rewards.write.fund([3_000n * LUMIA], chain.gov));
  seqIds = [];
  for (const [i, op] of operators.entries()) {
    const keys = operatorKeys(50 + i);
    keysByPublicKey.set(keys.publicKey, keys);
    seqIds.push((await chain.addSequencer(op, keys, 1_000n * LUMIA + BigInt(i) * 333n, 300 * (i + 1))).id);
  }
  await chain.advanceEpoch();
  base = await chain.snapshot();
});

afterAll(async () => {
  await chain?.stop();
});

type Action =
  | { kind: "stake"; who: number; seq: number; lumia: number; wei: number }
  | { kind: "unbond"; who: number; seq: number; permille: number }
  | { kind: "withdraw"; who: number }
  | { kind: "advance" }
  | { kind: "report"; work: number[]; signers: number }
  | { kind: "claim"; who: number }
  | { kind: "compound"; who: number }
  | { kind: "unjail"; seq: number }
  | { kind: "commission"; who: number }
  | { kind: "slash"; index: number; height: number }
  | { kind: "fund"; lumia: number };

const who = fc.integer({ min: 0, max: OPERATORS + DELEGATORS - 1 });
const seq = fc.integer({ min: 0, max: OPERATORS - 1 });
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("stake"),
      who,
      seq,
      lumia: fc.integer({ min: 0, max: 3_000 }),
      wei: fc.integer({ min: 0, max: 1_000_000 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant("unbond"), who, seq, permille: fc.integer({ min: 1, max: 1_000 }) }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("withdraw"), who }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("advance") }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("report"),
      work: fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 9, maxLength: 9 }),
      signers: fc.integer({ min: 0, max: 7 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("claim"), who }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("compound"), who }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("commission"), who: fc.integer({ min: 0, max: OPERATORS - 1 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("slash"),
      index: fc.integer({ min: 0, max: OPERATORS - 1 }),
      height: fc.integer({ min: 1, max: 1_000_000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("unjail"), seq }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("fund"), lumia: fc.integer({ min: 1, max: 2_000 }) }) },
);

const at = <T>(list: readonly T[], i: number): T => {
  const v = list[i];
  if (v === undefined) throw new Error(`index ${i} out of range`);
  return v;
};

/** Simulates, then sends; a simulation refused with an expected error skips the action. Returns whether it ran. */
async function attempt(simulate: () => Promise<unknown>, send: () => Promise<Hex>): Promise<boolean> {
  try {
    await simulate();
  } catch (error) {
    const name = revertName(error);
    if (name !== null && EXPECTED_REFUSALS.has(name)) return false;
    throw error;
  }
  await chain.mined(send());
  return true;
}

async function run(a: Action): Promise<boolean> {
  const c = chain;
  switch (a.kind) {
    case "stake": {
      const args = [at(seqIds, a.seq), BigInt(a.lumia) * LUMIA + BigInt(a.wei)] as const;
      const opt = c.as(at(stakers, a.who));
      return attempt(
        () => c.staking.simulate.stake(args, opt),
        () => c.staking.write.stake(args, opt),
      );
    }
    case "unbond": {
      // From the drawn pool, or the next one where the staker has stake.
      const account = at(stakers, a.who);
      for (let k = 0; k < seqIds.length; k++) {
        const id = at(seqIds, (a.seq + k) % seqIds.length);
        const owned = await c.staking.read.stakeOf([id, account]);
        if (owned === 0n) continue;
        const amount = a.permille === 1_000 ? 2n ** 256n - 1n : (owned * BigInt(a.permille)) / 1_000n;
        const opt = c.as(account);
        return attempt(
          () => c.staking.simulate.unbond([id, amount], opt),
          () => c.staking.write.unbond([id, amount], opt),
        );
      }
      return false;
    }
    case "withdraw": {
      // The drawn staker, or the next one, with a matured entry in some pool.
      const epoch = await c.registry.read.currentEpoch();
      for (let k = 0; k < stakers.length; k++) {
        const account = at(stakers, (a.who + k) % stakers.length);
        for (const id of seqIds) {
          const entries = await c.staking.read.unbondingsOf([id, account]);
          if (!entries.some((e) => e.maturityEpoch <= epoch)) continue;
          const opt = c.as(account);
          return attempt(
            () => c.staking.simulate.withdraw([id], opt),
            () => c.staking.write.withdraw([id], opt),
          );
        }
      }
      return false;
    }
    case "advance":
      await c.advanceEpoch();
      return true;
    case "report": {
      const epoch = (await c.registry.read.currentEpoch()) - 1n;
      if (epoch < 1n) return false;
      const [publicKeys] = await c.registry.read.validatorSet([epoch]);
      if (publicKeys.length === 0) return false;
      const setKeys = await c.keysInSetOrder(epoch, keysByPublicKey);
      const entries: WorkReportEntry[] = setKeys.map((_, i) => ({
        blocksProposed: BigInt(at(a.work, 3 * i)),
        precommitsSigned: BigInt(at(a.work, 3 * i + 1)),
        batchesPosted: BigInt(at(a.work, 3 * i + 2)),
      }));
      // Everyone signs, or one validator is missing when that still leaves a quorum.
      const missing = a.signers % (setKeys.length + 1);
      const members = await c.registry.read.epochMembers([epoch]);
      const total = members.reduce((s, m) => s + m.power, 0n);
      const signers = setKeys.map((_, i) => i).filter((i) => i !== missing);
      const power = signers.reduce((s, i) => s + at(members, i).power, 0n);
      const cert = c.certify(epoch, entries, setKeys, power * 3n > total * 2n ? signers : setKeys.map((_, i) => i));
      const args = [epoch, entries, cert] as const;
      return attempt(
        () => c.rewards.simulate.submitReport(args, c.gov),
        () => c.rewards.write.submitReport(args, c.gov),
      );
    }
    case "claim":
    case "compound": {
      // From the first pool where the staker has rewards, if any.
      const account = at(stakers, a.who);
      for (const id of seqIds) {
        if ((await c.rewards.read.pendingRewards([id, account])) === 0n) continue;
        const opt = c.as(account);
        return a.kind === "claim"
          ? attempt(
              () => c.rewards.simulate.claim([id], opt),
              () => c.rewards.write.claim([id], opt),
            )
          : attempt(
              () => c.rewards.simulate.compound([id], opt),
              () => c.rewards.write.compound([id], opt),
            );
      }
      return false;
    }
    case "unjail": {
      const id = at(seqIds, a.seq);
      if (!(await c.registry.read.isJailed([id]))) return false;
      await c.mined(c.registry.write.unjail([id], c.gov));
      return true;
    }
    case "commission": {
      const opt = c.as(at(operators, a.who));
      return attempt(
        () => c.rewards.simulate.claimCommission(opt),
        () => c.rewards.write.claimCommission(opt),
      );
    }
    case "slash": {
      const epoch = await c.registry.read.currentEpoch();
      const setKeys = await c.keysInSetOrder(epoch, keysByPublicKey);
      const keys = setKeys[a.index];
      if (keys === undefined) return false;
      const votes = ["a", "b"].map((tag) => {
        const value = toHex(keccak256(uintBytes(tag === "a" ? 1 : 2, 1)));
        const signature = keys.signer.sign(voteDigest(SUBNET_CHAIN_ID, "precommit", a.height, 0, value));
        const encoded = encodeSignedVote({
          type: "precommit",
          height: a.height,
          round: 0,
          value,
          validatorIndex: a.index,
          signature,
        });
        return { encoded: toHex(encoded), signatureG2: toHex(g2ToEip2537(signature)) };
      });
      const args = [epoch, at(votes, 0), at(votes, 1)] as const;
      return attempt(
        () => c.slashing.simulate.submitEvidence(args, c.gov),
        () => c.slashing.write.submitEvidence(args, c.gov),
      );
    }
    case "fund": {
      const args = [BigInt(a.lumia) * LUMIA] as const;
      return attempt(
        () => c.rewards.simulate.fund(args, c.gov),
        () => c.rewards.write.fund(args, c.gov),
      );
    }
  }
}

/** Reads every balance and obligation in one batched JSON-RPC request. */
async function checkInvariants(actionsSoFar: number): Promise<void> {
  const client = createPublicClient({ chain: chain.chain, transport: http(chain.anvil.url, { batch: true }) });
  const token = getContract({ address: chain.addresses.token, abi: chain.token.abi, client });
  const staking = getContract({ address: chain.addresses.staking, abi: Staking.abi, client });
  const rewards = getContract({ address: chain.addresses.rewards, abi: Rewards.abi, client });
  const parties = [
    chain.governance,
    chain.treasury,
    ...stakers,
    chain.addresses.token,
    chain.addresses.registry,
    chain.addresses.staking,
    chain.addresses.rewards,
    chain.addresses.slashing,
  ];
  const [balances, pools, dust, unallocated, commissionOwed, commissions, pendings, supply] = await Promise.all([
    Promise.all(parties.map((p) => token.read.balanceOf([p]))),
    Promise.all(seqIds.map((id) => staking.read.pool([id]))),
    staking.read.dust(),
    rewards.read.unallocated(),
    rewards.read.commissionOwed(),
    Promise.all(operators.map((op) => rewards.read.commissionOf([op]))),
    Promise.all(seqIds.flatMap((id) => stakers.map((s) => rewards.read.pendingRewards([id, s])))),
    token.read.totalSupply(),
  ]);
  const sum = (xs: readonly bigint[]) => xs.reduce((a, b) => a + b, 0n);
  const balanceOf = (address: Address) => at(balances, parties.indexOf(address));

  // 1. Conservation: nothing is minted, burnt or sent anywhere else.
  expect(supply).toBe(SUPPLY);
  expect(sum(balances)).toBe(SUPPLY);
  // 2. Staking holds exactly the pools (active + unbonding) and its dust.
  const pooled = sum(pools.map((p) => p.activeStake + p.unbondingStake));
  expect(balanceOf(chain.addresses.staking)).toBe(pooled + dust);
  // 3. Rewards holds its obligations and a dust of a few wei per action at most (rounding down, never up).
  expect(commissionOwed).toBe(sum(commissions));
  const obligations = unallocated + commissionOwed + sum(pendings);
  const rewardsDust = balanceOf(chain.addresses.rewards) - obligations;
  expect(rewardsDust).toBeGreaterThanOrEqual(0n);
  expect(rewardsDust).toBeLessThanOrEqual(BigInt(10 * (actionsSoFar + 1)));
  // 4. Contracts that hold no funds hold none.
  expect(balanceOf(chain.addresses.slashing)).toBe(0n);
  expect(balanceOf(chain.addresses.registry)).toBe(0n);
}

describe("LUMIA conservation (fast-check against anvil)", () => {
  it("holds across random sequences of stake, unbond, withdraw, epochs, reports, claims, compounding and slashing", async () => {
    let executed = 0;
    const kinds = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 10, maxLength: MAX_ACTIONS, size: "max" }), async (actions) => {
        await chain.revert(base);
        base = await chain.snapshot();
        for (const [i, a] of actions.entries()) {
          if (await run(a)) {
            executed++;
            kinds.set(a.kind, (kinds.get(a.kind) ?? 0) + 1);
          }
          await checkInvariants(i);
        }
      }),
      { numRuns: NUM_RUNS },
    );
    // The runs exercised the interesting paths, not only refusals.
    expect(executed).toBeGreaterThan(NUM_RUNS * 4);
    for (const kind of ["stake", "unbond", "withdraw", "advance", "report", "claim", "compound", "slash"])
      expect(kinds.get(kind) ?? 0).toBeGreaterThan(0);
  });
});
