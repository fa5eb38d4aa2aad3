// State pruning (src/node/state-pruner.ts, docs/storage.md "State generations") on the node's real parts: level store,
// execution core, mempool and block executor (openNodeState). One node keeps 16 heights of state, a twin keeps all;
// both commit the same blocks of transfers to new accounts and of calls that change a contract's storage. The pruned
// node keeps every retained height's state whole (walked node by node, code included), answers balance reads of the
// retained heights as the archive does and refuses older ones as pruned, stores fewer state nodes, and survives
// restarts in the middle of a cycle (an unfinished copy is done again, an unfinished drop finished).
import { join } from "node:path";
import { Level } from "level";
import { pino } from "pino";
import { encodeDeployData, encodeFunctionData, getContractAddress, type Hex as ViemHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { StatePruner } from "../../src/node/state-pruner.ts";
import { Bucket, bucketEnd } from "../../src/storage/buckets.ts";
import { walkStoredState } from "../e2e/chain.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_001n;
const KEEP = 16;
const sender = testAccount(1);
const recipient = (i: number): Hex => toHex(fromHex(`0x${(0x1000 + i).toString(16).padStart(40, "0")}`));

/** Keys of the state buckets in a closed database: generation 0 and each later one. */
async function stateKeyCounts(dir: string): Promise<Map<number, number>> {
  const db = new Level<Uint8Array, Uint8Array>(join(dir, "chain"), { keyEncoding: "view", valueEncoding: "view" });
  await db.open();
  const counts = new Map<number, number>();
  try {
    for await (const _ of db.keys({ gte: Uint8Array.of(Bucket.state), lt: bucketEnd(Bucket.state) })) {
      counts.set(0, (counts.get(0) ?? 0) + 1);
    }
    for await (const key of db.keys({
      gte: Uint8Array.of(Bucket.stateGeneration),
      lt: bucketEnd(Bucket.stateGeneration),
    })) {
      const generation = new DataView(key.buffer, key.byteOffset + 1, 4).getUint32(0);
      counts.set(generation, (counts.get(generation) ?? 0) + 1);
    }
  } finally {
    await db.close();
  }
  return counts;
}

const total = (counts: Map<number, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);

describe("state pruning", () => {
  let genesis: Genesis;
  let nodes: NodeStates;
  let pruned: NodeState;
  let prunedDir = "";
  let archive: NodeState;
  let archiveDir = "";
  let pruner: StatePruner;
  let nonce = 0;
  let counter: Hex = "0x";
  const log = pino({ level: "silent" });
  const proposer = (): Hex => genesis.validatorSet.validators[0]?.address ?? "0x";

  const newPruner = (state: NodeState) => new StatePruner({ store: state.store, keepHeights: KEEP, log });

  /** Builds the next height on the pruned node from `raws`, validates and commits it on both. */
  async function height(raws: readonly Uint8Array[]): Promise<void> {
    for (const raw of raws) {
      const added = await pruned.mempool.add(raw, { kind: "local" });
      if (!added.ok) throw new Error(`${added.code}: ${added.message}`);
    }
    const h = pruned.store.headHeight + 1;
    const built = await pruned.executor.build(h, proposer(), nodes.sets());
    if (built === null) throw new Error("no block");
    expect(built.block.transactions).toHaveLength(raws.length);
    expect(await archive.executor.validate(built.block, built.bytes, nodes.sets(), false)).toBeNull();
    await nodes.commit(pruned, built.block, built.bytes);
    await nodes.commit(archive, built.block, built.bytes);
    pruner.committed();
    await pruner.idle();
  }

  /** A transfer to a new account and a storage change of the counter. */
  async function work(i: number): Promise<Uint8Array[]> {
    const transfer = await signRaw(sender, { nonce: nonce++, to: recipient(i), value: BigInt(1_000 + i) }, CHAIN);
    const bump = await signRaw(
      sender,
      {
        nonce: nonce++,
        to: counter,
        gas: 100_000n,
        data: encodeFunctionData({ abi: contracts().Counter.abi, functionName: "bump", args: [BigInt(i + 1)] }),
      },
      CHAIN,
    );
    return [transfer, bump];
  }

  const balanceAt = async (state: NodeState, address: Hex, height: number): Promise<string> =>
    (await nodes.eth(state, "eth_getBalance", [address, `0x${height.toString(16)}`])) as string;

  beforeAll(async () => {
    genesis = singleValidatorGenesis(CHAIN, addressOf(sender), 10n ** 21n);
    nodes = new NodeStates(genesis);
    ({ state: pruned, dir: prunedDir } = await nodes.state());
    ({ state: archive, dir: archiveDir } = await nodes.state());
    pruner = newPruner(pruned);
    pruner.start();
    counter = getContractAddress({ from: sender.address, nonce: 0n }).toLowerCase() as Hex;
    const deploy = await signRaw(
      sender,
      {
        nonce: nonce++,
        to: null,
        gas: 500_000n,
        data: encodeDeployData({ abi: contracts().Counter.abi, bytecode: contracts().Counter.bytecode as ViemHex }),
      },
      CHAIN,
    );
    await height([deploy]);
  }, 60_000);

  afterAll(async () => {
    await pruner?.stop();
    await nodes?.close();
  });

  it("keeps between 16 and 32 heights of whole state, answers reads of them and refuses older ones", async () => {
    for (let i = 2; i <= 40; i++) await height(await work(i));
    const g = pruned.store.stateGenerations;
    // Generation 1 began at 16 and was dropped into at 31; generation 2 began at 32, copied, not dropped yet.
    expect(g).toEqual({ current: 2, oldest: 1, currentFrom: 32, copied: true, keptFrom: 16 });
    const head = pruned.store.headHeight;
    for (let h = g.keptFrom; h <= head; h++) {
      expect(await walkStoredState(pruned.store, h)).toBe(await walkStoredState(archive.store, h));
    }
    for (const h of [16, 25, 40]) {
      for (const i of [2, 15, 16, 30, 40]) {
        expect(await balanceAt(pruned, recipient(i), h)).toBe(await balanceAt(archive, recipient(i), h));
      }
    }
    expect(await balanceAt(pruned, recipient(30), 40)).toBe(`0x${(1_030).toString(16)}`);
    await expect(balanceAt(pruned, recipient(2), 15)).rejects.toThrow(
      "state of block 15 is pruned: this node keeps the state of blocks 16 and later",
    );
    await expect(nodes.eth(pruned, "eth_getStorageAt", [counter, "0x0", "0x3"])).rejects.toThrow(/pruned/);
    expect(await balanceAt(archive, recipient(2), 15)).toBe(`0x${(1_002).toString(16)}`);
  });

  it("stores fewer state nodes than the archive and none of the dropped generations", async () => {
    for (let i = 41; i <= 48; i++) await height(await work(i));
    // 47 = 32 + 16 - 1: generation 1 dropped; 48: generation 3 began and was copied.
    expect(pruned.store.stateGenerations).toEqual({
      current: 3,
      oldest: 2,
      currentFrom: 48,
      copied: true,
      keptFrom: 32,
    });
    await nodes.closeOne(pruned);
    await nodes.closeOne(archive);
    const kept = await stateKeyCounts(prunedDir);
    const all = await stateKeyCounts(archiveDir);
    expect([...kept.keys()].sort()).toEqual([2, 3]);
    expect([...all.keys()]).toEqual([0]);
    expect(total(kept)).toBeLessThan(total(all));
    ({ state: pruned } = await nodes.state(prunedDir));
    ({ state: archive } = await nodes.state(archiveDir));
    pruner = newPruner(pruned);
    pruner.start();
    await pruner.idle();
    for (let h = 32; h <= 48; h++) await walkStoredState(pruned.store, h);
  });

  it("does a copy again after a restart in the middle of it, and finishes an interrupted drop", async () => {
    for (let i = 49; i <= 63; i++) await height(await work(i));
    // 63 = 48 + 16 - 1: generation 2 dropped. A new generation begins at 64 with no copy: a crash right after.
    await pruner.stop();
    await height(await work(64));
    const begun = await pruned.store.beginStateGeneration();
    expect(begun).toMatchObject({ current: 4, oldest: 3, currentFrom: 64, copied: false });
    await nodes.closeOne(pruned);
    // An interrupted drop leaves nodes of a generation below the oldest: one stale key of generation 2.
    const db = new Level<Uint8Array, Uint8Array>(join(prunedDir, "chain"), {
      keyEncoding: "view",
      valueEncoding: "view",
    });
    await db.open();
    await db.put(Uint8Array.of(Bucket.stateGeneration, 0, 0, 0, 2, 0xab), Uint8Array.of(1));
    await db.close();
    ({ state: pruned } = await nodes.state(prunedDir));
    expect(pruned.store.stateGenerations.copied).toBe(false);
    pruner = newPruner(pruned);
    pruner.start();
    await pruner.idle();
    expect(pruned.store.stateGenerations).toMatchObject({ current: 4, copied: true });
    await nodes.closeOne(pruned);
    expect([...(await stateKeyCounts(prunedDir)).keys()].sort()).toEqual([3, 4]);
    ({ state: pruned } = await nodes.state(prunedDir));
    pruner = newPruner(pruned);
    pruner.start();
    await pruner.idle();
    for (let i = 65; i <= 80; i++) await height(await work(i));
    expect(pruned.store.stateGenerations).toMatchObject({ current: 5, oldest: 4, keptFrom: 64 });
    for (let h = 64; h <= 80; h++) await walkStoredState(pruned.store, h);
    expect(await balanceAt(pruned, recipient(70), 80)).toBe(await balanceAt(archive, recipient(70), 80));
    await pruner.stop();
    await nodes.closeOne(pruned);
    expect([...(await stateKeyCounts(prunedDir)).keys()].sort()).toEqual([4, 5]);
  });
});
