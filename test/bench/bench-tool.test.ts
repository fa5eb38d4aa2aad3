// `dcn bench` in-process against a 3-validator subnet of real `dcn start` processes: 200 senders funded in setup,
// 100 tx/s for 5 s through JSON-RPC, completion through newHeads and certificate subscriptions. Checks that every
// transaction is committed and certified, that the report has its fields with ordered percentiles and per-node CPU
// found through /proc, and that chart.svg is well-formed XML with its two series. No speed is asserted. The pure
// helpers (percentiles, signing, exec-bench parsing, profile summary) are checked first.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTransaction, recoverTransactionAddress, type TransactionSerializedEIP1559 } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { defaultBenchOptions, runBench, workloadRate } from "../../src/bench/bench.ts";
import type { RunResult } from "../../src/bench/load.ts";
import { areaOf, summarizeProfile } from "../../src/bench/profile.ts";
import { renderChart } from "../../src/bench/report.ts";
import { percentile, summarize } from "../../src/bench/stats.ts";
import { parseExecBenchOutput } from "../../src/bench/targets.ts";
import { benchAccounts, createdAddress, erc20TransferData, signEip1559 } from "../../src/bench/tx.ts";
import { Cluster } from "../e2e/cluster.ts";

/**
 * Well-formedness of the XML the chart writer emits: one root, properly nested and closed tags, quoted attributes,
 * no raw `<` or stray `&` in text or attribute values. Returns the problem, or null.
 */
function xmlProblem(text: string): string | null {
  const stack: string[] = [];
  let roots = 0;
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, "");
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|([^<]+)|(<)/g;
  for (const m of body.matchAll(token)) {
    const [whole, closing, name, attrs, selfClosing, textPart, strayLt] = m;
    if (strayLt !== undefined) return `stray '<' at ${m.index}: ${body.slice(m.index, m.index + 40)}`;
    if (textPart !== undefined) {
      if (stack.length === 0 && textPart.trim() !== "") return `text outside the root: ${textPart.slice(0, 40)}`;
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(textPart)) return `bare '&' in text: ${textPart.slice(0, 40)}`;
      continue;
    }
    if (whole.startsWith("<!--")) continue;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(attrs ?? "")) return `bare '&' in attributes of <${name}>`;
    if (closing === "/") {
      if (stack.pop() !== name) return `</${name}> closes nothing open`;
      continue;
    }
    if (stack.length === 0) roots++;
    if (selfClosing !== "/") stack.push(name as string);
  }
  if (stack.length > 0) return `unclosed <${stack.join("> <")}>`;
  return roots === 1 ? null : `${roots} root elements`;
}

