// The node's chain store: committed blocks, their certificates, validator sets, the consensus safety record and
// evidence, as typed repositories over one level database (buckets in ./buckets.ts, formats in ./codecs.ts, the rules
// in docs/storage.md).
//
// Durability: a commit is one level batch written with sync, so after a crash a height is either fully there (block,
// hash index, certificate, head, next validator set) or not at all. Writes go through one serial lane: level applies
// concurrent writes in no guaranteed order, and an older safety record landing after a newer one would let a
// restarted node sign twice.
import { Level } from "level";
import { concatBytes, fromHex, type Hex, isHex, readUint, toHex, uintBytes } from "../../consensus/bytes.ts";
import { type Certificate, decodeCertificate, encodeCertificate } from "../../consensus/certificate.ts";
import { decode, EncodeError, encode } from "../../consensus/codec.ts";
import type { LockState } from "../../consensus/machine.ts";
import type { SigningMark } from "../../consensus/safety.ts";
import type { Evidence, SignedProposal, SignedVote, ValidatorSet } from "../../consensus/types.ts";
import { failpoint } from "../node/failpoints.ts";
import { Bucket, bucketEnd, bucketKey, heightKey, heightOfKey, MetaField, metaKey } from "./buckets.ts";
import {
  decodeMembership,
  decodeSafetyRecord,
  encodeMembership,
  encodeSafetyRecord,
  genesisHashSchema,
  headSchema,
  historySchema,
  MAX_STORED_BLOCK_BYTES,
  nextValidatorSetSchema,
  schemaVersionSchema,
  setIdSchema,
  stateGenerationsSchema,
  storedBlockSchema,
  storedHeightSchema,
} from "./codecs.ts";
import { corruptError, decodeStored, StorageError } from "./errors.ts";
import { decodeEvidence, encodeEvidence, evidenceKeySuffix } from "./evidence.ts";

export { StorageError, type StorageErrorCode } from "./errors.ts";

/**
 * Version of the whole database layout, including the formats of the values it keeps (blocks are stored encoded); a
 * database with another version is refused ("schema_version"). 2: block header version 3 (nextValidatorSetId);
 * 3: block header version 4 (l1Origin); 4: block header version 5 (lastCertificateHash, the parent certificate
 * in the block); 5: block header version 6 (deposits); 6: stored receipts version 2 (SVM receipts after the EVM
 * ones), SVM transactions in the transaction index (src/execution/svm/receipt.ts signatureIndexKey), the genesis
 * state with an SVM root.
 */
export const SCHEMA_VERSION = 6;
/** Writes (commits, safety records, evidence) that may wait in the lane; beyond it the caller is not awaiting. */
export const DEFAULT_MAX_PENDING_WRITES = 256;
/** Upper bound on getRange's count and listEvidence's limit, whatever the caller asks. */
export const MAX_RANGE_COUNT = 4096;
export const MAX_EVIDENCE_LIST = 4096;

export interface CommitRecord {
  readonly height: number;
  readonly blockHash: Hex;
  /** The encoded block (its format belongs to src/chain/). */
  readonly block: Uint8Array;
  readonly certificate: Certificate;
  /** The set (with proposer priorities) for height + 1. */
  readonly nextValidatorSet: ValidatorSet;
  /** State nodes created by executing the block (key hex -> value), applied in the same batch. */
  readonly stateWrites?: ReadonlyMap<string, Uint8Array>;
  /** The block's receipts, encoded by the execution core. */
  readonly receipts?: Uint8Array;
  /** Hashes of the block's transactions in order, for the transaction index. */
  readonly transactionHashes?: readonly Hex[];
  /**
   * The certificate of height - 1 that the block carries (its canonical certificate), when it differs from the one
   * stored: it replaces it in the same batch.
   */
  readonly parentCertificate?: Certificate;
}

/** Where a committed transaction is. */
export interface TransactionLocation {
  readonly height: number;
  readonly index: number;
}

export interface SafetyRecord {
  readonly mark: SigningMark | null;
  /** Height the lock and votes below belong to. */
  readonly height: number;
  readonly lock: LockState;
  readonly proofOfLock: readonly SignedVote[];
  /** This node's signed votes at `height`. */
  readonly ownVotes: readonly SignedVote[];
  readonly ownProposal: SignedProposal | null;
  /** Bodies of the own proposal, the locked and the valid value: a restarted node must be able to re-propose. */
  readonly blocks: readonly { readonly hash: Hex; readonly block: Uint8Array }[];
}

export interface ChainStoreOptions {
  readonly genesisHash: Hex;
  readonly genesisValidatorSet: ValidatorSet;
  readonly maxPendingWrites?: number;
}

/**
 * Where state nodes live (docs/storage.md "State generations"). Generations `oldest` to `current` are read, newest
 * first; commits write into `current`, which began when `currentFrom` was the head; `copied` once every node of that
 * head's state is in `current` (from then on the older generations may be dropped); heights below `keptFrom` no
 * longer have their state. Without pruning there is only generation 0, the `state` bucket.
 */
export interface StateGenerations {
  readonly current: number;
  readonly oldest: number;
  readonly currentFrom: number;
  readonly copied: boolean;
  readonly keptFrom: number;
}

const ONLY_GENERATION_0: StateGenerations = { current: 0, oldest: 0, currentFrom: 0, copied: true, keptFrom: 0 };

/** Generation 0 is the `state` bucket (what every database had before generations); later ones are numbered. */
function stateKey(generation: number, key: Uint8Array): Uint8Array {
  return generation === 0
    ? bucketKey(Bucket.state, key)
    : bucketKey(Bucket.stateGeneration, uintBytes(generation, 4), key);
}

/** A height whose history `dropHistory` deletes: its block hash and its transaction index keys (in block order). */
export interface HistoryDrop {
  readonly height: number;
  readonly blockHash: Hex;
  readonly transactionKeys: readonly Hex[];
}

