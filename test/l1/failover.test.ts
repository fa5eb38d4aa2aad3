// L1 endpoint failover (src/l1/failover.ts, config l1.fallbackRpcUrls). The transport alone: an endpoint failure moves
// the request and the endpoint in use to the next, an answer (a revert) does not, the primary comes back after the
// retry period. Then the L1 mirror against a real anvil behind a TCP proxy it can lose: closed, the mirror keeps
// confirming blocks through the fallback and says so (log by config key, never the URL; status, metrics); reopened,
// it returns to the primary; a primary that accepts connections and never answers costs one timeout, not one per poll.
import { connect, createServer, type Server, type Socket } from "node:net";
import { Registry } from "prom-client";
import { createPublicClient, custom, HttpRequestError, RpcRequestError } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AnvilProcess, jsonRpc, startAnvil } from "../../src/l1/anvil.ts";
import { failoverTransport } from "../../src/l1/failover.ts";
import { L1Mirror } from "../../src/l1/mirror.ts";

/** A transport whose requests `answer` handles, counting them. */
function fake(answer: (method: string) => unknown) {
  const calls: string[] = [];
  const transport = custom({
    async request({ method }: { method: string }) {
      calls.push(method);
      return answer(method);
    },
  });
  return { transport, calls };
}

describe("failoverTransport", () => {
  it("moves to the next endpoint on an endpoint failure, stays there, and tries the primary again later", async () => {
    let now = 0;
    let primaryDown = true;
    const primary = fake(() => {
      if (primaryDown) throw new HttpRequestError({ url: "http://primary.invalid", details: "connect ECONNREFUSED" });
      return "0x1";
    });
    const backup = fake(() => "0x2");
    const switches: [number, number, boolean][] = [];
    const t = failoverTransport(
      [primary.transport, backup.transport],
      { primaryRetryMs: 60_000, nowMs: () => now },
      { onSwitch: (from, to, error) => switches.push([from, to, error !== null]) },
    );
    const client = createPublicClient({ transport: t, cacheTime: 0 });
    expect(await client.getBlockNumber({ cacheTime: 0 })).toBe(2n);
    expect(t.state.active).toBe(1);
    expect(switches).toEqual([[0, 1, true]]);
    // Sticky: the primary is not asked again before the retry period.
    primary.calls.length = 0;
    for (let i = 0; i < 5; i++) await client.getBlockNumber({ cacheTime: 0 });
    expect(primary.calls).toEqual([]);
    now += 60_000;
    primaryDown = false;
    expect(await client.getBlockNumber({ cacheTime: 0 })).toBe(1n);
    expect(t.state.active).toBe(0);
    expect(switches).toEqual([
      [0, 1, true],
      [1, 0, false],
    ]);
  });

  it("passes an answer on (a revert), and the last endpoint's failure when every one fails", async () => {
    const reverting = fake(() => {
      throw new RpcRequestError({
        body: {},
        url: "http://primary.invalid",
        error: { code: 3, message: "execution reverted" },
      });
    });
    const backup = fake(() => "0x2");
    const t = failoverTransport([reverting.transport, backup.transport], { primaryRetryMs: 60_000 });
    const client = createPublicClient({ transport: t, cacheTime: 0 });
    await expect(client.call({ to: "0x0000000000000000000000000000000000000001", data: "0x" })).rejects.toThrow(
      /execution reverted/,
    );
    expect(backup.calls).toEqual([]);
    expect(t.state.active).toBe(0);

    const down = (name: string) =>
      fake(() => {
        throw new HttpRequestError({ url: `http://${name}.invalid`, details: `${name} is down` });
      });
    const both = failoverTransport([down("a").transport, down("b").transport], { primaryRetryMs: 60_000 });
    await expect(createPublicClient({ transport: both }).getChainId()).rejects.toThrow(/b is down/);
  });
});

