// Shared parts of the devnet acceptance tests (real `dcn devnet` processes): JSON-RPC calls, polling with a diagnostic,
// starting a devnet in a temp dir and stopping everything it started (nodes, anvil) however the test ends.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address, Hex } from "viem";
import { afterAll } from "vitest";

export const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");

/** One JSON-RPC call (the tests send only idempotent ones: a connection dropped before an answer is tried again). */
export async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const request = () =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      signal: AbortSignal.timeout(5_000),
    });
  const res = await request().catch(() => request());
  const body = (await res.json()) as { result?: T; error?: { message: string } };
  if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

/** Polls `check` every 500 ms (a throw counts as "not yet") until it holds or `timeoutMs` passes. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, log: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}\n${log()}`);
}

export interface DevnetJson {
  chainId: string;
  l1: { rpc: string; pid: number | null; contracts: Record<string, Address> };
  funded: { address: Hex; privateKey: Hex }[];
  nodes: { name: string; role: string; metrics: string; rpc: string }[];
}

export interface RunningDevnet {
  readonly data: string;
  readonly devnet: DevnetJson;
  /** The devnet's output and the warnings and errors of each node's log, for failure messages. */
  readonly show: () => string;
  /** Runs `dcn ARGS` to completion. */
  readonly dcn: (
    args: readonly string[],
    env?: Record<string, string>,
  ) => { code: number | null; out: string; err: string };
}

/**
 * A devnet test file's scaffolding: a temp dir, and `start(args)` to run `dcn devnet --fresh` in it with ports from
 * `portBase` (keep test files' ranges apart: each uses 20 ports per pid slot). Everything is stopped after the file.
 *
 * Fixed test ports stay below Linux's ephemeral range (32768-60999), where any outgoing connection can take one as
 * its local port: devnet.test.ts 10000-14000, devnet-derive 14000-15800, devnet-rewards 16000-17800, devnet-bridge
 * 18000-19800, the e2e clusters (test/e2e/cluster.ts) 20000-28000, devnet-membership 28000-30000.
 */
export function devnetFixture(prefix: string, portBase: number) {
  const dir = mkdtempSync(join(tmpdir(), `dcn-${prefix}-`));
  const children: ChildProcess[] = [];
  const pids: number[] = [];
  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    // DCN_KEEP_DEVNET=1 keeps the data dir (node logs) of a failed run for a look.
    if (process.env.DCN_KEEP_DEVNET === undefined) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir}\n`);
  });
  const base = portBase + (process.pid % 90) * 20;
  const portArgs = [
    "--base-port",
    base,
    "--metrics-base-port",
    base + 5,
    "--rpc-base-port",
    base + 10,
    "--l1-port",
    base + 15,
  ];

  async function start(args: readonly string[]): Promise<RunningDevnet> {
    const data = join(dir, "devnet");
    const child = spawn(
      process.execPath,
      [DCN, "devnet", "--fresh", "--data-dir", data, ...args, ...portArgs.map(String)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    children.push(child);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const show = () => {
      const tails: string[] = [];
      for (let i = 0; i < 8; i++) {
        const file = join(data, `validator-${i}`, "node.log");
        if (!existsSync(file)) continue;
        const lines = readFileSync(file, "utf8").trimEnd().split("\n");
        tails.push(
          `--- validator-${i}\n${lines
            .filter((l) => /"(warn|error|fatal)"/.test(l))
            .slice(-10)
            .join("\n")}`,
        );
      }
      return `${out.slice(-3000)}\n${tails.join("\n")}`;
    };
    const devnetPath = join(data, "devnet.json");
    await waitUntil("devnet.json", async () => existsSync(devnetPath) && out.includes("wrote"), 60_000, show);
    const devnet = JSON.parse(readFileSync(devnetPath, "utf8")) as DevnetJson;
    if (typeof devnet.l1?.pid === "number") pids.push(devnet.l1.pid);
    const dcn = (cmd: readonly string[], env: Record<string, string> = {}) => {
      const r = spawnSync(process.execPath, [DCN, ...cmd], {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, ...env },
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    return { data, devnet, show, dcn };
  }

  return { dir, start };
}