/**
 * What state sync installs in an empty store (src/node/state-sync.ts), every part verified by the caller: the newest
 * heights up to the new head (contiguous, each with its certificate) and any older kept heights, the set deciding
 * head + 1 with its proposer priorities, and every set change from height 1 with the members of each set.
 */
export interface SnapshotInstall {
  readonly blocks: readonly {
    readonly height: number;
    readonly blockHash: Hex;
    readonly block: Uint8Array;
    readonly certificate: Certificate;
  }[];
  readonly nextValidatorSet: ValidatorSet;
  /** Ascending by fromHeight, the first from height 1 (the genesis set); fromHeight at most head + 1. */
  readonly setChanges: readonly { readonly fromHeight: number; readonly set: ValidatorSet }[];
}

export interface RangeItem {
  readonly height: number;
  readonly block: Uint8Array;
  readonly certificate: Certificate;
}

type Db = Level<Uint8Array, Uint8Array>;
type BatchOp =
  | { readonly type: "put"; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: "del"; readonly key: Uint8Array };

interface LoadedState {
  readonly headHeight: number;
  readonly headHash: Hex | null;
  readonly nextSet: ValidatorSet;
  /** Id of the newest entry of the validatorSetIdFromHeight index (null before the first commit). */
  readonly lastIndexedSetId: Hex | null;
  readonly generations: StateGenerations;
  readonly historyKeptFrom: number;
}

/**
 * Newest committed heights whose block bytes and certificate are also kept in memory: every height, the RPC
 * (newHeads, certificate subscriptions), the work ledger and the next block's parent-certificate check read them again.
 */
const RECENT_HEIGHTS = 64;
/** Decoded validator sets by id (immutable; a few per epoch). */
const CACHED_SETS = 16;

const HEAD_KEY = Uint8Array.of(Bucket.head);
const NEXT_SET_KEY = Uint8Array.of(Bucket.nextValidatorSet);
const SAFETY_KEY = Uint8Array.of(Bucket.safety);

export class ChainStore {
  readonly path: string;
  private readonly db: Db;
  private readonly maxPendingWrites: number;
  private head: number;
  private headBlockHash: Hex | null;
  private nextSet: ValidatorSet;
  private lastIndexedSetId: Hex | null;
  private closed = false;
  private writeTail: Promise<void> = Promise.resolve();
  private pendingWrites = 0;
  private readonly recent = new Map<number, { block: Uint8Array; certificate: Certificate }>();
  private readonly sets = new Map<string, ValidatorSet>();
  private generations: StateGenerations;
  private historyFrom: number;

  private constructor(db: Db, path: string, state: LoadedState, maxPendingWrites: number) {
    this.db = db;
    this.path = path;
    this.maxPendingWrites = maxPendingWrites;
    this.head = state.headHeight;
    this.headBlockHash = state.headHash;
    this.nextSet = state.nextSet;
    this.lastIndexedSetId = state.lastIndexedSetId;
    this.generations = state.generations;
    this.historyFrom = state.historyKeptFrom;
  }

