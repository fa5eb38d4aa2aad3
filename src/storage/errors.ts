// Operational failures of the node database. Every error names what went wrong and, where it applies, the bucket and
// key (hex) involved; the underlying level or codec error is kept as `cause`.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { DecodeError } from "../../consensus/codec.ts";
import { bucketNameOf } from "./buckets.ts";

export type StorageErrorCode =
  /** The database was created for another chain (another genesis hash). */
  | "genesis_mismatch"
  /** The database was written with a schema version this code does not read. */
  | "schema_version"
  /** A stored value does not decode, or records contradict each other. */
  | "corrupt"
  /** commit() of a height other than head + 1, or validatorSetFor() of a height other than head + 1. */
  | "not_next"
  /** A record given to commit() contradicts itself or the store (certificate for another height, block, or set). */
  | "invalid_record"
  /** The store is closed (or closing). */
  | "closed"
  /** Too many writes queued: the caller is not awaiting its writes. */
  | "overloaded"
  /** level could not open the directory (missing permissions, or another process holds its LOCK). */
  | "open_failed"
  /** A read or write of level failed. */
  | "io";

export interface StorageErrorContext {
  readonly bucket?: string;
  readonly key?: Hex;
  readonly cause?: unknown;
}

export class StorageError extends Error {
  override readonly name = "StorageError";
  readonly code: StorageErrorCode;
  readonly bucket: string | undefined;
  readonly key: Hex | undefined;

  constructor(code: StorageErrorCode, message: string, context: StorageErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.code = code;
    this.bucket = context.bucket;
    this.key = context.key;
  }
}

/** Decodes a stored value; a DecodeError becomes StorageError "corrupt" naming the bucket and key. */
export function decodeStored<T>(decodeFn: (bytes: Uint8Array) => T, key: Uint8Array, value: Uint8Array): T {
  try {
    return decodeFn(value);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    throw corruptError(key, error.message, error);
  }
}

export function corruptError(key: Uint8Array, detail: string, cause?: unknown): StorageError {
  const bucket = bucketNameOf(key);
  const keyHex = toHex(key);
  return new StorageError("corrupt", `corrupt value in bucket ${bucket} at key ${keyHex}: ${detail}`, {
    bucket,
    key: keyHex,
    cause,
  });
}

/**
 * Whether `error` (or an error it was caused by) is a full disk: ENOSPC from Node, or LevelDB's "No space left on
 * device" IO error, which reaches JavaScript as a message only.
 */
export function isDiskFull(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === "ENOSPC" || /no space left on device/i.test(e.message)) return true;
  }
  return false;
}
