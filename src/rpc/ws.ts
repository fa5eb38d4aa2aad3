// JSON-RPC over WebSocket on the HTTP server's own host and port (ws://host:8545): the same RequestHandler as HTTP,
// plus the subscriptions only a connection can carry. Each connection answers up to 16 of its messages at once (one
// that waits, for a receipt or a long read, does not hold up the others; answers are matched by id, as JSON-RPC
// allows) and stops reading while it has a backlog, so a client cannot queue unbounded work. Limits: message size
// (close code 1009), connections (HTTP 503 on upgrade), subscriptions per connection (-32005), unsent bytes per
// connection (a slow reader is closed with 1008 and loses its subscriptions), and a ping every keepalive period (no
// pong: cut).
import { type IncomingMessage, type Server, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { errorResponse, type RequestHandler, type RpcLog, serialiseAnswer } from "./dispatch.ts";
import { ErrorCode } from "./errors.ts";
import type { NotificationSink, SubscriptionHub, SubscriptionSession } from "./subscriptions.ts";

export const DEFAULT_MAX_WS_CONNECTIONS = 256;
export const DEFAULT_MAX_WS_BUFFERED_BYTES = 16 * 1024 * 1024;
export const DEFAULT_WS_KEEPALIVE_MS = 30_000;

/** Messages read ahead of those being answered before the connection stops reading. */
const MAX_QUEUED_MESSAGES = 32;
/** Messages of one connection answered at once (geth runs each in its own goroutine). */
const MAX_MESSAGES_IN_FLIGHT = 16;
/** How long a closing connection may take to flush its close frame before the socket is cut. */
const CLOSE_GRACE_MS = 5_000;

const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_INTERNAL_ERROR = 1011;

export interface WebSocketOptions {
  /** Largest message (= the HTTP body limit); larger ones close the connection with 1009 (message too big). */
  readonly maxMessageBytes: number;
  /** Open WebSocket connections; further upgrades get HTTP 503. */
  readonly maxConnections: number;
  /** Unsent bytes a connection may hold; a reader slower than that is closed with 1008. */
  readonly maxBufferedBytes: number;
  /** Ping period; a connection that did not answer the previous ping is cut. */
  readonly keepaliveMs: number;
  /** Whether an upgrade with this Origin header may connect (undefined: no header, not a browser). */
  readonly originAllowed: (origin: string | undefined) => boolean;
  readonly log?: RpcLog | undefined;
}

export interface WebSocketEndpoint {
  /** Connections being served (not those closing). */
  readonly connections: number;
  /** Refuses new upgrades and closes every connection (1001), cutting those that do not finish closing in time. */
  close(): Promise<void>;
}

function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

class Connection implements NotificationSink {
  readonly session: SubscriptionSession;
  /** Answered the last ping, or sent something since. */
  alive = true;
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  /** Messages being answered now. */
  private inFlight = 0;
  private closing = false;
  private cutTimer: NodeJS.Timeout | null = null;
  readonly closed: Promise<void>;

  constructor(
    readonly ws: WebSocket,
    private readonly opts: WebSocketOptions,
    private readonly handler: RequestHandler,
    hub: SubscriptionHub,
    onGone: (c: Connection) => void,
  ) {
    this.session = hub.open(this);
    this.closed = new Promise((resolve) => {
      ws.once("close", () => {
        this.closing = true;
        this.session.close();
        if (this.cutTimer !== null) clearTimeout(this.cutTimer);
        onGone(this);
        resolve();
      });
    });
    ws.on("message", (data) => this.onMessage(data));
    ws.on("pong", () => {
      this.alive = true;
    });
    // Oversized or malformed frames (ws answers them with a close code: 1009, 1002...) and socket resets: the client's
    // doing, not worth an operator's attention. "close" follows.
    ws.on("error", () => {
      this.closing = true;
      this.session.close();
    });
  }

  /** Closing or closed: no longer served, though its socket may still be flushing. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Working through messages: a busy connection is alive even if its pong is stuck behind them. */
  get working(): boolean {
    return this.inFlight > 0 || this.queue.length > 0;
  }

  send(text: string): void {
    if (this.closing) return;
    this.ws.send(text);
    if (this.ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.close(
        CLOSE_POLICY_VIOLATION,
        `slow consumer: more than ${this.opts.maxBufferedBytes} bytes unsent; subscriptions dropped`,
      );
    }
  }

  /** Closes with `code`; the subscriptions stop at once, the socket is cut if the close does not complete in time. */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.session.close();
    this.queue.length = 0;
    this.ws.close(code, reason);
    this.cutTimer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.cutTimer.unref();
  }

  terminate(): void {
    this.closing = true;
    this.session.close();
    this.ws.terminate();
  }

  private onMessage(data: RawData): void {
    this.alive = true;
    if (this.closing) return;
    const text = textOf(data);
    this.queue.push(text);
    this.queuedBytes += text.length;
    if (this.queue.length >= MAX_QUEUED_MESSAGES || this.queuedBytes > this.opts.maxMessageBytes) this.ws.pause();
    this.pump();
  }

  /**
   * Starts the queued messages, up to MAX_MESSAGES_IN_FLIGHT at once: a message that waits (a receipt, a long read)
   * does not hold up the others. Each starts in arrival order, so what a message does before its first wait (a
   * subscription made, a transaction submitted) happens in that order; answers go out as they are ready, matched by id.
   */
  private pump(): void {
    while (this.inFlight < MAX_MESSAGES_IN_FLIGHT && !this.closing) {
      const text = this.queue.shift();
      if (text === undefined) break;
      this.queuedBytes -= text.length;
      if (this.ws.isPaused && this.queue.length < MAX_QUEUED_MESSAGES / 2) this.ws.resume();
      this.inFlight++;
      void this.answer(text).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async answer(text: string): Promise<void> {
    try {
      const turn = this.session.turn();
      const answer = await this.handler.handle(text, turn.methods);
      if (this.closing) return;
      if (answer !== null) this.send(serialiseAnswer(answer, this.opts.log));
      // Subscriptions made by this message notify only once the client has their ids.
      turn.activate();
    } catch (error) {
      // The handler answers every input; only a bug gets here.
      this.opts.log?.warn({ err: error }, "websocket message handling failed");
      this.close(CLOSE_INTERNAL_ERROR, "internal error");
    }
  }
}

function refuseUpgrade(socket: Duplex, status: number, code: number, message: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(errorResponse(null, code, message));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** Serves WebSocket upgrades of `GET /` on `server`. */
export function attachWebSocket(
  server: Server,
  opts: WebSocketOptions,
  handler: RequestHandler,
  hub: SubscriptionHub,
): WebSocketEndpoint {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxMessageBytes,
    // Compression costs memory per connection and CPU per message; JSON-RPC clients do fine without it.
    perMessageDeflate: false,
    clientTracking: false,
  });
  const connections = new Set<Connection>();
  let closing = false;

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    try {
      if (closing) {
        refuseUpgrade(socket, 503, ErrorCode.server, "server shutting down");
        return;
      }
      if ((req.url ?? "/").split("?")[0] !== "/") {
        refuseUpgrade(socket, 404, ErrorCode.invalidRequest, "WebSocket JSON-RPC is served at /");
        return;
      }
      if (!opts.originAllowed(req.headers.origin)) {
        refuseUpgrade(socket, 403, ErrorCode.invalidRequest, "origin not allowed (see the rpc cors setting)");
        return;
      }
      // Closing connections count too: their sockets still hold buffers until they finish.
      if (connections.size >= opts.maxConnections) {
        refuseUpgrade(
          socket,
          503,
          ErrorCode.limitExceeded,
          `limit exceeded: ${opts.maxConnections} WebSocket connections are open`,
        );
        return;
      }
      // Bad handshakes (missing key, wrong version) are answered by ws itself with HTTP 400.
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (closing) {
          ws.terminate();
          return;
        }
        connections.add(new Connection(ws, opts, handler, hub, (c) => connections.delete(c)));
      });
    } catch (error) {
      opts.log?.warn({ err: error }, "websocket upgrade failed");
      socket.destroy();
    }
  }
  server.on("upgrade", onUpgrade);

  const keepalive = setInterval(() => {
    for (const c of connections) {
      if (c.working || c.isClosing) continue;
      if (!c.alive) {
        c.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }, opts.keepaliveMs);
  keepalive.unref();

  return {
    get connections() {
      let open = 0;
      for (const c of connections) if (!c.isClosing) open++;
      return open;
    },
    async close() {
      closing = true;
      clearInterval(keepalive);
      server.off("upgrade", onUpgrade);
      const all = [...connections];
      for (const c of all) c.close(CLOSE_GOING_AWAY, "server shutting down");
      const cut = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref());
      await Promise.race([Promise.all(all.map((c) => c.closed)), cut]);
      for (const c of connections) c.terminate();
      await Promise.all(all.map((c) => c.closed));
      wss.close();
    },
  };
}
