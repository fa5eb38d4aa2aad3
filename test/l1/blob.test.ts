// EIP-4844 blob batches on a real anvil (Prague) with the finality contracts and a registered operator:
// - a batch too large for calldata goes out through the L1Sender as a blob transaction (KZG in a worker thread) to
//   BatchInbox.submitBlobBatch; the BlobBatchSubmitted event names the transaction's versioned hashes; the blobs come
//   back from anvil's Beacon API route, are checked against those hashes, decode to the same blocks and
//   certificates, and L1Derivation feeds exactly those commits to the driver;
// - a beacon node that serves a blob whose commitment is not the event's (or a sidecar whose proof fails, or nothing)
//   is refused with a typed result, and derivation applies nothing from it; without a beacon URL the batch is skipped;
// - the pure parts: blob packing round trip, hostile blob input, the transport choice.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { createPublicClient, type Hex, http, type PublicClient, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { encodeCertificate } from "../../consensus/certificate.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import {
  BatchError,
  BLOB_BYTES,
  batchDataToBlobs,
  blobsToBatchData,
  chooseBatchTransport,
  commitsOfBatch,
  decodeBlobBatch,
  MAX_BATCH_DATA_BYTES,
  MAX_BLOB_BATCH_DATA_BYTES,
  packBatch,
} from "../../src/l1/batch.ts";
import {
  createFinalityMetrics,
  type InboxBatchEvent,
  postedBatchCheck,
  readBatchEvents,
} from "../../src/l1/batcher.ts";
import { fetchBatchBlobs } from "../../src/l1/beacon.ts";
import { createKzg, type Kzg } from "../../src/l1/kzg.ts";
import { DEFAULT_L1_SENDER_PARAMS, L1Sender } from "../../src/l1/sender.ts";
import { L1Derivation } from "../../src/node/derive.ts";
import type { CommitCandidate } from "../../src/node/driver.ts";
import { silentLogger } from "../../src/node/log.ts";
import { BatchInbox } from "../../staking-contracts/artifacts.ts";
import { type FinalityChain, operatorKeyOf, startFinalityChain } from "../staking/finality-fixture.ts";
import { buildChain, CHAIN_ID } from "./batch-chain.ts";

