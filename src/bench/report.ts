// The bench's outputs: report.json (everything measured), report.md (the table) and chart.svg (committed tx/s and
// p50 submit -> receipt latency over time, one panel per run; hand-written SVG, no chart dependency).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RunResult } from "./load.ts";
import { type ProfileSummary, renderProfile } from "./profile.ts";
import type { LatencySummary } from "./stats.ts";
import type { BareResult } from "./targets.ts";

export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly node: string;
  readonly loadAverage: readonly number[];
}

export interface TargetSummary {
  readonly target: string;
  /** Highest sustained tx/s over the target's runs. */
  readonly capacityTps: number;
  /** Offered rate of the first run that sustained less than 90% of it; null when every run kept up. */
  readonly kneeAtTps: number | null;
}

export interface Ratio {
  readonly label: string;
  readonly value: number | null;
}

export interface BenchReport {
  readonly tool: "dcn bench";
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly options: Readonly<Record<string, unknown>>;
  readonly runs: readonly RunResult[];
  /** One-core execution ceilings; workloadTps = bare runTx, coreWorkloadTps = the node's execution core. */
  readonly bare:
    | (Omit<BareResult, "output"> & {
        readonly workloadTps: number;
        readonly coreWorkloadTps: number;
        /** The core on transactions its pool already decoded (block validation on a validator); null if unknown. */
        readonly pooledWorkloadTps: number | null;
      })
    | null;
  readonly summary: readonly TargetSummary[];
  readonly ratios: readonly Ratio[];
  /** Targets that failed to start or prepare, and why. */
  readonly errors: readonly { readonly target: string; readonly message: string }[];
  /** validator-0's CPU profile over the last run, with --cpu-prof. */
  readonly profile: ProfileSummary | null;
}

/** Capacity and knee per target, in run order. */
export function summarizeTargets(runs: readonly RunResult[], kneeRatio: number): TargetSummary[] {
  const names = [...new Set(runs.map((r) => r.target))];
  return names.map((target) => {
    const mine = runs.filter((r) => r.target === target);
    const knee = mine.find((r) => r.sustainedTps < kneeRatio * r.offeredTps);
    return {
      target,
      capacityTps: Math.max(...mine.map((r) => r.sustainedTps)),
      kneeAtTps: knee === undefined ? null : knee.offeredTps,
    };
  });
}

const fmt = (v: number | null | undefined, digits = 0): string =>
  v === null || v === undefined || !Number.isFinite(v)
    ? "-"
    : v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const triple = (s: LatencySummary | null): string =>
  s === null ? "-" : `${fmt(s.p50Ms)} / ${fmt(s.p95Ms)} / ${fmt(s.p99Ms)}`;

