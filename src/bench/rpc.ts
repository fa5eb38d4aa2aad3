// Minimal JSON-RPC clients for the load generator: HTTP with keep-alive sockets (batches of eth_sendRawTransaction,
// block reads) and one WebSocket for subscriptions. No library client: viem's transports add per-request work and
// their own batching/timers, which would blur what is measured.
import { Agent, request } from "node:http";
import WebSocket from "ws";

export const DEFAULT_RPC_TIMEOUT_MS = 30_000;
/** The node answers batches of at most 100 requests (docs/rpc.md, maxBatch). */
export const MAX_BATCH = 100;
/** Largest answer read from a node: a batch of 100 full blocks stays far below this. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Requests waiting for an answer on one WebSocket. */
const MAX_WS_PENDING = 1_024;
/** Notifications kept for subscriptions whose id is not known yet. */
const MAX_WS_ORPHANS = 1_024;

export type RpcErrorCode = "transport" | "http_status" | "bad_response" | "rpc_error" | "timeout" | "closed";

/** A JSON-RPC call failed: the transport, the HTTP status, the answer's shape, or an error answer (`rpcCode`). */
export class BenchRpcError extends Error {
  override readonly name = "BenchRpcError";
  constructor(
    readonly code: RpcErrorCode,
    message: string,
    readonly context: { readonly url: string; readonly method?: string; readonly rpcCode?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RpcCall {
  readonly method: string;
  readonly params: readonly unknown[];
}

/** One entry of a batch answer: the result, or the node's error for that entry (peer input: not thrown). */
export type RpcOutcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly code: number; readonly message: string };

interface JsonRpcAnswer {
  id?: unknown;
  result?: unknown;
  error?: { code?: unknown; message?: unknown };
}

function outcomeOf(answer: JsonRpcAnswer): RpcOutcome {
  if (answer.error !== undefined && answer.error !== null) {
    return {
      ok: false,
      code: typeof answer.error.code === "number" ? answer.error.code : 0,
      message: typeof answer.error.message === "string" ? answer.error.message : JSON.stringify(answer.error),
    };
  }
  return { ok: true, result: answer.result ?? null };
}

/** The request died on a keep-alive socket the server had already closed: safe to send again. */
class StaleSocketError extends Error {
  override readonly name = "StaleSocketError";
}

/** JSON-RPC over HTTP POST with a pool of keep-alive sockets (`connections` at most). */
export class HttpRpc {
  private readonly agent: Agent;
  private readonly host: string;
  private readonly port: number;
  private readonly path: string;
  private readonly timeoutMs: number;
  private nextId = 1;

  constructor(
    readonly url: string,
    opts: { readonly connections: number; readonly timeoutMs?: number } = { connections: 4 },
  ) {
    const u = new URL(url);
    if (u.protocol !== "http:") throw new RangeError(`${url}: only http:// endpoints are supported`);
    this.host = u.hostname;
    this.port = Number(u.port === "" ? 80 : u.port);
    this.path = u.pathname === "" ? "/" : u.pathname;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.connections, maxFreeSockets: opts.connections });
  }

  /** One call; an error answer throws BenchRpcError "rpc_error". */
  async call<T = unknown>(method: string, params: readonly unknown[] = []): Promise<T> {
    const body = (await this.post(
      JSON.stringify({ jsonrpc: "2.0", id: this.nextId++, method, params }),
      method,
    )) as JsonRpcAnswer;
    const outcome = outcomeOf(body);
    if (!outcome.ok) {
      throw new BenchRpcError("rpc_error", `${method}: ${outcome.message} (${outcome.code})`, {
        url: this.url,
        method,
        rpcCode: outcome.code,
      });
    }
    return outcome.result as T;
  }

  /** A batch (at most MAX_BATCH calls); outcomes in call order. Transport failures throw. */
  async batch(calls: readonly RpcCall[]): Promise<RpcOutcome[]> {
    if (calls.length === 0) return [];
    if (calls.length > MAX_BATCH) throw new RangeError(`batch of ${calls.length} calls, the limit is ${MAX_BATCH}`);
    const first = this.nextId;
    this.nextId += calls.length;
    const text = JSON.stringify(
      calls.map((c, i) => ({ jsonrpc: "2.0", id: first + i, method: c.method, params: c.params })),
    );
    const method = calls[0]?.method ?? "batch";
    const body = await this.post(text, method);
    if (!Array.isArray(body)) {
      // A whole-batch refusal (e.g. "server busy") comes back as one error object.
      const outcome = outcomeOf(body as JsonRpcAnswer);
      if (!outcome.ok) return calls.map(() => outcome);
      throw new BenchRpcError("bad_response", `${method} batch: answer is not an array`, { url: this.url, method });
    }
    const byId = new Map<number, RpcOutcome>();
    for (const entry of body as JsonRpcAnswer[]) {
      if (typeof entry?.id === "number") byId.set(entry.id, outcomeOf(entry));
    }
    return calls.map(
      (_, i) => byId.get(first + i) ?? { ok: false as const, code: 0, message: "no answer for this batch entry" },
    );
  }

  /**
   * POSTs once more when the first attempt failed on a reused keep-alive socket before any answer: the server had
   * closed the idle socket (its keep-alive timeout) while this process was busy, so the request never arrived.
   */
  private async post(text: string, method: string): Promise<unknown> {
    try {
      return await this.postOnce(text, method);
    } catch (error) {
      if (error instanceof StaleSocketError) return this.postOnce(text, method);
      throw error;
    }
  }

