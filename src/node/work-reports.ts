// Signing, gossiping, aggregating and submitting epoch work reports (docs/l1.md "Work reports").
//
// When the ledger completes an epoch, each validator of that epoch's set signs the report digest with its consensus
// key (BLS is deterministic: a restart signs the same bytes, so this is no equivocation risk) and gossips the
// signature, again every `resendMs` until L1 shows the report accepted (a peer that has not completed the epoch yet
// ignores it). Every node verifies the signatures it receives against its own report. Once more than 2/3 of the
// epoch's power has signed, the validators submit in turn: the member at index (epoch mod n) at once, the next one
// `staggerMs` later, and so on, each first checking that no report has been accepted yet. The contract accepts one
// report per epoch, so a race costs gas, never a second payment.
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import { DecodeError } from "../../consensus/codec.ts";
import type { SignatureScheme, Signer } from "../../consensus/types.ts";
import { hasQuorum } from "../../consensus/validator-set.ts";
import type { Verdict } from "../../p2p/index.ts";
import { g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import type { RewardsSubmitter, SubmitOutcome } from "../l1/rewards.ts";
import type { Logger } from "./log.ts";
import { decodeWorkSignature, encodeWorkSignature, type WorkSignature } from "./messages.ts";
import type { WorkLedger, WorkReport } from "./work-ledger.ts";

export interface WorkReporterParams {
  /** Between two validators' turns to submit (default 12 s). */
  readonly staggerMs: number;
  /** How often a validator re-sends its signature while the report is not accepted (default 5 s). */
  readonly resendMs: number;
  /** Epochs tracked at once; older ones are dropped (accepted, or given up). */
  readonly maxEpochs: number;
  /** Submission attempts of one node for one epoch before it gives up (others still try). */
  readonly maxAttempts: number;
}

export const DEFAULT_WORK_REPORTER_PARAMS: WorkReporterParams = {
  staggerMs: 12_000,
  resendMs: 5_000,
  maxEpochs: 8,
  maxAttempts: 8,
};

export type WorkReportPhase = "collecting" | "quorum" | "submitting" | "accepted" | "given_up";

interface EpochState {
  readonly report: WorkReport;
  readonly signatures: Map<number, Uint8Array>;
  ownIndex: number;
  phase: WorkReportPhase;
  quorumAtMs: number | null;
  attempts: number;
  nextAttemptMs: number;
  lastAcceptedCheckMs: number;
  txHash: Hex | null;
}

export interface WorkReportStatus {
  readonly report: WorkReport;
  readonly phase: WorkReportPhase;
  readonly signers: readonly number[];
  readonly signingPower: bigint;
  readonly totalPower: bigint;
  readonly txHash: Hex | null;
}

export class WorkReporter {
  private readonly epochs = new Map<bigint, EpochState>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private unsubscribe: (() => void) | null = null;
  private ticking = false;

  constructor(
    private readonly params: WorkReporterParams,
    private readonly m: {
      readonly ledger: WorkLedger;
      /** This node's consensus key; null on a replica (it verifies and tracks, never signs). */
      readonly signer: Signer | null;
      readonly scheme: SignatureScheme;
      /** Null when the node has no operator key or L1 writer: it signs but never submits. */
      readonly submitter: RewardsSubmitter | null;
      readonly publish: (bytes: Uint8Array) => void;
      readonly log: Logger;
      readonly nowMs: () => number;
      readonly onOutcome?: (outcome: SubmitOutcome["kind"] | "given_up") => void;
    },
  ) {}

  start(): void {
    this.unsubscribe = this.m.ledger.onReport((r) => this.onReport(r));
    for (const r of this.m.ledger.recentReports().slice(0, this.params.maxEpochs).reverse()) this.onReport(r);
    this.timer = setInterval(() => void this.tick(), Math.min(this.params.resendMs, 1_000));
  }

  stop(): void {
    this.unsubscribe?.();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  status(epoch: bigint): WorkReportStatus | undefined {
    const s = this.epochs.get(epoch);
    if (s === undefined) return undefined;
    const signers = [...s.signatures.keys()].sort((a, b) => a - b);
    return {
      report: s.report,
      phase: s.phase,
      signers,
      signingPower: powerOf(s.report, signers),
      totalPower: s.report.members.reduce((sum, m) => sum + m.votingPower, 0n),
      txHash: s.txHash,
    };
  }

  /** Gossip check of a signature: against this node's own report of the epoch. */
  validate(data: Uint8Array): Verdict<WorkSignature> {
    let msg: WorkSignature;
    try {
      msg = decodeWorkSignature(data);
    } catch (error) {
      if (error instanceof DecodeError) return { kind: "reject", code: "malformed" };
      throw error;
    }
    const s = this.epochs.get(msg.epoch);
    // Not completed here yet (or long done): the signer sends it again until the report lands.
    if (s === undefined) return { kind: "ignore", code: "unknown_epoch" };
    if (msg.digest !== s.report.digest) return { kind: "reject", code: "wrong_digest" };
    const member = s.report.members[msg.signerIndex];
    if (member === undefined) return { kind: "reject", code: "bad_signer_index" };
    if (s.signatures.has(msg.signerIndex)) return { kind: "ignore", code: "duplicate" };
    if (!this.m.scheme.verify(fromHex(member.publicKey), fromHex(s.report.digest), msg.signature)) {
      return { kind: "reject", code: "bad_signature" };
    }
    return { kind: "accept", value: msg };
  }

  onSignature(msg: WorkSignature): void {
    const s = this.epochs.get(msg.epoch);
    if (s === undefined || s.signatures.has(msg.signerIndex)) return;
    s.signatures.set(msg.signerIndex, msg.signature);
    this.checkQuorum(s);
  }

  private onReport(report: WorkReport): void {
    if (!report.submittable || this.epochs.has(report.epoch)) return;
    const s: EpochState = {
      report,
      signatures: new Map(),
      ownIndex: -1,
      phase: "collecting",
      quorumAtMs: null,
      attempts: 0,
      nextAttemptMs: 0,
      lastAcceptedCheckMs: 0,
      txHash: null,
    };
    this.epochs.set(report.epoch, s);
    while (this.epochs.size > this.params.maxEpochs) {
      const oldest = [...this.epochs.keys()].reduce((a, b) => (a < b ? a : b));
      this.epochs.delete(oldest);
    }
    const signer = this.m.signer;
    if (signer !== null) {
      const own = toHex(signer.publicKey);
      s.ownIndex = report.members.findIndex((m) => m.publicKey === own);
      if (s.ownIndex >= 0) {
        s.signatures.set(s.ownIndex, signer.sign(fromHex(report.digest)));
        this.sendOwn(s);
      }
    }
    this.checkQuorum(s);
  }

  private sendOwn(s: EpochState): void {
    const signature = s.signatures.get(s.ownIndex);
    if (signature === undefined) return;
    this.m.publish(
      encodeWorkSignature({
        epoch: s.report.epoch,
        signerIndex: s.ownIndex,
        digest: s.report.digest,
        signature,
        sentAtMs: this.m.nowMs(),
      }),
    );
  }

  private checkQuorum(s: EpochState): void {
    if (s.phase !== "collecting") return;
    const total = s.report.members.reduce((sum, m) => sum + m.votingPower, 0n);
    if (!hasQuorum(powerOf(s.report, [...s.signatures.keys()]), total)) return;
    s.phase = "quorum";
    s.quorumAtMs = this.m.nowMs();
    const n = s.report.members.length;
    const turn = s.ownIndex < 0 ? -1 : (s.ownIndex - Number(s.report.epoch % BigInt(n)) + n) % n;
    s.nextAttemptMs = turn < 0 ? Number.POSITIVE_INFINITY : s.quorumAtMs + turn * this.params.staggerMs;
    this.m.log.info(
      { epoch: s.report.epoch.toString(), signers: s.signatures.size, turn },
      "work report has a quorum of signatures",
    );
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const now = this.m.nowMs();
      for (const s of this.epochs.values()) {
        if (s.phase === "accepted" || s.phase === "given_up") continue;
        if (s.ownIndex >= 0 && now - s.lastAcceptedCheckMs >= this.params.resendMs) {
          s.lastAcceptedCheckMs = now;
          if (await this.acceptedOnL1(s)) continue;
          this.sendOwn(s);
        }
        if (s.phase === "quorum" && this.m.submitter !== null && now >= s.nextAttemptMs) await this.submit(s);
      }
    } finally {
      this.ticking = false;
    }
  }

  private async acceptedOnL1(s: EpochState): Promise<boolean> {
    const submitter = this.m.submitter;
    if (submitter === null) return false;
    const accepted = await submitter.isAccepted(s.report.epoch).catch(() => false);
    if (accepted) {
      s.phase = "accepted";
      this.m.log.info({ epoch: s.report.epoch.toString() }, "work report accepted on L1");
    }
    return accepted;
  }

  private async submit(s: EpochState): Promise<void> {
    const submitter = this.m.submitter;
    if (submitter === null) return;
    if (await this.acceptedOnL1(s)) return;
    s.phase = "submitting";
    s.attempts += 1;
    const signers = [...s.signatures.keys()].sort((a, b) => a - b);
    const bitmap = new Uint8Array(Math.ceil(s.report.members.length / 8));
    for (const i of signers) bitmap[i >> 3] = (bitmap[i >> 3] ?? 0) | (1 << (i & 7));
    const aggregate = this.m.scheme.aggregateSignatures(signers.map((i) => s.signatures.get(i) as Uint8Array));
    const outcome = await submitter.submit(s.report.epoch, s.report.entries, {
      signers: toHex(bitmap),
      signature: toHex(aggregate),
      signatureG2: toHex(g2ToEip2537(aggregate)),
    });
    const epoch = s.report.epoch.toString();
    this.m.onOutcome?.(outcome.kind);
    switch (outcome.kind) {
      case "accepted":
        s.phase = "accepted";
        s.txHash = outcome.txHash;
        this.m.log.info(
          { epoch, tx: outcome.txHash, l1Block: outcome.l1Block.toString(), gas: outcome.gasUsed.toString() },
          "submitted the work report to L1",
        );
        return;
      case "already_accepted":
        s.phase = "accepted";
        this.m.log.info({ epoch }, "work report already accepted on L1");
        return;
      case "stopped":
        s.phase = "quorum";
        this.m.log.info({ epoch, reason: outcome.reason }, "work report left pending: the node is stopping");
        return;
      case "refused":
      case "failed": {
        const giveUp = outcome.kind === "refused" || s.attempts >= this.params.maxAttempts;
        s.phase = giveUp ? "given_up" : "quorum";
        s.nextAttemptMs = this.m.nowMs() + Math.min(60_000, 2_000 * 2 ** s.attempts);
        this.m.log.warn(
          { epoch, attempt: s.attempts, reason: outcome.reason, giveUp },
          "work report submission failed",
        );
        if (giveUp) this.m.onOutcome?.("given_up");
        return;
      }
    }
  }
}

function powerOf(report: WorkReport, indices: readonly number[]): bigint {
  return indices.reduce((sum, i) => sum + (report.members[i]?.votingPower ?? 0n), 0n);
}
