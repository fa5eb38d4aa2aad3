// BLS12-381 signatures in pure JavaScript (@noble/curves), for light clients in browsers and for nodes without the
// native blst binding. Ciphersuite: min-pk (48-byte compressed G1 public keys, 96-byte compressed G2 signatures),
// proof-of-possession scheme, DST `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`: the same as Ethereum consensus and
// @chainsafe/blst (src/crypto/blst.ts), so the two interoperate byte for byte. No Node APIs.
//
// Verification never throws: malformed lengths, points off the curve or outside the prime-order subgroup, and the
// identity (as a key, a signature or an aggregate key) all return false. Same-message aggregation is only safe
// because every validator key is registered with a proof of possession (see `nobleVerifyProofOfPossession`).
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { toHex } from "../bytes.ts";
import type { SignatureScheme, Signer } from "../types.ts";

/** Hash-to-G2 domain of consensus signatures (IETF BLS draft, proof-of-possession ciphersuite). */
export const BLS_SIG_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/** Hash-to-G2 domain of proofs of possession: the message is the 48-byte compressed public key. */
export const BLS_POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

export const BLS_SECRET_KEY_LENGTH = 32;
export const BLS_PUBLIC_KEY_LENGTH = 48;
export const BLS_SIGNATURE_LENGTH = 96;

const bls = bls12_381.longSignatures;
const G1 = bls12_381.G1.Point;
const G2 = bls12_381.G2.Point;
const CURVE_ORDER = bls12_381.fields.Fr.ORDER;

type G1Point = ReturnType<typeof G1.fromBytes>;
type G2Point = ReturnType<typeof G2.fromBytes>;

/** Small LRU over a Map (insertion order): a hit moves the entry to the back, a full map drops the front. */
class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    this.map.set(key, value);
  }
}

/** Validated public-key points by hex: decoding includes a subgroup check, and the same keys recur every height. */
const publicKeyCache = new BoundedCache<G1Point>(4096);
/** Hashed messages by DST + hex: every validator signs the same digest at a step, so it is hashed once. */
const messageCache = new BoundedCache<G2Point>(64);

/** The validated, non-identity public-key point, or null. */
function decodePublicKey(publicKey: Uint8Array): G1Point | null {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== BLS_PUBLIC_KEY_LENGTH) return null;
  const key = toHex(publicKey);
  const cached = publicKeyCache.get(key);
  if (cached !== undefined) return cached;
  let point: G1Point;
  try {
    point = G1.fromBytes(publicKey); // checks the encoding flags, the curve equation and the subgroup
  } catch {
    return null;
  }
  if (point.is0()) return null;
  publicKeyCache.set(key, point);
  return point;
}

/** The validated, non-identity signature point, or null. */
function decodeSignature(signature: Uint8Array): G2Point | null {
  if (!(signature instanceof Uint8Array) || signature.length !== BLS_SIGNATURE_LENGTH) return null;
  try {
    const point = bls.Signature.fromBytes(signature); // compressed only; curve and subgroup checked
    return point.is0() ? null : point;
  } catch {
    return null;
  }
}

function hashMessage(message: Uint8Array, dst: string): G2Point {
  const key = `${dst}|${toHex(message)}`;
  const cached = messageCache.get(key);
  if (cached !== undefined) return cached;
  const point = bls.hash(message, dst);
  messageCache.set(key, point);
  return point;
}

/** Throws RangeError unless `secretKey` is 32 big-endian bytes of a scalar in [1, r - 1]. */
function checkSecretKey(secretKey: Uint8Array): void {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== BLS_SECRET_KEY_LENGTH) {
    throw new RangeError(`BLS secret key must be ${BLS_SECRET_KEY_LENGTH} bytes`);
  }
  let k = 0n;
  for (const b of secretKey) k = (k << 8n) | BigInt(b);
  if (k === 0n || k >= CURVE_ORDER) throw new RangeError("BLS secret key is not a scalar in [1, r - 1]");
}

/** e(pk, H(m)) == e(G1, sig) on already validated points. */
function pairingCheck(publicKey: G1Point, hashed: G2Point, signature: G2Point): boolean {
  try {
    return bls.verify(signature, hashed, publicKey);
  } catch {
    return false;
  }
}

export const nobleBlsScheme: SignatureScheme = {
  name: "bls12-381 min-pk (noble, pure JS)",

  verify(publicKey, message, signature) {
    const pk = decodePublicKey(publicKey);
    if (pk === null) return false;
    const sig = decodeSignature(signature);
    if (sig === null || !(message instanceof Uint8Array)) return false;
    return pairingCheck(pk, hashMessage(message, BLS_SIG_DST), sig);
  },

  /** Throws RangeError on an empty list or a malformed signature: callers aggregate signatures they verified. */
  aggregateSignatures(signatures) {
    if (signatures.length === 0) throw new RangeError("cannot aggregate an empty list of signatures");
    let sum = G2.ZERO;
    signatures.forEach((s, i) => {
      const point = decodeSignature(s);
      if (point === null) throw new RangeError(`signature #${i} is not a valid compressed G2 point`);
      sum = sum.add(point);
    });
    return bls.Signature.toBytes(sum);
  },

  verifyAggregate(publicKeys, message, signature) {
    if (publicKeys.length === 0 || !(message instanceof Uint8Array)) return false;
    let aggregate = G1.ZERO;
    for (const publicKey of publicKeys) {
      const pk = decodePublicKey(publicKey);
      if (pk === null) return false;
      aggregate = aggregate.add(pk);
    }
    if (aggregate.is0()) return false;
    const sig = decodeSignature(signature);
    if (sig === null) return false;
    return pairingCheck(aggregate, hashMessage(message, BLS_SIG_DST), sig);
  },
};

/** The 48-byte compressed G1 public key of a 32-byte secret key. Throws RangeError on an invalid secret key. */
export function blsPublicKeyOf(secretKey: Uint8Array): Uint8Array {
  checkSecretKey(secretKey);
  return bls.getPublicKey(secretKey).toBytes(true);
}

/** A deterministic signer: sign(m) = sk * H(m) with BLS_SIG_DST, 96-byte compressed. */
export function createNobleSigner(secretKey: Uint8Array): Signer {
  const publicKey = blsPublicKeyOf(secretKey);
  const sk = secretKey.slice();
  return {
    publicKey,
    sign(message) {
      return bls.Signature.toBytes(bls.sign(hashMessage(message, BLS_SIG_DST), sk));
    },
  };
}

/** Proof of possession: sk * H_pop(pk) with BLS_POP_DST over the 48-byte compressed public key. */
export function nobleProofOfPossession(secretKey: Uint8Array): Uint8Array {
  const publicKey = blsPublicKeyOf(secretKey);
  return bls.Signature.toBytes(bls.sign(bls.hash(publicKey, BLS_POP_DST), secretKey));
}

/** Checks a proof of possession; false (never a throw) on malformed or identity points. */
export function nobleVerifyProofOfPossession(publicKey: Uint8Array, proof: Uint8Array): boolean {
  const pk = decodePublicKey(publicKey);
  if (pk === null) return false;
  const sig = decodeSignature(proof);
  if (sig === null) return false;
  return pairingCheck(pk, bls.hash(publicKey, BLS_POP_DST), sig);
}
