// The batch format: committed L2 blocks as posted to the L1 BatchInbox for data availability (docs/hard-finality.md).
// Pure apart from node:zlib's brotli; decoding takes hostile bytes (anyone open on the registry may post a batch).
//
// Before compression (consensus/codec.ts schemas):
//   version u8 (= 1) | chainId u64 | firstHeight u64 | blocks: u32 count (<= 4096) || (u32 length || block bytes)* |
//   lastCertificate: u32 length (<= 16 KiB) || encoded certificate
// Block i has height firstHeight + i. The certificate of each block but the last is the next block's
// `lastCertificate` (its canonical certificate, carried in the header v5 block); the batch's own `lastCertificate`
// is the canonical certificate of its last block.
// On L1 (submitBatch's `data`): 0x01 || brotli(bytes), at most MAX_BATCH_DATA_BYTES. In blobs (submitBlobBatch): the
// same bytes spread over the transaction's blobs by viem's toBlobs (31 bytes in each 32-byte field element, a 0x80
// terminator after the last byte), at most MAX_BATCH_BLOBS blobs.
import { promisify } from "node:util";
import { brotliCompress, brotliDecompress, constants as zlib } from "node:zlib";
import { fromBlobs, type Hex, toBlobs } from "viem";
import { type Certificate, decodeCertificate, encodeCertificate } from "../../consensus/certificate.ts";
import {
  DecodeError,
  decode,
  encode,
  list,
  struct,
  u64,
  u64Number,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";
import { decodeBlock, MAX_BLOCK_BYTES, MAX_LAST_CERTIFICATE_BYTES } from "../chain/block.ts";
import type { CommitCandidate } from "../node/driver.ts";

export const BATCH_VERSION = 1;
/** Compression tag of the L1 data: 0x01 = brotli. */
export const BATCH_BROTLI = 0x01;
export const MAX_BATCH_BLOCKS = 4096;
/**
 * Largest `data` the node posts: the inbox takes 128 KiB of calldata (geth's pool refuses larger transactions), and
 * the ABI envelope and the rest of the transaction need room too.
 */
export const MAX_BATCH_DATA_BYTES = 120 * 1024;
/** BatchInbox.MAX_BATCH_BYTES: nothing larger can be on L1. */
export const INBOX_MAX_BATCH_BYTES = 128 * 1024;
/**
 * Most bytes a batch may decompress to. Brotli reaches ratios above 1000:1 on repetitive input, so 120 KiB could
 * expand to gigabytes; a batch of empty blocks (~1 KiB each, ~100:1) stays far below this.
 */
export const MAX_BATCH_DECOMPRESSED_BYTES = 16 * 1024 * 1024;
/**
 * brotli quality for posting, chosen by measurement (docs/hard-finality.md): on devnet blocks 5 compresses within a few
 * per cent of 11 at a small fraction of its time, and the batcher compresses each candidate size about 12 times.
 */
export const BATCH_BROTLI_QUALITY = 5;

/** EIP-4844: bytes of a blob (4096 field elements of 32 bytes) and the blob gas it costs. */
export const BLOB_BYTES = 131_072;
export const BLOB_GAS_PER_BLOB = 131_072n;
/** Batch bytes one blob carries with viem's toBlobs encoding (31 of every 32 bytes). */
export const BLOB_DATA_BYTES = 31 * 4096;
/**
 * Blobs the batcher packs into one batch: viem's limit per transaction (Prague's target per block is 6, its maximum 9:
 * a full block's worth would wait for a block with no other blobs).
 */
export const MAX_BATCH_BLOBS = 6;
/** Largest batch data the node posts in blobs (toBlobs' capacity for MAX_BATCH_BLOBS, minus the terminator). */
export const MAX_BLOB_BATCH_DATA_BYTES = MAX_BATCH_BLOBS * BLOB_DATA_BYTES - 1;
/** BatchInbox.MAX_BLOBS: no blob batch on L1 has more, whoever posted it. */
export const INBOX_MAX_BLOBS = 9;
/** Largest batch data a blob batch on L1 can carry: what derivation accepts. */
export const INBOX_MAX_BLOB_BATCH_BYTES = INBOX_MAX_BLOBS * BLOB_DATA_BYTES;

export interface Batch {
  readonly chainId: bigint;
  readonly firstHeight: number;
  /** Encoded blocks of heights firstHeight, firstHeight + 1, ... */
  readonly blocks: readonly Uint8Array[];
  /** The encoded canonical certificate of the last block. */
  readonly lastCertificate: Uint8Array;
}

export const batchSchema = versioned(
  BATCH_VERSION,
  struct({
    chainId: u64,
    firstHeight: u64Number,
    blocks: list(varBytes(MAX_BLOCK_BYTES), MAX_BATCH_BLOCKS),
    lastCertificate: varBytes(MAX_LAST_CERTIFICATE_BYTES),
  }),
);

export type BatchErrorCode =
  | "empty"
  | "unknown_compression"
  | "too_large"
  | "decompression_failed"
  | "malformed"
  | "inconsistent";

/** Bytes that are not a batch of this chain (hostile or corrupt input): a typed error, never anything else. */
export class BatchError extends Error {
  override readonly name = "BatchError";
  constructor(
    readonly code: BatchErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The uncompressed batch bytes. Throws EncodeError when the batch does not fit the schema (a caller bug). */
export function encodeBatch(batch: Batch): Uint8Array {
  return encode(batchSchema, batch, "batch");
}

const brotliCompressAsync = promisify(brotliCompress);

/**
 * The L1 `data` of a batch: 0x01 || brotli(encodeBatch(batch)). The caller checks the size against the limit. The
 * compression runs on libuv's thread pool: a batch of megabytes takes tens of milliseconds, which the event loop (and
 * the consensus messages waiting on it) does not wait out.
 */
export async function encodeBatchData(batch: Batch, quality = BATCH_BROTLI_QUALITY): Promise<Uint8Array> {
  return compressBatch(encodeBatch(batch), quality);
}

/** 0x01 || brotli(raw), `raw` being encodeBatch's bytes. */
async function compressBatch(raw: Uint8Array, quality: number): Promise<Uint8Array> {
  const compressed = await brotliCompressAsync(raw, {
    params: {
      [zlib.BROTLI_PARAM_QUALITY]: quality,
      [zlib.BROTLI_PARAM_SIZE_HINT]: raw.length,
      [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_GENERIC,
    },
  });
  const out = new Uint8Array(1 + compressed.length);
  out[0] = BATCH_BROTLI;
  out.set(compressed, 1);
  return out;
}

const brotliDecompressAsync = promisify(brotliDecompress);

/**
 * Decodes L1 batch data. Rejects only with BatchError: `too_large` before decompressing more than
 * MAX_BATCH_DECOMPRESSED_BYTES, `malformed` (with the codec's DecodeError as cause) for bytes outside the schema.
 * `maxBytes`: the most a batch of its kind can hold on L1 (calldata: the inbox's limit; blobs:
 * INBOX_MAX_BLOB_BATCH_BYTES). The decompression runs on libuv's thread pool, like the compression: a batch read from
 * L1 (derivation, the batcher's check of posted batches) may decompress to megabytes.
 */
export async function decodeBatchData(data: Uint8Array, maxBytes = INBOX_MAX_BATCH_BYTES): Promise<Batch> {
  if (data.length === 0) throw new BatchError("empty", "batch data is empty");
  if (data.length > maxBytes) {
    throw new BatchError("too_large", `batch data of ${data.length} bytes exceeds the limit of ${maxBytes}`);
  }
  if (data[0] !== BATCH_BROTLI) {
    throw new BatchError("unknown_compression", `unknown batch compression tag 0x${(data[0] ?? 0).toString(16)}`);
  }
  let raw: Uint8Array;
  try {
    const out = await brotliDecompressAsync(data.subarray(1), { maxOutputLength: MAX_BATCH_DECOMPRESSED_BYTES });
    // A plain view: decoded fields are slices of it and must be Uint8Arrays, not Buffers.
    raw = new Uint8Array(out.buffer, out.byteOffset, out.length);
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    if (code === "ERR_BUFFER_TOO_LARGE" || cause instanceof RangeError) {
      throw new BatchError("too_large", `batch decompresses to more than ${MAX_BATCH_DECOMPRESSED_BYTES} bytes`, {
        cause,
      });
    }
    throw new BatchError("decompression_failed", `batch data is not brotli: ${(cause as Error).message}`, { cause });
  }
  try {
    return decode(batchSchema, raw, "batch");
  } catch (cause) {
    if (cause instanceof DecodeError) throw new BatchError("malformed", cause.message, { cause });
    throw cause;
  }
}

/** The blobs that carry batch `data` (0x hex, as kzg-wasm and viem take them). A caller bug when it is too large. */
export function batchDataToBlobs(data: Uint8Array): Hex[] {
  if (data.length === 0 || data.length > MAX_BLOB_BATCH_DATA_BYTES) {
    throw new RangeError(`batch data of ${data.length} bytes does not fit 1..${MAX_BATCH_BLOBS} blobs`);
  }
  return toBlobs({ data, to: "hex" }) as Hex[];
}

/**
 * The batch data carried by the blobs of a blob batch, in the event's order. The blobs come from a beacon node and
 * their commitments were checked against the event's versioned hashes, but their contents are the poster's: hostile.
 * Throws only BatchError.
 */
export function blobsToBatchData(blobs: readonly Uint8Array[]): Uint8Array {
  if (blobs.length === 0) throw new BatchError("empty", "a blob batch without blobs");
  if (blobs.length > INBOX_MAX_BLOBS) {
    throw new BatchError("too_large", `${blobs.length} blobs, the inbox takes at most ${INBOX_MAX_BLOBS}`);
  }
  for (const [i, blob] of blobs.entries()) {
    if (blob.length !== BLOB_BYTES) throw new BatchError("malformed", `blob #${i} has ${blob.length} bytes`);
  }
  // fromBlobs takes everything up to the last 0x80 of the last blob as data (all of it when there is none); the size
  // check of decodeBatchData follows.
  return fromBlobs({ blobs: blobs as Uint8Array[], to: "bytes" });
}

/**
 * The batch a blob batch's blobs carry (checked blobs, in the event's order). Rejects only with BatchError, like
 * decodeBatchData.
 */
export async function decodeBlobBatch(blobs: readonly Uint8Array[]): Promise<Batch> {
  if (blobs.length > INBOX_MAX_BLOBS) throw new BatchError("too_large", `${blobs.length} blobs`);
  return await decodeBatchData(blobsToBatchData(blobs), INBOX_MAX_BLOB_BATCH_BYTES);
}

/** Blobs needed for `bytes` of batch data. */
export function blobCountFor(bytes: number): number {
  return Math.ceil((bytes + 1) / BLOB_DATA_BYTES);
}

export type BatchTransport = "calldata" | "blobs";
export type BatchTransportMode = BatchTransport | "auto";

/** Gas of one calldata byte of compressed data (nonzero; EIP-7623's floor makes it 40 when data dominates). */
export const CALLDATA_GAS_PER_BYTE = 16n;

/**
 * How the next batch goes (docs/hard-finality.md "Blob batches"). `auto`: blobs when the L1 has them (Cancun+: the
 * latest block carries blob fields) and a byte costs less in a blob (blob base fee x 131072 / 126976) than in
 * calldata (16 gas x (base fee + tip), the cheapest calldata can be), or when the first pending block does not fit a
 * calldata batch at all; calldata otherwise. Pure: the batcher reads the fees.
 */
export function chooseBatchTransport(o: {
  readonly mode: BatchTransportMode;
  /** The L1's blob base fee in wei, null when its latest block has no blob fields (before Cancun). */
  readonly blobBaseFeeWei: bigint | null;
  /** Base fee plus priority fee of an execution gas unit, in wei. */
  readonly gasPriceWei: bigint;
  /** Whether the first pending block alone fits a calldata batch. */
  readonly firstBlockFitsCalldata: boolean;
}): BatchTransport | null {
  switch (o.mode) {
    case "calldata":
      return "calldata";
    case "blobs":
      return o.blobBaseFeeWei === null ? null : "blobs";
    case "auto": {
      if (o.blobBaseFeeWei === null) return "calldata";
      if (!o.firstBlockFitsCalldata) return "blobs";
      const blobPerByte = o.blobBaseFeeWei * BLOB_GAS_PER_BLOB;
      const calldataPerByte = CALLDATA_GAS_PER_BYTE * o.gasPriceWei * BigInt(BLOB_DATA_BYTES);
      return blobPerByte < calldataPerByte ? "blobs" : "calldata";
    }
  }
}

/** Height of the batch's last block (the batch has at least one block once decoded by commitsOfBatch). */
export function lastHeightOf(batch: Batch): number {
  return batch.firstHeight + batch.blocks.length - 1;
}

/**
 * The commits a batch carries, in height order: each block with its canonical certificate (the next block's
 * `lastCertificate`, the batch's own for the last). Checks the shape only (chain id, consecutive heights, each
 * certificate names its block's height and hash is left to the driver, which verifies every certificate against the
 * set of its height and re-executes every block). Throws only BatchError.
 */
export function commitsOfBatch(batch: Batch, chainId?: bigint): CommitCandidate[] {
  if (chainId !== undefined && batch.chainId !== chainId) {
    throw new BatchError("inconsistent", `batch is for chain ${batch.chainId}, expected ${chainId}`);
  }
  if (batch.blocks.length === 0) throw new BatchError("empty", "batch has no blocks");
  if (batch.firstHeight < 1) throw new BatchError("inconsistent", "batch starts at height 0");
  const decoded = batch.blocks.map((bytes, i) => {
    try {
      return decodeBlock(bytes);
    } catch (cause) {
      throw new BatchError("malformed", `block #${i}: ${(cause as Error).message}`, { cause });
    }
  });
  const out: CommitCandidate[] = [];
  for (const [i, block] of decoded.entries()) {
    const height = batch.firstHeight + i;
    if (block.header.height !== height) {
      throw new BatchError("inconsistent", `block #${i} has height ${block.header.height}, expected ${height}`);
    }
    if (block.header.chainId !== batch.chainId) {
      throw new BatchError("inconsistent", `block #${i} is for chain ${block.header.chainId}`);
    }
    const next = decoded[i + 1];
    const certBytes = next === undefined ? batch.lastCertificate : next.lastCertificate;
    let certificate: Certificate;
    try {
      certificate = decodeCertificate(certBytes);
    } catch (cause) {
      throw new BatchError("malformed", `certificate of height ${height}: ${(cause as Error).message}`, { cause });
    }
    if (certificate.height !== height) {
      throw new BatchError("inconsistent", `certificate of height ${height} names height ${certificate.height}`);
    }
    out.push({ block: batch.blocks[i] as Uint8Array, certificate });
  }
  return out;
}

/** One committed height as the store serves it (ChainStore.getRange). */
export interface BatchItem {
  readonly height: number;
  readonly block: Uint8Array;
  readonly certificate: Certificate;
}

export interface PackedBatch {
  readonly batch: Batch;
  readonly data: Uint8Array;
  readonly firstHeight: number;
  readonly lastHeight: number;
  /** Uncompressed size. */
  readonly rawBytes: number;
  /** Candidate sizes compressed to find this one. */
  readonly compressions: number;
}

/** First guess of the compression ratio (random transactions compress ~1.6x: docs/hard-finality.md). */
const FIRST_GUESS_RATIO = 1.6;

/**
 * The longest prefix of `items` (consecutive heights) whose batch data fits `maxDataBytes` (calldata:
 * MAX_BATCH_DATA_BYTES; blobs: MAX_BLOB_BATCH_DATA_BYTES), or null when not even the first block fits.
 *
 * The compressed size grows with the count, so the answer lies in a bracket [lo fits, hi does not] that each
 * compression narrows. The next count to try is the one whose raw size the last compression's ratio maps onto the
 * limit: sizes are close to proportional, so this lands within a block or two of the answer and the next tries
 * close the bracket (1-5 compressions in test/l1/batch.test.ts, where a bisection of the count took 9-10). A guess
 * that fails to halve the bracket twice running is followed by a bisection, so the worst case stays logarithmic.
 */
export async function packBatch(
  chainId: bigint,
  items: readonly BatchItem[],
  maxDataBytes = MAX_BATCH_DATA_BYTES,
  quality = BATCH_BROTLI_QUALITY,
): Promise<PackedBatch | null> {
  const usable = items.slice(0, MAX_BATCH_BLOCKS);
  for (const [i, item] of usable.entries()) {
    const first = usable[0] as BatchItem;
    if (item.height !== first.height + i) throw new RangeError(`items are not consecutive at #${i}`);
  }
  if (usable.length === 0) return null;
  // The blocks' share of the raw size of each count (the header and the certificate add the same to every count).
  const rawOf = [0];
  for (const item of usable) rawOf.push((rawOf[rawOf.length - 1] as number) + 4 + item.block.length);
  /** The largest count whose raw size is at most `raw`. */
  const countFor = (raw: number): number => {
    let c = 0;
    while (c < usable.length && (rawOf[c + 1] as number) <= raw) c++;
    return c;
  };
  let compressions = 0;
  const build = async (count: number): Promise<PackedBatch> => {
    const slice = usable.slice(0, count);
    const first = slice[0] as BatchItem;
    const last = slice[slice.length - 1] as BatchItem;
    const batch: Batch = {
      chainId,
      firstHeight: first.height,
      blocks: slice.map((s) => s.block),
      lastCertificate: encodeCertificate(last.certificate),
    };
    const raw = encodeBatch(batch);
    const data = await compressBatch(raw, quality);
    compressions++;
    return { batch, data, firstHeight: first.height, lastHeight: last.height, rawBytes: raw.length, compressions };
  };
  let lo = 0;
  let best: PackedBatch | null = null;
  let hi = usable.length + 1;
  let ratio = FIRST_GUESS_RATIO;
  let poorGuesses = 0;
  while (hi - lo > 1) {
    const width = hi - lo;
    const guess = poorGuesses >= 2 ? Math.floor((lo + hi) / 2) : countFor(maxDataBytes * ratio);
    const count = Math.min(hi - 1, Math.max(lo + 1, guess));
    const candidate = await build(count);
    if (candidate.data.length <= maxDataBytes) {
      lo = count;
      best = candidate;
    } else hi = count;
    ratio = (rawOf[count] as number) / candidate.data.length;
    poorGuesses = poorGuesses >= 2 ? 0 : 2 * (hi - lo) > width ? poorGuesses + 1 : 0;
  }
  return best === null ? null : { ...best, compressions };
}
