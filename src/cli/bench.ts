// `dcn bench`: load generator with side-by-side baselines (src/bench/, docs/performance.md). Prints progress and the
// Markdown table; writes report.json, report.md and chart.svg to --out (default bench-results/<timestamp>/).
// Registered by main.ts; the bench modules load only when the command runs.
import { resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";

type TargetChoice = "devnet" | "anvil" | "bare" | "all";
type WorkloadChoice = "transfers" | "erc20" | "mix";
type AnvilChoice = "block-time" | "automine" | "both";

export interface BenchCommandOptions {
  readonly target: TargetChoice;
  readonly workload: WorkloadChoice;
  /** One rate; absent: the ladder (--ladder, else DEFAULT_LADDER). */
  readonly rate?: number;
  readonly ladder?: readonly number[];
  readonly durationS: number;
  readonly senders: number;
  readonly rpc?: readonly string[];
  readonly out?: string;
  readonly validators: number;
  readonly anvil: AnvilChoice;
  readonly seed: string;
  readonly cpuProf: boolean;
  readonly nodeLogLevel?: string;
}

/** The command line these options amount to (defaults spelled out), for the report. */
export function commandLine(o: BenchCommandOptions): string {
  const parts = ["dcn bench", `--target ${o.target}`, `--workload ${o.workload}`];
  if (o.rate !== undefined) parts.push(`--rate ${o.rate}`);
  else if (o.ladder !== undefined) parts.push(`--ladder ${o.ladder.join(",")}`);
  parts.push(`--duration ${o.durationS}`, `--senders ${o.senders}`);
  if (o.rpc !== undefined) parts.push(`--rpc ${o.rpc.join(",")}`);
  else if (o.target === "devnet" || o.target === "all") parts.push(`--validators ${o.validators}`);
  if (o.target === "anvil" || o.target === "all") parts.push(`--anvil ${o.anvil}`);
  if (o.seed !== "1") parts.push(`--seed ${o.seed}`);
  if (o.cpuProf) parts.push("--cpu-prof");
  if (o.nodeLogLevel !== undefined) parts.push(`--node-log-level ${o.nodeLogLevel}`);
  return parts.join(" ");
}

function int(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

function choice<T extends string>(values: readonly T[]) {
  return (value: string): T => {
    const found = values.find((v) => v === value);
    if (found === undefined) throw new InvalidArgumentError(`expected one of ${values.join(", ")}`);
    return found;
  };
}

function intList(min: number, max: number) {
  const one = int(min, max);
  return (value: string): number[] => value.split(",").map((part) => one(part.trim()));
}

function urlList(value: string): string[] {
  const urls = value
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  for (const u of urls) {
    if (!/^http:\/\/[^/\s]+\/?$/.test(u)) throw new InvalidArgumentError(`expected http://HOST:PORT URLs, got ${u}`);
  }
  if (urls.length === 0) throw new InvalidArgumentError("expected at least one URL");
  return urls;
}

export async function benchCommand(o: BenchCommandOptions, out: (line: string) => void): Promise<number> {
  const { DEFAULT_LADDER, defaultBenchOptions, runBench, timestampDir } = await import("../bench/bench.ts");
  const { readFile } = await import("node:fs/promises");
  const outcome = await runBench(
    defaultBenchOptions({
      targets: o.target === "all" ? ["devnet", "anvil", "bare"] : [o.target],
      workload: o.workload,
      rates: o.rate !== undefined ? [o.rate] : (o.ladder ?? DEFAULT_LADDER),
      durationS: o.durationS,
      senders: o.senders,
      seed: o.seed,
      ...(o.rpc === undefined ? {} : { rpc: o.rpc }),
      validators: o.validators,
      anvilModes: o.anvil === "both" ? ["block-time", "automine"] : [o.anvil],
      outDir: resolve(o.out ?? timestampDir("bench-results")),
      cpuProfile: o.cpuProf,
      ...(o.nodeLogLevel === undefined ? {} : { nodeLogLevel: o.nodeLogLevel }),
      command: commandLine(o),
      log: out,
    }),
  );
  out("");
  out(await readFile(outcome.files.md, "utf8"));
  out(`wrote ${outcome.files.json}, ${outcome.files.md}, ${outcome.files.svg}`);
  for (const e of outcome.errors) out(`FAILED ${e.target}: ${e.message}`);
  return outcome.errors.length === 0 ? 0 : 1;
}

/** Adds `dcn bench` to the program; `setCode` receives the exit code. */
export function registerBenchCommand(
  program: Command,
  out: (line: string) => void,
  setCode: (code: number) => void,
): void {
  program
    .command("bench")
    .description(
      "load generator: the same pre-signed workload against a fresh devnet, anvil and the bare EVM; sustained " +
        "tx/s, submit->receipt and submit->certificate latency, CPU per transaction (docs/performance.md)",
    )
    .option(
      "--target <target>",
      "devnet, anvil, bare or all",
      choice<TargetChoice>(["devnet", "anvil", "bare", "all"]),
      "all",
    )
    .option(
      "--workload <kind>",
      "transfers, erc20 or mix",
      choice<WorkloadChoice>(["transfers", "erc20", "mix"]),
      "transfers",
    )
    .option(
      "--rate <n>",
      "one offered rate in tx/s (default: the ladder 100,250,500,750,1000,1500,2000,3000)",
      int(1, 100_000),
    )
    .option(
      "--ladder <rates>",
      "offered rates in tx/s, comma-separated; stops after the first below 90%",
      intList(1, 100_000),
    )
    .option("--duration <s>", "seconds of sending per rate", int(1, 3_600), 15)
    .option("--senders <n>", "distinct sending accounts", int(1, 100_000), 1_000)
    .option(
      "--rpc <urls>",
      "devnet target: running nodes' JSON-RPC URLs, comma-separated (default: a fresh devnet)",
      urlList,
    )
    .option("--validators <n>", "validators of the fresh devnet", int(1, 16), 4)
    .option(
      "--anvil <mode>",
      "block-time (1 s), automine or both",
      choice<AnvilChoice>(["block-time", "automine", "both"]),
      "both",
    )
    .option("--seed <seed>", "seed of the senders' keys", "1")
    .option("--cpu-prof", "write V8 CPU profiles of the fresh devnet's nodes and summarize validator-0's")
    .option(
      "--node-log-level <level>",
      "log level of the fresh devnet's nodes (their logs are copied to <out>/node-logs/)",
      choice(["fatal", "error", "warn", "info", "debug", "trace"]),
    )
    .option("--out <dir>", "output directory (default bench-results/<UTC timestamp>)")
    .action(
      async (o: {
        target: TargetChoice;
        workload: WorkloadChoice;
        rate?: number;
        ladder?: number[];
        duration: number;
        senders: number;
        rpc?: string[];
        validators: number;
        anvil: AnvilChoice;
        seed: string;
        cpuProf?: boolean;
        nodeLogLevel?: string;
        out?: string;
      }) => {
        setCode(
          await benchCommand(
            {
              target: o.target,
              workload: o.workload,
              ...(o.rate === undefined ? {} : { rate: o.rate }),
              ...(o.ladder === undefined ? {} : { ladder: o.ladder }),
              durationS: o.duration,
              senders: o.senders,
              ...(o.rpc === undefined ? {} : { rpc: o.rpc }),
              ...(o.out === undefined ? {} : { out: o.out }),
              validators: o.validators,
              anvil: o.anvil,
              seed: o.seed,
              cpuProf: o.cpuProf === true,
              ...(o.nodeLogLevel === undefined ? {} : { nodeLogLevel: o.nodeLogLevel }),
            },
            out,
          ),
        );
      },
    );
}
