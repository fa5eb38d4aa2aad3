// The data behind the node's dashboard (`GET /api/dashboard`): the validator set with voting power, the current
// height, round and proposer, the last blocks with their proposer, transaction count and certificate signers, the
// time from each block's timestamp to its commit on this node, peers, mempool and L1 status.
// Bounded work per request: only the last DASHBOARD_LIMITS.blocks heights are read, each once (committed blocks and
// certificates never change, so their summaries are cached by height), and concurrent requests share one build.
import type { Hex } from "../../consensus/bytes.ts";
import { certificateSigners } from "../../consensus/certificate.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { proposerIndex } from "../../consensus/validator-set.ts";
import { decodeBlock } from "../chain/block.ts";
import type { L1Status } from "../l1/status.ts";
import type { NodeStatus } from "../node/node.ts";
import type { ChainStore } from "../storage/chain-store.ts";

export const DASHBOARD_LIMITS = {
  /** Blocks in each answer (charts and the certificates table). */
  blocks: 60,
  /** Block summaries kept. */
  cachedBlocks: 256,
  /** Validator sets kept by id. */
  cachedSets: 16,
  /** Local commit times kept by height. */
  commitTimes: 1024,
  peers: 64,
} as const;

/** What the node reports about itself (its status without the addresses it listens on). */
export type DashboardNodeStatus = Omit<NodeStatus, "listen" | "rpc">;

export interface DashboardValidator {
  readonly address: Hex;
  /** From the genesis; null for a validator that joined later. */
  readonly name: string | null;
  readonly votingPower: string;
  readonly self: boolean;
}

export interface DashboardBlock {
  readonly height: number;
  readonly hash: Hex;
  /** Round of the certificate. */
  readonly round: number;
  readonly timestampMs: number;
  readonly proposer: Hex;
  readonly proposerName: string | null;
  readonly transactions: number;
  readonly gasUsed: string;
  /** Transactions divided by the time since the previous block's timestamp; null without a previous block. */
  readonly tps: number | null;
  /** Addresses of the certificate's signers. */
  readonly signers: readonly Hex[];
  readonly signingPower: string;
  readonly totalPower: string;
  /** When this node committed the block (ms since the epoch); null when it did so before its last restart. */
  readonly committedAtMs: number | null;
  /** committedAtMs - timestampMs: block timestamp to soft finality on this node. */
  readonly finalityMs: number | null;
}

export interface DashboardData {
  readonly generatedAtMs: number;
  readonly node: {
    readonly chainId: string;
    readonly role: "validator" | "replica";
    readonly peerId: string;
    readonly address: Hex | null;
    readonly name: string | null;
  };
  readonly consensus: {
    readonly height: number;
    readonly round: number;
    readonly step: string;
    readonly headHeight: number;
    readonly headHash: Hex | null;
    readonly votingNow: boolean;
    readonly lastCommitAgoMs: number | null;
    /** Proposer of the current height and round (CometBFT priority). */
    readonly proposer: Hex | null;
    readonly proposerName: string | null;
  };
  readonly validators: readonly DashboardValidator[];
  readonly totalVotingPower: string;
  /** Newest first. */
  readonly blocks: readonly DashboardBlock[];
  readonly peers: { readonly count: number; readonly ids: readonly string[] };
  readonly mempool: { readonly count: number; readonly bytes: number };
  readonly l1: L1Status;
}

export interface DashboardModules {
  readonly store: ChainStore;
  /** Names by consensus address (from the genesis). */
  readonly names: ReadonlyMap<string, string>;
  readonly status: () => DashboardNodeStatus;
  readonly nowMs?: () => number;
}

type BlockSummary = Omit<DashboardBlock, "tps" | "committedAtMs" | "finalityMs" | "proposerName">;

export class DashboardSource {
  private readonly blocks = new Map<number, BlockSummary>();
  private readonly sets = new Map<Hex, ValidatorSet>();
  private readonly commitTimes = new Map<number, number>();
  private building: Promise<DashboardData> | null = null;
  private readonly nowMs: () => number;

  constructor(private readonly m: DashboardModules) {
    this.nowMs = m.nowMs ?? Date.now;
  }

  /** The node committed `height` now (called from the driver's commit hook). */
  recordCommit(height: number, atMs: number = this.nowMs()): void {
    this.commitTimes.set(height, atMs);
    evictOldest(this.commitTimes, DASHBOARD_LIMITS.commitTimes);
  }

  data(): Promise<DashboardData> {
    if (this.building === null) {
      this.building = this.build().finally(() => {
        this.building = null;
      });
    }
    return this.building;
  }

