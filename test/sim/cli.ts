// npm run sim -- [--seeds N] [--first-seed S | --seed S] [--validators 4,7,10] [--bls] [--verbose] [--demo]
//   [--double-voter] (force one Byzantine double voter) [--forget-safety-data] (crashed nodes lose their signing mark: must fail)
// Ends with "N seeds, 0 violations" and exit 0, or prints each failing seed with the command that replays it and exits 1.
import { parseArgs } from "node:util";
import { sweep } from "./run.ts";
import { blsKeys, scenario } from "./scenario.ts";
import { simulate } from "./simulator.ts";

function parsePositive(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

function main(): number {
  const { values } = parseArgs({
    options: {
      seeds: { type: "string", default: "100" },
      "first-seed": { type: "string", default: "1" },
      seed: { type: "string" },
      validators: { type: "string", default: "4,7,10" },
      bls: { type: "boolean", default: false },
      "forget-safety-data": { type: "boolean", default: false },
      "double-voter": { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      demo: { type: "boolean", default: false },
    },
  });
  if (values.demo) return demo(values.seed === undefined ? 7 : parsePositive("seed", values.seed));
  const validators = values.validators.split(",").map((v) => parsePositive("validators", v.trim()));
  if (validators.some((n) => n < 1)) throw new Error("--validators needs counts >= 1");
  const single = values.seed !== undefined;
  const firstSeed = single
    ? parsePositive("seed", values.seed ?? "")
    : parsePositive("first-seed", values["first-seed"]);
  const seeds = single ? 1 : parsePositive("seeds", values.seeds);
  const started = performance.now();
  const report = sweep({
    seeds,
    firstSeed,
    validators: single ? [validators[0] ?? 4] : validators,
    ...(values.bls ? { keys: blsKeys } : {}),
    ...(values["forget-safety-data"] ? { forgetSafetyData: true } : {}),
    ...(values["double-voter"] ? { forceDoubleVoter: true } : {}),
    onResult: (r, n) => {
      if (values.verbose || r.violations.length > 0) {
        const status = r.violations.length === 0 ? "ok" : r.violations.map((v) => `${v.kind}: ${v.detail}`).join("; ");
        process.stdout.write(
          `seed ${r.seed} n=${n}: heights ${r.minHonestHeight}-${r.maxHonestHeight}, max round ${r.maxRound}, ` +
            `${r.events} events, ${r.evidence} evidence, ${r.crashes} crashes, ${r.syncedBlocks} synced, ` +
            `${r.virtualMs} virtual ms: ${status}\n`,
        );
      }
    },
  });
  const seconds = (performance.now() - started) / 1000;
  for (const f of report.failures) process.stdout.write(`FAILED seed ${f.result.seed}: replay with: ${f.replay}\n`);
  process.stdout.write(
    `validators ${validators.join(",")}${values.bls ? ", BLS signatures" : ""}: ${report.heights} heights committed ` +
      `(min per run, summed), ${report.events} events, max round ${report.maxRound}, ${report.evidence} evidence, ` +
      `${report.crashes} crashes, ${report.syncedBlocks} blocks synced, ${seconds.toFixed(1)} s\n`,
  );
  process.stdout.write(`${report.seeds} seeds, ${report.failures.length} violations\n`);
  return report.failures.length === 0 ? 0 : 1;
}

/** One run with 4 validators, printing each committed height, crash and restart as it happens. */
function demo(seed: number): number {
  const cfg = scenario(seed, { validators: 4 });
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`Consensus simulator demo: 4 validators in one process on a virtual clock (seed ${seed}).`);
  out(`Voting power per node: [${cfg.powers.join(", ")}]`);
  out(
    `Byzantine nodes: ${cfg.byzantine.size === 0 ? "none" : [...cfg.byzantine].map(([n, k]) => `node ${n} (${k})`).join(", ")}`,
  );
  out(
    `Faults until GST at ${cfg.gstMs} ms: loss ${(cfg.lossRate * 100).toFixed(1)}%, delay ${cfg.delayMinMs}-${cfg.delayMaxMs} ms, ` +
      `${cfg.partitions.length} partitions, ${cfg.crashes.length} scheduled crashes`,
  );
  const result = simulate(cfg, out);
  const status = result.violations.length === 0 ? "no violations" : result.violations.map((v) => v.kind).join(", ");
  out(
    `Done: heights ${result.minHonestHeight}-${result.maxHonestHeight} committed by honest nodes, max round ${result.maxRound}, ` +
      `${result.evidence} evidence, ${status}.`,
  );
  return result.violations.length === 0 ? 0 : 1;
}

process.exitCode = main();