describe("bench helpers", () => {
  it("percentiles are exact nearest-rank values and ordered", () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 95)).toBe(95);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile([7], 1)).toBe(7);
    expect(() => percentile(sorted, 0)).toThrow(RangeError);
    const s = summarize([5, 1, 4, 2, 3]);
    expect(s).toMatchObject({ count: 5, minMs: 1, p50Ms: 3, p95Ms: 5, p99Ms: 5, maxMs: 5, meanMs: 3 });
    expect(summarize([])).toBeNull();
  });

  it("signs EIP-1559 transactions that viem parses and recovers to the sender", async () => {
    const [alice, bob] = benchAccounts("test", 2);
    if (alice === undefined || bob === undefined) throw new Error("two accounts expected");
    expect(benchAccounts("test", 2)[1]?.address).toBe(bob.address);
    const signed = signEip1559(
      {
        chainId: 31_337_001n,
        nonce: 7,
        maxPriorityFeePerGas: 1_000_000_000n,
        maxFeePerGas: 100_000_000_000n,
        gas: 60_000n,
        to: bob.address,
        value: 0n,
        data: erc20TransferData(alice.address, 5n),
      },
      alice.privateKey,
    );
    const serialized = toHex(signed.raw) as TransactionSerializedEIP1559;
    const parsed = parseTransaction(serialized);
    expect(parsed).toMatchObject({ type: "eip1559", chainId: 31_337_001, nonce: 7, gas: 60_000n, to: bob.address });
    expect(parsed.data?.slice(0, 10)).toBe("0xa9059cbb");
    expect((await recoverTransactionAddress({ serializedTransaction: serialized })).toLowerCase()).toBe(alice.address);
    // The address a contract gets: the well-known first contract of Hardhat's first account.
    expect(createdAddress("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", 0)).toBe(
      "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    );
  });

  it("reads the one-core execution figures from exec.bench.ts's table", () => {
    const out = [
      "execution bench: 500 txs/block, median of 5 blocks after 1 warm-up, sender recovery native",
      "workload            core tx/s  bare vm tx/s   ratio",
      "transfers                2210           311   7.11x",
      "ERC-20 transfers          905           240   3.77x",
    ].join("\n");
    const rates = parseExecBenchOutput(out);
    expect(rates).toEqual({
      transfers: { core: 2210, bare: 311, pooled: null },
      erc20: { core: 905, bare: 240, pooled: null },
    });
    // The current table adds the core on pooled (already decoded) transactions.
    const withPooled = [
      "execution bench: 500 txs/block, median of 5 blocks after 1 warm-up, tx per CPU second, sender recovery native",
      "workload            core tx/s  bare vm tx/s   ratio  core, pooled tx/s   ratio",
      "transfers                1592           237   6.71x               2208   9.30x",
      "ERC-20 transfers          544           139   3.90x                624   4.48x",
    ].join("\n");
    expect(parseExecBenchOutput(withPooled)).toEqual({
      transfers: { core: 1592, bare: 237, pooled: 2208 },
      erc20: { core: 544, bare: 139, pooled: 624 },
    });
    expect(workloadRate(311, 240, "transfers")).toBe(311);
    expect(workloadRate(311, 240, "mix")).toBeCloseTo(2 / (1 / 311 + 1 / 240), 6);
    expect(() => parseExecBenchOutput("transfers NaN 300 NaNx")).toThrow(/no core and bare figures/);
  });

  it("sums self time per function and per area of a CPU profile", () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
    const summary = summarizeProfile({
      nodes: [
        { id: 1, callFrame: frame("(root)", "") },
        { id: 2, callFrame: frame("verify", "file:///x/node_modules/@chainsafe/blst/index.js") },
        { id: 3, callFrame: frame("runTx", "file:///x/node_modules/@ethereumjs/vm/dist/esm/runTx.js") },
        { id: 4, callFrame: frame("(idle)", "") },
      ],
      samples: [2, 2, 3, 4, 2],
      timeDeltas: [1000, 1000, 2000, 5000, 1000],
    });
    expect(summary.idleMs).toBe(5);
    expect(summary.top[0]).toMatchObject({ function: "verify", area: "BLS", selfMs: 3, selfPercent: 60 });
    expect(summary.areas.map((a) => a.area)).toEqual(["BLS", "EVM"]);
    expect(areaOf("keccak_256", "file:///x/node_modules/@noble/hashes/sha3.js")).toBe("keccak");
    expect(areaOf("handle", "file:///x/src/rpc/server.ts")).toBe("JSON-RPC");
  });
});

