// geth's built-in tracers over the ethereumjs EVM, for debug_traceTransaction, debug_traceBlockBy* and
// debug_traceCall: the opcode (struct) logger, the default, with one entry per executed instruction; the callTracer,
// the tree of calls and creations with their gas, input, output and errors; the prestateTracer, the accounts and
// slots a transaction touched as they were before it (diffMode: what it changed, before and after). A tracer watches
// one transaction: `observer()` gives the core's EvmObserver, and `result()` the JSON once the transaction ran.
import type { EVMResult, Message } from "@ethereumjs/evm";
import { bytesToBigInt, createAddressFromString } from "@ethereumjs/util";
import type { VM } from "@ethereumjs/vm";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import type { EvmObserver, RunTxResult } from "./core.ts";
import { decodeRevertReason } from "./receipts.ts";

/** What an opcode-logger trace may hold at most, whatever `limit` asks: bounds memory and the answer's size. */
export const MAX_STRUCT_LOGS = 100_000;
/** Stack, memory and storage text an opcode-logger trace may hold (64 MiB): memory copied at every step adds up. */
export const MAX_TRACE_TEXT = 64 * 1024 * 1024;

export interface TraceOptions {
  /** "callTracer", "prestateTracer", or absent for the opcode logger. */
  readonly tracer?: "callTracer" | "prestateTracer" | undefined;
  /** prestateTracer: the accounts' changes, `{pre, post}`, instead of their state before. */
  readonly diffMode?: boolean | undefined;
  /** prestateTracer: leave code out. */
  readonly disableCode?: boolean | undefined;
  /** callTracer: only the top call, no sub-calls. */
  readonly onlyTopCall?: boolean | undefined;
  /** callTracer: each frame's logs. */
  readonly withLog?: boolean | undefined;
  /** Opcode logger. */
  readonly disableStack?: boolean | undefined;
  readonly disableStorage?: boolean | undefined;
  readonly enableMemory?: boolean | undefined;
  readonly enableReturnData?: boolean | undefined;
  /** Opcode logger: stop recording after this many entries (0: no limit but MAX_STRUCT_LOGS). */
  readonly limit?: number | undefined;
}

/** A trace that grew past MAX_STRUCT_LOGS without a `limit`: answered as an error, not cut silently. */
export class TraceTooLargeError extends Error {
  override readonly name = "TraceTooLargeError";
}

export interface Tracer {
  /** The observer for the transaction at `index` (of a block, or 0 for a call). */
  observer(index: number): EvmObserver;
  /** The trace, once the transaction ran; null when it did not run. */
  result(): unknown;
}

export function createTracer(options: TraceOptions): Tracer {
  if (options.tracer === "callTracer") return new CallTracer(options);
  if (options.tracer === "prestateTracer") return new PrestateTracer(options);
  return new OpcodeLogger(options);
}

/** An account as the prestateTracer shows it (geth's fields: zero nonce, no code and no storage left out). */
interface AccountView {
  balance: Hex;
  nonce?: number;
  code?: Hex;
  storage?: Record<string, Hex>;
}

/** One account's state, read from the VM's state manager: balance, nonce, code, and the slots asked for. */
async function readAccount(
  vm: VM,
  address: Hex,
  slots: readonly Hex[],
  options: TraceOptions,
): Promise<{ exists: boolean; view: AccountView }> {
  const sm = vm.stateManager;
  const where = createAddressFromString(address);
  const account = await sm.getAccount(where);
  const view: AccountView = { balance: quantity(account?.balance ?? 0n) };
  if (account !== undefined && account.nonce > 0n) view.nonce = Number(account.nonce);
  if (options.disableCode !== true && account !== undefined) {
    const code = await sm.getCode(where);
    if (code.length > 0) view.code = toHex(code);
  }
  if (options.disableStorage !== true && account !== undefined && slots.length > 0) {
    const storage: Record<string, Hex> = {};
    for (const slot of slots) storage[slot] = `0x${word(bytesToBigInt(await sm.getStorage(where, fromHex(slot))))}`;
    view.storage = storage;
  }
  return { exists: account !== undefined, view };
}

