// Prometheus metrics of the node, one Registry per node (tests run several nodes in one process). Names carry their
// unit (`_seconds`, `_total`, `_bytes`); the list is documented in docs/operations.md.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { createFinalityMetrics, type FinalityMetrics } from "../l1/batcher.ts";
import type { HistoryPrunerMetrics } from "./history-pruner.ts";
import type { StatePrunerMetrics } from "./state-pruner.ts";
import type { StateSyncMetrics } from "./state-sync.ts";

export interface NodeMetrics {
  readonly registry: Registry;
  readonly height: Gauge;
  readonly round: Gauge;
  readonly proposeTimeoutSeconds: Gauge;
  readonly validator: Gauge;
  readonly commits: Counter;
  readonly commitRounds: Histogram;
  readonly heightSeconds: Histogram;
  readonly blockTransactions: Histogram;
  readonly persistSeconds: Histogram;
  readonly signatureBatches: Histogram<"result">;
  readonly voteGateReleases: Counter<"reason">;
  readonly proposals: Counter;
  readonly idleWaits: Counter;
  readonly votes: Counter<"type">;
  readonly signingRefusals: Counter<"code">;
  readonly doppelgangerSignatures: Counter<"source">;
  readonly signingPausedUntil: Gauge;
  readonly invalidBlocks: Counter<"code">;
  readonly clockOffset: Gauge;
  readonly proposerClockOffset: Gauge<"validator">;
  readonly evidence: Counter<"kind">;
  readonly syncedBlocks: Counter;
  readonly droppedEvents: Counter<"kind">;
  readonly peerHeight: Gauge;
  readonly workAccountedHeight: Gauge;
  readonly workReportEpoch: Gauge;
  readonly workReportSubmissions: Counter<"outcome">;
  readonly evidenceReports: Counter<"outcome">;
  readonly admissions: Counter<"source" | "result">;
  readonly txGossipBatch: Histogram;
  /** State pruning (./state-pruner.ts). */
  readonly statePruning: StatePrunerMetrics;
  readonly historyPruning: HistoryPrunerMetrics;
  readonly stateSync: StateSyncMetrics;
  /** Reports the pool's size on each scrape (`dcn_mempool_transactions`, `dcn_mempool_bytes`). */
  watchPool(read: () => { readonly count: number; readonly bytes: number }): void;
  /** Batcher, output proposer, finalized tracker, derivation (src/l1/batcher.ts). */
  readonly finality: FinalityMetrics;
}

