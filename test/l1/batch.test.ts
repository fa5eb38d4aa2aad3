// The batch format (src/l1/batch.ts): round trip through the L1 data, the 120 KiB limit, hostile bytes (truncations,
// corruptions, a decompression bomb, wrong compression tags) refused with a typed BatchError only, and the commits a
// batch carries: each block with its canonical certificate, read from the next block or the batch's last certificate.
// Then the batcher's pieces: the posted-range tracker, the turn rule, and the L1 sender on anvil (no automatic
// mining): a transaction not mined in time is replaced with the same nonce and higher fees, and fees above the cap
// send nothing.
import { brotliCompressSync, constants as zlib } from "node:zlib";
import fc from "fast-check";
import { createPublicClient, http, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { encodeCertificate } from "../../consensus/certificate.ts";
import { blockHashOfEncoded } from "../../src/chain/block.ts";
import {
  BatchError,
  commitsOfBatch,
  decodeBatchData,
  encodeBatch,
  encodeBatchData,
  MAX_BATCH_DATA_BYTES,
  MAX_BATCH_DECOMPRESSED_BYTES,
  packBatch,
} from "../../src/l1/batch.ts";
import { PostedRanges, turnOf, withinPostingWindow } from "../../src/l1/batcher.ts";
import { DEFAULT_L1_SENDER_PARAMS, L1Sender } from "../../src/l1/sender.ts";
import { silentLogger } from "../../src/node/log.ts";
import { Anvil } from "../fixtures/anvil.ts";
import { testNet } from "../storage/fixtures.ts";
import { buildChain, CHAIN_ID } from "./batch-chain.ts";

const chain = buildChain(24, 3);

function batchOf(from: number, to: number) {
  const items = chain.slice(from - 1, to);
  const last = items[items.length - 1];
  if (last === undefined) throw new Error("empty range");
  return {
    chainId: CHAIN_ID,
    firstHeight: from,
    blocks: items.map((i) => i.block),
    lastCertificate: encodeCertificate(last.certificate),
  };
}

async function expectBatchError(f: () => unknown, code?: string): Promise<void> {
  try {
    await f();
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(BatchError);
    if (code !== undefined) expect((error as BatchError).code).toBe(code);
    return;
  }
  throw new Error("expected a BatchError");
}

describe("batch format", () => {
  it("round-trips through the L1 data and yields every block with its canonical certificate", async () => {
    const batch = batchOf(5, 12);
    const data = await encodeBatchData(batch);
    expect(data[0]).toBe(0x01);
    expect(data.length).toBeLessThan(encodeBatch(batch).length);
    const decoded = await decodeBatchData(data);
    expect(decoded).toEqual(batch);
    const commits = commitsOfBatch(decoded, CHAIN_ID);
    expect(commits.map((c) => c.certificate.height)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    for (const [i, c] of commits.entries()) {
      const item = chain[4 + i];
      expect(c.block).toEqual(item?.block);
      // The certificate is the one the chain holds for the height (for all but the last: read from the next block).
      expect(toHex(encodeCertificate(c.certificate))).toBe(toHex(encodeCertificate(item?.certificate as never)));
      expect(c.certificate.blockHash).toBe(blockHashOfEncoded(c.block));
    }
  });

  it("refuses a batch of another chain, with non-consecutive heights, or a last certificate of another height", () => {
    expectBatchError(() => commitsOfBatch(batchOf(1, 3), CHAIN_ID + 1n), "inconsistent");
    const gap = { ...batchOf(1, 3), firstHeight: 2 };
    expectBatchError(() => commitsOfBatch(gap, CHAIN_ID), "inconsistent");
    const wrongLast = { ...batchOf(1, 3), lastCertificate: encodeCertificate(chain[5]?.certificate as never) };
    expectBatchError(() => commitsOfBatch(wrongLast, CHAIN_ID), "inconsistent");
    expectBatchError(() => commitsOfBatch({ ...batchOf(1, 3), blocks: [] }, CHAIN_ID), "empty");
    const junkBlock = { ...batchOf(1, 1), blocks: [new Uint8Array([1, 2, 3])] };
    expectBatchError(() => commitsOfBatch(junkBlock, CHAIN_ID), "malformed");
  });

  it("packs the longest prefix that fits the size limit, and nothing when one block alone is too big", async () => {
    const big = buildChain(400, 20);
    const packed = await packBatch(CHAIN_ID, big);
    if (packed === null) throw new Error("nothing packed");
    expect(packed.data.length).toBeLessThanOrEqual(MAX_BATCH_DATA_BYTES);
    expect(packed.firstHeight).toBe(1);
    expect(packed.lastHeight).toBeLessThan(400);
    // One more block would not fit.
    const oneMore = await packBatch(CHAIN_ID, big.slice(0, packed.lastHeight + 1), Number.POSITIVE_INFINITY);
    expect(oneMore?.data.length).toBeGreaterThan(MAX_BATCH_DATA_BYTES);
    const decoded = await decodeBatchData(packed.data);
    expect(commitsOfBatch(decoded, CHAIN_ID).length).toBe(packed.lastHeight);
    // The certificate of the last block is the store's (the caller passes canonical ones).
    expect(toHex(decoded.lastCertificate)).toBe(
      toHex(encodeCertificate(big[packed.lastHeight - 1]?.certificate as never)),
    );
    // All of a small chain fits at once.
    expect((await packBatch(CHAIN_ID, chain))?.lastHeight).toBe(24);
    expect(await packBatch(CHAIN_ID, chain, 100)).toBeNull();
    expect(await packBatch(CHAIN_ID, [])).toBeNull();
  });

  it("finds the longest prefix that fits in a few compressions, on blocks that compress 1.6x, 3x and a mix", async () => {
    const full = buildChain(200, 20);
    const light = buildChain(200, 1);
    // Heights must be consecutive; the certificates only need to encode.
    const mixed = [
      ...full.slice(0, 100),
      ...light.slice(0, 100).map((item, i) => ({ ...item, height: 101 + i })),
      ...full.slice(100).map((item, i) => ({ ...item, height: 201 + i })),
    ];
    const sizeOf = async (items: typeof full, count: number) =>
      (
        await encodeBatchData({
          chainId: CHAIN_ID,
          firstHeight: 1,
          blocks: items.slice(0, count).map((i) => i.block),
          lastCertificate: encodeCertificate((items[count - 1] as (typeof full)[number]).certificate),
        })
      ).length;
    for (const items of [full, light, mixed]) {
      for (const limit of [5_000, 20_000, 60_000, MAX_BATCH_DATA_BYTES, 400_000]) {
        const packed = await packBatch(CHAIN_ID, items, limit);
        if (packed === null) throw new Error(`nothing packed under ${limit}`);
        const count = packed.batch.blocks.length;
        expect(packed.data.length).toBeLessThanOrEqual(limit);
        if (count < items.length) expect(await sizeOf(items, count + 1)).toBeGreaterThan(limit);
        // A bisection of the count takes 9-10 here.
        expect(packed.compressions, `${count} blocks under ${limit}`).toBeLessThanOrEqual(5);
      }
    }
  });

  it("refuses a decompression bomb before allocating more than the cap", async () => {
    const bomb = brotliCompressSync(new Uint8Array(40 * 1024 * 1024), {
      params: { [zlib.BROTLI_PARAM_QUALITY]: 1 },
    });
    expect(bomb.length).toBeLessThan(64 * 1024);
    const data = new Uint8Array([0x01, ...bomb]);
    const before = process.memoryUsage().arrayBuffers;
    await expectBatchError(() => decodeBatchData(data), "too_large");
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(MAX_BATCH_DECOMPRESSED_BYTES * 2);
    // Just under the cap decompresses, then fails as a schema violation (zeros are not a batch).
    const under = brotliCompressSync(new Uint8Array(1024));
    await expectBatchError(() => decodeBatchData(new Uint8Array([0x01, ...under])), "malformed");
  });

  it("refuses empty data, unknown compression tags, non-brotli bytes and oversize data", async () => {
    await expectBatchError(() => decodeBatchData(new Uint8Array(0)), "empty");
    await expectBatchError(() => decodeBatchData(new Uint8Array([0x02, 1, 2, 3])), "unknown_compression");
    await expectBatchError(
      () => decodeBatchData(new Uint8Array([0x01, 0xff, 0xff, 0xff, 0xff])),
      "decompression_failed",
    );
    await expectBatchError(() => decodeBatchData(new Uint8Array(129 * 1024).fill(1)), "too_large");
  });

  it("never throws anything but BatchError on truncated, corrupted or random data (fast-check)", async () => {
    const good = await encodeBatchData(batchOf(1, 6));
    const raw = encodeBatch(batchOf(1, 6));
    const check = async (data: Uint8Array) => {
      try {
        const batch = await decodeBatchData(data);
        commitsOfBatch(batch, CHAIN_ID);
      } catch (error) {
        if (!(error instanceof BatchError)) throw error;
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: good.length }), (n) => check(good.subarray(0, n))),
      { numRuns: 200 },
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: raw.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        // Corrupt the uncompressed bytes (brotli would reject most corruptions of the compressed ones itself).
        const bad = raw.slice();
        bad[at] = ((bad[at] ?? 0) ^ x) & 0xff;
        return check(new Uint8Array([0x01, ...brotliCompressSync(bad)]));
      }),
      { numRuns: 300 },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), (bytes) => check(new Uint8Array([0x01, ...bytes]))),
      { numRuns: 300 },
    );
  });
});

