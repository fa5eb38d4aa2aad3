import { verifyMerkleProof } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import {
  decodeFunctionResult,
  encodeDeployData,
  encodeFunctionData,
  getContractAddress,
  type Hex as ViemHex,
} from "viem";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, keccak256, toHex, uintBytes } from "../../consensus/bytes.ts";
import {
  ExecutionCore,
  ExecutionError,
  type ExecutionResult,
  globalStateRoot,
  REWARD_POOL_ADDRESS,
} from "../../src/execution/core.ts";
import type { DecodedTx } from "../../src/execution/tx.ts";
import { EMPTY_TRIE_ROOT } from "../../src/execution/vm.ts";
import { type Contracts, contracts } from "../fixtures/contracts.ts";
import {
  addressOf,
  BASE_FEE,
  CHAIN_ID,
  COINBASE,
  decoded,
  ETHER,
  env,
  fund,
  type Parent,
  signed,
  signRaw,
  TestDb,
  testAccount,
} from "./helpers.ts";

const alice = testAccount(1);
const bob = testAccount(2);
const carol = testAccount(3);
const RECIPIENT: Hex = "0x00000000000000000000000000000000000000aa";

let c: Contracts;
let store: TestDb;
let core: ExecutionCore;
let genesis: Parent;

beforeAll(() => {
  c = contracts();
});

beforeEach(async () => {
  store = await TestDb.open();
  core = await ExecutionCore.create({
    chainId: CHAIN_ID,
    db: store.reader,
    alloc: fund([alice, bob, carol], 100n * ETHER),
  });
  const g = await core.genesisStateRoot();
  await store.commit(g.writes);
  genesis = g;
});

afterEach(async () => {
  await store.destroy();
});

async function run(parent: Parent, height: number, txs: DecodedTx[], mode: "build" | "validate" = "build") {
  return core.execute(parent.stateRoot, parent.vmRoots, env(height), txs, mode);
}

async function commitBlock(parent: Parent, height: number, txs: DecodedTx[]): Promise<ExecutionResult> {
  const result = await run(parent, height, txs, "validate");
  await store.commit(result.writes);
  return result;
}

async function expectThrowCode(promise: Promise<unknown>, code: string): Promise<ExecutionError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as ExecutionError).code).toBe(code);
    return error as ExecutionError;
  }
  throw new Error(`expected ExecutionError ${code}`);
}

describe("genesis", () => {
  it("commits the allocation; the global root is keccak256(0x01 || evmRoot)", async () => {
    const g = await core.genesisStateRoot();
    const evmRoot = g.vmRoots[0]?.root as Hex;
    expect(g.vmRoots).toEqual([{ vm: 1, root: evmRoot }]);
    expect(g.stateRoot).toBe(toHex(keccak256(concatBytes(Uint8Array.of(1), fromHex(evmRoot)))));
    expect(globalStateRoot(g.vmRoots)).toBe(g.stateRoot);
    const reader = core.reader(g.vmRoots);
    expect(await reader.getAccount(addressOf(alice))).toMatchObject({ nonce: 0n, balance: 100n * ETHER });
    expect(await reader.getAccount(RECIPIENT)).toBeNull();
  });

  it("sets code, storage and nonce; is independent of allocation order; empty allocation is the empty trie", async () => {
    const code: Hex = "0x6001600055";
    const slot: Hex = `0x${"00".repeat(31)}07`;
    const alloc = [
      { address: RECIPIENT, balance: 5n, nonce: 3n, code, storage: { [slot]: `0x${"00".repeat(31)}2a` as Hex } },
      { address: addressOf(alice), balance: 1n },
    ];
    const a = await ExecutionCore.create({ chainId: CHAIN_ID, db: store.reader, alloc });
    const b = await ExecutionCore.create({ chainId: CHAIN_ID, db: store.reader, alloc: [...alloc].reverse() });
    const ga = await a.genesisStateRoot();
    expect((await b.genesisStateRoot()).stateRoot).toBe(ga.stateRoot);
    const reader = a.reader(ga.vmRoots, ga.writes);
    expect(await reader.getAccount(RECIPIENT)).toMatchObject({
      nonce: 3n,
      balance: 5n,
      codeHash: toHex(keccak256(fromHex(code))),
    });
    expect(await reader.getCode(RECIPIENT)).toBe(code);
    expect(await reader.getStorageAt(RECIPIENT, slot)).toBe(`0x${"00".repeat(31)}2a`);
    const empty = await ExecutionCore.create({ chainId: CHAIN_ID, db: store.reader, alloc: [] });
    const ge = await empty.genesisStateRoot();
    expect(ge.vmRoots[0]?.root).toBe(EMPTY_TRIE_ROOT);
    expect(ge.writes.size).toBe(0);
  });

  it("refuses duplicate or malformed allocation entries", async () => {
    const dup = ExecutionCore.create({
      chainId: CHAIN_ID,
      db: store.reader,
      alloc: [
        { address: RECIPIENT, balance: 1n },
        { address: RECIPIENT, balance: 2n },
      ],
    });
    await expectThrowCode(dup, "invalid_argument");
    await expectThrowCode(
      ExecutionCore.create({ chainId: CHAIN_ID, db: store.reader, alloc: [{ address: "0x1234", balance: 1n }] }),
      "invalid_argument",
    );
  });
});

