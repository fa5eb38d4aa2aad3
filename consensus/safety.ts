// Signing safety: a high-water mark (height, round, step) that only moves forward. The driver persists the new mark
// (with sync) before a signed message leaves the process; after a crash it reloads it, so a restarted node cannot sign
// a conflicting message for a step it already signed. Modelled on CometBFT's privval last-sign-state
// (spec/consensus/signing.md) and Aptos safety-rules: the check is isolated from the round logic.
import { bytesEqual, toHex } from "./bytes.ts";

/** Signing steps in their order within a round. */
export type SignStep = "proposal" | "prevote" | "precommit";

const STEP_ORDER: Record<SignStep, number> = { proposal: 1, prevote: 2, precommit: 3 };

/** The last message signed. `digest` is what was signed, so an identical re-sign (after a crash) is allowed. */
export interface SigningMark {
  readonly height: number;
  readonly round: number;
  readonly step: SignStep;
  readonly digest: Uint8Array;
}

export type SignRefusal =
  | { readonly code: "height_regression" | "round_regression" | "step_regression"; readonly last: SigningMark }
  | { readonly code: "conflicting_digest"; readonly last: SigningMark; readonly digest: string };

export type SignCheck =
  | { readonly ok: true; readonly mark: SigningMark }
  | { readonly ok: false; readonly refusal: SignRefusal };

/**
 * Decides whether signing `digest` at (height, round, step) is safe after `last`. Allowed: strictly higher
 * (height, round, step) in lexicographic order, or the same position with the same digest (re-sign).
 */
export function checkSign(
  last: SigningMark | null,
  height: number,
  round: number,
  step: SignStep,
  digest: Uint8Array,
): SignCheck {
  const mark: SigningMark = { height, round, step, digest };
  if (last === null) return { ok: true, mark };
  if (height !== last.height) {
    return height > last.height ? { ok: true, mark } : { ok: false, refusal: { code: "height_regression", last } };
  }
  if (round !== last.round) {
    return round > last.round ? { ok: true, mark } : { ok: false, refusal: { code: "round_regression", last } };
  }
  const d = STEP_ORDER[step] - STEP_ORDER[last.step];
  if (d > 0) return { ok: true, mark };
  if (d < 0) return { ok: false, refusal: { code: "step_regression", last } };
  if (bytesEqual(digest, last.digest)) return { ok: true, mark: last };
  return { ok: false, refusal: { code: "conflicting_digest", last, digest: toHex(digest) } };
}

/**
 * Whether a message signed by this validator's key at (height, round, step) lies after `last`, the position its own
 * record says it signed last: then this process never signed it, and another one holds the key (doppelganger
 * protection, src/node/driver.ts). A message at or before the mark may be this process's own (an old vote relayed
 * back): not proof of anything.
 */
export function signedAfter(last: SigningMark | null, height: number, round: number, step: SignStep): boolean {
  if (last === null) return true;
  if (height !== last.height) return height > last.height;
  if (round !== last.round) return round > last.round;
  return STEP_ORDER[step] > STEP_ORDER[last.step];
}
