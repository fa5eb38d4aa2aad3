// Portal deposits through the L1 mirror against a real anvil with the hard-finality contracts: reading starts where
// the chain says the next deposit can first be (depositsScanFrom), not at L1 block 0; a lower start asked later is
// read then (the range read grows downwards), never below the Portal's deployment block; deposits of newly confirmed blocks are read by the poll, ahead of any
// ask (answered with the L1 gone). depositsScanFrom's rule is checked on headers.
import type { Address } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BlockHeader, type Deposit, MAX_BLOCK_DEPOSITS } from "../../src/chain/block.ts";
import { L1Mirror } from "../../src/l1/mirror.ts";
import type { L1Ref } from "../../src/l1/view.ts";
import { depositsScanFrom } from "../../src/node/executor.ts";
import { type FinalityChain, startFinalityChain } from "../staking/finality-fixture.ts";

let chain: FinalityChain;
const mirrors: L1Mirror[] = [];

beforeAll(async () => {
  chain = await startFinalityChain();
}, 120_000);
afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.stop()));
  await chain?.stop();
});

async function head(): Promise<L1Ref> {
  const b = await chain.publicClient.getBlock({ blockTag: "latest" });
  if (b.hash === null || b.number === null) throw new Error("pending");
  return { number: b.number, hash: b.hash };
}
const mine = (n: number) => chain.testClient.mine({ blocks: n });

/** A mirror of the anvil with the Portal, stopped after the tests. */
async function openMirror(): Promise<L1Mirror> {
  const mirror = await L1Mirror.open({
    rpcUrl: chain.anvil.url,
    pollIntervalMs: 100,
    confirmations: 2,
    registry: chain.addresses.registry,
    portal: chain.finality.addresses.portal,
    dbPath: null,
  });
  mirrors.push(mirror);
  return mirror;
}

async function deposit(): Promise<bigint> {
  const depositor = chain.users[12] as Address;
  const receipt = await chain.mined(
    chain.finality.portal.write.depositETH([chain.users[13] as Address], {
      ...chain.as(depositor),
      value: 10n ** 16n,
    }),
  );
  await mine(3);
  return receipt.blockNumber;
}

const nonces = (answer: Awaited<ReturnType<L1Mirror["depositsAt"]>>) =>
  answer.kind === "ok" ? answer.value.map((d) => d.nonce) : answer.reason;

describe("L1Mirror deposits", () => {
  it("reads from where the chain says the next deposit can be, downwards when asked, and ahead of asks", async () => {
    const at = [await deposit(), await deposit(), await deposit()];
    await mine(2);
    const mirror = await openMirror();
    await mirror.pollOnce();
    const ref = mirror.confirmedHead();
    if (ref === null) throw new Error("no confirmed block");
    // Deposits 1 and 2 from the block of deposit 1: deposit 0, before it, is not read.
    const second = at[1] as bigint;
    expect(nonces(await mirror.depositsAt(ref, 1n, 64, second))).toEqual([1n, 2n]);
    expect(nonces(await mirror.depositsAt(ref, 0n, 64, second))).toEqual([]);
    // A lower start (a node checking older blocks) reads the blocks below what was read.
    expect(nonces(await mirror.depositsAt(ref, 0n, 64, 0n))).toEqual([0n, 1n, 2n]);
    expect(nonces(await mirror.depositsAt(ref, 1n, 1, 0n))).toEqual([1n]);
    // A node starting from the genesis (start 0) reads from the Portal's deployment block, not from L1 block 0.
    const deployedAt = await chain.finality.portal.read.deployedAtBlock();
    const portal = chain.finality.addresses.portal as Address;
    expect(await chain.publicClient.getCode({ address: portal, blockNumber: deployedAt - 1n })).toBeUndefined();
    expect(await chain.publicClient.getCode({ address: portal, blockNumber: deployedAt })).toMatch(/^0x[0-9a-f]+$/);
    const fresh = await openMirror();
    await fresh.pollOnce();
    expect(nonces(await fresh.depositsAt(ref, 0n, 64, 0n))).toEqual([0n, 1n, 2n]);
    expect((fresh as unknown as { depositsFrom: bigint }).depositsFrom).toBe(deployedAt);
    await fresh.stop();
    // Not yet at depth: unknown, whatever was read.
    expect((await mirror.depositsAt(await head(), 0n, 64)).kind).toBe("unknown");
    // A deposit in a block the mirror confirms later is read by its poll, before anyone asks: with the L1 gone
    // afterwards, the ask is answered from what the poll read.
    const fourth = await deposit();
    await mirror.pollOnce();
    const later = mirror.confirmedHead();
    if (later === null || later.number < fourth) throw new Error("the new deposit is not confirmed");
    const readUpTo = () => (mirror as unknown as { depositsScanned: bigint }).depositsScanned;
    await expect.poll(readUpTo, { timeout: 10_000 }).toBeGreaterThanOrEqual(later.number);
    await chain.stop();
    expect(nonces(await mirror.depositsAt(later, 3n, 64, second))).toEqual([3n]);
  });

  it("depositsScanFrom: after the origin when the block had room, at the last deposit when it was full", () => {
    const header = (height: number, origin: bigint) => ({ height, l1Origin: { number: origin } }) as BlockHeader;
    const deposits = (n: number, lastAt: bigint): Deposit[] =>
      Array.from({ length: n }, (_, i) => ({
        nonce: BigInt(i),
        l1BlockNumber: i === n - 1 ? lastAt : 1n,
        from: "0x",
        to: "0x",
        asset: 0,
        amount: 1n,
      }));
    // The genesis bounds nothing: deposits before its origin are due in block 1.
    expect(depositsScanFrom(header(0, 100n), [])).toBe(0n);
    expect(depositsScanFrom(header(5, 100n), [])).toBe(101n);
    expect(depositsScanFrom(header(5, 100n), deposits(3, 90n))).toBe(101n);
    expect(depositsScanFrom(header(5, 100n), deposits(MAX_BLOCK_DEPOSITS, 90n))).toBe(90n);
  });
});
