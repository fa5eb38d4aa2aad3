// Turns one seed into a complete simulator run: validator powers, Byzantine nodes (< 1/3 of the voting power),
// network faults before GST, crashes, and the signature scheme.
import { concatBytes, keccak256, uintBytes } from "../../consensus/bytes.ts";
import type { TimeoutParams } from "../../consensus/machine.ts";
import type { SignatureScheme, Signer } from "../../consensus/types.ts";
import { blstScheme, createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";
import { insecureHashScheme, insecurePublicKey, insecureSigner } from "./insecure-scheme.ts";
import { Prng } from "./prng.ts";
import type { ByzantineKind, Crash, Partition, SimConfig } from "./simulator.ts";

export const SIM_TIMEOUTS: TimeoutParams = {
  proposeMs: 200,
  proposeDeltaMs: 100,
  prevoteMs: 100,
  prevoteDeltaMs: 50,
  precommitMs: 100,
  precommitDeltaMs: 50,
};

const BYZANTINE_KINDS: readonly ByzantineKind[] = ["equivocatingProposer", "doubleVoter", "silent", "invalidProposer"];

export interface KeyMaterial {
  readonly scheme: SignatureScheme;
  signerFor(seed: number, index: number): Signer;
}

export const insecureKeys: KeyMaterial = {
  scheme: insecureHashScheme,
  signerFor: (seed, index) => insecureSigner(insecurePublicKey(seed, index)),
};

/** Real BLS12-381 keys (native blst), derived deterministically from (seed, index). */
export const blsKeys: KeyMaterial = {
  scheme: blstScheme,
  signerFor: (seed, index) => createBlstSigner(generateBlsSecretKey(seedKeyMaterial(seed, index))),
};

export interface ScenarioOptions {
  readonly validators: number;
  readonly keys?: KeyMaterial;
  /** Honest nodes lose their safety data when they crash (a deliberately broken rule). */
  readonly forgetSafetyData?: boolean;
  /** Make one (lowest-power) validator a double voter when the seed chose no Byzantine node. */
  readonly forceDoubleVoter?: boolean;
}

/** Deterministic: the same (seed, options) always gives the same configuration. */
export function scenario(seed: number, options: ScenarioOptions): SimConfig {
  const rng = new Prng(seed ^ 0x5eed5eed);
  const n = options.validators;
  const keys = options.keys ?? insecureKeys;

  const equal = rng.chance(0.5);
  const powers = Array.from({ length: n }, () => (equal ? 10n : BigInt(rng.int(1, 100))));
  const total = powers.reduce((a, b) => a + b, 0n);

  // Byzantine nodes: up to f = floor((n-1)/3) by count, and strictly less than 1/3 of the voting power.
  const byzantine = new Map<number, ByzantineKind>();
  const wanted = rng.int(0, Math.floor((n - 1) / 3));
  let byzPower = 0n;
  for (const i of rng.shuffle([...Array(n).keys()])) {
    if (byzantine.size >= wanted) break;
    const p = powers[i] ?? 0n;
    if (3n * (byzPower + p) >= total) continue;
    byzPower += p;
    byzantine.set(i, rng.pick(BYZANTINE_KINDS));
  }
  if (options.forceDoubleVoter === true && byzantine.size === 0 && n >= 4) {
    // An adversary for runs that should see one: the lowest-power node double-votes.
    let weakest = 0;
    for (let i = 1; i < n; i++) if ((powers[i] ?? 0n) < (powers[weakest] ?? 0n)) weakest = i;
    if (3n * (powers[weakest] ?? total) < total) byzantine.set(weakest, "doubleVoter");
  }
  const honest = [...Array(n).keys()].filter((i) => !byzantine.has(i));

  const gstMs = 3000;
  const partitions: Partition[] = [];
  for (let k = rng.int(0, 2); k > 0; k--) {
    const startMs = rng.int(0, gstMs - 200);
    partitions.push({
      startMs,
      endMs: Math.min(gstMs, startMs + rng.int(100, 1500)),
      groupOf: Array.from({ length: n }, () => rng.int(0, 1)),
    });
  }
  const crashes: Crash[] = [];
  for (let k = rng.int(0, 2); k > 0; k--) {
    crashes.push({ node: rng.pick(honest), atMs: rng.int(0, gstMs - 100), downMs: rng.int(10, 1500) });
  }
  const delayMinMs = rng.int(1, 5);

  return {
    seed,
    chainId: 0x4c554d49n,
    powers,
    byzantine,
    forgetSafetyData: new Set(options.forgetSafetyData === true ? honest : []),
    signers: Array.from({ length: n }, (_, i) => keys.signerFor(seed, i)),
    scheme: keys.scheme,
    timeouts: SIM_TIMEOUTS,
    lossRate: rng.chance(0.3) ? 0 : rng.next() * 0.2,
    duplicateRate: rng.next() * 0.1,
    delayMinMs,
    delayMaxMs: delayMinMs + rng.int(10, 300),
    delayAfterGstMs: 20,
    partitions,
    crashes,
    crashAfterPersistRate: rng.chance(0.5) ? 0 : 0.02,
    gstMs,
    livenessWindowMs: 60_000,
    livenessHeights: 3,
    commitDelayMs: 10,
    buildDelayMs: 5,
    rebroadcastMs: 200,
    maxEvents: 2_000_000,
  };
}

/** 32 deterministic bytes for key generation of validator `index` in run `seed`. */
export function seedKeyMaterial(seed: number, index: number): Uint8Array {
  return keccak256(concatBytes(uintBytes(seed, 8), uintBytes(index, 4)));
}
