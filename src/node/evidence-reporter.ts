// Reporting equivocation to L1 (docs/l1.md "Equivocation evidence"). Every node keeps the evidence its consensus
// produced or its peers gossiped (ChainStore evidence bucket); a validator with an operator key submits each pair of
// conflicting votes to the Slashing contract, which cuts the offender's pool and jails it. The validators take turns as
// for work reports, over the current set without the offender rotated by the height: the first at once, the next
// `staggerMs` later, and so on; a submission that comes too late is refused by the contract's simulation (EvidenceAlreadyUsed, AlreadySlashed) and
// costs nothing. Conflicting proposals are kept and gossiped but not slashable on L1 (the contract takes votes).
//
// The evidence names a validator by its index in the set that decided the height; the contract checks it against the
// registry epoch whose set that was: the epoch current at the L1 origin of block height - 2 (src/node/membership.ts).
// Heights decided by a set that is not a registry epoch's (the genesis set before the first epoch) are not
// slashable.
import type { Hex } from "../../consensus/bytes.ts";
import type { Evidence, SignedVote } from "../../consensus/types.ts";
import type { Genesis } from "../config/genesis.ts";
import type { EvidenceOutcome, SlashingSubmitter } from "../l1/slashing.ts";
import type { L1Answer, L1Epoch, L1Ref } from "../l1/view.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import type { Logger } from "./log.ts";

export interface EvidenceReporterParams {
  /** How often the store's evidence is looked at. */
  readonly pollMs: number;
  /** Between two validators' turns to submit the same evidence. */
  readonly staggerMs: number;
  /** Submissions of one piece of evidence that failed (transport, fees) before this node gives up on it. */
  readonly maxAttempts: number;
}

export const DEFAULT_EVIDENCE_REPORTER_PARAMS: EvidenceReporterParams = {
  pollMs: 2_000,
  staggerMs: 12_000,
  maxAttempts: 5,
};

/** Pieces of evidence followed at once; older ones (settled or not) are forgotten first. */
const MAX_TRACKED = 1_024;
/** Pieces of evidence read from the store per pass. */
const READ_LIMIT = 256;

export type EvidenceReportOutcome = EvidenceOutcome["kind"] | "not_slashable" | "given_up";

interface Tracked {
  readonly first: SignedVote;
  readonly second: SignedVote;
  attempts: number;
  nextAttemptMs: number;
  done: boolean;
}

