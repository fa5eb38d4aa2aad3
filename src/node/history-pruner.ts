// Keeps the history (blocks, certificates, receipts, the transaction index) of the newest `storage.blockHistory`
// heights and deletes older history (docs/storage.md "History pruning"). State is pruned apart (./state-pruner.ts).
//
// Two kinds of old heights stay:
//   - block 1 and the block before each validator-set change, with their certificates: a light client starts from
//     the genesis set and follows each change through the certified header that commits to the next set
//     (docs/light-client.md), so these are what it asks any node for;
//   - heights another part of the node will still read: each such part is a hold naming the lowest height it needs
//     (the batcher: heights not yet in a batch that the L1 has confirmed; the work ledger: heights not yet counted;
//     the output proposer: the next output's blocks; the state pruner: the height its copy starts from).
//
// Deletion runs after commits, in batches of at most BATCH_KEYS keys through the store's write lane; each batch moves
// the store's `historyKeptFrom` with its deletes, so a crash leaves the store as it was before or after one batch.

import { toHex } from "../../consensus/bytes.ts";
import { blockHashOfEncoded, decodeBlock, isSvmEntry } from "../chain/block.ts";
import { decodeSvmReceipts } from "../chain/receipts.ts";
import { fastKeccak256 } from "../execution/keccak.ts";
import { signatureIndexKey } from "../execution/svm/receipt.ts";
import type { ChainStore, HistoryDrop } from "../storage/chain-store.ts";
import { BackgroundJob } from "./background-job.ts";
import type { Logger } from "./log.ts";

/**
 * The fewest heights a node keeps: after a restart the block executor reads the hashes of the newest 256 blocks from
 * their certificates (BLOCKHASH, and the SVM's recent blockhashes: 150).
 */
export const MIN_HISTORY_HEIGHTS = 256;
/** Keys deleted per batch (a block's five plus one per transaction): about a millisecond of LevelDB work. */
const BATCH_KEYS = 4096;
/** Deletion starts once this many heights are due: one pass per this many commits, not one per commit. */
const DEFAULT_MIN_STEP_HEIGHTS = 64;

/** A part of the node that still reads committed blocks: `from()` is the lowest height it needs (Infinity: none). */
export interface HistoryHold {
  readonly name: string;
  readonly from: () => number;
}

export interface HistoryPrunerMetrics {
  /** Lowest height whose whole history is kept. */
  readonly keptFrom: { set(value: number): void };
  /** Heights whose history was deleted. */
  readonly prunedHeights: { inc(value: number): void };
}

export interface HistoryPrunerOptions {
  readonly store: ChainStore;
  /** Heights of history kept at least (storage.blockHistory, >= MIN_HISTORY_HEIGHTS). */
  readonly keepHeights: number;
  readonly holds: readonly HistoryHold[];
  /** A pass starts once this many heights are due (default 64). */
  readonly minStepHeights?: number;
  readonly log: Logger;
  readonly metrics?: HistoryPrunerMetrics;
}

export class HistoryPruner {
  private readonly job: BackgroundJob;
  /** The hold that last stopped pruning short of the window, to log each change of it once. */
  private heldBy: string | null = null;

  constructor(private readonly o: HistoryPrunerOptions) {
    if (!Number.isSafeInteger(o.keepHeights) || o.keepHeights < MIN_HISTORY_HEIGHTS) {
      throw new RangeError(`keepHeights must be an integer >= ${MIN_HISTORY_HEIGHTS}, got ${o.keepHeights}`);
    }
    this.job = new BackgroundJob({ log: o.log, failure: "history pruning failed; it is tried again later" });
  }

  start(): void {
    this.o.metrics?.keptFrom.set(this.o.store.historyKeptFrom);
    this.kick();
  }

  /** A height was committed: a pass runs if enough heights are due. */
  committed(): void {
    this.kick();
  }

  /** Waits for the pass in flight, which stops after its current batch. */
  stop(): Promise<void> {
    return this.job.stop();
  }

  /** The pass in flight, if any (tests). */
  idle(): Promise<void> {
    return this.job.idle();
  }

  /** The height history would be kept from now: the window's start, or lower where a hold needs more. */
  target(): number {
    const store = this.o.store;
    let target = store.headHeight - this.o.keepHeights + 1;
    let heldBy: string | null = null;
    for (const hold of this.o.holds) {
      const from = hold.from();
      if (from < target) {
        target = from;
        heldBy = hold.name;
      }
    }
    if (heldBy !== this.heldBy) {
      this.heldBy = heldBy;
      if (heldBy !== null) this.o.log.debug({ heldBy, target }, "history pruning waits for a part that reads it");
    }
    return target;
  }

  private kick(): void {
    const step = this.o.minStepHeights ?? DEFAULT_MIN_STEP_HEIGHTS;
    this.job.kick(
      () => this.target() - this.o.store.historyKeptFrom >= step,
      () => this.pass(),
    );
  }

  /** Deletes the history of heights [historyKeptFrom, target) but the kept ones, batch by batch. */
  private async pass(): Promise<void> {
    const store = this.o.store;
    const target = this.target();
    const from = store.historyKeptFrom;
    if (target <= from) return;
    const started = Date.now();
    const kept = historyKeptHeights(await store.validatorSetChanges());
    let drops: HistoryDrop[] = [];
    let keys = 0;
    let pruned = 0;
    for (let height = from; height < target; height++) {
      if (this.job.stopped) break;
      if (!kept.has(height)) {
        const drop = await this.dropOf(height);
        drops.push(drop);
        keys += 5 + drop.transactionKeys.length;
      }
      if (keys >= BATCH_KEYS || height === target - 1) {
        await store.dropHistory(drops, height + 1);
        pruned += drops.length;
        this.o.metrics?.prunedHeights.inc(drops.length);
        this.o.metrics?.keptFrom.set(height + 1);
        drops = [];
        keys = 0;
      }
    }
    if (pruned > 0) {
      this.o.log.info(
        { from, keptFrom: store.historyKeptFrom, pruned, ms: Date.now() - started },
        "history of old heights deleted",
      );
    }
  }

  /** What a height's history is keyed by: its block hash and its transactions' index keys, read from the store. */
  private async dropOf(height: number): Promise<HistoryDrop> {
    const store = this.o.store;
    const bytes = await store.getBlock(height);
    if (bytes === undefined) throw new Error(`committed block ${height} is missing from the store`);
    const block = decodeBlock(bytes);
    const transactionKeys = block.transactions.filter((t) => !isSvmEntry(t)).map((t) => toHex(fastKeccak256(t)));
    if (transactionKeys.length < block.transactions.length) {
      const receipts = await store.getReceipts(height);
      if (receipts === undefined) throw new Error(`the receipts of committed block ${height} are missing`);
      for (const r of decodeSvmReceipts(receipts)) transactionKeys.push(signatureIndexKey(r.signature));
    }
    return { height, blockHash: blockHashOfEncoded(bytes), transactionKeys };
  }
}

/**
 * The old heights whose history stays for light clients: block 1 (whose parent is the genesis) and, for each change of
 * the deciding set, the block before it, whose certified header commits to the next set.
 */
export function historyKeptHeights(changes: readonly { readonly fromHeight: number }[]): Set<number> {
  const kept = new Set([1]);
  for (const change of changes) if (change.fromHeight >= 2) kept.add(change.fromHeight - 1);
  return kept;
}
