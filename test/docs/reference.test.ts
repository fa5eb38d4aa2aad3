// Generated and hand-written references stay true: docs/config-reference.md is what scripts/gen-config-docs.ts
// renders from the config schema now, docs/metrics.md names exactly the metrics a node registers, and docs/rpc.md
// every Ethereum method the server answers.
import { readFileSync } from "node:fs";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createMetrics as createNetworkMetrics } from "../../p2p/metrics.ts";
import { CONFIG_REFERENCE_PATH, renderConfigReference } from "../../scripts/gen-config-docs.ts";
import { L1Mirror } from "../../src/l1/mirror.ts";
import { createMetrics } from "../../src/node/metrics.ts";
import type { RpcBackend } from "../../src/rpc/backend.ts";
import { DEFAULT_FILTER_LIMITS, FilterRegistry } from "../../src/rpc/filters.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "../../src/rpc/methods.ts";
import { createRpcMetrics } from "../../src/rpc/metrics.ts";

describe("docs/config-reference.md", () => {
  it("is what `npm run docs:config` renders from the schema (run it after changing src/config/config.ts)", () => {
    const committed = readFileSync(CONFIG_REFERENCE_PATH, "utf8");
    expect(committed, "docs/config-reference.md is stale: run `npm run docs:config`").toBe(renderConfigReference());
  });

  it("documents every section and field, the l1 section included", () => {
    const text = renderConfigReference();
    for (const key of ["`role`", "`dataDir`", "`p2p.peers`", "`consensus.timeoutProposeMs`", "`metrics.port`"]) {
      expect(text).toContain(key);
    }
    expect(text).toMatch(/## `l1` \(optional; off when absent\)/);
    expect(text).toMatch(/\| `l1\.rpcUrl` \| string \| required \(e\.g\. `"http:\/\/127\.0\.0\.1:8645"`\)/);
    expect(text).toMatch(/\| `l1\.pollIntervalMs` \| integer \| `2000` \| 100 to 600000 \|/);
  });
});

describe("docs/metrics.md", () => {
  it("lists every metric the node registers (consensus, p2p, JSON-RPC, L1) and no metric that does not exist", async () => {
    const registry = new Registry();
    const nodeMetrics = createMetrics({ defaultMetrics: true });
    createNetworkMetrics(nodeMetrics.registry, () => 0);
    const none = () => 0;
    createRpcMetrics(nodeMetrics.registry, () => true, {
      wsConnections: none,
      subscriptions: none,
      filters: none,
      syncWaiters: none,
    });
    const mirror = await L1Mirror.open(
      { rpcUrl: "http://127.0.0.1:1", pollIntervalMs: 1000, confirmations: 2, registry: null, dbPath: null },
      { registry },
    );
    const names = [
      ...nodeMetrics.registry.getMetricsAsArray().map((m) => m.name),
      ...registry.getMetricsAsArray().map((m) => m.name),
    ];
    await mirror.stop();
    const doc = readFileSync(new URL("../../docs/metrics.md", import.meta.url), "utf8");
    const documented = new Set([...doc.matchAll(/`(dcn_[a-z0-9_]+)`/g)].map((m) => m[1]));
    const runtime = (n: string) => n.startsWith("dcn_process_") || n.startsWith("dcn_nodejs_");
    const missing = names.filter((n) => !runtime(n) && !documented.has(n));
    expect(missing, "metrics missing from docs/metrics.md").toEqual([]);
    const unknown = [...documented].filter((n) => n !== undefined && !names.includes(n));
    expect(unknown, "docs/metrics.md names metrics that do not exist").toEqual([]);
    expect(names.filter(runtime).length).toBeGreaterThan(5); // the default metrics are there, under the dcn_ prefix
  });
});

describe("docs/rpc.md", () => {
  it("names every Ethereum and lumia method the server answers", () => {
    const text = readFileSync("docs/rpc.md", "utf8");
    const backend = { chainId: 1n } as RpcBackend;
    const filters = new FilterRegistry(backend, DEFAULT_FILTER_LIMITS, async () => ({ ok: true, result: [] }));
    const names = [...createMethods(backend, DEFAULT_METHOD_LIMITS).keys(), ...filters.methods.keys()];
    expect(names.length).toBeGreaterThan(40);
    const missing = names.filter((name) => !text.includes(`\`${name}`));
    expect(missing, "methods missing from docs/rpc.md").toEqual([]);
    filters.close();
  });
});
