// eth_simulateV1 on the execution core (ExecutionCore.simulate): blocks of calls run one after another on one private
// state view, each call a transaction without a signature, its state changes seen by the calls and blocks after it.
// The types here, and the ETH transfer logs of `traceTransfers` built from a callTracer trace of each call.
import { type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import type { BlockEnv, CallRequest, StateOverride } from "./core.ts";
import type { CallFrame } from "./tracers.ts";

/** geth's bound on the blocks of one simulation (gaps between block numbers count: they are filled). */
export const MAX_SIMULATED_BLOCKS = 256;
/** Calls of one simulation over all its blocks. */
export const MAX_SIMULATED_CALLS = 1_000;

/** One call: a transaction without a signature, from `from` as given. */
export interface SimulatedCallRequest extends CallRequest {
  /** Default: the sender's nonce at that point of the simulation. */
  readonly nonce?: bigint;
  readonly gasPrice?: bigint;
  readonly maxFeePerGas?: bigint;
  readonly maxPriorityFeePerGas?: bigint;
}

/** A block's fields as asked for; absent ones follow from the parent (the base block or the previous simulated one). */
export interface SimulatedBlockRequest {
  readonly number?: number;
  readonly timestampMs?: number;
  readonly gasLimit?: bigint;
  readonly feeRecipient?: Hex;
  readonly prevRandao?: Hex;
  readonly baseFeePerGas?: bigint;
  readonly stateOverrides?: readonly StateOverride[];
  readonly calls: readonly SimulatedCallRequest[];
}

/** The committed block the simulation starts on. */
export interface SimulationBase {
  readonly chainId: bigint;
  readonly height: number;
  readonly hash: Hex;
  readonly timestampMs: number;
  readonly gasLimit: bigint;
  readonly gasUsed: bigint;
  readonly baseFeePerGas: bigint;
  /** BLOCKHASH of committed heights. */
  readonly blockHash: (height: number) => Hex | null;
}

export interface SimulateOptions {
  /** Nonce, balance and base-fee checks as for a real transaction (and the base fee from the parent, not 0). */
  readonly validation: boolean;
  /** ETH transfers as ERC-20 Transfer logs of 0xeeee...eeee (ERC-7528), in execution order with the real logs. */
  readonly traceTransfers: boolean;
  /** Gas of all calls together at most (the node's rpc gas cap). */
  readonly gasCap: bigint;
}

export interface SimulatedLog {
  readonly address: Hex;
  readonly topics: readonly Hex[];
  readonly data: Hex;
}

export interface SimulatedCall {
  /** keccak256 of the unsigned transaction's signing hash and the sender: the calls carry no signature. */
  readonly hash: Hex;
  readonly type: 0 | 2;
  readonly from: Hex;
  readonly to: Hex | null;
  readonly nonce: bigint;
  readonly gas: bigint;
  readonly value: bigint;
  readonly input: Hex;
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
  readonly status: 0 | 1;
  readonly returnData: Hex;
  readonly gasUsed: bigint;
  readonly logs: readonly SimulatedLog[];
  /** A revert (geth's -32000 with the revert data) or another halt (-32015); null when the call succeeded. */
  readonly error: { readonly code: number; readonly message: string; readonly data?: Hex } | null;
}

export interface SimulatedBlock {
  readonly env: BlockEnv;
  readonly hash: Hex;
  readonly parentHash: Hex;
  /** The chain's state root after the block (its EVM root; the SVM root is the base block's). */
  readonly stateRoot: Hex;
  readonly transactionsRoot: Hex;
  readonly gasUsed: bigint;
  readonly calls: readonly SimulatedCall[];
}

export type SimulationErrorKind =
  | "nonce_too_low"
  | "nonce_too_high"
  | "insufficient_funds"
  | "fee_too_low"
  | "intrinsic_gas"
  | "block_gas_limit"
  | "block_number"
  | "block_timestamp"
  | "too_many"
  | "invalid";

/** A simulation that cannot run as asked: the whole request fails (geth's codes are mapped by the RPC layer). */
export class SimulationError extends Error {
  override readonly name = "SimulationError";
  constructor(
    readonly kind: SimulationErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** ERC-7528's address for the native coin: the emitter of traceTransfers' logs. */
export const NATIVE_TRANSFER_EMITTER: Hex = `0x${"ee".repeat(20)}`;
const TRANSFER_TOPIC = toHex(keccak256(utf8("Transfer(address,address,uint256)")));

const word = (hex: string): Hex => `0x${hex.replace(/^0x/, "").padStart(64, "0")}` as Hex;

/**
 * A call's logs with its ETH transfers among them, from a callTracer trace taken with `withLog`: each frame that
 * moves value (CALL, CALLCODE, CREATE, CREATE2 with value > 0) first gives a Transfer log of the native coin, then its
 * own logs and its sub-calls' in the order they ran. Frames that failed give nothing, nor anything below them: their
 * state changes, logs and transfers were undone.
 */
export function logsWithTransfers(top: CallFrame): SimulatedLog[] {
  const out: SimulatedLog[] = [];
  const visit = (frame: CallFrame): void => {
    if (frame.error !== undefined) return;
    const value = BigInt(frame.value ?? "0x0");
    if (value > 0n && frame.to !== undefined) {
      out.push({
        address: NATIVE_TRANSFER_EMITTER,
        topics: [TRANSFER_TOPIC, word(frame.from), word(frame.to)],
        data: word(value.toString(16)),
      });
    }
    const logs = frame.logs ?? [];
    const calls = frame.calls ?? [];
    let next = 0;
    for (let i = 0; i <= calls.length; i++) {
      while (next < logs.length && Number((logs[next] as { position: Hex }).position) === i) {
        const { address, topics, data } = logs[next] as SimulatedLog;
        out.push({ address, topics, data });
        next++;
      }
      const call = calls[i];
      if (call !== undefined) visit(call);
    }
  };
  visit(top);
  return out;
}
