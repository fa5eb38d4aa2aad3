// Random admissions, base fees, budgets and commits against the pool; every block it builds must be executable as is.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { DecodedTx } from "../../src/execution/tx.ts";
import { type Account, account, addressOf, GWEI, LOCAL, MemoryAccounts, signTx, testPool } from "./helpers.ts";

const SENDERS = 5;
const NONCES = 8;
const VARIANTS = 3;

const senders: Account[] = Array.from({ length: SENDERS }, (_, i) => account(100 + i));
/** raws[sender][nonce][variant]: signed once, reused by every run. */
let raws: Uint8Array[][][] = [];

function gasOf(sender: number, nonce: number, variant: number): bigint {
  return 21_000n + BigInt((sender + nonce + variant) % 4) * 30_000n;
}

beforeAll(async () => {
  raws = await Promise.all(
    senders.map((from, s) =>
      Promise.all(
        Array.from({ length: NONCES }, (_, n) =>
          Promise.all(
            Array.from({ length: VARIANTS }, (_, v) => {
              const tip = BigInt(1 + ((s * 7 + n * 3 + v * 5) % 9)) * GWEI;
              return signTx(from, {
                nonce: n,
                tip,
                maxFee: tip + BigInt(2 * v + 1) * GWEI,
                gas: gasOf(s, n, v),
                type: (s + v) % 4 === 0 ? "legacy" : "eip1559",
              });
            }),
          ),
        ),
      ),
    ),
  );
});

interface Budget {
  readonly gasLimit: bigint;
  readonly maxBytes: number;
  readonly maxCount: number;
  readonly baseFee: bigint;
}

/** What a block needs to execute: per sender, consecutive nonces from the account nonce; within every budget. */
function checkBlock(block: readonly DecodedTx[], budget: Budget, accounts: MemoryAccounts): void {
  const next = new Map<Hex, bigint>();
  let gas = 0n;
  let bytes = 0;
  for (const tx of block) {
    const expected = next.get(tx.from) ?? accounts.nonces.get(tx.from) ?? 0n;
    expect(tx.nonce).toBe(expected);
    next.set(tx.from, expected + 1n);
    expect(tx.maxFeePerGas >= budget.baseFee).toBe(true);
    gas += tx.gasLimit;
    bytes += tx.raw.length;
  }
  expect(gas <= budget.gasLimit).toBe(true);
  expect(bytes).toBeLessThanOrEqual(budget.maxBytes);
  expect(block.length).toBeLessThanOrEqual(budget.maxCount);
}

const budgetArb = fc.record({
  gasLimit: fc.bigInt({ min: 21_000n, max: 600_000n }),
  maxBytes: fc.integer({ min: 100, max: 4_000 }),
  maxCount: fc.integer({ min: 1, max: 40 }),
  baseFee: fc.bigInt({ min: 0n, max: 8n }).map((g) => g * GWEI),
});

describe("pending() property", () => {
  it("never returns a nonce gap, never exceeds its budgets, keeps per-sender nonce order, across commits", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          accountNonces: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: SENDERS, maxLength: SENDERS }),
          // Balance in units of the dearest transaction's cost; 0 means effectively unlimited.
          balances: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: SENDERS, maxLength: SENDERS }),
          maxCount: fc.integer({ min: 3, max: 30 }),
          maxPerSender: fc.integer({ min: 1, max: 8 }),
          maxNonceGap: fc.integer({ min: 1, max: 7 }),
          poolBaseFee: fc.bigInt({ min: 0n, max: 4n }).map((g) => g * GWEI),
          adds: fc.array(
            fc.record({
              sender: fc.integer({ min: 0, max: SENDERS - 1 }),
              nonce: fc.integer({ min: 0, max: NONCES - 1 }),
              variant: fc.integer({ min: 0, max: VARIANTS - 1 }),
            }),
            { maxLength: 40 },
          ),
          budgets: fc.array(budgetArb, { minLength: 1, maxLength: 3 }),
        }),
        async (c) => {
          const accounts = new MemoryAccounts();
          const unit = 111_000n * 16n * GWEI;
          for (const [i, from] of senders.entries()) {
            const units = c.balances[i] ?? 0;
            accounts.set(from, {
              nonce: BigInt(c.accountNonces[i] ?? 0),
              balance: units === 0 ? 10n ** 24n : BigInt(units) * unit,
            });
          }
          const t = testPool(
            { maxCount: c.maxCount, maxPerSender: c.maxPerSender, maxNonceGap: c.maxNonceGap },
            accounts,
            c.poolBaseFee,
          );
          for (const add of c.adds) {
            const raw = raws[add.sender]?.[add.nonce]?.[add.variant];
            if (raw === undefined) throw new Error("missing fixture");
            await t.pool.add(raw, LOCAL);
            t.pool.verifyInvariants();
          }
          for (const budget of c.budgets) {
            const block = t.pool.pending(budget);
            checkBlock(block, budget, t.accounts);
            for (const tx of block) expect(t.pool.has(tx.hash)).toBe(true);
            // Commit the block: the head nonces move, the pool must follow and stay consistent.
            const head = t.accounts.copy();
            for (const tx of block) head.nonces.set(tx.from, tx.nonce + 1n);
            await t.pool.onCommitted(
              block.map((tx) => tx.hash),
              head,
            );
            for (const [k, v] of head.nonces) t.accounts.nonces.set(k, v);
            t.pool.verifyInvariants();
            for (const tx of block) expect(t.pool.has(tx.hash)).toBe(false);
            for (const from of senders) {
              const pooled = t.pool.senderNonce(from.address);
              if (pooled !== undefined) expect(pooled >= (head.nonces.get(addressOf(from)) ?? 0n)).toBe(true);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