describe("posted ranges and turns", () => {
  it("tracks the contiguous posted height through duplicates, overlaps and out-of-order ranges", () => {
    const r = new PostedRanges(2);
    r.add(1, 10);
    r.add(5, 8);
    r.add(1, 10);
    expect(r.contiguous).toBe(10);
    r.add(21, 30);
    r.add(41, 50);
    expect(r.contiguous).toBe(10);
    r.add(11, 20);
    expect(r.contiguous).toBe(30);
    // Over the bound the farthest range is forgotten (read again later), never a nearer one.
    r.add(61, 70);
    r.add(81, 90);
    r.add(31, 40);
    expect(r.contiguous).toBe(50);
    const copy = r.clone();
    copy.add(51, 60);
    expect(copy.contiguous).toBe(70);
    expect(r.contiguous).toBe(50);
  });

  it("gives job k to member k mod n first, then each next member one stagger later", () => {
    const set = testNet().genesis;
    const n = set.validators.length;
    for (let job = 0n; job < 8n; job++) {
      const turns = set.validators.map((v) => turnOf(set, v.address, job));
      expect([...turns].sort()).toEqual([...Array(n).keys()]);
      expect(turns[Number(job % BigInt(n))]).toBe(0);
    }
    expect(turnOf(set, `0x${"11".repeat(20)}`, 0n)).toBeNull();
  });

  it("sends only in the first half of a slot, except the last member, which has no successor to race", () => {
    // 4 members, 3 s stagger: member 1's slot begins at 10 s; member 3 is last in the rotation.
    expect(withinPostingWindow(10_000, 10_000, 3_000, 1, 4)).toBe(true);
    expect(withinPostingWindow(11_500, 10_000, 3_000, 1, 4)).toBe(true);
    expect(withinPostingWindow(11_501, 10_000, 3_000, 1, 4)).toBe(false);
    expect(withinPostingWindow(60_000, 10_000, 3_000, 3, 4)).toBe(true);
    expect(withinPostingWindow(60_000, 10_000, 0, 0, 4)).toBe(true);
    expect(withinPostingWindow(60_000, 10_000, 3_000, 0, 1)).toBe(true);
  });
});

