// Raw Ethereum transaction decoding and admission checks shared by the mempool and the execution core.
// Accepted: legacy with EIP-155 replay protection, EIP-2930 and EIP-1559. Blob (3) and set-code (4) transactions are
// refused, as are legacy transactions without a chain id (they could be replayed from any other chain).
// Every peer-supplied byte string gets a typed result; nothing here throws on bad input.
import { type Common, createCustomCommon, Hardfork, Mainnet } from "@ethereumjs/common";
import {
  type AccessList2930Tx,
  create1559FeeMarketTxFromBytesArray,
  createAccessList2930TxFromBytesArray,
  createLegacyTxFromBytesArray,
  type FeeMarket1559Tx,
  getMinimumGasLimit,
  type LegacyTx,
  paramsTx,
} from "@ethereumjs/tx";
import { Address, bigIntToUnpaddedBytes } from "@ethereumjs/util";
import { bytesEqual, concatBytes, type Hex, toHex } from "../../consensus/bytes.ts";
import { decodeRlp, encodeRlp } from "../chain/rlp.ts";
import { fastKeccak256 } from "./keccak.ts";
import { recoverPublicKey } from "./secp256k1.ts";

/** Hard cap on one encoded transaction (same as the block wire format's MAX_TRANSACTION_BYTES). */
export const MAX_TX_BYTES = 128 * 1024;

/** The ethereumjs transaction classes this chain accepts. */
export type SupportedTransaction = LegacyTx | AccessList2930Tx | FeeMarket1559Tx;

/**
 * A transaction that passed every stateless check, with its sender. A class, not an object literal: a literal with a
 * getter fell back to a dictionary of properties (about 830 bytes of heap per transaction, which the pool keeps while
 * it holds the transaction).
 */
export class DecodedTx {
  readonly raw: Uint8Array;
  /** keccak256(raw), the Ethereum transaction hash. */
  readonly hash: Hex;
  readonly type: 0 | 1 | 2;
  /** Recovered sender, lowercase. */
  readonly from: Hex;
  /** `from` as an ethereumjs Address (state reads and writes take one). */
  readonly sender: Address;
  /** Lowercase; null for contract creation. */
  readonly to: Hex | null;
  readonly nonce: bigint;
  readonly gasLimit: bigint;
  readonly value: bigint;
  readonly data: Uint8Array;
  /** Always set: chain-id-less (pre-EIP-155) legacy transactions are refused. */
  readonly chainId: bigint | null;
  /** For legacy and EIP-2930 transactions both fee fields equal gasPrice. */
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
  /** Minimum gas limit the transaction needs: max(intrinsic gas, EIP-7623 calldata floor) under Prague. */
  readonly intrinsicGas: bigint;
  readonly #txOf: () => SupportedTransaction;

  constructor(
    raw: Uint8Array,
    hash: Hex,
    type: 0 | 1 | 2,
    sender: Address,
    fields: Omit<DecodedTx, "raw" | "hash" | "type" | "from" | "sender" | "tx">,
    txOf: () => SupportedTransaction,
  ) {
    this.raw = raw;
    this.hash = hash;
    this.type = type;
    this.from = sender.toString().toLowerCase() as Hex;
    this.sender = sender;
    this.to = fields.to;
    this.nonce = fields.nonce;
    this.gasLimit = fields.gasLimit;
    this.value = fields.value;
    this.data = fields.data;
    this.chainId = fields.chainId;
    this.maxFeePerGas = fields.maxFeePerGas;
    this.maxPriorityFeePerGas = fields.maxPriorityFeePerGas;
    this.intrinsicGas = fields.intrinsicGas;
    this.#txOf = txOf;
  }

  /**
   * The ethereumjs object, handed to runTx, with its sender pinned so that runTx does not recover it again. Built
   * on first use for plain transfers (most of them never need it: the execution core applies them directly).
   */
  get tx(): SupportedTransaction {
    return this.#txOf();
  }
}

export type TxDecodeErrorCode =
  | "malformed"
  | "unsupported_type"
  | "bad_signature"
  | "wrong_chain"
  | "too_large"
  | "intrinsic_gas";

export type TxDecodeResult =
  | { readonly ok: true; readonly tx: DecodedTx }
  | { readonly ok: false; readonly code: TxDecodeErrorCode; readonly message: string };

