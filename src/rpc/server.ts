// The JSON-RPC 2.0 endpoint that wallets and viem/ethers apps talk to: HTTP (single and batch requests, GET /health)
// and WebSocket on the same host and port (ws.ts: the same requests plus subscriptions). Every input gets a JSON-RPC
// answer or a plain HTTP refusal; nothing a client sends can throw out of a handler. Limits: body size, batch length,
// concurrent requests, log range, request time; for WebSocket also connections, subscriptions and unsent bytes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import type { RpcBackend } from "./backend.ts";
import { CONNECTION_METHODS, errorResponse, RequestHandler, type RpcLog } from "./dispatch.ts";
import { ErrorCode, RpcServerError } from "./errors.ts";
import { DEFAULT_FILTER_LIMITS, FilterRegistry } from "./filters.ts";
import { createLogQuery, createMethods, DEFAULT_METHOD_LIMITS } from "./methods.ts";
import { createRpcMetrics } from "./metrics.ts";
import { ReceiptWaiters } from "./send-sync.ts";
import { createSolanaMethods, type SolanaRpcBackend } from "./solana.ts";
import { DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, SubscriptionHub } from "./subscriptions.ts";
import {
  attachWebSocket,
  DEFAULT_MAX_WS_BUFFERED_BYTES,
  DEFAULT_MAX_WS_CONNECTIONS,
  DEFAULT_WS_KEEPALIVE_MS,
} from "./ws.ts";

export type { RpcLog } from "./dispatch.ts";

export interface RpcServerOptions {
  readonly host: string;
  /** 0 picks a free port (see `url`). */
  readonly port: number;
  /** Largest accepted request body or WebSocket message (default 5 MiB); larger bodies get HTTP 413 with a JSON-RPC
   * error, larger messages close the WebSocket with 1009. */
  readonly maxBodyBytes?: number;
  /** Most requests in one batch (default 100). */
  readonly maxBatch?: number;
  /** Most blocks one eth_getLogs may scan (default 10,000). */
  readonly maxLogRange?: number;
  /** Most logs one eth_getLogs may return (default 10,000). */
  readonly maxLogResults?: number;
  /** Origins allowed by CORS and for WebSocket upgrades; empty (default) = no CORS headers and no browser
   * WebSocket (upgrades without an Origin header are always allowed). "*" allows any origin. */
  readonly cors?: readonly string[];
  /** HTTP requests handled at once; more get HTTP 503 with error -32005 (default 64). */
  readonly maxConcurrentRequests?: number;
  /** Open TCP connections (default 1024); more are refused by the kernel backlog / dropped. */
  readonly maxConnections?: number;
  /** Upper bound on the gas of eth_call / eth_estimateGas (default 50,000,000, geth's RPCGasCap). */
  readonly gasCap?: bigint;
  /** Time to receive a whole request (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Open WebSocket connections (default 256); further upgrades get HTTP 503. */
  readonly maxWsConnections?: number;
  /** Subscriptions one WebSocket connection may hold (default 128); more get error -32005. */
  readonly maxSubscriptionsPerConnection?: number;
  /** Polling filters (eth_newFilter ...) held at once across all callers (default 1,024). */
  readonly maxFilters?: number;
  /** Changes one filter holds between polls; a filter further behind is removed (default 10,000). */
  readonly maxFilterChanges?: number;
  /** A filter not polled for this long is removed (default 5 minutes, as geth). */
  readonly filterTimeoutMs?: number;
  /** Where the server's metrics go (src/rpc/metrics.ts); none without. */
  readonly registry?: Registry;
  /** Unsent bytes one WebSocket connection may hold (default 16 MiB); a slower reader is closed with 1008. */
  readonly maxWsBufferedBytes?: number;
  /** WebSocket ping period (default 30 s); a connection that missed the previous pong is cut. */
  readonly wsKeepaliveMs?: number;
  readonly log?: RpcLog;
  /** Serves the Solana JSON-RPC subset (./solana.ts) on the same endpoint. */
  readonly solana?: SolanaRpcBackend;
}

