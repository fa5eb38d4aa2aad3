// `dcn devnet`: a local subnet of N validator processes and read-only replicas on 127.0.0.1. Keys (insecure
// keystores: a devnet only), genesis and configs are generated once under the data dir and reused on the next run
// (`--fresh` wipes them). Writes `<dir>/devnet.json`, prints the heights as they advance, and on Ctrl-C (SIGINT or
// SIGTERM) stops every child cleanly: SIGTERM, then SIGKILL after a grace period, so no process outlives it.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { buildGenesis } from "../config/genesis.ts";
import { initNode } from "../keys/init.ts";
import { operatorAddressOf, type PublicIdentity } from "../keys/keys.ts";

export const DEFAULT_CHAIN_ID = 994_873_017n;
/** Dev accounts funded in a devnet genesis (keys are public: never use them elsewhere). */
export const DEVNET_FUNDED_ACCOUNTS = 10;
export const DEVNET_FUNDED_BALANCE = 1_000_000n * 10n ** 18n;

/** Deterministic dev keys: keccak256("lumia-dcn devnet account <i>"). */
export function devnetAccounts(): { address: Hex; privateKey: Hex }[] {
  return Array.from({ length: DEVNET_FUNDED_ACCOUNTS }, (_, i) => {
    const privateKey = toHex(keccak256(utf8(`lumia-dcn devnet account ${i}`)));
    return { address: operatorAddressOf(fromHex(privateKey)), privateKey };
  });
}

export interface DevnetOptions {
  readonly dir: string;
  readonly validators: number;
  readonly replicas: number;
  readonly basePort: number;
  readonly metricsBasePort: number;
  readonly rpcBasePort: number;
  readonly fresh: boolean;
  readonly chainId: bigint;
  /** Overrides of the consensus section of every node's config. */
  readonly consensus?: Readonly<Record<string, number>>;
  readonly logLevel?: string;
  /** Base fee of height 1 (default: the genesis default, 1 gwei). */
  readonly baseFeePerGas?: bigint;
}

export interface DevnetNode {
  readonly name: string;
  readonly role: "validator" | "replica";
  readonly dir: string;
  readonly configPath: string;
  readonly p2p: string;
  readonly metrics: string;
  readonly rpc: string;
  readonly identity: PublicIdentity;
}

export interface DevnetPlan {
  readonly dir: string;
  readonly chainId: bigint;
  readonly genesisPath: string;
  readonly nodes: readonly DevnetNode[];
}

interface SavedPlan {
  readonly chainId: string;
  readonly validators: number;
  readonly replicas: number;
  readonly basePort: number;
  readonly metricsBasePort: number;
  readonly rpcBasePort: number;
}

const PLAN_FILE = "plan.json";

/** Creates (or reuses) keys, genesis and configs for a devnet in `opts.dir`. */
export async function prepareDevnet(opts: DevnetOptions): Promise<DevnetPlan> {
  const dir = resolve(opts.dir);
  if (opts.fresh) await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const planPath = join(dir, PLAN_FILE);
  const wanted: SavedPlan = {
    chainId: opts.chainId.toString(),
    validators: opts.validators,
    replicas: opts.replicas,
    basePort: opts.basePort,
    metricsBasePort: opts.metricsBasePort,
    rpcBasePort: opts.rpcBasePort,
  };
  if (existsSync(planPath)) {
    const saved = JSON.parse(await readFile(planPath, "utf8")) as SavedPlan;
    if (JSON.stringify(saved) !== JSON.stringify(wanted)) {
      throw new Error(
        `${dir} holds a devnet made with other options (${JSON.stringify(saved)}); ` +
          "run with --fresh to wipe it, or use another --data-dir",
      );
    }
  }
  const total = opts.validators + opts.replicas;
  const nodes: DevnetNode[] = [];
  for (let i = 0; i < total; i++) {
    const role = i < opts.validators ? "validator" : "replica";
    const name = role === "validator" ? `validator-${i}` : `replica-${i - opts.validators}`;
    const nodeDir = join(dir, name);
    const identityPath = join(nodeDir, "identity.json");
    const identity: PublicIdentity = existsSync(identityPath)
      ? (JSON.parse(await readFile(identityPath, "utf8")) as PublicIdentity)
      : (await initNode(nodeDir, { insecure: true })).identity;
    nodes.push({
      name,
      role,
      dir: nodeDir,
      configPath: join(nodeDir, "config.json"),
      p2p: `/ip4/127.0.0.1/tcp/${opts.basePort + i}/p2p/${identity.peerId}`,
      metrics: `http://127.0.0.1:${opts.metricsBasePort + i}`,
      rpc: `http://127.0.0.1:${opts.rpcBasePort + i}`,
      identity,
    });
  }
  const genesisPath = join(dir, "genesis.json");
  if (!existsSync(genesisPath)) {
    const genesis = buildGenesis({
      chainId: opts.chainId,
      genesisTimeMs: Date.now(),
      validators: nodes
        .filter((n) => n.role === "validator")
        .map((n) => ({ name: n.name, votingPower: 100n, identity: n.identity })),
      execution: {
        ...(opts.baseFeePerGas === undefined ? {} : { baseFeePerGas: opts.baseFeePerGas.toString() }),
        alloc: devnetAccounts().map((a) => ({ address: a.address, balance: DEVNET_FUNDED_BALANCE.toString() })),
      },
    });
    await writeFile(genesisPath, `${JSON.stringify(genesis, null, 2)}\n`);
  }
  const replicaIds = nodes.filter((n) => n.role === "replica").map((n) => n.identity.peerId);
  for (const [i, n] of nodes.entries()) {
    const config = {
      role: n.role,
      dataDir: "data",
      genesis: "../genesis.json",
      keys: { dir: "keys" },
      p2p: {
        listen: [`/ip4/127.0.0.1/tcp/${opts.basePort + i}`],
        peers: nodes.filter((o) => o !== n).map((o) => o.p2p),
        replicas: replicaIds,
      },
      consensus: { ...(opts.consensus ?? {}) },
      metrics: { enabled: true, host: "127.0.0.1", port: opts.metricsBasePort + i },
      rpc: { enabled: true, host: "127.0.0.1", port: opts.rpcBasePort + i },
      log: { level: opts.logLevel ?? "info" },
    };
    await writeFile(n.configPath, `${JSON.stringify(config, null, 2)}\n`);
  }
  await writeFile(planPath, `${JSON.stringify(wanted, null, 2)}\n`);
  const plan: DevnetPlan = { dir, chainId: opts.chainId, genesisPath, nodes };
  await writeDevnetJson(plan);
  return plan;
}

