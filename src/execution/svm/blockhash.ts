// One Solana blockhash per L2 block, derived from the block's hash: every node computes the same value, clients see
// the usual base58 string, and the domain tag keeps it from colliding with any other sha256 the chain uses.
import { sha256 } from "@noble/hashes/sha2.js";
import { getBase58Decoder, getBase58Encoder } from "@solana/kit";
import { concatBytes, fromHex, type Hex, isHex, utf8 } from "../../../consensus/bytes.ts";

const BLOCKHASH_DOMAIN = utf8("lumia-svm-blockhash");

/** base58(sha256("lumia-svm-blockhash" || l2BlockHash)). Throws RangeError on a hash that is not 32-byte hex. */
export function svmBlockhash(l2BlockHash: Hex): string {
  if (!isHex(l2BlockHash, 32)) throw new RangeError(`L2 block hash ${l2BlockHash} is not 32-byte hex`);
  return getBase58Decoder().decode(sha256(concatBytes(BLOCKHASH_DOMAIN, fromHex(l2BlockHash))));
}

/** The 32 bytes of a base58 blockhash or pubkey, or null when it is not one. */
export function base58Bytes32(blockhash: string): Uint8Array | null {
  if (typeof blockhash !== "string" || blockhash.length < 32 || blockhash.length > 44) return null;
  try {
    const bytes = new Uint8Array(getBase58Encoder().encode(blockhash));
    return bytes.length === 32 ? bytes : null;
  } catch {
    return null;
  }
}
