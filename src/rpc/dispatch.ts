// Method table plumbing: positional parameters validated by zod schemas before a handler runs, with messages that name
// the argument and what was expected. Handlers return an Outcome; a throw (backend failure or bug) becomes -32603,
// except an RpcRequestError, which carries the caller's error.
// RequestHandler is the JSON-RPC 2.0 envelope (single requests, batches, notifications) both transports share.
import type { z } from "zod";
import {
  ErrorCode,
  failure,
  invalidParams,
  type JsonRpcErrorBody,
  notificationsUnsupported,
  type Outcome,
  RpcRequestError,
} from "./errors.ts";
import type { RpcMetrics } from "./metrics.ts";

export interface Param<T> {
  readonly name: string;
  readonly schema: z.ZodType<T, unknown>;
  readonly required: boolean;
}

export function required<T>(name: string, schema: z.ZodType<T, unknown>): Param<T> {
  return { name, schema, required: true };
}

/** Optional parameter: absent or JSON null gives undefined. */
export function optional<T>(name: string, schema: z.ZodType<T, unknown>): Param<T | undefined> {
  return { name, schema, required: false } as Param<T | undefined>;
}

type Args<P extends readonly Param<unknown>[]> = { -readonly [K in keyof P]: P[K] extends Param<infer T> ? T : never };

/**
 * What the transport lends one request. HTTP gives back the request's concurrency slot while it waits without working
 * (eth_sendRawTransactionSync): maxConcurrentRequests bounds work, and a waiting request does none.
 */
export interface RequestContext {
  readonly waitSlot?: { pause(): void; resume(): void };
}

export interface MethodDef {
  readonly params: readonly Param<unknown>[];
  run(args: readonly unknown[], context?: RequestContext): Promise<Outcome>;
}

export function method<const P extends readonly Param<unknown>[]>(
  params: P,
  run: (...args: Args<P>) => Promise<Outcome> | Outcome,
): MethodDef {
  return { params, run: async (args) => run(...(args as Args<P>)) };
}

/** A method that also gets its request's context (the transport's wait slot). */
export function methodWithContext<const P extends readonly Param<unknown>[]>(
  params: P,
  run: (context: RequestContext, ...args: Args<P>) => Promise<Outcome> | Outcome,
): MethodDef {
  return { params, run: async (args, context) => run(context ?? {}, ...(args as Args<P>)) };
}

export type Validated = { readonly ok: true; readonly args: readonly unknown[] } | (Outcome & { ok: false });

export function validateParams(def: MethodDef, params: unknown): Validated {
  if (params !== undefined && !Array.isArray(params)) {
    return invalidParams("invalid params: expected an array of positional arguments");
  }
  const given: readonly unknown[] = params ?? [];
  if (given.length > def.params.length) {
    return invalidParams(`too many arguments, want at most ${def.params.length}, got ${given.length}`);
  }
  const args: unknown[] = [];
  for (const [index, param] of def.params.entries()) {
    const value = given[index];
    if (value === undefined || (value === null && !param.required)) {
      if (param.required) return invalidParams(`missing value for required argument ${index} (${param.name})`);
      args.push(undefined);
      continue;
    }
    const parsed = param.schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? "" : `.${issue.path.map(String).join(".")}`;
      return invalidParams(
        `invalid argument ${index} (${param.name}${where}): ${issue?.message ?? "does not match the expected type"}`,
      );
    }
    args.push(parsed.data);
  }
  return { ok: true, args };
}

export function methodNotFound(name: string): Outcome & { ok: false } {
  return failure(ErrorCode.methodNotFound, `the method ${name} does not exist/is not available`);
}

/** Where the server reports failures of its backend and its own bugs (a pino logger fits). */
export interface RpcLog {
  warn(fields: Record<string, unknown>, message: string): void;
  info?(fields: Record<string, unknown>, message: string): void;
}

export type Id = string | number | null;

export interface JsonRpcResponse {
  readonly jsonrpc: "2.0";
  readonly id: Id;
  readonly result?: unknown;
  readonly error?: JsonRpcErrorBody;
}

/** What one message (a request or a batch) gets back; null: nothing (only notifications). */
export type JsonRpcAnswer = JsonRpcResponse | JsonRpcResponse[] | null;

export function errorResponse(id: Id, code: number, message: string): JsonRpcResponse {
  return { jsonrpc: "2.0", id, error: { code, message } };
}

function isValidId(id: unknown): id is Id {
  return id === null || typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
}

/**
 * Methods that need a connection able to carry notifications (WebSocket). Over HTTP they answer -32601
 * "notifications not supported", geth's code and words.
 */
export const CONNECTION_METHODS: ReadonlySet<string> = new Set([
  "eth_subscribe",
  "eth_unsubscribe",
  "lumia_subscribe",
  "lumia_unsubscribe",
  "signatureSubscribe",
  "signatureUnsubscribe",
  "slotSubscribe",
  "slotUnsubscribe",
  "logsSubscribe",
  "logsUnsubscribe",
  "accountSubscribe",
  "accountUnsubscribe",
]);

const MAX_METHOD_NAME_IN_MESSAGE = 100;

