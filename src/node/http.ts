// The operator endpoint of a node (config `metrics.host:port`): Prometheus metrics, liveness and readiness probes,
// and a JSON status used by `dcn status`. Read-only; bound to 127.0.0.1 by default.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HttpServer {
  readonly url: string;
  close(): Promise<void>;
}

export interface HttpHandlers {
  readonly registry: Registry;
  status(): unknown;
  ready(): boolean;
}

export class HttpServerError extends Error {
  override readonly name = "HttpServerError";
  constructor(
    readonly code: "listen_failed",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export async function startHttpServer(opts: { host: string; port: number }, h: HttpHandlers): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
      return;
    }
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
    };
    switch (path) {
      case "/metrics":
        h.registry
          .metrics()
          .then((text) => {
            res.writeHead(200, { "content-type": h.registry.contentType });
            res.end(text);
          })
          .catch((err: unknown) => json(500, { error: String(err) }));
        return;
      case "/health":
        json(200, { ok: true });
        return;
      case "/ready": {
        const ready = h.ready();
        json(ready ? 200 : 503, { ready });
        return;
      }
      case "/status":
        json(200, h.status());
        return;
      default:
        json(404, { error: `no such path ${path}; try /status, /metrics, /health, /ready` });
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (cause) =>
      reject(
        new HttpServerError("listen_failed", `cannot listen on ${opts.host}:${opts.port}: ${String(cause)}`, { cause }),
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : opts.port;
  return {
    url: `http://${opts.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
