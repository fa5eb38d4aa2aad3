// npm run sim:driver -- [--seeds N] [--first-seed S | --seed S] [--validators 4] [--verbose]
// Runs the production node stack (driver-sim.ts) under a fault scenario drawn from each seed: loss, duplication and
// long delays before GST, a random partition, random crash-restarts (some right after a durable vote), and in one seed
// of three a double-voting validator. Ends with "N seeds, 0 violations" and exit 0, or prints each failing seed with
// the command that replays it and exits 1.
import { parseArgs } from "node:util";
import { DEFAULT_TIMEOUTS, DriverSim, type DriverSimConfig } from "./driver-sim.ts";
import { Prng } from "./prng.ts";

export function driverScenario(seed: number, validators: number): DriverSimConfig {
  const rng = new Prng(seed * 7919 + validators);
  const groupOf = Array.from({ length: validators }, () => rng.int(0, 1));
  const crashes = Array.from({ length: rng.int(0, 2) }, () => ({
    node: rng.int(0, validators - 1),
    atMs: rng.int(500, 5_000),
    downMs: rng.int(200, 2_500),
  }));
  const f = Math.floor((validators - 1) / 3);
  return {
    seed,
    validators,
    durationMs: 16_000,
    gstMs: 6_000,
    delayMs: { min: 1, max: 40, maxBeforeGst: rng.int(50, 600) },
    lossBeforeGst: rng.int(0, 20) / 100,
    duplicate: 0.05,
    partitions: rng.chance(0.5) ? [{ startMs: rng.int(0, 2_000), endMs: rng.int(2_500, 5_500), groupOf }] : [],
    crashes,
    crashAfterVote: rng.chance(0.5) ? 0.01 : 0,
    doubleVoter: f >= 1 && rng.chance(1 / 3) ? rng.int(0, validators - 1) : null,
    transactions: 40,
    livenessHeights: 5,
    livenessWindowMs: 8_000,
    timeouts: DEFAULT_TIMEOUTS,
    blockIntervalMs: rng.pick([50, 250]),
    emptyBlockIntervalMs: rng.pick([0, 600]),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string", default: "20" },
      "first-seed": { type: "string", default: "1" },
      seed: { type: "string" },
      validators: { type: "string", default: "4" },
      verbose: { type: "boolean", default: false },
    },
  });
  const validators = Number(values.validators);
  if (!Number.isInteger(validators) || validators < 1) throw new Error("--validators needs a count >= 1");
  const first = Number(values.seed ?? values["first-seed"]);
  const count = values.seed === undefined ? Number(values.seeds) : 1;
  const started = performance.now();
  let failures = 0;
  let heights = 0;
  let transactions = 0;
  let crashes = 0;
  for (let seed = first; seed < first + count; seed++) {
    const cfg = driverScenario(seed, validators);
    const r = await (await DriverSim.create(cfg)).run();
    const live = r.heads.filter((h) => h >= 0);
    heights += Math.min(...live);
    transactions += r.committedTransactions;
    crashes += r.crashes;
    const bad = r.violations.length > 0 || r.lostTransactions > 0;
    if (bad) failures++;
    if (values.verbose || bad) {
      const faults = [
        cfg.partitions.length > 0 ? "partition" : "",
        cfg.crashes.length > 0 ? `${r.crashes} crashes` : "",
        cfg.doubleVoter === null ? "" : `double voter ${cfg.doubleVoter}`,
        `loss ${cfg.lossBeforeGst}`,
      ].filter((s) => s !== "");
      process.stdout.write(
        `seed ${seed}: heads ${r.heads.join(",")}, ${r.committedTransactions} txs committed, ` +
          `${r.lostTransactions} lost, ${faults.join(", ")}: ` +
          `${bad ? r.violations.slice(0, 3).join("; ") || "transactions lost" : "ok"}\n`,
      );
      if (bad)
        process.stdout.write(`FAILED: replay with: npm run sim:driver -- --seed ${seed} --validators ${validators}\n`);
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  process.stdout.write(
    `validators ${validators}: ${heights} heights committed (min per run, summed), ${transactions} transactions, ` +
      `${crashes} crash-restarts, 0 lost allowed; ${count} seeds, ${failures} violations in ${seconds} s\n`,
  );
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
