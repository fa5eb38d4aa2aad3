// `dcn bench`: the same pre-signed workload against the subnet, anvil and the bare EVM, one rate after another (a
// ladder that stops at the knee), then report.json / report.md / chart.svg. See docs/performance.md for the method.
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { DEFAULT_CHAIN_ID } from "../cli/devnet.ts";
import { BenchError } from "./errors.ts";
import { DEFAULT_LOAD_OPTIONS, MAX_RUN_TXS, type RunResult, runLoad } from "./load.ts";
import { type ProfileSummary, renderProfile, summarizeProfileFile } from "./profile.ts";
import { type BenchReport, type Ratio, summarizeTargets, writeReport } from "./report.ts";
import { HttpRpc } from "./rpc.ts";
import { round } from "./stats.ts";
import {
  type AnvilMode,
  connectNodes,
  type RunningTarget,
  runBare,
  startAnvilTarget,
  startDevnetTarget,
} from "./targets.ts";
import { benchAccounts, signerBackend } from "./tx.ts";
import { buildWorkload, prepareChain, type WorkloadKind } from "./workload.ts";

export type TargetKind = "devnet" | "anvil" | "bare";
export const TARGET_KINDS: readonly TargetKind[] = ["devnet", "anvil", "bare"];
export const DEFAULT_LADDER: readonly number[] = [100, 250, 500, 750, 1000, 1500, 2000, 3000];
export const DEFAULT_KNEE_RATIO = 0.9;
/** Transactions per block of the one-core execution ceilings (exec.bench.ts's default). */
const BARE_TXS_PER_BLOCK = 500;
const BARE_BLOCKS = 5;

export interface BenchOptions {
  readonly targets: readonly TargetKind[];
  readonly workload: WorkloadKind;
  /** Offered rates in tx/s, run in order; the ladder stops after the first below `kneeRatio` of its offer. */
  readonly rates: readonly number[];
  readonly durationS: number;
  readonly senders: number;
  readonly seed: string;
  /** Use these running nodes for "devnet" instead of starting one. */
  readonly rpc?: readonly string[];
  readonly validators: number;
  readonly anvilModes: readonly AnvilMode[];
  /** Directory of report.json, report.md, chart.svg. */
  readonly outDir: string;
  /**
   * Fresh devnet only: profile every node during each measured run (cpu-profile-preload.mjs, V8's sampling profiler)
   * and summarize validator-0's profile of the last run.
   */
  readonly cpuProfile: boolean;
  /** Fresh devnet only: the nodes' log level (their logs are copied to `<outDir>/node-logs/` at the end). */
  readonly nodeLogLevel?: string;
  readonly kneeRatio: number;
  readonly drainTimeoutS: number;
  readonly connections: number;
  readonly maxInFlight: number;
  /** The command line, for the report. */
  readonly command: string;
  readonly log: (line: string) => void;
}

export function defaultBenchOptions(overrides: Partial<BenchOptions> & { outDir: string }): BenchOptions {
  return {
    targets: TARGET_KINDS,
    workload: "transfers",
    rates: DEFAULT_LADDER,
    durationS: 15,
    senders: 1_000,
    seed: "1",
    validators: 4,
    anvilModes: ["block-time", "automine"],
    cpuProfile: false,
    kneeRatio: DEFAULT_KNEE_RATIO,
    drainTimeoutS: DEFAULT_LOAD_OPTIONS.drainTimeoutS,
    connections: DEFAULT_LOAD_OPTIONS.connections,
    maxInFlight: DEFAULT_LOAD_OPTIONS.maxInFlight,
    command: "dcn bench",
    log: () => {},
    ...overrides,
  };
}

export interface BenchOutcome {
  readonly report: BenchReport;
  readonly files: { readonly json: string; readonly md: string; readonly svg: string };
  /** Targets that failed to start or to prepare (the others still ran). */
  readonly errors: readonly { readonly target: string; readonly message: string }[];
  readonly profile: ProfileSummary | null;
}

