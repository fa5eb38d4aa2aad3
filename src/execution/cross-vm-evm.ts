// The EVM half of cross-VM calls (./cross-vm.ts, docs/cross-vm.md): the precompile that invokes SVM instructions, the
// state manager that journals the SVM state with the EVM's, and the gateway that runs a Solana transaction's EVM calls.
import type { Block as EthBlock } from "@ethereumjs/block";
import { EVMError, type ExecResult, type Message, type PrecompileInput } from "@ethereumjs/evm";
import { Account, bytesToUnprefixedHex, createAddressFromString } from "@ethereumjs/util";
import type { VM } from "@ethereumjs/vm";
import { decodeFunctionData, encodeErrorResult, encodeFunctionResult, type Hex as ViemHex } from "viem";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import {
  DERIVE_GAS,
  type EvmSide,
  evmAddressOf,
  GAS_PER_COMPUTE_UNIT,
  type GatewayOutcome,
  gatewayIntrinsicGas,
  INVOKE_BASE_GAS,
  INVOKE_GAS_PER_ACCOUNT,
  INVOKE_GAS_PER_DATA_BYTE,
  MAX_INVOKE_ACCOUNTS,
  MAX_INVOKE_COMPUTE_UNITS,
  MAX_INVOKE_DATA_BYTES,
  SVM_PRECOMPILE_ABI,
  SVM_PRECOMPILE_ADDRESS,
  type SvmSide,
  svmAccountOf,
} from "./cross-vm.ts";
import { ExecutionError, isMissingNode, messageOf } from "./errors.ts";
import { decodeRevertReason } from "./receipts.ts";

function revert(reason: string, gasUsed: bigint): ExecResult {
  return {
    returnValue: fromHex(encodeErrorResult({ abi: ERROR_ABI, errorName: "Error", args: [reason] }) as Hex),
    executionGasUsed: gasUsed,
    exceptionError: new EVMError(EVMError.errorMessages.REVERT),
  };
}

function outOfGas(gasLimit: bigint): ExecResult {
  return {
    returnValue: new Uint8Array(0),
    executionGasUsed: gasLimit,
    exceptionError: new EVMError(EVMError.errorMessages.OUT_OF_GAS),
  };
}

const ERROR_ABI = [{ type: "error", name: "Error", inputs: [{ name: "message", type: "string" }] }] as const;

/**
 * The SVM precompile of one EVM instance. `message()` is the message being executed (the EVM announces each one
 * before running it), which tells the precompile its caller and how it was called.
 */
