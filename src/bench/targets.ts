// The three things measured side by side:
// (a) the subnet: a fresh `dcn devnet` (N validators, no replica) started as a child process in a temp data dir, or
//     running nodes given by their JSON-RPC URLs;
// (b) anvil as a single sequencer, with the subnet's chain id and the same funded accounts, so the very same signed
//     transactions are valid on both: interval mining (`--block-time 1`, what a sequencer does) and automine (a block
//     per transaction: anvil's best latency, no batching);
// (c) the one-core execution ceilings of test/bench/exec.bench.ts, run as a child: bare @ethereumjs/vm runTx
//     (createVM() defaults) and the node's own execution core, on the same signed blocks.
// Node pids come from /proc (procstat.ts): the `dcn start --config FILE` processes whose FILE names the endpoint's
// rpc.port; anvil's pid from its child process.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { fromHex } from "../../consensus/bytes.ts";
import { devnetAccounts } from "../cli/devnet.ts";
import { portIsFree, startAnvil } from "../l1/anvil.ts";
import { BenchError } from "./errors.ts";
import type { LoadTarget } from "./load.ts";
import { nodePidsForRpc } from "./procstat.ts";
import { HttpRpc, wsUrlOf } from "./rpc.ts";
import { accountFromKey, type BenchAccount } from "./tx.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DCN_BIN = join(ROOT, "bin", "dcn.mjs");
const RUN_BIN = join(ROOT, "bin", "run.mjs");
const EXEC_BENCH = join(ROOT, "test", "bench", "exec.bench.ts");
const PROFILE_PRELOAD = join(ROOT, "src", "bench", "cpu-profile-preload.mjs");
const DEVNET_START_TIMEOUT_MS = 120_000;
const DEVNET_STOP_GRACE_MS = 30_000;
const FUNDED_BALANCE_WEI = 1_000_000n * 10n ** 18n;
const BARE_TIMEOUT_MS = 600_000;

/** A target the load generator can drive, with its funded accounts and a way to stop it. */
export interface RunningTarget extends LoadTarget {
  readonly funders: readonly BenchAccount[];
  stop(): Promise<void>;
}

