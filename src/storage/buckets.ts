// Key layout of the node database: one level 10 database per node, every key starts with one bucket byte.
//
// BUCKET IDS ARE NEVER REUSED. A bucket that is dropped keeps its number here, commented out, so that a database
// written by an older version can never have its old keys read as a different record. Add new buckets at the end.
// The value formats and the rules for when each bucket is written are in docs/storage.md.
import { concatBytes, uintBytes } from "../../consensus/bytes.ts";

export const Bucket = {
  /** key: bucket || u8 field (MetaField); value: see MetaField. */
  meta: 0x00,
  /** key: bucket; value: the head pointer (height, block hash). Absent before the first commit. */
  head: 0x01,
  /** key: bucket || height u64 BE; value: the encoded block (opaque here). */
  blockByHeight: 0x02,
  /** key: bucket || block hash (32 bytes); value: height. */
  heightByHash: 0x03,
  /** key: bucket || height u64 BE; value: the soft-finality certificate (consensus/certificate.ts layout). */
  certificateByHeight: 0x04,
  /** key: bucket; value: the validator set (with proposer priorities) of height head + 1. Overwritten by each commit. */
  nextValidatorSet: 0x05,
  /** key: bucket || validator-set id (32 bytes); value: membership (address, public key, voting power). Written once. */
  validatorSetById: 0x06,
  /** key: bucket || height u64 BE; value: the id of the set that signed heights from here until the next entry. */
  validatorSetIdFromHeight: 0x07,
  /** key: bucket; value: the safety record (signing mark, lock, own votes). Overwritten with sync before votes leave. */
  safety: 0x08,
  /** key: bucket || height u64 BE || round u32 BE || kind u8 || validator index u16 BE; value: the evidence (./evidence.ts). */
  evidence: 0x09,
  /** key: bucket || node key (trie node hash, or code hash prefixed as the execution core wants); value: node bytes.
   * Content-addressed: written in the commit batch of the block that created them (and once for genesis). */
  state: 0x0a,
  /** key: bucket || height u64 BE; value: the block's receipts, EVM then SVM (src/chain/receipts.ts). */
  receiptsByHeight: 0x0b,
  /** key: bucket || transaction hash (32 bytes; an SVM transaction's is signatureIndexKey(signature),
   * src/execution/svm/receipt.ts); value: height u64 BE || index u32 BE (the entry's position in the block). */
  transactionByHash: 0x0c,
  /** key: bucket || generation u32 BE (>= 1) || node key (as in `state`); value: node bytes. State nodes of the
   * generations after the first when pruning is on (`storage.stateHistory`); generation 0 is the `state` bucket. */
  stateGeneration: 0x0d,
} as const;

export type BucketName = keyof typeof Bucket;
export type BucketId = (typeof Bucket)[BucketName];

/** Fields of the meta bucket. Like bucket ids, field numbers are never reused. */
export const MetaField = {
  /** value: u32 BE schema version; this layout never changes, so any version can read it. */
  schemaVersion: 0x01,
  /** value: the genesis block hash this database belongs to. */
  genesisHash: 0x02,
  /** value: the state generations (chain-store.ts StateGenerations); absent: generation 0 only, nothing pruned. */
  stateGenerations: 0x03,
  /** value: the lowest height whose whole history is kept (chain-store.ts historyKeptFrom); absent: 1, nothing pruned. */
  history: 0x04,
} as const;

const BUCKET_NAMES: ReadonlyMap<number, BucketName> = new Map(
  (Object.keys(Bucket) as BucketName[]).map((name) => [Bucket[name], name]),
);

/** Name of the bucket a key belongs to, for error messages. */
export function bucketNameOf(key: Uint8Array): string {
  const id = key[0];
  return (id === undefined ? undefined : BUCKET_NAMES.get(id)) ?? `unknown bucket ${String(id)}`;
}

export function bucketKey(bucket: BucketId, ...parts: readonly Uint8Array[]): Uint8Array {
  return concatBytes(Uint8Array.of(bucket), ...parts);
}

/** Big-endian so that level's byte order is height order. */
export function heightKey(bucket: BucketId, height: number): Uint8Array {
  return bucketKey(bucket, uintBytes(height, 8));
}

/** Height encoded in a `heightKey` (bytes 1..8). */
export function heightOfKey(key: Uint8Array): number {
  let v = 0;
  for (let i = 1; i <= 8; i++) v = v * 256 + (key[i] ?? 0);
  return v;
}

/** The first key after every key of `bucket`: iterate with `lt: bucketEnd(b)`. */
export function bucketEnd(bucket: BucketId): Uint8Array {
  return Uint8Array.of(bucket + 1);
}

export function metaKey(field: (typeof MetaField)[keyof typeof MetaField]): Uint8Array {
  return Uint8Array.of(Bucket.meta, field);
}
