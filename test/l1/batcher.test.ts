// The batcher's turns on a real anvil with the finality contracts and a registered operator: a turn is
// batchesPerTurn inbox indexes; one pass posts them as consecutive batches, one transaction each with consecutive
// nonces, all in flight at once, so they are mined in one L1 block; the next turn is the next member's, which goes on
// from the posted height. A garbage batch in the inbox (a faulty member's) does not count as posted, so its heights
// are posted again. And the sender's sequence rule: an item that is not broadcast withdraws the items after it, so no
// later nonce waits on one that is never used.
import { Registry } from "prom-client";
import { createPublicClient, decodeFunctionData, type Hex, http, type PublicClient, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { encodeCertificate } from "../../consensus/certificate.ts";
import { decodeBlockHead } from "../../src/chain/block.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { decodeBatchData, encodeBatchData, MAX_BATCH_DATA_BYTES } from "../../src/l1/batch.ts";
import {
  Batcher,
  createFinalityMetrics,
  InboxReader,
  postedBatchCheck,
  readBatchEvents,
} from "../../src/l1/batcher.ts";
import { DEFAULT_L1_SENDER_PARAMS, L1Sender } from "../../src/l1/sender.ts";
import { silentLogger } from "../../src/node/log.ts";
import type { ChainStore } from "../../src/storage/chain-store.ts";
import { BatchInbox } from "../../staking-contracts/artifacts.ts";
import { type FinalityChain, operatorKeyOf, startFinalityChain } from "../staking/finality-fixture.ts";
import { testNet } from "../storage/fixtures.ts";
import { buildChain, CHAIN_ID } from "./batch-chain.ts";

describe("a batcher's turn on anvil", () => {
  let chain: FinalityChain;
  let client: PublicClient;
  let inbox: Hex;
  let sender: L1Sender;
  // 140 blocks of 100 transactions: ~7 KB compressed each, so a 120 KiB calldata batch holds ~17 of them.
  const items = buildChain(140, 100);
  const set = testNet().genesis;
  /** The chain store's view the batcher reads: the blocks below `head` (moved on by the tests). */
  let head = 101;
  const store: Pick<ChainStore, "headHeight" | "getBlock" | "getRange" | "validatorSetFor"> = {
    get headHeight() {
      return head;
    },
    getBlock: async (height) => (height <= head ? items[height - 1]?.block : undefined),
    getRange: async (from, maxCount, maxBytes) => {
      const out = [];
      let bytes = 0;
      for (const item of items.slice(from - 1, Math.min(head, from - 1 + maxCount))) {
        if (out.length > 0 && bytes + item.block.length > maxBytes) break;
        bytes += item.block.length;
        out.push(item);
      }
      return out;
    },
    validatorSetFor: () => set,
  };
  // The clock starts when every block is ready by age, within the first half of the first member's slot.
  const readyAt = decodeBlockHead(items.at(-1)?.block as Uint8Array).header.timestampMs + 1_000;
  const started = Date.now();
  const metrics = createFinalityMetrics(new Registry());
  const checkedReader = () =>
    new InboxReader({
      client,
      inbox,
      fromBlock: 0n,
      confirmedHead: () => null,
      check: postedBatchCheck({ client, inbox, chainId: CHAIN_ID, store, beacon: null, log: silentLogger(), metrics }),
    });
  /** Member `member` of the four's batcher, with turns of four inbox indexes. */
  const batcherOf = (member: number) =>
    new Batcher(
      {
        batchMinBlocks: 1,
        batchMaxAgeMs: 1_000,
        staggerMs: 600_000,
        pollMs: 3_600_000,
        transport: "calldata",
        batchesPerTurn: 4,
      },
      {
        chainId: CHAIN_ID,
        inbox,
        reader: checkedReader(),
        client,
        store,
        // One L1 account posts for every member here: the inbox checks the account, the turn the L2 set.
        sender,
        ownAddress: set.validators[member]?.address as Hex,
        log: silentLogger(),
        metrics,
        nowMs: () => readyAt + (Date.now() - started),
      },
    );

  beforeAll(async () => {
    chain = await startFinalityChain();
    client = createPublicClient({ transport: http(chain.anvil.url) }) as PublicClient;
    inbox = chain.finality.addresses.batchInbox;
    sender = new L1Sender(
      { ...DEFAULT_L1_SENDER_PARAMS, maxFeePerGasWei: parseGwei("100") },
      { rpcUrl: chain.anvil.url, operatorKey: await operatorKeyOf(chain), client, log: silentLogger() },
    );
    expect(sender.address.toLowerCase()).toBe(chain.operators[0]?.toLowerCase());
  }, 240_000);

  afterAll(async () => {
    await chain?.stop();
  });

  const pendingNonce = () => client.getTransactionCount({ address: sender.address, blockTag: "pending" });
  const minedNonce = () => client.getTransactionCount({ address: sender.address, blockTag: "latest" });

  it("withdraws the items after one that is not broadcast, and uses no nonce for them", async () => {
    const before = await pendingNonce();
    const outcomes = await sender.sendSequence([
      // Height 0 is refused by the inbox (BadHeightRange) at the gas estimate.
      { kind: "batch", call: submit(0n, 1n, "0x01") },
      { kind: "batch", call: submit(1n, 1n, "0x01") },
    ]);
    expect(outcomes.map((o) => o.kind)).toEqual(["refused", "withdrawn"]);
    if (outcomes[0]?.kind === "refused") expect(outcomes[0].error).toBe("BadHeightRange");
    expect(await pendingNonce()).toBe(before);
  }, 60_000);

  it("posts several batches in one turn, in flight at once and mined in one L1 block; the next turn goes on", async () => {
    // Turns of four inbox indexes: turn 0 (indexes 0-3) is member 0's, turn 1 (4-7) member 1's.
    expect(await client.readContract({ address: inbox, abi: BatchInbox.abi, functionName: "batchCount" })).toBe(0n);
    const batcher = batcherOf(0);
    const next = batcherOf(1);
    await jsonRpc(chain.anvil.url, "evm_setAutomine", [false], 5_000);
    try {
      batcher.start();
      const firstNonce = await minedNonce();
      const pass = batcher.tick();
      // All four are broadcast before any is mined: four consecutive nonces wait in the pool at once.
      for (let i = 0; i < 400 && (await pendingNonce()) < firstNonce + 4; i++) await sleep(50);
      expect(await pendingNonce()).toBe(firstNonce + 4);
      expect(await minedNonce()).toBe(firstNonce);
      await jsonRpc(chain.anvil.url, "evm_mine", [], 5_000);
      await pass;
      expect(batcher.status().lastError).toBeNull();

      const head = await client.getBlockNumber({ cacheTime: 0 });
      const turn1 = await readBatchEvents(client, inbox, 0n, head);
      expect(turn1).toHaveLength(4);
      expect(new Set(turn1.map((e) => e.l1Block)).size).toBe(1);
      expectContiguous(turn1, 1);
      const nonces = await Promise.all(turn1.map(async (e) => (await client.getTransaction({ hash: e.txHash })).nonce));
      expect(nonces).toEqual([0, 1, 2, 3].map((k) => firstNonce + k));
      // Full batches: each but the last of the turn would not have taken one more block.
      for (const e of turn1) {
        const tx = await client.getTransaction({ hash: e.txHash });
        expect(tx.input.length / 2).toBeGreaterThan(MAX_BATCH_DATA_BYTES * 0.8);
      }
      expect(turn1.at(-1)?.lastHeight ?? 0).toBeLessThan(100);

      // Turn 1 is member 1's: member 0 waits (a stagger), member 1 posts the rest from the posted height on.
      await jsonRpc(chain.anvil.url, "evm_setAutomine", [true], 5_000);
      await batcher.tick();
      expect(batcher.status().phase).toBe("waiting");
      expect(await readBatchEvents(client, inbox, 0n, await client.getBlockNumber({ cacheTime: 0 }))).toHaveLength(4);
      next.start();
      await next.tick();
      expect(next.status().lastError).toBeNull();
      const all = await readBatchEvents(client, inbox, 0n, await client.getBlockNumber({ cacheTime: 0 }));
      expectContiguous(all, 1);
      expect(all.at(-1)?.lastHeight).toBe(100);
      // The batches decode to the chain's blocks, in order.
      const blocks: string[] = [];
      for (const e of all) blocks.push(...(await blocksOf((await client.getTransaction({ hash: e.txHash })).input)));
      expect(blocks).toEqual(items.slice(0, 100).map((i) => toHex(i.block)));
    } finally {
      batcher.stop();
      next.stop();
      await jsonRpc(chain.anvil.url, "evm_setAutomine", [true], 5_000);
    }
  }, 120_000);

  it("does not count a garbage batch as posted: its heights are posted again", async () => {
    head = 141;
    const unchecked = new InboxReader({ client, inbox, fromBlock: 0n, confirmedHead: () => null });
    const reader = checkedReader();
    expect((await reader.postedHeight()).height).toBe(100);
    // Heights 101-115 with one block altered, and 101-140 as bytes that are no batch at all.
    const blocks = items.slice(100, 115).map((i) => i.block);
    const altered = Uint8Array.from(blocks[5] as Uint8Array);
    altered.set([(altered.at(-1) ?? 0) ^ 0xff], altered.length - 1);
    const tampered = await encodeBatchData({
      chainId: CHAIN_ID,
      firstHeight: 101,
      blocks: blocks.map((b, i) => (i === 5 ? altered : b)),
      lastCertificate: encodeCertificate(items[114]?.certificate as never),
    });
    const outcomes = await sender.sendSequence([
      { kind: "batch", call: submit(101n, 115n, toHex(tampered)) },
      { kind: "batch", call: submit(101n, 140n, `0x01${"ab".repeat(64)}`) },
    ]);
    expect(
      outcomes.map((o) => o.kind),
      JSON.stringify(outcomes, (_, v) => String(v)),
    ).toEqual(["mined", "mined"]);
    const garbageBefore = (await metrics.batcherGarbageBatches.get()).values[0]?.value ?? 0;
    expect((await unchecked.postedHeight()).height).toBe(140);
    expect((await reader.postedHeight()).height).toBe(100);
    expect((await metrics.batcherGarbageBatches.get()).values[0]?.value).toBe(garbageBefore + 2);
    // Read again (the events are above the confirmed block): the verdicts are kept, not checked again.
    expect((await reader.postedHeight()).height).toBe(100);
    expect((await metrics.batcherGarbageBatches.get()).values[0]?.value).toBe(garbageBefore + 2);

    // The member whose turn it is (indexes 8-11: member 2) posts 101-140 again, and they count.
    const count = await client.readContract({ address: inbox, abi: BatchInbox.abi, functionName: "batchCount" });
    expect(count / 4n).toBe(2n);
    const batcher = batcherOf(2);
    batcher.start();
    try {
      await batcher.tick();
    } finally {
      batcher.stop();
    }
    expect(batcher.status().lastError).toBeNull();
    expect(batcher.status().postedHeight).toBe(100);
    expect((await reader.postedHeight()).height).toBe(140);
  }, 120_000);

  function submit(first: bigint, last: bigint, data: Hex) {
    return { address: inbox, abi: BatchInbox.abi, functionName: "submitBatch", args: [first, last, data] } as const;
  }
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function expectContiguous(events: readonly { firstHeight: number; lastHeight: number }[], from: number): void {
  let next = from;
  for (const e of events) {
    expect(e.firstHeight).toBe(next);
    expect(e.lastHeight).toBeGreaterThanOrEqual(e.firstHeight);
    next = e.lastHeight + 1;
  }
}

/** The blocks of a submitBatch transaction's input (its `data` argument decoded as batch data). */
async function blocksOf(input: Hex): Promise<string[]> {
  const { args } = decodeFunctionData({ abi: BatchInbox.abi, data: input });
  const data = (args as readonly unknown[])[2] as Hex;
  const batch = await decodeBatchData(Buffer.from(data.slice(2), "hex"));
  return batch.blocks.map((b) => toHex(b));
}
