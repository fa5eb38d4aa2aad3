// The L1 status the mirror reports, against a real anvil: connected with chain id and head, following new blocks, metrics; when
// the L1 goes away: disconnected with a reason, errors counted, the last head kept, backoff growing to its cap, and
// never a throw. Over WebSocket too.
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AnvilProcess, jsonRpc, startAnvil } from "../../src/l1/anvil.ts";
import { L1Mirror } from "../../src/l1/mirror.ts";
import { L1_NOT_CONFIGURED } from "../../src/l1/status.ts";

let anvil: AnvilProcess;
beforeAll(async () => {
  anvil = await startAnvil({ port: 0, chainId: 31_337n, args: ["--silent"] });
});
afterAll(async () => {
  await anvil.stop();
});

async function metric(registry: Registry, name: string): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values[0]?.value;
}

describe("L1 status (the L1 mirror without a registry)", () => {
  it("reports chain id and head, follows new blocks, and exports metrics", async () => {
    const registry = new Registry();
    const logs: string[] = [];
    const poller = await L1Mirror.open(
      { rpcUrl: anvil.url, pollIntervalMs: 100, confirmations: 0, registry: null, dbPath: null },
      { registry, log: (level, msg) => logs.push(`${level} ${msg}`), nowMs: () => 1_000 },
    );
    expect(poller.status()).toEqual({ ...L1_NOT_CONFIGURED, configured: true, confirmations: 0, endpoint: 0 });
    await poller.pollOnce();
    const head = Number(await jsonRpc<string>(anvil.url, "eth_blockNumber", [], 2_000));
    expect(poller.status()).toEqual({
      configured: true,
      connected: true,
      chainId: 31337,
      headBlock: head,
      lastUpdateMs: 1_000,
      error: null,
      confirmations: 0,
      confirmedBlock: head,
      epoch: null,
      reorgs: 0,
      endpoint: 0,
    });
    await jsonRpc(anvil.url, "evm_mine", [], 2_000);
    await jsonRpc(anvil.url, "evm_mine", [], 2_000);
    await poller.pollOnce();
    expect(poller.status().headBlock).toBe(head + 2);
    expect(await metric(registry, "dcn_l1_head_block")).toBe(head + 2);
    expect(await metric(registry, "dcn_l1_connected")).toBe(1);
    expect(await metric(registry, "dcn_l1_rpc_errors_total")).toBe(0);
    expect(logs).toEqual(["info L1 endpoint answers"]); // once, not per poll
    await poller.stop();
  });

  it("polls on its own timer after start() until stop()", async () => {
    const poller = await L1Mirror.open({
      rpcUrl: anvil.url,
      pollIntervalMs: 100,
      confirmations: 0,
      registry: null,
      dbPath: null,
    });
    poller.start();
    const deadline = Date.now() + 5_000;
    while (!poller.status().connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(poller.status().connected).toBe(true);
    const before = poller.status().headBlock ?? 0;
    await jsonRpc(anvil.url, "evm_mine", [], 2_000);
    while ((poller.status().headBlock ?? 0) <= before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(poller.status().headBlock).toBe(before + 1);
    await poller.stop();
    await poller.stop(); // idempotent
  });

  it("speaks WebSocket when the URL says ws://", async () => {
    const poller = await L1Mirror.open({
      rpcUrl: anvil.url.replace("http://", "ws://"),
      pollIntervalMs: 100,
      confirmations: 0,
      registry: null,
      dbPath: null,
    });
    await poller.pollOnce();
    expect(poller.status()).toMatchObject({ connected: true, chainId: 31337, error: null });
    await poller.stop();
  });

  it("turns a dead L1 into connected: false with a reason, counts errors, keeps the last head and backs off", async () => {
    const l1 = await startAnvil({ port: 0, chainId: 900n, args: ["--silent"] });
    const registry = new Registry();
    const logs: string[] = [];
    const poller = await L1Mirror.open(
      {
        rpcUrl: l1.url,
        pollIntervalMs: 1_000,
        maxBackoffMs: 5_000,
        requestTimeoutMs: 1_000,
        confirmations: 0,
        registry: null,
        dbPath: null,
      },
      { registry, log: (level, msg) => logs.push(`${level} ${msg}`) },
    );
    await poller.pollOnce();
    expect(poller.status()).toMatchObject({ connected: true, chainId: 900, headBlock: 0 });
    expect(poller.nextDelayMs()).toBe(1_000);
    await l1.stop();

    await poller.pollOnce(); // must not throw
    const down = poller.status();
    expect(down.connected).toBe(false);
    expect(down.error).toMatch(/HTTP request failed.*ECONNREFUSED/);
    expect(down.error).not.toContain("http://"); // viem's details repeat the URL, which may hold an API key
    expect(down.headBlock).toBe(0);
    expect(down.chainId).toBe(900);
    expect(await metric(registry, "dcn_l1_connected")).toBe(0);
    expect(poller.nextDelayMs()).toBe(2_000);
    await poller.pollOnce();
    await poller.pollOnce();
    expect(poller.nextDelayMs()).toBe(5_000); // 8 s capped at maxBackoffMs
    expect(await metric(registry, "dcn_l1_rpc_errors_total")).toBe(3);
    expect(logs).toEqual(["info L1 endpoint answers", "warn L1 endpoint does not answer"]);
    await poller.stop();

    const keyed = await L1Mirror.open({
      rpcUrl: `${l1.url}/v3/secret-api-key`,
      pollIntervalMs: 1_000,
      confirmations: 0,
      registry: null,
      dbPath: null,
    });
    await keyed.pollOnce();
    expect(keyed.status().error).toMatch(/ECONNREFUSED/);
    expect(JSON.stringify(keyed.status())).not.toContain("secret-api-key");
    await keyed.stop();
  });
});
