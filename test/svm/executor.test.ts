import { verifyMerkleProof } from "@ethereumjs/mpt";
import { address, getBase58Encoder, type KeyPairSigner } from "@solana/kit";
import {
  getMintToInstruction,
  getTokenDecoder,
  getTransferInstruction,
  TOKEN_PROGRAM_ADDRESS,
} from "@solana-program/token";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import { ExecutionError } from "../../src/execution/errors.ts";
import { encodeSvmAccount, SVM_FEE_COLLECTOR, SVM_VM } from "../../src/execution/svm/account.ts";
import { SvmExecutor } from "../../src/execution/svm/executor.ts";
import { buildTx, SOL, signer, splSetupInstructions, TestChain, TestDb, transferIx } from "./helpers.ts";

let alice: KeyPairSigner;
let bob: KeyPairSigner;
let carol: KeyPairSigner;
const stores: TestDb[] = [];

async function newChain(): Promise<TestChain> {
  const store = await TestDb.open();
  stores.push(store);
  return TestChain.create(store, [
    { address: alice.address, lamports: 10n * SOL },
    { address: bob.address, lamports: 2n * SOL },
  ]);
}

beforeAll(async () => {
  alice = await signer(1);
  bob = await signer(2);
  carol = await signer(3);
});

afterEach(async () => {
  for (const store of stores.splice(0)) await store.destroy();
});