  private name(address: string): string | null {
    return this.m.names.get(address.toLowerCase()) ?? null;
  }

  private async build(): Promise<DashboardData> {
    const s = this.m.status();
    const store = this.m.store;
    const head = store.headHeight;
    const set = store.validatorSetFor(head + 1);
    const self = s.address?.toLowerCase() ?? null;
    const proposer = s.height === head + 1 ? (set.validators[proposerIndex(set, s.round)]?.address ?? null) : null;
    const from = Math.max(1, head - DASHBOARD_LIMITS.blocks + 1);
    const summaries: BlockSummary[] = [];
    // One block before the window gives the first block's interval for its TPS.
    for (let h = Math.max(1, from - 1); h <= head; h++) {
      const b = await this.summary(h);
      if (b !== undefined) summaries.push(b);
    }
    const blocks: DashboardBlock[] = [];
    for (let i = summaries.length - 1; i >= 0; i--) {
      const b = summaries[i] as BlockSummary;
      if (b.height < from) continue;
      const prev = summaries[i - 1];
      const intervalMs = prev === undefined || prev.height !== b.height - 1 ? 0 : b.timestampMs - prev.timestampMs;
      const committedAtMs = this.commitTimes.get(b.height) ?? null;
      blocks.push({
        ...b,
        proposerName: this.name(b.proposer),
        tps: intervalMs > 0 ? (b.transactions * 1000) / intervalMs : null,
        committedAtMs,
        finalityMs: committedAtMs === null ? null : committedAtMs - b.timestampMs,
      });
    }
    return {
      generatedAtMs: this.nowMs(),
      node: {
        chainId: s.chainId,
        role: s.role,
        peerId: s.peerId,
        address: s.address,
        name: s.address === null ? null : this.name(s.address),
      },
      consensus: {
        height: s.height,
        round: s.round,
        step: s.step,
        headHeight: s.headHeight,
        headHash: s.headHash,
        votingNow: s.votingNow,
        lastCommitAgoMs: s.lastCommitAgoMs,
        proposer,
        proposerName: proposer === null ? null : this.name(proposer),
      },
      validators: set.validators.map((v) => ({
        address: v.address,
        name: this.name(v.address),
        votingPower: v.votingPower.toString(),
        self: v.address.toLowerCase() === self,
      })),
      totalVotingPower: set.totalVotingPower.toString(),
      blocks,
      peers: { count: s.peers.length, ids: s.peers.slice(0, DASHBOARD_LIMITS.peers) },
      mempool: { count: s.pool.count, bytes: s.pool.bytes },
      l1: s.l1,
    };
  }

  private async summary(height: number): Promise<BlockSummary | undefined> {
    const cached = this.blocks.get(height);
    if (cached !== undefined) return cached;
    const [bytes, cert] = await Promise.all([this.m.store.getBlock(height), this.m.store.getCertificate(height)]);
    if (bytes === undefined || cert === undefined) return undefined;
    const set = await this.setById(cert.validatorSetId);
    const block = decodeBlock(bytes);
    const signers = set === undefined ? [] : certificateSigners(cert, set);
    let signingPower = 0n;
    for (const i of signers) signingPower += set?.validators[i]?.votingPower ?? 0n;
    const summary: BlockSummary = {
      height,
      hash: cert.blockHash,
      round: cert.round,
      timestampMs: block.header.timestampMs,
      proposer: block.header.proposer,
      transactions: block.transactions.length,
      gasUsed: block.header.gasUsed.toString(),
      signers: signers.map((i) => set?.validators[i]?.address ?? "0x"),
      signingPower: signingPower.toString(),
      totalPower: (set?.totalVotingPower ?? 0n).toString(),
    };
    this.blocks.set(height, summary);
    evictOldest(this.blocks, DASHBOARD_LIMITS.cachedBlocks);
    return summary;
  }

  private async setById(id: Hex): Promise<ValidatorSet | undefined> {
    const cached = this.sets.get(id);
    if (cached !== undefined) return cached;
    const set = await this.m.store.getValidatorSet(id);
    if (set !== undefined) {
      this.sets.set(id, set);
      evictOldest(this.sets, DASHBOARD_LIMITS.cachedSets);
    }
    return set;
  }
}

/** Maps iterate in insertion order: the first keys are the oldest. */
function evictOldest<K, V>(map: Map<K, V>, max: number): void {
  while (map.size > max) {
    const first = map.keys().next();
    if (first.done === true) return;
    map.delete(first.value);
  }
}
