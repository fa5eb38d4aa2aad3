// Deterministic bench accounts and EIP-1559 transaction signing, fast enough to pre-sign a whole run before it starts:
// the native libsecp256k1 binding signs ~20x faster than pure JS (60,000 transactions in a few seconds instead of a
// minute). `secp256k1/bindings` is loaded directly so that a missing binary shows (the package index would fall back
// to elliptic silently); @noble/curves is the fallback, named in `signerBackend`.
import { createRequire } from "node:module";
import { RLP } from "@ethereumjs/rlp";
import { secp256k1 as noble } from "@noble/curves/secp256k1.js";
import { concatBytes, fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";

interface NativeSecp256k1 {
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number };
  publicKeyCreate(seckey: Uint8Array, compressed: boolean): Uint8Array;
  privateKeyVerify(seckey: Uint8Array): boolean;
}

function loadNative(): NativeSecp256k1 | null {
  try {
    return createRequire(import.meta.url)("secp256k1/bindings") as NativeSecp256k1;
  } catch {
    return null;
  }
}

const native = loadNative();
export const signerBackend: "native" | "noble" = native === null ? "noble" : "native";

export interface BenchAccount {
  readonly privateKey: Uint8Array;
  /** Lowercase 0x address. */
  readonly address: Hex;
}

export function accountFromKey(privateKey: Uint8Array): BenchAccount {
  const valid = native === null ? noble.utils.isValidSecretKey(privateKey) : native.privateKeyVerify(privateKey);
  if (!valid) throw new RangeError("not a valid secp256k1 private key");
  const pub = native === null ? noble.getPublicKey(privateKey, false) : native.publicKeyCreate(privateKey, false);
  return { privateKey, address: toHex(keccak256(pub.subarray(1)).subarray(12)) };
}

/**
 * `count` accounts from a seed: key i = keccak256("lumia-dcn bench <seed> sender <i>"). The same seed gives the same
 * senders on every target, so the workloads are byte-for-byte the same where chain id and nonces agree.
 */
export function benchAccounts(seed: string, count: number): BenchAccount[] {
  return Array.from({ length: count }, (_, i) =>
    accountFromKey(keccak256(utf8(`lumia-dcn bench ${seed} sender ${i}`))),
  );
}

export interface Eip1559Fields {
  readonly chainId: bigint;
  readonly nonce: number;
  readonly maxPriorityFeePerGas: bigint;
  readonly maxFeePerGas: bigint;
  readonly gas: bigint;
  /** null: contract creation. */
  readonly to: Hex | null;
  readonly value: bigint;
  readonly data: Uint8Array;
}

export interface SignedTx {
  readonly raw: Uint8Array;
  readonly hash: Hex;
}

/** Minimal big-endian bytes of a non-negative integer (RLP's integer form: 0 is the empty string). */
function quantity(value: bigint | number): Uint8Array {
  let v = BigInt(value);
  if (v < 0n) throw new RangeError(`negative quantity ${value}`);
  const bytes: number[] = [];
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return Uint8Array.from(bytes);
}

const TYPE_EIP1559 = Uint8Array.of(2);

/** EIP-1559 (type 2) transaction: 0x02 || rlp([chainId, nonce, tip, maxFee, gas, to, value, data, [], y, r, s]). */
export function signEip1559(tx: Eip1559Fields, privateKey: Uint8Array): SignedTx {
  const fields = [
    quantity(tx.chainId),
    quantity(tx.nonce),
    quantity(tx.maxPriorityFeePerGas),
    quantity(tx.maxFeePerGas),
    quantity(tx.gas),
    tx.to === null ? new Uint8Array(0) : fromHex(tx.to),
    quantity(tx.value),
    tx.data,
    [],
  ];
  const digest = keccak256(concatBytes(TYPE_EIP1559, RLP.encode(fields)));
  let compact: Uint8Array;
  let recovery: number;
  if (native !== null) {
    const sig = native.ecdsaSign(digest, privateKey);
    compact = sig.signature;
    recovery = sig.recid;
  } else {
    const sig = noble.Signature.fromBytes(
      noble.sign(digest, privateKey, { prehash: false, format: "recovered" }),
      "recovered",
    );
    compact = sig.toBytes("compact");
    recovery = sig.recovery ?? 0;
  }
  // r and s as RLP integers: leading zero bytes stripped.
  const r = quantity(BigInt(toHex(compact.subarray(0, 32))));
  const s = quantity(BigInt(toHex(compact.subarray(32, 64))));
  const raw = concatBytes(TYPE_EIP1559, RLP.encode([...fields, quantity(recovery), r, s]));
  return { raw, hash: toHex(keccak256(raw)) };
}

/** ABI encoding of Token.transfer(address,uint256): selector a9059cbb, then both words. */
export function erc20TransferData(to: Hex, amount: bigint): Uint8Array {
  return concatBytes(fromHex("0xa9059cbb"), word(fromHex(to)), word(quantity(amount)));
}

/** ABI encoding of one constructor argument (uint256) after the creation code. */
export function deployData(bytecode: Hex, arg: bigint): Uint8Array {
  return concatBytes(fromHex(bytecode), word(quantity(arg)));
}

function word(bytes: Uint8Array): Uint8Array {
  if (bytes.length > 32) throw new RangeError("ABI word longer than 32 bytes");
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

/** The address a contract created by `sender` at `nonce` gets: keccak256(rlp([sender, nonce]))[12:]. */
export function createdAddress(sender: Hex, nonce: number): Hex {
  return toHex(keccak256(RLP.encode([fromHex(sender), quantity(nonce)])).subarray(12));
}