  /**
   * Opens (creating if missing) the database at `path`. The first open writes the schema version, the genesis hash and
   * the genesis set as the set of height 1. Later opens check both against `opts` ("genesis_mismatch") and the schema
   * version ("schema_version"), and load the head and the next validator set.
   */
  static async open(path: string, opts: ChainStoreOptions): Promise<ChainStore> {
    const maxPendingWrites = opts.maxPendingWrites ?? DEFAULT_MAX_PENDING_WRITES;
    if (!Number.isInteger(maxPendingWrites) || maxPendingWrites < 1) {
      throw new RangeError(`maxPendingWrites must be a positive integer, got ${maxPendingWrites}`);
    }
    if (!isHex(opts.genesisHash, 32)) throw new RangeError(`genesisHash ${opts.genesisHash} is not 32-byte 0x-hex`);
    const db: Db = new Level<Uint8Array, Uint8Array>(path, { keyEncoding: "view", valueEncoding: "view" });
    try {
      await db.open();
    } catch (cause) {
      throw new StorageError(
        "open_failed",
        `cannot open the database at ${path}: ${errorMessage(cause)} (is another node process using it?)`,
        { cause },
      );
    }
    try {
      const state = await loadOrInit(db, path, opts);
      return new ChainStore(db, path, state, maxPendingWrites);
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
  }

  /** 0 before the first commit. */
  get headHeight(): number {
    return this.head;
  }

  headHash(): Hex | null {
    return this.headBlockHash;
  }

  /**
   * Commits height head + 1 in one synced batch: block by height, hash index, certificate, head pointer, the next
   * validator set, the signing set's index entry when the set changed, and the next set's membership the first time
   * its id is seen. Resolves once durable. Throws StorageError "not_next" for any other height (checked when the
   * commit's turn in the write lane comes, so back-to-back commits of h and h + 1 without awaiting both succeed).
   */
  commit(rec: CommitRecord): Promise<void> {
    return this.enqueueWrite(async () => {
      if (rec.height !== this.head + 1) {
        throw new StorageError(
          "not_next",
          `commit of height ${rec.height} refused: the head is ${this.head}, only ${this.head + 1} can be committed`,
        );
      }
      const signingSet = this.nextSet;
      checkCommitRecord(rec, signingSet);
      const hash = rec.blockHash.toLowerCase() as Hex;
      const hashKey = bucketKey(Bucket.heightByHash, fromHex(hash));
      const existing = await this.read(hashKey);
      if (existing !== undefined) {
        const other = decodeStored((b) => decode(storedHeightSchema, b), hashKey, existing);
        throw new StorageError("invalid_record", `block hash ${hash} is already committed at height ${other}`);
      }
      const ops: BatchOp[] = [
        put(
          heightKey(Bucket.blockByHeight, rec.height),
          encodeOrInvalid("block", () => encode(storedBlockSchema, rec.block, "block")),
        ),
        put(hashKey, encode(storedHeightSchema, rec.height)),
        put(
          heightKey(Bucket.certificateByHeight, rec.height),
          encodeOrInvalid("certificate", () => encodeCertificate(rec.certificate)),
        ),
        put(HEAD_KEY, encode(headSchema, { height: rec.height, blockHash: hash })),
        put(
          NEXT_SET_KEY,
          encodeOrInvalid("nextValidatorSet", () =>
            encode(nextValidatorSetSchema, { forHeight: rec.height + 1, set: rec.nextValidatorSet }, "nextSet"),
          ),
        ),
      ];
      const parentCert = rec.parentCertificate;
      if (parentCert !== undefined) {
        if (parentCert.height !== rec.height - 1 || parentCert.blockHash.toLowerCase() !== this.headBlockHash) {
          throw new StorageError(
            "invalid_record",
            `commit of height ${rec.height} refused: its parent certificate is for ${parentCert.height} ` +
              `${parentCert.blockHash}, not the head`,
          );
        }
        ops.push(
          put(
            heightKey(Bucket.certificateByHeight, parentCert.height),
            encodeOrInvalid("parent certificate", () => encodeCertificate(parentCert)),
          ),
        );
      }
      const generation = this.generations.current;
      for (const [key, value] of rec.stateWrites ?? []) ops.push(put(stateKey(generation, fromHex(key)), value));
      if (rec.receipts !== undefined) ops.push(put(heightKey(Bucket.receiptsByHeight, rec.height), rec.receipts));
      for (const [index, txHash] of (rec.transactionHashes ?? []).entries()) {
        ops.push(
          put(
            bucketKey(Bucket.transactionByHash, fromHex(txHash)),
            concatBytes(uintBytes(rec.height, 8), uintBytes(index, 4)),
          ),
        );
      }
      if (signingSet.id !== this.lastIndexedSetId) {
        ops.push(put(heightKey(Bucket.validatorSetIdFromHeight, rec.height), encode(setIdSchema, signingSet.id)));
      }
      const nextId = rec.nextValidatorSet.id.toLowerCase() as Hex;
      if (nextId !== signingSet.id) {
        const idKey = bucketKey(Bucket.validatorSetById, fromHex(nextId));
        if (!(await this.has(idKey))) ops.push(put(idKey, encodeMembership(rec.nextValidatorSet)));
      }
      // The commit is one atomic batch: "mid-write" (testing only) crashes right before it.
      failpoint("mid-write", rec.height);
      await this.io("commit batch", () => this.db.batch(ops, { sync: true }));
      this.head = rec.height;
      this.headBlockHash = hash;
      this.nextSet = rec.nextValidatorSet;
      this.lastIndexedSetId = signingSet.id;
      const parent = parentCert === undefined ? undefined : this.recent.get(parentCert.height);
      if (parentCert !== undefined && parent !== undefined) {
        this.recent.set(parentCert.height, { block: parent.block, certificate: parentCert });
      }
      this.recent.set(rec.height, { block: rec.block, certificate: rec.certificate });
      if (this.recent.size > RECENT_HEIGHTS) this.recent.delete(rec.height - RECENT_HEIGHTS);
    });
  }

  /**
   * Makes an empty store (head 0) start at the newest height of `s.blocks`, in one synced batch: the blocks, their
   * certificates and hash index entries, the head, the next set, the set index and every set's members. The state of
   * the new head must already be written (`copyStateNodes`; this batch's sync makes it durable). History is whole from
   * head + 1 on (the installed blocks have no receipts or transaction index entries) and state from the head on.
   * StorageError "invalid_record" when the store is not empty or the parts do not fit together.
   */
  installSnapshot(s: SnapshotInstall): Promise<void> {
    return this.enqueueWrite(async () => {
      const refuse = (why: string) => new StorageError("invalid_record", `snapshot refused: ${why}`);
      if (this.head !== 0) throw refuse(`the store already has height ${this.head}`);
      const blocks = [...s.blocks].sort((a, b) => a.height - b.height);
      const top = blocks[blocks.length - 1];
      if (top === undefined) throw refuse("no block");
      const head = top.height;
      const changes = s.setChanges;
      if (changes[0]?.fromHeight !== 1 || changes[0].set.id !== this.nextSet.id) {
        throw refuse("the set changes do not start with the genesis set at height 1");
      }
      for (const [i, c] of changes.entries()) {
        if (i > 0 && c.fromHeight <= (changes[i - 1] as { fromHeight: number }).fromHeight) {
          throw refuse("the set changes are not in height order");
        }
        if (c.fromHeight > head + 1) throw refuse(`a set change at ${c.fromHeight}, above head + 1`);
      }
      /** The set deciding `height`: the last change at or below it (binary search; changes ascend). */
      const setAt = (height: number): ValidatorSet | undefined => {
        let lo = 0;
        let hi = changes.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if ((changes[mid] as { fromHeight: number }).fromHeight <= height) lo = mid;
          else hi = mid - 1;
        }
        const found = changes[lo];
        return found !== undefined && found.fromHeight <= height ? found.set : undefined;
      };
      if (setAt(head + 1)?.id !== s.nextValidatorSet.id) throw refuse("the next set is not the last change's");
      const ops: BatchOp[] = [];
      for (const b of blocks) {
        const set = setAt(b.height);
        if (set === undefined) throw refuse(`no set for height ${b.height}`);
        checkCommitRecord({ ...b, nextValidatorSet: s.nextValidatorSet }, set);
        ops.push(
          put(
            heightKey(Bucket.blockByHeight, b.height),
            encodeOrInvalid("block", () => encode(storedBlockSchema, b.block, "block")),
          ),
          put(bucketKey(Bucket.heightByHash, fromHex(b.blockHash)), encode(storedHeightSchema, b.height)),
          put(
            heightKey(Bucket.certificateByHeight, b.height),
            encodeOrInvalid("certificate", () => encodeCertificate(b.certificate)),
          ),
        );
      }
      const hash = top.blockHash.toLowerCase() as Hex;
      ops.push(
        put(HEAD_KEY, encode(headSchema, { height: head, blockHash: hash })),
        put(
          NEXT_SET_KEY,
          encodeOrInvalid("nextValidatorSet", () =>
            encode(nextValidatorSetSchema, { forHeight: head + 1, set: s.nextValidatorSet }, "nextSet"),
          ),
        ),
      );
      let lastIndexed: Hex | null = null;
      for (const c of changes) {
        ops.push(put(bucketKey(Bucket.validatorSetById, fromHex(c.set.id)), encodeMembership(c.set)));
        // The index names the sets of committed heights; head + 1's is the next set.
        if (c.fromHeight <= head) {
          ops.push(put(heightKey(Bucket.validatorSetIdFromHeight, c.fromHeight), encode(setIdSchema, c.set.id)));
          lastIndexed = c.set.id.toLowerCase() as Hex;
        }
      }
      const generations: StateGenerations = {
        current: this.generations.current,
        oldest: this.generations.current,
        currentFrom: head,
        copied: true,
        keptFrom: head,
      };
      ops.push(
        put(
          metaKey(MetaField.stateGenerations),
          encode(stateGenerationsSchema, { ...generations, copied: 1 }, "stateGenerations"),
        ),
        put(metaKey(MetaField.history), encode(historySchema, { keptFrom: head + 1 })),
      );
      await this.io("snapshot install", () => this.db.batch(ops, { sync: true }));
      this.head = head;
      this.headBlockHash = hash;
      this.nextSet = s.nextValidatorSet;
      this.lastIndexedSetId = lastIndexed;
      this.generations = generations;
      this.historyFrom = head + 1;
      for (const b of blocks.slice(-RECENT_HEIGHTS)) {
        if (b.height > head - RECENT_HEIGHTS) this.recent.set(b.height, { block: b.block, certificate: b.certificate });
      }
    });
  }

