// The node config file (JSON). One zod schema gives the defaults, the validation and the JSON Schema
// (`configJsonSchema()`) for the generated reference. Objects are strict: a misspelt key is an error with a
// suggestion, never silently ignored. Paths are relative to the config file's directory and come out absolute.
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import type { TimeoutParams } from "../../consensus/machine.ts";
import { addIssue, type FileErrorCode, FileIssuesError, type Issue, issuesFromZod, readJsonFile } from "./issues.ts";

/** The node config (or the key password it points to) is missing, unreadable or invalid. */
export class ConfigError extends FileIssuesError {
  override readonly name = "ConfigError";
  constructor(code: FileErrorCode, file: string, issues: readonly Issue[], options?: { cause?: unknown }) {
    super(code, file, issues, options);
  }
}

export const CONFIG_MAX_BYTES = 1024 * 1024;
export const PASSWORD_FILE_MAX_BYTES = 4096;
/** Environment variable holding the key password; it takes precedence over keys.passwordFile. */
export const KEY_PASSWORD_ENV = "DCN_KEY_PASSWORD";

export const CONFIG_LIMITS = {
  maxListen: 16,
  maxPeers: 256,
  maxReplicas: 1024,
  maxTimeoutMs: 600_000,
  minRebroadcastMs: 10,
  maxBlockIntervalMs: 3_600_000,
  minBlockBytes: 1024,
  /** gossipsub drops messages above 4 MiB without a word; a block must fit in one with room for its envelope. */
  maxBlockBytes: 4_000_000,
  maxBlockTransactions: 100_000,
  /** Below this the L1 mirror would mostly measure its own requests. */
  minL1PollIntervalMs: 100,
  /** Deeper than any L1 reorg seen on Ethereum since the merge, far below finality (64+ blocks). */
  maxL1Confirmations: 256,
  maxL1FallbackUrls: 8,
  maxPoolTransactions: 10_000_000,
  /** The pool's byte bound may not be below one largest transaction (128 KiB; src/chain/block.ts). */
  minPoolBytes: 1024 * 1024,
  maxPoolBytes: 16 * 1024 * 1024 * 1024,
  maxPoolPerSender: 65_536,
  maxPoolNonceGap: 65_536,
  maxReplacementBumpPercent: 1_000,
  maxPeerTxRatePerSecond: 1_000_000,
  /** A window shorter than this would walk the whole state every few heights. */
  minStateHistory: 16,
  maxStateHistory: 1_000_000_000,
  /** The execution core reads the hashes of the newest 256 blocks (BLOCKHASH) from the store after a restart. */
  minBlockHistory: 256,
  maxBlockHistory: 1_000_000_000,
} as const;

/** Heights of state a node keeps by default (docs/storage.md "State generations"); 0 keeps every height's. */
const DEFAULT_STATE_HISTORY = 10_000;

/** Transaction pool defaults (docs/mempool.md). */
const DEFAULT_MEMPOOL = {
  maxTransactions: 50_000,
  maxBytes: 64 * 1024 * 1024,
  maxPerSender: 256,
  maxNonceGap: 64,
  replacementBumpPercent: 10,
  peerRatePerSecond: 2_000,
} as const;

/** Hard-finality defaults (docs/hard-finality.md): about one batch every 10 minutes and one output an hour at 1 s blocks. */
export const DEFAULT_FINALITY = {
  batchMinBlocks: 600,
  batchMaxAgeMs: 600_000,
  outputInterval: 3_600,
  posterStaggerMs: 60_000,
  maxFeePerGasGwei: 200,
  batchTransport: "auto",
  batchesPerTurn: 4,
} as const;

/** Blocks an L1 block needs on top of it before the node anchors to it (the devnet's anvil uses 2). */
export const DEFAULT_L1_CONFIRMATIONS = 6;

const LISTEN_EXAMPLE = "/ip4/0.0.0.0/tcp/26656";
const PEER_EXAMPLE = "/ip4/10.0.0.2/tcp/26656/p2p/12D3KooW...";
const PEER_ID_FIX = "copy the peerId from the node's identity.json (written by `dcn init`; it starts with 12D3KooW)";

// ---------------------------------------------------------------------------------------------------------------------
// Field checks

type Checked = { readonly message: string; readonly fix: string } | null;

function parseMultiaddr(text: string): { names: string[]; values: (string | undefined)[] } | string {
  try {
    const components = multiaddr(text).getComponents();
    return { names: components.map((c) => c.name), values: components.map((c) => c.value) };
  } catch (error) {
    return (error as Error).message;
  }
}

