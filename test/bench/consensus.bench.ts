// npm run bench:consensus — certificate cost for 4/16/64/100 validators (blst, noble, and the n-individual-signatures
// baseline), then simulated heights per wall-clock second of the real state machine on the deterministic simulator,
// with the fast test signature scheme and with real BLS side by side (same seeds, same machine, same run).
import { blsKeys, insecureKeys, type KeyMaterial, scenario } from "../sim/scenario.ts";
import { type SimConfig, simulate } from "../sim/simulator.ts";
import { benchCertificates } from "./consensus-crypto.ts";

/** A fault-free run: no Byzantine nodes, loss, partitions or crashes; 1-5 ms delays; stops after `heights`. */
function cleanRun(seed: number, validators: number, keys: KeyMaterial, heights: number): SimConfig {
  const base = scenario(seed, { validators, keys });
  return {
    ...base,
    powers: base.powers.map(() => 10n),
    byzantine: new Map(),
    lossRate: 0,
    duplicateRate: 0,
    delayMinMs: 1,
    delayMaxMs: 5,
    delayAfterGstMs: 5,
    partitions: [],
    crashes: [],
    crashAfterPersistRate: 0,
    gstMs: 0,
    livenessHeights: heights,
    commitDelayMs: 0,
  };
}

function heightsPerSecond(
  validators: number,
  keys: KeyMaterial,
  heights: number,
): { perSecond: number; virtualMs: number } {
  const samples: { perSecond: number; virtualMs: number }[] = [];
  for (let seed = 1; seed <= 3; seed++) {
    const started = performance.now();
    const r = simulate(cleanRun(seed, validators, keys, heights));
    const seconds = (performance.now() - started) / 1000;
    if (r.violations.length > 0)
      throw new Error(`bench run seed ${seed} had violations: ${JSON.stringify(r.violations)}`);
    samples.push({ perSecond: r.minHonestHeight / seconds, virtualMs: r.virtualMs / Math.max(1, r.minHonestHeight) });
  }
  samples.sort((a, b) => a.perSecond - b.perSecond);
  const median = samples[1];
  if (median === undefined) throw new Error("no samples");
  return median;
}

async function main(): Promise<void> {
  process.stdout.write("## Soft-finality certificates (median of runs)\n\n");
  process.stdout.write(`${await benchCertificates()}\n\n`);
  process.stdout.write(
    "## Simulated heights per wall-clock second (whole subnet in one process, median of 3 seeds)\n\n",
  );
  process.stdout.write(
    "| validators | fast test scheme heights/s | BLS (blst) heights/s | BLS / test | virtual ms per height |\n",
  );
  process.stdout.write("|---:|---:|---:|---:|---:|\n");
  for (const n of [4, 7, 10, 16]) {
    const fast = heightsPerSecond(n, insecureKeys, 200);
    const bls = heightsPerSecond(n, blsKeys, 40);
    process.stdout.write(
      `| ${n} | ${fast.perSecond.toFixed(0)} | ${bls.perSecond.toFixed(1)} | ${(bls.perSecond / fast.perSecond).toFixed(3)}x | ${fast.virtualMs.toFixed(1)} |\n`,
    );
  }
}

await main();