  /** Read access to committed state nodes, for the execution core. */
  stateReader(): { get(key: Uint8Array): Promise<Uint8Array | undefined> } {
    return { get: async (key) => (await this.stateNode(key))?.value };
  }

  /** A state node and the generation it was found in (the newest that has it), or undefined. */
  async stateNode(key: Uint8Array): Promise<{ value: Uint8Array; generation: number } | undefined> {
    const { current, oldest } = this.generations;
    for (let generation = current; generation >= oldest; generation--) {
      const value = await this.read(stateKey(generation, key));
      if (value !== undefined) return { value, generation };
    }
    return undefined;
  }

  /** Writes state nodes outside a commit (the genesis state), synced. Content-addressed, so rewriting is harmless. */
  putState(writes: ReadonlyMap<string, Uint8Array>): Promise<void> {
    return this.enqueueWrite(() => {
      const generation = this.generations.current;
      const ops = [...writes].map(([key, value]) => put(stateKey(generation, fromHex(key)), value));
      return this.io("state write", () => this.db.batch(ops, { sync: true }));
    });
  }

  get stateGenerations(): StateGenerations {
    return this.generations;
  }

  /**
   * Starts the next state generation at the current head: commits write into it from now on. Only when the last one
   * has its head's state copied and no older generation is left (StorageError "invalid_record" otherwise). Synced.
   */
  beginStateGeneration(): Promise<StateGenerations> {
    return this.enqueueWrite(async () => {
      const g = this.generations;
      if (!g.copied || g.oldest !== g.current) {
        throw new StorageError("invalid_record", `state generation ${g.current} is not the only one, or not copied`);
      }
      return this.setGenerations({ ...g, current: g.current + 1, currentFrom: this.head, copied: false });
    });
  }

  /** Writes nodes of the current generation's starting state into it (not synced: markStateCopied syncs them). */
  copyStateNodes(nodes: readonly (readonly [Uint8Array, Uint8Array])[]): Promise<void> {
    return this.enqueueWrite(() => {
      const generation = this.generations.current;
      const ops = nodes.map(([key, value]) => put(stateKey(generation, key), value));
      return this.io("state copy", () => this.db.batch(ops));
    });
  }

  /** Every node of the state at `currentFrom` is in the current generation (synced: the copies before it too). */
  markStateCopied(): Promise<StateGenerations> {
    return this.enqueueWrite(() => this.setGenerations({ ...this.generations, copied: true }));
  }

  /**
   * Drops every generation older than the current one (which must be copied): heights below `currentFrom` lose their
   * state. The record goes first (synced, in the write lane), then the nodes are cleared outside the lane (commits
   * write only the current generation, and a long clear must not hold them up); a crash in between leaves nodes
   * that dropStaleState clears.
   */
  async dropOldStateGenerations(): Promise<StateGenerations> {
    const next = await this.enqueueWrite(async () => {
      const g = this.generations;
      if (!g.copied) throw new StorageError("invalid_record", `state generation ${g.current} is not copied yet`);
      return this.setGenerations({ ...g, oldest: g.current, keptFrom: g.currentFrom });
    });
    await this.clearGenerationsBelow(next.oldest);
    return next;
  }

  /** Clears the nodes of generations below the oldest one, left by an interrupted drop (none: a quick no-op). */
  dropStaleState(): Promise<void> {
    return this.clearGenerationsBelow(this.generations.oldest);
  }

  private async clearGenerationsBelow(generation: number): Promise<void> {
    if (generation === 0) return;
    this.assertOpen();
    await this.io("state drop", async () => {
      await this.db.clear({ gte: Uint8Array.of(Bucket.state), lt: bucketEnd(Bucket.state) });
      await this.db.clear({
        gte: bucketKey(Bucket.stateGeneration, uintBytes(1, 4)),
        lt: bucketKey(Bucket.stateGeneration, uintBytes(generation, 4)),
      });
    });
  }

  private async setGenerations(next: StateGenerations): Promise<StateGenerations> {
    const value = encode(stateGenerationsSchema, { ...next, copied: next.copied ? 1 : 0 }, "stateGenerations");
    await this.io("state generations write", () =>
      this.db.batch([put(metaKey(MetaField.stateGenerations), value)], { sync: true }),
    );
    this.generations = next;
    return next;
  }