// ethereumjs asks for a number; chain ids above 2^53 would silently round.
const MAX_CHAIN_ID = BigInt(Number.MAX_SAFE_INTEGER);
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SECP256K1_N_HALF = SECP256K1_N / 2n;
// A node serves one chain, tests a handful: the cache stays tiny, the bound is a guard.
const MAX_CACHED_COMMONS = 16;
const commons = new Map<bigint, Common>();
const txCommons = new Map<bigint, Common>();

function fail(code: TxDecodeErrorCode, message: string): TxDecodeResult {
  return { ok: false, code, message };
}

function bigintOf(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(toHex(bytes));
}

function leftPad32(bytes: Uint8Array): Uint8Array {
  if (bytes.length > 32) throw new RangeError("signature component longer than 32 bytes");
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

/**
 * ethereumjs `customCrypto.ecrecover`: same contract as @ethereumjs/util `ecrecover` (v is 0/1 for typed
 * transactions, 27/28 or chainId*2+35/36 for legacy ones; returns the 64-byte public key), native when available.
 */
export function ecrecover(msgHash: Uint8Array, v: bigint, r: Uint8Array, s: Uint8Array, chainId?: bigint): Uint8Array {
  let recovery = v;
  if (v !== 0n && v !== 1n) recovery = chainId === undefined ? v - 27n : v - (chainId * 2n + 35n);
  if (recovery !== 0n && recovery !== 1n) throw new RangeError(`invalid signature v value ${v}`);
  return recoverPublicKey(msgHash, concatBytes(leftPad32(r), leftPad32(s)), recovery === 0n ? 0 : 1);
}

/** The Prague common for `chainId`, with native sender recovery. Shared by the execution core. */
export function commonFor(chainId: bigint): Common {
  const cached = commons.get(chainId);
  if (cached !== undefined) return cached;
  if (chainId <= 0n || chainId > MAX_CHAIN_ID) throw new RangeError(`chain id ${chainId} outside [1, 2^53 - 1]`);
  const common = createCustomCommon({ chainId: Number(chainId) }, Mainnet, {
    hardfork: Hardfork.Prague,
    customCrypto: { ecrecover, keccak256: fastKeccak256 },
  });
  if (commons.size >= MAX_CACHED_COMMONS) commons.clear();
  commons.set(chainId, common);
  return common;
}

/**
 * The common handed to every transaction object of `chainId`. @ethereumjs/tx copies the common it is given for each
 * transaction and merges its parameter tables into the copy through JSON.parse(JSON.stringify(...)): ~30 us of CPU
 * per transaction measured here (184 -> 155 us per decode), plus the garbage. This instance has the tables merged
 * once and hands itself out as its own copy.
 * Sharing is sound because nothing changes it: the hardfork is fixed (runTx switches a transaction's hardfork only
 * when it differs from the block's, and every block here uses the same Prague common) and transactions never
 * subscribe to its events.
 */
export function txCommonFor(chainId: bigint): Common {
  const cached = txCommons.get(chainId);
  if (cached !== undefined) return cached;
  const shared = commonFor(chainId).copy();
  shared.updateParams(paramsTx);
  shared.copy = () => shared;
  shared.updateParams = () => {};
  shared.setHardfork = (hardfork) => {
    if (hardfork !== shared.hardfork()) throw new Error(`the shared transaction common is ${shared.hardfork()}`);
  };
  if (txCommons.size >= MAX_CACHED_COMMONS) txCommons.clear();
  txCommons.set(chainId, shared);
  return shared;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Decodes a raw signed transaction, checks it belongs to `chainId`, is canonical, signed with a low-s signature,
 * and has a gas limit covering its intrinsic gas; recovers the sender. Stateless: nonce and balance are not checked.
 * Throws only if `chainId` itself is unusable (a configuration error). `knownHash`, when the caller already hashed
 * `raw`, must be keccak256(raw) (it becomes the transaction's id unchecked).
 */
export function decodeTransaction(
  raw: Uint8Array,
  chainId: bigint,
  knownHash?: Hex,
  /** "ethereumjs": every transaction through @ethereumjs/tx (the reference the differential test compares with). */
  path: "auto" | "ethereumjs" = "auto",
): TxDecodeResult {
  const common = txCommonFor(chainId);
  if (raw.length > MAX_TX_BYTES) return fail("too_large", `${raw.length} bytes exceed the maximum ${MAX_TX_BYTES}`);
  if (raw.length === 0) return fail("malformed", "empty transaction");
  const first = raw[0] as number;
  let type: 0 | 1 | 2;
  let payload: Uint8Array;
  if (first >= 0xc0) {
    type = 0;
    payload = raw;
  } else if (first === 1 || first === 2) {
    type = first;
    payload = raw.subarray(1);
  } else if (first < 0x80) {
    return fail("unsupported_type", `transaction type ${first} is not accepted (only 0, 1 and 2)`);
  } else {
    return fail("malformed", "not an RLP list nor a typed transaction envelope");
  }

  let fields: Uint8Array[];
  try {
    const decoded = decodeRlp(payload);
    if (!Array.isArray(decoded)) return fail("malformed", "transaction payload is not an RLP list");
    fields = decoded as Uint8Array[];
  } catch (error) {
    return fail("malformed", `invalid RLP: ${messageOf(error)}`);
  }
  const expectedFields = type === 0 ? 9 : type === 1 ? 11 : 12;
  if (fields.length !== expectedFields) {
    return fail("malformed", `type ${type} transaction needs ${expectedFields} signed fields, got ${fields.length}`);
  }
  for (const [index, field] of fields.entries()) {
    // Only the access list (typed index 7 or 8) is itself a list.
    const isAccessList = (type === 1 && index === 7) || (type === 2 && index === 8);
    if (isAccessList !== Array.isArray(field)) return fail("malformed", `field ${index} has the wrong RLP kind`);
  }

  // Chain checks come before construction so that they get their own code instead of an ethereumjs message.
  if (type === 0) {
    const v = bigintOf(fields[6] as Uint8Array);
    if (v === 27n || v === 28n) return fail("wrong_chain", "legacy transaction without EIP-155 replay protection");
    if (v < 37n) return fail("bad_signature", `legacy v = ${v} is neither 27/28 nor EIP-155`);
    const txChainId = (v - 35n) / 2n;
    if (txChainId !== chainId)
      return fail("wrong_chain", `transaction for chain ${txChainId}, this chain is ${chainId}`);
  } else {
    const txChainId = bigintOf(fields[0] as Uint8Array);
    if (txChainId !== chainId)
      return fail("wrong_chain", `transaction for chain ${txChainId}, this chain is ${chainId}`);
  }

  // Signature shape checks also precede construction (ethereumjs throws on them with generic errors).
  const v = bigintOf(fields[fields.length - 3] as Uint8Array);
  const r = bigintOf(fields[fields.length - 2] as Uint8Array);
  const s = bigintOf(fields[fields.length - 1] as Uint8Array);
  if (type !== 0 && v !== 0n && v !== 1n) return fail("bad_signature", `y parity ${v} is not 0 or 1`);
  if (r === 0n || r >= SECP256K1_N || s === 0n) return fail("bad_signature", "r or s out of range");
  if (s > SECP256K1_N_HALF) return fail("bad_signature", "s value above secp256k1n/2 (EIP-2)");

  if (path === "auto" && isPlainTransfer(type, fields)) {
    return decodePlainTransfer(raw, type, fields, chainId, common, v, knownHash);
  }
  return decodeWithEthereumjs(raw, type, fields, chainId, common, knownHash);
}

/**
 * A value transfer to an address: `to` set, no data, no access list. Such a transaction needs nothing of
 * @ethereumjs/tx to be checked and have its sender recovered, and about 2/3 of decoding one was building the ethereumjs
 * object (field conversions, a re-encoding for the canonical check, another for the signing hash).
 */
function isPlainTransfer(type: 0 | 1 | 2, fields: readonly (Uint8Array | Uint8Array[])[]): boolean {
  const to = fields[type === 0 ? 3 : type === 1 ? 4 : 5] as Uint8Array;
  const data = fields[type === 0 ? 5 : type === 1 ? 6 : 7] as Uint8Array;
  const accessList = type === 0 ? [] : (fields[type === 1 ? 7 : 8] as Uint8Array[]);
  return to.length === 20 && data.length === 0 && accessList.length === 0;
}

const MAX_UINT256 = (1n << 256n) - 1n;
const MAX_UINT64 = (1n << 64n) - 1n;
/** The data of every plain transfer (a zero-length array has nothing to change, so one serves all). */
const NO_DATA = new Uint8Array(0);
const PLAIN_TRANSFER_GAS = 21_000n;

/**
 * decodeWithEthereumjs for a plain transfer, with the same verdicts (test/execution/tx-decode.test.ts compares the
 * two on valid, boundary and mutated transactions): the checks @ethereumjs/tx makes on such a transaction, then the
 * signing hash from the decoded fields and the sender. The ethereumjs object is built only if asked for.
 */
function decodePlainTransfer(
  raw: Uint8Array,
  type: 0 | 1 | 2,
  fields: Uint8Array[],
  chainId: bigint,
  common: Common,
  v: bigint,
  knownHash: Hex | undefined,
): TxDecodeResult {
  // Integer fields: minimal big-endian (what makes re-encoding give `raw` back, with the RLP decoder's own checks).
  const integers =
    type === 0 ? [0, 1, 2, 4, 6, 7, 8] : type === 1 ? [0, 1, 2, 3, 5, 8, 9, 10] : [0, 1, 2, 3, 4, 6, 9, 10, 11];
  for (const i of integers) {
    const field = fields[i] as Uint8Array;
    if (field.length > 32) return fail("malformed", `field ${i} is longer than 32 bytes`);
    if (field.length > 0 && field[0] === 0) return fail("malformed", "non-canonical encoding");
  }
  const at = (i: number) => bigintOf(fields[i] as Uint8Array);
  const nonce = at(type === 0 ? 0 : 1);
  const maxPriorityFeePerGas = at(type === 0 ? 1 : 2);
  const maxFeePerGas = type === 2 ? at(3) : maxPriorityFeePerGas;
  const gasLimit = at(type === 0 ? 2 : type === 1 ? 3 : 4);
  const value = at(type === 0 ? 4 : type === 1 ? 5 : 6);
  if (nonce >= MAX_UINT64) return fail("malformed", `nonce ${nonce} is not below 2^64 - 1 (EIP-2681)`);
  if (gasLimit > MAX_UINT64) return fail("malformed", `gas limit ${gasLimit} exceeds 2^64 - 1`);
  if (maxFeePerGas < maxPriorityFeePerGas) {
    return fail("malformed", "maxFeePerGas cannot be less than maxPriorityFeePerGas");
  }
  if (gasLimit * maxFeePerGas > MAX_UINT256) return fail("malformed", "gas limit * fee per gas exceeds 2^256 - 1");
  if (gasLimit < PLAIN_TRANSFER_GAS) {
    return fail("intrinsic_gas", `gas limit ${gasLimit} is below the intrinsic gas ${PLAIN_TRANSFER_GAS}`);
  }

  // The signing hash: the unsigned fields (EIP-155 adds chainId, 0, 0 to a legacy transaction's).
  const unsigned = fields.slice(0, fields.length - 3);
  const message =
    type === 0
      ? encodeRlp([...unsigned, bigIntToUnpaddedBytes(chainId), NO_DATA, NO_DATA])
      : concatBytes(Uint8Array.of(type), encodeRlp(unsigned));
  let sender: Address;
  try {
    const publicKey = ecrecover(
      fastKeccak256(message),
      v,
      fields[fields.length - 2] as Uint8Array,
      fields[fields.length - 1] as Uint8Array,
      type === 0 ? chainId : undefined,
    );
    sender = new Address(fastKeccak256(publicKey).subarray(12));
  } catch (error) {
    return fail("bad_signature", messageOf(error));
  }

  const to = fields[type === 0 ? 3 : type === 1 ? 4 : 5] as Uint8Array;
  const fieldsOut = {
    to: toHex(to),
    nonce,
    gasLimit,
    value,
    data: NO_DATA,
    chainId,
    maxFeePerGas,
    maxPriorityFeePerGas,
    intrinsicGas: PLAIN_TRANSFER_GAS,
  };
  return decoded(raw, knownHash, type, sender, fieldsOut, lazyTransaction(raw, type, common, sender));
}

/**
 * Builds the ethereumjs object of a checked transaction on first call, decoding `raw` again. Its own scope, so that
 * what a pooled transaction keeps alive is `raw`, not the decoded field list (12 views into `raw`).
 */
function lazyTransaction(
  raw: Uint8Array,
  type: 0 | 1 | 2,
  common: Common,
  sender: Address,
): () => SupportedTransaction {
  let built: SupportedTransaction | undefined;
  return () => {
    if (built === undefined) {
      const fields = decodeRlp(type === 0 ? raw : raw.subarray(1)) as Uint8Array[];
      built = ethereumjsTransaction(type, fields, common);
      pinSender(built, sender);
    }
    return built;
  };
}

/** The successful result of either path; `tx` is the ethereumjs object, from `txOf` when first asked for. */
function decoded(
  raw: Uint8Array,
  knownHash: Hex | undefined,
  type: 0 | 1 | 2,
  sender: Address,
  fields: Omit<DecodedTx, "raw" | "hash" | "type" | "from" | "sender" | "tx">,
  txOf: () => SupportedTransaction,
): TxDecodeResult {
  return { ok: true, tx: new DecodedTx(raw, knownHash ?? toHex(fastKeccak256(raw)), type, sender, fields, txOf) };
}

/** The ethereumjs object; throws on fields it refuses. */
function ethereumjsTransaction(type: 0 | 1 | 2, fields: Uint8Array[], common: Common): SupportedTransaction {
  // Field counts and kinds were checked, which is what ethereumjs' per-type tuple types describe.
  return type === 0
    ? createLegacyTxFromBytesArray(fields as Parameters<typeof createLegacyTxFromBytesArray>[0], {
        common,
        freeze: false,
      })
    : type === 1
      ? createAccessList2930TxFromBytesArray(fields as Parameters<typeof createAccessList2930TxFromBytesArray>[0], {
          common,
          freeze: false,
        })
      : create1559FeeMarketTxFromBytesArray(fields as Parameters<typeof create1559FeeMarketTxFromBytesArray>[0], {
          common,
          freeze: false,
        });
}

/**
 * Pins the recovered sender on the object: ethereumjs would recover and hash the key again (pure-JS keccak) at every
 * getSenderAddress() call, and the pool, the builder and runTx each call it.
 */
function pinSender(tx: SupportedTransaction, sender: Address): Address {
  Object.defineProperty(tx, "getSenderAddress", { value: () => sender });
  return sender;
}

/** The general path: the ethereumjs object checks the fields, gives the signing hash and recovers the sender. */
function decodeWithEthereumjs(
  raw: Uint8Array,
  type: 0 | 1 | 2,
  fields: Uint8Array[],
  chainId: bigint,
  common: Common,
  knownHash: Hex | undefined,
): TxDecodeResult {
  let tx: SupportedTransaction;
  try {
    tx = ethereumjsTransaction(type, fields, common);
  } catch (error) {
    return fail("malformed", messageOf(error));
  }
  // The hash and the transactions trie use `raw`; a non-canonical encoding would give the same transaction two ids.
  if (!bytesEqual(tx.serialize(), raw)) return fail("malformed", "non-canonical encoding");

  let intrinsicGas: bigint;
  try {
    intrinsicGas = getMinimumGasLimit(tx);
  } catch (error) {
    return fail("malformed", messageOf(error));
  }
  if (tx.gasLimit < intrinsicGas) {
    return fail("intrinsic_gas", `gas limit ${tx.gasLimit} is below the intrinsic gas ${intrinsicGas}`);
  }

  let sender: Address;
  try {
    // The address from the recovered key with the fast keccak.
    sender = pinSender(tx, new Address(fastKeccak256(tx.getSenderPublicKey()).subarray(12)));
  } catch (error) {
    return fail("bad_signature", messageOf(error));
  }

  const fee = type === 0 || type === 1 ? (tx as LegacyTx | AccessList2930Tx).gasPrice : undefined;
  const fieldsOut = {
    to: tx.to === undefined ? null : (tx.to.toString().toLowerCase() as Hex),
    nonce: tx.nonce,
    gasLimit: tx.gasLimit,
    value: tx.value,
    data: tx.data,
    chainId,
    maxFeePerGas: fee ?? (tx as FeeMarket1559Tx).maxFeePerGas,
    maxPriorityFeePerGas: fee ?? (tx as FeeMarket1559Tx).maxPriorityFeePerGas,
    intrinsicGas,
  };
  return decoded(raw, knownHash, type, sender, fieldsOut, () => tx);
}

/** Priority fee per gas the block producer receives: min(maxPriority, maxFee - baseFee); negative if maxFee < baseFee. */
export function effectiveTip(tx: DecodedTx, baseFee: bigint): bigint {
  const headroom = tx.maxFeePerGas - baseFee;
  return tx.maxPriorityFeePerGas < headroom ? tx.maxPriorityFeePerGas : headroom;
}
