// Runs many seeds and reports violations with the command that replays each failing seed.
import { insecureKeys, type KeyMaterial, type ScenarioOptions, scenario } from "./scenario.ts";
import { type SimResult, simulate } from "./simulator.ts";

export interface SweepOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly validators: readonly number[];
  readonly keys?: KeyMaterial;
  readonly forgetSafetyData?: boolean;
  readonly forceDoubleVoter?: boolean;
  readonly onResult?: (r: SimResult, validators: number) => void;
}

export interface SweepReport {
  readonly seeds: number;
  readonly failures: readonly { readonly result: SimResult; readonly validators: number; readonly replay: string }[];
  readonly heights: number;
  readonly events: number;
  readonly maxRound: number;
  readonly evidence: number;
  readonly crashes: number;
  readonly syncedBlocks: number;
}

/** Seed s runs with validators[s % validators.length] nodes, so a (seed, validators) pair replays one run. */
export function validatorsFor(seed: number, validators: readonly number[]): number {
  const n = validators[seed % validators.length];
  if (n === undefined) throw new RangeError("no validator counts given");
  return n;
}

export function sweep(options: SweepOptions): SweepReport {
  const failures: { result: SimResult; validators: number; replay: string }[] = [];
  let heights = 0;
  let events = 0;
  let maxRound = 0;
  let evidence = 0;
  let crashes = 0;
  let syncedBlocks = 0;
  for (let seed = options.firstSeed; seed < options.firstSeed + options.seeds; seed++) {
    const n = validatorsFor(seed, options.validators);
    const scenarioOptions: ScenarioOptions = {
      validators: n,
      keys: options.keys ?? insecureKeys,
      ...(options.forgetSafetyData === true ? { forgetSafetyData: true } : {}),
      ...(options.forceDoubleVoter === true ? { forceDoubleVoter: true } : {}),
    };
    const result = simulate(scenario(seed, scenarioOptions));
    options.onResult?.(result, n);
    heights += result.minHonestHeight;
    events += result.events;
    maxRound = Math.max(maxRound, result.maxRound);
    evidence += result.evidence;
    crashes += result.crashes;
    syncedBlocks += result.syncedBlocks;
    if (result.violations.length > 0) {
      const bls = options.keys !== undefined && options.keys !== insecureKeys ? " --bls" : "";
      const broken =
        (options.forgetSafetyData === true ? " --forget-safety-data" : "") +
        (options.forceDoubleVoter ? " --double-voter" : "");
      failures.push({
        result,
        validators: n,
        replay: `npm run sim -- --seed ${seed} --validators ${n}${bls}${broken}`,
      });
    }
  }
  return { seeds: options.seeds, failures, heights, events, maxRound, evidence, crashes, syncedBlocks };
}
