// Key files. Two forms:
//   - EIP-2335 keystore (version 4 JSON; scrypt by default, AES-128-CTR, SHA-256 checksum) via @chainsafe/bls-keystore.
//     EIP-2335 is a generic encrypted-secret container, so it holds all three kinds; `description` names the kind
//     ("lumia-dcn peer key"). `pubkey` is only set for the consensus key: the format defines it as a 48-byte BLS key,
//     and other EIP-2335 tools reject any other length. `path` is empty: these keys are not derived from a mnemonic.
//   - Insecure devnet form: {"kind": "consensus", "insecure": true, "secret": "0x..."}. Loading it says so
//     (`insecure: true`) and leaves the warning to the caller.
// Both forms store 32 bytes for every kind: a peer key is stored as its Ed25519 seed (EIP-2335's schema fixes the
// ciphertext at 32 bytes) and expanded to libp2p's 64-byte raw form (seed || public key) when loaded.
// Files are written with mode 0600 and never overwritten.
import { readFile, stat } from "node:fs/promises";
import { create, decrypt, defaultScryptModule, type IKeystore, isValidKeystore } from "@chainsafe/bls-keystore";
import { fromHex, isHex, toHex } from "../../consensus/bytes.ts";
import { isErrno, writeNewFile } from "./files.ts";
import { blsPublicKeyOf, KEY_KINDS, type KeyKind, peerKeyFromSeed, secretProblem } from "./keys.ts";

export type KeystoreErrorCode =
  | "not_found"
  | "wrong_password"
  | "wrong_kind"
  | "malformed"
  | "password_required"
  | "exists"
  | "io";

/** A key file could not be written or read. The message names the file and the fix. */
export class KeystoreError extends Error {
  override readonly name = "KeystoreError";
  readonly code: KeystoreErrorCode;
  readonly file: string;

  constructor(code: KeystoreErrorCode, file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.code = code;
    this.file = file;
  }
}

export type KeystoreProtection = { readonly password: string } | { readonly insecure: true };

export interface SaveKeystoreOptions {
  /** scrypt cost N (a power of two). Defaults to EIP-2335's 2^18; tests lower it. */
  readonly scryptN?: number;
}

export interface LoadedKey {
  readonly secret: Uint8Array;
  /** True for the unencrypted devnet form: the caller should warn. */
  readonly insecure: boolean;
}

/** EIP-2335's recommended scrypt cost (about 1.3 s and 256 MiB per key here). */
export const DEFAULT_SCRYPT_N = 2 ** 18;
/** Key files are small; anything larger is not one of ours. */
export const KEYSTORE_MAX_BYTES = 64 * 1024;
/**
 * KDF costs accepted when loading. A keystore names its own cost, and node's scrypt allocates N * r * 128 bytes, so
 * a tampered file could otherwise exhaust memory or stall startup for hours.
 */
export const MAX_SCRYPT_N = 2 ** 20;
export const MAX_SCRYPT_R = 32;
export const MAX_SCRYPT_P = 16;
export const MAX_PBKDF2_ROUNDS = 2 ** 22;

const FILE_MODE = 0o600;
const STORED_SECRET_LENGTH = 32;

/** The 32 bytes a file stores for a key (a peer key's seed). */
function storedForm(kind: KeyKind, secret: Uint8Array): Uint8Array {
  return kind === "peer" ? secret.slice(0, STORED_SECRET_LENGTH) : secret;
}

/** The in-memory key for stored bytes; null when they cannot be one. */
function expandStored(kind: KeyKind, stored: Uint8Array): Uint8Array | null {
  if (kind !== "peer") return stored;
  // The insecure form may also carry libp2p's 64-byte raw key (hand-made devnet files); it is checked like any other.
  if (stored.length === 2 * STORED_SECRET_LENGTH) return stored;
  return stored.length === STORED_SECRET_LENGTH ? peerKeyFromSeed(stored) : null;
}

/** The `description` of a keystore holding a key of `kind`. */
export function keystoreDescription(kind: KeyKind): string {
  return `lumia-dcn ${kind} key`;
}

function kindOfDescription(description: string | undefined): KeyKind | null {
  for (const kind of KEY_KINDS) if (description === keystoreDescription(kind)) return kind;
  return null;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 2 && (n & (n - 1)) === 0;
}

