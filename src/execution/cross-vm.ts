// Cross-VM calls between the EVM and the Solana VM inside one block (docs/cross-vm.md).
//
// EVM -> SVM: the precompile at SVM_PRECOMPILE_ADDRESS runs one Solana instruction on behalf of its caller's derived
// SVM account (a program-derived address of the EVM gateway program, no private key), which is the only account the
// instruction may mark as signer. The instruction's account changes are journaled with the EVM state: a reverted
// call frame or transaction reverts them too.
//
// SVM -> EVM: a Solana transaction whose instructions all call the EVM gateway program makes EVM calls from its
// signers' derived EVM addresses; they pay EVM gas in the L2 native coin at the block's base fee. Any failing call
// reverts every call of the transaction, which then fails and pays its Solana fee only.
//
// This file holds what both sides share: addresses, derivations, the precompile ABI, the gateway instruction codec,
// the gas and compute-unit rules, and the interfaces the two executors see of each other.
import { getAddressEncoder, getProgramDerivedAddress } from "@solana/kit";
import { concatBytes, fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";

/** The EVM -> SVM precompile ("S" 0x53): below 0x10000, so the plain-transfer fast path never bypasses it. */
export const SVM_PRECOMPILE_ADDRESS: Hex = "0x0000000000000000000000000000000000005300";
/** The SVM program id Solana transactions call to reach the EVM, and the owner of derived SVM accounts' PDAs. */
export const EVM_GATEWAY_PROGRAM = "LumiaEvmGateway1111111111111111111111111111";
/** Fee payer of the synthetic transaction litesvm runs for a precompile call: never read from or written to state. */
export const CROSS_VM_PAYER = "LumiaCrossVmPayer11111111111111111111111111";
/** ComputeBudget program: the precompile sets the instruction's compute limit from the gas it has. */
export const COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111";

/** EVM -> SVM: fixed gas of an invoke (decoding, loading accounts, the litesvm round trip). */
export const INVOKE_BASE_GAS = 20_000n;
/** EVM -> SVM: gas per account meta and per instruction data byte. */
export const INVOKE_GAS_PER_ACCOUNT = 1_000n;
export const INVOKE_GAS_PER_DATA_BYTE = 16n;
/** Both ways: one compute unit costs one gas, and one gas spent in the EVM counts as one compute unit. */
export const GAS_PER_COMPUTE_UNIT = 1n;
/** EVM -> SVM: Solana's per-transaction compute ceiling bounds one invoke. */
export const MAX_INVOKE_COMPUTE_UNITS = 1_400_000n;
/** EVM -> SVM: accounts and data bytes one invoke may name (a Solana transaction carries at most 1,232 bytes). */
export const MAX_INVOKE_ACCOUNTS = 64;
export const MAX_INVOKE_DATA_BYTES = 1_232;
/** svmAccountOf / evmAddressOf: a PDA search is a few SHA-256 hashes. */
export const DERIVE_GAS = 3_000n;

/** SVM -> EVM: intrinsic gas of each gateway call (as a transaction's), plus 16 per calldata byte. */
export const GATEWAY_CALL_BASE_GAS = 21_000n;
export const GATEWAY_GAS_PER_DATA_BYTE = 16n;
/** SVM -> EVM: the gas limits of one transaction's gateway calls add up to at most this. */
export const MAX_GATEWAY_TX_GAS = 10_000_000n;
/** Gateway instruction data: tag 0 (call) | to (20 bytes) | gas limit u64 little-endian | calldata. */
export const GATEWAY_CALL_TAG = 0;
const GATEWAY_HEADER_BYTES = 1 + 20 + 8;

/** The precompile's interface (Solidity: docs/cross-vm.md). */
export const SVM_PRECOMPILE_ABI = [
  {
    type: "function",
    name: "invoke",
    stateMutability: "nonpayable",
    inputs: [
      { name: "programId", type: "bytes32" },
      {
        name: "accounts",
        type: "tuple[]",
        components: [
          { name: "pubkey", type: "bytes32" },
          { name: "isSigner", type: "bool" },
          { name: "isWritable", type: "bool" },
        ],
      },
      { name: "data", type: "bytes" },
    ],
    outputs: [{ name: "returnData", type: "bytes" }],
  },
  {
    type: "function",
    name: "svmAccountOf",
    stateMutability: "view",
    inputs: [{ name: "evmAccount", type: "address" }],
    outputs: [{ name: "", type: "bytes32" }],
  },
  {
    type: "function",
    name: "evmAddressOf",
    stateMutability: "view",
    inputs: [{ name: "svmAccount", type: "bytes32" }],
    outputs: [{ name: "", type: "address" }],
  },
] as const;

const addressEncoder = getAddressEncoder();
const pdaCache = new Map<string, Uint8Array>();
const PDA_CACHE_MAX = 4096;

/**
 * The SVM account an EVM address acts as: the program-derived address of seeds ["evm", address (20 bytes)] under
 * EVM_GATEWAY_PROGRAM, as Solana's find_program_address computes it (so an SVM program can recompute it).
 */
export async function svmAccountOf(evmAddress: Hex): Promise<Uint8Array> {
  const key = evmAddress.toLowerCase();
  const cached = pdaCache.get(key);
  if (cached !== undefined) return cached;
  const [pda] = await getProgramDerivedAddress({
    programAddress: EVM_GATEWAY_PROGRAM as Parameters<typeof getProgramDerivedAddress>[0]["programAddress"],
    seeds: [utf8("evm"), fromHex(key as Hex)],
  });
  const bytes = new Uint8Array(addressEncoder.encode(pda));
  if (pdaCache.size >= PDA_CACHE_MAX) pdaCache.clear();
  pdaCache.set(key, bytes);
  return bytes;
}

const EVM_ADDRESS_DOMAIN = utf8("lumia/svm-to-evm-address/v1");

/** The EVM address an SVM account calls from: the last 20 bytes of keccak256(domain || pubkey). */
export function evmAddressOf(pubkey: Uint8Array): Hex {
  if (pubkey.length !== 32) throw new RangeError(`pubkey of ${pubkey.length} bytes`);
  return toHex(keccak256(concatBytes(EVM_ADDRESS_DOMAIN, pubkey)).subarray(12));
}

/** One EVM call a gateway instruction asks for. */
export interface GatewayCall {
  /** Index in the transaction's account keys of the signer the call is made from. */
  readonly signerIndex: number;
  readonly to: Hex;
  readonly gasLimit: bigint;
  readonly data: Uint8Array;
}

/** Why a gateway instruction is malformed, or null with the decoded call. */
export function decodeGatewayCall(
  accountIndices: readonly number[],
  data: Uint8Array,
  numSignatures: number,
): GatewayCall | string {
  if (accountIndices.length !== 1) return "a gateway call names exactly one account, its signer";
  const signerIndex = accountIndices[0] as number;
  if (signerIndex >= numSignatures) return "a gateway call's account must be a signer";
  if (data.length < GATEWAY_HEADER_BYTES || data[0] !== GATEWAY_CALL_TAG) {
    return `gateway instruction data: tag ${GATEWAY_CALL_TAG}, 20-byte address, u64 gas limit, calldata`;
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const gasLimit = view.getBigUint64(21, true);
  const callData = data.slice(GATEWAY_HEADER_BYTES);
  const minimum = gatewayIntrinsicGas(callData);
  if (gasLimit < minimum) return `gas limit ${gasLimit} below the call's intrinsic ${minimum}`;
  if (gasLimit > MAX_GATEWAY_TX_GAS) return `gas limit ${gasLimit} above ${MAX_GATEWAY_TX_GAS}`;
  return { signerIndex, to: toHex(data.subarray(1, 21)), gasLimit, data: callData };
}

/** Instruction data of a gateway call (what clients put in the instruction). */
export function encodeGatewayCall(to: Hex, gasLimit: bigint, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(GATEWAY_HEADER_BYTES + data.length);
  out[0] = GATEWAY_CALL_TAG;
  out.set(fromHex(to), 1);
  new DataView(out.buffer).setBigUint64(21, gasLimit, true);
  out.set(data, GATEWAY_HEADER_BYTES);
  return out;
}

export function gatewayIntrinsicGas(data: Uint8Array): bigint {
  return GATEWAY_CALL_BASE_GAS + GATEWAY_GAS_PER_DATA_BYTE * BigInt(data.length);
}

/** One account of an EVM -> SVM instruction. */
export interface InvokeAccount {
  readonly pubkey: Uint8Array;
  readonly isSigner: boolean;
  readonly isWritable: boolean;
}

export interface InvokeRequest {
  /** The derived SVM account of the EVM caller: the only signer the instruction may name. */
  readonly caller: Uint8Array;
  readonly programId: Uint8Array;
  readonly accounts: readonly InvokeAccount[];
  readonly data: Uint8Array;
  readonly computeUnitLimit: bigint;
}

export type InvokeResult =
  | { readonly ok: true; readonly computeUnits: bigint; readonly returnData: Uint8Array }
  | { readonly ok: false; readonly computeUnits: bigint; readonly error: string };

/**
 * The SVM as the EVM sees it during a block: a state journaled together with the EVM's (checkpoint on every EVM
 * checkpoint, kept or reverted with it) and the invoke entry point.
 */
export interface SvmSide {
  checkpoint(): void;
  keepCheckpoint(): void;
  revertCheckpoint(): void;
  invoke(request: InvokeRequest): Promise<InvokeResult>;
}

/** The outcome of a gateway transaction's EVM calls. */
export interface GatewayOutcome {
  readonly ok: boolean;
  /** Gas of every call that ran (charged even when a later one failed). */
  readonly gasUsed: bigint;
  /** The failing call's index and why ("revert: reason", "out of gas", "insufficient balance for gas"...). */
  readonly error: { readonly index: number; readonly reason: string } | null;
  /** One line per call, for the transaction's logs. */
  readonly lines: readonly string[];
}

/** The EVM as the SVM sees it after the block's EVM transactions. */
export interface EvmSide {
  /** Gas left in the block. */
  gasLeft(): bigint;
  /** Runs `calls` in order, all or nothing; charges each caller `gasUsed * baseFee` in the native coin. */
  callAll(
    calls: readonly { readonly from: Hex; readonly to: Hex; readonly gasLimit: bigint; readonly data: Uint8Array }[],
  ): Promise<GatewayOutcome>;
}

/** What a block execution links between the two VMs. */
export interface CrossVm {
  readonly svm: SvmSide;
  /** Runs after the block's EVM transactions, before the EVM state is committed: the block's SVM transactions. */
  readonly afterEvm?: (evm: EvmSide) => Promise<void>;
}
