// History pruning (src/node/history-pruner.ts, docs/storage.md "History pruning") on the node's real parts: level
// store, execution core, mempool and block executor (openNodeState). One node keeps 256 heights of history (the
// fewest allowed), a twin keeps all; both commit the same blocks, each with an EVM transfer and every other one with a Solana transfer. The pruned
// node deletes blocks, certificates, receipts, hash and transaction index entries of older heights but block 1, answers
// JSON-RPC reads of them with geth's error 4444 (transactions: null, as unknown), answers every kept height exactly as
// the archive does, serves sync ranges only from where its history is whole, waits for a hold, and keeps its place
// across a restart.

import { getBase58Encoder } from "@solana/kit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, type Hex } from "../../consensus/bytes.ts";
import { SVM_TX_PREFIX } from "../../src/chain/block.ts";
import { CONFIG_LIMITS } from "../../src/config/config.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import { signatureIndexKey } from "../../src/execution/svm/receipt.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { HistoryPruner, historyKeptHeights, MIN_HISTORY_HEIGHTS } from "../../src/node/history-pruner.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { buildTx, SOL, signer, transferIx } from "../svm/helpers.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_002n;
const KEEP = MIN_HISTORY_HEIGHTS;
const STEP = 16;
const sender = testAccount(1);
const hex = (n: number): Hex => `0x${n.toString(16)}`;

interface Height {
  readonly hash: Hex;
  readonly evm: Hex;
  /** base58 signature of the Solana transfer, when the height has one. */
  readonly svm: string | null;
}