/**
 * geth's prestateTracer. Default mode: every account the transaction touched (its access list, the sender, the
 * recipient or created contract and the fee recipient; no precompile), as it was before the transaction, with the
 * slots it touched. diffMode: `{pre, post}` of the accounts it changed, with only the fields and slots that changed
 * (an account it deleted is in `pre` only, one it created in `post` only). The touched set comes from one run of the
 * transaction on a reverted checkpoint before the traced run.
 */
class PrestateTracer implements Tracer {
  private touched: readonly { address: Hex; storageKeys: readonly Hex[] }[] = [];
  private readonly pre = new Map<Hex, { exists: boolean; view: AccountView }>();
  private readonly post = new Map<Hex, { exists: boolean; view: AccountView }>();
  private ran = false;

  constructor(private readonly options: TraceOptions) {}

  observer(index: number): EvmObserver {
    return (at, vm) => {
      if (at !== index) return undefined;
      return {
        prepare: async (touched) => {
          this.touched = await touched();
          for (const t of this.touched)
            this.pre.set(t.address, await readAccount(vm, t.address, t.storageKeys, this.options));
        },
        ended: async (result) => {
          this.ran = result !== null;
          if (result === null || this.options.diffMode !== true) return;
          for (const t of this.touched)
            this.post.set(t.address, await readAccount(vm, t.address, t.storageKeys, this.options));
        },
      };
    };
  }

  result(): unknown {
    if (!this.ran) return null;
    if (this.options.diffMode !== true) {
      return Object.fromEntries([...this.pre].map(([address, a]) => [address, a.view]));
    }
    const pre: Record<string, AccountView> = {};
    const post: Record<string, Partial<AccountView>> = {};
    for (const [address, before] of this.pre) {
      const after = this.post.get(address);
      if (after === undefined) continue;
      if (!after.exists) {
        if (before.exists) pre[address] = before.view;
        continue;
      }
      const changed: Partial<AccountView> = {};
      if (after.view.balance !== before.view.balance) changed.balance = after.view.balance;
      if (after.view.nonce !== before.view.nonce) changed.nonce = after.view.nonce ?? 0;
      if (after.view.code !== before.view.code && after.view.code !== undefined) changed.code = after.view.code;
      const slots: Record<string, Hex> = {};
      const beforeSlots: Record<string, Hex> = {};
      for (const [slot, value] of Object.entries(after.view.storage ?? {})) {
        const old = before.view.storage?.[slot];
        if (old === value) continue;
        if (value !== ZERO_WORD) slots[slot] = value;
        if (old !== undefined && old !== ZERO_WORD) beforeSlots[slot] = old;
      }
      if (Object.keys(slots).length > 0) changed.storage = slots;
      const slotsChanged = Object.keys(slots).length > 0 || Object.keys(beforeSlots).length > 0;
      if (Object.keys(changed).length === 0 && !slotsChanged) continue;
      if (before.exists) {
        const { storage: _, ...rest } = before.view;
        pre[address] = Object.keys(beforeSlots).length > 0 ? { ...rest, storage: beforeSlots } : rest;
      }
      post[address] = changed;
    }
    return { pre, post };
  }
}

type StepEvent = {
  pc: number;
  gasLeft: bigint;
  gasRefund: bigint;
  opcode: { name: string; dynamicFee: bigint; code: number };
  stack: bigint[];
  depth: number;
  address: { bytes: Uint8Array; toString(): string };
  memory: Uint8Array;
};

const LOG0 = 0xa0;
const SLOAD = 0x54;
const SSTORE = 0x55;

const word = (v: bigint): string => v.toString(16).padStart(64, "0");
const ZERO_WORD: Hex = `0x${"00".repeat(32)}`;
const quantity = (v: bigint | number): Hex => `0x${v.toString(16)}` as Hex;