export function svmPrecompile(
  svm: SvmSide | null,
  message: () => Message | null,
): (input: PrecompileInput) => Promise<ExecResult> {
  const run = async (input: PrecompileInput): Promise<ExecResult> => {
    const gasLimit = input.gasLimit;
    let call: ReturnType<typeof decodeFunctionData<typeof SVM_PRECOMPILE_ABI>>;
    try {
      call = decodeFunctionData({ abi: SVM_PRECOMPILE_ABI, data: toHex(input.data) as ViemHex });
    } catch {
      return revert("svm: unknown function or malformed arguments", gasLimit < DERIVE_GAS ? gasLimit : DERIVE_GAS);
    }
    if (call.functionName === "svmAccountOf") {
      if (gasLimit < DERIVE_GAS) return outOfGas(gasLimit);
      const pubkey = await svmAccountOf(call.args[0].toLowerCase() as Hex);
      return ok(
        encodeFunctionResult({ abi: SVM_PRECOMPILE_ABI, functionName: "svmAccountOf", result: toHex(pubkey) }),
        DERIVE_GAS,
      );
    }
    if (call.functionName === "evmAddressOf") {
      if (gasLimit < DERIVE_GAS) return outOfGas(gasLimit);
      const address = evmAddressOf(fromHex(call.args[0] as Hex));
      return ok(
        encodeFunctionResult({ abi: SVM_PRECOMPILE_ABI, functionName: "evmAddressOf", result: address }),
        DERIVE_GAS,
      );
    }
    const [programId, accounts, data] = call.args;
    const dataBytes = fromHex(data as Hex);
    const fixed =
      INVOKE_BASE_GAS +
      INVOKE_GAS_PER_ACCOUNT * BigInt(accounts.length) +
      INVOKE_GAS_PER_DATA_BYTE * BigInt(dataBytes.length);
    if (gasLimit < fixed) return outOfGas(gasLimit);
    if (svm === null) return revert("svm: no Solana VM in this execution", fixed);
    const m = message();
    if (m === null || m.delegatecall || m.isStatic || m.to === undefined || !m.to.equals(m.codeAddress)) {
      return revert("svm: invoke must be a CALL (not DELEGATECALL, CALLCODE or STATICCALL)", fixed);
    }
    if (m.value !== 0n) return revert("svm: invoke takes no value", fixed);
    if (accounts.length > MAX_INVOKE_ACCOUNTS || dataBytes.length > MAX_INVOKE_DATA_BYTES) {
      return revert(`svm: at most ${MAX_INVOKE_ACCOUNTS} accounts and ${MAX_INVOKE_DATA_BYTES} data bytes`, fixed);
    }
    const caller = await svmAccountOf(m.caller.toString() as Hex);
    const callerHex = toHex(caller);
    for (const a of accounts) {
      if (a.isSigner && a.pubkey.toLowerCase() !== callerHex) {
        return revert("svm: only the caller's derived account can sign", fixed);
      }
    }
    const units = (gasLimit - fixed) / GAS_PER_COMPUTE_UNIT;
    const computeUnitLimit = units > MAX_INVOKE_COMPUTE_UNITS ? MAX_INVOKE_COMPUTE_UNITS : units;
    if (computeUnitLimit === 0n) return outOfGas(gasLimit);
    const result = await svm.invoke({
      caller,
      programId: fromHex(programId as Hex),
      accounts: accounts.map((a) => ({
        pubkey: fromHex(a.pubkey as Hex),
        isSigner: a.isSigner,
        isWritable: a.isWritable,
      })),
      data: dataBytes,
      computeUnitLimit,
    });
    const spent = fixed + result.computeUnits * GAS_PER_COMPUTE_UNIT;
    const gasUsed = spent > gasLimit ? gasLimit : spent;
    if (!result.ok) return revert(`svm: ${result.error}`, gasUsed);
    return ok(
      encodeFunctionResult({ abi: SVM_PRECOMPILE_ABI, functionName: "invoke", result: toHex(result.returnData) }),
      gasUsed,
    );
  };
  // Every failure the caller can cause is a revert above. A throw would leave the EVM's call-frame checkpoints (and
  // the SVM's with them) open while runTx goes on, so anything thrown stops the whole execution instead: missing
  // state as it is, anything else as an internal error (the same on every node: a halt, not a fork).
  return async (input) => {
    try {
      return await run(input);
    } catch (error) {
      if (error instanceof ExecutionError || isMissingNode(error)) throw error;
      throw new ExecutionError("internal", `SVM precompile: ${messageOf(error)}`, {}, { cause: error });
    }
  };
}

function ok(encoded: string, gasUsed: bigint): ExecResult {
  return { returnValue: fromHex(encoded as Hex), executionGasUsed: gasUsed };
}

/** The precompile entry for createVM's evmOpts, and the hook that tells it which message is running. */
export function svmPrecompileOptions(vmSvm: SvmSide | null): {
  readonly customPrecompiles: { address: Hex; function: (input: PrecompileInput) => Promise<ExecResult> }[];
  readonly attach: (vm: VM) => void;
} {
  let current: Message | null = null;
  return {
    customPrecompiles: [{ address: SVM_PRECOMPILE_ADDRESS, function: svmPrecompile(vmSvm, () => current) }],
    attach: (vm) => {
      vm.evm.events?.on("beforeMessage", (m: Message) => {
        current = m;
      });
    },
  };
}

/**
 * Runs gateway calls (SVM -> EVM) on `vm` after the block's EVM transactions: all or nothing, each charged
 * `gasUsed * baseFee` from its caller; `account` receives the block's gas and base-fee totals.
 */
