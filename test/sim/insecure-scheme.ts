// A fast, deterministic, INSECURE signature scheme for the simulator only: anyone who knows a public key can sign for
// it. It keeps the shape of BLS (aggregatable over one message, fixed-size signatures) so the simulator exercises the
// same certificate code paths thousands of times faster. Real runs use BLS (`npm run sim -- --bls`).
import { bytesEqual, concatBytes, keccak256, readUint, uintBytes } from "../../consensus/bytes.ts";
import type { SignatureScheme, Signer } from "../../consensus/types.ts";

const MOD = 1n << 256n;

function share(publicKey: Uint8Array, message: Uint8Array): bigint {
  return readUint(keccak256(concatBytes(publicKey, message)), 0, 32);
}

function encode(value: bigint): Uint8Array {
  return concatBytes(new Uint8Array(64), uintBytes(value, 32));
}

export const insecureHashScheme: SignatureScheme = {
  name: "insecure-hash (simulator only)",
  verify(publicKey, message, signature) {
    return bytesEqual(signature, encode(share(publicKey, message)));
  },
  aggregateSignatures(signatures) {
    let sum = 0n;
    for (const s of signatures) sum = (sum + readUint(s, 64, 32)) % MOD;
    return encode(sum);
  },
  verifyAggregate(publicKeys, message, signature) {
    if (publicKeys.length === 0) return false;
    let sum = 0n;
    for (const pk of publicKeys) sum = (sum + share(pk, message)) % MOD;
    return bytesEqual(signature, encode(sum));
  },
};

/** 48-byte deterministic "public key" for validator i of a run. */
export function insecurePublicKey(seed: number, index: number): Uint8Array {
  return concatBytes(keccak256(uintBytes(BigInt(seed) * 65536n + BigInt(index), 16)), new Uint8Array(16));
}

export function insecureSigner(publicKey: Uint8Array): Signer {
  return { publicKey, sign: (message) => encode(share(publicKey, message)) };
}