/** Encrypts (or, for devnets, records in the clear) `secret` into a new file at `path`. Never overwrites. */
export async function saveKeystore(
  path: string,
  kind: KeyKind,
  secret: Uint8Array,
  protection: KeystoreProtection,
  opts: SaveKeystoreOptions = {},
): Promise<void> {
  const problem = secretProblem(kind, secret);
  if (problem !== null) throw new RangeError(`saveKeystore: invalid ${kind} key: ${problem}`);
  const scryptN = opts.scryptN ?? DEFAULT_SCRYPT_N;
  if (!isPowerOfTwo(scryptN) || scryptN > MAX_SCRYPT_N) {
    throw new RangeError(`saveKeystore: scryptN ${scryptN} is not a power of two in [2, ${MAX_SCRYPT_N}]`);
  }

  let text: string;
  if ("insecure" in protection) {
    text = `${JSON.stringify({ kind, insecure: true, secret: toHex(storedForm(kind, secret)) }, null, 2)}\n`;
  } else {
    if (typeof protection.password !== "string" || protection.password.length === 0) {
      throw new KeystoreError(
        "password_required",
        path,
        `an encrypted ${kind} keystore needs a non-empty password. Fix: pass a password (DCN_KEY_PASSWORD or a ` +
          "password file), or use the insecure form on throwaway devnets only",
      );
    }
    const kdf = defaultScryptModule();
    kdf.params.n = scryptN;
    // EIP-2335's pubkey is a BLS key by definition; for the other kinds it is left out rather than mislabelled.
    const pubkey = kind === "consensus" ? blsPublicKeyOf(secret) : new Uint8Array(0);
    const keystore: IKeystore = await create(
      protection.password,
      storedForm(kind, secret),
      pubkey,
      "",
      keystoreDescription(kind),
      kdf,
    );
    if (kind !== "consensus") delete (keystore as { pubkey?: string }).pubkey;
    text = `${JSON.stringify(keystore, null, 2)}\n`;
  }

  let outcome: "written" | "exists";
  try {
    outcome = await writeNewFile(path, text, FILE_MODE);
  } catch (error) {
    throw new KeystoreError(
      "io",
      path,
      `cannot write the ${kind} key: ${(error as Error).message}. Fix: check that the directory exists and is writable`,
      { cause: error },
    );
  }
  if (outcome === "exists") {
    throw new KeystoreError(
      "exists",
      path,
      `a key file already exists. Fix: keys are never overwritten; move the old file away first if you really mean to ` +
        "replace it (a lost consensus key cannot be recovered)",
    );
  }
}

/**
 * Reads the key of `kind` from `path`. `password` is needed for an encrypted keystore and ignored for the insecure
 * form. Throws KeystoreError: not_found, malformed, wrong_kind, password_required, wrong_password, io.
 */
export async function loadKeystore(path: string, kind: KeyKind, password: string | undefined): Promise<LoadedKey> {
  const json = await readKeyFile(path);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw malformed(path, "the file is not a JSON object");
  }
  if ("insecure" in json) return loadInsecure(path, kind, json);
  return loadEncrypted(path, kind, json, password);
}

async function readKeyFile(path: string): Promise<unknown> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw malformed(path, "not a regular file");
    if (info.size > KEYSTORE_MAX_BYTES) throw malformed(path, `${info.size} bytes, more than any key file`);
    text = await readFile(path, "utf8");
  } catch (error) {
    if (error instanceof KeystoreError) throw error;
    if (isErrno(error, "ENOENT")) {
      throw new KeystoreError(
        "not_found",
        path,
        "no key file here. Fix: run `dcn init` to create keys, or point keys.dir in the node config at the directory " +
          "that holds consensus.json, peer.json and operator.json",
        { cause: error },
      );
    }
    throw new KeystoreError(
      "io",
      path,
      `cannot read the key file: ${(error as Error).message}. Fix: check its permissions`,
      {
        cause: error,
      },
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw malformed(path, `not valid JSON (${(error as Error).message})`, error);
  }
}

function malformed(path: string, detail: string, cause?: unknown): KeystoreError {
  return new KeystoreError(
    "malformed",
    path,
    `${detail}. Fix: restore the key file from your backup (it must be an EIP-2335 keystore written by \`dcn init\`)`,
    cause === undefined ? undefined : { cause },
  );
}

function wrongKind(path: string, expected: KeyKind, found: string): KeystoreError {
  return new KeystoreError(
    "wrong_kind",
    path,
    `holds ${found}, expected the ${expected} key. Fix: point to ${expected}.json (files may have been swapped)`,
  );
}

