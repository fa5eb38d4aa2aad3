// A subnet of real `dcn start` processes, each in its own network namespace of a NetLab (test/faults/netlab.ts):
// the keys, genesis and configs of `prepareDevnet` (no L1), rewritten so that node i listens on its namespace's
// address and dials the others there. The harness reaches every node's status and JSON-RPC through the bridge, also
// while the links between nodes are cut. Checks: one chain across nodes (block hash per height over JSON-RPC), and,
// after stop(), every stored chain verified from disk (test/e2e/chain.ts) with the evidence it holds.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Hex } from "../../consensus/bytes.ts";
import type { Evidence } from "../../consensus/types.ts";
import { HttpRpc } from "../../src/bench/rpc.ts";
import { type DevnetPlan, fetchStatus, type NodeStatusJson, prepareDevnet, stopChild } from "../../src/cli/devnet.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { type ChainReport, readChain } from "../e2e/chain.ts";
import { TEST_CONSENSUS } from "../e2e/cluster.ts";
import { NetLab } from "./netlab.ts";

const DCN_BIN = fileURLToPath(new URL("../../bin/dcn.mjs", import.meta.url));
const P2P_PORT = 26656;
const METRICS_PORT = 9100;
const RPC_PORT = 8545;
export const FAULT_CHAIN_ID = 31_337_077n;
const RPC_TIMEOUT_MS = 3_000;
/** Heights compared per JSON-RPC batch. */
const HEIGHTS_PER_BATCH = 100;

export interface FaultNode {
  readonly index: number;
  readonly name: string;
  readonly role: "validator" | "replica";
  readonly dir: string;
  readonly ns: string;
  readonly ip: string;
  readonly metrics: string;
  readonly rpc: string;
  readonly p2p: string;
  readonly peerId: string;
}

/** Two nodes hold different blocks at one height: a fork (a safety violation). */
export interface ForkReport {
  readonly height: number;
  readonly hashes: Readonly<Record<string, Hex | null>>;
}

export class FaultSubnet {
  private readonly children = new Map<number, ChildProcess>();
  private readonly rpcs: HttpRpc[];

  private constructor(
    readonly lab: NetLab,
    readonly plan: DevnetPlan,
    readonly nodes: readonly FaultNode[],
  ) {
    this.rpcs = nodes.map((n) => new HttpRpc(n.rpc, { connections: 4, timeoutMs: RPC_TIMEOUT_MS }));
  }

