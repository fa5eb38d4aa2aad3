// Stateless admission of a Solana wire transaction: decode with @solana/kit's codecs, insist on the one canonical
// encoding, refuse what the executor cannot run (versions other than legacy/0, address lookup tables), verify every
// Ed25519 signature once. Never throws on bad input: peer bytes get a typed verdict.
import { createPublicKey, type KeyObject, verify } from "node:crypto";
import {
  getBase58Decoder,
  getBase58Encoder,
  getCompiledTransactionMessageDecoder,
  getCompiledTransactionMessageEncoder,
  getTransactionDecoder,
  getTransactionEncoder,
} from "@solana/kit";
import { bytesEqual } from "../../../consensus/bytes.ts";
import { decodeGatewayCall, EVM_GATEWAY_PROGRAM, type GatewayCall, MAX_GATEWAY_TX_GAS } from "../cross-vm.ts";

/** Solana's PACKET_DATA_SIZE: the largest transaction the network carries. */
export const MAX_SVM_TX_BYTES = 1232;

export type SvmTxRejectCode =
  /** more than MAX_SVM_TX_BYTES */
  | "too_large"
  /** not a transaction, trailing bytes, or not the canonical encoding of what it decodes to */
  | "malformed"
  /** a version other than legacy and 0, a v0 message with address lookup tables, or EVM gateway calls mixed with
   *  other instructions */
  | "unsupported"
  /** a signature count that does not match the signers, or a signature that does not verify */
  | "bad_signature";

export interface DecodedSvmTx {
  /** The wire bytes (what litesvm executes and what a block carries). */
  readonly raw: Uint8Array;
  /** The first signature, base58: the transaction id and the replay-protection key. */
  readonly signature: string;
  readonly signatureBytes: Uint8Array;
  readonly version: "legacy" | 0;
  /** Static account keys, 32 bytes each, in message order; index 0 is the fee payer. */
  readonly accountKeys: readonly Uint8Array[];
  /** Base58 of `accountKeys`. */
  readonly accounts: readonly string[];
  /** Per account key: whether the message header marks it writable (before the runtime demotes reserved keys). */
  readonly writable: readonly boolean[];
  readonly numSignatures: number;
  /** The lifetime token, base58 (a recent blockhash; durable nonces are not supported). */
  readonly recentBlockhash: string;
  readonly recentBlockhashBytes: Uint8Array;
  /**
   * The EVM calls of a gateway transaction (every instruction calls EVM_GATEWAY_PROGRAM: ../cross-vm.ts), in order;
   * null for an ordinary transaction, which litesvm runs.
   */
  readonly evmCalls: readonly GatewayCall[] | null;
}

export type SvmDecodeResult =
  | { readonly ok: true; readonly tx: DecodedSvmTx }
  | { readonly ok: false; readonly code: SvmTxRejectCode; readonly message: string };

const ED25519_SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
/** Parsed public keys by base58: payers sign many transactions. Bounded; cleared wholesale when full. */
const KEY_CACHE_MAX = 4096;
const keyCache = new Map<string, KeyObject | null>();

