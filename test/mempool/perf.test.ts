// 10k queued transactions: how long block building takes. Timings are printed, not asserted (shared CI cores).
import { describe, expect, it } from "vitest";
import { account, GWEI, LOCAL, MemoryAccounts, signTx, testPool } from "./helpers.ts";

const SENDERS = 2_000;
const PER_SENDER = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

describe("pending() with 10k queued transactions", () => {
  it("builds blocks from 2,000 senders x 5 nonces", async () => {
    const accounts = Array.from({ length: SENDERS }, (_, i) => account(10_000 + i));
    const t = testPool({ maxCount: 20_000, maxBytes: 8 * 1024 * 1024 }, new MemoryAccounts(accounts));

    let started = performance.now();
    const raws: Uint8Array[] = [];
    for (const [s, from] of accounts.entries()) {
      for (let n = 0; n < PER_SENDER; n++) {
        raws.push(
          await signTx(from, { nonce: n, tip: BigInt(1 + ((s * 31 + n * 7) % 50)) * GWEI, maxFee: 60n * GWEI }),
        );
      }
    }
    const signMs = performance.now() - started;

    started = performance.now();
    for (const raw of raws) {
      const result = await t.pool.add(raw, LOCAL);
      if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
    }
    const addMs = performance.now() - started;
    expect(t.pool.size).toBe(SENDERS * PER_SENDER);

    const all = { gasLimit: 21_000n * 10_000n, maxBytes: 8 * 1024 * 1024, maxCount: 10_000, baseFee: GWEI };
    const block30M = { gasLimit: 30_000_000n, maxBytes: 4 * 1024 * 1024, maxCount: 10_000, baseFee: GWEI };
    expect(t.pool.pending(all)).toHaveLength(10_000);
    expect(t.pool.pending(block30M)).toHaveLength(1_428);
    const fullMs: number[] = [];
    const blockMs: number[] = [];
    for (let i = 0; i < 15; i++) {
      let s = performance.now();
      t.pool.pending(all);
      fullMs.push(performance.now() - s);
      s = performance.now();
      t.pool.pending(block30M);
      blockMs.push(performance.now() - s);
    }
    console.log(
      [
        `mempool 10k: sign ${(raws.length / (signMs / 1000)).toFixed(0)} tx/s (viem),`,
        `add ${(raws.length / (addMs / 1000)).toFixed(0)} tx/s (decode + recover + checks),`,
        `pending() all 10k median ${median(fullMs).toFixed(2)} ms (max ${Math.max(...fullMs).toFixed(2)}),`,
        `30M-gas block (1428 tx) median ${median(blockMs).toFixed(2)} ms`,
      ].join(" "),
    );
  });
});
