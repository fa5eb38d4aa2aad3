// The same signed transactions, block by block, on anvil (the reference EVM, Prague) and on the execution core with
// anvil's own block environment (number, timestamp, coinbase, base fee, prevRandao, gas limit). After every block:
// transactions root, receipts root, logs bloom and gas used of the block; status, gas, cumulative gas, logs, bloom,
// contract address and effective gas price of every receipt; nonce, balance, code hash and storage root of every
// account touched. The one intended difference: anvil burns the base fee, the core credits it to the reward pool.

import { MerklePatriciaTrie } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import {
  encodeDeployData,
  encodeFunctionData,
  getContractAddress,
  type TransactionSerializable,
  type Hex as ViemHex,
} from "viem";
import type { PrivateKeyAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { ExecutionCore, type ExecutionResult, REWARD_POOL_ADDRESS } from "../../src/execution/core.ts";
import { Anvil, RpcError } from "../fixtures/anvil.ts";
import { type Contracts, contracts } from "../fixtures/contracts.ts";
import {
  addressOf,
  BASE_FEE,
  CHAIN_ID,
  COINBASE,
  decoded,
  ETHER,
  GAS_LIMIT,
  type Parent,
  TestDb,
  testAccount,
} from "./helpers.ts";

const FUNDS = 1000n * ETHER;
const MAX_FEE = 5n * BASE_FEE;
const users = [testAccount(11), testAccount(12), testAccount(13), testAccount(14)];
const [alice, bob, carol, dave] = users as [PrivateKeyAccount, PrivateKeyAccount, PrivateKeyAccount, PrivateKeyAccount];
const FRESH: Hex = "0x00000000000000000000000000000000000f4e55";
const SHA256_PRECOMPILE: Hex = "0x0000000000000000000000000000000000000002";
const KECCAK_EMPTY: Hex = "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470";
const EMPTY_ROOT: Hex = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";
const ZERO32: Hex = `0x${"00".repeat(32)}`;

interface AnvilBlock {
  hash: Hex;
  number: Hex;
  timestamp: Hex;
  miner: Hex;
  gasLimit: Hex;
  gasUsed: Hex;
  baseFeePerGas: Hex;
  mixHash: Hex;
  transactionsRoot: Hex;
  receiptsRoot: Hex;
  logsBloom: Hex;
  transactions: Hex[];
}

interface AnvilReceipt {
  status: Hex;
  type: Hex;
  from: Hex;
  to: Hex | null;
  gasUsed: Hex;
  cumulativeGasUsed: Hex;
  effectiveGasPrice: Hex;
  contractAddress: Hex | null;
  logsBloom: Hex;
  logs: { address: Hex; topics: Hex[]; data: Hex; logIndex: Hex }[];
}

interface AnvilProof {
  balance: Hex;
  nonce: Hex;
  codeHash: Hex;
  storageHash: Hex;
  storageProof: { key: Hex; value: Hex }[];
}

let anvil: Anvil;
let store: TestDb;
let core: ExecutionCore;
let parent: Parent;
let c: Contracts;
let poolCredit = 0n;
let comparedReceipts = 0;
let comparedAccounts = 0;
const nonces = new Map<string, number>();
/** anvil's block hashes by number, handed to the core as its BLOCKHASH source. */
const blockHashes = new Map<number, Hex>();
const tracked = new Set<Hex>([...users.map(addressOf), FRESH, SHA256_PRECOMPILE, COINBASE, REWARD_POOL_ADDRESS]);
/**
 * Every slot ever written, for contracts that clear slots. anvil keeps a cleared slot in its storage trie as an empty
 * leaf, where Ethereum (and the core) remove it, so their storage roots differ; for these accounts the test compares
 * every slot's value and rebuilds both tries from the values to show that this is the only difference.
 */
const slotsOf = new Map<Hex, Set<Hex>>();
const everNonZero = new Set<string>();

function nextNonce(account: PrivateKeyAccount): number {
  const n = nonces.get(account.address) ?? 0;
  nonces.set(account.address, n + 1);
  return n;
}

async function sign(account: PrivateKeyAccount, fields: Record<string, unknown>): Promise<Hex> {
  const type = (fields.type as string | undefined) ?? "eip1559";
  const fees =
    type === "eip1559" ? { maxFeePerGas: MAX_FEE, maxPriorityFeePerGas: 2_000_000n } : { gasPrice: 2n * BASE_FEE };
  const request = { chainId: Number(CHAIN_ID), type, nonce: nextNonce(account), gas: 21_000n, ...fees, ...fields };
  return (await account.signTransaction(request as TransactionSerializable)) as Hex;
}

function call(abi: Contracts[keyof Contracts]["abi"], functionName: string, args: unknown[] = []): Hex {
  return encodeFunctionData({ abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]) as Hex;
}

function q(hex: Hex | null | undefined): bigint {
  return hex === null || hex === undefined || hex === "0x" ? 0n : BigInt(hex);
}

function lower(hex: Hex | null): Hex | null {
  return hex === null ? null : (hex.toLowerCase() as Hex);
}

/** Sends `raws` to anvil, mines one block, runs the same block on the core and compares everything. */
async function block(raws: Hex[]): Promise<ExecutionResult> {
  const hashes: Hex[] = [];
  for (const raw of raws) hashes.push(await anvil.rpc<Hex>("eth_sendRawTransaction", [raw]));
  await anvil.rpc("evm_mine", []);
  const b = await anvil.rpc<AnvilBlock>("eth_getBlockByNumber", ["latest", false]);
  expect(b.transactions).toEqual(hashes); // fifo: the core gets them in anvil's order
  expect(b.miner.toLowerCase()).toBe(COINBASE);
  const txs = raws.map((raw) => decoded(Uint8Array.from(Buffer.from(raw.slice(2), "hex"))));
  expect(txs.map((t) => t.hash)).toEqual(hashes);
  const result = await core.execute(
    parent.stateRoot,
    parent.vmRoots,
    {
      chainId: CHAIN_ID,
      height: Number(b.number),
      timestampMs: Number(b.timestamp) * 1000,
      coinbase: COINBASE,
      gasLimit: q(b.gasLimit),
      baseFeePerGas: q(b.baseFeePerGas),
      prevRandao: b.mixHash,
      blockHash: (height) => blockHashes.get(height) ?? null,
    },
    txs,
    "validate",
  );
  blockHashes.set(Number(b.number), b.hash);
  await store.commit(result.writes);
  parent = result;
  poolCredit += result.rewardPoolCredit;
  expect(result.rewardPoolCredit).toBe(result.gasUsed * q(b.baseFeePerGas));

  expect(result.gasUsed).toBe(q(b.gasUsed));
  expect(result.transactionsRoot).toBe(b.transactionsRoot);
  expect(result.receiptsRoot).toBe(b.receiptsRoot);
  expect(result.logsBloom).toBe(b.logsBloom);
  for (const [i, hash] of hashes.entries()) {
    const a = await anvil.rpc<AnvilReceipt>("eth_getTransactionReceipt", [hash]);
    const r = result.receipts[i];
    if (r === undefined) throw new Error(`no core receipt for ${hash}`);
    const label = `tx ${i} of block ${Number(b.number)}`;
    expect({ label, status: r.status }).toEqual({ label, status: Number(a.status) });
    expect({ label, gasUsed: r.gasUsed }).toEqual({ label, gasUsed: q(a.gasUsed) });
    expect(r.cumulativeGasUsed).toBe(q(a.cumulativeGasUsed));
    expect(r.effectiveGasPrice).toBe(q(a.effectiveGasPrice));
    expect(r.type).toBe(Number(a.type));
    expect(r.from).toBe(lower(a.from));
    expect(r.to).toBe(lower(a.to));
    expect(r.contractAddress).toBe(lower(a.contractAddress));
    expect(r.logsBloom).toBe(a.logsBloom);
    expect(r.logs).toEqual(
      a.logs.map((l) => ({ address: lower(l.address), topics: l.topics, data: l.data, logIndex: Number(l.logIndex) })),
    );
    for (const address of [r.from, r.to, r.contractAddress, ...r.logs.map((l) => l.address)]) {
      if (address !== null) tracked.add(address);
    }
    comparedReceipts++;
  }
  await compareState();
  return result;
}

async function compareState(): Promise<void> {
  const reader = core.reader(parent.vmRoots);
  for (const address of tracked) {
    const a = await anvil.rpc<AnvilProof>("eth_getProof", [address, [], "latest"]);
    const mine = await reader.getProof(address, []);
    const account = await reader.getAccount(address);
    const expectedBalance = q(a.balance) + (address === REWARD_POOL_ADDRESS ? poolCredit : 0n);
    expect({ address, balance: BigInt(mine.balance) }).toEqual({ address, balance: expectedBalance });
    expect({ address, nonce: BigInt(mine.nonce) }).toEqual({ address, nonce: q(a.nonce) });
    // anvil reports an absent account with zero hashes; the core with the empty code hash and the empty trie root.
    const absent = account === null;
    expect({ address, codeHash: mine.codeHash }).toEqual({
      address,
      codeHash: absent && a.codeHash === ZERO32 ? KECCAK_EMPTY : a.codeHash,
    });
    const slots = slotsOf.get(address);
    if (slots === undefined) {
      expect({ address, storageHash: mine.storageHash }).toEqual({
        address,
        storageHash: absent && a.storageHash === ZERO32 ? EMPTY_ROOT : a.storageHash,
      });
    } else {
      const ethereum = new MerklePatriciaTrie({ useKeyHashing: true });
      const keepsZeros = new MerklePatriciaTrie({ useKeyHashing: true });
      for (const slot of slots) {
        const value = await reader.getStorageAt(address, slot);
        expect({ address, slot, value }).toEqual({
          address,
          slot,
          value: await anvil.rpc<Hex>("eth_getStorageAt", [address, slot, "latest"]),
        });
        const trimmed = fromHex(value).subarray(fromHex(value).findIndex((b) => b !== 0) >>> 0);
        const leaf = RLP.encode(BigInt(value) === 0n ? new Uint8Array(0) : trimmed);
        if (BigInt(value) !== 0n) {
          await ethereum.put(fromHex(slot), leaf);
          everNonZero.add(`${address}:${slot}`);
        }
        if (everNonZero.has(`${address}:${slot}`)) await keepsZeros.put(fromHex(slot), leaf);
      }
      expect(mine.storageHash).toBe(toHex(ethereum.root()));
      expect(a.storageHash).toBe(toHex(keepsZeros.root()));
    }
    comparedAccounts++;
  }
}

/** eth_call on both sides at the latest state: same status and return (or revert) data. */
async function compareCall(to: Hex, data: Hex, from: Hex = addressOf(alice)): Promise<Hex> {
  const mine = await core.call(
    parent.vmRoots,
    {
      chainId: CHAIN_ID,
      height: Number(await anvil.rpc<Hex>("eth_blockNumber", [])) + 1,
      timestampMs: Date.now(),
      coinbase: COINBASE,
      gasLimit: GAS_LIMIT,
      baseFeePerGas: BASE_FEE,
      prevRandao: ZERO32,
    },
    { from, to, data },
  );
  let theirs: { ok: boolean; data: Hex };
  try {
    theirs = { ok: true, data: await anvil.rpc<Hex>("eth_call", [{ from, to, data }, "latest"]) };
  } catch (error) {
    if (!(error instanceof RpcError)) throw error;
    theirs = { ok: false, data: (error.data ?? "0x") as Hex };
  }
  expect({ ok: mine.status === 1, data: mine.returnData }).toEqual(theirs);
  return mine.returnData;
}

beforeAll(async () => {
  c = contracts();
  anvil = await Anvil.start({ chainId: CHAIN_ID, baseFee: BASE_FEE, gasLimit: GAS_LIMIT });
  await anvil.rpc("anvil_setCoinbase", [COINBASE]);
  blockHashes.set(0, (await anvil.rpc<AnvilBlock>("eth_getBlockByNumber", ["0x0", false])).hash);
  for (const u of users) await anvil.rpc("anvil_setBalance", [u.address, `0x${FUNDS.toString(16)}`]);
  store = await TestDb.open();
  core = await ExecutionCore.create({
    chainId: CHAIN_ID,
    db: store.reader,
    alloc: users.map((u) => ({ address: addressOf(u), balance: FUNDS })),
  });
  const g = await core.genesisStateRoot();
  await store.commit(g.writes);
  parent = g;
  await compareState();
});

afterAll(async () => {
  await anvil?.stop();
  await store?.destroy();
});

describe("differential: execution core vs anvil (Prague)", () => {
  let token: Hex;
  let reverter: Hex;
  let probe: Hex;

  it("value transfers of every type, to new and existing accounts, with and without tips", async () => {
    await block([
      await sign(alice, { type: "legacy", to: FRESH, value: 10n ** 15n }),
      await sign(bob, {
        type: "eip2930",
        to: alice.address,
        value: 7n,
        gas: 30_000n,
        accessList: [{ address: FRESH, storageKeys: [ZERO32, `0x${"00".repeat(31)}01`] }],
      }),
      await sign(carol, { to: dave.address, value: 12_345n, maxPriorityFeePerGas: 0n }),
      await sign(dave, {
        to: dave.address,
        value: 1n,
        maxFeePerGas: 2n * BASE_FEE,
        maxPriorityFeePerGas: (3n * BASE_FEE) / 2n,
      }),
    ]);
    await block([
      await sign(alice, { to: bob.address, value: ETHER, maxPriorityFeePerGas: 1n }),
      await sign(bob, { type: "legacy", to: COINBASE, value: 5n }), // the coinbase is paid and tipped
    ]);
  });

  it("deploys an ERC-20, a reverter and a probe contract", async () => {
    token = getContractAddress({
      from: alice.address,
      nonce: BigInt(nonces.get(alice.address) ?? 0),
    }).toLowerCase() as Hex;
    await block([
      await sign(alice, {
        data: encodeDeployData({ abi: c.Token.abi, bytecode: c.Token.bytecode, args: [10n ** 24n] }),
        gas: 2_000_000n,
      }),
    ]);
    reverter = getContractAddress({
      from: bob.address,
      nonce: BigInt(nonces.get(bob.address) ?? 0),
    }).toLowerCase() as Hex;
    probe = getContractAddress({
      from: carol.address,
      nonce: BigInt(nonces.get(carol.address) ?? 0),
    }).toLowerCase() as Hex;
    const result = await block([
      await sign(bob, { data: c.Reverter.bytecode, gas: 1_000_000n }),
      await sign(carol, { data: c.Probe.bytecode, gas: 3_000_000n }),
    ]);
    expect(result.receipts.map((r) => r.contractAddress)).toEqual([reverter, probe]);
    // Probe's fixed slots (calls, lastChild, envHash) and the mapping entries the test writes (slots[1], [10..39]).
    const mapping = (k: bigint) => toHex(keccak256(concatBytes(uintBytes(k, 32), uintBytes(0n, 32))));
    slotsOf.set(probe, new Set([1n, 2n, 3n].map((i) => toHex(uintBytes(i, 32)))));
    for (const k of [1n, ...Array.from({ length: 30 }, (_, i) => 10n + BigInt(i))]) slotsOf.get(probe)?.add(mapping(k));
  });

  it("ERC-20 transfer, approve, transferFrom and a reverted transfer", async () => {
    const result = await block([
      await sign(alice, { to: token, data: call(c.Token.abi, "transfer", [bob.address, 1000n]), gas: 100_000n }),
      await sign(bob, { to: token, data: call(c.Token.abi, "approve", [carol.address, 500n]), gas: 100_000n }),
      await sign(carol, {
        to: token,
        data: call(c.Token.abi, "transferFrom", [bob.address, dave.address, 300n]),
        gas: 100_000n,
      }),
      await sign(carol, {
        to: token,
        data: call(c.Token.abi, "transferFrom", [bob.address, dave.address, 300n]),
        gas: 100_000n,
      }),
    ]);
    expect(result.receipts.map((r) => r.status)).toEqual([1, 1, 1, 0]);
    expect(result.receipts[3]?.revertReason).toBe("allowance exceeded");
    // Access lists change gas (warm slots); legacy transactions call contracts too.
    const balanceSlot = (holder: Hex) =>
      toHex(keccak256(concatBytes(uintBytes(BigInt(holder), 32), uintBytes(1n, 32))));
    const warm = await block([
      await sign(alice, {
        type: "eip2930",
        to: token,
        data: call(c.Token.abi, "transfer", [carol.address, 5n]),
        gas: 100_000n,
        accessList: [{ address: token, storageKeys: [balanceSlot(addressOf(alice)), balanceSlot(addressOf(carol))] }],
      }),
      await sign(alice, {
        type: "legacy",
        to: token,
        data: call(c.Token.abi, "transfer", [carol.address, 6n]),
        gas: 100_000n,
      }),
    ]);
    expect(warm.receipts.map((r) => r.status)).toEqual([1, 1]);
    const failed = await block([
      await sign(dave, { to: token, data: call(c.Token.abi, "transfer", [alice.address, 301n]), gas: 100_000n }),
    ]);
    expect(failed.receipts[0]?.revertReason).toBe("balance too low");
    for (const holder of [alice, bob, carol, dave]) {
      await compareCall(token, call(c.Token.abi, "balanceOf", [holder.address]));
    }
    await compareCall(token, call(c.Token.abi, "allowance", [bob.address, carol.address]));
    // The revert data of a failing call is the same on both sides.
    const data = await compareCall(token, call(c.Token.abi, "transfer", [alice.address, 10n ** 30n]), addressOf(dave));
    expect(data.startsWith("0x08c379a0")).toBe(true);
  });

  it("reverts with reasons, panics, custom errors, out of gas, and heavy computation", async () => {
    const result = await block([
      await sign(alice, { to: reverter, data: call(c.Reverter.abi, "fail", ["boom"]), gas: 100_000n }),
      await sign(alice, { to: reverter, data: call(c.Reverter.abi, "panic", [0n]), gas: 100_000n }),
      await sign(alice, { to: reverter, data: call(c.Reverter.abi, "custom"), gas: 100_000n }),
      await sign(alice, { to: reverter, data: call(c.Reverter.abi, "burn", [5000n]), gas: 80_000n }),
      await sign(alice, { to: reverter, data: call(c.Reverter.abi, "burn", [300n]), gas: 500_000n }),
    ]);
    expect(result.receipts.map((r) => [r.status, r.revertReason])).toEqual([
      [0, "boom"],
      [0, "Panic(0x12)"],
      [0, null],
      [0, null],
      [1, null],
    ]);
    await compareCall(reverter, call(c.Reverter.abi, "touched"));
    await compareCall(reverter, call(c.Reverter.abi, "custom"));
    await compareCall(reverter, call(c.Reverter.abi, "panic", [0n]));
  });

  it("storage writes and refunds, logs with value, CREATE2, selfdestruct in the creating transaction, nested calls", async () => {
    await block([
      await sign(alice, { to: probe, data: call(c.Probe.abi, "set", [1n, 42n]), gas: 100_000n }),
      await sign(bob, { to: probe, data: call(c.Probe.abi, "setMany", [10n, 30n, 7n]), gas: 1_000_000n }),
      await sign(carol, {
        to: probe,
        value: 1234n,
        data: call(c.Probe.abi, "ping", [5n, `0x${"ab".repeat(32)}`, "0x1234"]),
        gas: 100_000n,
      }),
      await sign(dave, { to: probe, data: call(c.Probe.abi, "recordEnv"), gas: 100_000n }),
      await sign(dave, { to: probe, value: 99n, gas: 50_000n }), // receive()
    ]);
    const salt = toHex(keccak256(utf8("salt"))) as ViemHex;
    const result = await block([
      await sign(alice, { to: probe, data: call(c.Probe.abi, "clear", [1n]), gas: 100_000n }),
      await sign(alice, { to: probe, data: call(c.Probe.abi, "clear", [12n]), gas: 100_000n }),
      await sign(bob, { to: probe, value: 10n, data: call(c.Probe.abi, "spawn", [99n, salt]), gas: 500_000n }),
      await sign(carol, {
        to: probe,
        value: 5n,
        data: call(c.Probe.abi, "spawnAndKill", [1n, dave.address]),
        gas: 500_000n,
      }),
      await sign(dave, { to: probe, value: 100n, data: call(c.Probe.abi, "forward", [FRESH, 60n]), gas: 100_000n }),
      await sign(dave, { to: probe, data: call(c.Probe.abi, "tryFail", [reverter, "nested"]), gas: 200_000n }),
      // Same init code and salt again: the CREATE2 address is taken, the creation fails and the call reverts.
      await sign(bob, { to: probe, data: call(c.Probe.abi, "spawn", [99n, salt]), gas: 500_000n }),
    ]);
    expect(result.receipts.map((r) => r.status)).toEqual([1, 1, 1, 1, 1, 1, 0]);
    const child = (await compareCall(probe, call(c.Probe.abi, "lastChild"))).replace(/^0x0{24}/, "0x") as Hex;
    tracked.add(child);
    // The child created and destroyed in one transaction: probe's nonce 2 (1 was the CREATE2 child).
    tracked.add(getContractAddress({ from: probe as ViemHex, nonce: 2n }).toLowerCase() as Hex);
    await compareState();
    await compareCall(probe, call(c.Probe.abi, "envHash"));
    await compareCall(probe, call(c.Probe.abi, "slots", [11n]));
  });

  it("calldata floor (EIP-7623), failed creations, precompile calls, an empty block", async () => {
    await block([
      await sign(alice, { to: FRESH, data: `0x${"5a".repeat(2000)}`, gas: 120_000n }),
      await sign(bob, { data: "0x60006000fd", gas: 100_000n }), // init code reverts
      await sign(carol, { data: "0x5b600056", gas: 80_000n }), // init code loops until out of gas
      await sign(dave, { to: SHA256_PRECOMPILE, data: "0x616263", value: 3n, gas: 50_000n }),
      await sign(alice, { to: FRESH, data: `0x${"00".repeat(500)}01`, gas: 60_000n }),
    ]);
    const empty = await block([]);
    expect(empty.gasUsed).toBe(0n);
  });

  it("a block of 40 mixed transactions from all senders", async () => {
    const raws: Hex[] = [];
    // Carol's one large transfer exceeds her balance and reverts in the middle of the block.
    const amount = (i: number, k: number) => (i === 4 && k === 2 ? 10n ** 20n : BigInt(i));
    for (let i = 0; i < 10; i++) {
      for (const [k, u] of users.entries()) {
        const to = (users[(k + 1 + i) % users.length] as PrivateKeyAccount).address;
        raws.push(
          i % 2 === 0
            ? await sign(u, { to: token, data: call(c.Token.abi, "transfer", [to, amount(i, k)]), gas: 100_000n })
            : await sign(u, { type: i % 3 === 0 ? "legacy" : "eip1559", to, value: BigInt(i * 1000 + k) }),
        );
      }
    }
    const result = await block(raws);
    expect(result.receipts.length).toBe(40);
    const statuses = result.receipts.map((r) => r.status);
    expect(statuses.filter((s) => s === 0).length).toBe(1);
    expect(comparedReceipts).toBeGreaterThan(70);
    expect(comparedAccounts).toBeGreaterThan(100);
    // The supply: core balances = anvil balances + what anvil burned and the core pooled.
    const reader = core.reader(parent.vmRoots);
    const pool = (await reader.getAccount(REWARD_POOL_ADDRESS))?.balance ?? 0n;
    expect(pool).toBe(poolCredit);
    expect(pool).toBeGreaterThan(0n);
  });
});
