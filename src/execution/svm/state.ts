// The SVM state of one root: a secure Merkle-Patricia trie over an overlay (../overlay.ts), with a block-level staging
// map so a block changes the trie once, at commit, as one batch (../trie-batch.ts).
//
// Key space (every trie key is keccak256 of the raw key below, so the kinds cannot collide: an account key is 32
// bytes, the others are longer domain-tagged strings):
//   pubkey (32 bytes)                                   -> svmAccountCodec (./account.ts)
//   "lumia-svm/signature/" || signature (64 bytes)      -> u64 slot that processed it (replay protection)
//   "lumia-svm/slot-signatures/" || slot u64            -> list of the 64-byte signatures processed in that slot
//   "lumia-svm/slot-index"                              -> list of u64 slots that have a signature list
import { createMerkleProof, MerklePatriciaTrie } from "@ethereumjs/mpt";
import { ValueEncoding } from "@ethereumjs/util";
import { concatBytes, fromHex, type Hex, readUint, toHex, uintBytes, utf8 } from "../../../consensus/bytes.ts";
import { bytes, decode, encode, list, u64 } from "../../../consensus/codec.ts";
import { ExecutionError, withState } from "../errors.ts";
import { fastKeccak256 } from "../keccak.ts";
import type { KeyValueReader, NodeCache } from "../overlay.ts";
import { OverlayDB } from "../overlay.ts";
import { reachableWrites } from "../reachable.ts";
import { applyBatchToTrie } from "../trie-batch.ts";
import { decodeSvmAccount, encodeSvmAccount, SVM_VM, type SvmAccount } from "./account.ts";

const SIGNATURE_PREFIX = utf8("lumia-svm/signature/");
const SLOT_SIGNATURES_PREFIX = utf8("lumia-svm/slot-signatures/");
const SLOT_INDEX_KEY = utf8("lumia-svm/slot-index");

/** Signatures one slot may record (the block's transaction cap, see executor.ts). */
export const MAX_SIGNATURES_PER_SLOT = 20_000;
/** Slots with signature lists kept at once (the replay window, with room to spare). */
const MAX_INDEXED_SLOTS = 1024;

const slotSignaturesCodec = list(bytes(64), MAX_SIGNATURES_PER_SLOT);
const slotIndexCodec = list(u64, MAX_INDEXED_SLOTS);

export function accountKey(pubkey: Uint8Array): Uint8Array {
  if (pubkey.length !== 32) throw new RangeError(`pubkey of ${pubkey.length} bytes`);
  return pubkey;
}

export function signatureKey(signature: Uint8Array): Uint8Array {
  if (signature.length !== 64) throw new RangeError(`signature of ${signature.length} bytes`);
  return concatBytes(SIGNATURE_PREFIX, signature);
}

function slotSignaturesKey(slot: bigint): Uint8Array {
  return concatBytes(SLOT_SIGNATURES_PREFIX, uintBytes(slot, 8));
}

/** A trie proof of one key: the nodes from the root to the key's leaf (or to where it would be: absence). */
export interface SvmProof {
  readonly key: Hex;
  /** The stored value (an account encoding for account keys), null when absent. */
  readonly value: Hex | null;
  readonly proof: readonly Hex[];
}

export class SvmState {
  /** raw key hex -> encoded value, or null for a delete; what commit() applies. */
  private readonly staged = new Map<string, Uint8Array | null>();
  /**
   * Open checkpoints, innermost last: per key staged since, what `staged` held before (undefined: nothing). Cross-VM
   * calls journal the SVM state with the EVM's (../cross-vm.ts).
   */
  private readonly undo: Map<string, Uint8Array | null | undefined>[] = [];

  private constructor(
    private readonly trie: MerklePatriciaTrie,
    private readonly overlay: OverlayDB,
    readonly root: Hex,
  ) {}

  /** Opens `root` (the SVM's own root, not the global one). Throws ExecutionError "missing_state" when unknown. */
  static async open(
    store: KeyValueReader,
    cache: NodeCache,
    root: Hex,
    pending: ReadonlyMap<string, Uint8Array> | null = null,
  ): Promise<SvmState> {
    const overlay = new OverlayDB(store, cache, pending);
    const trie = new MerklePatriciaTrie({ db: overlay, valueEncoding: ValueEncoding.Bytes, useKeyHashing: true });
    const lower = root.toLowerCase() as Hex;
    if (lower !== SVM_VM.emptyRoot) {
      const found = await guard(lower, () => trie.checkRoot(fromHex(lower)));
      if (!found) throw new ExecutionError("missing_state", `SVM state root ${lower} is not in the database`, { root });
      trie.root(fromHex(lower));
    }
    return new SvmState(trie, overlay, lower);
  }

  private async read(key: Uint8Array): Promise<Uint8Array | null> {
    const hex = toHex(key);
    const staged = this.staged.get(hex);
    if (staged !== undefined) return staged;
    const value = await guard(this.root, () => this.trie.get(key));
    return value ?? null;
  }