describe("L1 sender on anvil", () => {
  let anvil: Anvil;
  const operatorKey = new Uint8Array(32).fill(7);
  const to = `0x${"42".repeat(20)}` as const;
  const call = { address: to, abi: [], functionName: "", args: [] } as const;

  beforeAll(async () => {
    anvil = await Anvil.start({ chainId: 31_337n, baseFee: 1_000_000_000n, gasLimit: 30_000_000n });
  });
  afterAll(async () => {
    await anvil?.stop();
  });

  function sender(maxFeePerGasWei: bigint, resubmitAfterMs: number) {
    const client = createPublicClient({ transport: http(anvil.url) });
    return {
      client,
      sender: new L1Sender(
        { ...DEFAULT_L1_SENDER_PARAMS, maxFeePerGasWei, resubmitAfterMs, maxResubmits: 3 },
        { rpcUrl: anvil.url, operatorKey, client: client as never, log: silentLogger() },
      ),
    };
  }

  it("replaces a transaction that is not mined in time: same nonce, higher fees; the replacement is mined", async () => {
    const { client, sender: s } = sender(parseGwei("100"), 1_000);
    await anvil.rpc("anvil_setBalance", [s.address, "0xde0b6b3a7640000"]);
    const firstFees = await client.estimateFeesPerGas();
    const sending = s.send("test", {
      ...call,
      abi: BATCH_LIKE_ABI,
      functionName: "submitBatch",
      args: [1n, 2n, "0x01"],
    });
    // Nothing mines until the sender has replaced its first transaction.
    await new Promise((r) => setTimeout(r, 1_800));
    await anvil.rpc("evm_mine", []);
    const outcome = await sending;
    if (outcome.kind !== "mined") throw new Error(`not mined: ${JSON.stringify(outcome)}`);
    expect(outcome.resubmits).toBeGreaterThanOrEqual(1);
    const mined = await client.getTransaction({ hash: outcome.txHash });
    expect(mined.nonce).toBe(0);
    expect(mined.to).toBe(to);
    // One transaction of the account made it, with fees a quarter above what the first one offered.
    const block = await client.getBlock({ blockNumber: outcome.l1Block });
    expect(block.transactions).toHaveLength(1);
    expect(mined.maxFeePerGas ?? 0n).toBeGreaterThanOrEqual((firstFees.maxFeePerGas * 5n) / 4n);
    expect(await client.getTransactionCount({ address: s.address })).toBe(1);
  }, 30_000);

  it("reports a transaction still pending when the node stops as stopped, not failed; it may still be mined", async () => {
    const { client, sender: s } = sender(parseGwei("100"), 10_000);
    await anvil.rpc("anvil_setBalance", [s.address, "0xde0b6b3a7640000"]);
    const mined = await client.getTransactionCount({ address: s.address });
    const sending = s.send("test", {
      ...call,
      abi: BATCH_LIKE_ABI,
      functionName: "submitBatch",
      args: [5n, 6n, "0x01"],
    });
    const pending = () => client.getTransactionCount({ address: s.address, blockTag: "pending" });
    for (let i = 0; i < 200 && (await pending()) === mined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await pending()).toBe(mined + 1);
    s.stop();
    const outcome = await sending;
    expect(outcome.kind).toBe("stopped");
    if (outcome.kind === "stopped") expect(outcome.reason).toMatch(/1 transaction\(s\) with nonce \d+ pending/);
    await anvil.rpc("evm_mine", []);
    expect(await client.getTransactionCount({ address: s.address })).toBe(mined + 1);
  }, 30_000);

  it("sends nothing while the L1's fees are above the cap", async () => {
    const { client, sender: s } = sender(parseGwei("0.5"), 1_000);
    const before = await client.getTransactionCount({ address: s.address, blockTag: "pending" });
    const outcome = await s.send("test", {
      ...call,
      abi: BATCH_LIKE_ABI,
      functionName: "submitBatch",
      args: [3n, 4n, "0x01"],
    });
    expect(outcome.kind).toBe("fee_cap");
    expect(await client.getTransactionCount({ address: s.address, blockTag: "pending" })).toBe(before);
  }, 30_000);
});

/** submitBatch's signature, called on an address without code (the estimate succeeds, nothing reverts). */
const BATCH_LIKE_ABI = [
  {
    type: "function",
    name: "submitBatch",
    stateMutability: "nonpayable",
    inputs: [
      { name: "firstHeight", type: "uint64" },
      { name: "lastHeight", type: "uint64" },
      { name: "data", type: "bytes" },
    ],
    outputs: [{ name: "index", type: "uint64" }],
  },
] as const;