function listenProblem(text: string): Checked {
  const parsed = parseMultiaddr(text);
  if (typeof parsed === "string") {
    return {
      message: `${JSON.stringify(text)} is not a multiaddr (${parsed})`,
      fix: `use a form like /ip4/127.0.0.1/tcp/26656`,
    };
  }
  if (parsed.names.includes("p2p")) {
    return {
      message: `${JSON.stringify(text)} names a peer id, which a listen address cannot`,
      fix: "remove the /p2p/... part: the node listens under its own peer id",
    };
  }
  const [network, transport] = parsed.names;
  if ((network !== "ip4" && network !== "ip6") || transport !== "tcp" || parsed.names.length !== 2) {
    return {
      message: `${JSON.stringify(text)} is not an /ip4 or /ip6 TCP address`,
      fix: `the node listens on TCP only: use a form like ${LISTEN_EXAMPLE} (or /ip6/::/tcp/26656)`,
    };
  }
  return null;
}

/** The peer id at the end of a dialable peer multiaddr, or the problem. */
function peerAddressProblem(text: string): Checked {
  const parsed = parseMultiaddr(text);
  if (typeof parsed === "string") {
    return {
      message: `${JSON.stringify(text)} is not a multiaddr (${parsed})`,
      fix: `use a form like ${PEER_EXAMPLE}`,
    };
  }
  if (parsed.names[parsed.names.length - 1] !== "p2p") {
    return {
      message: `${JSON.stringify(text)} does not end in /p2p/<peerId>`,
      fix: `append the peer's id, e.g. ${text.replace(/\/$/, "")}/p2p/12D3KooW...; ${PEER_ID_FIX}`,
    };
  }
  const [network, transport] = parsed.names;
  if (!["ip4", "ip6", "dns", "dns4", "dns6"].includes(network ?? "") || transport !== "tcp") {
    return {
      message: `${JSON.stringify(text)} is not a TCP address`,
      fix: `the node dials TCP only: use a form like ${PEER_EXAMPLE}`,
    };
  }
  return peerIdProblem(parsed.values[parsed.values.length - 1] ?? "");
}

function peerIdProblem(text: string): Checked {
  try {
    peerIdFromString(text);
    return null;
  } catch (error) {
    return {
      message: `${JSON.stringify(text)} is not a libp2p peer id (${(error as Error).message})`,
      fix: PEER_ID_FIX,
    };
  }
}

function checked(check: (text: string) => Checked) {
  return (text: string, ctx: z.RefinementCtx): void => {
    const problem = check(text);
    if (problem !== null) addIssue(ctx, problem.message, problem.fix);
  };
}

function noDuplicates(key: (item: string) => string, what: string) {
  return (items: readonly string[], ctx: z.RefinementCtx): void => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      let k: string;
      try {
        k = key(item);
      } catch {
        return; // the item's own check reports it
      }
      const first = seen.get(k);
      if (first === undefined) seen.set(k, i);
      else addIssue(ctx, `${what} ${JSON.stringify(k)} is listed again (first at [${first}])`, "list it once", [i]);
    });
  };
}

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+$/;

function hostProblem(text: string): Checked {
  return text.length <= 253 && HOST_RE.test(text)
    ? null
    : {
        message: `${JSON.stringify(text)} is not a host name or IP address`,
        fix: "use an address like 127.0.0.1 (local only) or 0.0.0.0 (all interfaces), without scheme or port",
      };
}

const L1_URL_EXAMPLE = "http://127.0.0.1:8645";

const BEACON_URL_EXAMPLE = "http://127.0.0.1:5052";

function beaconUrlProblem(text: string): Checked {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return {
      message: `${JSON.stringify(text)} is not a URL`,
      fix: `use the consensus client's Beacon API base URL, e.g. ${BEACON_URL_EXAMPLE} (the devnet: its anvil URL)`,
    };
  }
  if (!["http:", "https:"].includes(url.protocol)) {
    return {
      message: `${JSON.stringify(text)} uses ${url.protocol.slice(0, -1)}, not http or https`,
      fix: `use the Beacon API over HTTP, e.g. ${BEACON_URL_EXAMPLE}`,
    };
  }
  return null;
}