  /**
   * The lowest height whose history (block, certificate, receipts, transaction index entries) is whole; below it only
   * the heights that `dropHistory` was not given are still there (docs/storage.md "History pruning"). 1: nothing pruned.
   */
  get historyKeptFrom(): number {
    return this.historyFrom;
  }

  /**
   * Deletes the history of the listed heights (block, certificate, receipts, hash index entry, transaction index
   * entries) and moves `historyKeptFrom` to `keptFrom`, in one batch: a crash leaves either both or neither. Every
   * listed height must lie in [historyKeptFrom, keptFrom), and keptFrom at most the head; heights of that range that
   * are not listed are kept whole (the caller keeps some for light clients). Through the write lane, after the commits
   * queued before it.
   */
  dropHistory(drops: readonly HistoryDrop[], keptFrom: number): Promise<void> {
    return this.enqueueWrite(async () => {
      const from = this.historyFrom;
      if (!Number.isSafeInteger(keptFrom) || keptFrom <= from || keptFrom > this.head) {
        throw new RangeError(`history can be kept from ${from + 1} to the head ${this.head}, not from ${keptFrom}`);
      }
      const ops: BatchOp[] = [];
      for (const d of drops) {
        if (!Number.isSafeInteger(d.height) || d.height < from || d.height >= keptFrom) {
          throw new RangeError(`height ${d.height} is outside the dropped range [${from}, ${keptFrom})`);
        }
        if (!isHex(d.blockHash, 32)) throw new RangeError(`block hash ${d.blockHash} is not 32-byte hex`);
        ops.push(
          del(heightKey(Bucket.blockByHeight, d.height)),
          del(heightKey(Bucket.certificateByHeight, d.height)),
          del(heightKey(Bucket.receiptsByHeight, d.height)),
          del(bucketKey(Bucket.heightByHash, fromHex(d.blockHash))),
        );
        for (const key of d.transactionKeys) {
          if (!isHex(key, 32)) throw new RangeError(`transaction key ${key} is not 32-byte hex`);
          ops.push(del(bucketKey(Bucket.transactionByHash, fromHex(key))));
        }
      }
      ops.push(put(metaKey(MetaField.history), encode(historySchema, { keptFrom })));
      await this.io("history drop", () => this.db.batch(ops));
      this.historyFrom = keptFrom;
      for (const d of drops) this.recent.delete(d.height);
    });
  }

  async getReceipts(height: number): Promise<Uint8Array | undefined> {
    if (!isStoredHeight(height)) return undefined;
    return this.read(heightKey(Bucket.receiptsByHeight, height));
  }

  async getTransactionLocation(hash: Hex): Promise<TransactionLocation | undefined> {
    if (!isHex(hash, 32)) return undefined;
    const value = await this.read(bucketKey(Bucket.transactionByHash, fromHex(hash)));
    if (value === undefined || value.length !== 12) return undefined;
    return { height: Number(readUint(value, 0, 8)), index: Number(readUint(value, 8, 4)) };
  }

  async getBlock(height: number): Promise<Uint8Array | undefined> {
    if (!isStoredHeight(height)) return undefined;
    this.assertOpen();
    const recent = this.recent.get(height);
    if (recent !== undefined) return recent.block;
    const key = heightKey(Bucket.blockByHeight, height);
    const value = await this.read(key);
    return value === undefined ? undefined : decodeStored((b) => decode(storedBlockSchema, b), key, value);
  }

  async getBlockByHash(hash: Hex): Promise<{ height: number; block: Uint8Array } | undefined> {
    if (!isHex(hash, 32)) return undefined;
    const hashKey = bucketKey(Bucket.heightByHash, fromHex(hash));
    const value = await this.read(hashKey);
    if (value === undefined) return undefined;
    const height = decodeStored((b) => decode(storedHeightSchema, b), hashKey, value);
    const block = await this.getBlock(height);
    if (block === undefined) {
      // The history of that height was deleted between the two reads.
      if (height < this.historyFrom) return undefined;
      throw corruptError(hashKey, `indexes height ${height}, which has no block`);
    }
    return { height, block };
  }

  async getCertificate(height: number): Promise<Certificate | undefined> {
    if (!isStoredHeight(height)) return undefined;
    this.assertOpen();
    const recent = this.recent.get(height);
    if (recent !== undefined) return recent.certificate;
    const key = heightKey(Bucket.certificateByHeight, height);
    const value = await this.read(key);
    return value === undefined ? undefined : decodeStored(decodeCertificate, key, value);
  }