describe("transfers", () => {
  it("applies legacy, EIP-2930 and EIP-1559 transfers with Ethereum fee rules, the base fee going to the pool", async () => {
    const txs = [
      await signed(alice, { type: "legacy", to: RECIPIENT, value: 1000n, gasPrice: 3n * BASE_FEE, nonce: 0 }),
      await signed(alice, {
        type: "eip2930",
        to: RECIPIENT,
        value: 2000n,
        gasPrice: 2n * BASE_FEE,
        nonce: 1,
        gas: 30_000n,
        accessList: [{ address: RECIPIENT, storageKeys: [] }],
      }),
      await signed(bob, { to: RECIPIENT, value: 3000n, maxFeePerGas: BASE_FEE + 5n, maxPriorityFeePerGas: 10n }),
    ];
    const result = await commitBlock(genesis, 1, txs);
    expect(result.skipped).toEqual([]);
    expect(result.included.map((t) => t.hash)).toEqual(txs.map((t) => t.hash));
    const [r0, r1, r2] = result.receipts;
    if (r0 === undefined || r1 === undefined || r2 === undefined) throw new Error("missing receipts");
    expect([r0.status, r1.status, r2.status]).toEqual([1, 1, 1]);
    expect(r0.gasUsed).toBe(21_000n);
    expect(r1.gasUsed).toBe(21_000n + 2400n); // one access-list address
    expect(r2.gasUsed).toBe(21_000n);
    expect(r2.cumulativeGasUsed).toBe(21_000n * 3n + 2400n);
    expect(result.gasUsed).toBe(r2.cumulativeGasUsed);
    expect(r0.effectiveGasPrice).toBe(3n * BASE_FEE);
    expect(r1.effectiveGasPrice).toBe(2n * BASE_FEE);
    expect(r2.effectiveGasPrice).toBe(BASE_FEE + 5n); // min(maxFee, base + tip)
    expect(r0.type).toBe(0);
    expect(r1.type).toBe(1);
    expect(r2.type).toBe(2);
    expect(r0.from).toBe(addressOf(alice));
    expect(r0.transactionIndex).toBe(0);
    expect(r2.transactionIndex).toBe(2);
    expect(r0.contractAddress).toBeNull();
    expect(r0.logs).toEqual([]);
    expect(r0.logsBloom).toBe(`0x${"00".repeat(256)}`);
    expect(r0.encoded[0]).toBeGreaterThanOrEqual(0xc0); // legacy receipts are untyped
    expect(r1.encoded[0]).toBe(1);
    expect(r2.encoded[0]).toBe(2);

    const reader = core.reader(result.vmRoots);
    const aliceCost = 1000n + 21_000n * 3n * BASE_FEE + 2000n + 23_400n * 2n * BASE_FEE;
    expect(await reader.getAccount(addressOf(alice))).toMatchObject({ nonce: 2n, balance: 100n * ETHER - aliceCost });
    expect((await reader.getAccount(addressOf(bob)))?.balance).toBe(100n * ETHER - 3000n - 21_000n * (BASE_FEE + 5n));
    expect((await reader.getAccount(RECIPIENT))?.balance).toBe(6000n);
    expect(result.rewardPoolCredit).toBe(result.gasUsed * BASE_FEE);
    expect((await reader.getAccount(REWARD_POOL_ADDRESS))?.balance).toBe(result.gasUsed * BASE_FEE);
    const tips = 21_000n * 2n * BASE_FEE + 23_400n * BASE_FEE + 21_000n * 5n;
    expect((await reader.getAccount(COINBASE))?.balance).toBe(tips);
    // Nothing is created or destroyed: what senders paid is what recipients, the pool and the coinbase got.
    expect(aliceCost + 3000n + 21_000n * (BASE_FEE + 5n)).toBe(6000n + result.gasUsed * BASE_FEE + tips);
  });

  it("reads the state of the candidate that was committed, not of another candidate of the same height", async () => {
    // Two candidates of height 1 from genesis (./flat-accounts.ts records both); height 2 builds on the second one.
    const first = await run(genesis, 1, [await signed(alice, { to: RECIPIENT, value: 7n, nonce: 0 })], "validate");
    const second = await commitBlock(genesis, 1, [
      await signed(alice, { to: RECIPIENT, value: 9n, nonce: 0 }),
      await signed(bob, { to: RECIPIENT, value: 1n, nonce: 0 }),
    ]);
    expect(second.stateRoot).not.toBe(first.stateRoot);
    const reader = core.reader(second.vmRoots);
    expect(await reader.getAccount(RECIPIENT)).toMatchObject({ balance: 10n });
    expect(await reader.getAccount(addressOf(bob))).toMatchObject({ nonce: 1n });
    const next = [await signed(bob, { to: RECIPIENT, value: 5n, nonce: 1 })];
    const third = await commitBlock(second, 2, next);
    // A core without a flat view of these roots (a fresh one over the same store) computes the same state.
    const fresh = await ExecutionCore.create({
      chainId: CHAIN_ID,
      db: store.reader,
      alloc: fund([alice, bob, carol], 100n * ETHER),
    });
    const again = await fresh.execute(second.stateRoot, second.vmRoots, env(2), next, "validate");
    expect(again.stateRoot).toBe(third.stateRoot);
    expect(await core.reader(third.vmRoots).getAccount(RECIPIENT)).toMatchObject({ balance: 15n });
    // The genesis root is still readable (from the trie: the view has moved on).
    expect(await core.reader(genesis.vmRoots).getAccount(RECIPIENT)).toBeNull();
  });

  it("an empty block changes nothing and has empty-trie transaction and receipt roots", async () => {
    const result = await run(genesis, 1, []);
    expect(result.stateRoot).toBe(genesis.stateRoot);
    expect(result.transactionsRoot).toBe(EMPTY_TRIE_ROOT);
    expect(result.receiptsRoot).toBe(EMPTY_TRIE_ROOT);
    expect(result.gasUsed).toBe(0n);
    expect(result.writes.size).toBe(0);
  });

  it("transactions and receipts roots are Ethereum ordered-trie roots of the raw transactions and receipts", async () => {
    const { MerklePatriciaTrie } = await import("@ethereumjs/mpt");
    const txs = [
      await signed(alice, { to: RECIPIENT, value: 1n, nonce: 0 }),
      await signed(alice, { to: RECIPIENT, value: 2n, nonce: 1 }),
      await signed(bob, { type: "legacy", to: RECIPIENT, value: 3n, gasPrice: BASE_FEE, nonce: 0 }),
    ];
    const result = await run(genesis, 1, txs);
    const txTrie = new MerklePatriciaTrie();
    const receiptTrie = new MerklePatriciaTrie();
    for (const [i, tx] of txs.entries()) await txTrie.put(RLP.encode(i), tx.raw);
    for (const [i, r] of result.receipts.entries()) await receiptTrie.put(RLP.encode(i), r.encoded);
    expect(result.transactionsRoot).toBe(toHex(txTrie.root()));
    expect(result.receiptsRoot).toBe(toHex(receiptTrie.root()));
  });

  it("build mode skips what cannot apply, with a reason; validate mode rejects the block", async () => {
    const poor = testAccount(99);
    const core2 = await ExecutionCore.create({
      chainId: CHAIN_ID,
      db: store.reader,
      alloc: [...fund([alice, bob], 100n * ETHER), { address: addressOf(poor), balance: 21_000n * BASE_FEE }],
    });
    const g = await core2.genesisStateRoot();
    await store.commit(g.writes);
    const ok0 = await signed(alice, { to: RECIPIENT, value: 1n, nonce: 0 });
    const replay = ok0;
    const gap = await signed(alice, { to: RECIPIENT, value: 1n, nonce: 5 });
    const broke = await signed(poor, { to: RECIPIENT, value: 1n, nonce: 0, maxFeePerGas: BASE_FEE });
    const cheap = await signed(bob, {
      to: RECIPIENT,
      value: 1n,
      nonce: 0,
      maxFeePerGas: BASE_FEE - 1n,
      maxPriorityFeePerGas: 0n,
    });
    const huge = await signed(bob, { to: RECIPIENT, value: 1n, nonce: 0, gas: 29_990_000n });
    const other = decoded(await signRaw(bob, { to: RECIPIENT, nonce: 0 }, 5n), 5n);
    const ok1 = await signed(bob, { to: RECIPIENT, value: 1n, nonce: 0 });
    const candidates = [ok0, replay, gap, broke, cheap, huge, other, ok1];
    const result = await core2.execute(g.stateRoot, g.vmRoots, env(1), candidates, "build");
    expect(result.included.map((t) => t.hash)).toEqual([ok0.hash, ok1.hash]);
    expect(result.skipped.map((s) => [s.hash, s.code])).toEqual([
      [replay.hash, "nonce_too_low"],
      [gap.hash, "nonce_gap"],
      [broke.hash, "insufficient_balance"],
      [cheap.hash, "fee_below_base_fee"],
      [huge.hash, "block_gas_limit"],
      [other.hash, "wrong_chain"],
    ]);
    for (const s of result.skipped) expect(s.reason.length).toBeGreaterThan(0);
    // Same included set in validate mode gives the same result; any inapplicable one rejects the block.
    const valid = await core2.execute(g.stateRoot, g.vmRoots, env(1), [ok0, ok1], "validate");
    expect(valid.stateRoot).toBe(result.stateRoot);
    expect(valid.receiptsRoot).toBe(result.receiptsRoot);
    for (const bad of [replay, gap, broke, cheap, huge, other]) {
      const error = await expectThrowCode(
        core2.execute(g.stateRoot, g.vmRoots, env(1), [ok0, bad], "validate"),
        "invalid_transaction",
      );
      expect(error.context.index).toBe(1);
      expect(error.context.hash).toBe(bad.hash);
    }
  });

  it("build mode stops at the block gas limit and leaves the rest for later", async () => {
    const txs: DecodedTx[] = [];
    for (let n = 0; n < 5; n++) txs.push(await signed(alice, { to: RECIPIENT, value: 1n, nonce: n }));
    const result = await core.execute(genesis.stateRoot, genesis.vmRoots, env(1, { gasLimit: 63_000n }), txs, "build");
    expect(result.included.length).toBe(3);
    expect(result.gasUsed).toBe(63_000n);
    expect(result.skipped).toEqual([]);
  });

  it("build mode stops at the time budget (at least one transaction) and the block validates as built", async () => {
    const txs: DecodedTx[] = [];
    for (let n = 0; n < 5; n++) txs.push(await signed(alice, { to: RECIPIENT, value: 1n, nonce: n }));
    const built = await core.execute(genesis.stateRoot, genesis.vmRoots, env(1), txs, "build", 0);
    expect(built.included.length).toBe(1);
    const checked = await core.execute(genesis.stateRoot, genesis.vmRoots, env(1), built.included, "validate");
    expect(checked.stateRoot).toBe(built.stateRoot);
    const unbounded = await core.execute(genesis.stateRoot, genesis.vmRoots, env(1), txs, "build");
    expect(unbounded.included.length).toBe(5);
  });

  it("the base fee is not burned: supply is conserved across blocks", async () => {
    let parent: Parent = genesis;
    const everyone = [addressOf(alice), addressOf(bob), addressOf(carol), RECIPIENT, REWARD_POOL_ADDRESS, COINBASE];
    for (let h = 1; h <= 3; h++) {
      const txs = [
        await signed(alice, { to: RECIPIENT, value: 7n, nonce: h - 1 }),
        await signed(bob, { to: addressOf(carol), value: 11n, nonce: h - 1, maxPriorityFeePerGas: 3n }),
      ];
      parent = await commitBlock(parent, h, txs);
    }
    const reader = core.reader(parent.vmRoots);
    let total = 0n;
    for (const a of everyone) total += (await reader.getAccount(a))?.balance ?? 0n;
    expect(total).toBe(300n * ETHER);
  });
});

