// What the node shows about its L1 (L1Status, which the L1 mirror in ./mirror.ts maintains), the dcn_l1_* metrics, the
// viem transport, and a one-shot reader for tools (the devnet's probe of an external L1). The status carries no URL:
// lumia_status is public, and L1 endpoint URLs often embed an API key.
import type { Registry } from "prom-client";
import { Counter, Gauge } from "prom-client";
import { BaseError, createPublicClient, http, type PublicClient, type Transport, webSocket } from "viem";
import { DEFAULT_PRIMARY_RETRY_MS, type FailoverEvents, failoverTransport } from "./failover.ts";

export interface L1Status {
  /** An `l1` section is in the config. */
  readonly configured: boolean;
  /** The last poll succeeded. */
  readonly connected: boolean;
  readonly chainId: number | null;
  /** Last block number seen (kept while disconnected; see lastUpdateMs for its age). */
  readonly headBlock: number | null;
  /** When the last poll succeeded, ms since the epoch. */
  readonly lastUpdateMs: number | null;
  /** Why the last poll failed; null after a success. */
  readonly error: string | null;
  /** The L1 mirror's confirmation depth; null without a mirror. */
  readonly confirmations: number | null;
  /** Newest block at confirmation depth (the mirror); null before the first or without a mirror. */
  readonly confirmedBlock: number | null;
  /** The registry's epoch at the confirmed block; null without a registry or before the first read. */
  readonly epoch: number | null;
  /** Reorgs seen since start (all depths). */
  readonly reorgs: number;
  /** The endpoint in use: 0 = `l1.rpcUrl`, k = `l1.fallbackRpcUrls[k - 1]`; null without a mirror. */
  readonly endpoint: number | null;
}

export const L1_NOT_CONFIGURED: L1Status = {
  configured: false,
  connected: false,
  chainId: null,
  headBlock: null,
  lastUpdateMs: null,
  error: null,
  confirmations: null,
  confirmedBlock: null,
  epoch: null,
  reorgs: 0,
  endpoint: null,
};

/** Longest error text kept in the status. */
const MAX_ERROR_CHARS = 200;

/** Chain id and head of an L1 endpoint (the devnet's probe of an external L1). */
export interface L1Reader {
  getChainId(): Promise<number>;
  getBlockNumber(): Promise<bigint>;
  close(): Promise<void>;
}

/** The dcn_l1_* metrics (registered once per node, by its L1 mirror). */
export interface L1Metrics {
  readonly head: Gauge;
  readonly connected: Gauge;
  readonly rpcErrors: Counter;
  readonly endpoint: Gauge;
  readonly endpointSwitches: Counter;
  readonly confirmedBlock: Gauge;
  readonly reorgs: Counter<"depth">;
  readonly historyReads: Counter;
  readonly stakerIndexBlock: Gauge;
}

export function createL1Metrics(registry: Registry): L1Metrics {
  const registers = [registry];
  return {
    head: new Gauge({ name: "dcn_l1_head_block", help: "Last L1 block number seen", registers }),
    connected: new Gauge({ name: "dcn_l1_connected", help: "1 when the last L1 poll succeeded, else 0", registers }),
    rpcErrors: new Counter({ name: "dcn_l1_rpc_errors_total", help: "Failed L1 polls and reads", registers }),
    endpoint: new Gauge({
      name: "dcn_l1_endpoint",
      help: "The L1 endpoint the mirror uses: 0 = l1.rpcUrl, k = l1.fallbackRpcUrls[k - 1]",
      registers,
    }),
    endpointSwitches: new Counter({
      name: "dcn_l1_endpoint_switches_total",
      help: "Times the mirror's L1 endpoint changed: to a fallback after a failure, or back to the primary",
      registers,
    }),
    confirmedBlock: new Gauge({
      name: "dcn_l1_confirmed_block",
      help: "Newest L1 block at confirmation depth (the L1 mirror)",
      registers,
    }),
    historyReads: new Counter({
      name: "dcn_l1_history_reads_total",
      help: "Reads of an old L1 block's registry state answered from a newer confirmed block (the endpoint keeps no older state)",
      registers,
    }),
    stakerIndexBlock: new Gauge({
      name: "dcn_l1_staker_index_block",
      help: "Last L1 block whose staking events (Staked, Claimed) the staking index has read",
      registers,
    }),
    reorgs: new Counter({
      name: "dcn_l1_reorgs_total",
      help: "L1 reorgs the mirror saw; depth=confirmed when a block at confirmation depth was replaced",
      labelNames: ["depth"],
      registers,
    }),
  };
}

