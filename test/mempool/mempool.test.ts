import { describe, expect, it } from "vitest";
import { type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { type AccountView, type AddResult, MempoolError } from "../../src/mempool/mempool.ts";
import {
  type Account,
  account,
  addressOf,
  GWEI,
  LOCAL,
  MemoryAccounts,
  signTx,
  type TestPool,
  type TxParams,
  testPool,
} from "./helpers.ts";

const A = account(0);
const B = account(1);
const C = account(2);
const D = account(3);

function hashOf(raw: Uint8Array): Hex {
  return toHex(keccak256(raw));
}

async function addOk(t: TestPool, from: Account, p: TxParams): Promise<Hex> {
  const result = await t.pool.add(await signTx(from, p), LOCAL);
  if (!result.ok) throw new Error(`expected acceptance, got ${result.code}: ${result.message}`);
  return result.hash;
}

async function addCode(t: TestPool, from: Account, p: TxParams): Promise<AddResult> {
  return t.pool.add(await signTx(from, p), LOCAL);
}

/** (sender, nonce) pairs of what the next block would hold. */
function block(t: TestPool, gasLimit = 30_000_000n): string[] {
  return t.pool
    .pending({ gasLimit, maxBytes: 1 << 20, maxCount: 10_000, baseFee: t.baseFee })
    .map((tx) => `${names.get(tx.from) ?? tx.from}${tx.nonce}`);
}

const names = new Map<Hex, string>([
  [addressOf(A), "A"],
  [addressOf(B), "B"],
  [addressOf(C), "C"],
  [addressOf(D), "D"],
]);

describe("admission", () => {
  it("accepts legacy EIP-155, EIP-2930 and EIP-1559 transactions and indexes them", async () => {
    const t = testPool({}, new MemoryAccounts([A]));
    const raws = [
      await signTx(A, { nonce: 0, type: "legacy" }),
      await signTx(A, { nonce: 1, type: "eip2930" }),
      await signTx(A, { nonce: 2, type: "eip1559" }),
    ];
    for (const raw of raws)
      expect(await t.pool.add(raw, LOCAL)).toEqual({ ok: true, hash: hashOf(raw), replaced: null });
    expect(t.pool.size).toBe(3);
    expect(t.pool.sizeBytes).toBe(raws.reduce((n, r) => n + r.length, 0));
    const first = t.pool.get(hashOf(raws[0] as Uint8Array));
    expect(first?.type).toBe(0);
    expect(first?.from).toBe(addressOf(A));
    expect(t.pool.has(hashOf(raws[2] as Uint8Array))).toBe(true);
    expect(t.pool.senderNonce(A.address)).toBe(3n);
    expect(t.pool.senderNonce(B.address)).toBeUndefined();
    expect(await t.pool.add(raws[1] as Uint8Array, LOCAL)).toMatchObject({ ok: false, code: "known" });
    t.pool.verifyInvariants();
  });

  it("refuses each kind of invalid transaction with its own code", async () => {
    const t = testPool({ maxTxBytes: 400, blockGasLimit: 1_000_000n, maxNonceGap: 4 }, new MemoryAccounts([A]));
    t.accounts.set(A, { nonce: 5n });
    const refusals: [string, Uint8Array][] = [
      ["malformed", new Uint8Array([0xc3, 0x01, 0x02])],
      ["unsupported_type", new Uint8Array([0x03, 0xc0])],
      ["wrong_chain", await signTx(A, { nonce: 5, chainId: 1 })],
      ["too_large", await signTx(A, { nonce: 5, gas: 100_000n, data: `0x${"ab".repeat(500)}` })],
      ["intrinsic_gas", await signTx(A, { nonce: 5, gas: 20_000n })],
      ["gas_limit", await signTx(A, { nonce: 5, gas: 1_000_001n })],
      ["fee_too_low", await signTx(A, { nonce: 5, maxFee: GWEI - 1n, tip: 0n })],
      ["nonce_too_low", await signTx(A, { nonce: 4 })],
      ["nonce_gap", await signTx(A, { nonce: 10 })],
    ];
    for (const [code, raw] of refusals) {
      expect({ code, result: await t.pool.add(raw, LOCAL) }).toMatchObject({ code, result: { ok: false, code } });
    }
    // The furthest nonce still accepted is account nonce + maxNonceGap.
    await addOk(t, A, { nonce: 9 });
    expect(t.pool.size).toBe(1);
    t.pool.verifyInvariants();
  });

  it("caps each sender at maxPerSender", async () => {
    const t = testPool({ maxPerSender: 3 }, new MemoryAccounts([A]));
    for (let n = 0; n < 3; n++) await addOk(t, A, { nonce: n });
    expect(await addCode(t, A, { nonce: 3 })).toMatchObject({ ok: false, code: "sender_full" });
    // A replacement does not need a new slot.
    await addOk(t, A, { nonce: 2, maxFee: 20n * GWEI, tip: 2n * GWEI });
  });

  it("refuses a fee cap below the current base fee, and follows the base fee as it moves", async () => {
    const t = testPool({}, new MemoryAccounts([A]), 5n * GWEI);
    expect(await addCode(t, A, { nonce: 0, maxFee: 4n * GWEI })).toMatchObject({ code: "fee_too_low" });
    t.baseFee = 3n * GWEI;
    await addOk(t, A, { nonce: 0, maxFee: 4n * GWEI });
  });
});

describe("concurrent admissions", () => {
  it("admits a sender's transactions submitted all at once and out of order", async () => {
    const t = testPool({}, new MemoryAccounts([A]));
    const order = [4, 1, 7, 0, 3, 6, 2, 5];
    const raws = await Promise.all(order.map((nonce) => signTx(A, { nonce })));
    const results = await Promise.all(raws.map((raw) => t.pool.add(raw, LOCAL)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(block(t)).toEqual(["A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7"]);
    // The same transaction twice at once: one admission, one "known".
    const twice = await signTx(A, { nonce: 8 });
    const both = await Promise.all([t.pool.add(twice, LOCAL), t.pool.add(twice, LOCAL)]);
    expect(both.map((r) => (r.ok ? "ok" : r.code)).sort()).toEqual(["known", "ok"]);
    t.pool.verifyInvariants();
  });
});

describe("block order (pending)", () => {
  it("orders senders by effective tip, each sender in nonce order, ties by arrival", async () => {
    const t = testPool({}, new MemoryAccounts([A, B, C, D]));
    // A: a cheap head holds back its rich second transaction (nonce order wins over tip).
    await addOk(t, A, { nonce: 1, tip: 9n * GWEI, maxFee: 20n * GWEI });
    await addOk(t, A, { nonce: 0, tip: 1n * GWEI });
    await addOk(t, B, { nonce: 0, tip: 5n * GWEI });
    await addOk(t, B, { nonce: 1, tip: 2n * GWEI });
    // C pays the same tip as B's second transaction but arrived later. D's tip is capped by maxFee - baseFee = 2 gwei.
    await addOk(t, C, { nonce: 0, tip: 2n * GWEI });
    await addOk(t, D, { nonce: 0, tip: 3n * GWEI, maxFee: 3n * GWEI });
    expect(block(t)).toEqual(["B0", "B1", "C0", "D0", "A0", "A1"]);
    t.baseFee = 0n;
    // At base fee 0, D's tip is its full 3 gwei cap and it goes ahead of B1 and C0.
    expect(block(t)).toEqual(["B0", "D0", "B1", "C0", "A0", "A1"]);
  });

  it("skips senders whose fee cap fell below the block's base fee, and respects the gas, byte and count budgets", async () => {
    const t = testPool({}, new MemoryAccounts([A, B, C]));
    await addOk(t, A, { nonce: 0, tip: 3n * GWEI, maxFee: 4n * GWEI, gas: 100_000n });
    await addOk(t, A, { nonce: 1, tip: 3n * GWEI, maxFee: 4n * GWEI });
    await addOk(t, B, { nonce: 0, tip: 2n * GWEI, maxFee: 10n * GWEI });
    await addOk(t, C, { nonce: 0, tip: 1n * GWEI, maxFee: 10n * GWEI });
    expect(block(t)).toEqual(["A0", "A1", "B0", "C0"]);
    t.baseFee = 5n * GWEI;
    expect(block(t)).toEqual(["B0", "C0"]);
    t.baseFee = GWEI;
    // A0 needs 100k gas: with 60k left it is skipped with its successor, and the others still fit.
    expect(block(t, 60_000n)).toEqual(["B0", "C0"]);
    expect(block(t, 121_000n)).toEqual(["A0", "A1"]);
    const pending = t.pool.pending({ gasLimit: 30_000_000n, maxBytes: 1 << 20, maxCount: 3, baseFee: GWEI });
    expect(pending.map((tx) => tx.nonce)).toEqual([0n, 1n, 0n]);
    const first = pending[0];
    if (first === undefined) throw new Error("empty block");
    const oneTxBytes = t.pool.pending({
      gasLimit: 30_000_000n,
      maxBytes: first.raw.length,
      maxCount: 9,
      baseFee: GWEI,
    });
    expect(oneTxBytes).toHaveLength(1);
  });

  it("holds a transaction behind a nonce gap until the gap fills", async () => {
    const t = testPool({}, new MemoryAccounts([A]));
    t.accounts.set(A, { nonce: 3n });
    await addOk(t, A, { nonce: 5 });
    await addOk(t, A, { nonce: 4 });
    expect(block(t)).toEqual([]);
    expect(t.pool.senderNonce(A.address)).toBe(3n);
    await addOk(t, A, { nonce: 3 });
    expect(block(t)).toEqual(["A3", "A4", "A5"]);
    expect(t.pool.senderNonce(A.address)).toBe(6n);
    t.pool.verifyInvariants();
  });
});

describe("replacement", () => {
  it("accepts a 10% bump of both fees and refuses 9%", async () => {
    const t = testPool({}, new MemoryAccounts([A]));
    const first = await addOk(t, A, { nonce: 0, maxFee: 100n * GWEI, tip: 10n * GWEI });
    expect(await addCode(t, A, { nonce: 0, maxFee: 109n * GWEI, tip: 11n * GWEI })).toMatchObject({
      ok: false,
      code: "underpriced_replacement",
    });
    // Both fields must rise: a 10% fee cap with a 9% tip is not enough.
    expect(await addCode(t, A, { nonce: 0, maxFee: 110n * GWEI, tip: 10_900_000_000n })).toMatchObject({
      code: "underpriced_replacement",
    });
    const raw = await signTx(A, { nonce: 0, maxFee: 110n * GWEI, tip: 11n * GWEI });
    expect(await t.pool.add(raw, LOCAL)).toEqual({ ok: true, hash: hashOf(raw), replaced: first });
    expect(t.pool.has(first)).toBe(false);
    expect(t.pool.size).toBe(1);
    expect(t.pool.sizeBytes).toBe(raw.length);
    // A legacy transaction can replace an EIP-1559 one: its gas price is both fee fields.
    const legacy = await signTx(A, { nonce: 0, type: "legacy", maxFee: 121n * GWEI });
    expect(await t.pool.add(legacy, LOCAL)).toMatchObject({ ok: true, replaced: hashOf(raw) });
    t.pool.verifyInvariants();
  });
});

describe("balances", () => {
  it("checks the cumulative cost of the sender's lower nonces", async () => {
    const cost = 21_000n * 10n * GWEI + 1n; // gas * maxFee + value of one default transaction
    const t = testPool({}, new MemoryAccounts().set(A, { balance: 2n * cost }));
    await addOk(t, A, { nonce: 0 });
    await addOk(t, A, { nonce: 1 });
    expect(await addCode(t, A, { nonce: 2 })).toMatchObject({ ok: false, code: "insufficient_funds" });
    expect(await addCode(t, A, { nonce: 0, value: cost + 1n, maxFee: 11n * GWEI, tip: 2n * GWEI })).toMatchObject({
      code: "insufficient_funds",
    });
    // An unfunded account cannot even pay for gas.
    expect(await addCode(t, B, { nonce: 0, value: 0n })).toMatchObject({ code: "insufficient_funds" });
    expect(t.pool.size).toBe(2);
    t.pool.verifyInvariants();
  });

  it("drops later nonces a costlier replacement leaves unaffordable", async () => {
    const one = 21_000n * 10n * GWEI + 1n;
    const t = testPool({}, new MemoryAccounts().set(A, { balance: 3n * one }));
    await addOk(t, A, { nonce: 0 });
    await addOk(t, A, { nonce: 1 });
    const third = await addOk(t, A, { nonce: 2 });
    await addOk(t, A, { nonce: 0, maxFee: 11n * GWEI, tip: 2n * GWEI });
    expect(t.pool.has(third)).toBe(false);
    expect(t.pool.size).toBe(2);
    t.pool.verifyInvariants();
  });
});

describe("eviction when full", () => {
  it("evicts the cheapest sender tail, never a transaction with a successor, and keeps the best payers", async () => {
    const t = testPool({ maxCount: 4 }, new MemoryAccounts([A, B, C, D]));
    // A's head is the cheapest transaction in the pool but has a successor: only A1 (a tail) can go.
    await addOk(t, A, { nonce: 0, tip: 1n });
    const a1 = await addOk(t, A, { nonce: 1, tip: 5n * GWEI });
    const b0 = await addOk(t, B, { nonce: 0, tip: 3n * GWEI });
    await addOk(t, C, { nonce: 0, tip: 4n * GWEI });
    expect(t.pool.size).toBe(4);

    // Paying no more than the cheapest tail (B0, 3 gwei) is not enough.
    expect(await addCode(t, D, { nonce: 0, tip: 3n * GWEI })).toMatchObject({ ok: false, code: "pool_full" });
    const d0 = await addOk(t, D, { nonce: 0, tip: 6n * GWEI });
    expect(t.pool.has(b0)).toBe(false);
    expect(t.pool.size).toBe(4);
    // Next cheapest tail is C0 (4 gwei), then A1 (5 gwei); A0 never goes before A1.
    await addOk(t, B, { nonce: 0, tip: 7n * GWEI });
    await addOk(t, B, { nonce: 1, tip: 7n * GWEI });
    expect(t.pool.has(a1)).toBe(false);
    expect(block(t)).toEqual(["B0", "B1", "D0", "A0"]);
    expect(t.pool.has(d0)).toBe(true);
    t.pool.verifyInvariants();
  });

  it("evicts transactions waiting behind a gap first, and never lets one of them evict a runnable one", async () => {
    const t = testPool({ maxCount: 3 }, new MemoryAccounts([A, B, C, D]));
    await addOk(t, A, { nonce: 0, tip: 1n });
    await addOk(t, B, { nonce: 0, tip: 1n });
    const gapped = await addOk(t, C, { nonce: 2, tip: 50n * GWEI, maxFee: 100n * GWEI });
    // Full. A gapped newcomer cannot push out runnable A0/B0 (paying 1 wei), only a gapped one paying less.
    expect(await addCode(t, D, { nonce: 1, tip: 40n * GWEI, maxFee: 100n * GWEI })).toMatchObject({
      code: "pool_full",
    });
    // A runnable newcomer evicts the gapped C2 first, even though C2 pays far more.
    await addOk(t, D, { nonce: 0, tip: 2n });
    expect(t.pool.has(gapped)).toBe(false);
    expect(block(t)).toEqual(["D0", "A0", "B0"]);
    t.pool.verifyInvariants();
  });

  it("evicts as many tails as the byte budget needs, or none", async () => {
    const small = await signTx(A, { nonce: 0, tip: 1n * GWEI });
    const t = testPool(
      { maxBytes: 4 * small.length + 10, maxTxBytes: 4 * small.length + 10 },
      new MemoryAccounts([A, B, C]),
    );
    for (let n = 0; n < 4; n++) await addOk(t, A, { nonce: n, tip: BigInt(n + 1) * GWEI });
    // About two and a half small transactions' worth of bytes: A3, A2 and A1 must go, from the top; A0 stays.
    const data = `0x${"11".repeat(Math.floor(1.5 * small.length))}` as const;
    const bigParams = { nonce: 0, tip: 5n * GWEI, gas: 200_000n, data } as const;
    const big = await signTx(B, bigParams);
    expect(big.length).toBeGreaterThan(2 * small.length + 10);
    expect(big.length).toBeLessThan(3 * small.length);
    // The same size paying 3 gwei cannot evict A3 (4 gwei): nothing is evicted.
    expect(await addCode(t, C, { ...bigParams, tip: 3n * GWEI })).toMatchObject({ code: "pool_full" });
    expect(t.pool.size).toBe(4);
    expect(await t.pool.add(big, LOCAL)).toMatchObject({ ok: true });
    expect(block(t)).toEqual(["B0", "A0"]);
    expect(t.pool.sizeBytes).toBeLessThanOrEqual(4 * small.length + 10);
    t.pool.verifyInvariants();
  });

  it("re-ranks candidates when the base fee moves", async () => {
    const t = testPool({ maxCount: 2 }, new MemoryAccounts([A, B, C]));
    // At base fee 1 gwei: A tips 5 gwei (cap 6), B tips 3 gwei (cap 100). At 5 gwei, A's effective tip drops to 1.
    const a0 = await addOk(t, A, { nonce: 0, tip: 5n * GWEI, maxFee: 6n * GWEI });
    const b0 = await addOk(t, B, { nonce: 0, tip: 3n * GWEI, maxFee: 100n * GWEI });
    t.baseFee = 5n * GWEI;
    await addOk(t, C, { nonce: 0, tip: 2n * GWEI, maxFee: 100n * GWEI });
    expect(t.pool.has(a0)).toBe(false);
    expect(t.pool.has(b0)).toBe(true);
  });
});

describe("peer rate limit", () => {
  it("refuses a peer over its token bucket without affecting other peers or local submissions", async () => {
    const t = testPool({ peerRatePerSecond: 3 }, new MemoryAccounts([A, B]));
    const raws = await Promise.all(Array.from({ length: 8 }, (_, n) => signTx(A, { nonce: n })));
    const results: AddResult[] = [];
    for (const raw of raws.slice(0, 4)) results.push(await t.pool.add(raw, { kind: "peer", peer: "p1" }));
    expect(results.map((r) => (r.ok ? "ok" : r.code))).toEqual(["ok", "ok", "ok", "rate_limited"]);
    // Even already-known transactions cost a token: the bucket measures what the peer sends.
    expect(await t.pool.add(raws[0] as Uint8Array, { kind: "peer", peer: "p1" })).toMatchObject({
      code: "rate_limited",
    });
    expect(await t.pool.add(raws[3] as Uint8Array, { kind: "peer", peer: "p2" })).toMatchObject({ ok: true });
    expect(await t.pool.add(raws[4] as Uint8Array, LOCAL)).toMatchObject({ ok: true });
    t.nowMs += 334; // one token back at 3/s
    expect(await t.pool.add(raws[5] as Uint8Array, { kind: "peer", peer: "p1" })).toMatchObject({ ok: true });
    expect(await t.pool.add(raws[6] as Uint8Array, { kind: "peer", peer: "p1" })).toMatchObject({
      code: "rate_limited",
    });
    t.nowMs += 10_000; // refills to the burst (3), not beyond
    const after: string[] = [];
    for (const raw of [raws[6], raws[7], raws[0], raws[1]]) {
      const r = await t.pool.add(raw as Uint8Array, { kind: "peer", peer: "p1" });
      after.push(r.ok ? "ok" : r.code);
    }
    expect(after).toEqual(["ok", "ok", "known", "rate_limited"]);
  });
});

describe("onCommitted", () => {
  it("removes included transactions, stale nonces and what the new balance no longer covers", async () => {
    const t = testPool({}, new MemoryAccounts([A, B, C]));
    const a = [await addOk(t, A, { nonce: 0 }), await addOk(t, A, { nonce: 1 }), await addOk(t, A, { nonce: 2 })];
    const b0 = await addOk(t, B, { nonce: 0 });
    const b1 = await addOk(t, B, { nonce: 1 });
    const c = [await addOk(t, C, { nonce: 0 }), await addOk(t, C, { nonce: 1 })];
    const head = t.accounts.copy();
    // Block: A0 and A1 from the pool; B0 was replaced elsewhere by a transaction this pool never saw; C's balance now
    // covers one transaction only.
    head
      .set(A, { nonce: 2n })
      .set(B, { nonce: 1n })
      .set(C, { balance: 21_000n * 10n * GWEI + 1n });
    await t.pool.onCommitted([a[0] as Hex, a[1] as Hex, "0x1234"], head);
    expect(t.pool.has(a[0] as Hex)).toBe(false);
    expect(t.pool.has(a[1] as Hex)).toBe(false);
    expect(t.pool.has(a[2] as Hex)).toBe(true);
    expect(t.pool.has(b0)).toBe(false);
    expect(t.pool.has(b1)).toBe(true);
    expect(t.pool.has(c[0] as Hex)).toBe(true);
    expect(t.pool.has(c[1] as Hex)).toBe(false);
    expect(block(t)).toEqual(["A2", "B1", "C0"]);
    expect(t.pool.senderNonce(A.address)).toBe(3n);
    // Later admissions use the new head.
    expect(await addCode(t, A, { nonce: 1 })).toMatchObject({ code: "nonce_too_low" });
    t.pool.verifyInvariants();
  });

  it("refuses a late copy of a committed transaction by its nonce without decoding it again", async () => {
    const t = testPool({}, new MemoryAccounts([A]));
    const raw = await signTx(A, { nonce: 0 });
    const hash = hashOf(raw);
    expect((await t.pool.add(raw, LOCAL)).ok).toBe(true);
    await t.pool.onCommitted([hash], t.accounts.copy().set(A, { nonce: 1n }));
    const before = t.pool.decoder.stats;
    expect(await t.pool.add(raw, { kind: "peer", peer: "p" })).toMatchObject({ ok: false, code: "nonce_too_low" });
    // No decode at all: neither a hit (the decoder forgot it at the commit) nor a miss (a sender recovery).
    expect(t.pool.decoder.stats).toMatchObject({ hits: before.hits, misses: before.misses });
    // A transaction of the same sender that was not committed is still decoded and judged by its nonce.
    expect(await addCode(t, A, { nonce: 0, value: 2n })).toMatchObject({ code: "nonce_too_low" });
    expect(t.pool.decoder.stats.misses).toBe(before.misses + 1);
    t.pool.verifyInvariants();
  });

  it("re-reads an account when a commit lands during an admission's read", async () => {
    const t = testPool({}, new MemoryAccounts([A]));
    const raw = await signTx(A, { nonce: 0 });
    const slow = new SlowAccounts(t.accounts);
    // The pool reads through `slow` from now on (it becomes the head view at the first commit).
    await t.pool.onCommitted([], slow);
    slow.hold = true;
    const adding = t.pool.add(raw, LOCAL);
    await slow.reached; // the admission's read is in flight against the old head
    const head = t.accounts.copy().set(A, { nonce: 1n });
    const committing = t.pool.onCommitted([], head);
    slow.release();
    await committing;
    expect(await adding).toMatchObject({ ok: false, code: "nonce_too_low" });
    expect(t.pool.size).toBe(0);
  });

  it("reports a failing account view as a MempoolError with its cause", async () => {
    const broken: AccountView = {
      nonce: () => Promise.reject(new Error("disk gone")),
      balance: () => Promise.resolve(0n),
    };
    const t = testPool({}, new MemoryAccounts());
    await t.pool.onCommitted([], broken);
    const error = await t.pool.add(await signTx(A, { nonce: 0 }), LOCAL).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MempoolError);
    expect((error as MempoolError).code).toBe("account_read_failed");
    expect(((error as MempoolError).cause as Error).message).toBe("disk gone");
  });

  it("reads nonce and balance in one call when the view offers it", async () => {
    const inner = new MemoryAccounts([A]).set(A, { nonce: 3n });
    let combined = 0;
    const view: AccountView = {
      nonce: () => Promise.reject(new Error("separate nonce read")),
      balance: () => Promise.reject(new Error("separate balance read")),
      account: async (address) => {
        combined++;
        return { nonce: await inner.nonce(address), balance: await inner.balance(address) };
      },
    };
    const t = testPool({}, new MemoryAccounts());
    await t.pool.onCommitted([], view);
    expect((await addCode(t, A, { nonce: 2 })).ok).toBe(false);
    await addOk(t, A, { nonce: 3 });
    expect(combined).toBe(2);
  });
});

/** An account view whose reads can be held until released, to interleave an admission with a commit. */
class SlowAccounts implements AccountView {
  hold = false;
  private waiting: (() => void)[] = [];
  private reachedResolve: () => void = () => {};
  readonly reached = new Promise<void>((resolve) => {
    this.reachedResolve = resolve;
  });

  constructor(private readonly inner: AccountView) {}

  release(): void {
    this.hold = false;
    for (const go of this.waiting.splice(0)) go();
  }

  async nonce(address: Hex): Promise<bigint> {
    await this.gate();
    return this.inner.nonce(address);
  }

  async balance(address: Hex): Promise<bigint> {
    await this.gate();
    return this.inner.balance(address);
  }

  private gate(): Promise<void> {
    if (!this.hold) return Promise.resolve();
    this.reachedResolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}