export function renderMarkdown(report: BenchReport): string {
  const lines: string[] = [];
  const m = report.machine;
  lines.push(`# dcn bench, ${report.startedAt}`, "");
  lines.push(
    `\`${report.command}\` on ${m.cpus} x ${m.cpuModel}, ${m.memoryGb} GB, Node ${m.node}; load average at start ` +
      `${m.loadAverage.map((x) => x.toFixed(2)).join(" ")} (the machine is shared: figures are noisy).`,
    "",
  );
  lines.push(
    "| target | workload | offered tx/s | sent tx/s | sustained tx/s | committed / accepted | receipt p50 / p95 / p99 ms | certificate p50 / p95 / p99 ms | CPU ms/tx per node | RSS MB per node | bench CPU ms/tx |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const r of report.runs) {
    const cpu = r.processes.map((p) => fmt(p.cpuMsPerTx, 2)).join(", ");
    const rss = r.processes.map((p) => fmt(p.maxRssMb)).join(", ");
    lines.push(
      `| ${r.target} | ${r.workload} | ${fmt(r.offeredTps)} | ${fmt(r.sentTps)} | ${fmt(r.sustainedTps)} | ` +
        `${fmt(r.committed)} / ${fmt(r.accepted)} | ${triple(r.receiptLatency)} | ${triple(r.certificateLatency)} | ` +
        `${cpu} | ${rss} | ${fmt(r.generator.cpuMsPerTx, 2)} |`,
    );
  }
  if (report.bare !== null) {
    const b = report.bare;
    const row = (name: string, tps: number) =>
      `| ${name} | ${report.options.workload} | - | - | ${fmt(tps)} | - | - | - | ${fmt(1000 / tps, 2)} | - | - |`;
    lines.push(row("bare @ethereumjs/vm runTx, 1 core", b.workloadTps));
    lines.push(row("node execution core, 1 core", b.coreWorkloadTps));
    if (b.pooledWorkloadTps !== null) {
      lines.push(row("node execution core, pooled transactions, 1 core", b.pooledWorkloadTps));
    }
  }
  lines.push("");
  if (report.summary.length > 0) {
    lines.push("| target | capacity (best sustained tx/s) | knee (first offered rate below 90%) |", "|---|---:|---:|");
    for (const s of report.summary)
      lines.push(
        `| ${s.target} | ${fmt(s.capacityTps)} | ${s.kneeAtTps === null ? "not reached" : fmt(s.kneeAtTps)} |`,
      );
    lines.push("");
  }
  if (report.ratios.length > 0) {
    lines.push(
      "Ratios (capacity): " +
        report.ratios.map((r) => `${r.label} ${r.value === null ? "-" : `${r.value.toFixed(2)}x`}`).join(", "),
      "",
    );
  }
  const troubled = report.runs.filter((r) => r.rejected > 0 || r.uncommitted > 0 || r.receiptsFailed > 0);
  for (const r of troubled) {
    const parts: string[] = [];
    if (r.rejected > 0) {
      const why = Object.entries(r.rejections).map(([k, v]) => `${k}: ${v}`);
      parts.push(`${r.rejected} refused (${why.join("; ")})`);
    }
    if (r.uncommitted > 0) parts.push(`${r.uncommitted} accepted but not committed ${r.drainS} s after the last send`);
    if (r.receiptsFailed > 0) parts.push(`${r.receiptsFailed} of ${r.receiptsChecked} checked receipts failed`);
    lines.push(`- ${r.target} at ${r.offeredTps} tx/s: ${parts.join(", ")}`);
  }
  for (const e of report.errors) lines.push(`- ${e.target} FAILED: ${e.message.split("\n")[0]}`);
  if (report.profile !== null)
    lines.push("", renderProfile("CPU profile of validator-0 over the last run", report.profile));
  lines.push(
    "",
    "Columns: sustained = transactions committed per second from the end of the warm-up to the last send; latencies " +
      "from the write of the eth_sendRawTransaction batch to the arrival of the newHeads / certificate notification " +
      "of the block holding it; CPU = utime+stime of each node process over the run divided by committed " +
      "transactions; RSS = highest sampled VmRSS; bench CPU = the load generator's own CPU (it shares the cores). " +
      "See docs/performance.md.",
    "",
  );
  return lines.join("\n");
}

const escapeXml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Axis maximum: 1, 2 or 5 times a power of ten, at least `value`. */
function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * p >= value) return m * p;
  return 10 * p;
}

const PANEL_W = 720;
const PANEL_H = 200;
const PAD = { left: 60, right: 76, top: 28, bottom: 30 };