describe("contracts", () => {
  it("deploys an ERC-20, transfers with a Transfer log, and reports revert reasons", async () => {
    const token = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    const deploy = await signed(alice, {
      data: encodeDeployData({ abi: c.Token.abi, bytecode: c.Token.bytecode, args: [1_000_000n] }),
      gas: 1_500_000n,
      nonce: 0,
    });
    const transfer = await signed(alice, {
      to: token,
      data: encodeFunctionData({ abi: c.Token.abi, functionName: "transfer", args: [bob.address, 250n] }),
      gas: 100_000n,
      nonce: 1,
    });
    const tooMuch = await signed(bob, {
      to: token,
      data: encodeFunctionData({ abi: c.Token.abi, functionName: "transfer", args: [alice.address, 251n] }),
      gas: 100_000n,
      nonce: 0,
    });
    const result = await commitBlock(genesis, 1, [deploy, transfer, tooMuch]);
    const [rDeploy, rTransfer, rFail] = result.receipts;
    if (rDeploy === undefined || rTransfer === undefined || rFail === undefined) throw new Error("missing receipts");
    expect(rDeploy.status).toBe(1);
    expect(rDeploy.contractAddress).toBe(token);
    expect(rTransfer.status).toBe(1);
    const transferTopic = toHex(keccak256(new TextEncoder().encode("Transfer(address,address,uint256)")));
    expect(rTransfer.logs).toEqual([
      {
        address: token,
        topics: [
          transferTopic,
          `0x${"00".repeat(12)}${addressOf(alice).slice(2)}`,
          `0x${"00".repeat(12)}${addressOf(bob).slice(2)}`,
        ],
        data: toHex(uintBytes(250n, 32)),
        logIndex: 1, // the constructor's mint log is log 0 of the block
      },
    ]);
    expect(rDeploy.logs[0]?.logIndex).toBe(0);
    expect(rFail.status).toBe(0);
    expect(rFail.revertReason).toBe("balance too low");
    expect(rFail.logs).toEqual([]);
    expect(rFail.gasUsed).toBeGreaterThan(21_000n);
    // Bloom: the block bloom covers the token address and the Transfer topic.
    const bloom = fromHex(result.logsBloom);
    for (const item of [fromHex(token), fromHex(transferTopic)]) {
      const h = keccak256(item);
      for (const i of [0, 2, 4]) {
        const bit = (((h[i] as number) << 8) | (h[i + 1] as number)) & 2047;
        expect((bloom[255 - (bit >> 3)] as number) & (1 << (bit & 7))).not.toBe(0);
      }
    }

    const reader = core.reader(result.vmRoots);
    expect((await reader.getCode(token)).length).toBeGreaterThan(100);
    const balanceSlot = (holder: Hex) =>
      toHex(keccak256(concatBytes(uintBytes(BigInt(holder), 32), uintBytes(1n, 32))));
    expect(BigInt(await reader.getStorageAt(token, balanceSlot(addressOf(bob))))).toBe(250n);
    expect(BigInt(await reader.getStorageAt(token, balanceSlot(addressOf(alice))))).toBe(999_750n);
    const call = await core.call(result.vmRoots, env(2), {
      to: token,
      data: encodeFunctionData({ abi: c.Token.abi, functionName: "balanceOf", args: [bob.address] }),
    });
    expect(call.status).toBe(1);
    expect(
      decodeFunctionResult({ abi: c.Token.abi, functionName: "balanceOf", data: call.returnData as ViemHex }),
    ).toBe(250n);
  });

  it("reports Panic codes, custom errors (no reason), out-of-gas and failed creations", async () => {
    const reverter = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    const deploy = await signed(alice, { data: c.Reverter.bytecode, gas: 1_000_000n, nonce: 0 });
    const callData = (functionName: string, args: unknown[]) =>
      encodeFunctionData({ abi: c.Reverter.abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);
    const txs = [
      deploy,
      await signed(alice, { to: reverter, data: callData("fail", ["why not"]), gas: 100_000n, nonce: 1 }),
      await signed(alice, { to: reverter, data: callData("panic", [0n]), gas: 100_000n, nonce: 2 }),
      await signed(alice, { to: reverter, data: callData("custom", []), gas: 100_000n, nonce: 3 }),
      await signed(alice, { to: reverter, data: callData("burn", [10_000n]), gas: 60_000n, nonce: 4 }),
      // Creation whose init code reverts: the receipt still names the would-be address.
      await signed(alice, { data: "0x60006000fd", gas: 100_000n, nonce: 5 }),
    ];
    const result = await commitBlock(genesis, 1, txs);
    const reasons = result.receipts.map((r) => [r.status, r.revertReason]);
    expect(reasons).toEqual([
      [1, null],
      [0, "why not"],
      [0, "Panic(0x12)"],
      [0, null],
      [0, null],
      [0, null],
    ]);
    expect(result.receipts[4]?.gasUsed).toBe(60_000n); // out of gas consumes everything
    expect(result.receipts[5]?.contractAddress).toBe(
      getContractAddress({ from: alice.address, nonce: 5n }).toLowerCase(),
    );
    // The failed "fail" call did not keep its state change.
    const touched = await core.call(result.vmRoots, env(2), { to: reverter, data: callData("touched", []) });
    expect(BigInt(touched.returnData)).toBe(0n);
    const viaCall = await core.call(result.vmRoots, env(2), { to: reverter, data: callData("fail", ["from call"]) });
    expect(viaCall).toMatchObject({ status: 0, revertReason: "from call", error: null });
  });

  it("BLOCKHASH answers from env.blockHash for the 256 previous heights, else 0", async () => {
    const deploy = await signed(alice, { data: c.Probe.bytecode, gas: 3_000_000n, nonce: 0 });
    const probe = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    const parent = await commitBlock(genesis, 1, [deploy]);
    const hashOf = (h: number) => toHex(keccak256(uintBytes(h, 8)));
    const ask = async (n: bigint, withHashes: boolean) => {
      const e = env(300, withHashes ? { blockHash: (h: number) => hashOf(h) } : {});
      const data = encodeFunctionData({ abi: c.Probe.abi, functionName: "hashOf", args: [n] });
      return (await core.call(parent.vmRoots, e, { to: probe, data })).returnData;
    };
    expect(await ask(299n, true)).toBe(hashOf(299));
    expect(await ask(44n, true)).toBe(hashOf(44));
    expect(await ask(43n, true)).toBe(`0x${"00".repeat(32)}`); // more than 256 back
    expect(await ask(300n, true)).toBe(`0x${"00".repeat(32)}`); // the current block
    expect(await ask(299n, false)).toBe(`0x${"00".repeat(32)}`);
  });

  it("call gives gas estimates that suffice, and reports calls that cannot start", async () => {
    const deploy = await signed(alice, { data: c.Probe.bytecode, gas: 2_000_000n, nonce: 0 });
    const probe = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    const parent = await commitBlock(genesis, 1, [deploy]);
    const data = encodeFunctionData({ abi: c.Probe.abi, functionName: "setMany", args: [0n, 5n, 9n] });
    const estimate = await core.call(parent.vmRoots, env(2), { from: addressOf(bob), to: probe, data });
    expect(estimate.status).toBe(1);
    expect(estimate.gasUsed).toBeGreaterThan(5n * 22_000n);
    // eth_call leaves no trace.
    expect((await core.reader(parent.vmRoots).getAccount(addressOf(bob)))?.nonce).toBe(0n);
    const tx = await signed(bob, { to: probe, data, gas: estimate.gasUsed, nonce: 0 });
    const result = await commitBlock(parent, 2, [tx]);
    expect(result.receipts[0]?.status).toBe(1);
    expect(result.receipts[0]?.gasUsed).toBe(estimate.gasUsed);
    const tooLittle = await core.call(parent.vmRoots, env(2), { to: probe, data, gas: 20_000n });
    expect(tooLittle.status).toBe(0);
    expect(tooLittle.error).toMatch(/gas/i);
  });
});

describe("state", () => {
  it("restart: committed state and roots read back identically from a reopened database", async () => {
    const deploy = await signed(alice, {
      data: encodeDeployData({ abi: c.Token.abi, bytecode: c.Token.bytecode, args: [77n] }),
      gas: 1_500_000n,
      nonce: 0,
    });
    const token = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    const b1 = await commitBlock(genesis, 1, [deploy, await signed(bob, { to: RECIPIENT, value: 5n, nonce: 0 })]);
    const slot: Hex = `0x${"00".repeat(32)}`; // totalSupply
    const before = core.reader(b1.vmRoots);
    const snapshot = async (r: typeof before) => [
      await r.getAccount(addressOf(alice)),
      await r.getAccount(addressOf(bob)),
      await r.getAccount(token),
      await r.getCode(token),
      await r.getStorageAt(token, slot),
      await r.getProof(token, [slot]),
    ];
    const expected = await snapshot(before);
    const next = [await signed(alice, { to: RECIPIENT, value: 1n, nonce: 1 })];
    const b2Before = await run(b1, 2, next);

    await store.reopen();
    const restarted = await ExecutionCore.create({
      chainId: CHAIN_ID,
      db: store.reader,
      alloc: fund([alice, bob, carol], 100n * ETHER),
    });
    expect((await restarted.genesisStateRoot()).stateRoot).toBe(genesis.stateRoot);
    expect(await snapshot(restarted.reader(b1.vmRoots))).toEqual(expected);
    const b2After = await restarted.execute(b1.stateRoot, b1.vmRoots, env(2), next, "validate");
    expect(b2After.stateRoot).toBe(b2Before.stateRoot);
    expect(b2After.receiptsRoot).toBe(b2Before.receiptsRoot);
    expect([...b2After.writes.keys()].sort()).toEqual([...b2Before.writes.keys()].sort());
  });

  it("isolation: candidates on the same parent never see each other's writes, and results are deterministic", async () => {
    const a = [await signed(alice, { to: RECIPIENT, value: 100n, nonce: 0 })];
    const b = [
      await signed(alice, { to: addressOf(bob), value: 200n, nonce: 0 }),
      await signed(alice, { to: addressOf(bob), value: 300n, nonce: 1 }),
    ];
    const [ra, rb] = await Promise.all([run(genesis, 1, a), run(genesis, 1, b)]);
    expect(ra.stateRoot).not.toBe(rb.stateRoot);
    const readA = core.reader(ra.vmRoots, ra.writes);
    const readB = core.reader(rb.vmRoots, rb.writes);
    expect((await readA.getAccount(RECIPIENT))?.balance).toBe(100n);
    expect(await readB.getAccount(RECIPIENT)).toBeNull();
    expect((await readA.getAccount(addressOf(alice)))?.nonce).toBe(1n);
    expect((await readB.getAccount(addressOf(alice)))?.nonce).toBe(2n);
    // The committed parent is untouched by both.
    const parent = core.reader(genesis.vmRoots);
    expect((await parent.getAccount(addressOf(alice)))?.nonce).toBe(0n);
    expect(await parent.getAccount(RECIPIENT)).toBeNull();
    // Rerunning A after B (same core, warm caches) gives byte-identical results.
    const ra2 = await run(genesis, 1, a);
    expect(ra2.stateRoot).toBe(ra.stateRoot);
    expect(ra2.receiptsRoot).toBe(ra.receiptsRoot);
    expect(ra2.logsBloom).toBe(ra.logsBloom);
    expect([...ra2.writes.entries()].map(([k, v]) => [k, toHex(v)]).sort()).toEqual(
      [...ra.writes.entries()].map(([k, v]) => [k, toHex(v)]).sort(),
    );
    // Only A's writes are in the database after A commits; B's state is not reachable from the store alone.
    await store.commit(ra.writes);
    const fresh = await ExecutionCore.create({ chainId: CHAIN_ID, db: store.reader, alloc: [] });
    expect((await fresh.reader(ra.vmRoots).getAccount(RECIPIENT))?.balance).toBe(100n);
    await expectThrowCode(fresh.reader(rb.vmRoots).getAccount(RECIPIENT), "missing_state");
  });

  it("getProof: account and storage proofs verify against the EVM root and the storage root", async () => {
    const deploy = await signed(alice, { data: c.Probe.bytecode, gas: 2_000_000n, nonce: 0 });
    const probe = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    const set = await signed(alice, {
      to: probe,
      data: encodeFunctionData({ abi: c.Probe.abi, functionName: "setMany", args: [0n, 20n, 1n] }),
      gas: 1_000_000n,
      nonce: 1,
    });
    const result = await commitBlock(genesis, 1, [deploy, set]);
    const evmRoot = fromHex(result.vmRoots[0]?.root as Hex);
    const reader = core.reader(result.vmRoots);
    const mappingSlot = (k: bigint) => toHex(keccak256(concatBytes(uintBytes(k, 32), uintBytes(0n, 32))));
    const slots = [mappingSlot(3n), mappingSlot(19n), mappingSlot(1000n)];
    const proof = await reader.getProof(probe, slots);
    const accountRlp = await verifyMerkleProof(fromHex(probe), proof.accountProof.map(fromHex), {
      root: evmRoot,
      useKeyHashing: true,
    });
    if (accountRlp === null) throw new Error("account proof proved absence");
    const [nonce, balance, storageRoot, codeHash] = RLP.decode(accountRlp) as Uint8Array[];
    expect(toHex(storageRoot as Uint8Array)).toBe(proof.storageHash);
    expect(toHex(codeHash as Uint8Array)).toBe(proof.codeHash);
    expect(BigInt(toHex(nonce as Uint8Array).replace(/^0x$/, "0x0"))).toBe(BigInt(proof.nonce));
    expect(BigInt(toHex(balance as Uint8Array).replace(/^0x$/, "0x0"))).toBe(BigInt(proof.balance));
    const values: bigint[] = [];
    for (const sp of proof.storageProof) {
      const value = await verifyMerkleProof(fromHex(sp.key), sp.proof.map(fromHex), {
        root: fromHex(proof.storageHash),
        useKeyHashing: true,
      });
      values.push(value === null ? 0n : BigInt(toHex(RLP.decode(value) as Uint8Array)));
      expect(BigInt(sp.value)).toBe(values[values.length - 1]);
    }
    expect(values).toEqual([4n, 20n, 0n]);
    // An absent account: the proof shows absence under the same root.
    const absent = await reader.getProof(RECIPIENT, []);
    expect(
      await verifyMerkleProof(fromHex(RECIPIENT), absent.accountProof.map(fromHex), {
        root: evmRoot,
        useKeyHashing: true,
      }),
    ).toBeNull();
    // A proof does not verify against another root.
    await expect(
      verifyMerkleProof(fromHex(probe), proof.accountProof.map(fromHex), {
        root: fromHex(genesis.vmRoots[0]?.root as Hex),
        useKeyHashing: true,
      }),
    ).rejects.toThrow();
  });

  it("writes are exactly the new nodes the new root reaches: each committed state walks completely", async () => {
    const deploy = await signed(alice, { data: c.Probe.bytecode, gas: 3_000_000n, nonce: 0 });
    const probe = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
    let parent: Parent = await commitBlock(genesis, 1, [deploy]);
    const results: ExecutionResult[] = [];
    const probeCall = (functionName: string, args: bigint[]) =>
      encodeFunctionData({ abi: c.Probe.abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);
    for (let h = 2; h <= 4; h++) {
      const txs = [
        await signed(alice, {
          to: probe,
          data: probeCall("setMany", [BigInt(h * 100), 25n, 1n]),
          gas: 2_000_000n,
          nonce: 2 * h - 3,
        }),
        await signed(alice, {
          to: probe,
          data: probeCall("clear", [BigInt(h * 100 + 3)]),
          gas: 100_000n,
          nonce: 2 * h - 2,
        }),
        await signed(bob, { to: toHex(uintBytes(1000 + h, 20)), value: 1n, nonce: h - 2 }),
      ];
      const result = await commitBlock(parent, h, txs);
      expect(result.receipts.map((r) => r.status)).toEqual([1, 1, 1]);
      results.push(result);
      parent = result;
    }
    // Walk each block's state from the store alone (no cache), following storage roots below account leaves.
    type Node = Uint8Array | Node[];
    const walkFrom = async (root: Hex): Promise<Set<string>> => {
      const seen = new Set<string>();
      const walk = async (ref: Node, accounts: boolean): Promise<void> => {
        let node: Node;
        if (Array.isArray(ref)) node = ref;
        else {
          if (ref.length !== 32) return;
          const key = toHex(ref);
          if (key === EMPTY_TRIE_ROOT || seen.has(key)) return;
          const bytes = await store.db.get(ref);
          if (bytes === undefined) throw new Error(`node ${key} missing from the committed state`);
          seen.add(key);
          node = RLP.decode(bytes) as Node;
        }
        const items = node as Node[];
        const leafValue = async (value: Node) => {
          if (accounts && value instanceof Uint8Array && value.length > 0) {
            await walk((RLP.decode(value) as Uint8Array[])[2] as Uint8Array, false);
          }
        };
        if (items.length === 17) {
          for (let i = 0; i < 16; i++) await walk(items[i] as Node, accounts);
          await leafValue(items[16] as Node);
        } else if (((items[0] as Uint8Array)[0] as number) >> 4 >= 2) await leafValue(items[1] as Node);
        else await walk(items[1] as Node, accounts);
      };
      await walk(fromHex(root), true);
      return seen;
    };
    for (const r of results) {
      const state = await walkFrom(r.vmRoots[0]?.root as Hex);
      const nodeWrites = [...r.writes.keys()].filter((key) => key.length === 66); // code keys are 33 bytes
      expect(nodeWrites.length).toBeGreaterThan(0);
      for (const key of nodeWrites) expect(state.has(key)).toBe(true);
    }
    const slot = toHex(keccak256(concatBytes(uintBytes(400n, 32), uintBytes(0n, 32))));
    expect(BigInt(await core.reader(parent.vmRoots).getStorageAt(probe, slot))).toBe(1n);
  });

  it("unknown or inconsistent parents are typed errors", async () => {
    const unknown = [{ vm: 1, root: toHex(keccak256(Uint8Array.of(1))) }];
    await expectThrowCode(core.execute(globalStateRoot(unknown), unknown, env(1), [], "build"), "missing_state");
    await expectThrowCode(core.execute(genesis.stateRoot, unknown, env(1), [], "build"), "root_mismatch");
    await expectThrowCode(
      core.execute(genesis.stateRoot, genesis.vmRoots, env(1, { chainId: 1n }), [], "build"),
      "invalid_argument",
    );
    await expectThrowCode(core.reader(unknown).getAccount(RECIPIENT), "missing_state");
  });
});

describe("nextBaseFee", () => {
  it("follows EIP-1559 around a target of half the gas limit", () => {
    const gasLimit = 30_000_000n;
    const at = (gasUsed: bigint, baseFeePerGas = 1_000_000_000n) =>
      core.nextBaseFee({ gasLimit, gasUsed, baseFeePerGas });
    expect(at(15_000_000n)).toBe(1_000_000_000n);
    expect(at(30_000_000n)).toBe(1_125_000_000n);
    expect(at(0n)).toBe(875_000_000n);
    expect(at(22_500_000n)).toBe(1_062_500_000n);
    expect(at(15_000_001n, 7n)).toBe(8n); // rises by at least 1
    expect(at(0n, 7n)).toBe(7n); // 7 / 8 rounds to no change
    expect(at(30_000_000n, 0n)).toBe(1n);
  });
});