  static async create(opts: {
    readonly prefix: string;
    readonly validators: number;
    readonly replicas?: number;
    readonly consensus?: Readonly<Record<string, number>>;
    /** storage.stateHistory of every node (the node's default when absent). */
    readonly stateHistory?: number;
  }): Promise<FaultSubnet> {
    const replicas = opts.replicas ?? 0;
    const total = opts.validators + replicas;
    const lab = await NetLab.create(opts.prefix, total);
    try {
      const dir = mkdtempSync(join(tmpdir(), `dcn-faults-${opts.prefix}-`));
      const plan = await prepareDevnet({
        dir,
        validators: opts.validators,
        replicas,
        basePort: P2P_PORT,
        metricsBasePort: METRICS_PORT,
        rpcBasePort: RPC_PORT,
        fresh: true,
        chainId: FAULT_CHAIN_ID,
        consensus: opts.consensus ?? TEST_CONSENSUS,
        logLevel: "info",
        ...(opts.stateHistory === undefined ? {} : { storage: { stateHistory: opts.stateHistory } }),
      });
      const nodes = plan.nodes.map((n, i): FaultNode => {
        const ip = lab.nodes[i]?.ip ?? "";
        return {
          index: i,
          name: n.name,
          role: n.role,
          dir: n.dir,
          ns: lab.nodes[i]?.ns ?? "",
          ip,
          metrics: `http://${ip}:${METRICS_PORT}`,
          rpc: `http://${ip}:${RPC_PORT}`,
          p2p: `/ip4/${ip}/tcp/${P2P_PORT}/p2p/${n.identity.peerId}`,
          peerId: n.identity.peerId,
        };
      });
      for (const n of nodes) {
        const path = plan.nodes[n.index]?.configPath ?? "";
        const config = JSON.parse(await readFile(path, "utf8")) as Record<string, Record<string, unknown>>;
        config.p2p = {
          ...config.p2p,
          listen: [`/ip4/${n.ip}/tcp/${P2P_PORT}`],
          peers: nodes.filter((o) => o !== n).map((o) => o.p2p),
        };
        config.metrics = { ...config.metrics, host: n.ip, port: METRICS_PORT };
        config.rpc = { ...config.rpc, host: n.ip, port: RPC_PORT };
        await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
      }
      return new FaultSubnet(lab, plan, nodes);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
  }

  get validators(): FaultNode[] {
    return this.nodes.filter((n) => n.role === "validator");
  }

  node(i: number): FaultNode {
    const n = this.nodes[i];
    if (n === undefined) throw new RangeError(`no node ${i}`);
    return n;
  }

  rpc(i: number): HttpRpc {
    const r = this.rpcs[i];
    if (r === undefined) throw new RangeError(`no node ${i}`);
    return r;
  }

  /**
   * Starts `dcn start` inside node i's namespace (`ip netns exec` execs node: the child's pid is the node's), with
   * `env` added to the harness's environment (e.g. DCN_FAILPOINT).
   */
  start(i: number, env: Readonly<Record<string, string>> = {}): void {
    if (this.children.has(i)) throw new Error(`${this.node(i).name} is running`);
    const n = this.node(i);
    const configPath = this.plan.nodes[i]?.configPath ?? "";
    const out = openSync(join(n.dir, "node.log"), "a");
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        n.ns,
        process.execPath,
        DCN_BIN,
        "start",
        "--config",
        configPath,
        "--parent-pid",
        String(process.pid),
      ],
      { stdio: ["ignore", out, out], env: { ...process.env, ...env }, detached: true },
    );
    this.children.set(i, child);
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n.index);
  }

  /** Resident memory of node i's process in MiB (Linux /proc), NaN when it is not running. */
  rssMiB(i: number): number {
    const pid = this.children.get(i)?.pid;
    if (pid === undefined) return Number.NaN;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m === null ? Number.NaN : Number(m[1]) / 1024;
    } catch {
      return Number.NaN;
    }
  }

  running(i: number): boolean {
    const c = this.children.get(i);
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /**
   * Waits until node i's process ends by itself (a failpoint's SIGKILL); resolves with its signal and forgets the
   * child, so start(i) may run it again. Throws on timeout.
   */
  async waitForExit(i: number, timeoutMs: number): Promise<NodeJS.Signals | number | null> {
    const c = this.children.get(i);
    if (c === undefined) throw new Error(`${this.node(i).name} is not running`);
    await this.waitFor(
      `${this.node(i).name} to exit`,
      async () => c.exitCode !== null || c.signalCode !== null,
      timeoutMs,
    );
    this.children.delete(i);
    return c.signalCode ?? c.exitCode;
  }

  /** Heights 1..head at which node i answers no block over JSON-RPC (a committed block lost): must be none. */
  async holes(i: number): Promise<number[]> {
    const head = await this.height(i);
    const table = await this.blockHashes([i]);
    const missing: number[] = [];
    for (const [height, hashes] of table) if (height <= head && hashes[0] === null) missing.push(height);
    return missing;
  }

  /** SIGKILL: no shutdown path runs; the node restarts from what its disk holds. */
  kill9(i: number): void {
    const c = this.children.get(i);
    if (c === undefined) throw new Error(`${this.node(i).name} is not running`);
    c.kill("SIGKILL");
    this.children.delete(i);
  }

  async stop(i: number): Promise<void> {
    const c = this.children.get(i);
    if (c === undefined) return;
    this.children.delete(i);
    await stopChild(c, 5_000);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children.keys()].map((i) => this.stop(i)));
  }

  status(i: number): Promise<NodeStatusJson | null> {
    return fetchStatus(this.node(i).metrics, 1_500);
  }

  async height(i: number): Promise<number> {
    return (await this.status(i))?.headHeight ?? -1;
  }

  async heights(indices: readonly number[] = this.nodes.map((n) => n.index)): Promise<number[]> {
    return Promise.all(indices.map((i) => this.height(i)));
  }

  /** Sum of a metric over the series whose labels contain every fragment. */
  async metric(i: number, metric: string, labels: readonly string[] = []): Promise<number> {
    try {
      const res = await fetch(`${this.node(i).metrics}/metrics`, { signal: AbortSignal.timeout(2_000) });
      let sum = 0;
      for (const line of (await res.text()).split("\n")) {
        if (!labels.every((l) => line.includes(l))) continue;
        if (line.startsWith(metric) && (line[metric.length] === " " || line[metric.length] === "{")) {
          sum += Number(line.slice(line.lastIndexOf(" ") + 1));
        }
      }
      return sum;
    } catch {
      return Number.NaN;
    }
  }

  /** Polls `check` every 200 ms; fails with the statuses and log tails. */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return Date.now() - started;
      await sleep(200);
    }
    const statuses = await Promise.all(
      this.nodes.map(async (n) => `${n.name}: ${JSON.stringify(await this.status(n.index))}`),
    );
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}\n${statuses.join("\n")}\n${this.logTails(12)}`,
    );
  }

  /** Waits until every node in `indices` is at `height` or above; returns the wait in ms. */
  waitForHeight(indices: readonly number[], height: number, timeoutMs: number): Promise<number> {
    return this.waitFor(
      `${indices.map((i) => this.node(i).name).join(",")} at height >= ${height}`,
      async () => (await this.heights(indices)).every((h) => h >= height),
      timeoutMs,
    );
  }

  logTails(lines: number): string {
    return this.nodes
      .map((n) => {
        try {
          const text = readFileSync(join(n.dir, "node.log"), "utf8");
          return `--- ${n.name}\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`;
        } catch {
          return `--- ${n.name}: no log`;
        }
      })
      .join("\n");
  }

  /** Block hash per height per answering node, heights 1..max head; null where a node has no block yet. */
  async blockHashes(indices: readonly number[]): Promise<Map<number, (Hex | null)[]>> {
    const heads = await this.heights(indices);
    const top = Math.max(0, ...heads);
    const table = new Map<number, (Hex | null)[]>();
    for (let from = 1; from <= top; from += HEIGHTS_PER_BATCH) {
      const to = Math.min(top, from + HEIGHTS_PER_BATCH - 1);
      const calls: { method: string; params: unknown[] }[] = [];
      for (let h = from; h <= to; h++)
        calls.push({ method: "eth_getBlockByNumber", params: [`0x${h.toString(16)}`, false] });
      const answers = await Promise.all(
        indices.map((i) =>
          this.rpc(i)
            .batch(calls)
            .catch(() => null),
        ),
      );
      for (let h = from; h <= to; h++) {
        table.set(
          h,
          answers.map((a) => {
            const o = a?.[h - from];
            return o?.ok === true && o.result !== null ? ((o.result as { hash: Hex }).hash ?? null) : null;
          }),
        );
      }
    }
    return table;
  }

  /** Heights at which two of the answering nodes hold different blocks. */
  async forks(indices: readonly number[] = this.nodes.map((n) => n.index)): Promise<ForkReport[]> {
    const forks: ForkReport[] = [];
    for (const [height, hashes] of await this.blockHashes(indices)) {
      const distinct = new Set(hashes.filter((h) => h !== null));
      if (distinct.size > 1) {
        forks.push({
          height,
          hashes: Object.fromEntries(indices.map((i, k) => [this.node(i).name, hashes[k] ?? null])),
        });
      }
    }
    return forks;
  }

  /**
   * After stopAll(): every node's stored chain, checked from disk (each block certified by a certificate that verifies
   * against its set, each parent link), and whether the chains are prefixes of one another.
   */
  async storedChains(): Promise<{ reports: ChainReport[]; forkHeights: number[] }> {
    if (this.children.size > 0) throw new Error("storedChains() needs every node stopped");
    const reports = await Promise.all(
      this.nodes.map((n) => readChain(join(n.dir, "data", "chain"), this.plan.genesisPath)),
    );
    const forkHeights: number[] = [];
    const longest = reports.reduce((a, b) => (b.hashes.length > a.hashes.length ? b : a));
    for (const r of reports) {
      r.hashes.forEach((h, k) => {
        if (h !== longest.hashes[k]) forkHeights.push(k + 1);
      });
    }
    return { reports, forkHeights };
  }

  /** The genesis-set index of each node in `nodes` (the set orders validators by power, then address). */
  async validatorIndices(nodes: readonly number[]): Promise<number[]> {
    const genesis = await loadGenesis(this.plan.genesisPath);
    return nodes.map((i) => {
      const address = (this.plan.nodes[i]?.identity.address ?? "").toLowerCase();
      return genesis.validatorSet.validators.findIndex((v) => v.address.toLowerCase() === address);
    });
  }

  /** Evidence held by any node that names one of the honest nodes: must be none. */
  async evidenceAgainst(reports: readonly ChainReport[], honestNodes: readonly number[]): Promise<Evidence[]> {
    const honest = await this.validatorIndices(honestNodes);
    return reports.flatMap((r) =>
      r.evidence.filter((e) =>
        honest.includes(e.kind === "duplicateVote" ? e.first.validatorIndex : e.first.proposerIndex),
      ),
    );
  }

  async close(): Promise<void> {
    for (const c of this.children.values()) c.kill("SIGKILL");
    this.children.clear();
    for (const r of this.rpcs) r.close();
    await this.lab.destroy();
    if (process.env.DCN_KEEP_FAULTS !== "1") await rm(this.plan.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
