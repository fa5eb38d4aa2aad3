// The JSON-RPC server's metrics (src/rpc/metrics.ts) against the in-memory chain of fixture.ts: requests by method and
// outcome with a bounded label set, their durations, and the gauges of what the server holds open.
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type RpcServer, startRpcServer } from "../../src/rpc/server.ts";
import { buildChain, type ChainFixture } from "./fixture.ts";

let fx: ChainFixture;
let server: RpcServer;
const registry = new Registry();

async function rpc(body: unknown): Promise<unknown> {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

/** A sample of metric `name` (a histogram's `_count` sample too) with `labels`. */
async function value(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name.replace(/_count$/, ""));
  const values = (await metric?.get())?.values ?? [];
  return values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === name &&
      Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  )?.value;
}

beforeAll(async () => {
  fx = await buildChain();
  server = await startRpcServer({ host: "127.0.0.1", port: 0, registry }, fx.backend);
});
afterAll(async () => {
  await server?.close();
});

describe("JSON-RPC metrics", () => {
  it("count requests by method and outcome, time them, and gauge what is held open", async () => {
    await rpc({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] });
    await rpc([
      { jsonrpc: "2.0", id: 2, method: "eth_chainId", params: [] },
      { jsonrpc: "2.0", id: 3, method: "eth_getBalance", params: ["0x12"] },
    ]);
    await rpc({ jsonrpc: "2.0", id: 4, method: "no_such_method_at_all", params: [] });
    await rpc({ jsonrpc: "2.0", id: 5, method: "eth_newBlockFilter", params: [] });
    const socket = new WebSocket(server.wsUrl);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const subscribed = new Promise((resolve) => socket.once("message", resolve));
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: 6, method: "eth_subscribe", params: ["newHeads"] }));
    await subscribed;

    expect(await value("dcn_rpc_requests_total", { method: "eth_chainId", outcome: "ok" })).toBe(2);
    expect(await value("dcn_rpc_requests_total", { method: "eth_getBalance", outcome: "-32602" })).toBe(1);
    // A name the server does not serve is "unknown": clients cannot grow the label set.
    expect(await value("dcn_rpc_requests_total", { method: "unknown", outcome: "-32601" })).toBe(1);
    expect(await value("dcn_rpc_requests_total", { method: "eth_subscribe", outcome: "ok" })).toBe(1);
    expect(await value("dcn_rpc_request_duration_seconds_count", { method: "eth_chainId" })).toBe(2);
    expect(await value("dcn_rpc_filters")).toBe(1);
    expect(await value("dcn_rpc_ws_connections")).toBe(1);
    expect(await value("dcn_rpc_subscriptions")).toBe(1);
    expect(await value("dcn_rpc_sync_waiters")).toBe(0);
    socket.terminate();
  });
});
