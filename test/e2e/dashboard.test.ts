// The dashboard as an operator sees it: a subnet of 3 validator processes, validator-0's page opened in headless
// Chromium (Debian's chromium driven by playwright-core). The page must load under its Content-Security-Policy
// with no console error and no failed request, list the validators, show the committed height advancing, and fill
// the certificates table; a screenshot goes to test-results/dashboard.png.
// Without /usr/bin/chromium the test is skipped, unless DCN_REQUIRE_CHROMIUM=1 (CI), where that is a failure.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import type { DashboardData } from "../../src/dashboard/data.ts";
import { Cluster } from "./cluster.ts";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
const requireChromium = process.env.DCN_REQUIRE_CHROMIUM === "1";
const RESULTS = join(import.meta.dirname, "../../test-results");

if (!haveChromium && !requireChromium) {
  console.warn(
    `dashboard test skipped: ${CHROMIUM} is missing (apt-get install chromium; DCN_REQUIRE_CHROMIUM=1 makes this a failure)`,
  );
}

let cluster: Cluster | null = null;
let browser: Browser | null = null;

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

describe.skipIf(!haveChromium && !requireChromium)("node dashboard in headless Chromium", () => {
  it("loads with no console error or failed request, lists validators, shows heights advancing and certificates", async () => {
    expect(haveChromium, `${CHROMIUM} is missing and DCN_REQUIRE_CHROMIUM=1: apt-get install chromium`).toBe(true);
    const c = await Cluster.create({ validators: 3, replicas: 0 });
    cluster = c;
    const names = c.validators.map((v) => v.name);
    for (const name of names) c.start(name);
    await c.waitForHeight(names, 2, 45_000);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console error: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ""}`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });

    const url = `${c.node("validator-0").metrics}/`;
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    const csp = response?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");

    // Validators: one row each, by genesis name, this node marked.
    const validatorRows = page.locator("[data-testid=validators] tbody tr");
    await expect.poll(() => validatorRows.count(), { timeout: 10_000 }).toBe(3);
    const validatorsText = await page.locator("[data-testid=validators]").innerText();
    for (const name of names) expect(validatorsText).toContain(name);
    expect(validatorsText).toContain("validator-0 (this node)");

    // The committed height shown advances within a few seconds.
    const shownHeight = async () => Number(await page.locator("[data-testid=height]").innerText());
    await expect.poll(shownHeight, { timeout: 10_000 }).toBeGreaterThan(0);
    const first = await shownHeight();
    await expect.poll(shownHeight, { timeout: 15_000 }).toBeGreaterThan(first);

    // Certificates: rows with a proposer and signers among the validators; charts drawn.
    const certRows = page.locator("[data-testid=certificates] tbody tr");
    await expect.poll(() => certRows.count(), { timeout: 10_000 }).toBeGreaterThan(0);
    const firstRow = await certRows.first().innerText();
    expect(names.some((n) => firstRow.includes(n))).toBe(true);
    expect(await page.locator(".uplot").count()).toBe(2);
    expect(await page.locator("[data-testid=connection]").innerText()).toBe("live");
    expect(await page.locator("[data-testid=l1]").innerText()).toBe("not configured");
    // Signed marks: every validator signed some of the certificates shown (3 equal validators: all 3 must sign).
    expect(await page.locator("[data-testid=validators] td.signed").count()).toBeGreaterThanOrEqual(3);

    mkdirSync(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, "dashboard.png"), fullPage: true });

    // The JSON behind it: certificates carry a quorum of signers, blocks newest first, bounded.
    const data = (await (await fetch(`${c.node("validator-0").metrics}/api/dashboard`)).json()) as DashboardData;
    expect(data.blocks.length).toBeGreaterThan(0);
    expect(data.blocks.length).toBeLessThanOrEqual(60);
    const [newest, older] = data.blocks;
    if (older !== undefined) expect(newest?.height).toBeGreaterThan(older.height);
    for (const b of data.blocks) {
      expect(BigInt(b.signingPower) * 3n).toBeGreaterThan(BigInt(b.totalPower) * 2n);
      expect(b.signers.length).toBeGreaterThanOrEqual(3);
    }
    expect(data.blocks.some((b) => b.finalityMs !== null && b.finalityMs >= 0)).toBe(true);
    expect(problems, problems.join("\n")).toEqual([]);
  }, 90_000);
});

describe("dashboard assets", () => {
  it("put node data into the page only as text (no innerHTML and friends, no inline script)", () => {
    const app = readFileSync(join(import.meta.dirname, "../../src/dashboard/public/app.js"), "utf8");
    expect(app).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    const html = readFileSync(join(import.meta.dirname, "../../src/dashboard/public/index.html"), "utf8");
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // every script has a src
    expect(html).not.toMatch(/\son[a-z]+=/); // no inline event handlers
    expect(html).not.toMatch(/https?:\/\//); // nothing from another origin
  });
});
