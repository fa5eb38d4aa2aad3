// secp256k1 public-key recovery for sender recovery. The native libsecp256k1 binding is ~15x faster than pure JS
// (ENVIRONMENT.md: 0.12 ms vs 1.7 ms per transaction), and recovery runs once per transaction on every validator.
// `secp256k1/bindings` is loaded directly (not the package index, which silently falls back to elliptic) so that a
// missing binary is visible: we fall back to @noble/curves and say so with a process warning and `secp256k1Backend`.
import { createRequire } from "node:module";
import { secp256k1 as noble } from "@noble/curves/secp256k1.js";

interface NativeSecp256k1 {
  ecdsaRecover(signature: Uint8Array, recoveryId: number, message32: Uint8Array, compressed: boolean): Uint8Array;
}

function loadNative(): { native: NativeSecp256k1 | null; error: unknown } {
  try {
    const require = createRequire(import.meta.url);
    return { native: require("secp256k1/bindings") as NativeSecp256k1, error: null };
  } catch (error) {
    return { native: null, error };
  }
}

const loaded = loadNative();

/** Which implementation recovers senders in this process. */
export const secp256k1Backend: "native" | "noble" = loaded.native === null ? "noble" : "native";

if (loaded.native === null) {
  process.emitWarning(
    `native secp256k1 binding failed to load (${String(loaded.error)}); sender recovery falls back to @noble/curves (~15x slower)`,
    { code: "LUMIA_SECP256K1_FALLBACK" },
  );
}

/**
 * Recovers the 64-byte uncompressed public key (no 0x04 prefix) from a 32-byte digest and a compact (r || s)
 * signature. Throws on any invalid signature (r or s out of range, point not on the curve).
 */
export function recoverPublicKey(digest: Uint8Array, compactSignature: Uint8Array, recoveryId: 0 | 1): Uint8Array {
  if (loaded.native !== null) {
    return loaded.native.ecdsaRecover(compactSignature, recoveryId, digest, false).subarray(1);
  }
  const signature = noble.Signature.fromBytes(compactSignature, "compact").addRecoveryBit(recoveryId);
  return signature.recoverPublicKey(digest).toBytes(false).subarray(1);
}