  private postOnce(text: string, method: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.host,
          port: this.port,
          path: this.path,
          method: "POST",
          agent: this.agent,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on("error", (cause) =>
            reject(new BenchRpcError("transport", `${method}: ${cause.message}`, { url: this.url, method }, { cause })),
          );
          res.on("end", () => {
            const raw = Buffer.concat(chunks).toString("utf8");
            try {
              resolve(JSON.parse(raw));
            } catch (cause) {
              const status = res.statusCode ?? 0;
              reject(
                new BenchRpcError(
                  status >= 200 && status < 300 ? "bad_response" : "http_status",
                  `${method}: HTTP ${status}, body ${JSON.stringify(raw.slice(0, 200))}`,
                  { url: this.url, method },
                  { cause },
                ),
              );
            }
          });
        },
      );
      req.on("timeout", () =>
        req.destroy(
          new BenchRpcError("timeout", `${method}: no answer within ${this.timeoutMs} ms`, { url: this.url, method }),
        ),
      );
      req.on("error", (cause: NodeJS.ErrnoException) => {
        if (req.reusedSocket && (cause.code === "ECONNRESET" || cause.code === "EPIPE")) {
          reject(new StaleSocketError(cause.message));
          return;
        }
        reject(
          cause instanceof BenchRpcError
            ? cause
            : new BenchRpcError(
                "transport",
                `${method} to ${this.url}: ${cause.message}`,
                { url: this.url, method },
                { cause },
              ),
        );
      });
      req.end(text);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** JSON-RPC over one WebSocket: requests, and notifications of eth_subscribe / lumia_subscribe. */
export class WsRpc {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; method: string }
  >();
  private readonly handlers = new Map<string, (result: unknown) => void>();
  /** Notifications for ids not yet registered (see subscribe). */
  private readonly orphans = new Map<string, unknown[]>();
  private orphanCount = 0;
  private closedError: BenchRpcError | null = null;

  private constructor(
    readonly url: string,
    private readonly ws: WebSocket,
  ) {
    ws.on("message", (data: WebSocket.RawData) => this.onMessage(data.toString()));
    ws.on("close", () => this.fail(new BenchRpcError("closed", `WebSocket ${url} closed`, { url })));
    ws.on("error", (cause) =>
      this.fail(new BenchRpcError("transport", `WebSocket ${url}: ${cause.message}`, { url }, { cause })),
    );
  }

  static connect(url: string, timeoutMs = 10_000): Promise<WsRpc> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, maxPayload: MAX_RESPONSE_BYTES });
      const onError = (cause: Error) =>
        reject(new BenchRpcError("transport", `WebSocket ${url}: ${cause.message}`, { url }, { cause }));
      ws.once("error", onError);
      ws.once("open", () => {
        ws.off("error", onError);
        resolve(new WsRpc(url, ws));
      });
    });
  }

  call<T = unknown>(method: string, params: readonly unknown[] = []): Promise<T> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    if (this.pending.size >= MAX_WS_PENDING) {
      return Promise.reject(
        new BenchRpcError("transport", `more than ${MAX_WS_PENDING} requests pending`, { url: this.url, method }),
      );
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  /** Subscribes (`eth_subscribe` or `lumia_subscribe`) and routes the notifications to `onResult`. */
  async subscribe(namespace: "eth" | "lumia", kind: string, onResult: (result: unknown) => void): Promise<string> {
    const id = await this.call<string>(`${namespace}_subscribe`, [kind]);
    this.handlers.set(id, onResult);
    // Notifications parsed from the same socket read as the answer arrive before this continuation runs.
    const early = this.orphans.get(id) ?? [];
    this.orphans.delete(id);
    this.orphanCount -= early.length;
    for (const r of early) onResult(r);
    return id;
  }

  private onMessage(text: string): void {
    let msg: JsonRpcAnswer & { method?: unknown; params?: { subscription?: unknown; result?: unknown } };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof msg.method === "string" && msg.method.endsWith("_subscription")) {
      const sub = msg.params?.subscription;
      if (typeof sub !== "string") return;
      const handler = this.handlers.get(sub);
      if (handler !== undefined) handler(msg.params?.result);
      else if (this.orphanCount < MAX_WS_ORPHANS) {
        this.orphanCount++;
        const list = this.orphans.get(sub) ?? [];
        list.push(msg.params?.result);
        this.orphans.set(sub, list);
      }
      return;
    }
    if (typeof msg.id !== "number") return;
    const waiter = this.pending.get(msg.id);
    if (waiter === undefined) return;
    this.pending.delete(msg.id);
    const outcome = outcomeOf(msg);
    if (outcome.ok) waiter.resolve(outcome.result);
    else {
      waiter.reject(
        new BenchRpcError("rpc_error", `${waiter.method}: ${outcome.message} (${outcome.code})`, {
          url: this.url,
          method: waiter.method,
          rpcCode: outcome.code,
        }),
      );
    }
  }

  private fail(error: BenchRpcError): void {
    if (this.closedError !== null) return;
    this.closedError = error;
    for (const w of this.pending.values()) w.reject(error);
    this.pending.clear();
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once("close", () => resolve());
      this.ws.close(1000);
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2_000).unref();
    });
  }
}

/** The WebSocket URL on the same host and port as an http:// JSON-RPC URL (the node and anvil serve both there). */
export function wsUrlOf(httpUrl: string): string {
  const u = new URL(httpUrl);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}
