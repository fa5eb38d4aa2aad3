// BatchInbox on anvil: operators of open sequencers post batches (event with the data's hash and the epoch, counts
// per epoch and sequencer); everyone else, jailed, exiting or revoked sequencers, and malformed batches are refused.
// Blob batches: without a KZG library in the dependencies no blob transaction can be built here, so only the refusal
// of a blob batch whose transaction carries no blobs is tested.
import { type Address, type Hex, keccak256 } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { type FinalityChain, revertOf, startFinalityChain } from "./finality-fixture.ts";

let chain: FinalityChain;
let snapshot: Hex;

beforeAll(async () => {
  chain = await startFinalityChain();
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

const inbox = () => chain.finality.batchInbox;
const operator = (i: number) => chain.operators[i] as Address;
const id = (i: number) => chain.ids[i] as number;
const data = (size: number, seed = 1): Hex =>
  toHex(Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff));
const submit = (i: number, first: bigint, last: bigint, bytes: Hex) =>
  chain.mined(inbox().write.submitBatch([first, last, bytes], chain.as(operator(i))));
const simulateSubmit = (from: Address, first: bigint, last: bigint, bytes: Hex) =>
  inbox().simulate.submitBatch([first, last, bytes], chain.as(from));

describe("submitBatch", () => {
  it("records a batch by an open sequencer's operator: event, index, count per epoch and sequencer", async () => {
    const batch = data(1_000);
    const r0 = await submit(0, 1n, 10n, batch);
    await submit(0, 11n, 20n, data(10, 2));
    await submit(2, 11n, 20n, data(10, 3));
    const events = await inbox().getEvents.BatchSubmitted({}, { fromBlock: r0.blockNumber });
    expect(events.map((e) => e.args)).toEqual([
      { index: 0n, sequencerId: id(0), firstHeight: 1n, lastHeight: 10n, dataHash: keccak256(batch), epoch: 1n },
      { index: 1n, sequencerId: id(0), firstHeight: 11n, lastHeight: 20n, dataHash: keccak256(data(10, 2)), epoch: 1n },
      { index: 2n, sequencerId: id(2), firstHeight: 11n, lastHeight: 20n, dataHash: keccak256(data(10, 3)), epoch: 1n },
    ]);
    // The data stays in the transaction's input, where derivation reads it.
    const tx = await chain.publicClient.getTransaction({ hash: r0.transactionHash });
    expect(tx.input.includes(batch.slice(2))).toBe(true);
    expect(await inbox().read.batchCount()).toBe(3n);
    expect(await inbox().read.batchesOf([1n, id(0)])).toBe(2n);
    expect(await inbox().read.batchesOf([1n, id(2)])).toBe(1n);
    expect(await inbox().read.batchesOf([1n, id(1)])).toBe(0n);
    // Counted in the epoch current when posted.
    await chain.advanceEpoch();
    await submit(0, 21n, 30n, data(10, 4));
    expect(await inbox().read.batchesOf([2n, id(0)])).toBe(1n);
    expect(await inbox().read.batchesOf([1n, id(0)])).toBe(2n);
  });

  it("refuses senders that are not operators of open sequencers", async () => {
    const outsider = chain.users[15] as Address;
    expect(await revertOf(simulateSubmit(outsider, 1n, 1n, data(10)))).toBe("NotAnOpenSequencer");
    expect(await revertOf(simulateSubmit(chain.governance, 1n, 1n, data(10)))).toBe("NotAnOpenSequencer");

    // Jailed (the governance takes the slasher role to jail directly).
    await chain.mined(
      chain.registry.write.grantRole([await chain.registry.read.SLASHER_ROLE(), chain.governance], chain.gov),
    );
    await chain.mined(chain.registry.write.jail([id(1)], chain.gov));
    expect(await revertOf(simulateSubmit(operator(1), 1n, 1n, data(10)))).toBe("NotAnOpenSequencer");
    // Exiting.
    await chain.mined(chain.registry.write.requestExit(chain.as(operator(2))));
    expect(await revertOf(simulateSubmit(operator(2), 1n, 1n, data(10)))).toBe("NotAnOpenSequencer");
    // Revoked.
    await chain.mined(chain.registry.write.revokeOperator([operator(3)], chain.gov));
    expect(await revertOf(simulateSubmit(operator(3), 1n, 1n, data(10)))).toBe("NotAnOpenSequencer");
    // The others still may.
    await submit(0, 1n, 1n, data(10));
  });

  it("refuses empty, oversize and backwards batches", async () => {
    expect(await revertOf(simulateSubmit(operator(0), 1n, 1n, "0x"))).toBe("EmptyBatch");
    const max = Number(await inbox().read.MAX_BATCH_BYTES());
    expect(await revertOf(simulateSubmit(operator(0), 1n, 1n, data(max + 1)))).toBe("BatchTooLarge");
    expect(await revertOf(simulateSubmit(operator(0), 5n, 4n, data(10)))).toBe("BadHeightRange");
    expect(await revertOf(simulateSubmit(operator(0), 0n, 4n, data(10)))).toBe("BadHeightRange");
    const receipt = await submit(0, 1n, 1n, data(max));
    expect(receipt.status).toBe("success");
  });
});

describe("submitBlobBatch", () => {
  it("refuses a blob count the transaction does not carry", async () => {
    const call = (count: bigint) => inbox().simulate.submitBlobBatch([1n, 2n, count], chain.as(operator(0)));
    expect(await revertOf(call(1n))).toBe("MissingBlob");
    expect(await revertOf(call(0n))).toBe("BadBlobCount");
    expect(await revertOf(call(10n))).toBe("BadBlobCount");
  });
});
