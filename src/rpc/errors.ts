// JSON-RPC error codes (JSON-RPC 2.0 and EIP-1474) and the geth-compatible messages wallets and libraries match on
// (viem maps "nonce too low", "insufficient funds", "execution reverted" and friends to typed errors by message).
import { fromHex, type Hex } from "../../consensus/bytes.ts";

export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  /** Generic server error: refused transactions, missing state. */
  server: -32000,
  /** EIP-1474 "limit exceeded": log range or result count too large, server busy. */
  limitExceeded: -32005,
  /** geth's code for a reverted eth_call / eth_estimateGas, with the revert data in `data`. */
  executionReverted: 3,
  /** geth's code for blocks, receipts and logs a node no longer keeps (history expiry, EIP-4444). */
  prunedHistory: 4444,
} as const;

export interface JsonRpcErrorBody {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

/** What a method handler gives back: its result or an error for the caller. Peer input never makes handlers throw. */
export type Outcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: JsonRpcErrorBody };

export function success(result: unknown): Outcome {
  return { ok: true, result };
}

export function failure(code: number, message: string, data?: unknown): Outcome & { ok: false } {
  return { ok: false, error: data === undefined ? { code, message } : { code, message, data } };
}

export function invalidParams(message: string): Outcome & { ok: false } {
  return failure(ErrorCode.invalidParams, message);
}

/**
 * A subscription method over a transport that cannot push notifications (HTTP): geth's answer, code -32601 (method not
 * found) with "notifications not supported", which libraries already know.
 */
export function notificationsUnsupported(): Outcome & { ok: false } {
  return failure(ErrorCode.methodNotFound, "notifications not supported");
}

/**
 * What a backend throws for a request it cannot answer for a reason the caller must see, not a fault of the node
 * (state pruned): the dispatcher answers with this code and message, and logs nothing.
 */
