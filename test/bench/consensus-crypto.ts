// Benchmark of soft-finality certificates: building (aggregation), verifying with native blst and with pure-JS noble
// (the light-client path), against a same-run baseline of verifying the n individual precommit signatures with blst.
// Every timed iteration uses a fresh certificate (its own height, so its own digest): no message-hash cache hides the
// hash-to-curve cost. Validator public keys are decoded once and cached, as they are in a running node or light client.
import { uintBytes } from "../../consensus/bytes.ts";
import {
  buildCertificate,
  type Certificate,
  encodeCertificate,
  verifyCertificate,
} from "../../consensus/certificate.ts";
import { nobleBlsScheme } from "../../consensus/crypto/bls-noble.ts";
import { voteDigest } from "../../consensus/signing.ts";
import type { SignedVote, Signer, ValidatorSet } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";

export interface BenchCertificatesOptions {
  /** Validator counts to measure (equal power). */
  readonly sizes?: readonly number[];
  /** Timed runs per blst measurement; the median is reported. */
  readonly blstRuns?: number;
  /** Timed runs per noble measurement (pure JS is slow). */
  readonly nobleRuns?: number;
}

interface Row {
  readonly n: number;
  readonly certificateBytes: number;
  readonly buildMs: number;
  readonly verifyBlstMs: number;
  readonly verifyNobleMs: number;
  readonly individualBlstMs: number;
}

const CHAIN_ID = 0x4c554d49n;
const BLOCK = `0x${"ab".repeat(32)}` as const;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const hi = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? hi : ((sorted[mid - 1] ?? hi) + hi) / 2;
}

function timeMs(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

function assertOk(cert: Certificate, set: ValidatorSet, scheme: typeof blstScheme): void {
  const verdict = verifyCertificate(cert, set, { scheme });
  if (!verdict.ok) throw new Error(`benchmark certificate failed to verify: ${verdict.code} ${verdict.message}`);
}

/** Precommits of every validator for BLOCK at `height`, round 0. */
function precommitsAt(signers: readonly Signer[], height: number): SignedVote[] {
  const digest = voteDigest(CHAIN_ID, "precommit", height, 0, BLOCK);
  return signers.map((signer, validatorIndex) => ({
    type: "precommit",
    height,
    round: 0,
    value: BLOCK,
    validatorIndex,
    signature: signer.sign(digest),
  }));
}

function measure(n: number, blstRuns: number, nobleRuns: number): Row {
  const bySecret = Array.from({ length: n }, (_, i) => createBlstSigner(uintBytes(1000 + i, 32)));
  const set = createValidatorSet(bySecret.map((s) => ({ publicKey: s.publicKey, votingPower: 100n })));
  // Signers in set order (the set sorts validators by address).
  const byKey = new Map(bySecret.map((s) => [s.publicKey.join(","), s] as const));
  const signers = set.validators.map((v) => {
    const s = byKey.get(v.publicKey.join(","));
    if (s === undefined) throw new Error("validator without signer");
    return s;
  });

  let height = 1;
  const fresh = (): SignedVote[] => precommitsAt(signers, height++);

  // Warm-up: JIT, native binding, both public-key caches.
  for (let i = 0; i < 2; i++) {
    const warm = buildCertificate(CHAIN_ID, set, fresh(), blstScheme);
    assertOk(warm, set, blstScheme);
    assertOk(warm, set, nobleBlsScheme);
  }

  const build: number[] = [];
  const verifyBlst: number[] = [];
  const individual: number[] = [];
  let certificateBytes = 0;
  for (let r = 0; r < blstRuns; r++) {
    const precommits = fresh();
    let cert: Certificate | undefined;
    build.push(
      timeMs(() => {
        cert = buildCertificate(CHAIN_ID, set, precommits, blstScheme);
      }),
    );
    if (cert === undefined) throw new Error("unreachable: certificate not built");
    const built = cert;
    certificateBytes = encodeCertificate(built).length;
    verifyBlst.push(timeMs(() => assertOk(built, set, blstScheme)));
    const digest = voteDigest(CHAIN_ID, "precommit", built.height, 0, BLOCK);
    individual.push(
      timeMs(() => {
        for (const vote of precommits) {
          const validator = set.validators[vote.validatorIndex];
          if (validator === undefined || !blstScheme.verify(validator.publicKey, digest, vote.signature)) {
            throw new Error("benchmark precommit failed to verify");
          }
        }
      }),
    );
  }

  const verifyNoble: number[] = [];
  for (let r = 0; r < nobleRuns; r++) {
    const cert = buildCertificate(CHAIN_ID, set, fresh(), blstScheme);
    verifyNoble.push(timeMs(() => assertOk(cert, set, nobleBlsScheme)));
  }

  return {
    n,
    certificateBytes,
    buildMs: median(build),
    verifyBlstMs: median(verifyBlst),
    verifyNobleMs: median(verifyNoble),
    individualBlstMs: median(individual),
  };
}

function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(3);
}

function ratio(value: number): string {
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)}x`;
}

/**
 * Measures certificates for 4/16/64/100 equal-power validators, all of them signing, and returns a Markdown table:
 * medians in milliseconds, plus the speed-up of one certificate check over n individual checks (both blst) and the
 * cost of the pure-JS verifier relative to native.
 */
export async function benchCertificates(options: BenchCertificatesOptions = {}): Promise<string> {
  const sizes = options.sizes ?? [4, 16, 64, 100];
  const blstRuns = options.blstRuns ?? 15;
  const nobleRuns = options.nobleRuns ?? 5;
  const rows: Row[] = [];
  for (const n of sizes) {
    rows.push(measure(n, blstRuns, nobleRuns));
    // Yield between sizes so a caller's event loop (progress output, timers) is not starved.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const lines = [
    `Certificate crypto, all n validators signing, medians (blst ${blstRuns} runs, noble ${nobleRuns} runs)`,
    "",
    "| validators | cert bytes | build (aggregate) ms | verify blst ms | verify noble ms | n x blst verify ms | n individual / cert (blst) | noble / blst |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.n} | ${r.certificateBytes} | ${ms(r.buildMs)} | ${ms(r.verifyBlstMs)} | ${ms(r.verifyNobleMs)} | ` +
        `${ms(r.individualBlstMs)} | ${ratio(r.individualBlstMs / r.verifyBlstMs)} | ` +
        `${ratio(r.verifyNobleMs / r.verifyBlstMs)} |`,
    ),
  ];
  return lines.join("\n");
}
