// How the light client reaches a node: one JSON-RPC request at a time over the global fetch (browsers, Node >= 18).
// The node is not trusted for anything, including the size and timing of its answers: both are bounded.
import { LightClientError } from "./errors.ts";

export interface RpcTransport {
  /** The `result` of a JSON-RPC call. Throws LightClientError "rpc_error" (JSON-RPC errors carry `rpcCode`). */
  request(method: string, params: readonly unknown[]): Promise<unknown>;
}

export interface HttpTransportOptions {
  /** Per request, connection included. */
  readonly timeoutMs?: number;
  /** Largest response body accepted; a transaction certificate with a large receipt is the biggest answer. */
  readonly maxResponseBytes?: number;
}

export const DEFAULT_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/** A JSON-RPC error answer: the node refused or failed, it did not lie. */
export class RpcCallError extends LightClientError {
  readonly rpcCode: number;
  constructor(method: string, rpcCode: number, message: string) {
    super("rpc_error", `${method}: the node answered error ${rpcCode}: ${message}`);
    this.rpcCode = rpcCode;
  }
}

export function httpTransport(url: string, options: HttpTransportOptions = {}): RpcTransport {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  let nextId = 1;
  return {
    async request(method, params) {
      const id = nextId++;
      let text: string;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id, method, params }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        text = await readLimited(res, maxResponseBytes);
        if (!res.ok && text.length === 0) throw new Error(`HTTP ${res.status}`);
      } catch (cause) {
        if (cause instanceof LightClientError) throw cause;
        throw new LightClientError("rpc_error", `${method}: cannot reach ${url}: ${errorText(cause)}`, { cause });
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (cause) {
        throw new LightClientError("rpc_error", `${method}: the answer of ${url} is not JSON`, { cause });
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new LightClientError("rpc_error", `${method}: the answer is not a JSON-RPC response object`);
      }
      const r = body as { id?: unknown; result?: unknown; error?: unknown };
      if (r.error !== undefined && r.error !== null) {
        const e = r.error as { code?: unknown; message?: unknown };
        throw new RpcCallError(
          method,
          typeof e.code === "number" ? e.code : 0,
          typeof e.message === "string" ? e.message.slice(0, 500) : "no message",
        );
      }
      if (r.id !== id) throw new LightClientError("rpc_error", `${method}: answer id ${String(r.id)}, sent ${id}`);
      if (!("result" in r)) throw new LightClientError("rpc_error", `${method}: the answer has no result`);
      return r.result;
    },
  };
}

/** The body as text, refusing more than `maxBytes` (checked while reading: a length header can lie or be absent). */
async function readLimited(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new LightClientError("rpc_error", `the answer declares ${declared} bytes, more than ${maxBytes}`);
  }
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel();
      throw new LightClientError("rpc_error", `the answer exceeds ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  return new TextDecoder().decode(all);
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
