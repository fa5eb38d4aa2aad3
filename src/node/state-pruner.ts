// Keeps the state of the newest `storage.stateHistory` heights and drops older state (docs/storage.md "State
// generations"). State nodes are content-addressed and shared between heights (an unchanged subtree belongs to every
// state after it), so a node cannot be deleted when the height that wrote it leaves the window: it may still be part
// of the head's state. Instead commits write into a generation of the store, and a cycle runs:
//
//   1. at head S, a new generation begins: commits from S + 1 on write into it;
//   2. in the background, every node of the state at S (EVM accounts, storage and code, and the SVM trie) is copied
//      into it where it is not there yet. Then every state from S on lies wholly in the new generation: a height's
//      state is the state at S plus nodes written by the commits after S, which went into the new generation;
//   3. once the head is `stateHistory` heights past S, the older generations are dropped: heights below S lose their
//      state, and every node only they used is gone, whatever height wrote it.
//
// So between stateHistory and 2 x stateHistory heights of state are kept, plus one copy of the state at S while a
// cycle runs. A cycle costs one walk of the whole state (memory: a key per contract storage trie and code, not per
// node), once every stateHistory heights. A crash at any step leaves a readable store: the generation record is
// written (synced) before each step that depends on it, a copy that did not finish is done again, and a drop that
// did not finish is finished at start.
import type { Hex } from "../../consensus/bytes.ts";
import { fromHex } from "../../consensus/bytes.ts";
import { decodeBlockHead } from "../chain/block.ts";
import { walkState } from "../execution/reachable.ts";
import { EVM_VM } from "../execution/vm.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import { BackgroundJob } from "./background-job.ts";
import type { Logger } from "./log.ts";

/** Nodes copied per write. */
const COPY_BATCH = 1024;

export interface StatePrunerMetrics {
  /** Lowest height whose state is kept. */
  readonly keptFrom: { set(value: number): void };
  /** Heights copied / generations dropped, by step. */
  readonly steps: { inc(labels: { step: "copied" | "dropped" }): void };
  /** State nodes copied into a new generation. */
  readonly copiedNodes: { inc(value: number): void };
}

export interface StatePrunerOptions {
  readonly store: ChainStore;
  /** Heights of state kept at least (storage.stateHistory, > 0). */
  readonly keepHeights: number;
  readonly log: Logger;
  readonly metrics?: StatePrunerMetrics;
}

export class StatePruner {
  private readonly job: BackgroundJob;
  /** Nodes of dropped generations that an interrupted drop left are cleared by the first step. */
  private staleCleared = false;

  constructor(private readonly o: StatePrunerOptions) {
    if (!Number.isSafeInteger(o.keepHeights) || o.keepHeights < 1) {
      throw new RangeError(`keepHeights must be a positive integer, got ${o.keepHeights}`);
    }
    this.job = new BackgroundJob({ log: o.log, failure: "state pruning failed; it is tried again later" });
  }

  /** Finishes what a crash interrupted (a copy, a drop), in the background. */
  start(): void {
    this.o.metrics?.keptFrom.set(this.o.store.stateGenerations.keptFrom);
    this.kick();
  }

  /** A height was committed: the next step of the cycle runs if it is due. */
  committed(): void {
    this.kick();
  }

  /** Waits for the step in flight, which stops at its next node. */
  stop(): Promise<void> {
    return this.job.stop();
  }

  /** The lowest height a copy reads the block of (history pruning keeps it): the start of a generation not copied. */
  historyNeededFrom(): number {
    const g = this.o.store.stateGenerations;
    return g.copied ? Number.POSITIVE_INFINITY : g.currentFrom;
  }

  /** The step in flight, if any (tests). */
  idle(): Promise<void> {
    return this.job.idle();
  }

  private kick(): void {
    this.job.kick(
      () => true,
      () => this.step(),
    );
  }

  private async step(): Promise<void> {
    const store = this.o.store;
    if (!this.staleCleared) {
      await store.dropStaleState();
      this.staleCleared = true;
    }
    const g = store.stateGenerations;
    if (g.oldest < g.current && g.copied) {
      if (store.headHeight >= g.currentFrom + this.o.keepHeights - 1) await this.drop();
      return;
    }
    if (!g.copied) {
      await this.copy();
      return;
    }
    // The only generation, copied: a cycle starts when its start is a whole window behind (from 0 at first).
    if (store.headHeight >= g.currentFrom + this.o.keepHeights) {
      await store.dropStaleState();
      const next = await store.beginStateGeneration();
      this.o.log.info({ generation: next.current, from: next.currentFrom }, "state generation began");
      await this.copy();
    }
  }

  /** Copies every node of the state at the current generation's start into it (what is there already is kept). */
  private async copy(): Promise<void> {
    const store = this.o.store;
    const g = store.stateGenerations;
    const started = Date.now();
    const roots = await this.rootsAt(g.currentFrom);
    const seen = new Set<string>();
    let batch: [Uint8Array, Uint8Array][] = [];
    let copied = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const nodes = batch;
      batch = [];
      await store.copyStateNodes(nodes);
      copied += nodes.length;
      this.o.metrics?.copiedNodes.inc(nodes.length);
    };
    const read = async (key: string): Promise<Uint8Array | undefined> => {
      if (this.job.stopped) throw new Error("stopping");
      const bytes = fromHex(key);
      const found = await store.stateNode(bytes);
      if (found === undefined) return undefined;
      if (found.generation !== g.current) {
        batch.push([bytes, found.value]);
        if (batch.length >= COPY_BATCH) await flush();
      }
      return found.value;
    };
    const code = async (key: string): Promise<void> => {
      if ((await read(key)) === undefined) throw new Error(`code ${key} named by an account is missing`);
    };
    let nodes = 0;
    for (const { vm, root } of roots) nodes += await walkState(root, vm === EVM_VM.id, read, seen, code);
    await flush();
    await store.markStateCopied();
    this.o.metrics?.steps.inc({ step: "copied" });
    this.o.log.info(
      { generation: g.current, from: g.currentFrom, nodes, copied, ms: Date.now() - started },
      "state of the generation's first height copied into it",
    );
  }

  private async drop(): Promise<void> {
    const started = Date.now();
    const next = await this.o.store.dropOldStateGenerations();
    this.o.metrics?.keptFrom.set(next.keptFrom);
    this.o.metrics?.steps.inc({ step: "dropped" });
    this.o.log.info(
      { generation: next.current, keptFrom: next.keptFrom, ms: Date.now() - started },
      "older state generations dropped",
    );
  }

  /** The VM roots of a committed height (genesis has no stored block: a cycle never starts at 0). */
  private async rootsAt(height: number): Promise<readonly { vm: number; root: Hex }[]> {
    const bytes = await this.o.store.getBlock(height);
    if (bytes === undefined) throw new Error(`committed block ${height} is missing`);
    return decodeBlockHead(bytes).header.vmRoots;
  }
}