export class RpcRequestError extends Error {
  override readonly name = "RpcRequestError";
  constructor(
    readonly rpcCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** A state read at a height whose state this node no longer keeps (storage.stateHistory, docs/storage.md). */
export function statePrunedError(height: number, keptFrom: number): RpcRequestError {
  return new RpcRequestError(
    ErrorCode.server,
    `state of block ${height} is pruned: this node keeps the state of blocks ${keptFrom} and later (storage.stateHistory)`,
  );
}

/**
 * Runs a read of the state of `height`, refused as pruned when that state is older than `keptFrom()`. The check is
 * made again when the read fails: a drop of older state (docs/storage.md "State generations") may begin while the read
 * runs, and a node missing under it then means "pruned", not an internal error.
 */
export async function readPrunableState<T>(height: number, keptFrom: () => number, read: () => Promise<T>): Promise<T> {
  const before = keptFrom();
  if (height < before) throw statePrunedError(height, before);
  try {
    return await read();
  } catch (e) {
    const after = keptFrom();
    if (height < after) throw statePrunedError(height, after);
    throw e;
  }
}

/**
 * A read of the history of a height this node no longer keeps (storage.blockHistory, docs/storage.md "History
 * pruning"): geth's code and words, which clients know, then what this node keeps.
 */
export function historyPrunedError(height: number, keptFrom: number): RpcRequestError {
  return new RpcRequestError(
    ErrorCode.prunedHistory,
    `pruned history unavailable: block ${height} is older than the blocks this node keeps, ${keptFrom} and later (storage.blockHistory)`,
  );
}

/**
 * Runs a read of the history of `height` (its block, certificate or receipts); when it finds nothing below the lowest
 * height whose history is kept, the answer is that it is pruned. The check follows the read, so a deletion that
 * passes the height meanwhile gives that answer too. The few old heights kept for light clients are served.
 */
export async function readPrunableHistory<T>(
  height: number,
  keptFrom: () => number,
  read: () => Promise<T | undefined>,
): Promise<T | undefined> {
  const value = await read();
  if (value !== undefined || height < 1) return value;
  const from = keptFrom();
  if (height < from) throw historyPrunedError(height, from);
  return undefined;
}

/** Operational failure of the HTTP server itself (cannot listen). */
export class RpcServerError extends Error {
  override readonly name = "RpcServerError";
  constructor(
    readonly code: "listen_failed",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Mempool refusal codes -> geth's messages. Libraries match these strings (viem: NonceTooLowError,
 * InsufficientFundsError, TransactionUnderpricedError...), so they are kept word for word.
 */
const SEND_MESSAGES: Readonly<Record<string, string>> = {
  nonce_too_low: "nonce too low",
  nonce_gap: "nonce too high",
  nonce_too_high: "nonce too high",
  insufficient_funds: "insufficient funds for gas * price + value",
  fee_too_low: "transaction underpriced",
  underpriced_replacement: "replacement transaction underpriced",
  known: "already known",
  already_known: "already known",
  intrinsic_gas: "intrinsic gas too low",
  gas_limit: "exceeds block gas limit",
  too_large: "oversized data",
  pool_full: "txpool is full",
  sender_full: "txpool is full",
  rate_limited: "rate limited",
  unsupported_type: "transaction type not supported",
  wrong_chain: "invalid chain id for signer",
  bad_signature: "invalid sender",
  malformed: "invalid transaction",
};

/** The -32000 message for a refused transaction: geth's phrase, then the pool's detail when it adds something. */
export function sendRefusalMessage(code: string, detail: string): string {
  const phrase = SEND_MESSAGES[code];
  if (phrase === undefined) return detail.length > 0 ? `${code}: ${detail}` : code;
  return detail.length > 0 && detail !== phrase ? `${phrase}: ${detail}` : phrase;
}

const ERROR_SELECTOR = "0x08c379a0";
const PANIC_SELECTOR = "0x4e487b71";
const PANIC_REASONS: Readonly<Record<number, string>> = {
  0: "generic panic",
  1: "assert(false)",
  17: "arithmetic underflow or overflow",
  18: "division or modulo by zero",
  33: "enum overflow",
  34: "invalid encoded storage byte array accessed",
  49: "out-of-bounds array access; popping on an empty array",
  50: "out-of-bounds access of an array or bytesN",
  65: "out of memory",
  81: "uninitialized function",
};

/** Decodes Solidity's Error(string) and Panic(uint256) revert data, as geth does; null for anything else. */
export function decodeRevertReason(data: Hex): string | null {
  if (data.length < 10) return null;
  const selector = data.slice(0, 10).toLowerCase();
  try {
    const bytes = fromHex(data);
    if (selector === PANIC_SELECTOR && bytes.length === 36) {
      const code = Number(BigInt(`0x${data.slice(10)}`) & 0xffn);
      return PANIC_REASONS[code] ?? `unknown panic code 0x${code.toString(16)}`;
    }
    if (selector !== ERROR_SELECTOR || bytes.length < 4 + 64) return null;
    const offset = Number(BigInt(`0x${data.slice(10, 74)}`));
    if (offset + 32 > bytes.length - 4) return null;
    const lengthStart = 4 + offset;
    const length = Number(BigInt(`0x${data.slice(2 + 2 * lengthStart, 2 + 2 * (lengthStart + 32))}`));
    if (lengthStart + 32 + length > bytes.length) return null;
    return new TextDecoder("utf-8", { fatal: false }).decode(
      bytes.subarray(lengthStart + 32, lengthStart + 32 + length),
    );
  } catch {
    return null;
  }
}

/** geth's revert error: code 3, "execution reverted[: reason]", data = the raw revert data. */
export function revertError(returnData: Hex, backendReason: string | null): Outcome & { ok: false } {
  const reason = backendReason !== null && backendReason.length > 0 ? backendReason : decodeRevertReason(returnData);
  return failure(
    ErrorCode.executionReverted,
    reason === null ? "execution reverted" : `execution reverted: ${reason}`,
    returnData,
  );
}
