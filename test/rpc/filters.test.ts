// Polling filters (eth_newFilter, eth_newBlockFilter, eth_newPendingTransactionFilter, eth_getFilterChanges,
// eth_getFilterLogs, eth_uninstallFilter) against the in-memory chain of fixture.ts: driven by viem's filter actions
// and by ethers' JsonRpcProvider with its default options (it follows contract events and pending transactions over
// HTTP with filters), checked against eth_getLogs and eth_getTransactionByHash, and their bounds (count, changes
// held, expiry).
import { Contract, JsonRpcProvider } from "ethers";
import { createPublicClient, http, type Log, type PrivateKeyAccount, type PublicClient, parseAbiItem } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Hex } from "../../consensus/bytes.ts";
import { type RpcServer, type RpcServerOptions, startRpcServer } from "../../src/rpc/server.ts";
import { alice, bob, buildChain, type ChainFixture, carol, signPing } from "./fixture.ts";

let fx: ChainFixture;
let server: RpcServer;
let client: PublicClient;
const servers: RpcServer[] = [];

type Answer = { result?: unknown; error?: { code: number; message: string } };

async function rpc(url: string, method: string, params: unknown[] = []): Promise<Answer> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return (await response.json()) as Answer;
}

async function result(url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const answer = await rpc(url, method, params);
  if (answer.error !== undefined) throw new Error(`${method}: ${answer.error.message}`);
  return answer.result;
}

async function start(opts: Partial<RpcServerOptions> = {}): Promise<RpcServer> {
  const s = await startRpcServer({ host: "127.0.0.1", port: 0, ...opts }, fx.backend);
  servers.push(s);
  return s;
}

const ping = (account: PrivateKeyAccount, n: bigint) => signPing(fx, account, n);

