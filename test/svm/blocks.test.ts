// SVM entries in L2 blocks on the node's real parts (openNodeState: level store, execution core, mempool with its SVM
// lane, block executor): admission, building (EVM entries first, then SVM), validation by another node, typed
// problems for bad SVM entries, the commit batch (receipts, transaction index, state), the Solana RPC methods over
// it, and a restart that keeps the SVM root, balances and receipts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { type Block, encodeBlock, SVM_TX_PREFIX } from "../../src/chain/block.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import { SVM_FEE_COLLECTOR } from "../../src/execution/svm/account.ts";
import { orderedTrieKey, verifyTrieProof } from "../../src/light-client/trie.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { svmRootOf } from "../../src/node/executor.ts";
import { addressOf, testAccount } from "../execution/helpers.ts";
import { buildTx, SOL, signer, transferIx } from "./helpers.ts";
import { NodeStates, singleValidatorGenesis } from "./node-fixture.ts";

const CHAIN = 7_007n;
const GWEI = 1_000_000_000n;
const _PARAMS = { maxBlockBytes: 1 << 20, maxBlockTransactions: 1_000, maxClockDriftMs: 60_000 };

describe("SVM entries in blocks", () => {
  let nodes: NodeStates;
  let genesis: Genesis;
  let a: NodeState;
  let aDir = "";
  let b: NodeState;
  const evmSender = testAccount(1);

  const sets = () => nodes.sets();
  const proposer = (): Hex => genesis.validatorSet.validators[0]?.address ?? "0x";
  const entry = (wire: Uint8Array) => concatBytes(Uint8Array.of(SVM_TX_PREFIX), wire);
  const call = async (state: NodeState, name: string, args: unknown[]) =>
    (await nodes.solana(state, name, args)) as Record<string, unknown> & { value: unknown };
  const commit = (state: NodeState, block: Block, bytes: Uint8Array) => nodes.commit(state, block, bytes);

  let payer: Awaited<ReturnType<typeof signer>>;
  let payee: Awaited<ReturnType<typeof signer>>;

  beforeAll(async () => {
    payer = await signer(1);
    payee = await signer(2);
    genesis = singleValidatorGenesis(CHAIN, addressOf(evmSender), 10n ** 21n, {
      address: payer.address,
      lamports: 10n * SOL,
    });
    nodes = new NodeStates(genesis);
    ({ state: a, dir: aDir } = await nodes.state());
    b = (await nodes.state()).state;
  });

  afterAll(async () => {
    await nodes?.close();
  });

  it("holds the SVM root from the genesis on, with the allocation", async () => {
    const roots = a.executor.head.vmRoots;
    expect(roots.map((r) => r.vm)).toEqual([1, 2]);
    expect(b.executor.head.stateRoot).toBe(a.executor.head.stateRoot);
    const balance = await call(a, "getBalance", [payer.address, { commitment: "confirmed" }]);
    expect(balance.value).toBe(Number(10n * SOL));
  });

  let transferSignature = "";

  it("admits an SVM entry once, refusing malformed, stale, unfunded and duplicate ones with typed codes", async () => {
    const blockhash = a.executor.latestSvmBlockhash().blockhash;
    const wire = await buildTx(payer, [transferIx(payer, payee.address, SOL)], blockhash);
    const added = await a.mempool.add(entry(wire), { kind: "local" });
    expect(added.ok).toBe(true);
    if (!added.ok) return;
    transferSignature = added.signature ?? "";
    expect(transferSignature.length).toBeGreaterThan(60);
    expect(a.mempool.svm?.size).toBe(1);

    const again = await a.mempool.add(entry(wire), { kind: "local" });
    expect(again.ok ? "ok" : again.code).toBe("known");
    const broken = entry(wire.slice(0, wire.length - 3));
    const malformed = await a.mempool.add(broken, { kind: "peer", peer: "p" });
    expect(malformed.ok ? "ok" : malformed.code).toBe("malformed");
    const flipped = entry(wire.slice());
    (flipped as Uint8Array)[5] = ((flipped[5] as number) ^ 1) & 0xff;
    const badSig = await a.mempool.add(flipped, { kind: "peer", peer: "p" });
    expect(badSig.ok ? "ok" : badSig.code).toBe("bad_signature");
    const stale = await buildTx(payer, [transferIx(payer, payee.address, 2n)], "11111111111111111111111111111111");
    const staleAdd = await a.mempool.add(entry(stale), { kind: "local" });
    expect(staleAdd.ok ? "ok" : staleAdd.code).toBe("stale_blockhash");
    const poor = await buildTx(payee, [transferIx(payee, payer.address, 1n)], blockhash);
    const poorAdd = await a.mempool.add(entry(poor), { kind: "local" });
    expect(poorAdd.ok ? "ok" : poorAdd.code).toBe("unknown_payer");
    expect(a.mempool.svm?.size).toBe(1);
  });

  let block1: Block;
  let bytes1: Uint8Array;

  it("builds EVM entries first, then SVM entries; another node validates the same roots", async () => {
    const raw = await evmSender.signTransaction({
      chainId: Number(CHAIN),
      nonce: 0,
      to: addressOf(testAccount(2)),
      value: 1_000n,
      gas: 21_000n,
      type: "eip1559",
      maxFeePerGas: 5n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    const evmAdded = await a.mempool.add(Uint8Array.from(Buffer.from(raw.slice(2), "hex")), { kind: "local" });
    expect(evmAdded.ok).toBe(true);
    const built = await a.executor.build(1, proposer(), sets());
    if (built === null) throw new Error("no block");
    block1 = built.block;
    bytes1 = built.bytes;
    expect(block1.transactions).toHaveLength(2);
    expect(block1.transactions[0]?.[0]).not.toBe(SVM_TX_PREFIX);
    expect(block1.transactions[1]?.[0]).toBe(SVM_TX_PREFIX);
    const svmRoot = svmRootOf(block1.header.vmRoots);
    expect(svmRoot).not.toBe(svmRootOf(a.executor.head.vmRoots));
    expect(await b.executor.validate(block1, bytes1, sets(), false)).toBeNull();
  });

  it("refuses SVM entries out of order, undecodable or inapplicable, and a wrong receipts root", async () => {
    const [evm, svm] = block1.transactions as [Uint8Array, Uint8Array];
    const swapped: Block = { ...block1, transactions: [svm, evm] };
    expect((await b.executor.validate(swapped, encodeBlock(swapped), sets(), false))?.code).toBe(
      "wrong_transaction_order",
    );
    const junk: Block = { ...block1, transactions: [evm, Uint8Array.of(SVM_TX_PREFIX, 1, 2, 3)] };
    expect((await b.executor.validate(junk, encodeBlock(junk), sets(), false))?.code).toBe("invalid_transaction");
    const twice: Block = { ...block1, transactions: [evm, svm, svm] };
    const dup = await b.executor.validate(twice, encodeBlock(twice), sets(), false);
    expect(dup?.code).toBe("invalid_transaction");
    expect(dup?.message).toContain("duplicate");
    const receipts: Block = { ...block1, header: { ...block1.header, receiptsRoot: `0x${"22".repeat(32)}` } };
    expect((await b.executor.validate(receipts, encodeBlock(receipts), sets(), false))?.code).toBe(
      "execution_mismatch",
    );
  });

  it("commits: the pool drops it, RPC reads balances, status and the transaction from the store", async () => {
    await commit(a, block1, bytes1);
    expect(a.mempool.size).toBe(0);
    const bal = await call(a, "getBalance", [payee.address, { commitment: "confirmed" }]);
    expect(bal.value).toBe(Number(SOL));
    const payerBal = await call(a, "getBalance", [payer.address]);
    expect(payerBal.value).toBe(Number(9n * SOL - 5_000n));
    const collector = await call(a, "getAccountInfo", [SVM_FEE_COLLECTOR, { encoding: "base64" }]);
    expect((collector.value as { lamports: number }).lamports).toBe(5_000);
    // "finalized" is the L1-finalized height: 0 here, the genesis, before the transfer.
    const finalized = await call(a, "getBalance", [payee.address, { commitment: "finalized" }]);
    expect(finalized.value).toBe(0);
    const statuses = await call(a, "getSignatureStatuses", [[transferSignature]]);
    expect(statuses.value).toEqual([
      { slot: 1, confirmations: 0, err: null, status: { Ok: null }, confirmationStatus: "confirmed" },
    ]);
    const tx = await call(a, "getTransaction", [
      transferSignature,
      { encoding: "base64", maxSupportedTransactionVersion: 0 },
    ]);
    expect(tx.slot).toBe(1);
    expect((tx.meta as { fee: number; err: unknown }).fee).toBe(5_000);
    // Lamports of each account key (payer, payee, System Program) before and after, as Solana's meta gives them.
    const meta = tx.meta as { preBalances: number[]; postBalances: number[] };
    expect(meta.preBalances).toEqual([Number(10n * SOL), 0, 1]);
    expect(meta.postBalances).toEqual([Number(9n * SOL - 5_000n), Number(SOL), 1]);
    const [b64] = tx.transaction as [string, string];
    expect(Buffer.from(b64, "base64")).toEqual(Buffer.from((block1.transactions[1] as Uint8Array).subarray(1)));
    const latest = await call(a, "getLatestBlockhash", [{ commitment: "confirmed" }]);
    expect(latest.value).toEqual({
      blockhash: a.executor.latestSvmBlockhash().blockhash,
      lastValidBlockHeight: 151,
    });
  });

  it("proves the EVM entry of a mixed block: lumia_getTransactionCertificate's receipt trie holds the SVM leaves", async () => {
    const evmHash = toHex(keccak256(block1.transactions[0] as Uint8Array));
    const proof = (await nodes.eth(a, "lumia_getTransactionCertificate", [evmHash])) as {
      receipt: Hex;
      receiptProof: Hex[];
      transactionProof: Hex[];
      transaction: Hex;
    };
    const receipt = await verifyTrieProof(block1.header.receiptsRoot, orderedTrieKey(0), proof.receiptProof);
    expect(receipt.ok && receipt.value !== null && toHex(receipt.value)).toBe(proof.receipt);
    const tx = await verifyTrieProof(block1.header.transactionsRoot, orderedTrieKey(0), proof.transactionProof);
    expect(tx.ok && tx.value !== null && toHex(tx.value)).toBe(proof.transaction);
  });

  it("refuses a replay at admission once it is processed", async () => {
    const wire = (block1.transactions[1] as Uint8Array).subarray(1);
    const replay = await a.mempool.add(entry(wire), { kind: "local" });
    expect(replay.ok ? "ok" : replay.code).toBe("already_processed");
  });

  it("keeps the SVM root, balances and receipts across a restart", async () => {
    const before = { roots: a.executor.head.vmRoots, blockhash: a.executor.latestSvmBlockhash().blockhash };
    await nodes.closeOne(a);
    a = (await nodes.state(aDir)).state;
    expect(a.executor.head.vmRoots).toEqual(before.roots);
    expect(a.executor.latestSvmBlockhash().blockhash).toBe(before.blockhash);
    expect((await call(a, "getBalance", [payee.address])).value).toBe(Number(SOL));
    const statuses = await call(a, "getSignatureStatuses", [[transferSignature]]);
    expect((statuses.value as { slot: number }[])[0]?.slot).toBe(1);
    // The next block builds on the restarted state and the other node validates it.
    await commit(b, block1, bytes1);
    const wire = await buildTx(payee, [transferIx(payee, payer.address, SOL / 2n)], before.blockhash);
    expect((await a.mempool.add(entry(wire), { kind: "local" })).ok).toBe(true);
    const built = await a.executor.build(2, proposer(), sets());
    if (built === null) throw new Error("no block");
    expect(built.block.transactions).toHaveLength(1);
    expect(await b.executor.validate(built.block, built.bytes, sets(), false)).toBeNull();
  });
});