/** Watches one transaction's run through the VM's events, and stops watching when it ended. */
function watch(
  index: number,
  listeners: {
    start?: (gasLimit: bigint) => void;
    /** Receives what stops the step events (a tracer that has all it may hold). */
    stepsOff?: (off: () => void) => void;
    step?: (e: StepEvent) => void;
    before?: (m: Message) => void;
    after?: (r: EVMResult) => void;
  },
  ended: (result: RunTxResult | null) => void,
): EvmObserver {
  return (at: number, vm: VM, gasLimit: bigint) => {
    if (at !== index) return undefined;
    listeners.start?.(gasLimit);
    const events = vm.evm.events;
    if (events === undefined) throw new Error("the EVM has no event emitter to trace with");
    const { step, before, after } = listeners;
    if (step !== undefined) {
      events.on("step", step as never);
      listeners.stepsOff?.(() => events.off("step", step as never));
    }
    if (before !== undefined) events.on("beforeMessage", before as never);
    if (after !== undefined) events.on("afterMessage", after as never);
    return {
      ended: (result) => {
        if (step !== undefined) events.off("step", step as never);
        if (before !== undefined) events.off("beforeMessage", before as never);
        if (after !== undefined) events.off("afterMessage", after as never);
        ended(result);
      },
    };
  };
}

class OpcodeLogger implements Tracer {
  private readonly logs: Record<string, unknown>[] = [];
  /** Storage seen per contract in this transaction, as geth keeps it (reads and writes). */
  private readonly storage = new Map<string, Map<string, string>>();
  private ran: RunTxResult | null = null;
  private done = false;
  private tooLarge: string | null = null;
  private text = 0;
  private readonly limit: number;
  /** Depth of the message running now, + 1 (0 between messages). */
  private depth = 0;
  /** By depth: the return data of the last call that frame made. */
  private readonly returnData = new Map<number, Uint8Array>();
  private stepsOff: (() => void) | null = null;
  /** An SLOAD whose value the next step of its frame shows. */
  private pendingLoad: {
    entry: Record<string, unknown>;
    seen: Map<string, string>;
    key: string;
    depth: number;
  } | null = null;

  constructor(private readonly options: TraceOptions) {
    const asked = options.limit ?? 0;
    this.limit = asked > 0 && asked < MAX_STRUCT_LOGS ? asked : MAX_STRUCT_LOGS;
  }

  observer(index: number): EvmObserver {
    return watch(
      index,
      {
        step: (e) => this.step(e),
        stepsOff: (off) => {
          this.stepsOff = off;
        },
        // The return data a frame sees is that of the last call it made.
        after: (r) => {
          // The message that ended ran at depth this.depth - 1; its caller at this.depth - 2.
          if (this.depth >= 2) this.returnData.set(this.depth - 2, r.execResult.returnValue);
          this.depth--;
        },
        before: (m) => {
          this.depth = m.depth + 1;
          this.returnData.delete(m.depth);
        },
      },
      (result) => {
        this.ran = result;
        this.done = true;
      },
    );
  }

