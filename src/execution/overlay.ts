// The node database seen by one execution: reads fall through a shared node cache to the committed store, writes
// stay in a private Map that becomes the result's `writes`. Nothing here mutates the store or another overlay.
//
// Every key is content-addressed (trie nodes by keccak256 of the node, code by "c" || keccak256(code)), so a key can
// only ever map to one value. That is what makes the shared cache safe: holding another candidate's nodes cannot
// change what this candidate reads, because it can only reach a node through a hash it already has.
import type { BatchDBOp, DB, EncodingOpts } from "@ethereumjs/util";
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { ExecutionError } from "./errors.ts";

/** Committed state nodes (the node passes a level-backed one). */
export interface KeyValueReader {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
}

/** A byte-bounded LRU of state nodes shared by all executions of one core. */
export class NodeCache {
  private readonly entries = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  get(key: string): Uint8Array | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: Uint8Array): void {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      this.entries.delete(key);
      this.bytes -= existing.length + key.length;
    }
    const size = value.length + key.length;
    if (size > this.maxBytes) return;
    this.entries.set(key, value);
    this.bytes += size;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.length + oldest.length;
    }
  }

  get sizeBytes(): number {
    return this.bytes;
  }
}

/**
 * ethereumjs `DB` over (private writes) -> (optional pending writes of an uncommitted result) -> cache -> store.
 * Keys arrive as unprefixed hex strings (the trie's CheckpointDB converts them); values as bytes.
 */
export class OverlayDB implements DB<string, string | Uint8Array> {
  /** "0x"-prefixed key -> value: nodes this execution created. */
  readonly writes = new Map<string, Uint8Array>();
  /**
   * Keys this execution read from below its own writes. The trie re-puts nodes it read; those are not new. Executions
   * start from a committed root (the core checks), and everything reachable from a committed root is committed, so
   * leaving them out is safe, and it keeps `writes` independent of what the cache happened to hold.
   */
  private readonly readKeys = new Set<string>();

  constructor(
    private readonly store: KeyValueReader,
    private readonly cache: NodeCache,
    private readonly pending: ReadonlyMap<string, Uint8Array> | null = null,
  ) {}

  async get(key: string, _opts?: EncodingOpts): Promise<Uint8Array | undefined> {
    const prefixed = `0x${key}`;
    const own = this.writes.get(prefixed) ?? this.pending?.get(prefixed);
    if (own !== undefined) return own;
    const cached = this.cache.get(prefixed);
    if (cached !== undefined) {
      this.readKeys.add(prefixed);
      return cached;
    }
    let value: Uint8Array | undefined;
    try {
      value = await this.store.get(fromHex(prefixed));
    } catch (cause) {
      throw new ExecutionError("storage", "reading a state node failed", { key: prefixed }, { cause });
    }
    if (value !== undefined) {
      this.readKeys.add(prefixed);
      this.cache.set(prefixed, value);
    }
    return value;
  }

  async put(key: string, value: string | Uint8Array, _opts?: EncodingOpts): Promise<void> {
    if (typeof value === "string") throw new TypeError("OverlayDB stores bytes only (valueEncoding must be Bytes)");
    const prefixed = `0x${key}` as Hex;
    if (this.readKeys.has(prefixed)) return;
    this.writes.set(prefixed, value);
  }

  /**
   * Content-addressed nodes are never deleted here: another root may still reach the node. Old state goes a whole
   * store generation at a time (src/node/state-pruner.ts).
   */
  async del(_key: string, _opts?: EncodingOpts): Promise<void> {}

  async batch(ops: BatchDBOp<string, string | Uint8Array>[]): Promise<void> {
    for (const op of ops) if (op.type === "put") await this.put(op.key, op.value);
  }

  /** Storage tries share the account trie's database: one overlay per execution. */
  shallowCopy(): DB<string, string | Uint8Array> {
    return this;
  }

  async open(): Promise<void> {}
}