const hexHeight = (n: number) => `0x${n.toString(16)}`;

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  fx = await buildChain();
  server = await start();
  client = createPublicClient({ transport: http(server.url, { retryCount: 0 }) });
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe("filters", () => {
  it("return the logs, blocks and pending transactions that arrived since the last poll (viem)", async () => {
    const pingEvent = parseAbiItem("event Ping(address indexed from, uint256 indexed n, bytes data)");
    const allPings = await client.createEventFilter({ address: fx.probe, event: pingEvent });
    const fromBob = await client.createEventFilter({
      address: fx.probe,
      event: pingEvent,
      args: { from: bob.address },
    });
    const elsewhere = await client.createEventFilter({ address: carol.address });
    const blocks = await client.createBlockFilter();
    const pending = await client.createPendingTransactionFilter();
    expect(allPings.id).toMatch(/^0x[0-9a-f]{32}$/);
    expect(await client.getFilterChanges({ filter: allPings })).toEqual([]);

    const first = fx.backend.headHeight() + 1;
    const raws = [await ping(alice, 31n), await ping(bob, 32n)];
    const hashes: Hex[] = [];
    for (const raw of raws) hashes.push((await result(server.url, "eth_sendRawTransaction", [raw])) as Hex);
    await fx.backend.commitBlock(raws);
    await fx.backend.commitBlock([await ping(bob, 33n)]);
    await fx.backend.commitBlock([]);

    const range = { fromBlock: hexHeight(first), toBlock: hexHeight(first + 2) };
    const logs = (await client.getFilterChanges({ filter: allPings })) as Log[];
    expect(logs.map((l) => [l.blockNumber, l.logIndex])).toEqual([
      [BigInt(first), 0],
      [BigInt(first), 1],
      [BigInt(first + 1), 0],
    ]);
    // The same objects eth_getLogs answers, field for field.
    const raw = await result(server.url, "eth_getLogs", [{ ...range, address: fx.probe }]);
    expect(logs.map((l) => l.transactionHash)).toEqual(
      (raw as { transactionHash: Hex }[]).map((l) => l.transactionHash),
    );
    expect((await client.getFilterChanges({ filter: fromBob })).map((l) => (l as Log).blockNumber)).toEqual([
      BigInt(first),
      BigInt(first + 1),
    ]);
    expect(await client.getFilterChanges({ filter: elsewhere })).toEqual([]);
    // Each change is given once.
    expect(await client.getFilterChanges({ filter: allPings })).toEqual([]);

    const blockHashes = await client.getFilterChanges({ filter: blocks });
    const expected: Hex[] = [];
    for (let h = first; h <= first + 2; h++) expected.push((await client.getBlock({ blockNumber: BigInt(h) })).hash);
    expect(blockHashes).toEqual(expected);
    expect(await client.getFilterChanges({ filter: pending })).toEqual(hashes);

    // eth_getFilterLogs reads the filter's whole range (here: from "latest" to "latest", the head).
    await fx.backend.commitBlock([await ping(carol, 34n)]);
    const head = fx.backend.headHeight();
    expect(await client.getFilterLogs({ filter: allPings })).toEqual(
      await client.getLogs({ address: fx.probe, event: pingEvent, fromBlock: BigInt(head), toBlock: BigInt(head) }),
    );

    for (const filter of [allPings, fromBob, elsewhere, blocks, pending]) {
      expect(await client.uninstallFilter({ filter })).toBe(true);
      expect(await client.uninstallFilter({ filter })).toBe(false);
    }
    const gone = await rpc(server.url, "eth_getFilterChanges", [allPings.id]);
    expect(gone.error).toEqual({ code: -32000, message: "filter not found" });
    // No filter left: the server no longer listens to commits or the pool.
    expect(fx.backend.committedListeners.size).toBe(0);
    expect(fx.backend.pendingListeners.size).toBe(0);
  });

  it("take the new logs of their block range only, and read the whole range with eth_getFilterLogs", async () => {
    const next = fx.backend.headHeight() + 1;
    const id = (await result(server.url, "eth_newFilter", [
      { fromBlock: hexHeight(next - 3), toBlock: hexHeight(next), address: fx.probe },
    ])) as Hex;
    await fx.backend.commitBlock([await ping(alice, 41n)]);
    await fx.backend.commitBlock([await ping(alice, 42n)]);
    const changes = (await result(server.url, "eth_getFilterChanges", [id])) as { blockNumber: Hex }[];
    expect(changes.map((l) => Number(l.blockNumber))).toEqual([next]);
    const logs = await result(server.url, "eth_getFilterLogs", [id]);
    expect(logs).toEqual(
      await result(server.url, "eth_getLogs", [
        { fromBlock: hexHeight(next - 3), toBlock: hexHeight(next), address: fx.probe },
      ]),
    );
    // A block filter has no logs to read (geth's answer).
    const blockFilter = (await result(server.url, "eth_newBlockFilter")) as Hex;
    expect((await rpc(server.url, "eth_getFilterLogs", [blockFilter])).error?.message).toBe("filter not found");
    await result(server.url, "eth_uninstallFilter", [id]);
    await result(server.url, "eth_uninstallFilter", [blockFilter]);
  });

  it("give whole pending transactions when asked, as eth_getTransactionByHash shows them", async () => {
    const id = (await result(server.url, "eth_newPendingTransactionFilter", [true])) as Hex;
    const raw = await ping(carol, 51n);
    const hash = (await result(server.url, "eth_sendRawTransaction", [raw])) as Hex;
    const [tx] = (await result(server.url, "eth_getFilterChanges", [id])) as Record<string, unknown>[];
    expect(tx).toEqual(await result(server.url, "eth_getTransactionByHash", [hash]));
    expect(tx?.hash).toBe(hash);
    await fx.backend.commitBlock([raw]);
    await result(server.url, "eth_uninstallFilter", [id]);
  });

  it("are the server's: made over HTTP, polled over WebSocket", async () => {
    const id = (await result(server.url, "eth_newBlockFilter")) as Hex;
    await fx.backend.commitBlock([]);
    const socket = new WebSocket(server.wsUrl);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const answer = new Promise<Answer>((resolve) => socket.once("message", (m) => resolve(JSON.parse(String(m)))));
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_getFilterChanges", params: [id.toUpperCase()] }));
    const head = await client.getBlock({ blockNumber: BigInt(fx.backend.headHeight()) });
    expect((await answer).result).toEqual([head.hash]);
    socket.terminate();
    await result(server.url, "eth_uninstallFilter", [id]);
  });

  it("refuse what geth refuses, with -32602", async () => {
    const bad: unknown[][] = [
      [{ blockHash: `0x${"00".repeat(32)}` }],
      [{ fromBlock: "pending" }],
      [{ fromBlock: "finalized", toBlock: "latest" }],
      [{ fromBlock: "latest", toBlock: "0x5" }],
      [{ fromBlock: "0x9", toBlock: "0x2" }],
      [{ address: "0x1234" }],
      ["latest"],
      [],
    ];
    for (const params of bad) {
      const answer = await rpc(server.url, "eth_newFilter", params);
      expect(answer.error?.code, JSON.stringify(params)).toBe(-32602);
    }
    expect((await rpc(server.url, "eth_newPendingTransactionFilter", ["yes"])).error?.code).toBe(-32602);
    expect((await rpc(server.url, "eth_getFilterChanges", ["x".repeat(200)])).error?.code).toBe(-32602);
    expect((await rpc(server.url, "eth_getFilterChanges", ["0x1234"])).error?.message).toBe("filter not found");
    expect((await rpc(server.url, "eth_uninstallFilter", ["0x1234"])).result).toBe(false);
  });
});