  private step(e: StepEvent): void {
    // An SLOAD's entry shows the slot's value: it is on top of the stack at the next step of the same frame.
    const pending = this.pendingLoad;
    if (pending !== null) {
      this.pendingLoad = null;
      if (e.depth === pending.depth && e.stack.length > 0) {
        pending.seen.set(pending.key, word(e.stack[e.stack.length - 1] as bigint));
        pending.entry.storage = Object.fromEntries(pending.seen);
      }
    }
    if (this.logs.length >= this.limit) {
      // Past the bound nothing more is recorded; without a limit of the caller's, the trace is refused whole.
      if ((this.options.limit ?? 0) === 0 || (this.options.limit ?? 0) > MAX_STRUCT_LOGS) {
        this.tooLarge = `the trace has more than ${MAX_STRUCT_LOGS} steps: pass a lower "limit", or use the callTracer`;
      }
      this.stopTracing();
      return;
    }
    if (this.text > MAX_TRACE_TEXT) {
      this.tooLarge = `the trace is larger than ${MAX_TRACE_TEXT >> 20} MiB: pass a lower "limit", leave memory out, or use the callTracer`;
      this.stopTracing();
      return;
    }
    const entry: Record<string, unknown> = {
      pc: e.pc,
      op: e.opcode.name,
      gas: Number(e.gasLeft),
      gasCost: Number(e.opcode.dynamicFee),
      depth: e.depth + 1,
    };
    if (e.gasRefund > 0n) entry.refund = Number(e.gasRefund);
    if (this.options.disableStack !== true) {
      entry.stack = e.stack.map((v) => quantity(v));
      this.text += 68 * e.stack.length;
    }
    if (this.options.enableReturnData === true) {
      const data = this.returnData.get(e.depth);
      if (data !== undefined && data.length > 0) entry.returnData = toHex(data);
    }
    if (this.options.enableMemory === true) {
      const words: string[] = [];
      for (let i = 0; i < e.memory.length; i += 32) words.push(toHex(e.memory.subarray(i, i + 32)).slice(2));
      entry.memory = words;
      this.text += 67 * words.length;
    }
    const code = e.opcode.code;
    if (this.options.disableStorage !== true && (code === SLOAD || code === SSTORE) && e.stack.length > 0) {
      const contract = e.address.toString().toLowerCase();
      let seen = this.storage.get(contract);
      if (seen === undefined) {
        seen = new Map();
        this.storage.set(contract, seen);
      }
      const key = word(e.stack[e.stack.length - 1] as bigint);
      if (code === SSTORE && e.stack.length > 1) {
        seen.set(key, word(e.stack[e.stack.length - 2] as bigint));
        entry.storage = Object.fromEntries(seen);
      } else {
        this.pendingLoad = { entry, seen, key, depth: e.depth };
      }
    }
    this.logs.push(entry);
  }

  /** The rest of the run goes untraced, at full speed. */
  private stopTracing(): void {
    this.stepsOff?.();
    this.stepsOff = null;
  }

  result(): unknown {
    if (!this.done || this.ran === null) return null;
    if (this.tooLarge !== null) throw new TraceTooLargeError(this.tooLarge);
    const exec = this.ran.execResult;
    return {
      gas: Number(this.ran.totalGasSpent),
      failed: exec.exceptionError !== undefined,
      returnValue: toHex(exec.returnValue).slice(2),
      structLogs: this.logs,
    };
  }
}

/** A callTracer frame, as geth gives it. */
export interface CallFrame {
  type: string;
  from: Hex;
  to?: Hex;
  value?: Hex;
  gas: Hex;
  gasUsed: Hex;
  input: Hex;
  output?: Hex;
  error?: string;
  revertReason?: string;
  /** withLog: the logs the frame emitted, each at the index of the calls it made before. */
  logs?: { address: Hex; topics: Hex[]; data: Hex; position: Hex }[];
  calls?: CallFrame[];
}

/** geth's rule: a frame that failed, and every frame below it, emitted no log (its state changes were undone). */
function dropFailedLogs(frame: CallFrame, parentFailed: boolean): void {
  const failed = parentFailed || frame.error !== undefined;
  if (failed) delete frame.logs;
  for (const call of frame.calls ?? []) dropFailedLogs(call, failed);
}

/** geth's names for the EVM's halts. */
function gethError(error: string): string {
  return error === "revert" ? "execution reverted" : error;
}

class CallTracer implements Tracer {
  private readonly stack: CallFrame[] = [];
  private top: CallFrame | null = null;
  /** The opcode that opened each frame's next message, by depth. */
  private readonly callOp = new Map<number, string>();
  private ran: RunTxResult | null = null;
  private done = false;
  private gasLimit = 0n;

