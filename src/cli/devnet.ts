// `dcn devnet`: a local subnet of N validator processes and read-only replicas on 127.0.0.1, with an embedded L1
// (anvil on 127.0.0.1, its state kept under the data dir) or an external one (`--l1 URL`). Keys (insecure
// keystores: a devnet only), genesis and configs are generated once under the data dir and reused on the next run
// (`--fresh` wipes them, L1 state included). On the embedded L1 it deploys the staking contracts once and makes the
// registry's epoch 1 the genesis set (deployStakingContracts). Writes `<dir>/devnet.json`, prints the heights, and on
// Ctrl-C (SIGINT or SIGTERM) stops the nodes, then the L1: SIGTERM, then SIGKILL after a grace period, so no process
// outlives it. Every child runs in its own process group, so a Ctrl-C at the terminal reaches only the devnet.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { basename, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ed25519 } from "@noble/curves/ed25519.js";
import { getBase58Decoder } from "@solana/kit";
import { encodeFunctionData } from "viem";
import { fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { buildGenesis, GENESIS_VERSION, type GenesisJson } from "../config/genesis.ts";
import { initNode } from "../keys/init.ts";
import { operatorAddressOf, type PublicIdentity } from "../keys/keys.ts";
import { type AnvilProcess, DEVNET_L1_CHAIN_ID, jsonRpc, startAnvil, stopLeftoverAnvil } from "../l1/anvil.ts";
import { deployStaking, LUMIA, peerIdBytes, sequencerRegistration } from "../l1/deploy.ts";
import { deployFinality, l2Predeploys } from "../l1/deploy-finality.ts";
import { SCHEMA_VERSION } from "../storage/chain-store.ts";

export { peerIdBytes } from "../l1/deploy.ts";

import { SequencerRegistry } from "../../staking-contracts/artifacts.ts";
import { createL1Reader } from "../l1/status.ts";
import { fetchStatus } from "./status.ts";

export { fetchStatus, type NodeStatusJson } from "./status.ts";

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

/** Solana dev accounts funded in a devnet genesis (svm.alloc), 1,000 SOL each; keys are public. */
export const DEVNET_SOLANA_ACCOUNTS = 10;
export const DEVNET_SOLANA_LAMPORTS = 1_000n * 1_000_000_000n;

/**
 * Deterministic Solana dev keys: Ed25519 seed keccak256("lumia-dcn devnet solana account <i>"); `secretKey` is the
 * 32-byte seed (kit: createKeyPairSignerFromPrivateKeyBytes), `address` the base58 public key.
 */
export function devnetSolanaAccounts(): { address: string; secretKey: Hex }[] {
  const base58 = getBase58Decoder();
  return Array.from({ length: DEVNET_SOLANA_ACCOUNTS }, (_, i) => {
    const seed = keccak256(utf8(`lumia-dcn devnet solana account ${i}`));
    return { address: base58.decode(ed25519.getPublicKey(seed)), secretKey: toHex(seed) };
  });
}

export type DevnetErrorCode = "plan_mismatch" | "l1_unreachable";

/** The data dir holds another devnet, or the external L1 does not answer. The message says what to do. */
export class DevnetError extends Error {
  override readonly name = "DevnetError";
  constructor(
    readonly code: DevnetErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The devnet's L1 as written into the node configs and devnet.json. */
export interface DevnetL1 {
  readonly rpc: string;
  readonly chainId: bigint;
  /** true: the anvil this devnet started; false: an external L1 given with --l1. */
  readonly embedded: boolean;
  readonly pid: number | null;
  /** Staking contracts by name; empty until they exist (see deployStakingContracts). */
  readonly contracts: Readonly<Record<string, Hex>>;
}

/** How often devnet nodes poll their L1 (faster than the default: a devnet L1 mines every few seconds). */
export const DEVNET_L1_POLL_INTERVAL_MS = 1_000;
export const DEFAULT_L1_PORT = 8645;
export const DEFAULT_L1_BLOCK_TIME_S = 1;
/** Confirmation depth of devnet nodes: anvil never reorgs, but a depth > 0 exercises the same code as production. */
export const DEVNET_L1_CONFIRMATIONS = 2;
/**
 * Hard finality on the devnet (docs/hard-finality.md): a batch at least every 5 s and an output every 30 heights, so
 * that batches and outputs show up within seconds; validators take turns 3 s apart (anvil mines every second).
 */
export const DEVNET_FINALITY_CONFIG = {
  batchMinBlocks: 30,
  batchMaxAgeMs: 5_000,
  outputInterval: 30,
  posterStaggerMs: 3_000,
} as const;
/** Voting power of each genesis validator, and its self-stake in whole LUMIA on the devnet registry. */
export const DEVNET_VOTING_POWER = 100n;

export interface DevnetOptions {
  readonly dir: string;
  /**
   * validator-0 posts batches as EIP-4844 blobs when the L1 takes them (anvil does); the others post calldata. Off by
   * default: each blob poster loads the KZG trusted setup, seconds of CPU at start.
   */
  readonly blobBatches?: boolean;
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
  /** The storage section of every node (stateHistory, blockHistory); the node's defaults where absent. */
  readonly storage?: DevnetStorage;
  /** Base fee of height 1 (default: the genesis default, 1 gwei). */
  readonly baseFeePerGas?: bigint;
  /** The L1 every node polls (config section `l1`) and devnet.json lists; none when absent. */
  readonly l1?: DevnetL1;
  /**
   * Anchor the genesis to this L1 registry and block (the subnet's set then follows the registry), writing the genesis
   * again even if it exists: only before any node has run on it.
   */
  readonly anchor?: GenesisJson["l1"];
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
  /** The data formats the devnet was made with: nodes refuse data of another storage or genesis version. */
  readonly formats: { readonly storage: number; readonly genesis: number };
}

const PLAN_FILE = "plan.json";

/** Creates (or reuses) keys, genesis and configs for a devnet in `opts.dir`. */
/**
 * On the embedded L1, does what any staker could: calls the registry's permissionless advanceEpoch() once an epoch
 * has lasted its length, so stake and registration changes reach the subnet's validator set (from anvil's account 0).
 */
function epochKeeper(rpc: string, registry: Hex, print: (line: string) => void): () => Promise<void> {
  let busy = false;
  let reported = false;
  return async () => {
    if (busy) return;
    busy = true;
    try {
      const call = (fn: "nextEpochBlock" | "currentEpoch") =>
        jsonRpc<Hex>(
          rpc,
          "eth_call",
          [{ to: registry, data: encodeFunctionData({ abi: SequencerRegistry.abi, functionName: fn }) }, "latest"],
          5_000,
        );
      const [due, head] = await Promise.all([call("nextEpochBlock"), jsonRpc<Hex>(rpc, "eth_blockNumber", [], 5_000)]);
      if (BigInt(head) < BigInt(due)) return;
      const [from] = await jsonRpc<Hex[]>(rpc, "eth_accounts", [], 5_000);
      const data = encodeFunctionData({ abi: SequencerRegistry.abi, functionName: "advanceEpoch" });
      const current = BigInt(await call("currentEpoch"));
      // Mined with the L1's next block; the next tick (2 s) sees the new epoch's boundary, not this one.
      await jsonRpc(rpc, "eth_sendTransaction", [{ from, to: registry, data }], 5_000);
      print(`  ${"staking".padEnd(12)} registry epoch ${current + 1n}`);
      reported = false;
    } catch (error) {
      if (!reported) print(`  ${"staking".padEnd(12)} could not advance the epoch: ${String(error)}`);
      reported = true;
    } finally {
      busy = false;
    }
  };
}

/** The genesis `l1` section for the deployed `contracts` at the L1's latest block. */
async function l1Anchor(rpc: string, chainId: bigint, contracts: Record<string, Hex>): Promise<GenesisJson["l1"]> {
  const { registry, batchInbox, outputOracle, portal } = contracts;
  if (registry === undefined) throw new Error("no registry was deployed");
  const latest = await jsonRpc<{ number: Hex; hash: Hex }>(rpc, "eth_getBlockByNumber", ["latest", false], 10_000);
  return {
    chainId: chainId.toString(),
    registry,
    origin: { number: BigInt(latest.number).toString(), hash: latest.hash },
    ...(batchInbox === undefined || outputOracle === undefined || portal === undefined
      ? {}
      : { finality: { batchInbox, outputOracle, portal } }),
  };
}

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
    formats: { storage: SCHEMA_VERSION, genesis: GENESIS_VERSION },
  };
  if (existsSync(planPath)) {
    const saved = JSON.parse(await readFile(planPath, "utf8")) as SavedPlan;
    if (JSON.stringify(saved.formats) !== JSON.stringify(wanted.formats)) {
      throw new DevnetError(
        "plan_mismatch",
        `${dir} holds a devnet made by another version of this node (data formats ${JSON.stringify(saved.formats ?? "older")}, ` +
          `this one writes ${JSON.stringify(wanted.formats)}): run with --fresh to start it again, or use another --data-dir`,
      );
    }
    if (JSON.stringify(saved) !== JSON.stringify(wanted)) {
      throw new DevnetError(
        "plan_mismatch",
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
  if (!existsSync(genesisPath) || opts.anchor !== undefined) {
    const genesis = buildGenesis({
      chainId: opts.chainId,
      genesisTimeMs: Date.now(),
      validators: nodes
        .filter((n) => n.role === "validator")
        .map((n) => ({ name: n.name, votingPower: DEVNET_VOTING_POWER, identity: n.identity })),
      execution: {
        ...(opts.baseFeePerGas === undefined ? {} : { baseFeePerGas: opts.baseFeePerGas.toString() }),
        alloc: [
          ...devnetAccounts().map((a) => ({ address: a.address, balance: DEVNET_FUNDED_BALANCE.toString() })),
          // The L2 side of the L1 portal: withdrawals and bridged ETH (docs/hard-finality.md).
          ...l2Predeploys().map((p) => ({ address: p.address, balance: "0", code: p.code as Hex })),
        ],
      },
      svm: {
        alloc: devnetSolanaAccounts().map((a) => ({ address: a.address, lamports: DEVNET_SOLANA_LAMPORTS.toString() })),
      },
      ...(opts.anchor === undefined ? {} : { l1: opts.anchor }),
    });
    await writeFile(genesisPath, `${JSON.stringify(genesis, null, 2)}\n`);
  }
  const replicaIds = nodes.filter((n) => n.role === "replica").map((n) => n.identity.peerId);
  for (const [i, n] of nodes.entries()) {
    await writeNodeConfig(n.configPath, {
      role: n.role,
      genesis: "../genesis.json",
      ports: { p2p: opts.basePort + i, metrics: opts.metricsBasePort + i, rpc: opts.rpcBasePort + i },
      peers: nodes.filter((o) => o !== n).map((o) => o.p2p),
      replicas: replicaIds,
      ...(opts.consensus === undefined ? {} : { consensus: opts.consensus }),
      ...(opts.logLevel === undefined ? {} : { logLevel: opts.logLevel }),
      ...(opts.storage === undefined ? {} : { storage: opts.storage }),
      l1:
        opts.l1 === undefined
          ? null
          : {
              rpc: opts.l1.rpc,
              registry: opts.l1.contracts.registry ?? null,
              slashing: opts.l1.contracts.slashing ?? null,
              batchTransport: opts.blobBatches === true && i === 0 ? "auto" : "calldata",
            },
    });
  }
  await writeFile(planPath, `${JSON.stringify(wanted, null, 2)}\n`);
  const plan: DevnetPlan = { dir, chainId: opts.chainId, genesisPath, nodes };
  await writeDevnetJson(plan, opts.l1 ?? null);
  return plan;
}

/** The ports of one devnet node on 127.0.0.1. */
export interface DevnetNodePorts {
  readonly p2p: number;
  readonly metrics: number;
  readonly rpc: number;
}

interface NodeConfigParams {
  readonly role: "validator" | "replica";
  /** The genesis file, relative to the config file (or absolute). */
  readonly genesis: string;
  readonly ports: DevnetNodePorts;
  readonly peers: readonly string[];
  readonly replicas: readonly string[];
  readonly consensus?: Readonly<Record<string, number>>;
  readonly logLevel?: string;
  readonly storage?: DevnetStorage;
  readonly l1: {
    readonly rpc: string;
    readonly registry: Hex | null;
    /** The Slashing contract the validators report equivocation to. */
    readonly slashing: Hex | null;
    readonly batchTransport: "calldata" | "auto";
  } | null;
}

/** storage.stateHistory and storage.blockHistory of a devnet's nodes (docs/storage.md). */
export interface DevnetStorage {
  readonly stateHistory?: number;
  readonly blockHistory?: number;
}

/** The config of one devnet node (data, keys and log beside it; every port on 127.0.0.1). */
async function writeNodeConfig(path: string, p: NodeConfigParams): Promise<void> {
  const config = {
    role: p.role,
    dataDir: "data",
    genesis: p.genesis,
    keys: { dir: "keys" },
    p2p: { listen: [`/ip4/127.0.0.1/tcp/${p.ports.p2p}`], peers: p.peers, replicas: p.replicas },
    consensus: { ...(p.consensus ?? {}) },
    metrics: { enabled: true, host: "127.0.0.1", port: p.ports.metrics },
    // A developer's subnet: the debug tracing API is on.
    rpc: { enabled: true, host: "127.0.0.1", port: p.ports.rpc, debug: true },
    log: { level: p.logLevel ?? "info" },
    ...(p.storage === undefined ? {} : { storage: p.storage }),
    ...(p.l1 === null
      ? {}
      : {
          l1: {
            rpcUrl: p.l1.rpc,
            pollIntervalMs: DEVNET_L1_POLL_INTERVAL_MS,
            confirmations: DEVNET_L1_CONFIRMATIONS,
            ...(p.l1.registry === null ? {} : { registry: p.l1.registry }),
            ...(p.l1.slashing === null ? {} : { slashing: p.l1.slashing }),
            ...DEVNET_FINALITY_CONFIG,
            batchTransport: p.l1.batchTransport,
            // anvil serves blobs on its own port (GET /eth/v1/beacon/blobs/{block number}).
            beaconUrl: p.l1.rpc,
          },
        }),
  };
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * A validator that joins a running devnet through the L1 registry (not in its genesis): writes `<nodeDir>/config.json`
 * for the keys `dcn init` put in `nodeDir`, with the devnet's genesis, every devnet node as a p2p peer, its replicas
 * and its L1 (with the registry). The devnet's nodes admit the new peer once its registration is confirmed on L1.
 */
export async function joiningNodeConfig(
  devnetDir: string,
  nodeDir: string,
  ports: DevnetNodePorts,
  opts: { readonly logLevel?: string; readonly name?: string } = {},
): Promise<DevnetNode> {
  const dir = resolve(devnetDir);
  const devnet = JSON.parse(await readFile(join(dir, "devnet.json"), "utf8")) as {
    l1: { rpc: string; contracts: Record<string, Hex> } | null;
    nodes: { role: string; p2p: string; peerId: string }[];
  };
  const identity = JSON.parse(await readFile(join(nodeDir, "identity.json"), "utf8")) as PublicIdentity;
  const configPath = join(resolve(nodeDir), "config.json");
  await writeNodeConfig(configPath, {
    role: "validator",
    genesis: relative(resolve(nodeDir), join(dir, "genesis.json")),
    ports,
    peers: devnet.nodes.map((n) => n.p2p),
    replicas: devnet.nodes.filter((n) => n.role === "replica").map((n) => n.peerId),
    ...(opts.logLevel === undefined ? {} : { logLevel: opts.logLevel }),
    l1:
      devnet.l1 === null
        ? null
        : {
            rpc: devnet.l1.rpc,
            registry: devnet.l1.contracts.registry ?? null,
            slashing: devnet.l1.contracts.slashing ?? null,
            batchTransport: "calldata",
          },
  });
  return {
    name: opts.name ?? basename(resolve(nodeDir)),
    role: "validator",
    dir: resolve(nodeDir),
    configPath,
    p2p: `/ip4/127.0.0.1/tcp/${ports.p2p}/p2p/${identity.peerId}`,
    metrics: `http://127.0.0.1:${ports.metrics}`,
    rpc: `http://127.0.0.1:${ports.rpc}`,
    identity,
  };
}

/** `<dir>/devnet.json`: the shape DESIGN.md fixes (l1 is null for a plan prepared without an L1, as in tests). */
async function writeDevnetJson(plan: DevnetPlan, l1: DevnetL1 | null): Promise<void> {
  const json = {
    chainId: plan.chainId.toString(),
    l1:
      l1 === null
        ? null
        : { rpc: l1.rpc, chainId: l1.chainId.toString(), embedded: l1.embedded, pid: l1.pid, contracts: l1.contracts },
    funded: devnetAccounts(),
    solanaFunded: devnetSolanaAccounts(),
    nodes: plan.nodes.map((n) => ({
      name: n.name,
      role: n.role,
      rpc: n.rpc,
      // WebSocket JSON-RPC shares the HTTP port (an upgrade of GET /).
      ws: n.rpc.replace(/^http:/, "ws:"),
      p2p: n.p2p,
      metrics: n.metrics,
      status: `${n.metrics}/status`,
      dashboard: `${n.metrics}/`,
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
export function spawnNode(node: DevnetNode, env: Readonly<Record<string, string>> = {}): ChildProcess {
  const out = openSync(join(node.dir, "node.log"), "a");
  return spawn(process.execPath, [DCN_BIN, "start", "--config", node.configPath, "--parent-pid", String(process.pid)], {
    stdio: ["ignore", out, out],
    env: { ...process.env, ...env },
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

export interface RunDevnetOptions extends Omit<DevnetOptions, "l1"> {
  /** An external L1's JSON-RPC URL; undefined = start anvil. */
  readonly l1Url?: string;
  /** anvil's port on 127.0.0.1. */
  readonly l1Port: number;
  /** anvil's interval mining; 0 = a block per transaction only. */
  readonly l1BlockTimeS: number;
}

/** Said when anvil cannot start: the ways to run the devnet anyway. */
export const DEVNET_L1_HINTS = {
  notFound: "Run `npm install` on Linux x64, or use an external L1: dcn devnet --l1 URL.",
  portInUse: "Pick another port with --l1-port N, or use an external L1: dcn devnet --l1 URL.",
} as const;
const L1_PROBE_TIMEOUT_MS = 5_000;

/** Staking parameters of a devnet: short epochs, and a minimum self-stake the genesis power covers. */
export const DEVNET_EPOCH_LENGTH_BLOCKS = 20n;
export const DEVNET_STAKING_PARAMS = {
  epochLengthBlocks: DEVNET_EPOCH_LENGTH_BLOCKS,
  minSelfStake: DEVNET_VOTING_POWER * LUMIA,
  maxValidators: 100,
} as const;
/** Withdrawals on the devnet wait 10 s after their proof, not an hour. */
export const DEVNET_FINALITY_PARAMS = { finalizationDelaySeconds: 10n } as const;
/** LUMIA given to the Rewards contract for its emission (100 epochs of the default emission). */
export const DEVNET_REWARDS_FUNDING = 1_000_000n * LUMIA;
const CONTRACTS_FILE = "contracts.json";
const OPERATOR_GAS_WEI = 10n ** 20n;

const quantity = (n: bigint | number) => `0x${n.toString(16)}`;

/**
 * Deploys the staking contracts on the devnet's anvil and makes the registry's epoch 1 the genesis set: governance
 * (anvil's account 0) approves each validator's operator, which registers its BLS key, proof of possession and peer
 * id and self-stakes its genesis power in LUMIA (operators act through anvil_impersonateAccount: their keys stay in
 * the keystores); then the epoch advances and the rewards emission is funded. Mines instantly while it works and
 * restores the interval after. On the next run the addresses in `<dir>/l1/contracts.json` are reused when the
 * registry still has code (anvil's state was kept).
 */
export async function deployStakingContracts(
  l1: { readonly rpc: string; readonly chainId: bigint },
  plan: DevnetPlan,
  blockTimeS: number,
): Promise<Record<string, Hex>> {
  const rpc = <T>(method: string, params: unknown[] = []) => jsonRpc<T>(l1.rpc, method, params, 10_000);
  const savedPath = join(plan.dir, "l1", CONTRACTS_FILE);
  if (existsSync(savedPath)) {
    const saved = JSON.parse(await readFile(savedPath, "utf8")) as Record<string, Hex>;
    const registry = saved.registry;
    if (registry !== undefined && (await rpc<string>("eth_getCode", [registry, "latest"])) !== "0x") return saved;
  }
  const [governance, treasury] = await rpc<Hex[]>("eth_accounts");
  if (governance === undefined || treasury === undefined) throw new Error("the devnet L1 has no unlocked accounts");
  await rpc("evm_setAutomine", [true]);
  try {
    const d = await deployStaking({
      rpcUrl: l1.rpc,
      chainId: Number(l1.chainId),
      governance,
      treasury,
      subnetChainId: plan.chainId,
      params: DEVNET_STAKING_PARAMS,
    });
    for (const node of plan.nodes.filter((n) => n.role === "validator")) {
      const operator = node.identity.operator;
      await rpc("anvil_impersonateAccount", [operator]);
      await rpc("anvil_setBalance", [operator, quantity(OPERATOR_GAS_WEI)]);
      const stake = DEVNET_VOTING_POWER * LUMIA;
      await d.fundAccount(operator, stake);
      const keys = sequencerRegistration(
        node.identity.blsPublicKey,
        node.identity.proofOfPossession,
        peerIdBytes(node.identity.peerId),
      );
      await d.addSequencer(operator, keys, stake);
    }
    await d.fundAccount(governance, 0n);
    await d.mined(d.rewards.write.fund([DEVNET_REWARDS_FUNDING], d.gov));
    const finality = await deployFinality({
      rpcUrl: l1.rpc,
      chainId: Number(l1.chainId),
      deployer: governance,
      registry: d.addresses.registry,
      token: d.addresses.token,
      subnetChainId: plan.chainId,
      params: DEVNET_FINALITY_PARAMS,
    });
    await d.advanceEpoch(async (blocks) => {
      await rpc("anvil_mine", [quantity(blocks)]);
    });
    const contracts: Record<string, Hex> = { ...d.addresses, ...finality.addresses };
    await writeFile(savedPath, `${JSON.stringify(contracts, null, 2)}\n`);
    return contracts;
  } finally {
    if (blockTimeS > 0) {
      await rpc("evm_setAutomine", [false]);
      await rpc("evm_setIntervalMining", [blockTimeS]);
    }
  }
}

/** The embedded L1: anvil on 127.0.0.1:port with its state in <dir>/l1/state.json (resumed on the next run). */
async function startEmbeddedL1(
  dir: string,
  opts: RunDevnetOptions,
  print: (line: string) => void,
): Promise<AnvilProcess> {
  const l1Dir = join(dir, "l1");
  await mkdir(l1Dir, { recursive: true });
  const statePath = join(l1Dir, "state.json");
  const resumed = existsSync(statePath);
  const logFd = openSync(join(l1Dir, "anvil.log"), "a");
  try {
    const anvil = await startAnvil({
      port: opts.l1Port,
      chainId: DEVNET_L1_CHAIN_ID,
      statePath,
      // A periodic dump too: a devnet killed with SIGKILL loses at most this much L1 history.
      stateIntervalS: 10,
      ...(opts.l1BlockTimeS > 0 ? { blockTimeS: opts.l1BlockTimeS } : {}),
      // EIP-2537 (BLS precompiles) for the staking contracts.
      args: ["--hardfork", "prague"],
      logFd,
      detached: true,
      hints: DEVNET_L1_HINTS,
    });
    await writeFile(join(l1Dir, "anvil.pid"), `${anvil.pid}\n`);
    print(
      `  ${"L1 (anvil)".padEnd(12)} pid ${anvil.pid}  ${anvil.url}  chain id ${anvil.chainId}  ` +
        `state ${statePath} (${resumed ? "resumed" : "new"})  log ${join(l1Dir, "anvil.log")}`,
    );
    return anvil;
  } finally {
    closeSync(logFd);
  }
}

/** The chain id of an external L1, or DevnetError "l1_unreachable". */
async function probeExternalL1(url: string): Promise<bigint> {
  const reader = createL1Reader(url, L1_PROBE_TIMEOUT_MS);
  try {
    return BigInt(await reader.getChainId());
  } catch (cause) {
    const why = cause instanceof Error ? (cause.message.split("\n")[0] ?? "") : String(cause);
    throw new DevnetError(
      "l1_unreachable",
      `the L1 at ${url} does not answer eth_chainId (${why}); check the URL, or omit --l1 to start anvil`,
      { cause },
    );
  } finally {
    await reader.close();
  }
}

/** Runs the devnet until SIGINT/SIGTERM. Returns the exit code; startup failures throw (after stopping what started). */
export async function runDevnet(opts: RunDevnetOptions, print: (line: string) => void): Promise<number> {
  const dir = resolve(opts.dir);
  let anvil: AnvilProcess | null = null;
  const children: { node: DevnetNode; child: ChildProcess }[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let epochTimer: ReturnType<typeof setInterval> | undefined;
  // Handlers go in first: a Ctrl-C while anvil starts must still stop it. They stay for the whole run, so a second
  // Ctrl-C cannot kill the devnet halfway through stopping its children.
  let signalled: string | null = null;
  // Set when the devnet stops for any reason (signal or a failed start): exits after that are expected.
  let stopping = false;
  let wake: () => void = () => {};
  const woken = new Promise<void>((r) => {
    wake = r;
  });
  const onSignal = (signal: string) => {
    if (signalled === null) {
      signalled = signal;
      wake();
    } else print(`${signal}: already stopping`);
  };
  const onInt = () => onSignal("SIGINT");
  const onTerm = () => onSignal("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    const l1Dir = join(dir, "l1");
    if (opts.l1Url === undefined) {
      // An anvil left by a devnet that was killed outright would hold the port and the state file.
      const leftover = await stopLeftoverAnvil(join(l1Dir, "anvil.pid"), join(l1Dir, "state.json"));
      if (leftover !== null) print(`stopped the anvil (process ${leftover}) that an earlier devnet left running`);
    }
    if (opts.fresh) await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    print(
      `devnet: ${opts.validators} validators + ${opts.replicas} replica(s), chain id ${opts.chainId}, data in ${dir}`,
    );
    let l1: DevnetL1;
    if (opts.l1Url === undefined) {
      anvil = await startEmbeddedL1(dir, opts, print);
      const started = anvil;
      started.child.once("exit", (code, signal) => {
        if (!stopping) print(`  L1 (anvil) exited (${signal ?? code}); see ${join(l1Dir, "anvil.log")}`);
      });
      l1 = { rpc: anvil.url, chainId: anvil.chainId, embedded: true, pid: anvil.pid, contracts: {} };
    } else {
      const chainId = await probeExternalL1(opts.l1Url);
      print(`  ${"L1".padEnd(12)} external  ${opts.l1Url}  chain id ${chainId}`);
      l1 = { rpc: opts.l1Url, chainId, embedded: false, pid: null, contracts: {} };
    }
    if (signalled === null) {
      // A genesis written on this run may still be anchored to the L1 (nothing has run on it yet).
      const newGenesis = !existsSync(join(dir, "genesis.json"));
      let plan = await prepareDevnet({ ...opts, fresh: false, l1 });
      if (l1.embedded && signalled === null) {
        l1 = { ...l1, contracts: await deployStakingContracts(l1, plan, opts.l1BlockTimeS) };
        // The set follows the registry from the block where epoch 1 (= the genesis set) is in force.
        const anchor = newGenesis ? await l1Anchor(l1.rpc, l1.chainId, l1.contracts) : undefined;
        // Again, now with the registry in every node config and the addresses in devnet.json.
        plan = await prepareDevnet({ ...opts, fresh: false, l1, ...(anchor === undefined ? {} : { anchor }) });
        print(`  ${"staking".padEnd(12)} registry ${l1.contracts.registry}  epoch 1 = the genesis set`);
      }
      for (const node of plan.nodes) {
        if (signalled !== null) break;
        const child = spawnNode(node);
        children.push({ node, child });
        print(
          `  ${node.name.padEnd(12)} pid ${child.pid}  rpc ${node.rpc}  dashboard ${node.metrics}/  ` +
            `p2p ${node.p2p}  log ${join(node.dir, "node.log")}`,
        );
        child.once("exit", (code, signal) => {
          if (!stopping) print(`  ${node.name} exited (${signal ?? code}); see ${join(node.dir, "node.log")}`);
        });
      }
      print(`wrote ${join(plan.dir, "devnet.json")}; Ctrl-C stops everything`);
      const registry = l1.contracts.registry;
      if (l1.embedded && registry !== undefined) {
        const keeper = epochKeeper(l1.rpc, registry, print);
        epochTimer = setInterval(() => {
          if (!stopping) void keeper();
        }, 2_000);
      }
      timer = setInterval(async () => {
        const statuses = await Promise.all(plan.nodes.map((n) => fetchStatus(n.metrics, 1_000)));
        if (stopping || signalled !== null) return;
        const parts = plan.nodes.map((n, i) => {
          const s = statuses[i];
          return `${n.name} ${s === null || s === undefined ? "-" : `h${s.headHeight}/r${s.round} ${s.peers.length}p`}`;
        });
        const l1Head = statuses.find((s) => s?.l1?.headBlock !== null && s?.l1?.headBlock !== undefined)?.l1?.headBlock;
        print(
          `${new Date().toISOString().slice(11, 19)}  ${parts.join("  ")}${l1Head === undefined ? "" : `  L1 #${l1Head}`}`,
        );
      }, 2_000);
    }
    await woken;
    return 0;
  } finally {
    stopping = true;
    if (timer !== undefined) clearInterval(timer);
    if (epochTimer !== undefined) clearInterval(epochTimer);
    if (children.length > 0) {
      print(`\n${signalled ?? "stop"}: stopping ${children.length} nodes...`);
      await Promise.all(children.map(({ child }) => stopChild(child)));
      print("all nodes stopped");
    }
    // Last: the nodes poll it until they exit.
    if (anvil !== null) {
      await anvil.stop();
      await unlink(join(dir, "l1", "anvil.pid")).catch(() => {});
      print("L1 (anvil) stopped; its state is saved for the next run");
    }
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
  }
}