  private stage(key: Uint8Array, value: Uint8Array | null): void {
    const hex = toHex(key);
    const top = this.undo[this.undo.length - 1];
    if (top !== undefined && !top.has(hex)) top.set(hex, this.staged.get(hex));
    this.staged.set(hex, value);
  }

  /** Opens a checkpoint: what is staged from now on can be reverted alone. */
  checkpoint(): void {
    this.undo.push(new Map());
  }

  /** Closes the innermost checkpoint, keeping its changes (an enclosing checkpoint can still revert them). */
  keepCheckpoint(): void {
    const top = this.undo.pop();
    if (top === undefined) throw new Error("SVM state: no checkpoint to keep");
    const parent = this.undo[this.undo.length - 1];
    if (parent === undefined) return;
    for (const [hex, before] of top) if (!parent.has(hex)) parent.set(hex, before);
  }

  /** Closes the innermost checkpoint, undoing what was staged since it opened. */
  revertCheckpoint(): void {
    const top = this.undo.pop();
    if (top === undefined) throw new Error("SVM state: no checkpoint to revert");
    for (const [hex, before] of top) {
      if (before === undefined) this.staged.delete(hex);
      else this.staged.set(hex, before);
    }
  }

  async getAccount(pubkey: Uint8Array): Promise<SvmAccount | null> {
    const value = await this.read(accountKey(pubkey));
    return value === null ? null : decodeSvmAccount(value);
  }

  /** An account's lamports (0 when it does not exist), without decoding the rest: the encoding starts with them. */
  async lamports(pubkey: Uint8Array): Promise<bigint> {
    const value = await this.read(accountKey(pubkey));
    return value === null ? 0n : readUint(value, 0, 8);
  }

  /** A zero-lamport account does not exist (Solana purges it): it is removed from the trie. */
  setAccount(pubkey: Uint8Array, account: SvmAccount | null): void {
    const gone = account === null || account.lamports === 0n;
    this.stage(accountKey(pubkey), gone ? null : encodeSvmAccount(account));
  }

  /** The slot that processed `signature`, or null. */
  async processedAt(signature: Uint8Array): Promise<bigint | null> {
    const value = await this.read(signatureKey(signature));
    return value === null ? null : decode(u64, value, "signatureSlot");
  }

  async slotIndex(): Promise<bigint[]> {
    const value = await this.read(SLOT_INDEX_KEY);
    return value === null ? [] : [...decode(slotIndexCodec, value, "slotIndex")];
  }

  /** Forgets every signature of slots `<= lastExpiredSlot` (they can no longer be replayed). Returns the index left. */
  async pruneSignatures(index: readonly bigint[], lastExpiredSlot: bigint): Promise<bigint[]> {
    const kept: bigint[] = [];
    for (const slot of index) {
      if (slot > lastExpiredSlot) {
        kept.push(slot);
        continue;
      }
      const listed = await this.read(slotSignaturesKey(slot));
      if (listed !== null) {
        for (const signature of decode(slotSignaturesCodec, listed, "slotSignatures")) {
          this.stage(signatureKey(signature), null);
        }
      }
      this.stage(slotSignaturesKey(slot), null);
    }
    return kept;
  }

  /** Records the signatures processed in `slot` and the index that lists the slots with signatures. */
  recordSignatures(slot: bigint, signatures: readonly Uint8Array[], index: readonly bigint[]): void {
    const slotBytes = encode(u64, slot);
    for (const signature of signatures) this.stage(signatureKey(signature), slotBytes);
    const next = signatures.length > 0 ? [...index, slot] : [...index];
    if (signatures.length > 0) this.stage(slotSignaturesKey(slot), encode(slotSignaturesCodec, signatures));
    this.stage(SLOT_INDEX_KEY, next.length === 0 ? null : encode(slotIndexCodec, next));
  }

  /** Applies the staged changes; returns the new root and the new nodes it reaches. */
  async commit(): Promise<{ root: Hex; writes: Map<string, Uint8Array> }> {
    if (this.undo.length > 0) throw new Error(`SVM state committed with ${this.undo.length} open checkpoints`);
    // One batch (../trie-batch.ts): each changed node hashed once. The trie hashes its keys (useKeyHashing).
    const updates = [...this.staged].map(([hex, value]) => [fastKeccak256(fromHex(hex)), value] as const);
    await guard(this.root, () => applyBatchToTrie(this.trie, updates));
    this.staged.clear();
    const root = toHex(this.trie.root());
    return { root, writes: reachableWrites(root, this.overlay.writes, false) };
  }

  /** A proof of `key` (a raw trie key: a pubkey for accounts) against this state's committed root. */
  async proof(key: Uint8Array): Promise<SvmProof> {
    return guard(this.root, async () => {
      const proof = await createMerkleProof(this.trie, key);
      const value = await this.trie.get(key);
      return { key: toHex(key), value: value === null ? null : toHex(value), proof: proof.map((n) => toHex(n)) };
    });
  }
}

/** The SVM's state under `root`: a missing trie node is ExecutionError "missing_state". */
function guard<T>(root: Hex, run: () => Promise<T>): Promise<T> {
  return withState(root, run, "SVM state");
}
