// JSON-RPC over WebSocket against the in-memory chain of fixture.ts: the same answers as HTTP, subscriptions (newHeads,
// logs, newPendingTransactions, certificates) fed by the backend's commit events, and the limits (message size,
// connections, subscriptions, origin, slow readers, keepalive, shutdown).
import { getBase58Decoder } from "@solana/kit";
import fc from "fast-check";
import { encodeEventTopics, encodeFunctionData, type PrivateKeyAccount } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Hex } from "../../consensus/bytes.ts";
import { type RpcServer, type RpcServerOptions, startRpcServer } from "../../src/rpc/server.ts";
import { alice, bob, buildChain, type ChainFixture, carol, signPing } from "./fixture.ts";

interface Message {
  jsonrpc?: string;
  id?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  method?: string;
  params?: { subscription: Hex; result: unknown };
}

/** A raw WebSocket JSON-RPC client that keeps every message, so tests can wait for answers and notifications. */
class Client {
  readonly messages: Message[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const parsed = JSON.parse(String(data)) as Message | Message[];
      // A batch answer is kept as one entry (an array) so tests can compare it whole.
      this.messages.push(parsed as Message);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  static open(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url, options);
    const client = new Client(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(client));
      ws.once("error", reject);
    });
  }

  send(payload: unknown): void {
    this.ws.send(typeof payload === "string" ? payload : JSON.stringify(payload));
  }

  async request(method: string, params: unknown[] = []): Promise<Message> {
    // Ids no other message of a test uses: the fuzzed messages carry numbers and short strings.
    const id = `request-${this.nextId++}`;
    this.send({ jsonrpc: "2.0", id, method, params });
    return this.waitFor((m) => m.id === id);
  }

  async subscribe(kind: string, ...rest: unknown[]): Promise<Hex> {
    const namespace = kind === "certificates" ? "lumia" : "eth";
    const answer = await this.request(`${namespace}_subscribe`, [kind, ...rest]);
    if (typeof answer.result !== "string") throw new Error(`subscribe failed: ${JSON.stringify(answer.error)}`);
    return answer.result as Hex;
  }

  notifications(subscription: Hex): unknown[] {
    return this.messages.filter((m) => m.params?.subscription === subscription).map((m) => m.params?.result);
  }

  /** Resolves with the first message (kept or future) that matches; fails after `timeoutMs`. */
  async waitFor(match: (m: Message) => boolean, timeoutMs = 5_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error("connection closed while waiting");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a message");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until `n` notifications of `subscription` arrived. */
  async waitForCount(subscription: Hex, n: number): Promise<unknown[]> {
    await this.waitFor(() => this.notifications(subscription).length >= n);
    return this.notifications(subscription);
  }
}

let fx: ChainFixture;
let server: RpcServer;
const servers: RpcServer[] = [];
const clients: Client[] = [];

async function start(opts: Partial<RpcServerOptions> = {}): Promise<RpcServer> {
  const s = await startRpcServer({ host: "127.0.0.1", port: 0, ...opts }, fx.backend);
  servers.push(s);
  return s;
}

async function connect(url = server.wsUrl, options: WebSocket.ClientOptions = {}): Promise<Client> {
  const c = await Client.open(url, options);
  clients.push(c);
  return c;
}

async function http(url: string, body: unknown): Promise<Message | Message[]> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await response.json()) as Message | Message[];
}

async function httpResult(method: string, params: unknown[]): Promise<unknown> {
  const answer = (await http(server.url, { jsonrpc: "2.0", id: 1, method, params })) as Message;
  if (answer.error !== undefined) throw new Error(`${method}: ${answer.error.message}`);
  return answer.result;
}

const ping = (account: PrivateKeyAccount, n: bigint) => signPing(fx, account, n);

beforeAll(async () => {
  fx = await buildChain();
  server = await start();
});