export interface RequestHandlerOptions {
  readonly methods: ReadonlyMap<string, MethodDef>;
  /** Most requests in one batch. */
  readonly maxBatch: number;
  readonly log?: RpcLog | undefined;
  /** Counts and times each request (src/rpc/metrics.ts). */
  readonly metrics?: RpcMetrics | undefined;
}

/**
 * The JSON-RPC 2.0 envelope, shared by the HTTP and WebSocket transports: parses a message, runs a request or a batch
 * and builds the answer. Never throws for anything a client sends. `connection` holds the methods of the caller's
 * connection (subscriptions), null when the transport cannot push notifications.
 */
export class RequestHandler {
  constructor(private readonly opts: RequestHandlerOptions) {}

  async handle(
    text: string,
    connection: ReadonlyMap<string, MethodDef> | null,
    context: RequestContext = {},
  ): Promise<JsonRpcAnswer> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      const detail = error instanceof SyntaxError ? `: ${error.message.slice(0, 120)}` : "";
      return errorResponse(null, ErrorCode.parseError, `parse error${detail}`);
    }
    if (!Array.isArray(parsed)) return this.handleOne(parsed, connection, context);
    if (parsed.length === 0) return errorResponse(null, ErrorCode.invalidRequest, "invalid request: empty batch");
    const maxBatch = this.opts.maxBatch;
    if (parsed.length > maxBatch) {
      return errorResponse(
        null,
        ErrorCode.invalidRequest,
        `batch too large: ${parsed.length} requests, the limit is ${maxBatch}`,
      );
    }
    // One at a time: a batch must not multiply the load beyond what one connection may ask.
    const answers: JsonRpcResponse[] = [];
    for (const entry of parsed) {
      const answer = await this.handleOne(entry, connection, context);
      if (answer !== null) answers.push(answer);
    }
    return answers.length === 0 ? null : answers;
  }

  private async handleOne(
    request: unknown,
    connection: ReadonlyMap<string, MethodDef> | null,
    context: RequestContext,
  ): Promise<JsonRpcResponse | null> {
    if (typeof request !== "object" || request === null || Array.isArray(request)) {
      return errorResponse(null, ErrorCode.invalidRequest, "invalid request: expected a JSON-RPC 2.0 request object");
    }
    const r = request as Record<string, unknown>;
    const hasId = Object.hasOwn(r, "id");
    const id: Id = isValidId(r.id) ? r.id : null;
    if (hasId && !isValidId(r.id)) {
      return errorResponse(null, ErrorCode.invalidRequest, "invalid request: id must be a string, a number or null");
    }
    if (r.jsonrpc !== "2.0") {
      return errorResponse(id, ErrorCode.invalidRequest, 'invalid request: jsonrpc must be "2.0"');
    }
    if (typeof r.method !== "string") {
      return errorResponse(id, ErrorCode.invalidRequest, "invalid request: method must be a string");
    }
    const outcome = await this.dispatch(r.method, r.params, connection, context);
    // A request without id is a notification: it runs, but gets no answer (JSON-RPC 2.0, section 4.1).
    if (!hasId) return null;
    return outcome.ok ? { jsonrpc: "2.0", id, result: outcome.result } : { jsonrpc: "2.0", id, error: outcome.error };
  }

  private async dispatch(
    name: string,
    params: unknown,
    connection: ReadonlyMap<string, MethodDef> | null,
    context: RequestContext,
  ): Promise<Outcome> {
    const metrics = this.opts.metrics;
    if (metrics === undefined) return this.run(name, params, connection, context);
    const started = performance.now();
    const outcome = await this.run(name, params, connection, context);
    metrics.observe(name, outcome.ok ? null : outcome.error.code, (performance.now() - started) / 1000);
    return outcome;
  }

  private async run(
    name: string,
    params: unknown,
    connection: ReadonlyMap<string, MethodDef> | null,
    context: RequestContext,
  ): Promise<Outcome> {
    let def = this.opts.methods.get(name);
    if (def === undefined && CONNECTION_METHODS.has(name)) {
      def = connection?.get(name);
      if (def === undefined) return notificationsUnsupported();
    }
    if (def === undefined) return methodNotFound(name.slice(0, MAX_METHOD_NAME_IN_MESSAGE));
    const validated = validateParams(def, params);
    if (!validated.ok) return validated;
    try {
      return await def.run(validated.args, context);
    } catch (error) {
      if (error instanceof RpcRequestError) return failure(error.rpcCode, error.message);
      // Backend failures (storage, execution) and bugs: the caller gets a short message, the operator the details.
      const message = error instanceof Error ? error.message : String(error);
      this.opts.log?.warn({ method: name, err: error }, "rpc method failed");
      return { ok: false, error: { code: ErrorCode.internal, message: `internal error: ${message.slice(0, 200)}` } };
    }
  }
}

/** JSON text of an answer; a value that does not serialise (only a bug could make one) becomes -32603. */
export function serialiseAnswer(answer: JsonRpcResponse | JsonRpcResponse[], log?: RpcLog): string {
  try {
    return JSON.stringify(answer);
  } catch (error) {
    log?.warn({ err: error }, "rpc response did not serialise");
    return JSON.stringify(errorResponse(null, ErrorCode.internal, "internal error: response did not serialise"));
  }
}