describe("blob batches on anvil", () => {
  let chain: FinalityChain;
  let kzg: Kzg;
  let client: PublicClient;
  let inbox: Hex;
  // 120 blocks of 20 transactions: ~200 KB compressed, more than a calldata batch holds: two blobs.
  const items = buildChain(120, 20);
  let posted: { event: InboxBatchEvent & { kind: "blobs" }; blobs: Hex[] };
  const servers: Server[] = [];

  beforeAll(async () => {
    kzg = createKzg();
    // Load the trusted setup while the chain deploys (seconds of CPU in the worker).
    const warm = kzg.commitments([`0x${"00".repeat(BLOB_BYTES)}`]);
    chain = await startFinalityChain();
    await warm;
    client = createPublicClient({ transport: http(chain.anvil.url) }) as PublicClient;
    inbox = chain.finality.addresses.batchInbox;
  }, 240_000);

  afterAll(async () => {
    for (const s of servers) s.close();
    await kzg?.close();
    await chain?.stop();
  });

  /** An L1Sender of the registered operator 0 (its key from anvil's mnemonic). */
  async function operatorSender(): Promise<L1Sender> {
    const sender = new L1Sender(
      { ...DEFAULT_L1_SENDER_PARAMS, maxFeePerGasWei: parseGwei("100") },
      {
        rpcUrl: chain.anvil.url,
        operatorKey: await operatorKeyOf(chain),
        client,
        log: silentLogger(),
        kzg: () => kzg,
      },
    );
    expect(sender.address.toLowerCase()).toBe(chain.operators[0]?.toLowerCase());
    return sender;
  }

  it("posts a batch too large for calldata as blobs through the L1Sender; the beacon route gives it back", async () => {
    const sender = await operatorSender();
    expect(await packBatch(CHAIN_ID, items.slice(0, 1))).not.toBeNull();
    const calldata = await packBatch(CHAIN_ID, items);
    const packed = await packBatch(CHAIN_ID, items, MAX_BLOB_BATCH_DATA_BYTES);
    if (packed === null || calldata === null) throw new Error("nothing packed");
    expect(packed.lastHeight).toBe(120);
    expect(calldata.lastHeight).toBeLessThan(120);
    expect(packed.data.length).toBeGreaterThan(MAX_BATCH_DATA_BYTES);
    const blobs = batchDataToBlobs(packed.data);
    expect(blobs).toHaveLength(2);

    const outcome = await sender.send(
      "blob_batch",
      {
        address: inbox,
        abi: BatchInbox.abi,
        functionName: "submitBlobBatch",
        args: [1n, 120n, BigInt(blobs.length)],
      },
      await sender.prepareBlobs(blobs),
    );
    if (outcome.kind !== "mined") throw new Error(`not mined: ${JSON.stringify(outcome)}`);
    const tx = await client.getTransaction({ hash: outcome.txHash });
    expect(tx.type).toBe("eip4844");
    expect(tx.blobVersionedHashes).toHaveLength(2);
    // The next L1 block exists (the beacon block id of block n is read from block n + 1).
    await jsonRpc(chain.anvil.url, "anvil_mine", ["0x1"], 5_000);

    const events = await readBatchEvents(client, inbox, 0n, await client.getBlockNumber({ cacheTime: 0 }));
    const event = events.find((e) => e.txHash === outcome.txHash);
    if (event?.kind !== "blobs") throw new Error("no BlobBatchSubmitted event");
    expect([event.firstHeight, event.lastHeight]).toEqual([1, 120]);
    expect(event.blobHashes).toEqual(tx.blobVersionedHashes);
    posted = { event, blobs };

    const fetched = await fetchBatchBlobs({
      beaconUrl: chain.anvil.url,
      blockId: outcome.l1Block.toString(),
      versionedHashes: event.blobHashes,
      kzg,
    });
    if (!fetched.ok) throw new Error(`${fetched.code}: ${fetched.reason}`);
    expect(fetched.blobs.map((b) => toHex(b))).toEqual(blobs);
    const commits = commitsOfBatch(await decodeBlobBatch(fetched.blobs), CHAIN_ID);
    expect(commits).toHaveLength(120);
    for (const [i, c] of commits.entries()) {
      expect(toHex(c.block)).toBe(toHex(items[i]?.block as Uint8Array));
      expect(toHex(encodeCertificate(c.certificate))).toBe(toHex(encodeCertificate(items[i]?.certificate as never)));
    }

    // Derivation reads the event, the blobs from the beacon route, and hands the 120 commits to the driver.
    const run = derivation(chain.anvil.url);
    await run.until(() => run.applied.length >= 120);
    expect(run.applied.map((c) => c.certificate.height)).toEqual(items.map((i) => i.height));
    expect(await run.metric("applied")).toBe(1);
  }, 240_000);

  it("refuses a beacon node's blob whose commitment is not the event's, and a sidecar whose proof fails", async () => {
    const { event, blobs } = posted;
    const tampered = blobs.map((b) => `${b.slice(0, 66)}${b[66] === "1" ? "2" : "1"}${b.slice(67)}` as Hex);
    const [commitments, proofs] = await (async () => {
      const c = await kzg.commitments(blobs);
      return [c, await kzg.proofs(blobs, c)] as const;
    })();
    // A Fulu node: GET /eth/v1/beacon/blobs/{id} serves tampered blobs for the requested hashes.
    const fulu = await beacon((path) => (path.includes("/blobs/") ? { data: tampered } : null));
    const bad = await fetchBatchBlobs({ beaconUrl: fulu, blockId: "1", versionedHashes: event.blobHashes, kzg });
    expect(bad.ok ? "ok" : bad.code).toBe("commitment_mismatch");
    // A Deneb node (no /blobs route): sidecars with the right commitments but other blobs, so the proofs fail.
    const deneb = await beacon((path) =>
      path.includes("/blob_sidecars/")
        ? {
            data: tampered.map((blob, i) => ({
              index: String(i),
              blob,
              kzg_commitment: commitments[i],
              kzg_proof: proofs[i],
            })),
          }
        : null,
    );
    const badProof = await fetchBatchBlobs({ beaconUrl: deneb, blockId: "1", versionedHashes: event.blobHashes, kzg });
    expect(badProof.ok ? "ok" : badProof.code).toBe("bad_proof");
    // The honest sidecars verify.
    const honest = await beacon((path) =>
      path.includes("/blob_sidecars/")
        ? {
            data: blobs.map((blob, i) => ({
              index: String(i),
              blob,
              kzg_commitment: commitments[i],
              kzg_proof: proofs[i],
            })),
          }
        : null,
    );
    const good = await fetchBatchBlobs({ beaconUrl: honest, blockId: "1", versionedHashes: event.blobHashes, kzg });
    expect(good.ok && good.route).toBe("blob_sidecars");
    // Nothing at all for the hashes.
    const empty = await beacon((path) => (path.includes("/blobs/") ? { data: [] } : null));
    const none = await fetchBatchBlobs({ beaconUrl: empty, blockId: "1", versionedHashes: event.blobHashes, kzg });
    expect(none.ok ? "ok" : none.code).toBe("missing");

    // Derivation takes nothing from the lying node, and retries later (the blobs are on L1's DA layer).
    const run = derivation(fulu);
    await run.until(() => run.derive.status().lastError !== null);
    expect(run.derive.status().lastError).toMatch(/commitment_mismatch/);
    expect(run.applied).toHaveLength(0);
    run.derive.stop();
  }, 120_000);

  it("skips a blob batch when there is no beacon URL", async () => {
    const run = derivation(null);
    await run.until(async () => (await run.metric("no_beacon")) >= 1);
    run.derive.stop();
    expect(run.applied).toHaveLength(0);
  }, 60_000);

  it("sends a plain transaction only once the account's blob transaction in flight is mined (geth pools them apart)", async () => {
    const sender = await operatorSender();
    const pending = () => client.getTransactionCount({ address: sender.address, blockTag: "pending" });
    const two = await packBatch(CHAIN_ID, items.slice(0, 2));
    const one = await packBatch(CHAIN_ID, items.slice(0, 1));
    if (two === null || one === null) throw new Error("nothing packed");
    const blobs = batchDataToBlobs(two.data);
    const payload = await sender.prepareBlobs(blobs);
    await jsonRpc(chain.anvil.url, "evm_setAutomine", [false], 5_000);
    try {
      const before = await pending();
      const blob = sender.send(
        "blob_batch",
        { address: inbox, abi: BatchInbox.abi, functionName: "submitBlobBatch", args: [1n, 2n, 1n] },
        payload,
      );
      for (let i = 0; i < 200 && (await pending()) === before; i++) await new Promise((r) => setTimeout(r, 50));
      const data = `0x${Buffer.from(one.data).toString("hex")}` as Hex;
      const plain = sender.send("batch", {
        address: inbox,
        abi: BatchInbox.abi,
        functionName: "submitBatch",
        args: [1n, 1n, data],
      });
      // The plain one waits while the blob transaction is in the pool.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await pending()).toBe(before + 1);
      await jsonRpc(chain.anvil.url, "evm_mine", [], 5_000);
      const blobOutcome = await blob;
      if (blobOutcome.kind !== "mined") throw new Error(`blob not mined: ${JSON.stringify(blobOutcome)}`);
      // Then it goes, with the next nonce.
      for (let i = 0; i < 200 && (await pending()) === before + 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await pending()).toBe(before + 2);
      await jsonRpc(chain.anvil.url, "evm_mine", [], 5_000);
      const plainOutcome = await plain;
      if (plainOutcome.kind !== "mined") throw new Error(`plain not mined: ${JSON.stringify(plainOutcome)}`);
      expect(plainOutcome.l1Block).toBeGreaterThan(blobOutcome.l1Block);
      expect((await client.getTransaction({ hash: plainOutcome.txHash })).nonce).toBe(before + 1);
    } finally {
      await jsonRpc(chain.anvil.url, "evm_setAutomine", [true], 5_000);
    }
  }, 60_000);

  it("checks posted blob batches against the chain: this chain's blocks count, garbage does not", async () => {
    const store = {
      headHeight: items.length + 1,
      getRange: async (from: number, maxCount: number) => items.slice(from - 1, from - 1 + maxCount),
    };
    const metrics = createFinalityMetrics(new Registry());
    const check = (beacon: { url: string; kzg: () => Kzg } | null) =>
      postedBatchCheck({ client, inbox, chainId: CHAIN_ID, store, beacon, log: silentLogger(), metrics });
    const beacon = { url: chain.anvil.url, kzg: () => kzg };
    expect(await check(beacon)(posted.event)).toBe("posted");
    expect(await check(null)(posted.event)).toBe("unchecked");

    // Blobs that hold no batch, for the same heights.
    const sender = await operatorSender();
    const garbage = batchDataToBlobs(new Uint8Array(4_000).fill(7));
    const outcome = await sender.send(
      "blob_batch",
      { address: inbox, abi: BatchInbox.abi, functionName: "submitBlobBatch", args: [1n, 120n, 1n] },
      await sender.prepareBlobs(garbage),
    );
    if (outcome.kind !== "mined") throw new Error(`not mined: ${JSON.stringify(outcome)}`);
    await jsonRpc(chain.anvil.url, "anvil_mine", ["0x1"], 5_000);
    const events = await readBatchEvents(client, inbox, outcome.l1Block, outcome.l1Block);
    const event = events.find((e) => e.txHash === outcome.txHash);
    if (event === undefined) throw new Error("no event");
    expect(await check(beacon)(event)).toBe("garbage");
    expect((await metrics.batcherGarbageBatches.get()).values[0]?.value).toBe(1);
    // A beacon node that is down does not make a batch garbage (nor stop the batcher).
    expect(await check({ url: "http://127.0.0.1:9", kzg: () => kzg })(event)).toBe("unchecked");
  }, 120_000);

  /** A fake Beacon API: `route` answers a path with a JSON body, or null for 404. */
  async function beacon(route: (path: string) => unknown): Promise<string> {
    const server = createServer((req, res) => {
      const body = route(req.url ?? "");
      if (body === null) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  function derivation(beaconUrl: string | null) {
    const applied: CommitCandidate[] = [];
    const registry = new Registry();
    const metrics = createFinalityMetrics(registry);
    const derive = new L1Derivation(
      { pollMs: 200, maxBufferedBatches: 4 },
      {
        chainId: CHAIN_ID,
        inbox,
        client,
        confirmedHead: () => posted.event.l1Block,
        fromBlock: 0n,
        headHeight: () => applied.length,
        applyCommits: async (commits) => {
          applied.push(...commits);
          return { applied: commits.length, waiting: false };
        },
        log: silentLogger(),
        metrics,
        beaconUrl,
        kzg: () => kzg,
      },
    );
    derive.start();
    return {
      derive,
      applied,
      metric: async (outcome: string) =>
        (await metrics.derivedBatches.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0,
      async until(check: () => boolean | Promise<boolean>) {
        const deadline = Date.now() + 60_000;
        while (!(await check())) {
          if (Date.now() > deadline)
            throw new Error(
              `timed out: ${JSON.stringify(derive.status(), (_, v) => (typeof v === "bigint" ? String(v) : v))}`,
            );
          await new Promise((r) => setTimeout(r, 100));
        }
        derive.stop();
      },
    };
  }
});

describe("blob packing and the transport choice", () => {
  it("round-trips batch data through blobs and refuses malformed blob sets with a BatchError", async () => {
    const packed = await packBatch(CHAIN_ID, buildChain(10, 2), MAX_BLOB_BATCH_DATA_BYTES);
    if (packed === null) throw new Error("nothing packed");
    const blobs = batchDataToBlobs(packed.data);
    expect(blobs).toHaveLength(1);
    const bytes = blobs.map((b) => Uint8Array.from(Buffer.from(b.slice(2), "hex")));
    expect(toHex(blobsToBatchData(bytes))).toBe(toHex(packed.data));
    expect(await decodeBlobBatch(bytes)).toEqual(packed.batch);
    for (const bad of [[], [bytes[0]?.subarray(1) as Uint8Array], Array.from({ length: 10 }, () => bytes[0])]) {
      expect(() => blobsToBatchData(bad as Uint8Array[])).toThrow(BatchError);
    }
    // A zero blob carries no terminator: all of it is data, which is not a batch.
    await expect(decodeBlobBatch([new Uint8Array(BLOB_BYTES)])).rejects.toThrow(BatchError);
    expect(() => batchDataToBlobs(new Uint8Array(MAX_BLOB_BATCH_DATA_BYTES + 1))).toThrow(RangeError);
  });

  it("picks blobs in auto mode only when the L1 has them and they are cheaper per byte, or a block needs them", () => {
    const gwei = 1_000_000_000n;
    const auto = { mode: "auto", gasPriceWei: 2n * gwei, firstBlockFitsCalldata: true } as const;
    expect(chooseBatchTransport({ ...auto, blobBaseFeeWei: null })).toBe("calldata");
    expect(chooseBatchTransport({ ...auto, blobBaseFeeWei: 1n })).toBe("blobs");
    // 16 gas x 2 gwei = 32 gwei per calldata byte; a blob byte costs ~1.03 x the blob base fee.
    expect(chooseBatchTransport({ ...auto, blobBaseFeeWei: 30n * gwei })).toBe("blobs");
    expect(chooseBatchTransport({ ...auto, blobBaseFeeWei: 32n * gwei })).toBe("calldata");
    expect(chooseBatchTransport({ ...auto, blobBaseFeeWei: 100n * gwei, firstBlockFitsCalldata: false })).toBe("blobs");
    expect(chooseBatchTransport({ ...auto, mode: "calldata", blobBaseFeeWei: 1n })).toBe("calldata");
    expect(chooseBatchTransport({ ...auto, mode: "blobs", blobBaseFeeWei: 100n * gwei })).toBe("blobs");
    expect(chooseBatchTransport({ ...auto, mode: "blobs", blobBaseFeeWei: null })).toBeNull();
  });
});