afterEach(() => {
  for (const c of clients.splice(0)) c.ws.terminate();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe("requests over WebSocket", () => {
  it("answers single requests and batches exactly as HTTP does", async () => {
    const c = await connect();
    expect(server.wsUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const block = await c.request("eth_getBlockByNumber", ["0x2", true]);
    expect(block.result).toEqual(await httpResult("eth_getBlockByNumber", ["0x2", true]));
    const batch = [
      { jsonrpc: "2.0", id: "a", method: "eth_chainId", params: [] },
      { jsonrpc: "2.0", method: "eth_blockNumber", params: [] },
      { jsonrpc: "2.0", id: 7, method: "eth_getBalance", params: [alice.address, "0x1"] },
      { jsonrpc: "2.0", id: 8, method: "eth_getBalance", params: ["0x12"] },
      { jsonrpc: "1.0", id: 9, method: "eth_chainId" },
    ];
    c.send(batch);
    const answer = (await c.waitFor((m) => Array.isArray(m))) as unknown as Message[];
    expect(answer).toEqual(await http(server.url, batch));
    expect(answer.map((m) => m.id)).toEqual(["a", 7, 8, 9]);
    expect(answer[2]?.error?.code).toBe(-32602);
    expect(answer[3]?.error?.code).toBe(-32600);
  });

  it("answers a quick request while another of the same connection waits (out of order, matched by id)", async () => {
    const c = await connect();
    const raw = await ping(carol, 31n);
    c.send({ jsonrpc: "2.0", id: "sync", method: "eth_sendRawTransactionSync", params: [raw, 5_000] });
    const quick = await c.request("eth_chainId");
    expect(quick.result).toBe(`0x${fx.backend.chainId.toString(16)}`);
    // The waiting request has not been answered yet; it is once its block commits.
    expect(c.messages.some((m) => m.id === "sync")).toBe(false);
    await fx.backend.commitBlock([raw]);
    const synced = await c.waitFor((m) => m.id === "sync");
    expect((synced.result as { status: string }).status).toBe("0x1");
    expect(c.messages.findIndex((m) => m.id === "sync")).toBeGreaterThan(c.messages.indexOf(quick));
  });

  it("answers parse errors, unknown methods and oversized batches, and keeps serving", async () => {
    const c = await connect();
    c.send("{not json");
    expect((await c.waitFor((m) => m.error?.code === -32700)).id).toBeNull();
    const unknown = await c.request("eth_nothing", []);
    expect(unknown.error).toEqual({ code: -32601, message: "the method eth_nothing does not exist/is not available" });
    c.send(Array.from({ length: 101 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "eth_chainId" })));
    const tooMany = await c.waitFor((m) => m.error?.code === -32600);
    expect(tooMany.error?.message).toBe("batch too large: 101 requests, the limit is 100");
    expect((await c.request("eth_chainId")).result).toBe(`0x${fx.backend.chainId.toString(16)}`);
  });

  it("survives arbitrary messages (property): every answer is JSON-RPC and the connection keeps serving", async () => {
    const c = await connect();
    const message = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc
        .record({
          jsonrpc: fc.constantFrom("2.0", "1.0"),
          id: fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null)),
          method: fc.constantFrom("eth_subscribe", "eth_unsubscribe", "lumia_subscribe", "eth_getLogs", "eth_nothing"),
          params: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
        })
        .map((r) => JSON.stringify(r)),
    );
    await fc.assert(
      fc.asyncProperty(message, async (text) => {
        c.messages.length = 0;
        c.send(text);
        const probe = await c.request("eth_chainId");
        expect(probe.result).toBe(`0x${fx.backend.chainId.toString(16)}`);
        for (const m of c.messages.flat()) expect(m.jsonrpc).toBe("2.0");
      }),
      { numRuns: 150 },
    );
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("refuses subscriptions over HTTP as geth does", async () => {
    for (const method of ["eth_subscribe", "eth_unsubscribe", "lumia_subscribe", "lumia_unsubscribe"]) {
      const answer = (await http(server.url, { jsonrpc: "2.0", id: 1, method, params: ["newHeads"] })) as Message;
      expect(answer.error).toEqual({ code: -32601, message: "notifications not supported" });
    }
  });
});

describe("Solana subscriptions (signatureSubscribe, slotSubscribe)", () => {
  it("notify with Solana's shapes and integer ids, once per signature, and refuse what they cannot serve", async () => {
    const signature = new Uint8Array(64).fill(7);
    const base58 = getBase58Decoder().decode(signature);
    const c = await connect();
    const slotId = (await c.request("slotSubscribe", [])).result;
    const sigId = (await c.request("signatureSubscribe", [base58, { commitment: "confirmed" }])).result;
    expect(typeof slotId).toBe("number");
    expect(typeof sigId).toBe("number");
    await fx.backend.commitBlock([]);
    const event = await fx.backend.committedEvent(fx.backend.head);
    const failed = {
      signature,
      status: 1,
      fee: 5_000n,
      computeUnits: 150n,
      error: "InstructionError(0, Custom(1))",
      logs: [],
      preBalances: [],
      postBalances: [],
    };
    fx.backend.emitCommitted({ ...event, svmReceipts: [failed] });
    fx.backend.emitCommitted({ ...event, svmReceipts: [failed] });
    const sig = await c.waitFor((m) => m.method === "signatureNotification");
    expect(sig.params).toEqual({
      subscription: sigId,
      result: { context: { slot: event.height }, value: { err: { InstructionError: [0, { Custom: 1 }] } } },
    });
    await c.waitFor(() => c.messages.filter((m) => m.method === "slotNotification").length >= 3);
    const slot = c.messages.find((m) => m.method === "slotNotification");
    expect(slot?.params).toEqual({
      subscription: slotId,
      result: { parent: event.height - 1, root: event.height, slot: event.height },
    });
    // One notification per signature subscription, which then ends, as on Solana.
    expect(c.messages.filter((m) => m.method === "signatureNotification")).toHaveLength(1);
    expect((await c.request("signatureUnsubscribe", [sigId])).error).toEqual({
      code: -32602,
      message: "Invalid subscription id.",
    });
    expect((await c.request("slotUnsubscribe", [slotId])).result).toBe(true);
    const finalized = await c.request("signatureSubscribe", [base58, { commitment: "finalized" }]);
    expect(finalized.error?.code).toBe(-32602);
    expect((await c.request("signatureSubscribe", ["not-a-signature"])).error?.code).toBe(-32602);
    for (const method of ["signatureSubscribe", "slotSubscribe"]) {
      const answer = (await http(server.url, { jsonrpc: "2.0", id: 1, method, params: [] })) as Message;
      expect(answer.error).toEqual({ code: -32601, message: "notifications not supported" });
    }
  });
});

describe("Solana logsSubscribe", () => {
  it("notifies each committed transaction's logs to 'all', refuses malformed filters and finalized", async () => {
    const c = await connect();
    const allId = (await c.request("logsSubscribe", ["all", { commitment: "confirmed" }])).result;
    expect(typeof allId).toBe("number");
    // An account no transaction of the block names (test/e2e/svm.test.ts has one that does).
    const unrelated = getBase58Decoder().decode(new Uint8Array(32).fill(4));
    const mentionsId = (await c.request("logsSubscribe", [{ mentions: [unrelated] }])).result;
    await fx.backend.commitBlock([]);
    const event = await fx.backend.committedEvent(fx.backend.head);
    const signature = new Uint8Array(64).fill(9);
    const receipt = {
      signature,
      status: 0,
      fee: 5_000n,
      computeUnits: 150n,
      error: "",
      logs: ["Program 11111111111111111111111111111111 invoke [1]", "Program 11111111111111111111111111111111 success"],
      preBalances: [],
      postBalances: [],
    };
    fx.backend.emitCommitted({ ...event, svmReceipts: [receipt] });
    const note = await c.waitFor((m) => m.method === "logsNotification");
    expect(note.params).toEqual({
      subscription: allId,
      result: {
        context: { slot: event.height },
        value: { signature: getBase58Decoder().decode(signature), err: null, logs: receipt.logs },
      },
    });
    // Delivered in the same turn as the one above: nothing for the account no transaction names.
    expect(c.messages.filter((m) => (m.params as { subscription?: unknown })?.subscription === mentionsId)).toEqual([]);
    const key = getBase58Decoder().decode(new Uint8Array(32).fill(3));
    expect((await c.request("logsSubscribe", [{ mentions: [key, key] }])).error).toEqual({
      code: -32602,
      message: "Invalid Request: Only 1 address supported",
    });
    expect((await c.request("logsSubscribe", [{ mentions: ["nope"] }])).error?.code).toBe(-32602);
    expect((await c.request("logsSubscribe", ["everything"])).error?.code).toBe(-32602);
    expect((await c.request("logsSubscribe", ["all", { commitment: "finalized" }])).error?.code).toBe(-32602);
    expect((await c.request("logsUnsubscribe", [allId])).result).toBe(true);
  });
});

describe("eth_call and eth_estimateGas failures, as geth answers them", () => {
  it("code 3 with data for a revert, -32000 with the reason for other halts", async () => {
    const c = await connect();
    const revert = await c.request("eth_call", [
      { to: fx.probe, data: encodeFunctionData({ abi: fx.abi, functionName: "fail", args: ["no"] }) },
    ]);
    expect(revert.error?.code).toBe(3);
    expect(revert.error?.message).toBe("execution reverted: no");
    expect(revert.error?.data).toMatch(/^0x08c379a0/);
    // Creation code 0xfe: the INVALID instruction, an exceptional halt that burns all the gas.
    const invalid = await c.request("eth_call", [{ data: "0xfe" }]);
    expect(invalid.error).toEqual({ code: -32000, message: "invalid opcode" });
    const estimate = await c.request("eth_estimateGas", [{ from: alice.address, data: "0xfe" }]);
    expect(estimate.error).toEqual({ code: -32000, message: "invalid opcode" });
    const tooLittle = await c.request("eth_call", [{ to: fx.probe, gas: "0x100" }]);
    expect(tooLittle.error?.code).toBe(-32000);
    expect(tooLittle.error?.message).toMatch(/gas/i);
    // Probe has no fallback: empty calldata reverts without data, still a revert (gas below 21,000 is ignored).
    const empty = await c.request("eth_estimateGas", [{ from: alice.address, to: fx.probe, gas: "0x100" }]);
    expect(empty.error).toEqual({ code: 3, message: "execution reverted", data: "0x" });
  });

  it("tells an exceptional halt from a revert by the gas it burnt when the backend does not name it", async () => {
    const unnamed = await startRpcServer(
      { host: "127.0.0.1", port: 0 },
      new Proxy(fx.backend, {
        get(target, key, receiver) {
          if (key === "call") {
            return async (...args: Parameters<typeof target.call>) => {
              const { error: _error, ...rest } = await target.call(...args);
              return rest;
            };
          }
          const value = Reflect.get(target, key, receiver);
          return typeof value === "function" ? value.bind(target) : value;
        },
      }),
    );
    servers.push(unnamed);
    const c = await connect(unnamed.wsUrl);
    // No gas given: the call gets the cap (the block gas limit), all of it burnt.
    expect((await c.request("eth_call", [{ data: "0xfe" }])).error).toEqual({ code: -32000, message: "out of gas" });
    const estimate = await c.request("eth_estimateGas", [{ from: alice.address, data: "0xfe" }]);
    expect(estimate.error?.message).toMatch(/^gas required exceeds allowance/);
    const revert = await c.request("eth_call", [
      { to: fx.probe, data: encodeFunctionData({ abi: fx.abi, functionName: "fail", args: ["no"] }) },
    ]);
    expect(revert.error?.code).toBe(3);
  });
});

describe("subscriptions", () => {
  it("sends each new head once, in order, shaped like eth_getBlockByNumber without transactions", async () => {
    const c = await connect();
    const id = await c.subscribe("newHeads");
    expect(id).toMatch(/^0x[0-9a-f]{32}$/);
    const first = fx.backend.headHeight() + 1;
    // Committed back to back (one lock): a burst must not skip or repeat heights.
    await Promise.all([fx.backend.commitBlock([]), fx.backend.commitBlock([]), fx.backend.commitBlock([])]);
    await fx.backend.commitBlock([await ping(carol, 1n)]);
    const heads = (await c.waitForCount(id, 4)) as Record<string, unknown>[];
    expect(heads.map((h) => Number(h.number))).toEqual([first, first + 1, first + 2, first + 3]);
    for (const head of heads) {
      const block = (await httpResult("eth_getBlockByNumber", [head.number, false])) as Record<string, unknown>;
      const { transactions: _t, uncles: _u, size: _s, ...expected } = block;
      expect(head).toEqual(expected);
    }
    const notification = c.messages.find((m) => m.params?.subscription === id);
    expect(notification?.method).toBe("eth_subscription");
    expect(notification?.jsonrpc).toBe("2.0");

    expect((await c.request("eth_unsubscribe", [id])).result).toBe(true);
    expect((await c.request("eth_unsubscribe", [id])).result).toBe(false);
    await fx.backend.commitBlock([]);
    // Commit events are delivered synchronously: an answer sent after the commit comes after any notification.
    await c.request("eth_blockNumber");
    expect(c.notifications(id)).toHaveLength(4);
    expect(fx.backend.committedListeners.size).toBe(0);
  });

  it("sends the logs of committed blocks that match the filter, as eth_getLogs returns them", async () => {
    const c = await connect();
    const [pingTopic] = encodeEventTopics({ abi: fx.abi, eventName: "Ping" });
    const bobTopic = `0x${bob.address.slice(2).toLowerCase().padStart(64, "0")}` as Hex;
    const all = await c.subscribe("logs", {});
    const byAddress = await c.subscribe("logs", { address: fx.probe });
    const fromBob = await c.subscribe("logs", { address: [fx.probe], topics: [pingTopic, bobTopic] });
    const elsewhere = await c.subscribe("logs", { address: carol.address });

    await fx.backend.commitBlock([await ping(alice, 11n), await ping(bob, 12n)]);
    await fx.backend.commitBlock([await ping(bob, 13n)]);
    const height = fx.backend.headHeight();
    await c.waitForCount(all, 3);
    const range = { fromBlock: `0x${(height - 1).toString(16)}`, toBlock: `0x${height.toString(16)}` };
    expect(c.notifications(all)).toEqual(await httpResult("eth_getLogs", [range]));
    expect(c.notifications(byAddress)).toEqual(await httpResult("eth_getLogs", [{ ...range, address: fx.probe }]));
    const bobLogs = await httpResult("eth_getLogs", [{ ...range, topics: [pingTopic, bobTopic] }]);
    expect(bobLogs).toHaveLength(2);
    expect(c.notifications(fromBob)).toEqual(bobLogs);
    await c.request("eth_blockNumber");
    expect(c.notifications(elsewhere)).toEqual([]);
  });

  it("sends each certificate as lumia_getCertificate returns it", async () => {
    const c = await connect();
    const id = await c.subscribe("certificates");
    await fx.backend.commitBlock([]);
    const [cert] = await c.waitForCount(id, 1);
    expect(cert).toEqual(await httpResult("lumia_getCertificate", ["latest"]));
    expect(c.messages.find((m) => m.params?.subscription === id)?.method).toBe("lumia_subscription");
    // Each namespace unsubscribes its own.
    expect((await c.request("eth_unsubscribe", [id])).result).toBe(false);
    expect((await c.request("lumia_unsubscribe", [id])).result).toBe(true);
  });

  it("sends the hashes (or whole objects) of transactions the pool accepts", async () => {
    const c = await connect();
    const hashes = await c.subscribe("newPendingTransactions");
    const full = await c.subscribe("newPendingTransactions", true);
    const raw = await ping(carol, 21n);
    const sent = await c.request("eth_sendRawTransaction", [raw]);
    expect(sent.result).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await c.waitForCount(hashes, 1)).toEqual([sent.result]);
    const [tx] = (await c.waitForCount(full, 1)) as Record<string, unknown>[];
    expect(tx).toEqual(await httpResult("eth_getTransactionByHash", [sent.result]));
    expect(tx?.blockHash).toBeNull();
    await fx.backend.commitBlock([raw]);
  });

  it("refuses unknown kinds and bad options with -32602", async () => {
    const c = await connect();
    const cases: [string, unknown[], RegExp][] = [
      ["eth_subscribe", [], /missing value for required argument 0 \(kind\)/],
      ["eth_subscribe", ["nope"], /expected one of "newHeads", "logs", "newPendingTransactions", got "nope"/],
      ["eth_subscribe", ["certificates"], /expected one of/],
      ["lumia_subscribe", ["newHeads"], /expected one of "certificates"/],
      ["eth_subscribe", ["newHeads", {}], /newHeads takes no options/],
      ["eth_subscribe", ["newPendingTransactions", "yes"], /fullTransactions\): expected a boolean/],
      ["eth_subscribe", ["logs", { address: "0x12" }], /invalid argument 1 \(filter\.address\)/],
      ["eth_subscribe", ["logs", { topics: [null, null, null, null, null] }], /invalid argument 1 \(filter\.topics\)/],
      ["eth_subscribe", ["logs", { fromBlock: "0x1" }], /takes address and topics only/],
      ["eth_subscribe", ["logs", { blockHash: `0x${"ab".repeat(32)}` }], /takes address and topics only/],
      ["eth_subscribe", ["logs", 5], /expected a filter object/],
      ["eth_unsubscribe", [5], /invalid argument 0 \(id\)/],
    ];
    for (const [method, params, message] of cases) {
      const answer = await c.request(method, params);
      expect(answer.error?.code, `${method} ${JSON.stringify(params)}`).toBe(-32602);
      expect(answer.error?.message).toMatch(message);
    }
    // "latest" bounds are what a live subscription means anyway: accepted.
    expect((await c.request("eth_subscribe", ["logs", { fromBlock: "latest" }])).result).toMatch(/^0x/);
  });

  it("keeps serving other subscribers when one connection disappears mid-stream", async () => {
    const a = await connect();
    const b = await connect();
    const ida = await a.subscribe("newHeads");
    const idb = await b.subscribe("newHeads");
    await fx.backend.commitBlock([]);
    await a.waitForCount(ida, 1);
    a.ws.terminate();
    await a.closed;
    await fx.backend.commitBlock([]);
    await fx.backend.commitBlock([]);
    expect(await b.waitForCount(idb, 3)).toHaveLength(3);
  });
});