/** `<dir>/devnet.json`: the shape DESIGN.md fixes; ws and l1 are null until WebSocket RPC and the embedded L1 exist. */
async function writeDevnetJson(plan: DevnetPlan): Promise<void> {
  const json = {
    chainId: plan.chainId.toString(),
    l1: null,
    funded: devnetAccounts(),
    nodes: plan.nodes.map((n) => ({
      name: n.name,
      role: n.role,
      rpc: n.rpc,
      ws: null,
      p2p: n.p2p,
      metrics: n.metrics,
      status: `${n.metrics}/status`,
      operator: n.identity.operator,
      address: n.identity.address,
      peerId: n.identity.peerId,
      config: n.configPath,
    })),
  };
  await writeFile(join(plan.dir, "devnet.json"), `${JSON.stringify(json, null, 2)}\n`);
}

const DCN_BIN = fileURLToPath(new URL("../../bin/dcn.mjs", import.meta.url));

/** Starts `dcn start --config` for one devnet node; its output goes to `<node dir>/node.log`. */
export function spawnNode(node: DevnetNode): ChildProcess {
  const out = openSync(join(node.dir, "node.log"), "a");
  return spawn(process.execPath, [DCN_BIN, "start", "--config", node.configPath, "--parent-pid", String(process.pid)], {
    stdio: ["ignore", out, out],
    env: { ...process.env },
    // Own process group: a Ctrl-C at the terminal reaches the devnet, which then stops the children in order.
    detached: true,
  });
}

/** Sends SIGTERM, waits up to `graceMs` for exit, then SIGKILL. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface NodeStatusJson {
  readonly role: string;
  readonly height: number;
  readonly round: number;
  readonly headHeight: number;
  readonly headHash: string | null;
  readonly peers: readonly string[];
  readonly votingNow: boolean;
  readonly lastCommitAgoMs: number | null;
}

export async function fetchStatus(metricsUrl: string, timeoutMs = 2_000): Promise<NodeStatusJson | null> {
  try {
    const res = await fetch(`${metricsUrl}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    return (await res.json()) as NodeStatusJson;
  } catch {
    return null;
  }
}

/** Runs the devnet until SIGINT/SIGTERM. Returns the exit code. */
export async function runDevnet(opts: DevnetOptions, print: (line: string) => void): Promise<number> {
  const plan = await prepareDevnet(opts);
  print(
    `devnet: ${opts.validators} validators + ${opts.replicas} replica(s), chain id ${plan.chainId}, data in ${plan.dir}`,
  );
  const children = plan.nodes.map((n) => ({ node: n, child: spawnNode(n) }));
  for (const { node, child } of children) {
    print(
      `  ${node.name.padEnd(12)} pid ${child.pid}  p2p ${node.p2p}  status ${node.metrics}/status  log ${join(node.dir, "node.log")}`,
    );
  }
  print(`wrote ${join(plan.dir, "devnet.json")}; Ctrl-C stops everything`);
  let stopping = false;
  const done = new Promise<number>((resolveDone) => {
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      print(`\n${signal}: stopping ${children.length} nodes...`);
      await Promise.all(children.map(({ child }) => stopChild(child)));
      print("all nodes stopped");
      resolveDone(0);
    };
    process.once("SIGINT", () => void stop("SIGINT"));
    process.once("SIGTERM", () => void stop("SIGTERM"));
    for (const { node, child } of children) {
      child.once("exit", (code, signal) => {
        if (!stopping) print(`  ${node.name} exited (${signal ?? code}); see ${join(node.dir, "node.log")}`);
      });
    }
  });
  const timer = setInterval(async () => {
    const statuses = await Promise.all(plan.nodes.map((n) => fetchStatus(n.metrics, 1_000)));
    if (stopping) return;
    const parts = plan.nodes.map((n, i) => {
      const s = statuses[i];
      return `${n.name} ${s === null || s === undefined ? "-" : `h${s.headHeight}/r${s.round} ${s.peers.length}p`}`;
    });
    print(`${new Date().toISOString().slice(11, 19)}  ${parts.join("  ")}`);
  }, 2_000);
  const code = await done;
  clearInterval(timer);
  return code;
}
