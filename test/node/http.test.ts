// The operator endpoint on a real port: the dashboard page and its scripts (uPlot from node_modules) served with a
// Content-Security-Policy, the data endpoint, errors as JSON, nothing but GET/HEAD; and no dashboard at all when the
// node passes no data function.
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { DASHBOARD_CSP, type HttpServer, startHttpServer } from "../../src/node/http.ts";

const servers: HttpServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(dashboard?: () => Promise<unknown>): Promise<string> {
  const server = await startHttpServer(
    { host: "127.0.0.1", port: 0 },
    {
      registry: new Registry(),
      status: () => ({ ok: 1 }),
      ready: () => true,
      ...(dashboard === undefined ? {} : { dashboard }),
    },
  );
  servers.push(server);
  return server.url;
}

describe("dashboard endpoint", () => {
  it("serves the page and its files from this origin only, under a CSP", async () => {
    const url = await serve(async () => ({ height: 7n }));
    for (const path of ["/", "/dashboard"]) {
      const res = await fetch(`${url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      const html = await res.text();
      expect(html).toContain('<script src="/dashboard/uPlot.iife.min.js" defer></script>');
      expect(html).toContain('<script type="module" src="/dashboard/app.js"></script>');
    }
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(DASHBOARD_CSP).not.toContain("unsafe");
    const uplot = await fetch(`${url}/dashboard/uPlot.iife.min.js`);
    expect(uplot.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await uplot.text()).toContain("uPlot");
    expect((await fetch(`${url}/dashboard/uPlot.min.css`)).headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect((await fetch(`${url}/dashboard/app.css`)).status).toBe(200);
    expect((await fetch(`${url}/dashboard/app.js`)).status).toBe(200);
    expect((await fetch(`${url}/dashboard/../package.json`)).status).toBe(404);
  });

  it("answers /api/dashboard with the node's data (bigints as strings), and a 500 when it fails", async () => {
    let fail = false;
    const url = await serve(async () => {
      if (fail) throw new Error("store closed");
      return { height: 7n };
    });
    const res = await fetch(`${url}/api/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({ height: "7" });
    fail = true;
    const failed = await fetch(`${url}/api/dashboard`);
    expect(failed.status).toBe(500);
    expect(await failed.json()).toEqual({ error: "store closed" });
  });

  it("takes GET and HEAD only, and names the paths it has", async () => {
    const url = await serve(async () => ({}));
    expect((await fetch(`${url}/`, { method: "HEAD" })).status).toBe(200);
    const post = await fetch(`${url}/api/dashboard`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const missing = await fetch(`${url}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toContain("/dashboard");
  });

  it("has no dashboard when the node gives no data function", async () => {
    const url = await serve();
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/api/dashboard`)).status).toBe(404);
    expect((await fetch(`${url}/status`)).status).toBe(200);
  });
});
