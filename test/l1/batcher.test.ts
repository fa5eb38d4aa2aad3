// The batcher's turns on a real anvil with the finality contracts and a registered operator: a turn is
// batchesPerTurn inbox indexes; one pass posts them as consecutive batches, one transaction each with consecutive
// nonces, all in flight at once, so they are mined in one L1 block; the next turn is the next member's, which goes on
// from the posted height. And the sender's sequence rule: an item that is not broadcast withdraws the items after it,
// so no later nonce waits on one that is never used.
import { Registry } from "prom-client";
import { createPublicClient, decodeFunctionData, type Hex, http, type PublicClient, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { decodeBlockHead } from "../../src/chain/block.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { decodeBatchData, MAX_BATCH_DATA_BYTES } from "../../src/l1/batch.ts";
import { Batcher, createFinalityMetrics, InboxReader, readBatchEvents } from "../../src/l1/batcher.ts";
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
  // 100 blocks of 100 transactions: ~7 KB compressed each, so a 120 KiB calldata batch holds ~17 of them.
  const items = buildChain(100, 100);
  const set = testNet().genesis;

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
    const store: Pick<ChainStore, "headHeight" | "getBlock" | "getRange" | "validatorSetFor"> = {
      // Every item is below the head: all 100 heights are pending.
      headHeight: items.length + 1,
      getBlock: async (height) => items[height - 1]?.block,
      getRange: async (from, maxCount, maxBytes) => {
        const out = [];
        let bytes = 0;
        for (const item of items.slice(from - 1, from - 1 + maxCount)) {
          if (out.length > 0 && bytes + item.block.length > maxBytes) break;
          bytes += item.block.length;
          out.push(item);
        }
        return out;
      },
      validatorSetFor: () => set,
    };
    // Turns of four inbox indexes: turn 0 (indexes 0-3) is member 0's, turn 1 (4-7) member 1's.
    expect(await client.readContract({ address: inbox, abi: BatchInbox.abi, functionName: "batchCount" })).toBe(0n);
    // The clock starts when every block is ready by age, within the first half of the first member's slot.
    const readyAt = decodeBlockHead(items.at(-1)?.block as Uint8Array).header.timestampMs + 1_000;
    const started = Date.now();
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
          reader: new InboxReader({ client, inbox, fromBlock: 0n, confirmedHead: () => null }),
          client,
          store,
          // One L1 account posts for both members here: the inbox checks the account, the turn the L2 set.
          sender,
          ownAddress: set.validators[member]?.address as Hex,
          log: silentLogger(),
          metrics: createFinalityMetrics(new Registry()),
          nowMs: () => readyAt + (Date.now() - started),
        },
      );
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
      const postedAfterTurn1 = turn1.at(-1)?.lastHeight ?? 0;
      expect(postedAfterTurn1).toBeLessThan(items.length);

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
      expect(all.at(-1)?.lastHeight).toBe(items.length);
      // The batches decode to the chain's blocks, in order.
      const blocks: string[] = [];
      for (const e of all) blocks.push(...blocksOf((await client.getTransaction({ hash: e.txHash })).input));
      expect(blocks).toEqual(items.map((i) => toHex(i.block)));
    } finally {
      batcher.stop();
      next.stop();
      await jsonRpc(chain.anvil.url, "evm_setAutomine", [true], 5_000);
    }
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
function blocksOf(input: Hex): string[] {
  const { args } = decodeFunctionData({ abi: BatchInbox.abi, data: input });
  const data = (args as readonly unknown[])[2] as Hex;
  const batch = decodeBatchData(Buffer.from(data.slice(2), "hex"));
  return batch.blocks.map((b) => toHex(b));
}