export function createMetrics(opts: { defaultMetrics: boolean }): NodeMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "dcn_" });
  const r = [registry];
  let pool: (() => { readonly count: number; readonly bytes: number }) | null = null;
  new Gauge({
    name: "dcn_mempool_transactions",
    help: "Transactions in the pool, both lanes (executable and waiting)",
    registers: r,
    collect() {
      if (pool !== null) this.set(pool().count);
    },
  });
  new Gauge({
    name: "dcn_mempool_bytes",
    help: "Sum of the raw sizes of the transactions in the pool",
    registers: r,
    collect() {
      if (pool !== null) this.set(pool().bytes);
    },
  });
  return {
    watchPool(read) {
      pool = read;
    },
    registry,
    height: new Gauge({ name: "dcn_consensus_height", help: "Last committed height", registers: r }),
    round: new Gauge({ name: "dcn_consensus_round", help: "Current round of the height being decided", registers: r }),
    proposeTimeoutSeconds: new Gauge({
      name: "dcn_consensus_propose_timeout_seconds",
      help: "Propose timeout last scheduled (the configured one, or longer while proposals arrive late)",
      registers: r,
    }),
    validator: new Gauge({
      name: "dcn_consensus_validator",
      help: "1 when this node votes at the current height, 0 for a replica or a node outside the set",
      registers: r,
    }),
    commits: new Counter({ name: "dcn_consensus_commits_total", help: "Blocks committed", registers: r }),
    commitRounds: new Histogram({
      name: "dcn_consensus_commit_round",
      help: "Round in which each committed block was decided (0 = first proposal)",
      buckets: [0, 1, 2, 3, 5, 8],
      registers: r,
    }),
    heightSeconds: new Histogram({
      name: "dcn_consensus_height_duration_seconds",
      help: "Time from the start of a height to its commit on this node",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    blockTransactions: new Histogram({
      name: "dcn_block_transactions",
      help: "Transactions per committed block",
      buckets: [0, 1, 10, 100, 1000, 10000],
      registers: r,
    }),
    persistSeconds: new Histogram({
      name: "dcn_safety_persist_duration_seconds",
      help: "Synced write of the safety record before a vote or proposal leaves",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: r,
    }),
    signatureBatches: new Histogram({
      name: "dcn_signature_batch_size",
      help: "Signatures of one message (gossiped votes) verified in one check, by whether the check held",
      labelNames: ["result"],
      buckets: [2, 3, 4, 6, 8, 16, 32, 64, 128],
      registers: r,
    }),
    voteGateReleases: new Counter({
      name: "dcn_vote_gate_released_total",
      help: "Gossiped votes of the height being decided that waited to be verified, by why they went on (quorum, round_skip, deadline, moved, stopped)",
      labelNames: ["reason"],
      registers: r,
    }),
    proposals: new Counter({ name: "dcn_consensus_proposals_total", help: "Proposals signed", registers: r }),
    idleWaits: new Counter({
      name: "dcn_consensus_idle_waits_total",
      help: "Heights whose start waited for work (nothing to include: consensus.emptyBlockIntervalMs)",
      registers: r,
    }),
    votes: new Counter({ name: "dcn_consensus_votes_total", help: "Votes signed", labelNames: ["type"], registers: r }),
    signingRefusals: new Counter({
      name: "dcn_consensus_signing_refusals_total",
      help: "Signatures refused by the safety guard (a conflicting or regressing signature was asked for)",
      labelNames: ["code"],
      registers: r,
    }),
    doppelgangerSignatures: new Counter({
      name: "dcn_consensus_doppelganger_signatures_total",
      help: "Messages signed by this validator's key that its safety record cannot account for: another process holds the key",
      labelNames: ["source"],
      registers: r,
    }),
    signingPausedUntil: new Gauge({
      name: "dcn_consensus_signing_paused_until_seconds",
      help: "Unix time until which this validator signs nothing after seeing its key used elsewhere (0: never paused)",
      registers: r,
    }),
    invalidBlocks: new Counter({
      name: "dcn_consensus_invalid_blocks_total",
      help: "Proposed blocks that failed validation",
      labelNames: ["code"],
      registers: r,
    }),
    clockOffset: new Gauge({
      name: "dcn_consensus_clock_offset_seconds",
      help: "This node's clock against the other validators' as their proposals' timestamps show it (> 0: ahead; build and trip included)",
      registers: r,
    }),
    proposerClockOffset: new Gauge({
      name: "dcn_consensus_proposer_clock_offset_seconds",
      help: "A proposer's block timestamps against their arrival here, median of its recent proposals (> 0: its clock ahead of this node's)",
      labelNames: ["validator"],
      registers: r,
    }),
    evidence: new Counter({
      name: "dcn_consensus_evidence_total",
      help: "Equivocation evidence produced",
      labelNames: ["kind"],
      registers: r,
    }),
    syncedBlocks: new Counter({
      name: "dcn_sync_blocks_total",
      help: "Blocks committed through catch-up sync (certificate verified)",
      registers: r,
    }),
    droppedEvents: new Counter({
      name: "dcn_driver_dropped_events_total",
      help: "Events dropped by the bounded driver queue or next-height buffer",
      labelNames: ["kind"],
      registers: r,
    }),
    peerHeight: new Gauge({
      name: "dcn_sync_best_peer_height",
      help: "Highest head height reported by a peer",
      registers: r,
    }),
    workAccountedHeight: new Gauge({
      name: "dcn_work_accounted_height",
      help: "Last committed height counted in the epoch work ledger",
      registers: r,
    }),
    workReportEpoch: new Gauge({
      name: "dcn_work_report_epoch",
      help: "Newest registry epoch whose work report is complete",
      registers: r,
    }),
    workReportSubmissions: new Counter({
      name: "dcn_work_report_submissions_total",
      help: "Work report submissions to the L1 Rewards contract, by outcome",
      labelNames: ["outcome"],
      registers: r,
    }),
    evidenceReports: new Counter({
      name: "dcn_evidence_reports_total",
      help: "Equivocation evidence this validator submitted to the L1 Slashing contract, or settled without submitting, by outcome",
      labelNames: ["outcome"],
      registers: r,
    }),
    admissions: new Counter({
      name: "dcn_mempool_admissions_total",
      help: "Transactions offered to the pool, by source (rpc|peer) and result (ok or the refusal code)",
      labelNames: ["source", "result"],
      registers: r,
    }),
    txGossipBatch: new Histogram({
      name: "dcn_tx_gossip_batch_size",
      help: "Transactions per transaction gossip message this node published",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: r,
    }),
    statePruning: {
      keptFrom: new Gauge({
        name: "dcn_state_kept_from_height",
        help: "Lowest height whose state this node keeps (0: every height's; storage.stateHistory)",
        registers: r,
      }),
      steps: new Counter({
        name: "dcn_state_pruning_steps_total",
        help: "State pruning steps done: a generation's first state copied into it, older generations dropped",
        labelNames: ["step"],
        registers: r,
      }),
      copiedNodes: new Counter({
        name: "dcn_state_copied_nodes_total",
        help: "State nodes copied into a new state generation (those of its first height found only in older ones)",
        registers: r,
      }),
    },
    historyPruning: {
      keptFrom: new Gauge({
        name: "dcn_history_kept_from_height",
        help: "Lowest height whose block, certificate, receipts and transaction index entries this node keeps (1: all; storage.blockHistory)",
        registers: r,
      }),
      prunedHeights: new Counter({
        name: "dcn_history_pruned_heights_total",
        help: "Heights whose block, certificate, receipts and transaction index entries were deleted (storage.blockHistory)",
        registers: r,
      }),
    },
    stateSync: {
      nodes: new Counter({
        name: "dcn_state_sync_nodes_total",
        help: "State nodes and code written by state sync (sync.stateSync), by source: fetched from a peer, or found written by an interrupted sync",
        labelNames: ["source"] as const,
        registers: r,
      }),
    },
    finality: createFinalityMetrics(registry),
  };
}
