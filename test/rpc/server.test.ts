// The JSON-RPC server driven by viem's public client over HTTP on 127.0.0.1, against a backend whose blocks,
// receipts and state come from real transactions executed by the ethereumjs VM (fixture.ts).
import {
  type Abi,
  BlockNotFoundError,
  createPublicClient,
  decodeFunctionResult,
  encodeAbiParameters,
  encodeEventTopics,
  encodeFunctionData,
  http,
  type PublicClient,
  parseAbiItem,
  parseEventLogs,
  TransactionNotFoundError,
  TransactionReceiptNotFoundError,
  keccak256 as viemKeccak,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { bloomMayContain } from "../../src/rpc/bloom.ts";
import { type RpcServer, startRpcServer } from "../../src/rpc/server.ts";
import {
  alice,
  BLOCK_INTERVAL_MS,
  bob,
  buildChain,
  CHAIN_ID,
  type ChainFixture,
  carol,
  ETHER,
  GAS_LIMIT,
  GENESIS_TIMESTAMP_MS,
  GWEI,
  nextBaseFeeOf,
  PROPOSER,
} from "./fixture.ts";

let fx: ChainFixture;
let server: RpcServer;
let client: PublicClient;

async function rpc(
  method: string,
  params: unknown[] = [],
): Promise<{ result?: unknown; error?: { code: number; message: string; data?: unknown } }> {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return (await response.json()) as { result?: unknown; error?: { code: number; message: string } };
}

beforeAll(async () => {
  fx = await buildChain();
  server = await startRpcServer({ host: "127.0.0.1", port: 0, maxLogRange: 10 }, fx.backend);
  client = createPublicClient({ transport: http(server.url, { retryCount: 0 }) });
});

afterAll(async () => {
  await server?.close();
});

describe("chain and fee queries", () => {
  it("answers identity and head queries", async () => {
    expect(await client.getChainId()).toBe(Number(CHAIN_ID));
    expect(await client.getBlockNumber({ cacheTime: 0 })).toBe(12n);
    expect((await rpc("web3_clientVersion")).result).toBe("lumia-dcn/rpc-test");
    expect((await rpc("net_version")).result).toBe("424242");
    expect((await rpc("eth_syncing")).result).toBe(false);
    // A node catching up says how far it is (SyncManager.progress).
    const backend = fx.backend as { syncing?: () => unknown };
    backend.syncing = () => ({ startingBlock: 3, currentBlock: 7, highestBlock: 90 });
    expect((await rpc("eth_syncing")).result).toEqual({
      startingBlock: "0x3",
      currentBlock: "0x7",
      highestBlock: "0x5a",
    });
    backend.syncing = () => null;
    expect((await rpc("eth_syncing")).result).toBe(false);
    delete backend.syncing;
  });

  it("suggests fees from the next base fee plus a 1 gwei tip", async () => {
    const next = nextBaseFeeOf(fx.backend.headHeader());
    expect(await client.getGasPrice()).toBe(next + GWEI);
    expect(await client.estimateMaxPriorityFeePerGas()).toBe(GWEI);
    expect((await rpc("eth_maxPriorityFeePerGas")).result).toBe("0x3b9aca00");
  });

  it("reports fee history from stored headers and receipts", async () => {
    const history = await client.getFeeHistory({ blockCount: 3, blockNumber: 3n, rewardPercentiles: [0, 50, 100] });
    expect(history.oldestBlock).toBe(1n);
    const headers = await Promise.all([1, 2, 3, 4].map(async (h) => (await fx.backend.blockByHeight(h))?.block.header));
    expect(history.baseFeePerGas).toEqual(headers.map((h) => h?.baseFeePerGas));
    expect(history.gasUsedRatio).toEqual(headers.slice(0, 3).map((h) => Number(h?.gasUsed) / Number(GAS_LIMIT)));
    // Block 2: legacy and EIP-2930 pay 5 gwei flat, the EIP-1559 one base + 2 gwei; rewards are price - base fee.
    const base2 = headers[1]?.baseFeePerGas ?? 0n;
    expect(history.reward?.[1]).toEqual([2n * GWEI, 5n * GWEI - base2, 5n * GWEI - base2]);
    // Block 1 holds only EIP-1559 transactions with a 2 gwei tip.
    expect(history.reward?.[0]).toEqual([2n * GWEI, 2n * GWEI, 2n * GWEI]);

    const latest = await client.getFeeHistory({ blockCount: 2, blockTag: "latest", rewardPercentiles: [] });
    expect(latest.oldestBlock).toBe(11n);
    expect(latest.baseFeePerGas.at(-1)).toBe(fx.backend.nextBaseFee());
    expect(latest.reward).toBeUndefined();
  });
});

describe("blocks", () => {
  it("returns Ethereum-shaped blocks by number, tag and hash", async () => {
    const stored = await fx.backend.blockByHeight(2);
    const block = await client.getBlock({ blockNumber: 2n });
    expect(block.hash).toBe(stored?.hash);
    expect(block.number).toBe(2n);
    expect(block.parentHash).toBe((await fx.backend.blockByHeight(1))?.hash);
    expect(block.timestamp).toBe(BigInt(Math.floor((GENESIS_TIMESTAMP_MS + 2 * BLOCK_INTERVAL_MS) / 1000)));
    expect(block.miner).toBe(PROPOSER);
    expect(block.gasLimit).toBe(GAS_LIMIT);
    expect(block.gasUsed).toBe(stored?.block.header.gasUsed);
    expect(block.baseFeePerGas).toBe(stored?.block.header.baseFeePerGas);
    expect(block.stateRoot).toBe(stored?.block.header.stateRoot);
    expect(block.logsBloom).toBe(stored?.block.header.logsBloom);
    expect(block.transactions).toEqual([fx.txs.pingBob, fx.txs.pingAlice, fx.txs.failing]);
    expect(block.sha3Uncles).toBe("0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347");
    expect(block.nonce).toBe("0x0000000000000000");
    expect(block.difficulty).toBe(0n);
    expect(block.uncles).toEqual([]);
    expect(block.size).toBeGreaterThan(0n);

    expect((await client.getBlock({ blockHash: stored?.hash as Hex })).number).toBe(2n);
    expect((await client.getBlock({ blockTag: "latest" })).number).toBe(12n);
    expect((await client.getBlock({ blockTag: "safe" })).number).toBe(12n);
    expect((await client.getBlock({ blockTag: "finalized" })).number).toBe(0n);
    expect((await client.getBlock({ blockTag: "earliest" })).number).toBe(0n);
    expect((await client.getBlock({ blockTag: "pending" })).number).toBe(12n);
    expect(await client.getBlockTransactionCount({ blockNumber: 2n })).toBe(3);
  });

  it("returns full transaction objects of every type", async () => {
    const block = await client.getBlock({ blockNumber: 2n, includeTransactions: true });
    const [legacy, accessList, feeMarket] = block.transactions;
    expect(legacy?.type).toBe("legacy");
    expect(legacy?.from).toBe(bob.address.toLowerCase());
    expect(legacy?.to).toBe(fx.probe);
    expect(legacy?.gasPrice).toBe(5n * GWEI);
    expect(legacy?.chainId).toBe(Number(CHAIN_ID));
    expect(legacy?.v).toBeGreaterThanOrEqual(CHAIN_ID * 2n + 35n);
    expect(accessList?.type).toBe("eip2930");
    expect(accessList?.accessList).toEqual([{ address: fx.probe, storageKeys: [`0x${"00".repeat(32)}`] }]);
    expect(accessList?.transactionIndex).toBe(1);
    expect(feeMarket?.type).toBe("eip1559");
    expect(feeMarket?.maxFeePerGas).toBe(10n * GWEI);
    expect(feeMarket?.maxPriorityFeePerGas).toBe(2n * GWEI);
    expect(feeMarket?.gasPrice).toBe((block.baseFeePerGas ?? 0n) + 2n * GWEI);
    expect(feeMarket?.blockHash).toBe(block.hash);
    expect(feeMarket?.nonce).toBe(3);
  });

  it("answers null for blocks that do not exist", async () => {
    await expect(client.getBlock({ blockNumber: 13n })).rejects.toBeInstanceOf(BlockNotFoundError);
    expect((await rpc("eth_getBlockByNumber", ["0xffffffffffffffffffff", false])).result).toBeNull();
    expect((await rpc("eth_getBlockByHash", [`0x${"ab".repeat(32)}`, false])).result).toBeNull();
    expect((await rpc("eth_getBlockTransactionCountByNumber", ["0x64"])).result).toBeNull();
  });
});

describe("state", () => {
  it("reads balances, nonces, code and storage at any committed height", async () => {
    expect(await client.getBalance({ address: carol.address })).toBe(100n * ETHER);
    expect(await client.getBalance({ address: bob.address, blockNumber: 0n })).toBe(100n * ETHER);
    const bobNow = await client.getBalance({ address: bob.address });
    expect(bobNow).toBeGreaterThan(100n * ETHER);
    expect(bobNow).toBeLessThan(101n * ETHER);
    expect(await client.getBalance({ address: bob.address, blockTag: "finalized" })).toBe(100n * ETHER);
    expect(await client.getBalance({ address: `0x${"99".repeat(20)}` })).toBe(0n);

    expect(await client.getTransactionCount({ address: alice.address })).toBe(5);
    expect(await client.getTransactionCount({ address: alice.address, blockNumber: 1n })).toBe(2);

    expect(await client.getCode({ address: fx.probe, blockNumber: 0n })).toBeUndefined();
    const code = await client.getCode({ address: fx.probe });
    expect(code?.length).toBeGreaterThan(100);

    // slots[1] = 2: the mapping value lives at keccak256(key . slot 0).
    const slot = viemKeccak(encodeAbiParameters([{ type: "uint256" }, { type: "uint256" }], [1n, 0n]));
    expect(await client.getStorageAt({ address: fx.probe, slot })).toBe(`0x${"2".padStart(64, "0")}`);
    expect(await client.getStorageAt({ address: fx.probe, slot, blockNumber: 2n })).toBe(`0x${"0".repeat(64)}`);
  });

  it("accepts EIP-1898 block objects and refuses unknown blocks for state reads", async () => {
    const one = await fx.backend.blockByHeight(1);
    const byHash = await rpc("eth_getTransactionCount", [alice.address, { blockHash: one?.hash }]);
    expect(byHash.result).toBe("0x2");
    const byNumber = await rpc("eth_getBalance", [carol.address, { blockNumber: "0x1" }]);
    expect(byNumber.result).toBe(`0x${(100n * ETHER).toString(16)}`);
    const future = await rpc("eth_getBalance", [carol.address, "0x64"]);
    expect(future.error?.code).toBe(-32000);
    expect(future.error?.message).toMatch(/header not found/);
    const unknownHash = await rpc("eth_getBalance", [carol.address, { blockHash: `0x${"cd".repeat(32)}` }]);
    expect(unknownHash.error?.message).toMatch(/not found/);
  });
});

describe("transactions and receipts", () => {
  it("returns committed transactions and Ethereum-shaped receipts", async () => {
    const tx = await client.getTransaction({ hash: fx.txs.transfer });
    expect(tx.blockNumber).toBe(1n);
    expect(tx.transactionIndex).toBe(1);
    expect(tx.value).toBe(ETHER);
    expect(tx.to).toBe(bob.address.toLowerCase());

    const deploy = await client.getTransactionReceipt({ hash: fx.txs.deploy });
    expect(deploy.status).toBe("success");
    expect(deploy.contractAddress).toBe(fx.probe);
    expect(deploy.to).toBeNull();
    expect(deploy.type).toBe("eip1559");

    const block2 = await client.getBlock({ blockNumber: 2n });
    const pingAlice = await client.getTransactionReceipt({ hash: fx.txs.pingAlice });
    expect(pingAlice.blockHash).toBe(block2.hash);
    expect(pingAlice.transactionIndex).toBe(1);
    expect(pingAlice.type).toBe("eip2930");
    expect(pingAlice.effectiveGasPrice).toBe(5n * GWEI);
    expect(pingAlice.logs).toHaveLength(1);
    // logIndex counts across the block: bob's ping (index 0) emitted log 0.
    expect(pingAlice.logs[0]?.logIndex).toBe(1);
    expect(pingAlice.logs[0]?.transactionIndex).toBe(1);
    expect(pingAlice.logs[0]?.blockNumber).toBe(2n);
    const [event] = parseEventLogs({ abi: fx.abi, logs: pingAlice.logs });
    expect(event?.eventName).toBe("Ping");
    expect(event?.args).toEqual({ from: alice.address, n: 8n, data: "0x" });
    const bloom = fromHex(pingAlice.logsBloom);
    expect(bloomMayContain(bloom, fromHex(fx.probe))).toBe(true);
    expect(bloomMayContain(bloom, fromHex(bob.address))).toBe(false);

    const failing = await client.getTransactionReceipt({ hash: fx.txs.failing });
    expect(failing.status).toBe("reverted");
    expect(failing.cumulativeGasUsed).toBe(block2.gasUsed);
    expect(failing.logsBloom).toBe(`0x${"00".repeat(256)}`);
  });

  it("returns a block's receipts and its transactions by position, as the single lookups do", async () => {
    const block2 = await client.getBlock({ blockNumber: 2n });
    const receipts = (await rpc("eth_getBlockReceipts", ["0x2"])).result as Record<string, unknown>[];
    expect(receipts).toHaveLength(block2.transactions.length);
    for (const [i, hash] of block2.transactions.entries()) {
      expect(receipts[i]).toEqual((await rpc("eth_getTransactionReceipt", [hash])).result);
      const single = (await rpc("eth_getTransactionByHash", [hash])).result;
      expect(await rpc("eth_getTransactionByBlockNumberAndIndex", ["0x2", `0x${i.toString(16)}`])).toMatchObject({
        result: single,
      });
      expect(await rpc("eth_getTransactionByBlockHashAndIndex", [block2.hash, `0x${i.toString(16)}`])).toMatchObject({
        result: single,
      });
    }
    expect((await client.getTransaction({ blockNumber: 2n, index: 1 })).hash).toBe(fx.txs.pingAlice);
    expect((await client.getTransaction({ blockHash: block2.hash, index: 1 })).hash).toBe(fx.txs.pingAlice);
    expect((await rpc("eth_getBlockReceipts", [{ blockHash: block2.hash }])).result).toEqual(receipts);
    expect((await rpc("eth_getBlockReceipts", ["0x0"])).result).toEqual([]);
    expect((await rpc("eth_getBlockReceipts", ["0x64"])).result).toBeNull();
    expect((await rpc("eth_getTransactionByBlockNumberAndIndex", ["0x2", "0x64"])).result).toBeNull();
    expect((await rpc("eth_getTransactionByBlockNumberAndIndex", ["0x64", "0x0"])).result).toBeNull();
    expect((await rpc("eth_getTransactionByBlockHashAndIndex", [`0x${"ee".repeat(32)}`, "0x0"])).result).toBeNull();
    expect((await rpc("eth_getTransactionByBlockNumberAndIndex", ["0x2", "zero"])).error?.code).toBe(-32602);
  });

  it("answers the uncle, peer and hashing methods of a chain without proof of work", async () => {
    const block2 = await client.getBlock({ blockNumber: 2n });
    expect((await rpc("eth_getUncleCountByBlockNumber", ["0x2"])).result).toBe("0x0");
    expect((await rpc("eth_getUncleCountByBlockHash", [block2.hash])).result).toBe("0x0");
    expect((await rpc("eth_getUncleCountByBlockNumber", ["0x64"])).result).toBeNull();
    expect((await rpc("eth_getUncleByBlockNumberAndIndex", ["0x2", "0x0"])).result).toBeNull();
    expect((await rpc("eth_getUncleByBlockHashAndIndex", [block2.hash, "0x0"])).result).toBeNull();
    expect((await rpc("net_peerCount")).result).toBe("0x0");
    expect((await rpc("web3_sha3", ["0x68656c6c6f"])).result).toBe(viemKeccak("0x68656c6c6f"));
    expect((await rpc("web3_sha3", ["0x123"])).error?.code).toBe(-32602);
  });

  it("answers null / not found for unknown hashes", async () => {
    const unknown: Hex = `0x${"ee".repeat(32)}`;
    await expect(client.getTransactionReceipt({ hash: unknown })).rejects.toBeInstanceOf(
      TransactionReceiptNotFoundError,
    );
    await expect(client.getTransaction({ hash: unknown })).rejects.toBeInstanceOf(TransactionNotFoundError);
  });

  it("accepts raw transactions, shows them pending, and refuses replays with geth's messages", async () => {
    const raw = await carol.signTransaction({
      chainId: Number(CHAIN_ID),
      type: "eip1559",
      nonce: 0,
      to: bob.address,
      value: 5n,
      gas: 21_000n,
      maxFeePerGas: 10n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    const hash = await client.sendRawTransaction({ serializedTransaction: raw });
    const pending = await client.getTransaction({ hash });
    expect(pending.blockHash).toBeNull();
    expect(pending.blockNumber).toBeNull();
    expect(pending.from).toBe(carol.address.toLowerCase());
    expect(pending.value).toBe(5n);
    expect(await client.getTransactionCount({ address: carol.address, blockTag: "pending" })).toBe(1);
    expect(await client.getTransactionCount({ address: carol.address, blockTag: "latest" })).toBe(0);

    const again = await rpc("eth_sendRawTransaction", [raw]);
    expect(again.error).toEqual({ code: -32000, message: "already known" });

    const stale = await alice.signTransaction({
      chainId: Number(CHAIN_ID),
      type: "eip1559",
      nonce: 1,
      to: bob.address,
      gas: 21_000n,
      maxFeePerGas: 10n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    const low = await rpc("eth_sendRawTransaction", [stale]);
    expect(low.error?.code).toBe(-32000);
    expect(low.error?.message).toMatch(/^nonce too low/);
    await expect(client.sendRawTransaction({ serializedTransaction: stale })).rejects.toThrow(/nonce too low/);

    const garbage = await rpc("eth_sendRawTransaction", ["0x02c0"]);
    expect(garbage.error?.code).toBe(-32000);
    expect(garbage.error?.message).toMatch(/^invalid transaction/);
  });
});

describe("logs", () => {
  function pingTopics(abi: Abi, args: { from?: Hex; n?: bigint }) {
    return encodeEventTopics({ abi, eventName: "Ping", args } as Parameters<typeof encodeEventTopics>[0]);
  }

  it("filters by address, topics with wildcards and OR-lists, and block hash", async () => {
    const all = await client.getLogs({ address: fx.probe, fromBlock: 0n, toBlock: 9n });
    expect(all.map((l) => [l.blockNumber, l.logIndex, l.transactionHash])).toEqual([
      [2n, 0, fx.txs.pingBob],
      [2n, 1, fx.txs.pingAlice],
    ]);

    const [signature] = pingTopics(fx.abi, {});
    const nTopic = (n: bigint) => encodeAbiParameters([{ type: "uint256" }], [n]);
    const byN = await rpc("eth_getLogs", [{ fromBlock: "0x0", toBlock: "0x9", topics: [signature, null, nTopic(8n)] }]);
    expect((byN.result as { transactionHash: Hex }[]).map((l) => l.transactionHash)).toEqual([fx.txs.pingAlice]);

    const either = await rpc("eth_getLogs", [
      { fromBlock: "0x0", toBlock: "0x9", topics: [null, null, [nTopic(7n), nTopic(8n)]] },
    ]);
    expect(either.result).toHaveLength(2);
    const none = await rpc("eth_getLogs", [{ fromBlock: "0x0", toBlock: "0x9", topics: [null, null, nTopic(9n)] }]);
    expect(none.result).toEqual([]);
    // More topic positions than the log has: no match (geth's rule).
    const tooMany = await rpc("eth_getLogs", [{ fromBlock: "0x0", toBlock: "0x9", topics: [null, null, null, null] }]);
    expect(tooMany.result).toEqual([]);

    const fromBob = await client.getLogs({
      event: parseAbiItem("event Ping(address indexed from, uint256 indexed n, bytes data)"),
      args: { from: bob.address },
      fromBlock: 0n,
      toBlock: 9n,
    });
    expect(fromBob).toHaveLength(1);

    const block2 = await client.getBlock({ blockNumber: 2n });
    const byHash = await client.getLogs({ blockHash: block2.hash });
    expect(byHash).toHaveLength(2);
    expect(byHash[0]?.blockHash).toBe(block2.hash);
    const wrongAddress = await client.getLogs({ blockHash: block2.hash, address: carol.address });
    expect(wrongAddress).toEqual([]);
  });

  it("reads receipts only of blocks whose bloom may match", async () => {
    fx.backend.receiptReads.length = 0;
    await client.getLogs({ address: fx.probe, fromBlock: 0n, toBlock: 9n });
    expect(fx.backend.receiptReads).toEqual([2]);
    fx.backend.receiptReads.length = 0;
    await client.getLogs({ fromBlock: 0n, toBlock: 9n });
    expect(fx.backend.receiptReads).toEqual([2]);
  });

  it("refuses ranges over the limit and inverted ranges", async () => {
    const wide = await rpc("eth_getLogs", [{ fromBlock: "0x0", toBlock: "latest" }]);
    expect(wide.error?.code).toBe(-32005);
    expect(wide.error?.message).toMatch(/block range too large: 13 blocks.*limit is 10/);
    await expect(client.getLogs({ fromBlock: 0n, toBlock: 12n })).rejects.toThrow(/block range too large/);
    const inverted = await rpc("eth_getLogs", [{ fromBlock: "0x5", toBlock: "0x2" }]);
    expect(inverted.error?.code).toBe(-32602);
    const beyond = await rpc("eth_getLogs", [{ fromBlock: "0x64", toBlock: "0x70" }]);
    expect(beyond.result).toEqual([]);
    const both = await rpc("eth_getLogs", [{ fromBlock: "0x1", blockHash: `0x${"00".repeat(32)}` }]);
    expect(both.error?.code).toBe(-32602);
  });
});

describe("eth_call and eth_estimateGas", () => {
  it("calls contracts at the head and at past heights", async () => {
    const data = encodeFunctionData({ abi: fx.abi, functionName: "answer" });
    const result = await client.call({ to: fx.probe, data });
    expect(decodeFunctionResult({ abi: fx.abi, functionName: "answer", data: result.data ?? "0x" })).toBe(42n);
    const value = await client.readContract({ address: fx.probe, abi: fx.abi, functionName: "slots", args: [2n] });
    expect(value).toBe(3n);
    const before = await client.readContract({
      address: fx.probe,
      abi: fx.abi,
      functionName: "slots",
      args: [2n],
      blockNumber: 2n,
    });
    expect(before).toBe(0n);
    // Before the deployment the address has no code: the call succeeds with empty output.
    expect((await rpc("eth_call", [{ to: fx.probe, data }, "0x0"])).result).toBe("0x");
  });

  it("reports reverts as error 3 with the revert data and reason", async () => {
    const data = encodeFunctionData({ abi: fx.abi, functionName: "fail", args: ["nope"] });
    const raw = await rpc("eth_call", [{ to: fx.probe, data }, "latest"]);
    expect(raw.error?.code).toBe(3);
    expect(raw.error?.message).toBe("execution reverted: nope");
    expect(raw.error?.data).toBe(`0x08c379a0${encodeAbiParameters([{ type: "string" }], ["nope"]).slice(2)}`);
    await expect(
      client.simulateContract({ address: fx.probe, abi: fx.abi, functionName: "fail", args: ["nope"] }),
    ).rejects.toThrow(/reverted with the following reason:\s+nope/);
    const estimate = await rpc("eth_estimateGas", [{ from: alice.address, to: fx.probe, data }]);
    expect(estimate.error?.code).toBe(3);
    expect(estimate.error?.message).toBe("execution reverted: nope");
  });

  it("estimates the gas a call needs, to within geth's 1.5%", async () => {
    expect(await client.estimateGas({ account: alice.address, to: bob.address, value: 1n })).toBe(21_000n);
    const data = encodeFunctionData({ abi: fx.abi, functionName: "fill", args: [6n] });
    const estimate = await client.estimateGas({ account: carol.address, to: fx.probe, data });
    const head = fx.backend.headHeight();
    const enough = await fx.backend.call(head, { from: carol.address, to: fx.probe, data, gas: estimate });
    expect(enough.status).toBe(1);
    const short = (estimate * 985n) / 1000n - 1n;
    const tooLittle = await fx.backend.call(head, { from: carol.address, to: fx.probe, data, gas: short });
    expect(tooLittle.status).toBe(0);
    // slots[3..5] are fresh (20k each on top of the transaction's 21k): the estimate covers real execution.
    expect(estimate).toBeGreaterThan(21_000n + 3n * 20_000n);
  });

  it("caps the estimate by what the sender can pay", async () => {
    const poor = "0x00000000000000000000000000000000000000b0";
    const data = encodeFunctionData({ abi: fx.abi, functionName: "fill", args: [6n] });
    const answer = await rpc("eth_estimateGas", [{ from: poor, to: fx.probe, data, gasPrice: "0x3b9aca00" }]);
    expect(answer.error?.code).toBe(-32000);
    expect(answer.error?.message).toMatch(/gas required exceeds allowance \(0\)/);
  });
});
