// The operator endpoint of a node (config `metrics.host:port`): Prometheus metrics, liveness and readiness probes,
// a JSON status used by `dcn status`, and the dashboard (a static page polling `/api/dashboard`). Read-only; bound
// to 127.0.0.1 by default.
// The page's files are read once at start from src/dashboard/public/ and uPlot from its npm package (no CDN, no build
// step); they are served under a Content-Security-Policy that allows scripts, styles and requests from this origin
// only, so the page runs no inline script and nothing from elsewhere.
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { Registry } from "prom-client";

export interface HttpServer {
  readonly url: string;
  close(): Promise<void>;
}

export interface HttpHandlers {
  readonly registry: Registry;
  status(): unknown;
  ready(): boolean;
  /** Data of the dashboard page; without it the dashboard paths answer 404. */
  dashboard?: () => Promise<unknown>;
}

export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PUBLIC_DIR = new URL("../dashboard/public/", import.meta.url);

/** The dashboard's files by URL path. Throws HttpServerError "assets_missing" when one cannot be read. */
async function loadDashboardAssets(): Promise<ReadonlyMap<string, Asset>> {
  const require = createRequire(import.meta.url);
  const files: [string, string, string][] = [
    ["/dashboard", fileURLToPath(new URL("index.html", PUBLIC_DIR)), "text/html; charset=utf-8"],
    ["/dashboard/app.js", fileURLToPath(new URL("app.js", PUBLIC_DIR)), "text/javascript; charset=utf-8"],
    ["/dashboard/app.css", fileURLToPath(new URL("app.css", PUBLIC_DIR)), "text/css; charset=utf-8"],
    ["/dashboard/uPlot.iife.min.js", require.resolve("uplot/dist/uPlot.iife.min.js"), "text/javascript; charset=utf-8"],
    ["/dashboard/uPlot.min.css", require.resolve("uplot/dist/uPlot.min.css"), "text/css; charset=utf-8"],
  ];
  const assets = new Map<string, Asset>();
  for (const [path, file, type] of files) {
    try {
      assets.set(path, { type, body: await readFile(file) });
    } catch (cause) {
      throw new HttpServerError("assets_missing", `cannot read the dashboard file ${file}: ${String(cause)}`, {
        cause,
      });
    }
  }
  const index = assets.get("/dashboard");
  if (index !== undefined) assets.set("/", index);
  return assets;
}

function sendAsset(res: ServerResponse, asset: Asset): void {
  res.writeHead(200, {
    "content-type": asset.type,
    "content-length": asset.body.length,
    "content-security-policy": DASHBOARD_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
  });
  res.end(asset.body);
}

export class HttpServerError extends Error {
  override readonly name = "HttpServerError";
  constructor(
    readonly code: "listen_failed" | "assets_missing",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export async function startHttpServer(opts: { host: string; port: number }, h: HttpHandlers): Promise<HttpServer> {
  const assets = h.dashboard === undefined ? new Map<string, Asset>() : await loadDashboardAssets();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const json = (status: number, body: unknown) => {
      res.writeHead(status, {
        "content-type": "application/json",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
      });
      res.end(JSON.stringify(body, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
    };
    const asset = assets.get(path);
    if (asset !== undefined) {
      sendAsset(res, asset);
      return;
    }
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
      case "/api/dashboard":
        if (h.dashboard === undefined) break;
        h.dashboard().then(
          (data) => json(200, data),
          (err: unknown) => json(500, { error: err instanceof Error ? err.message : String(err) }),
        );
        return;
    }
    json(404, {
      error: `no such path ${path}; try /status, /metrics, /health, /ready${h.dashboard === undefined ? "" : ", /dashboard"}`,
    });
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