export function evmGateway(
  vm: VM,
  block: EthBlock,
  env: { readonly gasLimit: bigint; readonly baseFeePerGas: bigint; readonly coinbase: Hex },
  account: { gasUsed(): bigint; spend(gas: bigint): void },
): EvmSide {
  const sm = vm.stateManager;
  const baseFee = env.baseFeePerGas;
  return {
    gasLeft: () => env.gasLimit - account.gasUsed(),
    async callAll(calls): Promise<GatewayOutcome> {
      const journal = vm.evm.journal;
      const charges: { from: Hex; gas: bigint }[] = [];
      const lines: string[] = [];
      let error: GatewayOutcome["error"] = null;
      let used = 0n;
      await journal.cleanup();
      await journal.checkpoint();
      try {
        for (const [index, c] of calls.entries()) {
          const from = createAddressFromString(c.from);
          const owed = charges.filter((x) => x.from === c.from).reduce((sum, x) => sum + x.gas * baseFee, 0n);
          const balance = (await sm.getAccount(from))?.balance ?? 0n;
          if (balance < owed + c.gasLimit * baseFee) {
            error = { index, reason: `insufficient balance for gas: ${c.from} holds ${balance}` };
            lines.push(`EVM call ${index} from ${c.from} to ${c.to}: ${error.reason}`);
            break;
          }
          for (const [address] of vm.evm.precompiles.entries()) journal.addAlwaysWarmAddress(address);
          journal.addAlwaysWarmAddress(bytesToUnprefixedHex(from.bytes));
          journal.addAlwaysWarmAddress(c.to.slice(2).toLowerCase());
          journal.addAlwaysWarmAddress(env.coinbase.slice(2).toLowerCase());
          const intrinsic = gatewayIntrinsicGas(c.data);
          const result = await vm.evm.runCall({
            block,
            gasPrice: baseFee,
            caller: from,
            origin: from,
            to: createAddressFromString(c.to),
            gasLimit: c.gasLimit - intrinsic,
            value: 0n,
            data: c.data,
            skipNonceIncrement: true,
          });
          const exec = result.execResult;
          const gas = intrinsic + exec.executionGasUsed;
          used += gas;
          charges.push({ from: c.from, gas });
          for (const [address, topics, data] of exec.logs ?? []) {
            lines.push(`EVM log ${toHex(address)} [${topics.map((t) => toHex(t)).join(",")}] ${toHex(data)}`);
          }
          if (exec.exceptionError !== undefined) {
            const why =
              exec.exceptionError.error === "revert"
                ? `revert${decodeRevertReason(exec.returnValue) === null ? "" : `: ${decodeRevertReason(exec.returnValue)}`}`
                : String(exec.exceptionError.error);
            error = { index, reason: why };
            lines.push(`EVM call ${index} from ${c.from} to ${c.to}: failed (${why}), gas ${gas}`);
            break;
          }
          lines.push(
            `EVM call ${index} from ${c.from} to ${c.to}: success, gas ${gas}, return ${toHex(exec.returnValue)}`,
          );
        }
        if (error === null) {
          await journal.cleanup();
          await journal.commit();
        } else {
          await journal.revert();
        }
      } finally {
        journal.cleanJournal();
        sm.originalStorageCache.clear();
      }
      // Gas is paid whatever happened, after the calls' effects are kept or undone.
      for (const { from, gas } of charges) {
        const address = createAddressFromString(from);
        const acct = (await sm.getAccount(address)) ?? new Account();
        // Checked before each call, and a caller without code cannot lose balance in its own call.
        if (acct.balance < gas * baseFee) throw new Error(`gateway caller ${from} cannot pay ${gas} gas`);
        acct.balance -= gas * baseFee;
        // EIP-161, as a transaction's sender would be: an account left empty does not stay in the state.
        if (acct.isEmpty()) await sm.deleteAccount(address);
        else await sm.putAccount(address, acct);
      }
      account.spend(used);
      return { ok: error === null, gasUsed: used, error, lines };
    },
  };
}