/** A TCP proxy to `port` that can be closed (every connection cut) and opened again on the same port, or hang. */
class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  accepted = 0;
  port = 0;

  constructor(private readonly target: number) {}

  async open(mode: "forward" | "hang" = "forward"): Promise<void> {
    const server = createServer((client) => {
      this.accepted++;
      this.sockets.add(client);
      client.on("close", () => this.sockets.delete(client));
      client.on("error", () => {});
      if (mode === "hang") return;
      const upstream = connect(this.target, "127.0.0.1");
      this.sockets.add(upstream);
      upstream.on("close", () => this.sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** With an API key in the query, as hosted endpoints have them (anvil ignores the query). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/?apikey=SECRETKEY`;
  }
}

describe("the L1 mirror with a fallback endpoint", () => {
  let anvil: AnvilProcess;
  const stops: (() => Promise<void>)[] = [];
  const mine = (n: number) => jsonRpc(anvil.url, "anvil_mine", [`0x${n.toString(16)}`], 5_000);

  beforeAll(async () => {
    anvil = await startAnvil({ port: 0, chainId: 31_337n, args: [] });
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    await anvil?.stop();
  });

  async function open(primary: string, primaryRetryMs: number, fallback = anvil.url) {
    const logs: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    const registry = new Registry();
    const mirror = await L1Mirror.open(
      {
        rpcUrl: primary,
        fallbackRpcUrls: [fallback],
        primaryRetryMs,
        pollIntervalMs: 100,
        confirmations: 1,
        registry: null,
        dbPath: null,
        requestTimeoutMs: 500,
      },
      { registry, log: (level, msg, fields) => logs.push({ level, msg, fields: fields ?? {} }) },
    );
    await mirror.start();
    stops.push(() => mirror.stop());
    const metric = async (name: string) =>
      Number(/^(\S+) (\S+)$/m.exec((await registry.getSingleMetricAsString(name)).split("\n").at(-1) ?? "")?.[2]);
    return { mirror, logs, metric };
  }

  async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("keeps confirming blocks through the fallback when the primary goes away, and returns to it", async () => {
    const proxy = new TcpProxy(anvil.port);
    await proxy.open();
    stops.push(() => proxy.close());
    const { mirror, logs, metric } = await open(proxy.url, 2_000);
    await mine(3);
    await until("a confirmed block", () => (mirror.status().confirmedBlock ?? 0) > 0);
    expect(mirror.status()).toMatchObject({ connected: true, endpoint: 0 });
    expect(await metric("dcn_l1_endpoint")).toBe(0);

    await proxy.close();
    const before = mirror.status().confirmedBlock ?? 0;
    await mine(3);
    await until("blocks confirmed through the fallback", () => (mirror.status().confirmedBlock ?? 0) >= before + 3);
    expect(mirror.status()).toMatchObject({ connected: true, endpoint: 1, error: null });
    expect(await metric("dcn_l1_endpoint")).toBe(1);
    expect(await metric("dcn_l1_endpoint_switches_total")).toBe(1);
    const warn = logs.find((l) => l.msg === "L1 endpoint failed: switching to the next");
    expect(warn?.fields).toMatchObject({ from: "l1.rpcUrl", to: "l1.fallbackRpcUrls[0]" });
    // No log line or status field carries an endpoint's URL (they often embed API keys).
    for (const l of logs) expect(JSON.stringify(l)).not.toContain("SECRETKEY");
    expect(JSON.stringify(mirror.status())).not.toContain("SECRETKEY");

    const acceptedWhileDown = proxy.accepted;
    await proxy.open();
    await until("the primary in use again", () => mirror.status().endpoint === 0, 10_000);
    expect(logs.some((l) => l.msg === "trying the primary L1 endpoint (l1.rpcUrl) again")).toBe(true);
    await mine(2);
    const now = mirror.status().confirmedBlock ?? 0;
    await until("blocks confirmed through the primary", () => (mirror.status().confirmedBlock ?? 0) >= now + 2);
    expect(mirror.status().endpoint).toBe(0);
    expect(proxy.accepted).toBeGreaterThan(acceptedWhileDown);
    expect(await metric("dcn_l1_endpoint_switches_total")).toBe(2);
  }, 60_000);

  it("a primary that never answers costs one timeout, then every poll goes to the fallback", async () => {
    const hanging = new TcpProxy(anvil.port);
    await hanging.open("hang");
    stops.push(() => hanging.close());
    const { mirror } = await open(hanging.url, 60_000);
    await mine(2);
    await until("a confirmed block through the fallback", () => (mirror.status().confirmedBlock ?? 0) > 0);
    expect(mirror.status().endpoint).toBe(1);
    const accepted = hanging.accepted;
    const confirmed = mirror.status().confirmedBlock ?? 0;
    await mine(3);
    await until("more blocks", () => (mirror.status().confirmedBlock ?? 0) >= confirmed + 3);
    // About 10 polls later, none of them went to the hanging primary.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(hanging.accepted).toBe(accepted);
  }, 60_000);

  it("a fallback that serves another chain is refused: no block is confirmed from it", async () => {
    const other = await startAnvil({ port: 0, chainId: 31_338n, args: [] });
    stops.push(() => other.stop());
    const proxy = new TcpProxy(anvil.port);
    await proxy.open();
    stops.push(() => proxy.close());
    const { mirror } = await open(proxy.url, 2_000, other.url);
    await mine(2);
    await until("a confirmed block", () => (mirror.status().confirmedBlock ?? 0) > 0);
    await proxy.close();
    await until("the wrong chain refused", () => /serves chain 31338, not 31337/.test(mirror.status().error ?? ""));
    const confirmed = mirror.status().confirmedBlock;
    expect(mirror.status()).toMatchObject({ connected: false, chainId: 31337, endpoint: 1 });
    await proxy.open();
    await mine(2);
    await until(
      "back on the primary",
      () => mirror.status().connected && (mirror.status().confirmedBlock ?? 0) > (confirmed ?? 0),
    );
    expect(mirror.status()).toMatchObject({ chainId: 31337, endpoint: 0, error: null });
  }, 60_000);

  it("stops promptly with a WebSocket fallback that never completes its handshake", async () => {
    const hanging = new TcpProxy(anvil.port);
    await hanging.open("hang");
    stops.push(() => hanging.close());
    const mirror = await L1Mirror.open({
      rpcUrl: anvil.url,
      fallbackRpcUrls: [`ws://127.0.0.1:${hanging.port}`],
      pollIntervalMs: 100,
      confirmations: 1,
      registry: null,
      dbPath: null,
      requestTimeoutMs: 500,
    });
    await mirror.start();
    await mine(2);
    await until("a confirmed block", () => (mirror.status().confirmedBlock ?? 0) > 0);
    const started = Date.now();
    await mirror.stop();
    expect(Date.now() - started).toBeLessThan(2_500);
  }, 30_000);
});