describe("history pruning", () => {
  let genesis: Genesis;
  let nodes: NodeStates;
  let pruned: NodeState;
  let prunedDir = "";
  let archive: NodeState;
  let pruner: HistoryPruner;
  let holdFrom = Number.POSITIVE_INFINITY;
  let nonce = 0;
  let payer: Awaited<ReturnType<typeof signer>>;
  let payee: Awaited<ReturnType<typeof signer>>;
  const heights = new Map<number, Height>();
  const log = pino({ level: "silent" });

  const newPruner = (state: NodeState) =>
    new HistoryPruner({
      store: state.store,
      keepHeights: KEEP,
      minStepHeights: STEP,
      holds: [{ name: "test hold", from: () => holdFrom }],
      log,
    });

  /** Builds the next height on the archive from an EVM transfer (and a Solana one on even heights), commits it on both. */
  async function height(): Promise<void> {
    const h = archive.store.headHeight + 1;
    const evm = await signRaw(
      sender,
      { nonce: nonce++, to: addressOf(testAccount(2)), value: 1_000n + BigInt(h) },
      CHAIN,
    );
    const raws: Uint8Array[] = [evm];
    let svm: string | null = null;
    if (h % 2 === 0) {
      const blockhash = archive.executor.latestSvmBlockhash().blockhash;
      const wire = await buildTx(payer, [transferIx(payer, payee.address, SOL / 1_000n + BigInt(h))], blockhash);
      raws.push(concatBytes(Uint8Array.of(SVM_TX_PREFIX), wire));
    }
    for (const raw of raws) {
      const added = await archive.mempool.add(raw, { kind: "local" });
      if (!added.ok) throw new Error(`${added.code}: ${added.message}`);
      if (added.signature !== undefined) svm = added.signature;
    }
    const proposer = genesis.validatorSet.validators[0]?.address ?? "0x";
    const built = await archive.executor.build(h, proposer, nodes.sets());
    if (built === null || built.block.transactions.length !== raws.length) throw new Error("the block is short");
    expect(await pruned.executor.validate(built.block, built.bytes, nodes.sets(), false)).toBeNull();
    await nodes.commit(archive, built.block, built.bytes);
    await nodes.commit(pruned, built.block, built.bytes);
    const hash = (await archive.store.getCertificate(h))?.blockHash as Hex;
    const evmHash = ((await nodes.eth(archive, "eth_getBlockByNumber", [hex(h), false])) as { transactions: Hex[] })
      .transactions[0] as Hex;
    heights.set(h, { hash, evm: evmHash, svm });
    pruner.committed();
    await pruner.idle();
  }

  const rpcError = async (state: NodeState, method: string, params: unknown[]) => {
    try {
      await nodes.eth(state, method, params);
    } catch (error) {
      return error as Error & { code: number };
    }
    throw new Error(`${method} answered`);
  };

  beforeAll(async () => {
    payer = await signer(1);
    payee = await signer(2);
    genesis = singleValidatorGenesis(CHAIN, addressOf(sender), 10n ** 21n, {
      address: payer.address,
      lamports: 10n * SOL,
    });
    nodes = new NodeStates(genesis);
    ({ state: pruned, dir: prunedDir } = await nodes.state());
    ({ state: archive } = await nodes.state());
    pruner = newPruner(pruned);
    pruner.start();
    for (let i = 0; i < KEEP + 3 * STEP + 5; i++) await height();
  }, 120_000);

  afterAll(async () => {
    await pruner?.stop();
    await nodes?.close();
  });

  it("deletes the history of heights older than the window, in steps, but block 1", async () => {
    const head = pruned.store.headHeight;
    const keptFrom = pruned.store.historyKeptFrom;
    expect(keptFrom).toBeLessThanOrEqual(head - KEEP + 1);
    expect(keptFrom).toBeGreaterThan(head - KEEP + 1 - STEP);
    expect(archive.store.historyKeptFrom).toBe(1);
    for (const [h, { hash, evm, svm }] of heights) {
      const gone = h < keptFrom && h !== 1;
      const location = await pruned.store.getTransactionLocation(evm);
      expect(location === undefined, `transaction of height ${h}`).toBe(gone);
      if (svm !== null) {
        const key = signatureIndexKey(new Uint8Array(base58Bytes(svm)));
        expect((await pruned.store.getTransactionLocation(key)) === undefined).toBe(gone);
      }
      expect((await pruned.store.getBlock(h)) === undefined, `block ${h}`).toBe(gone);
      expect((await pruned.store.getReceipts(h)) === undefined).toBe(gone);
      expect((await pruned.store.getCertificate(h)) === undefined).toBe(gone);
      expect((await pruned.store.getBlockByHash(hash)) === undefined).toBe(gone);
    }
  });

  it("answers reads of deleted history with error 4444, and every kept height as the archive does", async () => {
    const keptFrom = pruned.store.historyKeptFrom;
    for (const [h, { hash, evm, svm }] of heights) {
      if (h < keptFrom && h !== 1) {
        const error = await rpcError(pruned, "eth_getBlockByNumber", [hex(h), false]);
        expect(error.code).toBe(4444);
        expect(error.message).toContain("pruned history unavailable");
        expect(error.message).toContain(`${keptFrom} and later`);
        expect((await rpcError(pruned, "eth_getBlockReceipts", [hex(h)])).code).toBe(4444);
        expect((await rpcError(pruned, "lumia_getCertificate", [hex(h)])).code).toBe(4444);
        expect(await nodes.eth(pruned, "eth_getBlockByHash", [hash, false])).toBeNull();
        expect(await nodes.eth(pruned, "eth_getTransactionByHash", [evm])).toBeNull();
        expect(await nodes.eth(pruned, "eth_getTransactionReceipt", [evm])).toBeNull();
        if (svm !== null) {
          expect(await nodes.solana(pruned, "getTransaction", [svm, { encoding: "json" }])).toBeNull();
        }
        continue;
      }
      for (const [method, params] of [
        ["eth_getBlockByNumber", [hex(h), true]],
        ["eth_getBlockByHash", [hash, false]],
        ["eth_getBlockReceipts", [hex(h)]],
        ["eth_getTransactionReceipt", [evm]],
        ["lumia_getCertificate", [hex(h)]],
      ] as const) {
        expect(await nodes.eth(pruned, method, [...params]), `${method} at ${h}`).toEqual(
          await nodes.eth(archive, method, [...params]),
        );
      }
      if (svm !== null) {
        const args = [svm, { encoding: "json", maxSupportedTransactionVersion: 0 }];
        expect(await nodes.solana(pruned, "getTransaction", args)).toEqual(
          await nodes.solana(archive, "getTransaction", args),
        );
      }
    }
    const head = pruned.store.headHeight;
    // A replay reads the hashes of the 256 blocks before it: within 256 of the deleted ones, it is refused as pruned.
    const trace = await rpcError(pruned, "debug_traceBlockByNumber", [hex(keptFrom + 10), { tracer: "callTracer" }]);
    expect(trace.code).toBe(4444);
    expect(trace.message).toContain(`replaying block ${keptFrom + 10} needs the hashes of the 256 blocks before it`);
    expect(
      await nodes.eth(archive, "debug_traceBlockByNumber", [hex(keptFrom + 10), { tracer: "callTracer" }]),
    ).toHaveLength(1);
    const logs = await rpcError(pruned, "eth_getLogs", [{ fromBlock: hex(keptFrom - 1), toBlock: hex(keptFrom + 10) }]);
    expect(logs.code).toBe(4444);
    expect(await nodes.eth(pruned, "eth_getLogs", [{ fromBlock: hex(head - 50), toBlock: hex(head) }])).toEqual([]);
    // fee history starts where the history is whole, as geth's does
    const feeHistory = async (state: NodeState) =>
      Number(
        ((await nodes.eth(state, "eth_feeHistory", [hex(100), hex(keptFrom + 50), []])) as { oldestBlock: Hex })
          .oldestBlock,
      );
    expect(await feeHistory(pruned)).toBe(keptFrom);
    expect(await feeHistory(archive)).toBe(keptFrom - 49);
  });

  it("serves sync ranges only from where its history is whole, and a kept height below it alone", async () => {
    const keptFrom = pruned.store.historyKeptFrom;
    // Block 1 is kept (light clients and state sync anchor there): served alone, not with the deleted heights after it.
    expect(await pruned.store.getRange(1, 8, 1 << 20)).toEqual(await archive.store.getRange(1, 1, 1 << 20));
    expect(await pruned.store.getRange(2, 8, 1 << 20)).toEqual([]);
    expect(await pruned.store.getRange(keptFrom - 1, 8, 1 << 20)).toEqual([]);
    const range = await pruned.store.getRange(keptFrom, 8, 1 << 20);
    expect(range.map((r) => r.height)).toEqual([...Array(8).keys()].map((i) => keptFrom + i));
    expect(range).toEqual(await archive.store.getRange(keptFrom, 8, 1 << 20));
  });

  it("waits for a hold, then catches up once it is released", async () => {
    holdFrom = pruned.store.historyKeptFrom + STEP + 2;
    try {
      for (let i = 0; i < 3 * STEP; i++) await height();
      // The window would have moved 3 steps: the hold stops it within one step of the held height.
      expect(pruned.store.headHeight - KEEP + 1).toBeGreaterThan(holdFrom + STEP);
      expect(pruned.store.historyKeptFrom).toBeLessThanOrEqual(holdFrom);
      expect(pruned.store.historyKeptFrom).toBeGreaterThan(holdFrom - STEP);
      expect(await pruned.store.getBlock(holdFrom)).toBeDefined();
    } finally {
      holdFrom = Number.POSITIVE_INFINITY;
    }
    await height();
    expect(pruned.store.historyKeptFrom).toBe(pruned.store.headHeight - KEEP + 1);
  });

  it("keeps its place across a restart and goes on from it", async () => {
    await pruner.stop();
    const keptFrom = pruned.store.historyKeptFrom;
    await nodes.closeOne(pruned);
    ({ state: pruned } = await nodes.state(prunedDir));
    expect(pruned.store.historyKeptFrom).toBe(keptFrom);
    expect(await pruned.store.getBlock(keptFrom - 1)).toBeUndefined();
    expect(await pruned.store.getBlock(1)).toBeDefined();
    pruner = newPruner(pruned);
    pruner.start();
    for (let i = 0; i < STEP; i++) await height();
    expect(pruned.store.historyKeptFrom).toBe(pruned.store.headHeight - KEEP + 1);
    expect(await pruned.executor.head.hash).toBe(archive.executor.head.hash);
  });

  it("keeps block 1 and the block before each change of the deciding set; config allows no fewer heights than it needs", () => {
    expect(CONFIG_LIMITS.minBlockHistory).toBe(MIN_HISTORY_HEIGHTS);
    expect([...historyKeptHeights([{ fromHeight: 1 }])]).toEqual([1]);
    expect(
      [...historyKeptHeights([{ fromHeight: 1 }, { fromHeight: 40 }, { fromHeight: 95 }])].sort((a, b) => a - b),
    ).toEqual([1, 39, 94]);
    expect([...historyKeptHeights([{ fromHeight: 1 }, { fromHeight: 2 }])].sort((a, b) => a - b)).toEqual([1]);
  });
});

function base58Bytes(text: string): Uint8Array {
  return new Uint8Array(getBase58Encoder().encode(text));
}
