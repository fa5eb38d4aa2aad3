// What the node knows about its L1: whether the configured JSON-RPC endpoint answers, its chain id and head block.
// A timer polls eth_chainId and eth_blockNumber (viem) every `pollIntervalMs`, backing off exponentially while the
// endpoint fails. Nothing here throws into the node: failures become `connected: false` with the error's short
// message, a counter, and one log line per change of state. The status carries no URL: lumia_status is public, and
// L1 endpoint URLs often embed an API key.
import type { Registry } from "prom-client";
import { Counter, Gauge } from "prom-client";
import { BaseError, createPublicClient, http, type PublicClient, webSocket } from "viem";

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
}

export const L1_NOT_CONFIGURED: L1Status = {
  configured: false,
  connected: false,
  chainId: null,
  headBlock: null,
  lastUpdateMs: null,
  error: null,
};

export const L1_STATUS_LIMITS = {
  defaultRequestTimeoutMs: 5_000,
  defaultMaxBackoffMs: 60_000,
  maxErrorChars: 200,
} as const;

/** The two reads the poller makes; viem's public client in production, anything in tests. */
export interface L1Reader {
  getChainId(): Promise<number>;
  getBlockNumber(): Promise<bigint>;
  close(): Promise<void>;
}

export interface L1StatusOptions {
  readonly rpcUrl: string;
  readonly pollIntervalMs: number;
  readonly requestTimeoutMs?: number;
  readonly maxBackoffMs?: number;
}

export interface L1StatusModules {
  /** Registers dcn_l1_* metrics here when given. */
  readonly registry?: Registry;
  readonly log?: (level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void;
  readonly nowMs?: () => number;
  /** Overrides the viem client built from rpcUrl. */
  readonly reader?: L1Reader;
}

/** viem public client over HTTP(S) or WebSocket, chosen by the URL's scheme; no retries (the poller backs off). */
export function createL1Reader(rpcUrl: string, timeoutMs: number): L1Reader {
  const ws = rpcUrl.startsWith("ws://") || rpcUrl.startsWith("wss://");
  const transport = ws
    ? webSocket(rpcUrl, { timeout: timeoutMs, retryCount: 0, reconnect: false, keepAlive: false })
    : http(rpcUrl, { timeout: timeoutMs, retryCount: 0 });
  // cacheTime 0: viem would otherwise answer getBlockNumber from a 4 s cache.
  const client: PublicClient = createPublicClient({ transport, cacheTime: 0 });
  return {
    getChainId: () => client.getChainId(),
    getBlockNumber: () => client.getBlockNumber({ cacheTime: 0 }),
    async close() {
      if (!ws) return;
      const transportValue = client.transport as { getRpcClient?: () => Promise<{ close(): void }> };
      try {
        (await transportValue.getRpcClient?.())?.close();
      } catch {
        // never connected
      }
    },
  };
}

/** The error's short message and its root cause ("HTTP request failed.: fetch failed: connect ECONNREFUSED ..."). */
function shortError(error: unknown): string {
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
  const max = L1_STATUS_LIMITS.maxErrorChars;
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

export class L1StatusPoller {
  private current: L1Status = { ...L1_NOT_CONFIGURED, configured: true };
  private reader: L1Reader | null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inFlight: Promise<void> | null = null;
  private failures = 0;
  private stopped = false;
  private readonly nowMs: () => number;
  private readonly headGauge: Gauge | null;
  private readonly connectedGauge: Gauge | null;
  private readonly errors: Counter | null;

  constructor(
    private readonly opts: L1StatusOptions,
    private readonly m: L1StatusModules = {},
  ) {
    this.nowMs = m.nowMs ?? Date.now;
    this.reader = m.reader ?? null;
    const r = m.registry === undefined ? null : [m.registry];
    this.headGauge =
      r === null
        ? null
        : new Gauge({
            name: "dcn_l1_head_block",
            help: "Last L1 block number seen by the status poller",
            registers: r,
          });
    this.connectedGauge =
      r === null
        ? null
        : new Gauge({ name: "dcn_l1_connected", help: "1 when the last L1 poll succeeded, else 0", registers: r });
    this.errors =
      r === null
        ? null
        : new Counter({ name: "dcn_l1_rpc_errors_total", help: "Failed L1 status polls", registers: r });
  }

  status(): L1Status {
    return this.current;
  }

  /** Polls now, then on its own timer until stop(). */
  start(): void {
    if (this.stopped || this.timer !== null || this.inFlight !== null) return;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
    await this.reader?.close().catch(() => {});
  }

  /** One poll (exposed for tests); never rejects. */
  pollOnce(): Promise<void> {
    if (this.inFlight === null) {
      this.inFlight = this.poll().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  /** The wait before the next poll: the interval, doubled per consecutive failure up to maxBackoffMs. */
  nextDelayMs(): number {
    const max = this.opts.maxBackoffMs ?? L1_STATUS_LIMITS.defaultMaxBackoffMs;
    if (this.failures === 0) return this.opts.pollIntervalMs;
    return Math.min(max, this.opts.pollIntervalMs * 2 ** Math.min(this.failures, 20));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pollOnce().then(() => this.schedule(this.nextDelayMs()));
    }, delayMs);
    // A status poller alone must not keep a process alive.
    this.timer.unref?.();
  }

  private async poll(): Promise<void> {
    try {
      const reader = this.readerOrCreate();
      // The chain id is read on every poll: cheap, and an endpoint can be repointed to another chain.
      const [chainId, head] = await Promise.all([reader.getChainId(), reader.getBlockNumber()]);
      if (this.stopped) return;
      const wasConnected = this.current.connected;
      this.failures = 0;
      this.current = {
        configured: true,
        connected: true,
        chainId,
        headBlock: Number(head),
        lastUpdateMs: this.nowMs(),
        error: null,
      };
      this.headGauge?.set(Number(head));
      this.connectedGauge?.set(1);
      if (!wasConnected) this.m.log?.("info", "L1 endpoint answers", { l1ChainId: chainId, l1Head: Number(head) });
    } catch (error) {
      if (this.stopped) return;
      const message = shortError(error);
      const first = this.failures === 0;
      this.failures++;
      this.current = { ...this.current, connected: false, error: message };
      this.errors?.inc();
      this.connectedGauge?.set(0);
      if (first) {
        this.m.log?.("warn", "L1 endpoint does not answer", { error: message, retryInMs: this.nextDelayMs() });
      }
      // A WebSocket that failed stays failed: the next poll opens a new one.
      if (this.m.reader === undefined && this.reader !== null) {
        const old = this.reader;
        this.reader = null;
        await old.close().catch(() => {});
      }
    }
  }

  private readerOrCreate(): L1Reader {
    if (this.reader === null) {
      this.reader = createL1Reader(
        this.opts.rpcUrl,
        this.opts.requestTimeoutMs ?? L1_STATUS_LIMITS.defaultRequestTimeoutMs,
      );
    }
    return this.reader;
  }
}