  constructor(private readonly options: TraceOptions) {}

  observer(index: number): EvmObserver {
    return watch(
      index,
      {
        step: (e) => {
          const name = e.opcode.name;
          if (/^(CALL|CALLCODE|DELEGATECALL|STATICCALL|CREATE|CREATE2)$/.test(name)) this.callOp.set(e.depth, name);
          else if (this.options.withLog === true && e.opcode.code >= LOG0 && e.opcode.code <= LOG0 + 4) this.log(e);
        },
        start: (gasLimit) => {
          this.gasLimit = gasLimit;
        },
        before: (m) => this.enter(m),
        after: (r) => this.exit(r),
      },
      (result) => {
        this.ran = result;
        this.done = true;
      },
    );
  }

  /** withLog: a LOG instruction's record in the frame running it, at the position among its calls so far. */
  private log(e: StepEvent): void {
    const frame = this.stack[this.stack.length - 1];
    const n = e.stack.length;
    if (frame === undefined || n < 2) return;
    const offset = Number(e.stack[n - 1]);
    const size = Number(e.stack[n - 2]);
    const topics: Hex[] = [];
    for (let i = 0; i < e.opcode.code - LOG0 && n - 3 - i >= 0; i++) {
      topics.push(`0x${word(e.stack[n - 3 - i] as bigint)}` as Hex);
    }
    // Memory grows to cover the data as the instruction runs: past its current end it reads as zeros.
    const data = new Uint8Array(size);
    data.set(e.memory.subarray(Math.min(offset, e.memory.length), Math.min(offset + size, e.memory.length)));
    frame.logs ??= [];
    frame.logs.push({
      address: e.address.toString().toLowerCase() as Hex,
      topics,
      data: toHex(data),
      position: quantity(frame.calls?.length ?? 0),
    });
  }

  private enter(m: Message): void {
    const depth = m.depth;
    const type = depth === 0 ? (m.to === undefined ? "CREATE" : "CALL") : (this.callOp.get(depth - 1) ?? "CALL");
    const frame: CallFrame = {
      type,
      from: m.caller.toString().toLowerCase() as Hex,
      gas: quantity(m.gasLimit),
      gasUsed: "0x0",
      input: toHex(m.data),
    };
    if (m.to !== undefined) frame.to = m.to.toString().toLowerCase() as Hex;
    if (type !== "STATICCALL" && type !== "DELEGATECALL") frame.value = quantity(m.value);
    if (depth === 0) this.top = frame;
    else if (this.options.onlyTopCall !== true) {
      const parent = this.stack[this.stack.length - 1];
      if (parent !== undefined) {
        parent.calls ??= [];
        parent.calls.push(frame);
      }
    }
    this.stack.push(frame);
  }

  private exit(r: EVMResult): void {
    const frame = this.stack.pop();
    if (frame === undefined) return;
    const exec = r.execResult;
    frame.gasUsed = quantity(exec.executionGasUsed);
    if (r.createdAddress !== undefined) frame.to = r.createdAddress.toString().toLowerCase() as Hex;
    const error = exec.exceptionError?.error;
    if (exec.returnValue.length > 0 || error === undefined) frame.output = toHex(exec.returnValue);
    if (error !== undefined) {
      frame.error = gethError(String(error));
      if (error === "revert") {
        const reason = decodeRevertReason(exec.returnValue);
        if (reason !== null) frame.revertReason = reason;
      }
      // geth drops the output of a frame that failed other than by a revert.
      if (error !== "revert") delete frame.output;
    }
  }

  result(): unknown {
    if (!this.done || this.ran === null || this.top === null) return null;
    const top = this.top;
    if (this.options.withLog === true) dropFailedLogs(top, false);
    // The top frame counts the transaction's gas: its limit and all it spent (intrinsic gas included).
    top.gas = quantity(this.gasLimit);
    top.gasUsed = quantity(this.ran.totalGasSpent);
    return top;
  }
}
