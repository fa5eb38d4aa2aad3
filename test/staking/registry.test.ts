// SequencerRegistry on anvil: operator approval, key registration with an on-chain proof of possession, epochs, and
// the epoch's validator set, which must equal what consensus/validator-set.ts builds from the same keys and powers.
import { decodeEventLog, type Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { computeValidatorSetId, validatorAddress } from "../../consensus/validator-set.ts";
import { SequencerRegistry } from "../../staking-contracts/artifacts.ts";
import { consensusOrder, LUMIA, operatorKeys, revertOf, type StakingChain, startStakingChain } from "./fixture.ts";

let chain: StakingChain;
let snapshot: Hex;

beforeAll(async () => {
  chain = await startStakingChain({ maxValidators: 4, minSelfStake: 1_000n * LUMIA });
  for (const user of chain.users.slice(0, 12)) await chain.fundAccount(user, 1_000_000n * LUMIA);
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

const user = (i: number) => {
  const u = chain.users[i];
  if (u === undefined) throw new Error(`no user ${i}`);
  return u;
};

function registration(seed: number, overrides: Partial<Record<string, Hex | number>> = {}) {
  const k = operatorKeys(seed);
  return {
    publicKey: k.publicKey,
    publicKeyG1: k.publicKeyG1,
    proofOfPossession: k.proofOfPossession,
    proofOfPossessionG2: k.proofOfPossessionG2,
    peerId: k.peerId,
    commissionBps: 500,
    ...overrides,
  };
}

describe("operators and registration", () => {
  it("an approved operator registers its key; the event carries key, consensus address and peer id", async () => {
    const op = user(0);
    const keys = operatorKeys(1);
    const { id, registerGas } = await chain.addSequencer(op, keys, 0n);
    expect(id).toBe(1);
    expect(registerGas).toBeGreaterThan(0n);
    const s = await chain.registry.read.sequencer([id]);
    expect(s.operator).toBe(op);
    expect(s.consensusAddress.toLowerCase()).toBe(validatorAddress(keys.signer.publicKey));
    expect(s.peerId).toBe(keys.peerId);
    expect(await chain.registry.read.publicKeyOf([id])).toBe(keys.publicKey);
    const logs = await chain.registry.getEvents.SequencerRegistered({}, { fromBlock: 0n });
    expect(logs).toHaveLength(1);
    expect(logs[0]?.args.publicKey).toBe(keys.publicKey);
    expect(logs[0]?.args.peerId).toBe(keys.peerId);
  });

  it("refuses an unapproved operator (OperatorNotApproved) and a revoked one", async () => {
    const op = user(0);
    expect(await revertOf(chain.registry.simulate.register([registration(1)], chain.as(op)))).toBe(
      "OperatorNotApproved",
    );
    await chain.mined(chain.registry.write.approveOperator([op], chain.gov));
    await chain.mined(chain.registry.write.revokeOperator([op], chain.gov));
    expect(await revertOf(chain.registry.simulate.register([registration(1)], chain.as(op)))).toBe(
      "OperatorNotApproved",
    );
    // Only governance approves.
    expect(await revertOf(chain.registry.simulate.approveOperator([op], chain.as(op)))).toBe(
      "AccessControlUnauthorizedAccount",
    );
  });

  it("refuses a bad proof of possession (another key's proof, a proof over another message)", async () => {
    const op = user(0);
    await chain.mined(chain.registry.write.approveOperator([op], chain.gov));
    const other = operatorKeys(2);
    const stolen = registration(1, {
      proofOfPossession: other.proofOfPossession,
      proofOfPossessionG2: other.proofOfPossessionG2,
    });
    expect(await revertOf(chain.registry.simulate.register([stolen], chain.as(op)))).toBe("InvalidProofOfPossession");
    // A valid signature by the right key, but a consensus signature (signature DST) rather than a PoP.
    const k = operatorKeys(1);
    const { g2ToEip2537 } = await import("../../staking-contracts/eip2537.ts");
    const sigOverKey = k.signer.sign(k.signer.publicKey);
    const wrongDst = registration(1, {
      proofOfPossession: toHex(sigOverKey),
      proofOfPossessionG2: toHex(g2ToEip2537(sigOverKey)),
    });
    expect(await revertOf(chain.registry.simulate.register([wrongDst], chain.as(op)))).toBe("InvalidProofOfPossession");
  });

  it("refuses mismatched encodings, a reused key, a reused peer id, a bad peer id and a second registration", async () => {
    const [a, b] = [user(0), user(1)];
    for (const op of [a, b]) await chain.mined(chain.registry.write.approveOperator([op], chain.gov));
    const mismatch = registration(1, { publicKeyG1: operatorKeys(2).publicKeyG1 });
    expect(await revertOf(chain.registry.simulate.register([mismatch], chain.as(a)))).toBe("KeyEncodingMismatch");
    expect(await revertOf(chain.registry.simulate.register([registration(1, { peerId: "0x" })], chain.as(a)))).toBe(
      "BadPeerIdLength",
    );
    await chain.mined(chain.registry.write.register([registration(1)], chain.as(a)));
    expect(await revertOf(chain.registry.simulate.register([registration(3)], chain.as(a)))).toBe("AlreadyRegistered");
    expect(await revertOf(chain.registry.simulate.register([registration(1)], chain.as(b)))).toBe(
      "KeyAlreadyRegistered",
    );
    const samePeer = registration(2, { peerId: operatorKeys(1).peerId });
    expect(await revertOf(chain.registry.simulate.register([samePeer], chain.as(b)))).toBe("PeerIdAlreadyRegistered");
    expect(
      await revertOf(chain.registry.simulate.register([registration(2, { commissionBps: 2_001 })], chain.as(b))),
    ).toBe("CommissionTooHigh");
  });
});

describe("epochs and the validator set", () => {
  it("advanceEpoch is refused before epochLengthBlocks have passed (EpochNotOver)", async () => {
    await chain.advanceEpoch();
    expect(await revertOf(chain.registry.simulate.advanceEpoch(chain.gov))).toBe("EpochNotOver");
    const info = await chain.registry.read.epochInfo([1n]);
    expect(info.size).toBe(0);
  });

  it("the set is the top maxValidators eligible sequencers in consensus order, with the same id as TypeScript", async () => {
    // Stakes chosen for ties (equal powers are ordered by consensus address) and for the floor to whole LUMIA.
    const stakes = [
      5_000n * LUMIA,
      3_000n * LUMIA + LUMIA / 2n, // power 3000
      3_000n * LUMIA,
      3_000n * LUMIA,
      2_000n * LUMIA,
      900n * LUMIA, // below the minimum self-stake: not eligible whatever its delegations
    ];
    const all: { id: number; keys: ReturnType<typeof operatorKeys>; stake: bigint }[] = [];
    for (const [i, stake] of stakes.entries()) {
      const keys = operatorKeys(10 + i);
      const { id } = await chain.addSequencer(user(i), keys, stake);
      all.push({ id, keys, stake });
    }
    // A delegation lifts sequencer 4 from 2000 to 3000, the same power as 1, 2 and 3: four-way tie.
    const last = all[4];
    const under = all[5];
    if (last === undefined || under === undefined) throw new Error("setup");
    await chain.mined(chain.staking.write.stake([last.id, 1_000n * LUMIA], chain.as(user(8))));
    await chain.mined(chain.staking.write.stake([under.id, 10_000n * LUMIA], chain.as(user(9))));

    const epoch = await chain.advanceEpoch();
    const eligible = all.slice(0, 5).map((v) => ({
      publicKey: v.keys.publicKey,
      power: v === last ? 3_000n : v.stake / LUMIA,
    }));
    const ranked = consensusOrder(eligible);
    const top = consensusOrder(
      ranked.set.validators.slice(0, 4).map((v) => ({ publicKey: toHex(v.publicKey), power: v.votingPower })),
    );
    const [publicKeys, powers, setId] = await chain.registry.read.validatorSet([epoch]);
    expect(publicKeys).toEqual(top.publicKeys);
    expect(powers).toEqual(top.set.validators.map((v) => v.votingPower));
    expect(setId).toBe(top.id);
    expect(setId).toBe(computeValidatorSetId(top.set.validators));
    expect(powers[0]).toBe(5_000n);
    // One of the four 3000s lost on the address tie-break.
    expect(powers.slice(1)).toEqual([3_000n, 3_000n, 3_000n]);

    // The log carries the same set.
    const logs = await chain.publicClient.getLogs({ address: chain.addresses.registry, fromBlock: 0n });
    const advanced = logs
      .map((l) => {
        try {
          return decodeEventLog({ abi: SequencerRegistry.abi, data: l.data, topics: l.topics });
        } catch {
          return null;
        }
      })
      .filter((e) => e?.eventName === "EpochAdvanced");
    const event = advanced.at(-1);
    if (event?.eventName !== "EpochAdvanced") throw new Error("no EpochAdvanced");
    expect(event.args.setId).toBe(setId);
    expect(event.args.publicKeys).toEqual(publicKeys);
    expect(event.args.powers).toEqual(powers);
    expect(event.args.totalPower).toBe(14_000n);

    const members = await chain.registry.read.epochMembers([epoch]);
    expect(members.map((m) => m.stake)).toEqual(
      top.publicKeys.map((pk) => {
        const v = all.find((x) => x.keys.publicKey === pk);
        return (v?.stake ?? 0n) + (v === last ? 1_000n * LUMIA : 0n);
      }),
    );
  });

  it("joins and exits take effect at the next boundary; revoked operators and too little self-stake leave the next set", async () => {
    const a = await chain.addSequencer(user(0), operatorKeys(20), 2_000n * LUMIA);
    const e1 = await chain.advanceEpoch();
    expect((await chain.registry.read.epochMembers([e1])).map((m) => m.sequencerId)).toEqual([a.id]);

    // Joins during e1: not in e1's set (already snapshotted), in e2's.
    const b = await chain.addSequencer(user(1), operatorKeys(21), 1_500n * LUMIA);
    const c = await chain.addSequencer(user(2), operatorKeys(22), 1_200n * LUMIA);
    expect((await chain.registry.read.epochMembers([e1])).map((m) => m.sequencerId)).toEqual([a.id]);
    const e2 = await chain.advanceEpoch();
    expect((await chain.registry.read.epochMembers([e2])).map((m) => m.sequencerId)).toEqual([a.id, b.id, c.id]);

    // a exits, c's operator is revoked: both still in e2, out of e3.
    await chain.mined(chain.registry.write.requestExit(chain.as(user(0))));
    await chain.mined(chain.registry.write.revokeOperator([user(2)], chain.gov));
    expect((await chain.registry.read.epochMembers([e2])).map((m) => m.sequencerId)).toEqual([a.id, b.id, c.id]);
    expect(await revertOf(chain.staking.simulate.stake([a.id, LUMIA], chain.as(user(5))))).toBe("SequencerNotOpen");
    const e3 = await chain.advanceEpoch();
    expect((await chain.registry.read.epochMembers([e3])).map((m) => m.sequencerId)).toEqual([b.id]);
    expect((await chain.registry.read.sequencer([a.id])).status).toBe(3); // Exited
    expect(await chain.registry.read.candidates()).not.toContain(a.id);

    // Falling below the minimum self-stake drops b at the next boundary.
    await chain.mined(chain.staking.write.unbond([b.id, 600n * LUMIA], chain.as(user(1))));
    const e4 = await chain.advanceEpoch();
    expect(await chain.registry.read.epochMembers([e4])).toEqual([]);
    expect((await chain.registry.read.epochInfo([e4])).setId).toBe(computeValidatorSetId([]));
  });
});
