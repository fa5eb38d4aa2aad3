// The measured phase: an open-loop sender and a completion tracker.
//
// Sender: transaction i is due at i / rate seconds after the start, whatever happened to the earlier ones (open loop:
// a slow target does not slow the offered load). Every TICK_MS the due transactions go to their endpoint's queue
// (sender s always to endpoint s mod E, so one pool sees a sender's nonces in order) and leave as JSON-RPC batches of
// eth_sendRawTransaction over keep-alive HTTP, at most `maxInFlight` batches per endpoint. A transaction's submit
// time is when its batch is written; how late that was against its due time is reported as the send lag.
//
// Tracker: one WebSocket to the first endpoint. eth_subscribe("newHeads") stamps each committed height on arrival,
// then eth_getBlockByNumber(n, false) (batched, over HTTP) lists the block's transaction hashes: submit -> receipt is
// the head's arrival minus the submit time (the receipt is readable from that commit on). lumia_subscribe
// ("certificates"), where the target has it, stamps the arrival of each height's certificate: submit -> certificate.
import { cpuTimeMs, memoryKb } from "./procstat.ts";
import { HttpRpc, MAX_BATCH, WsRpc } from "./rpc.ts";
import { type LatencySummary, percentile, round, summarize } from "./stats.ts";
import type { PlannedTx } from "./workload.ts";

const TICK_MS = 5;
/** Heights read per eth_getBlockByNumber batch. */
const BLOCK_READ_BATCH = 20;
/** Receipts checked for status after a run (evenly spread over the committed transactions). */
export const MAX_RECEIPT_CHECKS = 2_000;
/** A run holds at most this many transactions (arrays sized by it; 1M is ~100 MB of raw hex). */
export const MAX_RUN_TXS = 1_000_000;
const POLL_MS = 50;

/** What the load generator needs to know about a target. */
export interface LoadTarget {
  readonly name: string;
  /** http:// JSON-RPC endpoints the transactions are spread over. */
  readonly rpc: readonly string[];
  /** WebSocket endpoint for newHeads (and certificates). */
  readonly ws: string;
  /** The target serves lumia_subscribe("certificates"). */
  readonly certificates: boolean;
  /** Processes whose CPU and memory are charged to the target (pid null: unknown, not measured). */
  readonly processes: readonly { readonly name: string; readonly pid: number | null }[];
}

export interface LoadOptions {
  readonly rateTps: number;
  readonly durationS: number;
  /** After the last send, how long to wait for stragglers. */
  readonly drainTimeoutS: number;
  /** Keep-alive connections per endpoint. */
  readonly connections: number;
  /** Batches in flight per endpoint. */
  readonly maxInFlight: number;
  /** Called as the measured window opens (before the first send) and closes (end of the drain). */
  readonly onWindow?: (phase: "start" | "end") => void;
}

export const DEFAULT_LOAD_OPTIONS = { drainTimeoutS: 20, connections: 4, maxInFlight: 8 } as const;

export interface ProcessFigures {
  readonly name: string;
  readonly pid: number | null;
  /** CPU time used from the first send to the end of the drain. */
  readonly cpuMs: number | null;
  readonly cpuMsPerTx: number | null;
  /** Share of one core over the window. */
  readonly cpuCores: number | null;
  readonly rssMb: number | null;
  /** Highest RSS sampled (once per second) during the run. */
  readonly maxRssMb: number | null;
}

export interface SecondSample {
  /** Seconds since the first send (bucket start). */
  readonly t: number;
  readonly sent: number;
  readonly committed: number;
  /** Receipt latency of the transactions committed in this second; null when none. */
  readonly receiptP50Ms: number | null;
  readonly receiptP99Ms: number | null;
  readonly certificateP50Ms: number | null;
}