function l1UrlProblem(text: string): Checked {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return {
      message: `${JSON.stringify(text)} is not a URL`,
      fix: `use the L1 node's JSON-RPC endpoint with its scheme, e.g. ${L1_URL_EXAMPLE} (the devnet's anvil) or wss://HOST/PATH`,
    };
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) {
    return {
      message: `${JSON.stringify(text)} uses ${url.protocol.slice(0, -1)}, not http, https, ws or wss`,
      fix: `use the L1 node's JSON-RPC endpoint over HTTP or WebSocket, e.g. ${L1_URL_EXAMPLE}`,
    };
  }
  return null;
}

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

function l1AddressProblem(text: string): Checked {
  if (ADDRESS_RE.test(text)) return null;
  return {
    message: `${JSON.stringify(text)} is not a 20-byte hex address`,
    fix: "use the SequencerRegistry address as 0x followed by 40 hex digits (devnet.json l1.contracts.registry)",
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Schema

function int(min: number, max: number, fallback: number, description: string) {
  return z
    .number()
    .int()
    .min(min)
    .max(max)
    .default(fallback)
    .meta({ description, examples: [fallback] });
}

/** A duration in milliseconds. */
const ms = int;

const T = CONFIG_LIMITS.maxTimeoutMs;

export const configSchema = z
  .strictObject({
    role: z
      .enum(["validator", "replica"])
      .default("validator")
      .meta({ description: "validator: votes with the consensus key; replica: follows and serves, never votes" }),
    dataDir: z
      .string()
      .min(1)
      .meta({ description: "Database directory, relative to this file", examples: ["data"] }),
    genesis: z
      .string()
      .min(1)
      .meta({ description: "Path of genesis.json, relative to this file", examples: ["genesis.json"] }),
    keys: z
      .strictObject({
        dir: z
          .string()
          .min(1)
          .default("keys")
          .meta({ description: "Directory with consensus.json, peer.json, operator.json", examples: ["keys"] }),
        passwordFile: z
          .string()
          .min(1)
          .optional()
          .meta({
            description: `File holding the key password (one trailing newline ignored); ${KEY_PASSWORD_ENV} overrides it`,
            examples: ["password.txt"],
          }),
      })
      .prefault({}),
    p2p: z
      .strictObject({
        listen: z
          .array(z.string().superRefine(checked(listenProblem)))
          .max(CONFIG_LIMITS.maxListen)
          .superRefine(noDuplicates((s) => s, "address"))
          .default([LISTEN_EXAMPLE])
          .meta({ description: "TCP multiaddrs to listen on", examples: [[LISTEN_EXAMPLE]] }),
        peers: z
          .array(z.string().superRefine(checked(peerAddressProblem)))
          .max(CONFIG_LIMITS.maxPeers)
          .superRefine(noDuplicates(peerIdOfAddress, "peer id"))
          .default([])
          .meta({ description: "Peers to dial: multiaddrs ending in /p2p/<peerId>", examples: [[PEER_EXAMPLE]] }),
        replicas: z
          .array(z.string().superRefine(checked(peerIdProblem)))
          .max(CONFIG_LIMITS.maxReplicas)
          .superRefine(noDuplicates((s) => s, "peer id"))
          .default([])
          .meta({ description: "Peer ids admitted besides the active validators (read-only replicas)" }),
      })
      .prefault({}),
    consensus: z
      .strictObject({
        timeoutProposeMs: ms(1, T, 1000, "Wait for a proposal in round 0"),
        timeoutProposeDeltaMs: ms(0, T, 500, "Added to the propose timeout per round"),
        timeoutProposeMaxMs: z
          .number()
          .int()
          .min(1)
          .max(T)
          .optional()
          .meta({
            description:
              "Upper bound of the propose timeout as it adapts to how late proposals arrive (1.5 x the slowest of the last 8); default 4 x timeoutProposeMs; at most timeoutProposeMs = no adaptation",
            examples: [4000],
          }),
        timeoutPrevoteMs: ms(1, T, 500, "Wait for more prevotes after +2/3 of any in round 0"),
        timeoutPrevoteDeltaMs: ms(0, T, 250, "Added to the prevote timeout per round"),
        timeoutPrecommitMs: ms(1, T, 500, "Wait for more precommits after +2/3 of any in round 0"),
        timeoutPrecommitDeltaMs: ms(0, T, 250, "Added to the precommit timeout per round"),
        rebroadcastMs: ms(CONFIG_LIMITS.minRebroadcastMs, T, 1000, "Re-send own votes while a round is stuck"),
        blockIntervalMs: ms(
          0,
          CONFIG_LIMITS.maxBlockIntervalMs,
          0,
          "Minimum time between blocks; 0 = as fast as consensus",
        ),
        emptyBlockIntervalMs: ms(
          0,
          CONFIG_LIMITS.maxBlockIntervalMs,
          1000,
          "With an empty pool, time between blocks: a height starts earlier as soon as a transaction or a peer's proposal arrives; 0 = never wait",
        ),
        doppelgangerWaitMs: ms(
          0,
          T,
          30_000,
          "After seeing a message signed by this validator's key that this node did not sign (another process holds the key), sign nothing for this long; 0 = only log and count it",
        ),
        haltHeight: z
          .number()
          .int()
          .min(1)
          .nullable()
          .default(null)
          .meta({
            description:
              'Commit up to this height, then stop (exit 0) without signing anything above it: every operator sets the same height to upgrade the subnet together (docs/operations.md "Upgrades"); null = never',
            examples: [null, 1_000_000],
          }),
        maxBlockBytes: z
          .number()
          .int()
          .min(CONFIG_LIMITS.minBlockBytes)
          .max(CONFIG_LIMITS.maxBlockBytes)
          .default(2_000_000)
          .meta({
            description: "Largest encoded block a proposer builds or a validator accepts",
            examples: [2_000_000],
          }),
        maxBlockTransactions: z
          .number()
          .int()
          .min(1)
          .max(CONFIG_LIMITS.maxBlockTransactions)
          .default(10_000)
          .meta({ description: "Most transactions in one block", examples: [10_000] }),
      })
      .prefault({}),
    mempool: z
      .strictObject({
        maxTransactions: int(
          1,
          CONFIG_LIMITS.maxPoolTransactions,
          DEFAULT_MEMPOOL.maxTransactions,
          "Transactions the pool holds at most; when full, a newcomer must outrank what it evicts",
        ),
        maxBytes: int(
          CONFIG_LIMITS.minPoolBytes,
          CONFIG_LIMITS.maxPoolBytes,
          DEFAULT_MEMPOOL.maxBytes,
          "Sum of the raw sizes of pooled transactions at most (bytes)",
        ),
        maxPerSender: int(
          1,
          CONFIG_LIMITS.maxPoolPerSender,
          DEFAULT_MEMPOOL.maxPerSender,
          "Transactions of one sender held at most, runnable and waiting",
        ),
        maxNonceGap: int(
          0,
          CONFIG_LIMITS.maxPoolNonceGap,
          DEFAULT_MEMPOOL.maxNonceGap,
          "A transaction whose nonce is more than this far ahead of its sender's committed nonce is refused",
        ),
        replacementBumpPercent: int(
          0,
          CONFIG_LIMITS.maxReplacementBumpPercent,
          DEFAULT_MEMPOOL.replacementBumpPercent,
          "A replacement (same sender and nonce) must raise both fee fields by at least this many percent",
        ),
        peerRatePerSecond: int(
          1,
          CONFIG_LIMITS.maxPeerTxRatePerSecond,
          DEFAULT_MEMPOOL.peerRatePerSecond,
          "Gossiped transactions accepted per second from one peer (burst: one second's worth); the excess is ignored without penalty. JSON-RPC submissions are not limited by it",
        ),
      })
      .prefault({}),
    storage: z
      .strictObject({
        stateHistory: int(
          0,
          CONFIG_LIMITS.maxStateHistory,
          DEFAULT_STATE_HISTORY,
          `Heights whose state (balances, storage, code) is kept, at least: older state is dropped, and reads of it (eth_getBalance, eth_call, eth_getProof at an old block) answer that it is pruned. Between this and twice this many heights are kept. 0 keeps every height's state (an archive node); otherwise at least ${CONFIG_LIMITS.minStateHistory}`,
        ).refine((n) => n === 0 || n >= CONFIG_LIMITS.minStateHistory, {
          message: `must be 0 (keep all) or at least ${CONFIG_LIMITS.minStateHistory}`,
        }),
        blockHistory: int(
          0,
          CONFIG_LIMITS.maxBlockHistory,
          0,
          `Heights whose blocks, certificates, receipts and transaction index entries are kept, at least: older history is deleted, and JSON-RPC reads of it answer error 4444 "pruned history unavailable". Block 1 and the block before each validator-set change stay (light clients follow the sets through them), and heights the batcher has not yet posted to the L1 or the work ledger has not yet counted stay until they are. A node that prunes history cannot sync a new node from genesis: keep at least one node of the subnet at 0. 0 keeps all history (an archive node); otherwise at least ${CONFIG_LIMITS.minBlockHistory}`,
        ).refine((n) => n === 0 || n >= CONFIG_LIMITS.minBlockHistory, {
          message: `must be 0 (keep all) or at least ${CONFIG_LIMITS.minBlockHistory}`,
        }),
      })
      .prefault({}),
    sync: z
      .strictObject({
        stateSync: z.boolean().default(false).meta({
          description:
            "When the node has no committed height yet, start from a connected peer's recent state instead of executing every block from the genesis: the peer's head is verified from the genesis validator set through the certificates of every set change, then the blocks of the last 256 heights and every state node are fetched and checked against it (docs/protocol.md \"State sync\"). Needed to join a subnet whose nodes prune history (storage.blockHistory). Ignored once the node has committed a height",
        }),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        enabled: z.boolean().default(true).meta({ description: "Serve Prometheus metrics" }),
        host: z
          .string()
          .superRefine(checked(hostProblem))
          .default("127.0.0.1")
          .meta({ description: "Metrics bind address", examples: ["127.0.0.1"] }),
        port: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .default(9100)
          .meta({ description: "Metrics TCP port (0 = any free port)", examples: [9100] }),
      })
      .prefault({}),
    rpc: z
      .strictObject({
        enabled: z.boolean().default(true).meta({ description: "Serve the Ethereum JSON-RPC (HTTP)" }),
        host: z
          .string()
          .superRefine(checked(hostProblem))
          .default("127.0.0.1")
          .meta({ description: "JSON-RPC bind address", examples: ["127.0.0.1"] }),
        port: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .default(8545)
          .meta({ description: "JSON-RPC TCP port (0 = any free port)", examples: [8545] }),
        cors: z
          .array(z.string())
          .max(64)
          .default([])
          .meta({ description: "Origins allowed by CORS (empty: CORS off)", examples: [["https://app.example"]] }),
        debug: z.boolean().default(false).meta({
          description:
            "Serve debug_traceTransaction, debug_traceBlockByNumber/ByHash and debug_traceCall (each re-executes a block or call on this node: keep off on endpoints open to anyone)",
        }),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
        format: z.enum(["json", "pretty"]).default("json"),
      })
      .prefault({}),
    l1: z
      .strictObject({
        rpcUrl: z
          .string()
          .superRefine(checked(l1UrlProblem))
          .meta({
            description:
              "JSON-RPC endpoint of the L1 (http, https, ws or wss); it may embed an API key, so it is never shown in status",
            examples: [L1_URL_EXAMPLE],
          }),
        fallbackRpcUrls: z
          .array(z.string().superRefine(checked(l1UrlProblem)))
          .max(CONFIG_LIMITS.maxL1FallbackUrls)
          .default([])
          .meta({
            description:
              "Further L1 endpoints of the same chain, used in turn when the one in use fails (no connection, timeout, HTTP 5xx/429); the primary rpcUrl is tried again a minute after a switch. Logs and metrics name them by index, never by URL",
            examples: [["https://l1-backup.example.net/rpc"]],
          }),
        pollIntervalMs: ms(
          CONFIG_LIMITS.minL1PollIntervalMs,
          T,
          2000,
          "How often the node reads the L1's chain id and head block (backs off while the L1 fails)",
        ),
        confirmations: z
          .number()
          .int()
          .min(0)
          .max(CONFIG_LIMITS.maxL1Confirmations)
          .default(DEFAULT_L1_CONFIRMATIONS)
          .meta({
            description:
              "Blocks on top of an L1 block before it counts as confirmed (L2 anchors and validator sets are read at confirmed blocks only)",
            examples: [DEFAULT_L1_CONFIRMATIONS],
          }),
        registry: z
          .string()
          .superRefine(checked(l1AddressProblem))
          .optional()
          .meta({
            description: "SequencerRegistry contract address; without it the node reads no validator sets from L1",
            examples: ["0x5FbDB2315678afecb367f032d93F642f64180aa3"],
          }),
        slashing: z
          .string()
          .superRefine(checked(l1AddressProblem))
          .optional()
          .meta({
            description:
              "The L1 Slashing contract: a validator with an operator key submits the equivocation evidence it holds there (the offender is slashed and jailed); absent: it reports none",
            examples: ["0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"],
          }),
        deriveFromL1: z.boolean().default(false).meta({
          description:
            "Rebuild the chain from the batches in the genesis' L1 batch inbox (confirmed blocks only), with or without p2p peers (docs/hard-finality.md)",
        }),
        batchMinBlocks: z
          .number()
          .int()
          .min(1)
          .max(4096)
          .default(DEFAULT_FINALITY.batchMinBlocks)
          .meta({
            description:
              "A validator posts a batch once this many committed heights are pending (or see batchMaxAgeMs)",
            examples: [DEFAULT_FINALITY.batchMinBlocks],
          }),
        batchMaxAgeMs: ms(
          1_000,
          86_400_000,
          DEFAULT_FINALITY.batchMaxAgeMs,
          "...or once the oldest pending block is this old (by its header timestamp)",
        ),
        outputInterval: z
          .number()
          .int()
          .min(1)
          .max(1_000_000)
          .default(DEFAULT_FINALITY.outputInterval)
          .meta({
            description: "Heights between two outputs a validator proposes to the L1 output oracle",
            examples: [DEFAULT_FINALITY.outputInterval],
          }),
        posterStaggerMs: ms(
          100,
          T,
          DEFAULT_FINALITY.posterStaggerMs,
          "Between two validators' turns to post a batch or an output (the next one posts if the first did not)",
        ),
        maxFeePerGasGwei: z
          .number()
          .positive()
          .max(1_000_000)
          .default(DEFAULT_FINALITY.maxFeePerGasGwei)
          .meta({
            description:
              "Highest L1 fee per gas the batcher and output proposer pay (gwei), blob gas included; above it they wait",
            examples: [DEFAULT_FINALITY.maxFeePerGasGwei],
          }),
        batchTransport: z
          .enum(["calldata", "blobs", "auto"])
          .default(DEFAULT_FINALITY.batchTransport)
          .meta({
            description:
              "How batches go to L1: calldata, EIP-4844 blobs, or auto (blobs when the L1 has them and they cost less per byte than calldata, or when a block is too large for calldata)",
            examples: [DEFAULT_FINALITY.batchTransport],
          }),
        batchesPerTurn: z
          .number()
          .int()
          .min(1)
          .max(16)
          .default(DEFAULT_FINALITY.batchesPerTurn)
          .meta({
            description:
              "Batches a validator posts in one turn at most, one L1 transaction each with consecutive nonces, all in flight at once (more than one batch per L1 block when heights are pending faster than one batch carries them)",
            examples: [DEFAULT_FINALITY.batchesPerTurn],
          }),
        beaconUrl: z
          .string()
          .superRefine(checked(beaconUrlProblem))
          .optional()
          .meta({
            description:
              "Beacon API base URL of the L1's consensus client, where derivation reads the blobs of blob batches; without it blob batches are skipped (devnet: the anvil URL)",
            examples: [BEACON_URL_EXAMPLE],
          }),
      })
      .optional()
      .meta({
        description: "The Ethereum L1 of the subnet. Without it the node runs and reports L1 as not configured.",
      }),
  })
  .meta({ title: "Lumia DCN node config" });

/** The config file as written (relative paths, defaults filled in). */
export type ConfigFile = z.output<typeof configSchema>;

export type LogLevel = ConfigFile["log"]["level"];

export interface PeerAddress {
  /** Full multiaddr, ending in /p2p/<peerId>. */
  readonly multiaddr: string;
  readonly peerId: string;
}

/** The validated config: every default filled in, every path absolute, timeouts in the state machine's terms. */
export interface NodeConfig {
  /** Label of the source in messages (the config file's name). */
  readonly source: string;
  /** Absolute directory that relative paths were resolved against. */
  readonly baseDir: string;
  readonly role: "validator" | "replica";
  readonly dataDir: string;
  readonly genesis: string;
  readonly keys: { readonly dir: string; readonly passwordFile: string | null };
  readonly p2p: {
    readonly listen: readonly string[];
    readonly peers: readonly PeerAddress[];
    readonly replicas: readonly string[];
  };
  readonly consensus: {
    readonly timeouts: TimeoutParams;
    readonly proposeTimeoutMaxMs: number;
    readonly rebroadcastMs: number;
    readonly blockIntervalMs: number;
    readonly emptyBlockIntervalMs: number;
    readonly doppelgangerWaitMs: number;
    /** Stop after committing this height (coordinated upgrades); null = never. */
    readonly haltHeight: number | null;
    readonly maxBlockBytes: number;
    readonly maxBlockTransactions: number;
  };
  /** The transaction pool's limits (src/mempool/mempool.ts MempoolLimits, less those fixed by the chain). */
  readonly mempool: {
    readonly maxCount: number;
    readonly maxBytes: number;
    readonly maxPerSender: number;
    readonly maxNonceGap: number;
    readonly minReplacementBumpPercent: number;
    readonly peerRatePerSecond: number;
  };
  /**
   * stateHistory: heights of state kept at least; blockHistory: heights of blocks, receipts and the transaction index
   * kept at least; 0: all (docs/storage.md "State generations", "History pruning").
   */
  readonly storage: { readonly stateHistory: number; readonly blockHistory: number };
  /** stateSync: an empty node starts from a peer's verified recent state (src/node/state-sync.ts). */
  readonly sync: { readonly stateSync: boolean };
  readonly metrics: { readonly enabled: boolean; readonly host: string; readonly port: number };
  readonly rpc: {
    readonly enabled: boolean;
    readonly host: string;
    readonly port: number;
    readonly cors: readonly string[];
    readonly debug: boolean;
  };
  readonly log: { readonly level: LogLevel; readonly format: "json" | "pretty" };
  /** null when the config has no l1 section. */
  readonly l1: {
    readonly rpcUrl: string;
    /** Used in turn when the endpoint in use fails (src/l1/failover.ts). */
    readonly fallbackRpcUrls: readonly string[];
    readonly pollIntervalMs: number;
    readonly confirmations: number;
    /** SequencerRegistry address; null = no registry (the L1 head and confirmations only). */
    readonly registry: `0x${string}` | null;
    /** The Slashing contract the validator reports equivocation to; null = it reports none. */
    readonly slashing: `0x${string}` | null;
    /** Hard finality (docs/hard-finality.md): derivation from L1, batch and output posting. */
    readonly deriveFromL1: boolean;
    readonly batchMinBlocks: number;
    readonly batchMaxAgeMs: number;
    readonly outputInterval: number;
    readonly posterStaggerMs: number;
    readonly maxFeePerGasGwei: number;
    readonly batchTransport: "calldata" | "blobs" | "auto";
    readonly batchesPerTurn: number;
    /** Beacon API base URL (blob batches for derivation); null = none. */
    readonly beaconUrl: string | null;
  } | null;
}

/** The peer id at the end of a peer multiaddr (throws on anything else; callers pass checked addresses). */
function peerIdOfAddress(address: string): string {
  const last = multiaddr(address).getComponents().at(-1);
  if (last?.name !== "p2p" || last.value === undefined) throw new RangeError(`${address} does not end in /p2p/<id>`);
  return last.value;
}

// ---------------------------------------------------------------------------------------------------------------------
// Parsing and loading

/** The config file's `mempool` section in the pool's terms (src/mempool/mempool.ts MempoolLimits). */
function poolLimits(m: ConfigFile["mempool"]): NodeConfig["mempool"] {
  return {
    maxCount: m.maxTransactions,
    maxBytes: m.maxBytes,
    maxPerSender: m.maxPerSender,
    maxNonceGap: m.maxNonceGap,
    minReplacementBumpPercent: m.replacementBumpPercent,
    peerRatePerSecond: m.peerRatePerSecond,
  };
}

/** The pool limits of a config without a `mempool` section, for pools assembled without a config file (tests). */
export const DEFAULT_MEMPOOL_LIMITS: NodeConfig["mempool"] = poolLimits(DEFAULT_MEMPOOL);

/** Validates `json` and resolves its paths against `baseDir`. Throws ConfigError listing every issue. */
export function parseConfig(json: unknown, baseDir: string, source = "config"): NodeConfig {
  const result = configSchema.safeParse(json);
  if (!result.success) throw new ConfigError("invalid", source, issuesFromZod(configSchema, json, result.error));
  const c = result.data;
  const base = resolve(baseDir);
  return {
    source,
    baseDir: base,
    role: c.role,
    dataDir: resolve(base, c.dataDir),
    genesis: resolve(base, c.genesis),
    keys: {
      dir: resolve(base, c.keys.dir),
      passwordFile: c.keys.passwordFile === undefined ? null : resolve(base, c.keys.passwordFile),
    },
    p2p: {
      listen: c.p2p.listen,
      peers: c.p2p.peers.map((address) => ({ multiaddr: address, peerId: peerIdOfAddress(address) })),
      replicas: c.p2p.replicas,
    },
    consensus: {
      timeouts: {
        proposeMs: c.consensus.timeoutProposeMs,
        proposeDeltaMs: c.consensus.timeoutProposeDeltaMs,
        prevoteMs: c.consensus.timeoutPrevoteMs,
        prevoteDeltaMs: c.consensus.timeoutPrevoteDeltaMs,
        precommitMs: c.consensus.timeoutPrecommitMs,
        precommitDeltaMs: c.consensus.timeoutPrecommitDeltaMs,
      },
      proposeTimeoutMaxMs: c.consensus.timeoutProposeMaxMs ?? 4 * c.consensus.timeoutProposeMs,
      rebroadcastMs: c.consensus.rebroadcastMs,
      blockIntervalMs: c.consensus.blockIntervalMs,
      emptyBlockIntervalMs: c.consensus.emptyBlockIntervalMs,
      doppelgangerWaitMs: c.consensus.doppelgangerWaitMs,
      haltHeight: c.consensus.haltHeight,
      maxBlockBytes: c.consensus.maxBlockBytes,
      maxBlockTransactions: c.consensus.maxBlockTransactions,
    },
    mempool: poolLimits(c.mempool),
    storage: c.storage,
    sync: c.sync,
    metrics: c.metrics,
    rpc: c.rpc,
    log: c.log,
    l1:
      c.l1 === undefined
        ? null
        : {
            rpcUrl: c.l1.rpcUrl,
            fallbackRpcUrls: c.l1.fallbackRpcUrls,
            pollIntervalMs: c.l1.pollIntervalMs,
            confirmations: c.l1.confirmations,
            registry: c.l1.registry === undefined ? null : (c.l1.registry as `0x${string}`),
            slashing: c.l1.slashing === undefined ? null : (c.l1.slashing as `0x${string}`),
            deriveFromL1: c.l1.deriveFromL1,
            batchMinBlocks: c.l1.batchMinBlocks,
            batchMaxAgeMs: c.l1.batchMaxAgeMs,
            outputInterval: c.l1.outputInterval,
            posterStaggerMs: c.l1.posterStaggerMs,
            maxFeePerGasGwei: c.l1.maxFeePerGasGwei,
            batchTransport: c.l1.batchTransport,
            batchesPerTurn: c.l1.batchesPerTurn,
            beaconUrl: c.l1.beaconUrl ?? null,
          },
  };
}

/** Reads and validates the config file at `path`; relative paths in it are resolved against its directory. */
export async function loadConfig(path: string): Promise<NodeConfig> {
  const absolute = resolve(path);
  const source = basename(absolute);
  const json = await readJsonFile(
    absolute,
    CONFIG_MAX_BYTES,
    "node config",
    (code, issue, cause) => new ConfigError(code, source, [issue], cause === null ? undefined : { cause }),
  );
  return parseConfig(json, dirname(absolute), source);
}

/**
 * The key password: `DCN_KEY_PASSWORD` if set and non-empty, else the content of keys.passwordFile (one trailing
 * newline removed, since editors add one), else undefined (only insecure key files then load).
 */
export async function readKeyPassword(
  config: NodeConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<string | undefined> {
  const fromEnv = env[KEY_PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const file = config.keys.passwordFile;
  if (file === null) return undefined;
  const text = await readTextFile(file, PASSWORD_FILE_MAX_BYTES, config.source);
  const password = text.replace(/\r?\n$/, "");
  if (password === "") {
    throw new ConfigError("invalid", config.source, [
      { path: "keys.passwordFile", message: `${file} is empty`, fix: "write the key password into it" },
    ]);
  }
  return password;
}

async function readTextFile(file: string, maxBytes: number, source: string): Promise<string> {
  const fail = (code: FileErrorCode, message: string, fix: string, cause?: unknown): ConfigError =>
    new ConfigError(
      code,
      source,
      [{ path: "keys.passwordFile", message, fix }],
      cause === undefined ? undefined : { cause },
    );
  try {
    const info = await stat(file);
    if (info.size > maxBytes)
      throw fail("too_large", `${file} has ${info.size} bytes`, "it should hold only the password");
    return await readFile(file, "utf8");
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw fail("not_found", `${file} does not exist`, `create it, or set ${KEY_PASSWORD_ENV} instead`, error);
    }
    throw fail("unreadable", `cannot read ${file}: ${(error as Error).message}`, "check its permissions", error);
  }
}

/** JSON Schema (draft 2020-12) of the config file as written, defaults included: the source of the config reference. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
}

/** A complete config file with every default spelled out, for `dcn init` to write next to the keys. */
export function configTemplate(paths: { dataDir: string; genesis: string }): ConfigFile {
  return configSchema.parse({ dataDir: paths.dataDir, genesis: paths.genesis });
}
