// The uncompressed EIP-2537 encodings the L1 contracts need next to the node's compressed BLS bytes (the precompiles
// cannot decompress cheaply, so callers pass both and the contracts check they are the same point; see
// staking-contracts/README.md). Pure: no Node APIs, usable by the node's L1 client and by browsers.
//   G1: x || y, each a 64-byte big-endian field element (16 zero bytes, then 48)          128 bytes
//   G2: x.c0 || x.c1 || y.c0 || y.c1, each 64 bytes as above                               256 bytes
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { concatBytes, uintBytes } from "../consensus/bytes.ts";

export const EIP2537_G1_LENGTH = 128;
export const EIP2537_G2_LENGTH = 256;
const FIELD_ELEMENT_LENGTH = 64;

const fp = (value: bigint): Uint8Array => uintBytes(value, FIELD_ELEMENT_LENGTH);

/**
 * The 128-byte EIP-2537 form of a 48-byte compressed G1 public key. Throws RangeError when the bytes are not a valid
 * compressed point of the subgroup (the caller's own key is expected here, not a peer's input).
 */
export function g1ToEip2537(compressed: Uint8Array): Uint8Array {
  let point: ReturnType<typeof bls12_381.G1.Point.fromBytes>;
  try {
    point = bls12_381.G1.Point.fromBytes(compressed);
  } catch (error) {
    throw new RangeError(`not a compressed G1 point: ${String(error)}`, { cause: error });
  }
  if (point.is0()) throw new RangeError("the G1 identity has no EIP-2537 key encoding here");
  const { x, y } = point.toAffine();
  return concatBytes(fp(x), fp(y));
}

/**
 * The 256-byte EIP-2537 form of a 96-byte compressed G2 signature (or proof of possession). Throws RangeError when the
 * bytes are not a valid compressed G2 point.
 */
export function g2ToEip2537(compressed: Uint8Array): Uint8Array {
  let point: ReturnType<typeof bls12_381.longSignatures.Signature.fromBytes>;
  try {
    point = bls12_381.longSignatures.Signature.fromBytes(compressed);
  } catch (error) {
    throw new RangeError(`not a compressed G2 point: ${String(error)}`, { cause: error });
  }
  if (point.is0()) throw new RangeError("the G2 identity is not a signature");
  const { x, y } = point.toAffine();
  return concatBytes(fp(x.c0), fp(x.c1), fp(y.c0), fp(y.c1));
}