export interface RunResult {
  readonly target: string;
  readonly workload: string;
  readonly offeredTps: number;
  readonly durationS: number;
  readonly senders: number;
  readonly endpoints: number;
  readonly planned: number;
  readonly sent: number;
  readonly accepted: number;
  readonly rejected: number;
  /** Refusal messages (geth's words) with their counts. */
  readonly rejections: Readonly<Record<string, number>>;
  readonly committed: number;
  readonly certified: number | null;
  /** Accepted but not committed when the drain ended. */
  readonly uncommitted: number;
  /** Transactions actually sent per second of the sending phase. */
  readonly sentTps: number;
  /** Commits per second over the measurement window (after warm-up, until the last send). */
  readonly sustainedTps: number;
  readonly windowS: readonly [number, number];
  readonly receiptLatency: LatencySummary | null;
  readonly certificateLatency: LatencySummary | null;
  readonly sendLagMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Seconds from the last send until every accepted transaction was committed (or the drain timed out). */
  readonly drainS: number;
  readonly blocks: number;
  readonly meanTxsPerBlock: number;
  readonly receiptsChecked: number;
  readonly receiptsFailed: number;
  readonly processes: readonly ProcessFigures[];
  /** The load generator itself (this process), which shares the machine with the target. */
  readonly generator: { readonly cpuMs: number; readonly cpuMsPerTx: number | null };
  readonly series: readonly SecondSample[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Warm-up dropped from the sustained-rate window: long enough for the pipeline to fill, short against the run. */
export function warmupS(durationS: number): number {
  return Math.min(2, Math.floor(durationS / 5));
}

/** Runs one measured phase of `txs` (pre-signed) against `target`. */
export async function runLoad(
  target: LoadTarget,
  workload: string,
  txs: readonly PlannedTx[],
  opts: LoadOptions,
): Promise<RunResult> {
  const n = txs.length;
  if (n === 0 || n > MAX_RUN_TXS) throw new RangeError(`a run holds 1 to ${MAX_RUN_TXS} transactions, not ${n}`);
  if (target.rpc.length === 0) throw new RangeError("no JSON-RPC endpoint");
  const senders = new Set(txs.map((t) => t.sender)).size;
  const endpoints = target.rpc.map((url) => new HttpRpc(url, { connections: opts.connections }));
  const reader = new HttpRpc(target.rpc[0] as string, { connections: 2 });
  const ws = await WsRpc.connect(target.ws);

  const sendMs = new Float64Array(n).fill(Number.NaN);
  const includedMs = new Float64Array(n).fill(Number.NaN);
  const certMs = new Float64Array(n).fill(Number.NaN);
  /** 0 queued, 1 sent, 2 accepted, 3 refused. */
  const state = new Uint8Array(n);
  const indexOf = new Map<string, number>();
  for (const [i, t] of txs.entries()) indexOf.set(t.hash, i);
  const rejections: Record<string, number> = {};
  let accepted = 0;
  let rejected = 0;
  let committed = 0;
  let certified = 0;

  // --- completion tracking ---
  const headArrival = new Map<number, number>();
  const certArrival = new Map<number, number>();
  /** Our transactions of a committed height whose certificate has not arrived yet. */
  const awaitingCert = new Map<number, number[]>();
  const blockSizes: number[] = [];
  let lastQueued = Number(BigInt(await reader.call<string>("eth_blockNumber")));
  const firstHeight = lastQueued + 1;
  const heightQueue: number[] = [];
  let reading = false;
  let trackerError: Error | null = null;

  const stampCert = (i: number, at: number) => {
    if (Number.isNaN(certMs[i] as number)) {
      certMs[i] = at;
      certified++;
    }
  };
  const readBlocks = async () => {
    if (reading) return;
    reading = true;
    try {
      while (heightQueue.length > 0) {
        const heights = heightQueue.splice(0, BLOCK_READ_BATCH);
        const answers = await reader.batch(
          heights.map((h) => ({ method: "eth_getBlockByNumber", params: [`0x${h.toString(16)}`, false] })),
        );
        for (const [j, a] of answers.entries()) {
          const h = heights[j] as number;
          const hashes = a.ok ? (a.result as { transactions?: unknown } | null)?.transactions : undefined;
          if (!Array.isArray(hashes)) {
            throw new Error(`eth_getBlockByNumber(${h}): ${a.ok ? "no transaction list" : a.message}`);
          }
          blockSizes.push(hashes.length);
          const at = headArrival.get(h) ?? performance.now();
          const cert = certArrival.get(h);
          const ours: number[] = [];
          for (const hash of hashes) {
            const i = indexOf.get(hash);
            if (i === undefined || !Number.isNaN(includedMs[i] as number)) continue;
            includedMs[i] = at;
            committed++;
            if (cert !== undefined) stampCert(i, cert);
            else ours.push(i);
          }
          if (target.certificates && ours.length > 0) awaitingCert.set(h, ours);
          headArrival.delete(h);
        }
      }
    } catch (error) {
      trackerError = error instanceof Error ? error : new Error(String(error));
    } finally {
      reading = false;
    }
  };
  /** A notification the tracker cannot read stops the run (a target bug, reported as such). */
  const heightIn = (result: unknown, field: "number" | "height"): number | null => {
    const value = (result as Record<string, unknown> | null)?.[field];
    if (typeof value === "string" && /^0x[0-9a-f]{1,13}$/i.test(value)) return Number(value);
    trackerError ??= new Error(`notification without a hex ${field}: ${JSON.stringify(result).slice(0, 200)}`);
    return null;
  };
  const onHead = (result: unknown) => {
    const at = performance.now();
    const h = heightIn(result, "number");
    if (h === null) return;
    // Heights the subscription skipped (none expected) are read too, stamped with this later arrival.
    for (let k = lastQueued + 1; k <= h; k++) {
      headArrival.set(k, at);
      heightQueue.push(k);
    }
    lastQueued = Math.max(lastQueued, h);
    void readBlocks();
  };
  const onCert = (result: unknown) => {
    const at = performance.now();
    const h = heightIn(result, "height");
    if (h === null || h < firstHeight) return;
    certArrival.set(h, at);
    const ours = awaitingCert.get(h);
    if (ours !== undefined) {
      for (const i of ours) stampCert(i, at);
      awaitingCert.delete(h);
    }
  };
  await ws.subscribe("eth", "newHeads", onHead);
  if (target.certificates) await ws.subscribe("lumia", "certificates", onCert);

  // --- resource figures: CPU at the start and end of the window, RSS once a second ---
  const cpuStart = target.processes.map((p) => (p.pid === null ? null : cpuTimeMs(p.pid)));
  const maxRssKb = target.processes.map(() => 0);
  const sampleRss = () => {
    for (const [k, p] of target.processes.entries()) {
      const m = p.pid === null ? null : memoryKb(p.pid);
      if (m !== null) maxRssKb[k] = Math.max(maxRssKb[k] as number, m.rssKb);
    }
  };
  sampleRss();
  const rssTimer = setInterval(sampleRss, 1_000);
  opts.onWindow?.("start");
  const genStart = process.cpuUsage();

  // --- open-loop sender ---
  const queues = endpoints.map(() => [] as number[]);
  const heads = endpoints.map(() => 0);
  const inFlight = endpoints.map(() => 0);
  const t0 = performance.now();
  const pump = (e: number) => {
    const q = queues[e] as number[];
    while ((heads[e] as number) < q.length && (inFlight[e] as number) < opts.maxInFlight) {
      const from = heads[e] as number;
      const batch = q.slice(from, from + MAX_BATCH);
      heads[e] = from + batch.length;
      inFlight[e] = (inFlight[e] as number) + 1;
      const now = performance.now();
      for (const i of batch) {
        sendMs[i] = now;
        state[i] = 1;
      }
      (endpoints[e] as HttpRpc)
        .batch(batch.map((i) => ({ method: "eth_sendRawTransaction", params: [(txs[i] as PlannedTx).rawHex] })))
        .then(
          (answers) => {
            for (const [j, a] of answers.entries()) {
              const i = batch[j] as number;
              if (a.ok) {
                state[i] = 2;
                accepted++;
              } else {
                state[i] = 3;
                rejected++;
                const key = a.message.split(":")[0] ?? a.message;
                rejections[key] = (rejections[key] ?? 0) + 1;
              }
            }
          },
          (error: unknown) => {
            const key = `transport: ${error instanceof Error ? error.message.slice(0, 80) : String(error)}`;
            for (const i of batch) state[i] = 3;
            rejected += batch.length;
            rejections[key] = (rejections[key] ?? 0) + batch.length;
          },
        )
        .finally(() => {
          inFlight[e] = (inFlight[e] as number) - 1;
          pump(e);
        });
    }
    // Queues are bounded by the workload; drop what was sent so they do not hold it all.
    if ((heads[e] as number) > 4096 && (heads[e] as number) === q.length) {
      q.length = 0;
      heads[e] = 0;
    }
  };
  let next = 0;
  while (next < n) {
    const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * opts.rateTps) + 1);
    const touched = new Set<number>();
    for (; next < due; next++) {
      const e = (txs[next] as PlannedTx).sender % endpoints.length;
      (queues[e] as number[]).push(next);
      touched.add(e);
    }
    for (const e of touched) pump(e);
    if (ws.closed) trackerError ??= new Error(`the WebSocket to ${target.ws} closed during the run`);
    if (trackerError !== null) break;
    await sleep(TICK_MS);
  }
  while (inFlight.some((c) => c > 0) || queues.some((q, e) => (heads[e] as number) < q.length)) await sleep(POLL_MS);
  const sendEnd = performance.now();