export interface RpcServer {
  /** http://host:port */
  readonly url: string;
  /** ws://host:port, the same endpoint over WebSocket. */
  readonly wsUrl: string;
  /** WebSocket connections being served (not counting those closing). */
  readonly wsConnections: number;
  /** Closes every WebSocket connection, then the HTTP server. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024;
export const DEFAULT_MAX_BATCH = 100;
export const DEFAULT_MAX_LOG_RANGE = 10_000;
const DEFAULT_MAX_CONCURRENT_REQUESTS = 64;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_CONNECTIONS = 1024;
/** After refusing a body as too large, read and drop at most this much more before cutting the connection. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

export async function startRpcServer(opts: RpcServerOptions, backend: RpcBackend): Promise<RpcServer> {
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxConcurrent = opts.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_REQUESTS;
  const corsOrigins = new Set(opts.cors ?? []);
  const log = opts.log;
  const logLimits = {
    maxLogRange: opts.maxLogRange ?? DEFAULT_MAX_LOG_RANGE,
    maxLogResults: opts.maxLogResults ?? DEFAULT_METHOD_LIMITS.maxLogResults,
  };
  const receiptWaiters = new ReceiptWaiters(backend);
  const methods = new Map(
    createMethods(
      backend,
      {
        ...DEFAULT_METHOD_LIMITS,
        ...logLimits,
        gasCap: opts.gasCap ?? DEFAULT_METHOD_LIMITS.gasCap,
      },
      receiptWaiters,
    ),
  );
  if (opts.solana !== undefined) {
    for (const [name, def] of createSolanaMethods(opts.solana)) {
      if (methods.has(name)) throw new Error(`Solana method ${name} collides with an Ethereum method`);
      methods.set(name, def);
    }
  }
  const filters = new FilterRegistry(
    backend,
    {
      maxFilters: opts.maxFilters ?? DEFAULT_FILTER_LIMITS.maxFilters,
      maxFilterChanges: opts.maxFilterChanges ?? DEFAULT_FILTER_LIMITS.maxFilterChanges,
      filterTimeoutMs: opts.filterTimeoutMs ?? DEFAULT_FILTER_LIMITS.filterTimeoutMs,
    },
    createLogQuery(backend, logLimits),
    log,
  );
  for (const [name, def] of filters.methods) methods.set(name, def);
  const hub = new SubscriptionHub(backend, {
    maxSubscriptionsPerConnection: opts.maxSubscriptionsPerConnection ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    log,
    solana: opts.solana,
  });
  // The WebSocket transport is made below; the metrics read it when scraped.
  let wsConnections = () => 0;
  const metrics =
    opts.registry === undefined
      ? undefined
      : createRpcMetrics(opts.registry, (name) => methods.has(name) || CONNECTION_METHODS.has(name), {
          wsConnections: () => wsConnections(),
          subscriptions: () => hub.size,
          filters: () => filters.size,
          syncWaiters: () => receiptWaiters.size,
        });
  const handler = new RequestHandler({ methods, maxBatch: opts.maxBatch ?? DEFAULT_MAX_BATCH, log, metrics });
  let inFlight = 0;

  /** The whole body as JSON-RPC: the HTTP status and the answer (null: nothing to send, 204). */
  async function handleBody(text: string): Promise<{ status: number; body: unknown }> {
    // A request waiting for a receipt (eth_sendRawTransactionSync) does no work: it gives its slot back meanwhile.
    const waitSlot = {
      pause: () => {
        inFlight--;
      },
      resume: () => {
        inFlight++;
      },
    };
    const answer = await handler.handle(text, null, { waitSlot });
    return { status: answer === null ? 204 : 200, body: answer };
  }

  function corsHeaders(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    if (corsOrigins.size === 0 || origin === undefined) return {};
    if (!corsOrigins.has("*") && !corsOrigins.has(origin)) return {};
    return {
      "access-control-allow-origin": corsOrigins.has("*") ? "*" : origin,
      "access-control-allow-methods": "POST, GET, OPTIONS",
      "access-control-allow-headers": "content-type",
      "access-control-max-age": "600",
      vary: "origin",
    };
  }