/** bench-results/<UTC timestamp> under `root`. */
export function timestampDir(root: string, now = new Date()): string {
  return join(
    root,
    now
      .toISOString()
      .replace(/\.\d+Z$/, "Z")
      .replace(/:/g, "-"),
  );
}

function txsPerRun(rate: number, durationS: number): number {
  return Math.max(1, Math.round(rate * durationS));
}

function checkOptions(o: BenchOptions): void {
  const bad = (why: string) => {
    throw new BenchError("bad_option", why);
  };
  if (o.rates.length === 0) bad("no rate given");
  for (const r of o.rates) {
    if (!(r > 0) || txsPerRun(r, o.durationS) > MAX_RUN_TXS) {
      bad(`rate ${r} tx/s for ${o.durationS} s: a run holds 1 to ${MAX_RUN_TXS} transactions`);
    }
  }
  if (!Number.isInteger(o.senders) || o.senders < 1) bad(`--senders ${o.senders}: expected at least 1`);
  if (o.rpc !== undefined && o.rpc.length === 0) bad("--rpc names no URL");
}

function line(r: RunResult): string {
  const lat = (s: RunResult["receiptLatency"]) =>
    s === null ? "-" : `${s.p50Ms.toFixed(0)}/${s.p95Ms.toFixed(0)}/${s.p99Ms.toFixed(0)} ms`;
  const cpu = r.processes.map((p) => (p.cpuMsPerTx === null ? "-" : p.cpuMsPerTx.toFixed(2))).join(",");
  return (
    `  ${r.target} ${r.workload} offered ${r.offeredTps}/s: sent ${r.sentTps}/s, sustained ${r.sustainedTps}/s, ` +
    `committed ${r.committed}/${r.accepted} (${r.rejected} refused), receipt p50/p95/p99 ${lat(r.receiptLatency)}, ` +
    `certificate ${lat(r.certificateLatency)}, CPU ms/tx ${cpu}, bench ${r.generator.cpuMsPerTx ?? "-"} ms/tx`
  );
}

/**
 * Prepares `target` and runs the ladder on it, appending each run to `runs` as it ends (so a later failure keeps
 * them); stops after the first rate it does not sustain.
 */