/** The devnet's public dev accounts (funded in every devnet genesis; given the same balances on anvil). */
export function devnetFunders(): BenchAccount[] {
  return devnetAccounts().map((a) => accountFromKey(fromHex(a.privateKey)));
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, isAlive: () => boolean) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isAlive()) throw new BenchError("target_failed", `${what}: the process exited`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new BenchError("target_failed", `${what}: not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function headOf(url: string): Promise<number> {
  const rpc = new HttpRpc(url, { connections: 1, timeoutMs: 2_000 });
  try {
    return Number(BigInt(await rpc.call<string>("eth_blockNumber")));
  } finally {
    rpc.close();
  }
}

/** Running nodes by their JSON-RPC URLs (the first one also serves the WebSocket subscriptions). */
export function connectNodes(name: string, urls: readonly string[]): RunningTarget {
  const pids = nodePidsForRpc(urls);
  return {
    name,
    rpc: urls,
    ws: wsUrlOf(urls[0] as string),
    certificates: true,
    processes: urls.map((url, i) => ({ name: `node ${new URL(url).port}`, pid: pids[i] ?? null })),
    funders: devnetFunders(),
    stop: async () => {},
  };
}

/**
 * The first port the kernel hands out to outgoing connections (Linux: ip_local_port_range; 32768 elsewhere). Ports
 * at or above it can be taken by any client socket between the check here and a node's listen.
 */
function firstEphemeralPort(): number {
  try {
    const first = Number.parseInt(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim(), 10);
    if (Number.isInteger(first) && first > 12_000) return first;
  } catch {
    // Not Linux: the IANA range starts at 49152, Linux's default at 32768; take the lower.
  }
  return 32_768;
}

/** `count` consecutive ports free now, from a random base (other benches and tests may hold the usual ones). */
async function freeRange(count: number): Promise<number> {
  // Below the ephemeral range, so that no outgoing connection (a node's, the L1's, the bench's) takes one meanwhile.
  const slots = Math.floor((firstEphemeralPort() - 10_000 - count) / 10);
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * slots) * 10;
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = await portIsFree("127.0.0.1", p);
    if (ok) return base;
  }
  throw new BenchError("target_failed", `no ${count} consecutive free ports found on 127.0.0.1`);
}

export interface DevnetTargetOptions {
  readonly validators: number;
  /** Where the devnet's data dir goes (removed on stop) and its output is logged. */
  readonly dir: string;
  readonly logPath: string;
  /** Write a V8 CPU profile of every node (cpu-profile-preload.mjs) into this directory, at stop. */
  readonly cpuProfDir?: string;
  /** At stop, copy each node's log (`<name>/node.log`) here as `<name>.log` before the data dir goes. */
  readonly nodeLogDir?: string;
  /** The nodes' log level (`dcn devnet --log-level`; default info). */
  readonly logLevel?: string;
  readonly log: (line: string) => void;
}

/** Starts `dcn devnet --fresh --replicas 0` in `dir` and waits until every validator has committed a block. */
export async function startDevnetTarget(opts: DevnetTargetOptions): Promise<RunningTarget> {
  const n = opts.validators;
  const base = await freeRange(3 * 20 + 1);
  const args = [
    DCN_BIN,
    "devnet",
    "--data-dir",
    opts.dir,
    "--fresh",
    "--validators",
    String(n),
    "--replicas",
    "0",
    "--base-port",
    String(base),
    "--metrics-base-port",
    String(base + 20),
    "--rpc-base-port",
    String(base + 40),
    "--l1-port",
    String(base + 60),
    ...(opts.logLevel === undefined ? [] : ["--log-level", opts.logLevel]),
  ];
  const env = { ...process.env };
  if (opts.cpuProfDir !== undefined) {
    // Node refuses --cpu-prof in NODE_OPTIONS; a preload starts the same profiler in each `dcn start` process.
    await mkdir(opts.cpuProfDir, { recursive: true });
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --import=${pathToFileURL(PROFILE_PRELOAD).href}`.trim();
    env.DCN_BENCH_CPU_PROF_DIR = opts.cpuProfDir;
  }
  const logFd = openSync(opts.logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, args, { stdio: ["ignore", logFd, logFd], env });
  } finally {
    closeSync(logFd);
  }
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (alive()) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), DEVNET_STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    if (opts.nodeLogDir !== undefined) await copyNodeLogs(opts.dir, opts.nodeLogDir);
    await rm(opts.dir, { recursive: true, force: true });
  };
  try {
    opts.log(`devnet: ${n} validators in ${opts.dir} (log ${opts.logPath})`);
    const jsonPath = join(opts.dir, "devnet.json");
    await waitUntil("devnet.json", async () => existsSync(jsonPath), DEVNET_START_TIMEOUT_MS, alive);
    const json = JSON.parse(readFileSync(jsonPath, "utf8")) as { nodes: { name: string; role: string; rpc: string }[] };
    const validators = json.nodes.filter((x) => x.role === "validator");
    const urls = validators.map((x) => x.rpc);
    await waitUntil(
      "devnet validators at height >= 2",
      async () => (await Promise.all(urls.map(headOf))).every((h) => h >= 2),
      DEVNET_START_TIMEOUT_MS,
      alive,
    );
    const pids = nodePidsForRpc(urls);
    return {
      name: `subnet (${n} validators)`,
      rpc: urls,
      ws: wsUrlOf(urls[0] as string),
      certificates: true,
      processes: validators.map((x, i) => ({ name: x.name, pid: pids[i] ?? null })),
      funders: devnetFunders(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Copies `<dir>/<node>/node.log` to `<to>/<node>.log` for every node directory that has one. */
async function copyNodeLogs(dir: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory()) continue;
    await copyFile(join(dir, entry.name, "node.log"), join(to, `${entry.name}.log`)).catch(() => {});
  }
}

export type AnvilMode = "block-time" | "automine";

/**
 * anvil with the subnet's chain id, gas limit (30M) and starting base fee (1 gwei), and the devnet's funded
 * accounts: `block-time` mines a block every second (a single sequencer's batching), `automine` one block per
 * transaction as it arrives.
 */
export async function startAnvilTarget(opts: { chainId: bigint; mode: AnvilMode }): Promise<RunningTarget> {
  const anvil = await startAnvil({
    port: 0,
    chainId: opts.chainId,
    ...(opts.mode === "block-time" ? { blockTimeS: 1 } : {}),
    args: [
      "--hardfork",
      "prague",
      "--gas-limit",
      "30000000",
      "--base-fee",
      "1000000000",
      "--accounts",
      "1",
      "--silent",
    ],
    hints: { notFound: "Install it with `npm install` on Linux x64, or run the bench with --target devnet." },
  });
  const funders = devnetFunders();
  const rpc = new HttpRpc(anvil.url, { connections: 1 });
  try {
    for (const f of funders) await rpc.call("anvil_setBalance", [f.address, `0x${FUNDED_BALANCE_WEI.toString(16)}`]);
  } catch (error) {
    await anvil.stop(5_000);
    throw error;
  } finally {
    rpc.close();
  }
  return {
    name: opts.mode === "block-time" ? "anvil (1 s blocks)" : "anvil (automine)",
    rpc: [anvil.url],
    ws: wsUrlOf(anvil.url),
    certificates: false,
    processes: [{ name: "anvil", pid: anvil.pid }],
    funders,
    stop: () => anvil.stop(5_000),
  };
}

/** Execution rates of one workload on one core, from exec.bench.ts (median block, tx/s). */
export interface ExecRates {
  /** Bare @ethereumjs/vm: createVM() defaults (its own sender recovery, no state caches), runTx, state root. */
  readonly bare: number;
  /** The node's execution core: decode + native sender recovery + runTx over cached trie + roots, state on level. */
  readonly core: number;
  /**
   * The execution core validating a block whose transactions its pool admitted (decoded at admission, so the block
   * reuses the decode and sender recovery); null when the exec bench did not print it.
   */
  readonly pooled: number | null;
}

export interface BareResult {
  readonly transfers: ExecRates;
  readonly erc20: ExecRates;
  readonly txsPerBlock: number;
  readonly blocks: number;
  readonly output: string;
}

/** Parses exec.bench.ts's table: "<workload> <core tx/s> <bare vm tx/s> <ratio> [<pooled core tx/s> <ratio>]". */
export function parseExecBenchOutput(output: string): { transfers: ExecRates; erc20: ExecRates } {
  const ratesOf = (workload: string): ExecRates => {
    const line = output.split("\n").find((l) => l.startsWith(workload));
    const cols = line?.slice(workload.length).trim().split(/\s+/);
    const core = Number(cols?.[0]);
    const bare = Number(cols?.[1]);
    if (!(core > 0 && bare > 0)) {
      throw new BenchError("target_failed", `exec bench printed no core and bare figures for ${workload}:\n${output}`);
    }
    const pooled = Number(cols?.[3]);
    return { core, bare, pooled: pooled > 0 ? pooled : null };
  };
  return { transfers: ratesOf("transfers"), erc20: ratesOf("ERC-20 transfers") };
}

/**
 * The one-core execution ceilings: test/bench/exec.bench.ts in its own process (one core), bare @ethereumjs/vm and
 * the node's execution core on the same signed blocks.
 */
export function runBare(opts: { txsPerBlock: number; blocks: number }): Promise<BareResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [RUN_BIN, EXEC_BENCH, "--txs", String(opts.txsPerBlock), "--blocks", String(opts.blocks)],
      { cwd: ROOT, timeout: BARE_TIMEOUT_MS, maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null) {
          reject(new BenchError("target_failed", `exec bench failed: ${error.message}\n${stderr}`, { cause: error }));
          return;
        }
        try {
          resolve({
            ...parseExecBenchOutput(stdout),
            txsPerBlock: opts.txsPerBlock,
            blocks: opts.blocks,
            output: stdout,
          });
        } catch (e) {
          reject(e);
        }
      },
    );
  });
}
