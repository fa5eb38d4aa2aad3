// A subnet of real `dcn start` processes on 127.0.0.1 for end-to-end tests: the same keys, genesis and configs as
// `dcn devnet`, each node its own OS process with real libp2p and level, killed with SIGKILL when a test says so.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type DevnetNode,
  type DevnetPlan,
  fetchStatus,
  type NodeStatusJson,
  prepareDevnet,
  spawnNode,
  stopChild,
} from "../../src/cli/devnet.ts";

/** Fast timeouts: loopback delivers in a millisecond, and tests should see many heights and rounds. */
export const TEST_CONSENSUS = {
  timeoutProposeMs: 600,
  timeoutProposeDeltaMs: 200,
  // Tests stop validators often: a down proposer should cost about a second, however loaded the machine is.
  timeoutProposeMaxMs: 1200,
  timeoutPrevoteMs: 300,
  timeoutPrevoteDeltaMs: 100,
  timeoutPrecommitMs: 300,
  timeoutPrecommitDeltaMs: 100,
  rebroadcastMs: 500,
  blockIntervalMs: 100,
  emptyBlockIntervalMs: 150,
};

export class Cluster {
  private readonly children = new Map<string, ChildProcess>();

  private constructor(readonly plan: DevnetPlan) {}

  static async create(opts: { validators: number; replicas: number; baseFeePerGas?: bigint }): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), "dcn-e2e-"));
    // Ports from the pid spread parallel test files apart.
    const base = 20_000 + ((process.pid * 37) % 400) * 20;
    const plan = await prepareDevnet({
      dir,
      validators: opts.validators,
      replicas: opts.replicas,
      basePort: base,
      metricsBasePort: base + 10,
      rpcBasePort: base + 15,
      fresh: true,
      chainId: 31_337_001n,
      consensus: TEST_CONSENSUS,
      logLevel: "debug",
      ...(opts.baseFeePerGas === undefined ? {} : { baseFeePerGas: opts.baseFeePerGas }),
    });
    return new Cluster(plan);
  }

  node(name: string): DevnetNode {
    const n = this.plan.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  get validators(): DevnetNode[] {
    return this.plan.nodes.filter((n) => n.role === "validator");
  }

  /** Starts node `name`, with `env` added to the test's environment. */
  start(name: string, env: Readonly<Record<string, string>> = {}): void {
    if (this.children.has(name)) throw new Error(`${name} is running`);
    this.children.set(name, spawnNode(this.node(name), env));
  }

  kill9(name: string): void {
    const child = this.children.get(name);
    if (child === undefined) throw new Error(`${name} is not running`);
    child.kill("SIGKILL");
    this.children.delete(name);
  }

  /** SIGTERM, then SIGKILL after 10 s; how the process ended (null when it was not running). */
  async stop(name: string): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    const child = this.children.get(name);
    if (child === undefined) return null;
    this.children.delete(name);
    await stopChild(child);
    return { code: child.exitCode, signal: child.signalCode };
  }

  running(name: string): boolean {
    const child = this.children.get(name);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  status(name: string): Promise<NodeStatusJson | null> {
    return fetchStatus(this.node(name).metrics, 1_000);
  }

  async height(name: string): Promise<number> {
    return (await this.status(name))?.headHeight ?? -1;
  }

  /** Sum of a metric over the series whose labels contain every `labels` fragment (e.g. 'verdict="reject"'). */
  async metric(name: string, metric: string, labels: readonly string[] = []): Promise<number> {
    const res = await fetch(`${this.node(name).metrics}/metrics`);
    let sum = 0;
    for (const line of (await res.text()).split("\n")) {
      if (!labels.every((l) => line.includes(l))) continue;
      if (line.startsWith(metric) && (line[metric.length] === " " || line[metric.length] === "{")) {
        sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
    }
    return sum;
  }

  /** Polls until `check` holds; fails with the last statuses and the node logs' tails. */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return;
      await sleep(200);
    }
    const statuses = await Promise.all(
      this.plan.nodes.map(async (n) => `${n.name}: ${JSON.stringify(await this.status(n.name))}`),
    );
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}\n${statuses.join("\n")}\n${this.logTails(15)}`,
    );
  }

  async waitForHeight(names: readonly string[], height: number, timeoutMs: number): Promise<void> {
    await this.waitFor(
      `${names.join(",")} at height >= ${height}`,
      async () => (await Promise.all(names.map((n) => this.height(n)))).every((h) => h >= height),
      timeoutMs,
    );
  }

  logTails(lines: number): string {
    return this.plan.nodes
      .map((n) => {
        let text = "";
        try {
          text = readFileSync(join(n.dir, "node.log"), "utf8");
        } catch {
          return `--- ${n.name}: no log`;
        }
        return `--- ${n.name}\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`;
      })
      .join("\n");
  }

  async close(): Promise<void> {
    await Promise.all([...this.children.values()].map((c) => stopChild(c, 5_000)));
    this.children.clear();
    if (process.env.DCN_KEEP_E2E !== "1") await rm(this.plan.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
