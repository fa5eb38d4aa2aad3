// Node identity keys. The configured format is the raw 32-byte Ed25519 seed (what generatePeerKey returns and what
// config files store as hex); the 64-byte libp2p form (seed || public key) is accepted too and checked for consistency,
// so a key exported from another libp2p tool cannot silently carry a mismatched public half.
import { privateKeyFromRaw } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey as libp2pPeerIdFromPrivateKey } from "@libp2p/peer-id";
import { ed25519 } from "@noble/curves/ed25519.js";
import { bytesEqual, concatBytes } from "../consensus/bytes.ts";
import { NetworkError } from "./errors.ts";

export const PEER_KEY_SEED_BYTES = 32;
const LIBP2P_ED25519_KEY_BYTES = 64;

/** Converts the configured key bytes into a libp2p private key. Throws NetworkError "invalid_key". */
export function privateKeyFromBytes(raw: Uint8Array): PrivateKey {
  if (raw.length === PEER_KEY_SEED_BYTES) {
    return privateKeyFromRaw(concatBytes(raw, ed25519.getPublicKey(raw)));
  }
  if (raw.length === LIBP2P_ED25519_KEY_BYTES) {
    const seed = raw.subarray(0, PEER_KEY_SEED_BYTES);
    if (!bytesEqual(ed25519.getPublicKey(seed), raw.subarray(PEER_KEY_SEED_BYTES))) {
      throw new NetworkError("invalid_key", "64-byte Ed25519 key: public half does not match the seed");
    }
    return privateKeyFromRaw(raw);
  }
  throw new NetworkError(
    "invalid_key",
    `Ed25519 key must be ${PEER_KEY_SEED_BYTES} (seed) or ${LIBP2P_ED25519_KEY_BYTES} bytes`,
    { actualBytes: raw.length },
  );
}

/** The libp2p peer id string (12D3KooW...) of a key in the format NetworkOptions.privateKey expects. */
export function peerIdFromPrivateKey(raw: Uint8Array): string {
  return libp2pPeerIdFromPrivateKey(privateKeyFromBytes(raw)).toString();
}

/** A fresh 32-byte Ed25519 seed, the format NetworkOptions.privateKey expects. */
export function generatePeerKey(): Uint8Array {
  return ed25519.utils.randomSecretKey();
}