  // --- drain: until every accepted transaction is committed (and certified), or the timeout ---
  const drainDeadline = sendEnd + opts.drainTimeoutS * 1000;
  const done = () => committed >= accepted && (!target.certificates || certified >= committed);
  while (!done() && performance.now() < drainDeadline && trackerError === null) {
    if (ws.closed) trackerError = new Error(`the WebSocket to ${target.ws} closed during the run`);
    await sleep(POLL_MS);
  }
  const drainEnd = performance.now();
  opts.onWindow?.("end");
  clearInterval(rssTimer);
  sampleRss();
  const gen = process.cpuUsage(genStart);
  const cpuEnd = target.processes.map((p) => (p.pid === null ? null : cpuTimeMs(p.pid)));
  await ws.close();
  if (trackerError !== null) {
    for (const e of endpoints) e.close();
    reader.close();
    throw trackerError;
  }

  // --- receipts: status of a spread sample (outside the window) ---
  const committedIdx: number[] = [];
  for (let i = 0; i < n; i++) if (!Number.isNaN(includedMs[i] as number)) committedIdx.push(i);
  const step = Math.max(1, Math.ceil(committedIdx.length / MAX_RECEIPT_CHECKS));
  const sample = committedIdx.filter((_, k) => k % step === 0);
  let receiptsFailed = 0;
  for (let k = 0; k < sample.length; k += MAX_BATCH) {
    const chunk = sample.slice(k, k + MAX_BATCH);
    const answers = await reader.batch(
      chunk.map((i) => ({ method: "eth_getTransactionReceipt", params: [(txs[i] as PlannedTx).hash] })),
    );
    for (const a of answers) {
      if (!a.ok || a.result === null || (a.result as { status?: string }).status !== "0x1") receiptsFailed++;
    }
  }
  for (const e of endpoints) e.close();
  reader.close();