describe("dcn bench against a 3-validator subnet", () => {
  let cluster: Cluster;
  let outDir: string;

  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), "dcn-bench-test-"));
    cluster = await Cluster.create({ validators: 3, replicas: 0 });
    for (const v of cluster.validators) cluster.start(v.name);
    await cluster.waitForHeight(
      cluster.validators.map((v) => v.name),
      2,
      60_000,
    );
    // Starting processes on 2 shared cores can be slow; the bench itself takes ~15 s of the test's time.
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
    if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
  });

  it("commits and certifies every transaction and writes the report and the chart", async () => {
    const lines: string[] = [];
    const outcome = await runBench(
      defaultBenchOptions({
        targets: ["devnet"],
        rpc: cluster.validators.map((v) => v.rpc),
        workload: "transfers",
        rates: [100],
        durationS: 5,
        senders: 200,
        // Generous: on 2 cores shared with other suites, a loaded subnet can take many seconds per block.
        drainTimeoutS: 30,
        outDir,
        log: (line) => lines.push(line),
      }),
    );
    expect(outcome.errors, lines.join("\n")).toEqual([]);

    const report = JSON.parse(await readFile(join(outDir, "report.json"), "utf8")) as {
      runs: RunResult[];
      machine: Record<string, unknown>;
      summary: { target: string; capacityTps: number }[];
    };
    expect(report.machine).toMatchObject({ cpus: expect.any(Number), node: process.version });
    expect(report.runs).toHaveLength(1);
    const run = report.runs[0] as RunResult;
    expect(run, lines.join("\n")).toMatchObject({
      workload: "transfers",
      offeredTps: 100,
      durationS: 5,
      senders: 200,
      endpoints: 3,
      planned: 500,
      sent: 500,
      accepted: 500,
      rejected: 0,
      committed: 500,
      certified: 500,
      uncommitted: 0,
      receiptsChecked: 500,
      receiptsFailed: 0,
    });
    expect(run.sustainedTps).toBeGreaterThan(0);
    expect(run.blocks).toBeGreaterThan(0);
    for (const latency of [run.receiptLatency, run.certificateLatency]) {
      expect(latency?.count).toBe(500);
      if (latency === null) throw new Error("latency summary missing");
      expect(latency.minMs).toBeGreaterThan(0);
      expect(latency.p50Ms).toBeGreaterThanOrEqual(latency.minMs);
      expect(latency.p95Ms).toBeGreaterThanOrEqual(latency.p50Ms);
      expect(latency.p99Ms).toBeGreaterThanOrEqual(latency.p95Ms);
      expect(latency.maxMs).toBeGreaterThanOrEqual(latency.p99Ms);
    }
    // Every node process was found through /proc and charged CPU and memory.
    expect(run.processes).toHaveLength(3);
    for (const p of run.processes) {
      expect(p.pid).toEqual(expect.any(Number));
      expect(p.cpuMsPerTx).toBeGreaterThan(0);
      expect(p.maxRssMb).toBeGreaterThan(10);
    }
    expect(run.series.reduce((sum, s) => sum + s.sent, 0)).toBe(500);
    expect(run.series.reduce((sum, s) => sum + s.committed, 0)).toBe(500);
    expect(report.summary[0]?.capacityTps).toBe(run.sustainedTps);
    // Transactions and votes travel one hop between validators: each took what the others' clients sent and what
    // the others signed, and relayed none of it.
    const verdicts = (name: string, topic: string, code: string) =>
      cluster.metric(name, "dcn_p2p_gossip_messages_total", [`${topic}"`, 'verdict="accept"', `code="${code}"`]);
    let txsFromPeers = 0;
    for (const v of cluster.validators) {
      expect(await verdicts(v.name, "transactions/2", "ok"), v.name).toBe(0);
      expect(await verdicts(v.name, "transactions/2", "not_forwarded"), v.name).toBeGreaterThan(0);
      expect(await verdicts(v.name, "votes/1", "ok"), v.name).toBe(0);
      expect(await verdicts(v.name, "votes/1", "not_forwarded"), v.name).toBeGreaterThan(0);
      txsFromPeers += await cluster.metric(v.name, "dcn_mempool_admissions_total", ['source="peer"', 'result="ok"']);
    }
    // Each transaction reached the validator its client chose, and the two others pooled it from that one's gossip
    // (unless the block holding it committed first there); the workload's funding transactions count too.
    expect(txsFromPeers).toBeGreaterThanOrEqual(500);

    const md = await readFile(join(outDir, "report.md"), "utf8");
    expect(md).toContain("| target | workload | offered tx/s | sent tx/s | sustained tx/s |");
    expect(md).toMatch(/\| subnet \(3 nodes\) \| transfers \| 100 \|/);

    const svg = await readFile(join(outDir, "chart.svg"), "utf8");
    expect(xmlProblem(svg)).toBeNull();
    const series = [...svg.matchAll(/<polyline class="series" data-series="([^"]+)" points="([^"]*)"/g)];
    expect(series.map((m) => m[1])).toEqual(["committed-tps", "receipt-p50-ms"]);
    for (const m of series) expect((m[2] ?? "").trim().split(/\s+/).length).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it("the XML check refuses what a broken chart writer would produce", () => {
    expect(xmlProblem("<svg><g></svg>")).not.toBeNull();
    expect(xmlProblem('<svg><text x="1">a < b</text></svg>')).not.toBeNull();
    expect(xmlProblem('<svg><text x="1">R&D</text></svg>')).not.toBeNull();
    expect(xmlProblem(renderChart([]))).toBeNull();
  });
});