async function ladder(
  target: RunningTarget,
  opts: BenchOptions,
  maxTxsPerSender: number,
  runs: RunResult[],
  onWindow?: (phase: "start" | "end") => void,
): Promise<void> {
  const senders = benchAccounts(opts.seed, opts.senders);
  const rpc = new HttpRpc(target.rpc[0] as string, { connections: 4 });
  try {
    const t0 = performance.now();
    opts.log(`${target.name}: setup (${opts.senders} senders, ${opts.workload})`);
    const chain = await prepareChain({
      rpc,
      kind: opts.workload,
      funders: target.funders,
      senders,
      maxTxsPerSender,
      log: opts.log,
    });
    opts.log(`  setup done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const rate of opts.rates) {
      const s0 = performance.now();
      const txs = buildWorkload(chain, opts.workload, senders, txsPerRun(rate, opts.durationS));
      opts.log(
        `  signed ${txs.length} transactions (${signerBackend}) in ${((performance.now() - s0) / 1000).toFixed(1)} s; ` +
          `sending ${rate} tx/s for ${opts.durationS} s over ${target.rpc.length} endpoint(s)`,
      );
      const result = await runLoad(target, opts.workload, txs, {
        rateTps: rate,
        durationS: opts.durationS,
        drainTimeoutS: opts.drainTimeoutS,
        connections: opts.connections,
        maxInFlight: opts.maxInFlight,
        ...(onWindow === undefined ? {} : { onWindow }),
      });
      runs.push(result);
      opts.log(line(result));
      if (result.sustainedTps < opts.kneeRatio * rate) {
        opts.log(`  knee: ${result.sustainedTps} tx/s sustained of ${rate} offered; the ladder stops here`);
        break;
      }
    }
  } finally {
    rpc.close();
  }
}

/** n of a profile file CPU.<pid>.<n>.cpuprofile (written once per measured run). */
function runIndex(file: string): number {
  return Number(file.split(".")[2] ?? -1);
}

/** A one-core rate for a workload: mix = half transfers, half ERC-20 (harmonic mean of the two rates). */
export function workloadRate(transfers: number, erc20: number, kind: WorkloadKind): number {
  switch (kind) {
    case "transfers":
      return transfers;
    case "erc20":
      return erc20;
    case "mix":
      return 2 / (1 / transfers + 1 / erc20);
  }
}

export async function runBench(opts: BenchOptions): Promise<BenchOutcome> {
  checkOptions(opts);
  const startedAt = new Date().toISOString();
  const load = loadavg();
  await mkdir(opts.outDir, { recursive: true });
  const maxTxsPerSender = opts.rates.reduce(
    (sum, r) => sum + Math.ceil(txsPerRun(r, opts.durationS) / opts.senders),
    0,
  );
  const runs: RunResult[] = [];
  const errors: { target: string; message: string }[] = [];
  let chainId = DEFAULT_CHAIN_ID;
  let profile: ProfileSummary | null = null;

  const drive = async (
    label: string,
    start: () => Promise<RunningTarget>,
    extra: { readonly profile?: boolean; readonly after?: () => Promise<void> } = {},
  ) => {
    let target: RunningTarget | null = null;
    try {
      target = await start();
      const pids = target.processes.flatMap((p) => (p.pid === null ? [] : [p.pid]));
      // cpu-profile-preload.mjs toggles its profiler on SIGUSR2 (only fresh devnet nodes have it: others would die).
      const onWindow =
        extra.profile === true
          ? () => {
              for (const pid of pids) process.kill(pid, "SIGUSR2");
            }
          : undefined;
      await ladder(target, opts, maxTxsPerSender, runs, onWindow);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      opts.log(`${label}: FAILED: ${message}`);
      errors.push({ target: label, message });
    } finally {
      await target?.stop();
      await extra.after?.();
    }
  };

  if (opts.targets.includes("devnet")) {
    const rpc = opts.rpc;
    if (rpc !== undefined) {
      await drive("devnet", async () => {
        const t = connectNodes(`subnet (${rpc.length} nodes)`, rpc);
        const probe = new HttpRpc(rpc[0] as string, { connections: 1 });
        try {
          chainId = BigInt(await probe.call<string>("eth_chainId"));
        } finally {
          probe.close();
        }
        return t;
      });
    } else {
      const dir = await mkdtemp(join(tmpdir(), "dcn-bench-devnet-"));
      const profDir = opts.cpuProfile ? join(opts.outDir, "cpu-profiles") : undefined;
      let validator0: number | null = null;
      await drive(
        "devnet",
        async () => {
          const t = await startDevnetTarget({
            validators: opts.validators,
            dir,
            logPath: join(opts.outDir, "devnet.log"),
            nodeLogDir: join(opts.outDir, "node-logs"),
            ...(opts.nodeLogLevel === undefined ? {} : { logLevel: opts.nodeLogLevel }),
            ...(profDir === undefined ? {} : { cpuProfDir: profDir }),
            log: opts.log,
          });
          validator0 = t.processes[0]?.pid ?? null;
          return t;
        },
        {
          profile: profDir !== undefined,
          after: async () => {
            await rm(dir, { recursive: true, force: true });
            if (profDir === undefined || validator0 === null) return;
            // The last run's profile: the highest load the ladder reached.
            const file = (await readdir(profDir).catch(() => [] as string[]))
              .filter((f) => f.startsWith(`CPU.${validator0}.`))
              .sort((a, b) => runIndex(b) - runIndex(a))[0];
            if (file === undefined) {
              opts.log(`no CPU profile of validator-0 (pid ${validator0}) in ${profDir}`);
              return;
            }
            profile = await summarizeProfileFile(join(profDir, file));
            opts.log(renderProfile(`CPU profile of validator-0 over the last run (${file})`, profile));
          },
        },
      );
    }
  }
  if (opts.targets.includes("anvil")) {
    for (const mode of opts.anvilModes) {
      await drive(`anvil ${mode}`, () => startAnvilTarget({ chainId, mode }));
    }
  }
  let bare: BenchReport["bare"] = null;
  if (opts.targets.includes("bare")) {
    try {
      opts.log(`one-core execution: test/bench/exec.bench.ts --txs ${BARE_TXS_PER_BLOCK} --blocks ${BARE_BLOCKS}`);
      const b = await runBare({ txsPerBlock: BARE_TXS_PER_BLOCK, blocks: BARE_BLOCKS });
      bare = {
        transfers: b.transfers,
        erc20: b.erc20,
        txsPerBlock: b.txsPerBlock,
        blocks: b.blocks,
        workloadTps: round(workloadRate(b.transfers.bare, b.erc20.bare, opts.workload), 0),
        coreWorkloadTps: round(workloadRate(b.transfers.core, b.erc20.core, opts.workload), 0),
        pooledWorkloadTps:
          b.transfers.pooled === null || b.erc20.pooled === null
            ? null
            : round(workloadRate(b.transfers.pooled, b.erc20.pooled, opts.workload), 0),
      };
      opts.log(
        `  one core: bare runTx ${b.transfers.bare} transfers/s, ${b.erc20.bare} ERC-20/s; ` +
          `execution core ${b.transfers.core} transfers/s, ${b.erc20.core} ERC-20/s` +
          (b.transfers.pooled === null ? "" : `; pooled ${b.transfers.pooled} transfers/s, ${b.erc20.pooled} ERC-20/s`),
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      opts.log(`bare: FAILED: ${message}`);
      errors.push({ target: "bare", message });
    }
  }

  const summary = summarizeTargets(runs, opts.kneeRatio);
  const subnet = summary.find((s) => s.target.startsWith("subnet"));
  const ratios: Ratio[] = [];
  if (subnet !== undefined) {
    for (const s of summary) {
      if (s !== subnet)
        ratios.push({
          label: `subnet/${s.target}`,
          value: s.capacityTps > 0 ? round(subnet.capacityTps / s.capacityTps, 2) : null,
        });
    }
    if (bare !== null) {
      ratios.push({ label: "subnet/bare runTx", value: round(subnet.capacityTps / bare.workloadTps, 2) });
      ratios.push({ label: "subnet/execution core", value: round(subnet.capacityTps / bare.coreWorkloadTps, 2) });
    }
  }
  const m = cpus();
  const report: BenchReport = {
    tool: "dcn bench",
    startedAt,
    finishedAt: new Date().toISOString(),
    command: opts.command,
    machine: {
      cpus: m.length,
      cpuModel: m[0]?.model ?? "unknown",
      memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      loadAverage: load.map((x) => round(x, 2)),
    },
    options: {
      targets: opts.targets,
      workload: opts.workload,
      rates: opts.rates,
      durationS: opts.durationS,
      senders: opts.senders,
      seed: opts.seed,
      validators: opts.rpc === undefined ? opts.validators : null,
      rpc: opts.rpc ?? null,
      anvilModes: opts.anvilModes,
      kneeRatio: opts.kneeRatio,
      drainTimeoutS: opts.drainTimeoutS,
      connectionsPerEndpoint: opts.connections,
      maxInFlightPerEndpoint: opts.maxInFlight,
      signer: signerBackend,
    },
    errors,
    profile,
    runs,
    bare,
    summary,
    ratios,
  };
  const files = await writeReport(opts.outDir, report);
  return { report, files, errors, profile };
}