/** TPS (left axis) and p50 receipt latency (right axis) per second, one panel per run. */
export function renderChart(runs: readonly RunResult[]): string {
  const height = Math.max(1, runs.length) * PANEL_H;
  const parts: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PANEL_W}" height="${height}" viewBox="0 0 ${PANEL_W} ${height}" font-family="sans-serif" font-size="11">`,
    "<title>Sustained TPS and receipt latency over time, per target and offered rate</title>",
    `<rect x="0" y="0" width="${PANEL_W}" height="${height}" fill="#ffffff"/>`,
  ];
  for (const [k, r] of runs.entries()) {
    const y0 = k * PANEL_H;
    const w = PANEL_W - PAD.left - PAD.right;
    const h = PANEL_H - PAD.top - PAD.bottom;
    const seconds = Math.max(1, r.series.length);
    const tpsMax = niceMax(Math.max(r.offeredTps, ...r.series.map((s) => s.committed)));
    const latMax = niceMax(Math.max(1, ...r.series.map((s) => s.receiptP50Ms ?? 0)));
    const x = (t: number) => PAD.left + (w * t) / seconds;
    const yTps = (v: number) => y0 + PAD.top + h - (h * v) / tpsMax;
    const yLat = (v: number) => y0 + PAD.top + h - (h * v) / latMax;
    const title = `${r.target}, ${r.workload}, ${r.offeredTps} tx/s offered`;
    parts.push(`<g class="panel" data-target="${escapeXml(r.target)}" data-offered="${r.offeredTps}">`);
    parts.push(`<text x="${PAD.left}" y="${y0 + 16}" font-weight="bold">${escapeXml(title)}</text>`);
    const legendX = PAD.left + w - 250;
    parts.push(
      `<line x1="${legendX}" y1="${y0 + 12}" x2="${legendX + 16}" y2="${y0 + 12}" stroke="#1f6fd1" stroke-width="2"/>`,
      `<text x="${legendX + 20}" y="${y0 + 16}">committed tx/s</text>`,
      `<line x1="${legendX + 120}" y1="${y0 + 12}" x2="${legendX + 136}" y2="${y0 + 12}" stroke="#e07b00" stroke-width="2"/>`,
      `<text x="${legendX + 140}" y="${y0 + 16}">p50 receipt ms</text>`,
    );
    parts.push(
      `<rect x="${PAD.left}" y="${y0 + PAD.top}" width="${w}" height="${h}" fill="none" stroke="#999999" stroke-width="1"/>`,
    );
    for (const f of [0, 0.5, 1]) {
      const yy = (y0 + PAD.top + h - h * f).toFixed(1);
      parts.push(
        `<text x="${PAD.left - 6}" y="${yy}" text-anchor="end" fill="#1f6fd1">${Math.round(tpsMax * f)}</text>`,
      );
      parts.push(`<text x="${PAD.left + w + 6}" y="${yy}" fill="#e07b00">${Math.round(latMax * f)} ms</text>`);
    }
    parts.push(
      `<text x="${PAD.left + w / 2}" y="${y0 + PANEL_H - 8}" text-anchor="middle">seconds since the first send (${seconds})</text>`,
    );
    parts.push(
      `<line class="offered" x1="${PAD.left}" y1="${yTps(r.offeredTps).toFixed(1)}" x2="${PAD.left + w}" y2="${yTps(r.offeredTps).toFixed(1)}" stroke="#1f6fd1" stroke-dasharray="4 4" stroke-width="1"/>`,
    );
    const tpsPoints = r.series.map((s) => `${x(s.t + 0.5).toFixed(1)},${yTps(s.committed).toFixed(1)}`).join(" ");
    const latPoints = r.series
      .filter((s) => s.receiptP50Ms !== null)
      .map((s) => `${x(s.t + 0.5).toFixed(1)},${yLat(s.receiptP50Ms ?? 0).toFixed(1)}`)
      .join(" ");
    parts.push(
      `<polyline class="series" data-series="committed-tps" points="${tpsPoints}" fill="none" stroke="#1f6fd1" stroke-width="2"/>`,
    );
    parts.push(
      `<polyline class="series" data-series="receipt-p50-ms" points="${latPoints}" fill="none" stroke="#e07b00" stroke-width="2"/>`,
    );
    parts.push("</g>");
  }
  parts.push("</svg>", "");
  return parts.join("\n");
}

/** Writes report.json, report.md and chart.svg into `dir` (created). */
export async function writeReport(
  dir: string,
  report: BenchReport,
): Promise<{ json: string; md: string; svg: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, "report.json");
  const md = join(dir, "report.md");
  const svg = join(dir, "chart.svg");
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(md, renderMarkdown(report));
  await writeFile(svg, renderChart(report.runs));
  return { json, md, svg };
}
