// Outgoing transaction gossip: what is admitted within one turn of the event loop leaves as one message at the end of
// that turn, a full batch leaves at once, and the message decodes back to the same entries in the same order.
import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { DecodeError } from "../../consensus/codec.ts";
import {
  decodeTransactionBatch,
  encodeTransactionBatch,
  MAX_GOSSIP_BATCH_BYTES,
  MAX_GOSSIP_BATCH_TRANSACTIONS,
} from "../../src/node/messages.ts";
import { TransactionGossip } from "../../src/node/tx-gossip.ts";

const entry = (n: number, size = 110) => new Uint8Array(size).fill(n % 251);

function recorder() {
  const sent: Uint8Array[][] = [];
  const gossip = new TransactionGossip((batch, count) => {
    const entries = decodeTransactionBatch(batch);
    expect(entries).toHaveLength(count);
    expect(batch.length).toBeLessThanOrEqual(MAX_GOSSIP_BATCH_BYTES);
    sent.push([...entries]);
  });
  return { sent, gossip };
}

describe("transaction gossip batches", () => {
  it("sends the entries of one turn as one message at the end of the turn, in order", async () => {
    const { sent, gossip } = recorder();
    for (let i = 0; i < 5; i++) gossip.add(entry(i));
    expect(sent).toHaveLength(0);
    await nextTurn();
    expect(sent).toEqual([[0, 1, 2, 3, 4].map((i) => entry(i))]);
    // A lone entry in a later turn leaves alone, without waiting for company.
    gossip.add(entry(9));
    await nextTurn();
    expect(sent).toHaveLength(2);
    expect(sent[1]).toEqual([entry(9)]);
    await nextTurn();
    expect(sent).toHaveLength(2);
  });

  it("sends a full batch at once, by count and by bytes", async () => {
    const { sent, gossip } = recorder();
    for (let i = 0; i < MAX_GOSSIP_BATCH_TRANSACTIONS + 1; i++) gossip.add(entry(i, 8));
    expect(sent.map((b) => b.length)).toEqual([MAX_GOSSIP_BATCH_TRANSACTIONS]);
    await nextTurn();
    expect(sent.map((b) => b.length)).toEqual([MAX_GOSSIP_BATCH_TRANSACTIONS, 1]);

    const big = 90 * 1024; // two fit in one message, three do not
    for (let i = 0; i < 3; i++) gossip.add(entry(i, big));
    expect(sent.slice(2).map((b) => b.length)).toEqual([2]);
    await nextTurn();
    expect(sent.slice(2).map((b) => b.length)).toEqual([2, 1]);
  });

  it("sends what is queued when stopped, and nothing after", async () => {
    const { sent, gossip } = recorder();
    gossip.add(entry(1));
    gossip.stop();
    expect(sent).toEqual([[entry(1)]]);
    gossip.add(entry(2));
    await nextTurn();
    expect(sent).toHaveLength(1);
  });

  it("refuses malformed batches with a DecodeError", () => {
    const good = encodeTransactionBatch([entry(1), entry(2)]);
    expect(decodeTransactionBatch(good)).toEqual([entry(1), entry(2)]);
    expect(() => decodeTransactionBatch(good.subarray(0, good.length - 1))).toThrow(DecodeError);
    expect(() => decodeTransactionBatch(new Uint8Array([2, 0, 0, 0, 0]))).toThrow(DecodeError); // unknown version
    const tooMany = new Uint8Array([1, 0, 0, 0x10, 0]); // 4,096 entries announced
    expect(() => decodeTransactionBatch(tooMany)).toThrow(DecodeError);
    expect(() =>
      encodeTransactionBatch(Array.from({ length: MAX_GOSSIP_BATCH_TRANSACTIONS + 1 }, () => entry(0))),
    ).toThrow();
  });
});