  // --- figures ---
  const elapsedS = (sendEnd - t0) / 1000;
  const warm = warmupS(opts.durationS);
  const windowStart = t0 + warm * 1000;
  const windowEnd = Math.max(sendEnd, windowStart + 1);
  let inWindow = 0;
  const receipt: number[] = [];
  const certificate: number[] = [];
  const lag: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = sendMs[i] as number;
    if (!Number.isNaN(s)) lag.push(Math.max(0, s - (t0 + (i / opts.rateTps) * 1000)));
    const inc = includedMs[i] as number;
    if (Number.isNaN(inc)) continue;
    if (inc >= windowStart && inc <= windowEnd) inWindow++;
    receipt.push(inc - s);
    const c = certMs[i] as number;
    if (!Number.isNaN(c)) certificate.push(c - s);
  }
  lag.sort((a, b) => a - b);
  const windowLen = (windowEnd - windowStart) / 1000;
  const seconds = Math.ceil((drainEnd - t0) / 1000);
  const series: SecondSample[] = [];
  const bucketSent = new Array<number>(seconds).fill(0);
  const bucketReceipt = Array.from({ length: seconds }, () => [] as number[]);
  const bucketCert = Array.from({ length: seconds }, () => [] as number[]);
  for (let i = 0; i < n; i++) {
    const s = sendMs[i] as number;
    if (Number.isNaN(s)) continue;
    const sb = Math.min(seconds - 1, Math.floor((s - t0) / 1000));
    bucketSent[sb] = (bucketSent[sb] as number) + 1;
    const inc = includedMs[i] as number;
    if (Number.isNaN(inc)) continue;
    const b = Math.min(seconds - 1, Math.floor((inc - t0) / 1000));
    bucketReceipt[b]?.push(inc - s);
    const c = certMs[i] as number;
    if (!Number.isNaN(c)) bucketCert[b]?.push(c - s);
  }
  for (let b = 0; b < seconds; b++) {
    const r = Float64Array.from(bucketReceipt[b] ?? []).sort();
    const c = Float64Array.from(bucketCert[b] ?? []).sort();
    series.push({
      t: b,
      sent: bucketSent[b] as number,
      committed: r.length,
      receiptP50Ms: r.length === 0 ? null : round(percentile(r, 50), 1),
      receiptP99Ms: r.length === 0 ? null : round(percentile(r, 99), 1),
      certificateP50Ms: c.length === 0 ? null : round(percentile(c, 50), 1),
    });
  }
  const sent = n - state.filter((s) => s === 0).length;
  const genCpuMs = (gen.user + gen.system) / 1000;
  const windowMs = drainEnd - t0;
  const processes: ProcessFigures[] = target.processes.map((p, k) => {
    const a = cpuStart[k];
    const b = cpuEnd[k];
    const cpuMs = a === null || b === null || a === undefined || b === undefined ? null : b - a;
    const mem = p.pid === null ? null : memoryKb(p.pid);
    return {
      name: p.name,
      pid: p.pid,
      cpuMs: cpuMs === null ? null : round(cpuMs, 0),
      cpuMsPerTx: cpuMs === null || committed === 0 ? null : round(cpuMs / committed, 3),
      cpuCores: cpuMs === null ? null : round(cpuMs / windowMs, 2),
      rssMb: mem === null ? null : round(mem.rssKb / 1024, 1),
      maxRssMb: maxRssKb[k] === 0 ? null : round((maxRssKb[k] as number) / 1024, 1),
    };
  });
  return {
    target: target.name,
    workload,
    offeredTps: opts.rateTps,
    durationS: opts.durationS,
    senders,
    endpoints: endpoints.length,
    planned: n,
    sent,
    accepted,
    rejected,
    rejections,
    committed,
    certified: target.certificates ? certified : null,
    uncommitted: Math.max(0, accepted - committed),
    sentTps: round(sent / Math.max(elapsedS, 1e-3), 1),
    sustainedTps: round(inWindow / windowLen, 1),
    windowS: [round((windowStart - t0) / 1000, 2), round((windowEnd - t0) / 1000, 2)],
    receiptLatency: roundSummary(summarize(receipt)),
    certificateLatency: target.certificates ? roundSummary(summarize(certificate)) : null,
    sendLagMs: {
      p50: lag.length === 0 ? 0 : round(percentile(lag, 50), 1),
      p99: lag.length === 0 ? 0 : round(percentile(lag, 99), 1),
      max: lag.length === 0 ? 0 : round(lag[lag.length - 1] as number, 1),
    },
    drainS: round((drainEnd - sendEnd) / 1000, 2),
    blocks: blockSizes.length,
    meanTxsPerBlock: blockSizes.length === 0 ? 0 : round(blockSizes.reduce((x, y) => x + y, 0) / blockSizes.length, 1),
    receiptsChecked: sample.length,
    receiptsFailed,
    processes,
    generator: { cpuMs: round(genCpuMs, 0), cpuMsPerTx: committed === 0 ? null : round(genCpuMs / committed, 3) },
    series,
  };
}

function roundSummary(s: LatencySummary | null): LatencySummary | null {
  if (s === null) return null;
  return {
    count: s.count,
    minMs: round(s.minMs, 1),
    meanMs: round(s.meanMs, 1),
    p50Ms: round(s.p50Ms, 1),
    p95Ms: round(s.p95Ms, 1),
    p99Ms: round(s.p99Ms, 1),
    maxMs: round(s.maxMs, 1),
  };
}
