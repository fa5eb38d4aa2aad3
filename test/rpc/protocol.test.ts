// The JSON-RPC envelope over raw HTTP: EIP-1474 error codes, limits (batch, body, concurrency), notifications,
// CORS, backend failures, and a property that no body whatsoever makes the server crash or answer non-JSON-RPC.
import fc from "fast-check";
import { encodeFunctionData } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RpcBackend, RpcCallRequest, RpcCallResult } from "../../src/rpc/backend.ts";
import { type RpcServer, startRpcServer } from "../../src/rpc/server.ts";
import { alice, buildChain, type ChainFixture } from "./fixture.ts";

interface Answer {
  jsonrpc?: unknown;
  id?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

let fx: ChainFixture;
const servers: RpcServer[] = [];

async function start(opts: Partial<Parameters<typeof startRpcServer>[0]> = {}, backend?: RpcBackend) {
  const server = await startRpcServer({ host: "127.0.0.1", port: 0, ...opts }, backend ?? fx.backend);
  servers.push(server);
  return server;
}

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, text, headers: response.headers };
}

async function call(url: string, request: unknown): Promise<Answer | Answer[]> {
  const { text } = await post(url, JSON.stringify(request));
  return JSON.parse(text) as Answer | Answer[];
}

function single(answer: Answer | Answer[]): Answer {
  if (Array.isArray(answer)) throw new Error("expected a single response");
  return answer;
}

/** Delegates to the fixture backend, with hooks to block or break individual methods. */
function wrap(base: RpcBackend, overrides: Partial<RpcBackend>): RpcBackend {
  return new Proxy(base, {
    get(target, key, receiver) {
      if (typeof key === "string" && key in overrides) return overrides[key as keyof RpcBackend];
      const value = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

let url: string;

beforeAll(async () => {
  fx = await buildChain();
  url = (await start({ maxBatch: 5, maxBodyBytes: 4096 })).url;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe("JSON-RPC envelope errors", () => {
  it("answers malformed JSON with -32700 and id null", async () => {
    const { status, text } = await post(url, '{"jsonrpc":"2.0","id":1,"method":');
    expect(status).toBe(200);
    const answer = JSON.parse(text) as Answer;
    expect(answer.jsonrpc).toBe("2.0");
    expect(answer.id).toBeNull();
    expect(answer.error?.code).toBe(-32700);
  });

  it("answers invalid request objects with -32600", async () => {
    expect(single(await call(url, { jsonrpc: "1.0", id: 3, method: "eth_chainId" })).error?.code).toBe(-32600);
    expect(single(await call(url, { jsonrpc: "2.0", id: 3 })).error?.code).toBe(-32600);
    expect(single(await call(url, { jsonrpc: "2.0", id: { x: 1 }, method: "eth_chainId" })).error?.code).toBe(-32600);
    expect(single(await call(url, 42)).error?.code).toBe(-32600);
    expect(single(await call(url, [])).error).toEqual({ code: -32600, message: "invalid request: empty batch" });
  });

  it("names the unknown method", async () => {
    const answer = single(await call(url, { jsonrpc: "2.0", id: "a", method: "eth_fooBar", params: [] }));
    expect(answer.id).toBe("a");
    expect(answer.error?.code).toBe(-32601);
    expect(answer.error?.message).toContain("eth_fooBar");
  });

  it("says which parameter is wrong and what was expected", async () => {
    const request = (method: string, params: unknown) => call(url, { jsonrpc: "2.0", id: 1, method, params });
    const badAddress = single(await request("eth_getBalance", ["0x12", "latest"])).error;
    expect(badAddress?.code).toBe(-32602);
    expect(badAddress?.message).toMatch(/argument 0 \(address\).*20-byte hex address.*"0x12"/);
    const badTag = single(await request("eth_getBalance", [alice.address, "newest"])).error;
    expect(badTag?.message).toMatch(/argument 1 \(block\).*block tag/);
    const missing = single(await request("eth_getTransactionReceipt", [])).error;
    expect(missing?.message).toMatch(/missing value for required argument 0 \(hash\)/);
    const tooMany = single(await request("eth_chainId", [1])).error;
    expect(tooMany?.message).toMatch(/too many arguments, want at most 0/);
    const named = single(await request("eth_getBalance", { address: alice.address })).error;
    expect(named?.code).toBe(-32602);
    const nested = single(await request("eth_call", [{ to: alice.address, value: "12" }])).error;
    expect(nested?.message).toMatch(/argument 0 \(transaction\.value\).*hex quantity/);
    const both = single(await request("eth_call", [{ to: alice.address, data: "0x01", input: "0x02" }])).error;
    expect(both?.message).toMatch(/"data" and "input"/);
    const overrides = single(
      await request("eth_call", [{ to: alice.address }, "latest", { [alice.address]: { state: {}, stateDiff: {} } }]),
    );
    expect(overrides.error?.message).toMatch(/argument 2 \(stateOverrides\).*both state and stateDiff/);
    const percentiles = single(await request("eth_feeHistory", ["0x2", "latest", [50, 10]])).error;
    expect(percentiles?.message).toMatch(/argument 2 \(rewardPercentiles\).*increasing/);
  });

  it("answers a mixed batch entry by entry, in order, and skips notifications", async () => {
    const answers = await call(url, [
      { jsonrpc: "2.0", id: 1, method: "eth_blockNumber" },
      { jsonrpc: "2.0", id: 2, method: "eth_nope" },
      { jsonrpc: "2.0", method: "eth_blockNumber" },
      { jsonrpc: "2.0", id: 3, method: "eth_getBalance", params: ["bad"] },
      "not a request",
    ]);
    expect(Array.isArray(answers)).toBe(true);
    const list = answers as Answer[];
    expect(list.map((a) => a.id)).toEqual([1, 2, 3, null]);
    expect(list[0]?.result).toBe("0xc");
    expect(list.slice(1).map((a) => a.error?.code)).toEqual([-32601, -32602, -32600]);
  });

  it("sends nothing for notifications", async () => {
    const { status, text } = await post(url, JSON.stringify({ jsonrpc: "2.0", method: "eth_chainId" }));
    expect(status).toBe(204);
    expect(text).toBe("");
  });

  it("refuses batches and bodies over the limits", async () => {
    const batch = Array.from({ length: 6 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "eth_chainId" }));
    const tooMany = single(await call(url, batch));
    expect(tooMany.error?.code).toBe(-32600);
    expect(tooMany.error?.message).toBe("batch too large: 6 requests, the limit is 5");

    const big = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "eth_call",
      params: [{ data: `0x${"ab".repeat(4096)}` }],
    });
    const { status, text } = await post(url, big);
    expect(status).toBe(413);
    const answer = JSON.parse(text) as Answer;
    expect(answer.error?.code).toBe(-32600);
    expect(answer.error?.message).toMatch(/request body too large.*4096/);
    // The server is still there.
    expect(single(await call(url, { jsonrpc: "2.0", id: 1, method: "eth_chainId" })).result).toBe("0x67932");
  });

  it("refuses a 6 MiB body with the default 5 MiB limit", async () => {
    const server = await start();
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "eth_call",
      params: [{ data: `0x${"00".repeat(3 * 1024 * 1024)}` }],
    });
    const { status, text } = await post(server.url, body);
    expect(status).toBe(413);
    expect((JSON.parse(text) as Answer).error?.code).toBe(-32600);
  });

  it("serves /health, and refuses other paths, methods and content types", async () => {
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, headHeight: 12 });
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await fetch(url, { method: "PUT", body: "{}" })).status).toBe(405);
    const text = await post(url, "{}", { "content-type": "text/plain" });
    expect(text.status).toBe(415);
    expect((JSON.parse(text.text) as Answer).error?.code).toBe(-32600);
  });
});

