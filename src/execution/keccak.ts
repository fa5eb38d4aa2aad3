// keccak-256 for execution: trie node hashes, hashed trie keys, transaction hashes and the EVM's SHA3 opcode (handed
// to ethereumjs as `customCrypto.keccak256`). js-sha3 is ~2x faster than @noble/hashes on the 32-600 byte inputs a
// trie hashes (measured here: 110 B 290k/s vs 140k/s, 532 B 82k/s vs 40k/s), and keccak was 10-15% of a validator's
// CPU under load. Code that must run in browsers (consensus/, the light client) keeps @noble/hashes.
import { keccak_256 } from "@noble/hashes/sha3.js";
import sha3 from "js-sha3";

// A broken or different package must not change a single state root: a known digest is checked before any use.
const emptyDigest = new Uint8Array(sha3.keccak256.arrayBuffer(new Uint8Array(0)));
const expectedEmpty = keccak_256(new Uint8Array(0));
if (emptyDigest.length !== 32 || !emptyDigest.every((byte, i) => byte === expectedEmpty[i])) {
  throw new Error("js-sha3 returned a wrong keccak-256 of the empty string: refusing to execute with it");
}

/** keccak-256 of `data` (32 bytes). */
export const fastKeccak256 = (data: Uint8Array): Uint8Array => new Uint8Array(sha3.keccak256.arrayBuffer(data));