export class EvidenceReporter {
  private readonly tracked = new Map<string, Tracked>();
  /** The store's evidence is read from this height on (the highest height read so far: more may come there). */
  private fromHeight = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly params: EvidenceReporterParams,
    private readonly m: {
      readonly store: ChainStore;
      readonly genesis: Genesis;
      /** The L1 origin of a committed block (the genesis origin for 0): Membership.originOf. */
      readonly originOf: (height: number) => Promise<L1Ref>;
      readonly epochAt: (origin: L1Ref) => Promise<L1Answer<L1Epoch>>;
      readonly submitter: SlashingSubmitter;
      /** This validator's consensus address. */
      readonly self: Hex;
      readonly log: Logger;
      readonly onOutcome?: (outcome: EvidenceReportOutcome) => void;
      readonly nowMs: () => number;
    },
  ) {}

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick()
        .catch((err: unknown) => this.m.log.warn({ err }, "evidence reporting failed; trying again"))
        .finally(() => {
          this.running = null;
          this.schedule(this.params.pollMs);
        });
    }, ms);
  }

  /** One pass: reads new evidence, submits what is due. Exposed for tests. */
  async tick(): Promise<void> {
    await this.readNew();
    const now = this.m.nowMs();
    for (const t of this.tracked.values()) {
      if (this.stopped) return;
      if (t.done || now < t.nextAttemptMs) continue;
      await this.attempt(t);
    }
  }

  private async readNew(): Promise<void> {
    const found = await this.m.store.listEvidence(this.fromHeight, READ_LIMIT);
    // A height with more pieces than one read holds: go past it rather than read the same ones for ever.
    if (found.length === READ_LIMIT && found.every((e) => heightOf(e) === this.fromHeight)) this.fromHeight++;
    for (const e of found) {
      this.fromHeight = Math.max(this.fromHeight, heightOf(e));
      if (e.kind !== "duplicateVote") continue;
      const v = e.first;
      const key = `${v.type}/${v.height}/${v.round}/${v.validatorIndex}`;
      if (this.tracked.has(key)) continue;
      const turn = await this.turn(v);
      this.tracked.set(key, {
        first: e.first,
        second: e.second,
        attempts: 0,
        nextAttemptMs: this.m.nowMs() + turn * this.params.staggerMs,
        done: false,
      });
      if (this.tracked.size > MAX_TRACKED) this.tracked.delete(this.tracked.keys().next().value as string);
    }
  }

  /**
   * This validator's place in the order of submitters of evidence against `vote`'s validator (0 = at once): the
   * current set without the offender, rotated by the height.
   */
  private async turn(vote: SignedVote): Promise<number> {
    const store = this.m.store;
    const decided = await store.validatorSetIdAt(vote.height);
    const offender = (decided === undefined ? undefined : await store.getValidatorSet(decided))?.validators[
      vote.validatorIndex
    ]?.address.toLowerCase();
    const order = store
      .validatorSetFor(store.headHeight + 1)
      .validators.map((v) => v.address.toLowerCase())
      .filter((a) => a !== offender);
    const own = order.indexOf(this.m.self.toLowerCase());
    if (own < 0) return order.length;
    return (((own - vote.height) % order.length) + order.length) % order.length;
  }

  private finish(t: Tracked, outcome: EvidenceReportOutcome, fields: Record<string, unknown>, msg: string): void {
    t.done = true;
    this.m.onOutcome?.(outcome);
    const v = t.first;
    const at = { type: v.type, height: v.height, round: v.round, validatorIndex: v.validatorIndex, ...fields };
    if (outcome === "slashed") this.m.log.warn(at, msg);
    else this.m.log.info(at, msg);
  }

  private async attempt(t: Tracked): Promise<void> {
    const v = t.first;
    const slashable = await this.epochOf(v.height, v.validatorIndex);
    if (slashable.kind === "later") {
      t.nextAttemptMs = this.m.nowMs() + this.params.pollMs;
      return;
    }
    if (slashable.kind === "no") {
      this.finish(t, "not_slashable", { reason: slashable.reason }, "equivocation evidence not slashable on L1");
      return;
    }
    if (slashable.offender.toLowerCase() === this.m.self.toLowerCase()) {
      // This node's own key (a second process holding it: docs/operations.md "Doppelganger protection"): the others
      // report it.
      this.finish(t, "not_slashable", { reason: "evidence against this validator" }, "evidence against this node");
      return;
    }
    t.attempts++;
    const outcome = await this.m.submitter.submit(slashable.epoch, t.first, t.second);
    const epoch = slashable.epoch.toString();
    switch (outcome.kind) {
      case "slashed":
        this.finish(
          t,
          "slashed",
          { epoch, offender: slashable.offender, txHash: outcome.txHash, l1Block: outcome.l1Block.toString() },
          "submitted equivocation evidence: the validator is slashed and jailed",
        );
        return;
      case "already_used":
      case "refused":
        this.finish(t, outcome.kind, { epoch, reason: outcome.reason }, "equivocation evidence refused on L1");
        return;
      case "stopped":
        this.m.onOutcome?.("stopped");
        return;
      case "failed":
        this.m.onOutcome?.("failed");
        if (t.attempts >= this.params.maxAttempts) {
          this.finish(t, "given_up", { epoch, reason: outcome.reason }, "gave up submitting equivocation evidence");
          return;
        }
        this.m.log.warn(
          { height: v.height, attempts: t.attempts, reason: outcome.reason },
          "submitting equivocation evidence failed; trying again",
        );
        t.nextAttemptMs = this.m.nowMs() + this.params.staggerMs;
        return;
    }
  }

  /**
   * The registry epoch whose set decided `height` and the offender's consensus address in it, when that set is the
   * registry's; "later" while the L1 view cannot say yet.
   */
  private async epochOf(
    height: number,
    index: number,
  ): Promise<{ kind: "ok"; epoch: bigint; offender: Hex } | { kind: "no"; reason: string } | { kind: "later" }> {
    if (this.m.genesis.l1 === null) return { kind: "no", reason: "the subnet has no L1 registry" };
    let origin: L1Ref;
    try {
      origin = await this.m.originOf(Math.max(0, height - 2));
    } catch {
      return { kind: "no", reason: `block ${height - 2} is not kept here` };
    }
    const answer = await this.m.epochAt(origin);
    if (answer.kind === "unknown") return { kind: "later" };
    if (answer.kind === "invalid") return { kind: "no", reason: answer.reason };
    const { epoch, setId } = answer.value;
    const decided = await this.m.store.validatorSetIdAt(height);
    if (epoch === 0n || decided === undefined || decided.toLowerCase() !== setId.toLowerCase()) {
      return { kind: "no", reason: `height ${height} was decided by a set that is not registry epoch ${epoch}'s` };
    }
    const set = await this.m.store.getValidatorSet(decided);
    const offender = set?.validators[index]?.address;
    if (offender === undefined) {
      return { kind: "no", reason: `no validator at the evidence's index in the set of height ${height}` };
    }
    return { kind: "ok", epoch, offender };
  }
}

function heightOf(e: Evidence): number {
  return e.first.height;
}