  /**
   * Blocks with their certificates from `fromHeight` on, contiguous, for serving sync: stops at the head, after
   * `maxCount` items (at most MAX_RANGE_COUNT) or before the encoded block + certificate bytes would exceed `maxBytes`.
   * The first item is returned even when it alone exceeds `maxBytes`, so a large block cannot stall a syncing peer.
   * Below historyKeptFrom only the kept heights are there: the range stops at the first missing one (none: []).
   */
  async getRange(fromHeight: number, maxCount: number, maxBytes: number): Promise<RangeItem[]> {
    this.assertOpen();
    if (!Number.isSafeInteger(fromHeight) || fromHeight < 1) {
      throw new RangeError(`fromHeight must be a positive integer, got ${fromHeight}`);
    }
    if (!Number.isInteger(maxCount) || maxCount < 1) throw new RangeError(`maxCount must be >= 1, got ${maxCount}`);
    if (!Number.isFinite(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes must be >= 0, got ${maxBytes}`);
    const last = Math.min(this.head, fromHeight + Math.min(maxCount, MAX_RANGE_COUNT) - 1);
    if (fromHeight > last) return [];
    // Below historyKeptFrom the heights are no longer contiguous: what is served from there is the run of kept heights
    // that starts at fromHeight (block 1 or one before a set change alone, or the blocks a state sync installed).
    const below = fromHeight < this.historyFrom;

    // Blocks first (they dominate the size), then the certificates of those blocks in one getMany.
    const blocks: { key: Uint8Array; bytes: Uint8Array }[] = [];
    let blockBytes = 0;
    await this.io("range read", async () => {
      const iterator = this.db.iterator({
        gte: heightKey(Bucket.blockByHeight, fromHeight),
        lte: heightKey(Bucket.blockByHeight, last),
      });
      for await (const [key, value] of iterator) {
        if (below && heightOfKey(key) !== fromHeight + blocks.length) break;
        if (blocks.length > 0 && blockBytes + value.length > maxBytes) break;
        blocks.push({ key, bytes: plain(value) });
        blockBytes += value.length;
      }
    });
    const certKeys = blocks.map((b) => heightKey(Bucket.certificateByHeight, heightOfKey(b.key)));
    const certs = (await this.io("range read", () => this.db.getMany(certKeys))) as (Uint8Array | undefined)[];

    const out: RangeItem[] = [];
    let usedBytes = 0;
    for (const [i, b] of blocks.entries()) {
      const height = heightOfKey(b.key);
      if (height !== fromHeight + i) throw corruptError(b.key, `expected the block of height ${fromHeight + i}`);
      const certKey = certKeys[i] as Uint8Array;
      const stored = certs[i];
      const certBytes = stored === undefined ? undefined : plain(stored);
      if (certBytes === undefined) throw corruptError(certKey, `height ${height} has a block but no certificate`);
      const size = b.bytes.length + certBytes.length;
      if (out.length > 0 && usedBytes + size > maxBytes) break;
      usedBytes += size;
      out.push({
        height,
        block: decodeStored((v) => decode(storedBlockSchema, v), b.key, b.bytes),
        certificate: decodeStored(decodeCertificate, certKey, certBytes),
      });
    }
    if (out.length === 0 && last >= fromHeight && !below) {
      throw corruptError(heightKey(Bucket.blockByHeight, fromHeight), `height ${fromHeight} <= head has no block`);
    }
    return out;
  }

  /** The set deciding height head + 1, with its proposer priorities. Any other height throws StorageError "not_next". */
  validatorSetFor(height: number): ValidatorSet {
    this.assertOpen();
    if (height !== this.head + 1) {
      throw new StorageError(
        "not_next",
        `validatorSetFor(${height}): only the set of height ${this.head + 1} (head + 1) is kept; ` +
          "use validatorSetIdAt + getValidatorSet for older heights",
      );
    }
    return this.nextSet;
  }

  /**
   * Membership of the set with this id (for checking certificates of old heights). Priorities are not stored: they are
   * 0n and proposerIndex is 0. Undefined for unknown ids.
   */
  async getValidatorSet(id: Hex): Promise<ValidatorSet | undefined> {
    if (!isHex(id, 32)) return undefined;
    this.assertOpen();
    const cached = this.sets.get(id.toLowerCase());
    if (cached !== undefined) return cached;
    const key = bucketKey(Bucket.validatorSetById, fromHex(id));
    const value = await this.read(key);
    if (value === undefined) return undefined;
    const set = decodeStored((b) => decodeMembership(b, id), key, value);
    if (this.sets.size >= CACHED_SETS) this.sets.clear();
    this.sets.set(id.toLowerCase(), set);
    return set;
  }

  /** Id of the set that signed (or, for head + 1, decides) `height`; undefined above head + 1 and below 1. */
  async validatorSetIdAt(height: number): Promise<Hex | undefined> {
    this.assertOpen();
    if (!isStoredHeight(height) || height > this.head + 1) return undefined;
    if (height === this.head + 1) return this.nextSet.id;
    // The head's set without an index read: checking each proposal's last certificate asks for it.
    if (height === this.head && this.lastIndexedSetId !== null) return this.lastIndexedSetId;
    const found = await this.io("index read", async () => {
      const iterator = this.db.iterator({
        gte: heightKey(Bucket.validatorSetIdFromHeight, 0),
        lte: heightKey(Bucket.validatorSetIdFromHeight, height),
        reverse: true,
        limit: 1,
      });
      for await (const [key, value] of iterator) return [key, plain(value)] as const;
      return undefined;
    });
    if (found === undefined) {
      throw corruptError(
        heightKey(Bucket.validatorSetIdFromHeight, height),
        `no set index entry at or below ${height}`,
      );
    }
    const [key, value] = found;
    return decodeStored((b) => decode(setIdSchema, b), key, value);
  }

  /**
   * The heights where the deciding set changed, ascending, from the set index (one entry per change, so this is short):
   * `{ fromHeight, id }` means set `id` decides heights from `fromHeight` until the next entry. The last entry may be the
   * set of head + 1 when it differs from the head's.
   */
  async validatorSetChanges(): Promise<{ fromHeight: number; id: Hex }[]> {
    this.assertOpen();
    const out = await this.io("index read", async () => {
      const changes: { fromHeight: number; id: Hex }[] = [];
      const iterator = this.db.iterator({
        gte: heightKey(Bucket.validatorSetIdFromHeight, 0),
        lte: heightKey(Bucket.validatorSetIdFromHeight, Number.MAX_SAFE_INTEGER),
      });
      for await (const [key, value] of iterator) {
        const id = decodeStored((b) => decode(setIdSchema, b), key, plain(value));
        // The index may repeat an id (one entry per commit that named it); keep the heights where it changes.
        if (changes[changes.length - 1]?.id !== id) changes.push({ fromHeight: heightOfKey(key), id });
      }
      return changes;
    });
    if (out.length === 0) out.push({ fromHeight: 1, id: this.nextSet.id });
    if (out[out.length - 1]?.id !== this.nextSet.id) out.push({ fromHeight: this.head + 1, id: this.nextSet.id });
    return out;
  }

  /** Overwrites the safety record; resolves only once it is durable (sync). Await it before any vote leaves. */
  saveSafety(rec: SafetyRecord): Promise<void> {
    const value = encodeOrInvalid("safety record", () => encodeSafetyRecord(rec));
    return this.enqueueWrite(() => this.io("safety write", () => this.db.put(SAFETY_KEY, value, { sync: true })));
  }

  async loadSafety(): Promise<SafetyRecord | null> {
    const value = await this.read(SAFETY_KEY);
    return value === undefined ? null : decodeStored(decodeSafetyRecord, SAFETY_KEY, value);
  }

  /** Stores `e` keyed by (height, round, kind, validator index); false when evidence with that key is already stored. */
  saveEvidence(e: Evidence): Promise<boolean> {
    const value = encodeOrInvalid("evidence", () => encodeEvidence(e));
    const key = bucketKey(Bucket.evidence, evidenceKeySuffix(e));
    return this.enqueueWrite(async () => {
      if (await this.has(key)) return false;
      await this.io("evidence write", () => this.db.put(key, value, { sync: true }));
      return true;
    });
  }

  /** Evidence in key order (height, round, kind, validator index) from `fromHeight`, at most `limit` (<= 4096). */
  async listEvidence(fromHeight: number, limit: number): Promise<Evidence[]> {
    this.assertOpen();
    if (!Number.isSafeInteger(fromHeight) || fromHeight < 0) {
      throw new RangeError(`fromHeight must be a non-negative integer, got ${fromHeight}`);
    }
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`limit must be >= 0, got ${limit}`);
    if (limit === 0) return [];
    const entries: [Uint8Array, Uint8Array][] = [];
    await this.io("evidence read", async () => {
      const iterator = this.db.iterator({
        gte: heightKey(Bucket.evidence, fromHeight),
        lt: bucketEnd(Bucket.evidence),
        limit: Math.min(limit, MAX_EVIDENCE_LIST),
      });
      for await (const [key, value] of iterator) entries.push([key, plain(value)]);
    });
    return entries.map(([key, value]) => decodeStored(decodeEvidence, key, value));
  }

  /** Waits for queued writes, then closes level. Idempotent; every later call throws StorageError "closed". */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeTail;
    await this.db.close();
  }

  // -------------------------------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new StorageError("closed", `the chain store at ${this.path} is closed`);
  }

  private enqueueWrite<T>(op: () => Promise<T>): Promise<T> {
    try {
      this.assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.pendingWrites >= this.maxPendingWrites) {
      return Promise.reject(
        new StorageError("overloaded", `${this.pendingWrites} writes are queued (limit ${this.maxPendingWrites})`),
      );
    }
    this.pendingWrites++;
    const run = this.writeTail.then(op);
    this.writeTail = run.then(
      () => {
        this.pendingWrites--;
      },
      () => {
        this.pendingWrites--;
      },
    );
    return run;
  }

  private async read(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.assertOpen();
    // level's typings claim get() never yields undefined; level 10 returns undefined for a missing key.
    const value = (await this.io("read", () => this.db.get(key))) as Uint8Array | undefined;
    return value === undefined ? undefined : plain(value);
  }

  private has(key: Uint8Array): Promise<boolean> {
    return this.io("read", () => this.db.has(key));
  }

  private async io<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      if (cause instanceof StorageError) throw cause;
      if (this.closed) throw new StorageError("closed", `${what} failed: the chain store is closed`, { cause });
      throw new StorageError("io", `${what} failed at ${this.path}: ${errorMessage(cause)}`, { cause });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------

async function loadOrInit(db: Db, path: string, opts: ChainStoreOptions): Promise<LoadedState> {
  const get = async (key: Uint8Array): Promise<Uint8Array | undefined> => {
    try {
      const value = (await db.get(key)) as Uint8Array | undefined;
      return value === undefined ? undefined : plain(value);
    } catch (cause) {
      throw new StorageError("io", `reading ${toHex(key)} at ${path} failed: ${errorMessage(cause)}`, { cause });
    }
  };
  const genesisHash = opts.genesisHash.toLowerCase() as Hex;
  const genesisSet = opts.genesisValidatorSet;
  const versionKey = metaKey(MetaField.schemaVersion);
  const versionBytes = await get(versionKey);

  if (versionBytes === undefined) {
    for await (const key of db.keys({ limit: 1 })) {
      throw corruptError(key, "the database has data but no schema version: it was not written by this node");
    }
    const ops: BatchOp[] = [
      put(versionKey, encode(schemaVersionSchema, SCHEMA_VERSION)),
      put(metaKey(MetaField.genesisHash), encode(genesisHashSchema, genesisHash)),
      put(
        NEXT_SET_KEY,
        encodeOrInvalid("genesisValidatorSet", () =>
          encode(nextValidatorSetSchema, { forHeight: 1, set: genesisSet }, "nextSet"),
        ),
      ),
      put(bucketKey(Bucket.validatorSetById, fromHex(genesisSet.id)), encodeMembership(genesisSet)),
    ];
    try {
      await db.batch(ops, { sync: true });
    } catch (cause) {
      throw new StorageError("io", `initialising the database at ${path} failed: ${errorMessage(cause)}`, { cause });
    }
    return {
      headHeight: 0,
      headHash: null,
      nextSet: genesisSet,
      lastIndexedSetId: null,
      generations: ONLY_GENERATION_0,
      historyKeptFrom: 1,
    };
  }

  const version = decodeStored((b) => decode(schemaVersionSchema, b), versionKey, versionBytes);
  if (version !== SCHEMA_VERSION) {
    throw new StorageError(
      "schema_version",
      `the database at ${path} has schema version ${version}; this node reads version ${SCHEMA_VERSION} (start from an empty data dir and sync)`,
    );
  }
  const genesisKey = metaKey(MetaField.genesisHash);
  const storedGenesisBytes = await get(genesisKey);
  if (storedGenesisBytes === undefined) throw corruptError(genesisKey, "the genesis hash is missing");
  const storedGenesis = decodeStored((b) => decode(genesisHashSchema, b), genesisKey, storedGenesisBytes);
  if (storedGenesis !== genesisHash) {
    throw new StorageError(
      "genesis_mismatch",
      `the database at ${path} belongs to genesis ${storedGenesis}, but the node was started with genesis ` +
        `${genesisHash}: point it at another data directory or fix the genesis file`,
    );
  }

  const headBytes = await get(HEAD_KEY);
  const head = headBytes === undefined ? null : decodeStored((b) => decode(headSchema, b), HEAD_KEY, headBytes);
  const headHeight = head?.height ?? 0;
  const nextBytes = await get(NEXT_SET_KEY);
  if (nextBytes === undefined) throw corruptError(NEXT_SET_KEY, "the validator set of the next height is missing");
  const next = decodeStored((b) => decode(nextValidatorSetSchema, b), NEXT_SET_KEY, nextBytes);
  if (next.forHeight !== headHeight + 1) {
    throw corruptError(NEXT_SET_KEY, `the stored set is for height ${next.forHeight}, the head is ${headHeight}`);
  }

  let firstSetId: Hex = next.set.id;
  let lastIndexedSetId: Hex | null = null;
  if (head !== null) {
    const first = await firstEntry(db, Bucket.validatorSetIdFromHeight, false);
    const last = await firstEntry(db, Bucket.validatorSetIdFromHeight, true);
    if (first === undefined || last === undefined || heightOfKey(first[0]) !== 1) {
      throw corruptError(Uint8Array.of(Bucket.validatorSetIdFromHeight), "the set index does not start at height 1");
    }
    firstSetId = decodeStored((b) => decode(setIdSchema, b), first[0], first[1]);
    lastIndexedSetId = decodeStored((b) => decode(setIdSchema, b), last[0], last[1]);
  }
  if (firstSetId !== genesisSet.id.toLowerCase()) {
    throw new StorageError(
      "genesis_mismatch",
      `the database at ${path} has genesis validator set ${firstSetId}, but the node was started with ` +
        `${genesisSet.id}`,
    );
  }
  const generationsKey = metaKey(MetaField.stateGenerations);
  const generationsBytes = await get(generationsKey);
  let generations = ONLY_GENERATION_0;
  if (generationsBytes !== undefined) {
    const g = decodeStored((b) => decode(stateGenerationsSchema, b), generationsKey, generationsBytes);
    if (g.currentFrom > headHeight) {
      throw corruptError(generationsKey, `state generation ${g.current} began at ${g.currentFrom}, above the head`);
    }
    generations = { ...g, copied: g.copied === 1 };
  }
  const historyKey = metaKey(MetaField.history);
  const historyBytes = await get(historyKey);
  let historyKeptFrom = 1;
  if (historyBytes !== undefined) {
    historyKeptFrom = decodeStored((b) => decode(historySchema, b), historyKey, historyBytes).keptFrom;
    if (historyKeptFrom > headHeight + 1) {
      throw corruptError(historyKey, `history is kept from height ${historyKeptFrom}, above the head ${headHeight}`);
    }
  }
  return {
    headHeight,
    headHash: head?.blockHash ?? null,
    nextSet: next.set,
    lastIndexedSetId,
    generations,
    historyKeptFrom,
  };
}

async function firstEntry(
  db: Db,
  bucket: (typeof Bucket)[keyof typeof Bucket],
  reverse: boolean,
): Promise<[Uint8Array, Uint8Array] | undefined> {
  for await (const [key, value] of db.iterator({
    gte: Uint8Array.of(bucket),
    lt: bucketEnd(bucket),
    reverse,
    limit: 1,
  })) {
    return [key, plain(value)];
  }
  return undefined;
}

function checkCommitRecord(rec: CommitRecord, signingSet: ValidatorSet): void {
  const cert = rec.certificate;
  const problems: string[] = [];
  if (!isHex(rec.blockHash, 32)) problems.push(`blockHash ${String(rec.blockHash)} is not 32-byte hex`);
  if (!(rec.block instanceof Uint8Array)) problems.push("block is not a Uint8Array");
  else if (rec.block.length > MAX_STORED_BLOCK_BYTES) {
    problems.push(`block of ${rec.block.length} bytes exceeds ${MAX_STORED_BLOCK_BYTES}`);
  }
  if (cert.height !== rec.height) problems.push(`certificate is for height ${cert.height}`);
  if (String(cert.blockHash).toLowerCase() !== String(rec.blockHash).toLowerCase()) {
    problems.push(`certificate is for block ${cert.blockHash}, not ${rec.blockHash}`);
  }
  if (String(cert.validatorSetId).toLowerCase() !== signingSet.id.toLowerCase()) {
    problems.push(`certificate names set ${cert.validatorSetId}, height ${rec.height} is decided by ${signingSet.id}`);
  }
  if (problems.length > 0) {
    throw new StorageError("invalid_record", `commit of height ${rec.height} refused: ${problems.join("; ")}`);
  }
}

function del(key: Uint8Array): BatchOp {
  return { type: "del", key };
}

function put(key: Uint8Array, value: Uint8Array): BatchOp {
  return { type: "put", key, value };
}

/** A value that does not fit its format is the caller's bug; name it as a refused record rather than a codec error. */
function encodeOrInvalid(what: string, encodeFn: () => Uint8Array): Uint8Array {
  try {
    return encodeFn();
  } catch (cause) {
    if (!(cause instanceof EncodeError)) throw cause;
    throw new StorageError("invalid_record", `${what} cannot be stored: ${cause.message}`, { cause });
  }
}

/**
 * level hands out Node Buffers, whose slice() is a view: decoding a plain Uint8Array view makes the codecs' slice()
 * copy, so no decoded value shares memory with level's buffers or is a Buffer.
 */
function plain(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isStoredHeight(height: number): boolean {
  return Number.isSafeInteger(height) && height >= 1;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