function publicKeyOf(address: string, bytes: Uint8Array): KeyObject | null {
  const cached = keyCache.get(address);
  if (cached !== undefined) return cached;
  let key: KeyObject | null;
  try {
    const der = new Uint8Array(ED25519_SPKI_PREFIX.length + 32);
    der.set(ED25519_SPKI_PREFIX);
    der.set(bytes, ED25519_SPKI_PREFIX.length);
    key = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
  } catch {
    key = null; // not a curve point: no signature can verify
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(address, key);
  return key;
}

// Building kit codecs is costly (they are composed at call time): build them once.
const transactionDecoder = getTransactionDecoder();
const transactionEncoder = getTransactionEncoder();
const messageDecoder = getCompiledTransactionMessageDecoder();
const messageEncoder = getCompiledTransactionMessageEncoder();
const base58Encoder = getBase58Encoder();
const base58Decoder = getBase58Decoder();

function reject(code: SvmTxRejectCode, message: string): SvmDecodeResult {
  return { ok: false, code, message };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Decodes, checks and verifies `raw`. Stateless: blockhash window, replay and fee payer are the executor's. */
export function decodeSvmTransaction(raw: Uint8Array): SvmDecodeResult {
  if (!(raw instanceof Uint8Array)) return reject("malformed", "not bytes");
  if (raw.length > MAX_SVM_TX_BYTES) return reject("too_large", `${raw.length} bytes exceed ${MAX_SVM_TX_BYTES}`);
  let tx: ReturnType<ReturnType<typeof getTransactionDecoder>["decode"]>;
  let message: ReturnType<ReturnType<typeof getCompiledTransactionMessageDecoder>["decode"]>;
  try {
    tx = transactionDecoder.decode(raw);
    message = messageDecoder.decode(tx.messageBytes);
  } catch (error) {
    return reject("malformed", messageOf(error));
  }
  if (message.version !== "legacy" && message.version !== 0) {
    return reject("unsupported", `transaction version ${String(message.version)}`);
  }
  if (message.version === 0 && (message.addressTableLookups?.length ?? 0) > 0) {
    return reject("unsupported", "address lookup tables are not supported");
  }
  // One transaction, one encoding: the bytes are what blocks carry and what the signature covers.
  try {
    const messageAgain = messageEncoder.encode(message);
    if (!bytesEqual(new Uint8Array(messageAgain), new Uint8Array(tx.messageBytes))) {
      return reject("malformed", "message is not canonically encoded");
    }
    if (!bytesEqual(new Uint8Array(transactionEncoder.encode(tx)), raw)) {
      return reject("malformed", "trailing bytes or non-canonical transaction encoding");
    }
  } catch (error) {
    return reject("malformed", messageOf(error));
  }
  const { numSignerAccounts, numReadonlySignerAccounts, numReadonlyNonSignerAccounts } = message.header;
  const accounts = message.staticAccounts.map(String);
  const n = accounts.length;
  if (numSignerAccounts < 1 || numSignerAccounts > n || numReadonlySignerAccounts >= numSignerAccounts) {
    return reject("malformed", "header: no writable fee payer or more signers than accounts");
  }
  if (numReadonlyNonSignerAccounts > n - numSignerAccounts) {
    return reject("malformed", "header: more read-only non-signers than non-signers");
  }
  if (new Set(accounts).size !== n) return reject("malformed", "duplicate account keys");
  const accountKeys = accounts.map((a) => new Uint8Array(base58Encoder.encode(a)));
  const signatures = Object.values(tx.signatures);
  if (signatures.length !== numSignerAccounts) {
    return reject("bad_signature", `${signatures.length} signatures for ${numSignerAccounts} signers`);
  }
  const messageBytes = new Uint8Array(tx.messageBytes);
  for (let i = 0; i < numSignerAccounts; i++) {
    const signature = signatures[i];
    const address = accounts[i] as string;
    if (signature === null || signature === undefined) return reject("bad_signature", `signer ${i} did not sign`);
    const key = publicKeyOf(address, accountKeys[i] as Uint8Array);
    let valid = false;
    try {
      valid = key !== null && verify(null, messageBytes, key, signature);
    } catch {
      valid = false;
    }
    if (!valid) return reject("bad_signature", `signature ${i} (${address}) does not verify`);
  }
  const writable = accounts.map((_, i) =>
    i < numSignerAccounts ? i < numSignerAccounts - numReadonlySignerAccounts : i < n - numReadonlyNonSignerAccounts,
  );
  const evmCalls = gatewayCallsOf(message.instructions, accounts, numSignerAccounts);
  if (typeof evmCalls === "string") return reject(evmCalls.startsWith("mixed") ? "unsupported" : "malformed", evmCalls);
  const first = new Uint8Array(signatures[0] as Uint8Array);
  const recentBlockhash = String(message.lifetimeToken);
  return {
    ok: true,
    tx: {
      raw,
      signature: base58Decoder.decode(first),
      signatureBytes: first,
      version: message.version,
      accountKeys,
      accounts,
      writable,
      numSignatures: numSignerAccounts,
      recentBlockhash,
      recentBlockhashBytes: new Uint8Array(base58Encoder.encode(recentBlockhash)),
      evmCalls,
    },
  };
}

/** The gateway calls of a transaction, null when it has none, or why its gateway instructions are refused. */
function gatewayCallsOf(
  instructions: readonly {
    readonly programAddressIndex: number;
    readonly accountIndices?: readonly number[];
    readonly data?: ArrayLike<number>;
  }[],
  accounts: readonly string[],
  numSignatures: number,
): GatewayCall[] | null | string {
  const isGateway = instructions.map((ix) => accounts[ix.programAddressIndex] === EVM_GATEWAY_PROGRAM);
  if (!isGateway.includes(true)) return null;
  if (isGateway.includes(false)) return "mixed: EVM gateway calls cannot share a transaction with other instructions";
  const calls: GatewayCall[] = [];
  let total = 0n;
  for (const [i, ix] of instructions.entries()) {
    const call = decodeGatewayCall(ix.accountIndices ?? [], new Uint8Array(ix.data ?? []), numSignatures);
    if (typeof call === "string") return `gateway instruction ${i}: ${call}`;
    total += call.gasLimit;
    calls.push(call);
  }
  if (total > MAX_GATEWAY_TX_GAS) return `gateway calls ask for ${total} gas, more than ${MAX_GATEWAY_TX_GAS}`;
  return calls;
}