function checkedSecret(path: string, kind: KeyKind, stored: Uint8Array): Uint8Array {
  const secret = expandStored(kind, stored);
  if (secret === null) throw malformed(path, `the stored ${kind} secret is ${stored.length} bytes, expected 32`);
  const problem = secretProblem(kind, secret);
  if (problem !== null) throw malformed(path, `the decoded secret is not a valid ${kind} key: ${problem}`);
  return secret;
}

function loadInsecure(path: string, kind: KeyKind, json: object): LoadedKey {
  const record = json as Record<string, unknown>;
  const extra = Object.keys(record).filter((k) => k !== "kind" && k !== "insecure" && k !== "secret");
  if (record.insecure !== true || extra.length > 0) {
    throw malformed(path, `an insecure key file has exactly {"kind", "insecure": true, "secret"}`);
  }
  const fileKind = record.kind;
  if (typeof fileKind !== "string" || !(KEY_KINDS as readonly string[]).includes(fileKind)) {
    throw malformed(path, `"kind" must be one of ${KEY_KINDS.join(", ")}`);
  }
  if (fileKind !== kind) throw wrongKind(path, kind, `a ${fileKind} key`);
  if (!isHex(record.secret)) throw malformed(path, `"secret" is not 0x-prefixed hex`);
  return { secret: checkedSecret(path, kind, fromHex(record.secret)), insecure: true };
}

/** Why the KDF parameters are unaffordable, or null. */
function kdfCostProblem(keystore: IKeystore): string | null {
  const kdf = keystore.crypto.kdf;
  if (kdf.function === "scrypt") {
    const { n, r, p } = kdf.params;
    if (!isPowerOfTwo(n) || n > MAX_SCRYPT_N) return `scrypt n ${n} is not a power of two <= ${MAX_SCRYPT_N}`;
    if (!Number.isInteger(r) || r < 1 || r > MAX_SCRYPT_R) return `scrypt r ${r} is outside [1, ${MAX_SCRYPT_R}]`;
    if (!Number.isInteger(p) || p < 1 || p > MAX_SCRYPT_P) return `scrypt p ${p} is outside [1, ${MAX_SCRYPT_P}]`;
    return null;
  }
  const { c } = kdf.params;
  return Number.isInteger(c) && c >= 1 && c <= MAX_PBKDF2_ROUNDS ? null : `pbkdf2 c ${c} is outside [1, 2^22]`;
}

async function loadEncrypted(
  path: string,
  kind: KeyKind,
  json: object,
  password: string | undefined,
): Promise<LoadedKey> {
  if (!isValidKeystore(json)) throw malformed(path, "not an EIP-2335 keystore (version 4 JSON)");
  const fileKind = kindOfDescription(json.description);
  // A consensus key may come from other EIP-2335 tooling (any description); the other kinds only from ours.
  if (fileKind === null && kind !== "consensus") {
    throw wrongKind(path, kind, `a keystore described as ${JSON.stringify(json.description ?? "")}`);
  }
  if (fileKind !== null && fileKind !== kind) throw wrongKind(path, kind, `the ${fileKind} key`);
  const costProblem = kdfCostProblem(json);
  if (costProblem !== null) throw malformed(path, `key derivation cost out of bounds: ${costProblem}`);
  if (password === undefined) {
    throw new KeystoreError(
      "password_required",
      path,
      `the ${kind} key is encrypted and no password was given. Fix: set DCN_KEY_PASSWORD or keys.passwordFile in ` +
        "the node config",
    );
  }
  let stored: Uint8Array;
  try {
    stored = await decrypt(json, password);
  } catch (error) {
    if (error instanceof Error && error.message === "Invalid password") {
      throw new KeystoreError(
        "wrong_password",
        path,
        `the password does not decrypt the ${kind} key (checksum mismatch). Fix: use the password given to ` +
          "`dcn init`; check DCN_KEY_PASSWORD or keys.passwordFile for a stray newline or a wrong file",
        { cause: error },
      );
    }
    throw malformed(path, `cannot decrypt: ${(error as Error).message}`, error);
  }
  const secret = checkedSecret(path, kind, stored);
  if (kind === "consensus" && json.pubkey !== undefined && json.pubkey !== "") {
    const actual = toHex(blsPublicKeyOf(secret)).slice(2);
    if (json.pubkey.toLowerCase() !== actual) {
      throw malformed(path, `the secret's public key 0x${actual} differs from the recorded pubkey 0x${json.pubkey}`);
    }
  }
  return { secret, insecure: false };
}
