// The three keys of an operator (docs: DESIGN.md "Keys per operator"): a BLS12-381 consensus key (votes,
// certificates), an Ed25519 libp2p peer key and a secp256k1 operator key (L1 transactions, rewards).
//
// Secrets are raw bytes in the forms the rest of the node consumes:
//   consensus  32 bytes, big-endian scalar in [1, r - 1] (src/crypto/blst.ts)
//   peer       64 bytes, Ed25519 seed || public key: libp2p's `privateKey.raw`, accepted by `privateKeyFromRaw`
//   operator   32 bytes, secp256k1 scalar in [1, n - 1]
// Ed25519 keys are derived with @noble/curves so that generation stays synchronous; the bytes are exactly what
// libp2p's `generateKeyPair("Ed25519")` produces (test/keys/keys.test.ts checks both directions).
import { randomBytes } from "node:crypto";
import { privateKeyFromRaw } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { ed25519 } from "@noble/curves/ed25519.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bytesEqual, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { validatorAddress } from "../../consensus/validator-set.ts";
import { blsProofOfPossession, createBlstSigner, generateBlsSecretKey } from "../crypto/blst.ts";

export type KeyKind = "consensus" | "peer" | "operator";

export const KEY_KINDS: readonly KeyKind[] = ["consensus", "peer", "operator"];

/** Secret byte length per kind. */
export const SECRET_LENGTH: Readonly<Record<KeyKind, number>> = { consensus: 32, peer: 64, operator: 32 };

const ED25519_SEED_LENGTH = 32;

export interface OperatorKeys {
  /** 32-byte BLS12-381 secret key. */
  readonly consensus: Uint8Array;
  /** 64-byte Ed25519 private key in libp2p raw form (seed || public key). */
  readonly peer: Uint8Array;
  /** 32-byte secp256k1 secret key. */
  readonly operator: Uint8Array;
}

/** What an operator publishes: enough for a genesis entry or an L1 registration, nothing secret. */
export interface PublicIdentity {
  /** 48-byte compressed G1 public key. */
  readonly blsPublicKey: Hex;
  /** 96-byte proof of possession of the BLS key (needed before the key may join an aggregate). */
  readonly proofOfPossession: Hex;
  /** libp2p peer id (base58 identity multihash, "12D3KooW..."). */
  readonly peerId: string;
  /** Operator (L1) address, EIP-55 checksummed. */
  readonly operator: Hex;
  /** Consensus address: `validatorAddress(blsPublicKey)`, lowercase. */
  readonly address: Hex;
}

/** Fresh random keys of all three kinds. */
export function generateKeys(): OperatorKeys {
  return {
    consensus: generateBlsSecretKey(),
    peer: peerKeyFromSeed(new Uint8Array(randomBytes(ED25519_SEED_LENGTH))),
    operator: secp256k1.utils.randomSecretKey(),
  };
}

/** The 64-byte libp2p raw Ed25519 private key (seed || public key) for a 32-byte seed. Deterministic. */
export function peerKeyFromSeed(seed: Uint8Array): Uint8Array {
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_SEED_LENGTH) {
    throw new RangeError(`Ed25519 seed must be ${ED25519_SEED_LENGTH} bytes`);
  }
  const out = new Uint8Array(SECRET_LENGTH.peer);
  out.set(seed, 0);
  out.set(ed25519.getPublicKey(seed), ED25519_SEED_LENGTH);
  return out;
}

/**
 * Why `secret` is not a valid key of `kind`, or null. A peer key's public half must match its seed: libp2p trusts the
 * stored half, so a corrupted one would give a peer id that the key cannot prove.
 */
export function secretProblem(kind: KeyKind, secret: Uint8Array): string | null {
  if (!(secret instanceof Uint8Array)) return "the secret is not a byte array";
  const length = SECRET_LENGTH[kind];
  if (secret.length !== length) return `a ${kind} secret is ${length} bytes, got ${secret.length}`;
  switch (kind) {
    case "consensus":
      try {
        createBlstSigner(secret);
        return null;
      } catch {
        return "not a BLS12-381 secret scalar in [1, r - 1]";
      }
    case "peer": {
      const expected = ed25519.getPublicKey(secret.subarray(0, ED25519_SEED_LENGTH));
      return bytesEqual(expected, secret.subarray(ED25519_SEED_LENGTH))
        ? null
        : "the Ed25519 public half does not match the seed";
    }
    case "operator":
      return secp256k1.utils.isValidSecretKey(secret) ? null : "not a secp256k1 secret scalar in [1, n - 1]";
  }
}

function assertSecret(kind: KeyKind, secret: Uint8Array): void {
  const problem = secretProblem(kind, secret);
  if (problem !== null) throw new RangeError(`invalid ${kind} key: ${problem}`);
}

/** The libp2p peer id of a 64-byte raw Ed25519 key. */
export function peerIdOf(peerKey: Uint8Array): string {
  assertSecret("peer", peerKey);
  return peerIdFromPrivateKey(privateKeyFromRaw(peerKey)).toString();
}

/** 48-byte compressed BLS public key of a consensus secret. */
export function blsPublicKeyOf(consensusKey: Uint8Array): Uint8Array {
  return createBlstSigner(consensusKey).publicKey;
}

/** Ethereum address of a secp256k1 secret: last 20 bytes of keccak256(uncompressed public key without 0x04). */
export function operatorAddressOf(operatorKey: Uint8Array): Hex {
  assertSecret("operator", operatorKey);
  const uncompressed = secp256k1.getPublicKey(operatorKey, false);
  return toChecksumAddress(toHex(keccak256(uncompressed.subarray(1)).subarray(12)));
}

/** EIP-55 mixed-case checksum form of a 20-byte address (any case in). */
export function toChecksumAddress(address: Hex): Hex {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new RangeError(`${address} is not a 20-byte 0x-hex address`);
  const lower = address.slice(2).toLowerCase();
  const hash = keccak256(new TextEncoder().encode(lower));
  let out = "0x";
  for (let i = 0; i < lower.length; i++) {
    const nibble = ((hash[i >> 1] as number) >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    const c = lower[i] as string;
    out += nibble >= 8 ? c.toUpperCase() : c;
  }
  return out as Hex;
}

/** The public identity of a key set (pure derivation; the proof of possession costs a few milliseconds). */
export function describeKeys(keys: OperatorKeys): PublicIdentity {
  const blsPublicKey = blsPublicKeyOf(keys.consensus);
  return {
    blsPublicKey: toHex(blsPublicKey),
    proofOfPossession: toHex(blsProofOfPossession(keys.consensus)),
    peerId: peerIdOf(keys.peer),
    operator: operatorAddressOf(keys.operator),
    address: validatorAddress(blsPublicKey),
  };
}
