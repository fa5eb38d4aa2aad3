// Generated and hand-written references stay true: docs/config-reference.md is what scripts/gen-config-docs.ts
// renders from the config schema now, docs/metrics.md names exactly the metrics a node registers, and docs/rpc.md
// every Ethereum method the server answers; docs/protocol.md and docs/storage.md give the header offsets and the
// versions the code uses.
import { readFileSync } from "node:fs";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createMetrics as createNetworkMetrics } from "../../p2p/metrics.ts";
import { CONFIG_REFERENCE_PATH, renderConfigReference } from "../../scripts/gen-config-docs.ts";
import { BLOCK_VERSION, type BlockHeader, EMPTY_BLOOM, encodeHeader } from "../../src/chain/block.ts";
import { GENESIS_VERSION } from "../../src/config/genesis.ts";
import { L1Mirror } from "../../src/l1/mirror.ts";
import { createMetrics } from "../../src/node/metrics.ts";
import type { RpcBackend } from "../../src/rpc/backend.ts";
import { DEFAULT_FILTER_LIMITS, FilterRegistry } from "../../src/rpc/filters.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "../../src/rpc/methods.ts";
import { createRpcMetrics } from "../../src/rpc/metrics.ts";
import { SCHEMA_VERSION } from "../../src/storage/chain-store.ts";

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

describe("docs/protocol.md", () => {
  const text = readFileSync("docs/protocol.md", "utf8");

  it("gives the header's version and the byte offsets the encoder writes, which OutputOracle reads", () => {
    const zero = `0x${"00".repeat(32)}` as const;
    const base: BlockHeader = {
      chainId: 1n,
      height: 1,
      timestampMs: 1,
      parentHash: zero,
      l1Origin: { number: 0n, hash: zero },
      proposer: `0x${"00".repeat(20)}`,
      validatorSetId: zero,
      nextValidatorSetId: zero,
      lastCertificateHash: zero,
      depositsHash: zero,
      nextDepositNonce: 0n,
      transactionsRoot: zero,
      receiptsRoot: zero,
      stateRoot: zero,
      gasLimit: 0n,
      gasUsed: 0n,
      baseFeePerGas: 0n,
      logsBloom: EMPTY_BLOOM,
      vmRoots: [{ vm: 1, root: zero }],
    };
    const one = `0x${"ff".repeat(32)}` as const;
    // Each documented field, changed alone in every byte it has (the vmRoots: in its count's last byte and the
    // first entry's vm id), and its width: the field's offset is the last byte that differs minus width - 1.
    const fields: Record<string, [(h: BlockHeader) => BlockHeader, number]> = {
      chainId: [(h) => ({ ...h, chainId: 2n ** 64n - 1n }), 8],
      height: [(h) => ({ ...h, height: 2 ** 53 - 1 }), 8],
      timestampMs: [(h) => ({ ...h, timestampMs: 2 ** 53 - 1 }), 8],
      parentHash: [(h) => ({ ...h, parentHash: one }), 32],
      "l1Origin (number)": [(h) => ({ ...h, l1Origin: { number: 2n ** 64n - 1n, hash: zero } }), 8],
      "l1Origin (hash)": [(h) => ({ ...h, l1Origin: { number: 0n, hash: one } }), 32],
      proposer: [(h) => ({ ...h, proposer: `0x${"ff".repeat(20)}` }), 20],
      validatorSetId: [(h) => ({ ...h, validatorSetId: one }), 32],
      nextValidatorSetId: [(h) => ({ ...h, nextValidatorSetId: one }), 32],
      lastCertificateHash: [(h) => ({ ...h, lastCertificateHash: one }), 32],
      depositsHash: [(h) => ({ ...h, depositsHash: one }), 32],
      nextDepositNonce: [(h) => ({ ...h, nextDepositNonce: 2n ** 64n - 1n }), 8],
      transactionsRoot: [(h) => ({ ...h, transactionsRoot: one }), 32],
      receiptsRoot: [(h) => ({ ...h, receiptsRoot: one }), 32],
      stateRoot: [(h) => ({ ...h, stateRoot: one }), 32],
      gasLimit: [(h) => ({ ...h, gasLimit: 2n ** 64n - 1n }), 8],
      gasUsed: [(h) => ({ ...h, gasUsed: 2n ** 64n - 1n }), 8],
      baseFeePerGas: [(h) => ({ ...h, baseFeePerGas: 2n ** 64n - 1n }), 8],
      logsBloom: [(h) => ({ ...h, logsBloom: `0x${"ff".repeat(256)}` }), 256],
      "vmRoots count": [(h) => ({ ...h, vmRoots: [] }), 4],
      "first vmRoots entry": [(h) => ({ ...h, vmRoots: [{ vm: 2, root: zero }] }), 1],
    };
    const encoded = encodeHeader(base);
    const paragraph = /Fixed byte offsets of the header[\s\S]*?\n\n/.exec(text)?.[0].replace(/\s+/g, " ") ?? "";
    const documented = (name: string) => {
      const m = /^l1Origin \((number|hash)\)$/.exec(name);
      const pattern = m ? `(\\d+) \\(${m[1]}\\)` : `${name.replace(/[()]/g, "\\$&")} (\\d+)`;
      return Number(new RegExp(pattern).exec(paragraph)?.[1]);
    };
    const offsets: Record<string, number> = {};
    for (const [name, [change, width]] of Object.entries(fields)) {
      const other = encodeHeader(change(base));
      const last = encoded.findLastIndex((b, i) => i < other.length && b !== other[i]);
      offsets[name] = last - width + 1;
      expect(documented(name), `offset of ${name}`).toBe(offsets[name]);
    }
    expect(text).toContain(`header (version ${BLOCK_VERSION}): version u8 (= ${BLOCK_VERSION})`);
    const oracle = readFileSync("staking-contracts/src/OutputOracle.sol", "utf8");
    const constant = (name: string) => Number(new RegExp(`${name} = (\\d+);`).exec(oracle)?.[1]);
    expect(oracle).toContain(`Header v${BLOCK_VERSION} byte offsets`);
    expect(constant("CHAIN_ID_OFFSET")).toBe(offsets.chainId);
    expect(constant("HEIGHT_OFFSET")).toBe(offsets.height);
    expect(constant("VALIDATOR_SET_ID_OFFSET")).toBe(offsets.validatorSetId);
    expect(constant("STATE_ROOT_OFFSET")).toBe(offsets.stateRoot);
    expect(constant("VM_COUNT_OFFSET")).toBe(offsets["vmRoots count"]);
    expect(constant("VM_ROOTS_OFFSET")).toBe(offsets["first vmRoots entry"]);
  });

  it("gives the genesis encoding's version and the genesis hash test/config/genesis.test.ts pins", () => {
    expect(text).toContain(`| version                        | u8, \`${GENESIS_VERSION}\``);
    const pinned = /expect\(genesis\.hash\)\.toBe\("(0x[0-9a-f]{64})"\)/.exec(
      readFileSync("test/config/genesis.test.ts", "utf8"),
    )?.[1];
    expect(pinned).toBeDefined();
    expect(text).toContain(`four-validator genesis (\`${pinned}\`)`);
  });
});

describe("docs/storage.md", () => {
  it("gives the store's schema version", () => {
    expect(readFileSync("docs/storage.md", "utf8")).toContain(`the version, now ${SCHEMA_VERSION}, changes`);
  });
});
