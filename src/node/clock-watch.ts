// How far this node's clock is from the other validators', read off the proposals it receives. A proposer stamps its
// block with its own clock (src/node/executor.ts `build`: max(now, parent + 1 ms)) and publishes it at once, so
// `timestamp - arrival` here is the proposer's clock minus this node's, less the build and the trip (tens of ms).
// Validators refuse a block stamped more than 5 s ahead of their own clock; nothing else in consensus reads the wall
// clock. A clock that drifts past that bound costs a validator its votes (its clock behind: every block looks early)
// or its proposals (its clock ahead): this lets the operator see it coming and says whose clock it is.
//
// Pure bookkeeping: the driver feeds samples and logs the verdict; tested in test/node/clock-watch.test.ts.
import type { Hex } from "../../consensus/bytes.ts";

/** Samples kept per proposer; each proposer's offset is the median of these. */
const SAMPLES = 15;
/** A proposer's offset counts once it has this many samples. */
const MIN_SAMPLES = 3;

export interface ClockReading {
  /** The proposer's address. */
  readonly validator: Hex;
  /** Median of timestamp - arrival over its recent proposals: > 0 when its clock runs ahead of this node's. */
  readonly offsetMs: number;
  readonly samples: number;
}

export type ClockVerdict =
  | { readonly kind: "ok" }
  /** Most proposers' clocks agree with each other and not with this node's: this node's clock is off by `offsetMs` (> 0 ahead). */
  | { readonly kind: "self"; readonly offsetMs: number; readonly proposers: number }
  /**
   * One proposer's clock is off by `offsetMs` (> 0 ahead) from the other proposers' common clock (`comparedWith` of
   * them), or from this node's (`comparedWith` 0) when they have none.
   */
  | { readonly kind: "proposer"; readonly validator: Hex; readonly offsetMs: number; readonly comparedWith: number };

export class ClockWatch {
  private readonly samples = new Map<Hex, number[]>();

  /** @param warnMs the offset beyond which a clock is reported (below the 5 s refusal bound). */
  constructor(private readonly warnMs: number) {}

  /**
   * One proposal seen for the first time. Skipped when the proposer stamped parent + 1 ms: its clock was behind the
   * parent's timestamp, so the timestamp says nothing about it.
   */
  observe(validator: Hex, timestampMs: number, parentTimestampMs: number, arrivalMs: number): void {
    if (timestampMs <= parentTimestampMs + 1) return;
    const key = validator.toLowerCase() as Hex;
    let list = this.samples.get(key);
    if (list === undefined) {
      list = [];
      this.samples.set(key, list);
    }
    list.push(timestampMs - arrivalMs);
    if (list.length > SAMPLES) list.shift();
  }

  /** Each proposer with enough samples, in the order first seen. */
  readings(): ClockReading[] {
    const out: ClockReading[] = [];
    for (const [validator, list] of this.samples) {
      if (list.length >= MIN_SAMPLES) out.push({ validator, offsetMs: median(list), samples: list.length });
    }
    return out;
  }

  /**
   * This node's clock against the proposers' (> 0: this node's clock is ahead), when it can be told: at least two
   * proposers, and more than half of them within warnMs of their median (their clocks agree with each other). Null
   * otherwise: against a single other clock, or clocks that disagree, there is no saying which one is off.
   */
  selfOffsetMs(readings: readonly ClockReading[] = this.readings()): number | null {
    return this.consensus(readings);
  }

  /**
   * This node's clock first (when the proposers agree it is off), else the proposer furthest from the reference.
   * "ok" until `minProposers` proposers have readings: the driver asks for two when the set has two other validators
   * or more, so that a single early reading does not blame that proposer for what is this node's clock. `readings`:
   * what readings() returned, when the caller has it already.
   */
  verdict(minProposers = 1, readings: readonly ClockReading[] = this.readings()): ClockVerdict {
    if (readings.length < minProposers) return { kind: "ok" };
    const agreed = this.consensus(readings);
    if (agreed !== null && Math.abs(agreed) > this.warnMs) {
      return { kind: "self", offsetMs: agreed, proposers: readings.length };
    }
    // The proposers' common clock when they have one, else this node's.
    const reference = agreed === null ? 0 : -agreed;
    let worst: ClockReading | null = null;
    for (const r of readings) {
      if (worst === null || Math.abs(r.offsetMs - reference) > Math.abs(worst.offsetMs - reference)) worst = r;
    }
    if (worst === null || Math.abs(worst.offsetMs - reference) <= this.warnMs) return { kind: "ok" };
    return {
      kind: "proposer",
      validator: worst.validator,
      offsetMs: worst.offsetMs - reference,
      comparedWith: agreed === null ? 0 : readings.length - 1,
    };
  }

  private consensus(readings: readonly ClockReading[]): number | null {
    if (readings.length < 2) return null;
    const m = median(readings.map((r) => r.offsetMs));
    const agreeing = readings.filter((r) => Math.abs(r.offsetMs - m) <= this.warnMs).length;
    return agreeing * 2 > readings.length ? -m : null;
  }

  /** Forgets proposers no longer in the set. */
  retain(validators: ReadonlySet<string>): void {
    for (const key of this.samples.keys()) if (!validators.has(key)) this.samples.delete(key);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