describe("limits", () => {
  it("closes a connection that sends a message over the size limit with 1009", async () => {
    const small = await start({ maxBodyBytes: 1024 });
    const c = await connect(small.wsUrl);
    expect((await c.request("eth_chainId")).result).toBeDefined();
    c.send({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: ["x".repeat(2_000)] });
    expect((await c.closed).code).toBe(1009);
    const again = await connect(small.wsUrl);
    expect((await again.request("eth_chainId")).result).toBeDefined();
  });

  it("limits subscriptions per connection with -32005", async () => {
    const limited = await start({ maxSubscriptionsPerConnection: 3 });
    const c = await connect(limited.wsUrl);
    const ids = [await c.subscribe("newHeads"), await c.subscribe("logs", {}), await c.subscribe("certificates")];
    const refused = await c.request("eth_subscribe", ["newHeads"]);
    expect(refused.error).toEqual({ code: -32005, message: "limit exceeded: at most 3 subscriptions per connection" });
    expect((await c.request("eth_unsubscribe", [ids[0]])).result).toBe(true);
    expect((await c.request("eth_subscribe", ["newHeads"])).result).toMatch(/^0x/);
    // The limit is per connection.
    const other = await connect(limited.wsUrl);
    expect(await other.subscribe("newHeads")).toMatch(/^0x/);
  });

  it("refuses upgrades beyond the connection limit with HTTP 503", async () => {
    const limited = await start({ maxWsConnections: 2 });
    await connect(limited.wsUrl);
    await connect(limited.wsUrl);
    await expect(connect(limited.wsUrl)).rejects.toThrow(/Unexpected server response: 503/);
    expect(limited.wsConnections).toBe(2);
    const one = clients.pop();
    one?.ws.terminate();
    await one?.closed;
    await waitUntil(() => limited.wsConnections === 1);
    expect((await (await connect(limited.wsUrl)).request("eth_chainId")).result).toBeDefined();
  });

  it("applies the CORS setting to the Origin of the upgrade", async () => {
    await expect(connect(server.wsUrl, { origin: "https://app.example" })).rejects.toThrow(/403/);
    const open = await start({ cors: ["https://app.example"] });
    expect((await (await connect(open.wsUrl, { origin: "https://app.example" })).request("eth_chainId")).result).toBe(
      `0x${fx.backend.chainId.toString(16)}`,
    );
    await expect(connect(open.wsUrl, { origin: "https://evil.example" })).rejects.toThrow(/403/);
    // Not a browser: no Origin header, always allowed.
    expect((await (await connect(open.wsUrl)).request("eth_chainId")).result).toBeDefined();
    await expect(connect(`${open.wsUrl}/elsewhere`)).rejects.toThrow(/404/);
  });

  it("closes a reader that falls behind with 1008 and drops its subscriptions", async () => {
    const capped = await start({ maxWsBufferedBytes: 64 * 1024 });
    const slow = await connect(capped.wsUrl);
    const fast = await connect(capped.wsUrl);
    await slow.subscribe("newHeads");
    const fastId = await fast.subscribe("certificates");
    const listenersBefore = fx.backend.committedListeners.size;
    slow.ws.pause();
    const event = await fx.backend.committedEvent(fx.backend.headHeight());
    // Loopback socket buffers hold a few MB; replay the head event until the server gives up on the reader.
    let sent = 0;
    while (capped.wsConnections === 2 && sent < 60_000) {
      for (let i = 0; i < 200; i++) fx.backend.emitCommitted(event);
      sent += 200;
      await new Promise((r) => setImmediate(r));
    }
    expect(capped.wsConnections).toBe(1);
    slow.ws.resume();
    const closed = await slow.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/slow consumer/);
    // The other connection got every event.
    expect(await fast.waitForCount(fastId, sent)).toHaveLength(sent);
    expect(fx.backend.committedListeners.size).toBe(listenersBefore);
  });

  it("cuts connections that stop answering pings, keeps those that answer", async () => {
    const quick = await start({ wsKeepaliveMs: 150 });
    const dead = await connect(quick.wsUrl, { autoPong: false });
    const live = await connect(quick.wsUrl);
    expect((await dead.closed).code).toBe(1006);
    expect(live.ws.readyState).toBe(WebSocket.OPEN);
    expect((await live.request("eth_chainId")).result).toBeDefined();
  });

  it("closes every socket when the server closes", async () => {
    const closing = await start();
    const a = await connect(closing.wsUrl);
    const b = await connect(closing.wsUrl);
    await a.subscribe("newHeads");
    await closing.close();
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
    expect(closing.wsConnections).toBe(0);
    await expect(connect(closing.wsUrl)).rejects.toThrow();
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