/** How logs name an L1 endpoint: by its config key, never its URL (URLs often embed an API key). */
export function l1EndpointName(index: number): string {
  return index === 0 ? "l1.rpcUrl" : `l1.fallbackRpcUrls[${index - 1}]`;
}

/** Whether a URL is a WebSocket endpoint. */
export function isWebSocketUrl(url: string): boolean {
  return url.startsWith("ws://") || url.startsWith("wss://");
}

/**
 * viem transport over HTTP(S) or WebSocket, chosen by the URL's scheme; no retries (callers back off). HTTP batches
 * the requests made in the same tick into one JSON-RPC batch (the mirror's per-member reads). Several URLs (the
 * primary first, then `l1.fallbackRpcUrls`) make one transport that fails over between them (src/l1/failover.ts).
 */
export function createL1Transport(
  rpcUrls: string | readonly string[],
  timeoutMs: number,
  batch = false,
  failover: FailoverEvents & { readonly primaryRetryMs?: number } = {},
): Transport {
  const urls = typeof rpcUrls === "string" ? [rpcUrls] : rpcUrls;
  const one = (url: string): Transport =>
    isWebSocketUrl(url)
      ? webSocket(url, { timeout: timeoutMs, retryCount: 0, reconnect: false, keepAlive: false })
      : http(url, { timeout: timeoutMs, retryCount: 0, ...(batch ? { batch: { batchSize: 100, wait: 0 } } : {}) });
  const [first, ...rest] = urls;
  if (first === undefined) throw new RangeError("createL1Transport needs an endpoint");
  if (rest.length === 0) return one(first);
  return failoverTransport(
    urls.map(one),
    { primaryRetryMs: failover.primaryRetryMs ?? DEFAULT_PRIMARY_RETRY_MS },
    failover,
  );
}

/** Closes a viem client's WebSockets, if it has any (every endpoint's, behind a failover transport). */
export async function closeL1Client(client: { transport: unknown }): Promise<void> {
  const transportValue = client.transport as {
    getRpcClient?: () => Promise<{ close(): void }>;
    closeAll?: () => Promise<void>;
  };
  try {
    await transportValue.closeAll?.();
    (await transportValue.getRpcClient?.())?.close();
  } catch {
    // never connected
  }
}

/** viem public client over HTTP(S) or WebSocket, chosen by the URL's scheme; no retries (callers back off). */
export function createL1Reader(rpcUrl: string, timeoutMs: number): L1Reader {
  const ws = rpcUrl.startsWith("ws://") || rpcUrl.startsWith("wss://");
  const transport = createL1Transport(rpcUrl, timeoutMs);
  // cacheTime 0: viem would otherwise answer getBlockNumber from a 4 s cache.
  const client: PublicClient = createPublicClient({ transport, cacheTime: 0 });
  return {
    getChainId: () => client.getChainId(),
    getBlockNumber: () => client.getBlockNumber({ cacheTime: 0 }),
    async close() {
      if (ws) await closeL1Client(client);
    },
  };
}

/** The error's short message and its root cause ("HTTP request failed.: fetch failed: connect ECONNREFUSED ..."). */
export function shortError(error: unknown): string {
  const firstLine = (e: unknown): string => {
    const text = e instanceof BaseError ? e.shortMessage : e instanceof Error ? e.message : String(e ?? "");
    return text.split("\n")[0] ?? "";
  };
  let line = firstLine(error);
  let root: unknown = error;
  for (let depth = 0; depth < 8; depth++) {
    const next: unknown = typeof root === "object" && root !== null ? (root as { cause?: unknown }).cause : undefined;
    if (next === undefined || next === null) break;
    root = next;
  }
  // viem's messages for a failed URL stop at "HTTP request failed."; the cause says why. Only the root cause's
  // text is added, never viem's details, which repeat the URL.
  if (root !== error) {
    const why = typeof root === "object" && root !== null && "message" in root ? String(root.message) : "";
    if (why !== "") line = `${line} ${why.split("\n")[0]}`;
  }
  const max = MAX_ERROR_CHARS;
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}
