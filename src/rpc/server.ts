// The HTTP JSON-RPC 2.0 endpoint (single and batch requests) that wallets and viem/ethers apps talk to, plus GET
// /health. Every input gets a JSON-RPC answer or a plain HTTP refusal; nothing a client sends can throw out of the
// request handler. Limits: body size, batch length, concurrent requests, log range, request time.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { RpcBackend } from "./backend.ts";
import { methodNotFound, validateParams } from "./dispatch.ts";
import { ErrorCode, type JsonRpcErrorBody, type Outcome, RpcServerError } from "./errors.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "./methods.ts";

export interface RpcServerOptions {
  readonly host: string;
  /** 0 picks a free port (see `url`). */
  readonly port: number;
  /** Largest accepted request body (default 5 MiB); larger ones get HTTP 413 with a JSON-RPC error. */
  readonly maxBodyBytes?: number;
  /** Most requests in one batch (default 100). */
  readonly maxBatch?: number;
  /** Most blocks one eth_getLogs may scan (default 10,000). */
  readonly maxLogRange?: number;
  /** Most logs one eth_getLogs may return (default 10,000). */
  readonly maxLogResults?: number;
  /** Origins allowed by CORS; empty (default) = no CORS headers. "*" allows any origin. */
  readonly cors?: readonly string[];
  /** HTTP requests handled at once; more get HTTP 503 with error -32005 (default 64). */
  readonly maxConcurrentRequests?: number;
  /** Open TCP connections (default 1024); more are refused by the kernel backlog / dropped. */
  readonly maxConnections?: number;
  /** Upper bound on the gas of eth_call / eth_estimateGas (default 50,000,000, geth's RPCGasCap). */
  readonly gasCap?: bigint;
  /** Time to receive a whole request (default 30 s). */
  readonly requestTimeoutMs?: number;
  readonly log?: RpcLog;
}

/** Where the server reports failures of its backend and its own bugs (a pino logger fits). */
export interface RpcLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface RpcServer {
  readonly url: string;
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
const MAX_METHOD_NAME_IN_MESSAGE = 100;

type Id = string | number | null;

interface Response {
  readonly jsonrpc: "2.0";
  readonly id: Id;
  readonly result?: unknown;
  readonly error?: JsonRpcErrorBody;
}

function errorResponse(id: Id, code: number, message: string): Response {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

function isValidId(id: unknown): id is Id {
  return id === null || typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
}

export async function startRpcServer(opts: RpcServerOptions, backend: RpcBackend): Promise<RpcServer> {
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const maxConcurrent = opts.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_REQUESTS;
  const corsOrigins = new Set(opts.cors ?? []);
  const log = opts.log;
  const methods = createMethods(backend, {
    ...DEFAULT_METHOD_LIMITS,
    maxLogRange: opts.maxLogRange ?? DEFAULT_MAX_LOG_RANGE,
    maxLogResults: opts.maxLogResults ?? DEFAULT_METHOD_LIMITS.maxLogResults,
    gasCap: opts.gasCap ?? DEFAULT_METHOD_LIMITS.gasCap,
  });
  let inFlight = 0;

  async function handleOne(request: unknown): Promise<Response | null> {
    if (typeof request !== "object" || request === null || Array.isArray(request)) {
      return errorResponse(null, ErrorCode.invalidRequest, "invalid request: expected a JSON-RPC 2.0 request object");
    }
    const r = request as Record<string, unknown>;
    const hasId = Object.hasOwn(r, "id");
    const id: Id = isValidId(r.id) ? r.id : null;
    if (hasId && !isValidId(r.id)) {
      return errorResponse(null, ErrorCode.invalidRequest, "invalid request: id must be a string, a number or null");
    }
    if (r.jsonrpc !== "2.0")
      return errorResponse(id, ErrorCode.invalidRequest, 'invalid request: jsonrpc must be "2.0"');
    if (typeof r.method !== "string") {
      return errorResponse(id, ErrorCode.invalidRequest, "invalid request: method must be a string");
    }
    const outcome = await dispatch(r.method, r.params);
    // A request without id is a notification: it runs, but gets no answer (JSON-RPC 2.0, section 4.1).
    if (!hasId) return null;
    return outcome.ok ? { jsonrpc: "2.0", id, result: outcome.result } : { jsonrpc: "2.0", id, error: outcome.error };
  }

  async function dispatch(name: string, params: unknown): Promise<Outcome> {
    const def = methods.get(name);
    if (def === undefined) return methodNotFound(name.slice(0, MAX_METHOD_NAME_IN_MESSAGE));
    const validated = validateParams(def, params);
    if (!validated.ok) return validated;
    try {
      return await def.run(validated.args);
    } catch (error) {
      // Backend failures (storage, execution) and bugs: the caller gets a short message, the operator the details.
      const message = error instanceof Error ? error.message : String(error);
      log?.warn({ method: name, err: error }, "rpc method failed");
      return { ok: false, error: { code: ErrorCode.internal, message: `internal error: ${message.slice(0, 200)}` } };
    }
  }

  /** The whole body as parsed JSON-RPC: the response value to send (null: nothing to send). */
  async function handleBody(text: string): Promise<{ status: number; body: unknown }> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      const detail = error instanceof SyntaxError ? `: ${error.message.slice(0, 120)}` : "";
      return { status: 200, body: errorResponse(null, ErrorCode.parseError, `parse error${detail}`) };
    }
    if (!Array.isArray(parsed)) {
      const single = await handleOne(parsed);
      return { status: single === null ? 204 : 200, body: single };
    }
    if (parsed.length === 0) {
      return { status: 200, body: errorResponse(null, ErrorCode.invalidRequest, "invalid request: empty batch") };
    }
    if (parsed.length > maxBatch) {
      return {
        status: 200,
        body: errorResponse(
          null,
          ErrorCode.invalidRequest,
          `batch too large: ${parsed.length} requests, the limit is ${maxBatch}`,
        ),
      };
    }
    // One at a time: a batch must not multiply the load beyond what one connection may ask.
    const answers: Response[] = [];
    for (const entry of parsed) {
      const answer = await handleOne(entry);
      if (answer !== null) answers.push(answer);
    }
    return { status: answers.length === 0 ? 204 : 200, body: answers };
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
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", (cause) =>
      reject(
        new RpcServerError("listen_failed", `cannot listen on ${opts.host}:${opts.port}: ${String(cause)}`, { cause }),
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : opts.port;
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