describe("SvmExecutor", () => {
  let chain: TestChain;
  beforeEach(async () => {
    chain = await newChain();
    await chain.next(); // slot 1: its blockhash is what clients use
  });

  it("starts from the empty trie root and commits genesis accounts", async () => {
    const store = await TestDb.open();
    stores.push(store);
    const executor = new SvmExecutor({ db: store.reader });
    const empty = await executor.genesis([]);
    expect(empty.root).toBe(SVM_VM.emptyRoot);
    expect(SVM_VM.id).toBe(2);
    expect(await chain.lamports(alice.address)).toBe(10n * SOL);
  });

  it("executes SOL transfers (legacy and v0) with exact balances and the fee to the collector", async () => {
    const legacy = await buildTx(alice, [transferIx(alice, bob.address, SOL)], chain.latestBlockhash, "legacy");
    const v0 = await buildTx(alice, [transferIx(alice, carol.address, SOL / 2n)], chain.latestBlockhash, 0);
    const result = await chain.next([legacy, v0], "validate");
    expect(result.skipped).toEqual([]);
    expect(result.receipts.map((r) => [r.status, r.error, r.fee])).toEqual([
      ["ok", null, 5000n],
      ["ok", null, 5000n],
    ]);
    expect(result.receipts[0]?.computeUnits).toBeGreaterThan(0n);
    expect(result.receipts[0]?.logs).toContain("Program 11111111111111111111111111111111 success");
    expect(await chain.lamports(alice.address)).toBe(10n * SOL - SOL - SOL / 2n - 10_000n);
    expect(await chain.lamports(bob.address)).toBe(3n * SOL);
    expect(await chain.lamports(carol.address)).toBe(SOL / 2n);
    expect(await chain.lamports(address(SVM_FEE_COLLECTOR))).toBe(10_000n);
    // Lamports are conserved: the fee is moved, not burned.
    const total =
      (await chain.lamports(alice.address)) +
      (await chain.lamports(bob.address)) +
      (await chain.lamports(carol.address)) +
      (await chain.lamports(address(SVM_FEE_COLLECTOR)));
    expect(total).toBe(12n * SOL);
  });

  it("creates an SPL mint, mints and transfers between token accounts", async () => {
    const mint = await signer(10);
    const aliceToken = await signer(11);
    const bobToken = await signer(12);
    const rentMint = 1_461_600n; // rent-exempt minimum for 82 bytes
    const rentToken = 2_039_280n; // for 165 bytes
    const setup = await buildTx(
      alice,
      splSetupInstructions({
        payer: alice,
        mint,
        accounts: [
          [aliceToken, alice.address],
          [bobToken, bob.address],
        ],
        rentMint,
        rentToken,
      }),
      chain.latestBlockhash,
    );
    const created = await chain.next([setup], "validate");
    expect(created.receipts[0]?.error).toBeNull();
    expect(created.receipts[0]?.fee).toBe(4n * 5000n); // alice, mint and two token accounts sign
    const mintTo = await buildTx(
      alice,
      [getMintToInstruction({ mint: mint.address, token: aliceToken.address, mintAuthority: alice, amount: 1_000n })],
      chain.latestBlockhash,
    );
    const transfer = await buildTx(
      bob,
      [
        getTransferInstruction({
          source: aliceToken.address,
          destination: bobToken.address,
          authority: alice,
          amount: 300n,
        }),
      ],
      chain.latestBlockhash,
    );
    const moved = await chain.next([mintTo, transfer], "validate");
    expect(moved.receipts.map((r) => r.status)).toEqual(["ok", "ok"]);
    expect(moved.receipts[1]?.fee).toBe(10_000n); // bob pays for two signatures
    const reader = chain.executor.reader(chain.root);
    const tokenAmount = async (a: KeyPairSigner) => {
      const account = await reader.getAccount(a.address);
      if (account === null) throw new Error("no token account");
      expect(toHex(account.owner)).toBe(toHex(fromBase58(TOKEN_PROGRAM_ADDRESS)));
      return getTokenDecoder().decode(account.data).amount;
    };
    expect(await tokenAmount(aliceToken)).toBe(700n);
    expect(await tokenAmount(bobToken)).toBe(300n);
    // Moving tokens the owner does not have fails, pays the fee and changes nothing else.
    const overdraw = await buildTx(
      alice,
      [
        getTransferInstruction({
          source: aliceToken.address,
          destination: bobToken.address,
          authority: alice,
          amount: 701n,
        }),
      ],
      chain.latestBlockhash,
    );
    const failed = await chain.next([overdraw], "validate");
    expect(failed.receipts[0]?.status).toBe("err");
    expect(failed.receipts[0]?.error).toBe("InstructionError(0, Custom(1))");
    const after = chain.executor.reader(chain.root);
    expect(
      getTokenDecoder().decode((await after.getAccount(aliceToken.address))?.data ?? new Uint8Array()).amount,
    ).toBe(700n);
  });

  it("charges only the fee for a failed transaction", async () => {
    const before = await chain.lamports(alice.address);
    const tooMuch = await buildTx(alice, [transferIx(alice, bob.address, 100n * SOL)], chain.latestBlockhash);
    const result = await chain.next([tooMuch], "validate");
    expect(result.receipts).toHaveLength(1);
    expect(result.receipts[0]).toMatchObject({ status: "err", error: "InstructionError(0, Custom(1))", fee: 5000n });
    expect(result.receipts[0]?.logs.some((l) => l.includes("insufficient lamports"))).toBe(true);
    expect(await chain.lamports(alice.address)).toBe(before - 5000n);
    expect(await chain.lamports(bob.address)).toBe(2n * SOL);
    expect(await chain.lamports(address(SVM_FEE_COLLECTOR))).toBe(5000n);
    // A transfer that would leave a new account below the rent-exempt minimum fails the same way.
    const dust = await buildTx(alice, [transferIx(alice, carol.address, 1_000n)], chain.latestBlockhash);
    const rent = await chain.next([dust], "validate");
    expect(rent.receipts[0]).toMatchObject({ status: "err", fee: 5000n });
    expect(rent.receipts[0]?.error).toContain("InsufficientFundsForRent");
    expect(await chain.lamports(carol.address)).toBe(0n);
    // The failed transaction is recorded too: replaying it is refused, so a fee cannot be drained twice.
    const replay = await chain.next([tooMuch], "build");
    expect(replay.skipped.map((s) => s.code)).toEqual(["duplicate"]);
  });

  it("refuses a replayed transaction, in the same block and in a later one", async () => {
    const tx = await buildTx(alice, [transferIx(alice, bob.address, SOL)], chain.latestBlockhash);
    const first = await chain.next([tx, tx], "build");
    expect(first.receipts).toHaveLength(1);
    expect(first.skipped).toEqual([
      { index: 1, signature: first.included[0]?.signature, code: "duplicate", reason: "already in this block" },
    ]);
    const again = await chain.next([tx], "build");
    expect(again.receipts).toEqual([]);
    expect(again.skipped[0]?.code).toBe("duplicate");
    expect(again.skipped[0]?.reason).toBe("processed in slot 2");
    const error = await chain.executor.execute(chain.root, chain.env(), [tx], "validate").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as ExecutionError).code).toBe("invalid_transaction");
    expect((error as ExecutionError).context).toMatchObject({ index: 0, code: "duplicate" });
    expect(await chain.lamports(bob.address)).toBe(3n * SOL);
    expect(await chain.executor.reader(chain.root).processedAt(first.included[0]?.signature ?? "")).toBe(2n);
  });

  it("refuses stale blockhashes and forgets signatures once they cannot be replayed", async () => {
    const unknown = await buildTx(alice, [transferIx(alice, bob.address, 1n)], "11111111111111111111111111111111");
    const r = await chain.next([unknown], "build");
    expect(r.skipped[0]?.code).toBe("stale_blockhash");
    const tx = await buildTx(alice, [transferIx(alice, bob.address, SOL)], chain.latestBlockhash); // slot 2's
    const included = await chain.next([tx]); // slot 3
    const signature = included.included[0]?.signature ?? "";
    // Slot 2's blockhash is valid through slot 152 (the 150 blockhashes before it): still a duplicate there.
    while (chain.slot < 151) await chain.next();
    expect((await chain.executor.execute(chain.root, chain.env(), [tx], "build")).skipped[0]?.code).toBe("duplicate");
    await chain.next(); // slot 152
    expect(await chain.executor.reader(chain.root).processedAt(signature)).toBe(3n);
    const replay = await chain.executor.execute(chain.root, chain.env(), [tx], "build");
    expect(replay.skipped[0]?.code).toBe("stale_blockhash"); // slot 153: slot 2's blockhash left the window
    // Executing slot 153 prunes the signatures of slot 3 (3 <= 153 - 150): nothing can replay them any more.
    await chain.next();
    expect(chain.slot).toBe(153);
    expect(await chain.executor.reader(chain.root).processedAt(signature)).toBeNull();
    const fresh = await buildTx(alice, [transferIx(alice, bob.address, SOL)], chain.latestBlockhash);
    expect((await chain.next([fresh], "validate")).receipts[0]?.status).toBe("ok");
  }, 30_000);

  it("drops transactions that cannot be charged (build) and refuses them (validate)", async () => {
    const poor = await signer(20);
    const fromNobody = await buildTx(poor, [transferIx(poor, bob.address, 1n)], chain.latestBlockhash);
    const bad = await chain.next([fromNobody], "build");
    expect(bad.skipped.map((s) => s.code)).toEqual(["unknown_payer"]);
    const garbage = Uint8Array.of(1, 2, 3);
    const r = await chain.next([garbage], "build");
    expect(r.skipped.map((s) => [s.code, s.signature])).toEqual([["malformed", null]]);
    for (const tx of [fromNobody, garbage]) {
      const error = await chain.executor.execute(chain.root, chain.env(), [tx], "validate").catch((e: unknown) => e);
      expect((error as ExecutionError).code).toBe("invalid_transaction");
    }
    // A payer holding less than the fee.
    const funded = await buildTx(alice, [transferIx(alice, poor.address, 1_000_000n)], chain.latestBlockhash);
    await chain.next([funded], "validate");
    const drain = await buildTx(poor, [transferIx(poor, bob.address, 1_000_000n - 4_000n)], chain.latestBlockhash);
    expect((await chain.next([drain], "validate")).receipts[0]?.status).toBe("err");
    const broke = await buildTx(poor, [transferIx(poor, bob.address, 1n)], chain.latestBlockhash);
    expect(await chain.lamports(poor.address)).toBe(1_000_000n - 5000n);
    const empty = await chain.next([broke], "build");
    expect(empty.receipts).toHaveLength(1); // 995,000 lamports still pay a 5,000 fee
  });

  it("is deterministic: independent executors, reopened stores and fresh caches agree", async () => {
    const other = await newChain();
    await other.next();
    expect(other.root).toBe(chain.root);
    const blocks = [
      [await buildTx(alice, [transferIx(alice, bob.address, SOL)], chain.latestBlockhash)],
      [
        await buildTx(bob, [transferIx(bob, carol.address, SOL)], chain.latestBlockhash),
        await buildTx(alice, [transferIx(alice, bob.address, 100n * SOL)], chain.latestBlockhash),
      ],
    ];
    for (const txs of blocks) {
      const a = await chain.next(txs, "validate");
      const b = await other.next(txs, "validate");
      expect(a.root).toBe(b.root);
      expect([...a.writes].sort()).toEqual([...b.writes].sort());
      expect(a.receipts).toEqual(b.receipts);
    }
    // Restart: reopen level, a new executor (fresh node cache and litesvm), same state and same next block.
    await chain.store.reopen();
    const restarted = new SvmExecutor({ db: chain.store.reader });
    for (const who of [alice, bob, carol]) {
      expect(await restarted.reader(chain.root).getAccount(who.address)).toEqual(
        await other.executor.reader(other.root).getAccount(who.address),
      );
    }
    chain.executor = restarted;
    const next = [await buildTx(carol, [transferIx(carol, alice.address, SOL / 4n)], chain.latestBlockhash)];
    const a = await chain.next(next, "validate");
    const b = await other.next(next, "validate");
    expect(a.root).toBe(b.root);
    expect(a.receipts[0]?.status).toBe("ok");
    // The replay record survived the restart too.
    const replay = await chain.executor.execute(chain.root, chain.env(), blocks[0] ?? [], "build");
    expect(replay.skipped[0]?.code).toBe("duplicate");
  });

  it("proves an account against the root with a standard trie proof", async () => {
    const tx = await buildTx(alice, [transferIx(alice, carol.address, SOL)], chain.latestBlockhash);
    await chain.next([tx]);
    const reader = chain.executor.reader(chain.root);
    const proof = await reader.getProof(carol.address);
    const value = await verifyMerkleProof(fromBase58(carol.address), proof.proof.map(fromHex), {
      root: fromHex(chain.root),
      useKeyHashing: true,
    });
    const account = await reader.getAccount(carol.address);
    if (value === null || account === null) throw new Error("carol missing");
    expect(toHex(value)).toBe(toHex(encodeSvmAccount(account)));
    expect(account.lamports).toBe(SOL);
    const nobody = await signer(99);
    const absent = await reader.getProof(nobody.address);
    expect(absent.value).toBeNull();
    expect(
      await verifyMerkleProof(fromBase58(nobody.address), absent.proof.map(fromHex), {
        root: fromHex(chain.root),
        useKeyHashing: true,
      }),
    ).toBeNull();
  });

  it("refuses unknown parent roots with missing_state", async () => {
    const error = await chain.executor
      .execute(toHex(new Uint8Array(32).fill(7)), chain.env(), [], "build")
      .catch((e: unknown) => e);
    expect((error as ExecutionError).code).toBe("missing_state");
  });
});

function fromBase58(a: string): Uint8Array {
  return new Uint8Array(getBase58Encoder().encode(a));
}