describe("CORS", () => {
  it("sends no CORS headers unless origins are configured", async () => {
    const { headers } = await post(url, JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId" }), {
      origin: "https://app.example",
    });
    expect(headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows exactly the configured origins", async () => {
    const server = await start({ cors: ["https://app.example"] });
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId" });
    const allowed = await post(server.url, body, { origin: "https://app.example" });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await post(server.url, body, { origin: "https://evil.example" });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await fetch(server.url, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
  });
});

describe("backend failures and load", () => {
  it("turns a failing backend into -32603 and keeps serving", async () => {
    const broken = wrap(fx.backend, {
      account: async () => {
        throw new Error("disk on fire");
      },
    });
    const server = await start({}, broken);
    const answer = single(
      await call(server.url, { jsonrpc: "2.0", id: 1, method: "eth_getBalance", params: [alice.address] }),
    );
    expect(answer.error).toEqual({ code: -32603, message: "internal error: disk on fire" });
    expect(single(await call(server.url, { jsonrpc: "2.0", id: 2, method: "eth_blockNumber" })).result).toBe("0xc");
  });

  it("answers 503 / -32005 beyond the concurrent request limit", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = 0;
    const slow = wrap(fx.backend, {
      call: async (height: number, request: RpcCallRequest): Promise<RpcCallResult> => {
        entered++;
        await gate;
        return fx.backend.call(height, request);
      },
    });
    const server = await start({ maxConcurrentRequests: 2 }, slow);
    const request = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_call", params: [{ to: alice.address }] });
    const first = post(server.url, request);
    const second = post(server.url, request);
    while (entered < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    const third = await post(server.url, request);
    expect(third.status).toBe(503);
    expect((JSON.parse(third.text) as Answer).error?.code).toBe(-32005);
    release();
    for (const done of await Promise.all([first, second])) {
      expect(done.status).toBe(200);
      expect((JSON.parse(done.text) as Answer).result).toBe("0x");
    }
  });
});

describe("robustness (property)", () => {
  const METHODS = [
    "web3_clientVersion",
    "net_version",
    "eth_chainId",
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_feeHistory",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_call",
    "eth_estimateGas",
    "eth_sendRawTransaction",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getLogs",
    "eth_getBlockReceipts",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_createAccessList",
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_newPendingTransactionFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
    "txpool_status",
    "txpool_contentFrom",
    "web3_sha3",
    "eth_syncing",
    "eth_nothing",
    "__proto__",
    "constructor",
  ];
  const hex = (maxBytes: number) =>
    fc.uint8Array({ maxLength: maxBytes }).map((b) => `0x${Buffer.from(b).toString("hex")}`);
  const exactHex = (bytes: number) =>
    fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => `0x${Buffer.from(b).toString("hex")}`);
  const paramValue = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    hex(40),
    hex(20),
    hex(32),
    fc.constantFrom("latest", "pending", "safe", "finalized", "earliest", "0x0", "0xc", "0xd", "0x", "0x00"),
    fc.record(
      {
        from: hex(20),
        to: fc.oneof(hex(20), fc.constant(null)),
        data: hex(64),
        gas: fc.bigInt({ min: 0n, max: 1n << 70n }).map((n) => `0x${n.toString(16)}`),
        value: fc.constantFrom("0x0", "0x1", "0xffffffffffffffffffffffff"),
        fromBlock: fc.constantFrom("0x0", "latest", "0x5"),
        toBlock: fc.constantFrom("0x9", "latest", "0x2"),
        address: fc.oneof(hex(20), fc.array(hex(20), { maxLength: 3 })),
        topics: fc.array(fc.oneof(fc.constant(null), hex(32), fc.array(hex(32), { maxLength: 2 })), { maxLength: 5 }),
      },
      { requiredKeys: [] },
    ),
  );
  const request = fc.record(
    {
      jsonrpc: fc.constantFrom("2.0", "2.0", "2.0", "1.0", 2),
      id: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null), fc.constant({})),
      method: fc.oneof(fc.constantFrom(...METHODS), fc.string({ maxLength: 20 })),
      params: fc.oneof(fc.array(paramValue, { maxLength: 5 }), paramValue),
    },
    { requiredKeys: ["jsonrpc", "method"] },
  );
  const body = fc.oneof(
    request.map((r) => JSON.stringify(r)),
    fc.array(request, { maxLength: 7 }).map((r) => JSON.stringify(r)),
    fc.json({ maxDepth: 4 }),
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("latin1")),
  );

  /** Per-method parameters that mostly pass validation, so random requests reach the handlers and the backend. */
  function paramsFor(method: string): fc.Arbitrary<unknown[]> {
    const addr = fc.oneof(fc.constantFrom(fx.probe, alice.address), exactHex(20));
    const hash = fc.oneof(fc.constantFrom(...Object.values(fx.txs)), exactHex(32));
    const tag = fc.constantFrom(
      "latest",
      "pending",
      "safe",
      "finalized",
      "earliest",
      "0x0",
      "0x2",
      "0xc",
      "0xd",
      "0xffff",
    );
    const block = fc.oneof(tag, fc.record({ blockNumber: fc.constantFrom("0x1", "0x3", "0x20") }));
    const call = fc.record(
      {
        from: fc.constantFrom(alice.address, fx.probe),
        to: fc.constantFrom(fx.probe, alice.address, null),
        data: fc.constantFrom(
          "0x",
          "0x3fa4f245",
          encodeFunctionData({ abi: fx.abi, functionName: "answer" }),
          encodeFunctionData({ abi: fx.abi, functionName: "fail", args: ["x"] }),
          encodeFunctionData({ abi: fx.abi, functionName: "fill", args: [20n] }),
        ),
        gas: fc.constantFrom("0x5208", "0x100000", "0x1", "0xffffffffffffffffff"),
        value: fc.constantFrom("0x0", "0x1"),
        gasPrice: fc.constantFrom("0x0", "0x3b9aca00"),
      },
      { requiredKeys: [] },
    );
    const filter = fc.record(
      {
        fromBlock: fc.constantFrom("0x0", "0x2", "latest"),
        toBlock: fc.constantFrom("0x3", "0x9", "latest"),
        address: fc.constantFrom(fx.probe, [fx.probe, alice.address]),
        topics: fc.array(fc.oneof(fc.constant(null), hex(32)), { maxLength: 3 }),
      },
      { requiredKeys: [] },
    );
    const shapes: Record<string, fc.Arbitrary<unknown>[]> = {
      eth_feeHistory: [fc.constantFrom("0x4", 3, "0x400", 0), tag, fc.constantFrom([25, 75], [], [0, 50, 100])],
      eth_getBalance: [addr, block],
      eth_getTransactionCount: [addr, block],
      eth_getCode: [addr, block],
      eth_getStorageAt: [addr, exactHex(32), block],
      eth_call: [call, block],
      eth_estimateGas: [call, block],
      eth_sendRawTransaction: [hex(120)],
      eth_getTransactionByHash: [hash],
      eth_getTransactionReceipt: [hash],
      eth_getBlockByNumber: [tag, fc.boolean()],
      eth_getBlockByHash: [hash, fc.boolean()],
      eth_getBlockTransactionCountByNumber: [tag],
      eth_getLogs: [filter],
      eth_getBlockReceipts: [block],
      eth_getTransactionByBlockNumberAndIndex: [tag, fc.constantFrom("0x0", "0x1", "0x5")],
      eth_getTransactionByBlockHashAndIndex: [hash, fc.constantFrom("0x0", "0x1")],
      eth_createAccessList: [call, block],
      eth_newFilter: [filter],
      eth_newPendingTransactionFilter: [fc.boolean()],
      eth_getFilterChanges: [exactHex(16)],
      eth_getFilterLogs: [exactHex(16)],
      eth_uninstallFilter: [exactHex(16)],
      txpool_contentFrom: [addr],
      web3_sha3: [hex(64)],
    };
    const shape = Object.hasOwn(shapes, method) ? (shapes[method] ?? []) : [];
    // Mostly the right shape, sometimes a wrong value or a shorter list.
    const anything = fc.jsonValue({ maxDepth: 2 });
    const positions = shape.map((good) => fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: anything }));
    return fc
      .tuple(...positions)
      .chain((full) =>
        fc.nat({ max: full.length }).map((cut) => (cut === 0 ? full : full.slice(0, full.length - (cut % 2)))),
      );
  }

  function checkResponse(value: unknown): void {
    expect(typeof value).toBe("object");
    const r = value as Record<string, unknown>;
    expect(r.jsonrpc).toBe("2.0");
    expect("id" in r).toBe(true);
    expect(r.id === null || typeof r.id === "string" || typeof r.id === "number").toBe(true);
    expect("result" in r !== "error" in r).toBe(true);
    if ("error" in r) {
      const e = r.error as { code: unknown; message: unknown };
      expect(Number.isInteger(e.code)).toBe(true);
      expect(typeof e.message).toBe("string");
    }
  }

  it("never crashes and always answers JSON-RPC", async () => {
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const { status, text: answer } = await post(url, text);
        if (status === 204) {
          expect(answer).toBe("");
          return;
        }
        expect([200, 413]).toContain(status);
        const parsed = JSON.parse(answer) as unknown;
        if (Array.isArray(parsed)) {
          expect(parsed.length).toBeGreaterThan(0);
          for (const item of parsed) checkResponse(item);
        } else {
          checkResponse(parsed);
        }
      }),
      { numRuns: 300 },
    );
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
  });

  it("handles random well-formed calls of every method without failing internally", async () => {
    const counts = { result: 0, error: 0, failedCalls: 0 };
    const wellFormed = fc
      .tuple(fc.nat(), fc.constantFrom(...METHODS))
      .chain(([id, method]) => paramsFor(method).map((params) => ({ jsonrpc: "2.0", id, method, params })));
    await fc.assert(
      fc.asyncProperty(wellFormed, async (request) => {
        const answer = single(await call(url, request));
        checkResponse(answer);
        expect(answer.id).toBe(request.id);
        // -32603 would mean a handler threw on input the validation let through.
        expect(answer.error?.code).not.toBe(-32603);
        if (answer.error === undefined) counts.result++;
        else counts.error++;
        // Calls that ran and failed: a revert (3) or another halt (-32000, e.g. an invalid opcode).
        const ran = request.method === "eth_call" || request.method === "eth_estimateGas";
        if (answer.error?.code === 3 || (ran && answer.error?.code === -32000)) counts.failedCalls++;
      }),
      { numRuns: 300 },
    );
    // The property reaches the handlers, not only the parameter checks.
    expect(counts.result).toBeGreaterThan(100);
    expect(counts.failedCalls).toBeGreaterThan(0);
  });
});
