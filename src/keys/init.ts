// `dcn init`: a node directory with fresh keys and the public identity an operator hands to the genesis coordinator.
//   <dir>/keys/consensus.json  <dir>/keys/peer.json  <dir>/keys/operator.json   (0600, dir 0700)
//   <dir>/identity.json                                                          (public, pretty JSON)
import { lstat, mkdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { isErrno, replaceFile } from "./files.ts";
import { describeKeys, generateKeys, KEY_KINDS, type KeyKind, type PublicIdentity } from "./keys.ts";
import { KeystoreError, type KeystoreProtection, saveKeystore } from "./keystore.ts";

export interface InitNodeOptions {
  /** Encrypts the keys. Required unless `insecure`. */
  readonly password?: string;
  /** Writes the keys unencrypted: devnets only. */
  readonly insecure?: boolean;
  /** scrypt cost (power of two); tests lower it. */
  readonly scryptN?: number;
}

export interface InitResult {
  readonly identity: PublicIdentity;
  readonly insecure: boolean;
  readonly files: Readonly<Record<KeyKind | "identity", string>>;
}

/** Where the key of `kind` lives inside a keys directory. */
export function keyFilePath(keysDir: string, kind: KeyKind): string {
  return join(keysDir, `${kind}.json`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return false;
    throw error;
  }
}

/**
 * Creates the keys and identity of a new node in `dir`. Refuses (KeystoreError "exists") when any key file is already
 * there, before writing anything; if a later write fails, the key files this call created are removed again.
 */
export async function initNode(dir: string, opts: InitNodeOptions): Promise<InitResult> {
  const insecure = opts.insecure === true;
  if (insecure && opts.password !== undefined) {
    throw new RangeError("initNode: pass either a password or insecure: true, not both");
  }
  const keysDir = join(dir, "keys");
  const files = {
    consensus: keyFilePath(keysDir, "consensus"),
    peer: keyFilePath(keysDir, "peer"),
    operator: keyFilePath(keysDir, "operator"),
    identity: join(dir, "identity.json"),
  };
  if (!insecure && (opts.password === undefined || opts.password.length === 0)) {
    throw new KeystoreError(
      "password_required",
      keysDir,
      "new keys need a password to encrypt them. Fix: give a password (DCN_KEY_PASSWORD or a password file), or " +
        "--insecure on throwaway devnets",
    );
  }
  for (const kind of KEY_KINDS) {
    if (await exists(files[kind])) {
      throw new KeystoreError(
        "exists",
        files[kind],
        "this node directory already has keys. Fix: keys are never overwritten; use another directory, or move " +
          "the old keys away first if you really mean to replace them",
      );
    }
  }

  try {
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new KeystoreError("io", keysDir, `cannot create the keys directory: ${(error as Error).message}`, {
      cause: error,
    });
  }

  const keys = generateKeys();
  const protection: KeystoreProtection = insecure ? { insecure: true } : { password: opts.password ?? "" };
  const saveOpts = opts.scryptN === undefined ? {} : { scryptN: opts.scryptN };
  const created: string[] = [];
  try {
    for (const kind of KEY_KINDS) {
      await saveKeystore(files[kind], kind, keys[kind], protection, saveOpts);
      created.push(files[kind]);
    }
  } catch (error) {
    // A half-initialised directory would make the next init refuse; only files this call wrote are removed.
    for (const path of created) await unlink(path).catch(() => undefined);
    throw error;
  }

  const identity = describeKeys(keys);
  try {
    await replaceFile(files.identity, `${JSON.stringify(identity, null, 2)}\n`, 0o644);
  } catch (error) {
    throw new KeystoreError(
      "io",
      files.identity,
      `keys were written but the identity file was not: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return { identity, insecure, files };
}