  function send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, close = false): void {
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string> = { ...corsHeaders(req) };
    if (close) headers.connection = "close";
    if (status === 204 || body === null) {
      res.writeHead(204, headers).end();
      return;
    }
    let text: string;
    try {
      text = JSON.stringify(body);
    } catch (error) {
      // Only a bug could get here (handlers build plain JSON); answer anyway.
      log?.warn({ err: error }, "rpc response did not serialise");
      text = JSON.stringify(errorResponse(null, ErrorCode.internal, "internal error: response did not serialise"));
    }
    headers["content-type"] = "application/json";
    res.writeHead(status, headers).end(text);
  }

  function readBody(req: IncomingMessage, res: ServerResponse): void {
    const declared = Number(req.headers["content-length"] ?? "0");
    const chunks: Buffer[] = [];
    let received = 0;
    let tooLarge = Number.isFinite(declared) && declared > maxBodyBytes;
    const refuse = () =>
      send(
        req,
        res,
        413,
        errorResponse(
          null,
          ErrorCode.invalidRequest,
          `request body too large: more than ${maxBodyBytes} bytes (the limit)`,
        ),
        true,
      );
    req.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (!tooLarge && received > maxBodyBytes) tooLarge = true;
      if (tooLarge) {
        chunks.length = 0;
        // Keep reading so the client sees the 413 instead of a reset, up to a point.
        if (received > maxBodyBytes + MAX_DISCARD_BYTES) {
          refuse();
          req.destroy();
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) {
        refuse();
        return;
      }
      handleBody(Buffer.concat(chunks).toString("utf8"))
        .then(({ status, body }) => send(req, res, status, body))
        .catch((error: unknown) => {
          log?.warn({ err: error }, "rpc request failed");
          send(req, res, 500, errorResponse(null, ErrorCode.internal, "internal error"));
        });
    });
  }

  const server: Server = createServer((req, res) => {
    req.on("error", () => res.destroy());
    res.on("error", () => req.destroy());
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "OPTIONS") {
        send(req, res, 204, null);
        return;
      }
      if (req.method === "GET" && path === "/health") {
        send(req, res, 200, { ok: true, headHeight: backend.headHeight() });
        return;
      }
      if (req.method !== "POST" || path !== "/") {
        send(req, res, req.method === "POST" || req.method === "GET" ? 404 : 405, {
          error: "POST JSON-RPC to / or GET /health",
        });
        req.resume();
        return;
      }
      const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
      if (contentType !== "application/json") {
        send(
          req,
          res,
          415,
          errorResponse(null, ErrorCode.invalidRequest, "invalid content type: only application/json is supported"),
          true,
        );
        req.resume();
        return;
      }
      // Counted from the first byte read: a request holds up to maxBodyBytes of memory while it is read.
      if (inFlight >= maxConcurrent) {
        send(
          req,
          res,
          503,
          errorResponse(null, ErrorCode.limitExceeded, "server busy: too many concurrent requests"),
          true,
        );
        req.resume();
        return;
      }
      inFlight++;
      res.once("close", () => {
        inFlight--;
      });
      readBody(req, res);
    } catch (error) {
      log?.warn({ err: error }, "rpc http handler failed");
      send(req, res, 500, errorResponse(null, ErrorCode.internal, "internal error"), true);
    }
  });
  server.requestTimeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  server.headersTimeout = Math.min(server.requestTimeout, 10_000);
  // Well above the idle time after which HTTP clients stop reusing a connection (undici: 4 s; browsers: longer): a
  // client that sends on a connection the server is closing at that moment gets "other side closed". Idle connections
  // are bounded by maxConnections.
  server.keepAliveTimeout = 30_000;
  server.maxHeadersCount = 100;
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });

  const ws = attachWebSocket(
    server,
    {
      maxMessageBytes: maxBodyBytes,
      maxConnections: opts.maxWsConnections ?? DEFAULT_MAX_WS_CONNECTIONS,
      maxBufferedBytes: opts.maxWsBufferedBytes ?? DEFAULT_MAX_WS_BUFFERED_BYTES,
      keepaliveMs: opts.wsKeepaliveMs ?? DEFAULT_WS_KEEPALIVE_MS,
      // Browsers always send Origin and do not apply CORS to WebSockets: the server checks it. Other clients may omit it.
      originAllowed: (origin) => origin === undefined || corsOrigins.has("*") || corsOrigins.has(origin),
      log,
    },
    handler,
    hub,
  );
  wsConnections = () => ws.connections;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", (cause) =>
        reject(
          new RpcServerError("listen_failed", `cannot listen on ${opts.host}:${opts.port}: ${String(cause)}`, {
            cause,
          }),
        ),
      );
      server.listen(opts.port, opts.host, () => resolve());
    });
  } catch (error) {
    await ws.close();
    hub.close();
    filters.close();
    throw error;
  }
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : opts.port;
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}`,
    get wsConnections() {
      return ws.connections;
    },
    close: () => {
      closing ??= (async () => {
        await ws.close();
        hub.close();
        filters.close();
        await new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        });
      })();
      return closing;
    },
  };
}