describe("filter bounds", () => {
  it("refuse a filter beyond maxFilters with -32005", async () => {
    const s = await start({ maxFilters: 2 });
    await result(s.url, "eth_newBlockFilter");
    const second = await result(s.url, "eth_newFilter", [{}]);
    const third = await rpc(s.url, "eth_newPendingTransactionFilter");
    expect(third.error?.code).toBe(-32005);
    expect(third.error?.message).toMatch(/2 filters are installed/);
    await result(s.url, "eth_uninstallFilter", [second]);
    expect(await result(s.url, "eth_newPendingTransactionFilter")).toMatch(/^0x[0-9a-f]{32}$/);
    await s.close();
  });

  it("remove a filter that falls more than maxFilterChanges behind, and one not polled in time", async () => {
    const s = await start({ maxFilterChanges: 2, filterTimeoutMs: 300 });
    const behind = (await result(s.url, "eth_newBlockFilter")) as Hex;
    const polled = (await result(s.url, "eth_newBlockFilter")) as Hex;
    await fx.backend.commitBlock([]);
    await fx.backend.commitBlock([]);
    expect(await result(s.url, "eth_getFilterChanges", [polled])).toHaveLength(2);
    await fx.backend.commitBlock([]);
    expect((await rpc(s.url, "eth_getFilterChanges", [behind])).error?.message).toBe("filter not found");
    expect(await result(s.url, "eth_getFilterChanges", [polled])).toHaveLength(1);

    const idle = (await result(s.url, "eth_newFilter", [{}])) as Hex;
    // Polled every 100 ms, `polled` outlives the timeout; `idle` does not.
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await result(s.url, "eth_getFilterChanges", [polled]);
    }
    expect((await rpc(s.url, "eth_getFilterChanges", [idle])).error?.message).toBe("filter not found");
    await result(s.url, "eth_uninstallFilter", [polled]);
    // Expired filters are swept even if no one polls them: the server stops listening to commits.
    await result(s.url, "eth_newBlockFilter");
    await waitUntil(() => fx.backend.committedListeners.size === 0, 5_000);
    await s.close();
  });
});

describe("ethers v6 over HTTP with its default options", () => {
  it("follows contract events and pending transactions with filters", async () => {
    const provider = new JsonRpcProvider(server.url, undefined, { staticNetwork: true });
    provider.pollingInterval = 50;
    try {
      const probe = new Contract(fx.probe, fx.abi as never, provider);
      const heard: { from: string; n: bigint; hash: string }[] = [];
      await probe.on("Ping", (from: string, n: bigint, _data: string, event: { log: { transactionHash: string } }) => {
        heard.push({ from, n, hash: event.log.transactionHash });
      });
      const pending: string[] = [];
      await provider.on("pending", (hash: string) => {
        pending.push(hash);
      });
      // ethers creates its filters on its first poll.
      await waitUntil(() => fx.backend.committedListeners.size > 0 && fx.backend.pendingListeners.size > 0, 5_000);

      const raw = await ping(bob, 61n);
      const hash = (await result(server.url, "eth_sendRawTransaction", [raw])) as Hex;
      await fx.backend.commitBlock([raw]);
      await waitUntil(() => heard.length >= 1 && pending.length >= 1, 10_000);
      // More blocks: ethers polls its filters on each new block; nothing is heard twice.
      await fx.backend.commitBlock([]);
      await fx.backend.commitBlock([]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(heard).toEqual([{ from: bob.address, n: 61n, hash }]);
      expect(pending).toEqual([hash]);
    } finally {
      provider.destroy();
    }
  });
});
