// The Solana VM execution module: runs a block's Solana transactions on a parent SVM root with litesvm and returns the
// new root, the receipts and the new trie nodes, writing nothing (the node puts `writes` in the block's commit batch,
// as for the EVM: docs/execution.md, docs/svm.md).
//
// litesvm is the instruction processor only. The node owns everything that must be deterministic and survive a
// restart: the accounts (a trie, ./state.ts; litesvm snapshots are not deterministic), signature checks (once, at
// decode), the recent-blockhash window and replay protection (processed signatures live in the trie), the clock.
// Before each transaction every account it names is copied from the state into litesvm, afterwards every writable one
// is read back; so what litesvm held before (another block, another fork) never leaks into a result.

import {
  AccountRole,
  type Address,
  appendTransactionMessageInstructions,
  compileTransaction,
  createTransactionMessage,
  getBase58Decoder,
  getBase58Encoder,
  getTransactionEncoder,
  type Instruction,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
} from "@solana/kit";
import {
  Account,
  Clock,
  EpochSchedule,
  FailedTransactionMetadata,
  LiteSvm,
  type TransactionMetadata,
} from "litesvm/dist/internal.js";
import { bytesEqual, fromHex, type Hex, isHex, toHex } from "../../../consensus/bytes.ts";
import {
  COMPUTE_BUDGET_PROGRAM,
  CROSS_VM_PAYER,
  EVM_GATEWAY_PROGRAM,
  type EvmSide,
  evmAddressOf,
  GAS_PER_COMPUTE_UNIT,
  type GatewayOutcome,
  type InvokeRequest,
  type InvokeResult,
  MAX_INVOKE_COMPUTE_UNITS,
  type SvmSide,
} from "../cross-vm.ts";
import { ExecutionError } from "../errors.ts";
import { type KeyValueReader, NodeCache } from "../overlay.ts";
import {
  encodeSvmAccount,
  LAMPORTS_PER_SIGNATURE,
  SVM_FEE_COLLECTOR,
  SVM_VM,
  type SvmAccount,
  SYSTEM_PROGRAM,
} from "./account.ts";
import { base58Bytes32 } from "./blockhash.ts";
import { MAX_SIGNATURES_PER_SLOT, type SvmProof, SvmState } from "./state.ts";
import { type DecodedSvmTx, decodeSvmTransaction, type SvmTxRejectCode } from "./tx.ts";

/** Solana's MAX_PROCESSING_AGE: a transaction's blockhash must be one of the last 150 blockhashes. */
export const SVM_BLOCKHASH_WINDOW = 150;
/** Candidates one block may be asked to consider (each processed signature is recorded in the slot's list). */
export const MAX_SVM_BLOCK_TRANSACTIONS = MAX_SIGNATURES_PER_SLOT;
/** Solana's default log limit per transaction; litesvm truncates beyond it. */
export const SVM_LOG_BYTES_LIMIT = 10_000n;
/** Solana mainnet's epoch length; no warmup, so epoch = floor(slot / SLOTS_PER_EPOCH). */
export const SVM_SLOTS_PER_EPOCH = 432_000n;
export const DEFAULT_SVM_NODE_CACHE_BYTES = 32 * 1024 * 1024;
/** litesvm instances kept for reuse (building one costs ~50 ms: builtins and SPL programs are loaded). */
const MAX_IDLE_INSTANCES = 2;
const U64_MAX = (1n << 64n) - 1n;

/** Owners whose accounts the runtime turns into executable programs (and caches inside litesvm). */
const LOADERS = [
  "NativeLoader1111111111111111111111111111111",
  "BPFLoader1111111111111111111111111111111111",
  "BPFLoader2111111111111111111111111111111111",
  "BPFLoaderUpgradeab1e11111111111111111111111",
  "LoaderV411111111111111111111111111111111111",
] as const;
const UPGRADEABLE_LOADER = "BPFLoaderUpgradeab1e11111111111111111111111";
const SYSVAR_OWNER = "Sysvar1111111111111111111111111111111111111";

export interface SvmBlockEnv {
  /** The L2 height. */
  readonly slot: number;
  /** Seconds (Solana's Clock.unix_timestamp). */
  readonly unixTimestamp: number;
  /**
   * This block's blockhash (./blockhash.ts), when known: checked, not used. A node does not know it while executing:
   * the L2 block hash covers the header, which commits to this execution's root.
   */
  readonly blockhash?: string;
  /** The blockhashes of slots `slot - 1`, `slot - 2`, ... (newest first, at most SVM_BLOCKHASH_WINDOW). */
  readonly recentBlockhashes: readonly string[];
}

/** Why a transaction was dropped ("build") or makes a block invalid ("validate"). */
export type SvmInapplicableCode =
  | SvmTxRejectCode
  /** the recent blockhash is not in the window */
  | "stale_blockhash"
  /** the first signature was processed within the window, or earlier in this block */
  | "duplicate"
  /** the fee payer has no account (or is a reserved runtime account) */
  | "unknown_payer"
  /** the fee payer holds less than 5,000 lamports per signature */
  | "insufficient_funds"
  /** litesvm refused it before charging anything (sanitize failure, fee payer rules, priority fee unaffordable) */
  | "not_chargeable"
  /** a gateway transaction's EVM gas limits exceed the gas left in the block */
  | "block_gas_limit";

export interface SvmSkipped {
  readonly index: number;
  /** Base58 first signature when the transaction decoded, else null. */
  readonly signature: string | null;
  readonly code: SvmInapplicableCode;
  readonly reason: string;
}

export interface SvmReceipt {
  readonly signature: string;
  readonly status: "ok" | "err";
  /** Solana's transaction error (`InstructionError(0, Custom(1))`...) when status is "err". */
  readonly error: string | null;
  /** Lamports the payer paid (base 5,000 per signature plus any priority fee), credited to SVM_FEE_COLLECTOR. */
  readonly fee: bigint;
  /** litesvm's compute units; for a gateway transaction, the EVM gas its calls used (GAS_PER_COMPUTE_UNIT). */
  readonly computeUnits: bigint;
  readonly logs: readonly string[];
  /** Lamports of each static account key before and after the transaction, in key order (getTransaction's meta). */
  readonly preBalances: readonly bigint[];
  readonly postBalances: readonly bigint[];
}

export interface SvmExecutionResult {
  /** The SVM's own state root (VM id 2 in the global root). */
  readonly root: Hex;
  readonly included: readonly DecodedSvmTx[];
  /** One per included transaction, in order. */
  readonly receipts: readonly SvmReceipt[];
  readonly skipped: readonly SvmSkipped[];
  /** New trie nodes, "0x" key hex -> node, for the commit batch (the `state` bucket). */
  readonly writes: ReadonlyMap<string, Uint8Array>;
}

export interface SvmStateReader {
  getAccount(address: string): Promise<SvmAccount | null>;
  /** The slot that processed this transaction signature (base58), if it is still within the replay window. */
  processedAt(signature: string): Promise<bigint | null>;
  /** A trie proof of the account under this root (absence proofs included). */
  getProof(address: string): Promise<SvmProof>;
}

export interface SvmGenesisAccount {
  readonly address: string;
  readonly lamports: bigint;
  /** Base58 owner program; the system program by default. */
  readonly owner?: string;
  readonly executable?: boolean;
  readonly data?: Uint8Array;
}

type Candidate = Uint8Array | DecodedSvmTx;

/** What the EVM side did with a gateway transaction: ran its calls, or had no room for their gas limits. */
export type GatewayRun =
  | { readonly kind: "skip"; readonly reason: string }
  | { readonly kind: "ran"; readonly outcome: GatewayOutcome };

/** What the synthetic fee payer of a cross-VM invoke holds during the run (its fee never reaches the state). */
const CROSS_VM_PAYER_LAMPORTS = 1_000_000_000_000n;

interface Instance {
  readonly svm: LiteSvm;
  /** Whether a program account went through it: litesvm caches programs, so the instance is not reused. */
  tainted: boolean;
}

const base58 = getBase58Encoder();
const base58Decoder = getBase58Decoder();
const transactionEncoder = getTransactionEncoder();

function keyOf(address: string): Uint8Array {
  return new Uint8Array(base58.encode(address));
}

function toLiteAccount(account: SvmAccount): Account {
  return new Account(account.lamports, account.data, account.owner, account.executable, account.rentEpoch);
}

function fromLiteAccount(account: Account | null): SvmAccount | null {
  if (account === null || account.lamports() === 0n) return null;
  return {
    lamports: account.lamports(),
    owner: new Uint8Array(account.owner()),
    executable: account.executable(),
    rentEpoch: account.rentEpoch(),
    data: new Uint8Array(account.data()),
  };
}

function sameAccount(a: SvmAccount | null, b: SvmAccount | null): boolean {
  if (a === null || b === null) return a === b;
  return bytesEqual(encodeSvmAccount(a), encodeSvmAccount(b));
}

/** What litesvm has for an address nobody created: the default (absent) account. */
const ABSENT = (): Account => new Account(0n, new Uint8Array(0), keyOf(SYSTEM_PROGRAM), false, 0n);

/** Solana's own rendering of a transaction error, from litesvm's Debug output. */
function errorText(failed: FailedTransactionMetadata): string {
  const text = failed.toString();
  const match = /err: (.*?), meta: TransactionMetadata \{/s.exec(text);
  return match?.[1] ?? "transaction failed";
}

function isCandidateDecoded(c: Candidate): c is DecodedSvmTx {
  return !(c instanceof Uint8Array);
}

export class SvmExecutor {
  private readonly cache: NodeCache;
  private readonly idle: LiteSvm[] = [];
  /** Accounts a fresh litesvm holds (builtins, sysvars, SPL programs): never loaded from or written to the trie. */
  private readonly reserved: ReadonlySet<string>;
  /** Blockhashes already checked to be base58 of 32 bytes: the window slides by one per block (decoding is slow). */
  private readonly checkedBlockhashes = new Set<string>();
  private readonly collectorKey = keyOf(SVM_FEE_COLLECTOR);
  private readonly payerKey = keyOf(CROSS_VM_PAYER);

  constructor(private readonly opts: { readonly db: KeyValueReader; readonly nodeCacheBytes?: number }) {
    this.cache = new NodeCache(opts.nodeCacheBytes ?? DEFAULT_SVM_NODE_CACHE_BYTES);
    const fresh = SvmExecutor.createInstance();
    const reserved = new Set<string>();
    for (const owner of [...LOADERS, SYSVAR_OWNER]) {
      for (const entry of fresh.getProgramAccounts(keyOf(owner))) reserved.add(toHex(entry.address));
    }
    this.reserved = reserved;
    this.idle.push(fresh);
  }

  /** The fixed litesvm configuration every node uses (docs/svm.md lists why each option is set). */
  private static createInstance(): LiteSvm {
    const svm = new LiteSvm();
    svm.setSigverify(false);
    svm.setBlockhashCheck(false);
    svm.setTransactionHistory(0n);
    svm.setLogBytesLimit(SVM_LOG_BYTES_LIMIT);
    svm.setEpochSchedule(new EpochSchedule(SVM_SLOTS_PER_EPOCH, SVM_SLOTS_PER_EPOCH, false, 0n, 0n));
    return svm;
  }

  /** Whether `address` is one of litesvm's built-in accounts (programs, sysvars), outside the SVM state. */
  isReserved(address: string): boolean {
    return this.reserved.has(toHex(keyOf(address)));
  }

  /**
   * Executes `txs` (wire bytes, or transactions already decoded and verified by decodeSvmTransaction) on the SVM
   * state `parentRoot`. "build" drops transactions that cannot be charged and lists them in `skipped`; "validate"
   * throws ExecutionError "invalid_transaction" on the first one. A parent root not in the store is "missing_state".
   * Gateway transactions (EVM calls) fail without an EVM: a block links both VMs through open() instead.
   */
  async execute(
    parentRoot: Hex,
    env: SvmBlockEnv,
    txs: readonly Candidate[],
    mode: "build" | "validate",
    /** Build mode: stop including transactions once this much time has passed (the rest stay in the pool). */
    buildBudgetMs?: number,
  ): Promise<SvmExecutionResult> {
    const session = await this.open(parentRoot, env);
    try {
      await session.run(txs, mode, buildBudgetMs);
      return await session.finish();
    } finally {
      session.close();
    }
  }

  /**
   * Opens the SVM side of one block on `parentRoot`: EVM -> SVM invokes while the EVM transactions run (the session is
   * the EVM's SvmSide), then the block's own transactions (run), then the new root (finish). close() always.
   */
  async open(parentRoot: Hex, env: SvmBlockEnv): Promise<SvmBlockSession> {
    const window = this.checkEnv(env, parentRoot);
    await this.requireCommitted(parentRoot);
    const state = await SvmState.open(this.opts.db, this.cache, parentRoot);
    const slot = BigInt(env.slot);
    // Signatures of slots <= slot - W can no longer be replayed: their blockhashes left the window (docs/svm.md).
    const parentIndex = await state.slotIndex();
    const newest = parentIndex[parentIndex.length - 1];
    if (newest !== undefined && newest >= slot) {
      throw new ExecutionError("invalid_argument", `parent SVM state has signatures of slot ${newest} >= ${slot}`);
    }
    const index = await state.pruneSignatures(parentIndex, slot - BigInt(SVM_BLOCKHASH_WINDOW));
    return new SvmBlockSession(this, state, env, window, slot, index);
  }

  /** Opens a read-only SVM side (eth_call): nothing it stages is ever committed. */
  async openForCall(root: Hex, env: SvmBlockEnv): Promise<SvmBlockSession> {
    const window = this.checkEnv(env, root);
    const state = await SvmState.open(this.opts.db, this.cache, root);
    return new SvmBlockSession(this, state, env, window, BigInt(env.slot), []);
  }

  /** @internal The session's new root and writes, published to the node cache. */
  async commitState(state: SvmState): Promise<{ root: Hex; writes: ReadonlyMap<string, Uint8Array> }> {
    const { root, writes } = await state.commit();
    for (const [key, value] of writes) this.cache.set(key, value);
    return { root, writes };
  }

  /**
   * The state holding `alloc` on top of the empty SVM (genesis, devnets, tests). Reserved runtime accounts and
   * duplicate or zero-lamport entries are refused with ExecutionError "invalid_argument".
   */
  async genesis(alloc: readonly SvmGenesisAccount[]): Promise<{ root: Hex; writes: ReadonlyMap<string, Uint8Array> }> {
    const state = await SvmState.open(this.opts.db, this.cache, SVM_VM.emptyRoot);
    const seen = new Set<string>();
    for (const [i, entry] of alloc.entries()) {
      const key = base58Bytes32(entry.address);
      if (key === null) throw new ExecutionError("invalid_argument", `alloc[${i}].address is not a base58 pubkey`);
      const hex = toHex(key);
      if (seen.has(hex) || this.reserved.has(hex) || entry.lamports <= 0n) {
        throw new ExecutionError("invalid_argument", `alloc[${i}]: duplicate, reserved or without lamports`);
      }
      seen.add(hex);
      const owner = base58Bytes32(entry.owner ?? SYSTEM_PROGRAM);
      if (owner === null) throw new ExecutionError("invalid_argument", `alloc[${i}].owner is not a base58 pubkey`);
      state.setAccount(key, {
        lamports: entry.lamports,
        owner,
        executable: entry.executable ?? false,
        rentEpoch: U64_MAX,
        data: entry.data ?? new Uint8Array(),
      });
    }
    return state.commit();
  }

  /** Reads the SVM state `root`: committed, or an uncommitted result's when its `writes` are given. */
  reader(root: Hex, pendingWrites?: ReadonlyMap<string, Uint8Array>): SvmStateReader {
    if (!isHex(root, 32)) throw new ExecutionError("invalid_argument", `SVM root ${root} is not 32-byte hex`);
    let opened: Promise<SvmState> | null = null;
    const state = (): Promise<SvmState> => {
      opened ??= SvmState.open(this.opts.db, this.cache, root, pendingWrites ?? null);
      return opened;
    };
    const key = (address: string): Uint8Array => {
      const bytes = base58Bytes32(address);
      if (bytes === null) throw new ExecutionError("invalid_argument", `${address} is not a base58 32-byte address`);
      return bytes;
    };
    return {
      getAccount: async (address) => (await state()).getAccount(key(address)),
      processedAt: async (signature) => {
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(base58.encode(signature));
        } catch {
          throw new ExecutionError("invalid_argument", "signature is not base58");
        }
        if (bytes.length !== 64) throw new ExecutionError("invalid_argument", "signature is not 64 bytes");
        return (await state()).processedAt(bytes);
      },
      getProof: async (address) => (await state()).proof(key(address)),
    };
  }

  private checkEnv(env: SvmBlockEnv, parentRoot: Hex): ReadonlySet<string> {
    if (!isHex(parentRoot, 32)) throw new ExecutionError("invalid_argument", `SVM root ${parentRoot} malformed`);
    if (!Number.isSafeInteger(env.slot) || env.slot < 0) {
      throw new ExecutionError("invalid_argument", `slot ${env.slot} is not a non-negative safe integer`);
    }
    if (!Number.isSafeInteger(env.unixTimestamp)) {
      throw new ExecutionError("invalid_argument", `unix timestamp ${env.unixTimestamp} is not a safe integer`);
    }
    if (env.blockhash !== undefined && base58Bytes32(env.blockhash) === null) {
      throw new ExecutionError("invalid_argument", `blockhash ${env.blockhash} is not base58 of 32 bytes`);
    }
    if (env.recentBlockhashes.length > SVM_BLOCKHASH_WINDOW || env.recentBlockhashes.length > env.slot) {
      throw new ExecutionError(
        "invalid_argument",
        `${env.recentBlockhashes.length} recent blockhashes for slot ${env.slot} (window ${SVM_BLOCKHASH_WINDOW})`,
      );
    }
    for (const hash of env.recentBlockhashes) {
      if (this.checkedBlockhashes.has(hash)) continue;
      if (base58Bytes32(hash) === null) throw new ExecutionError("invalid_argument", `recent blockhash ${hash}`);
      if (this.checkedBlockhashes.size >= 4 * SVM_BLOCKHASH_WINDOW) this.checkedBlockhashes.clear();
      this.checkedBlockhashes.add(hash);
    }
    return new Set(env.recentBlockhashes);
  }

  /** Builds on committed state only: `writes` leaves out nodes read from below (../overlay.ts). */
  private async requireCommitted(root: Hex): Promise<void> {
    const lower = root.toLowerCase() as Hex;
    if (lower === SVM_VM.emptyRoot) return;
    let node: Uint8Array | undefined;
    try {
      node = await this.opts.db.get(fromHex(lower));
    } catch (cause) {
      throw new ExecutionError("storage", "reading the parent SVM root failed", { root }, { cause });
    }
    if (node === undefined) {
      throw new ExecutionError("missing_state", `parent SVM root ${root} is not committed`, { root });
    }
  }

  /** @internal A litesvm instance set to `env`'s clock and slot hashes. */
  acquire(env: SvmBlockEnv): Instance {
    const svm = this.idle.pop() ?? SvmExecutor.createInstance();
    const slot = BigInt(env.slot);
    const epoch = slot / SVM_SLOTS_PER_EPOCH;
    svm.setClock(new Clock(slot, 0n, epoch, epoch + 1n, BigInt(env.unixTimestamp)));
    svm.setSlotHashes(env.recentBlockhashes.map((hash, i) => ({ slot: slot - 1n - BigInt(i), hash })));
    return { svm, tainted: false };
  }

  /** @internal */
  release(instance: Instance): void {
    if (!instance.tainted && this.idle.length < MAX_IDLE_INSTANCES) this.idle.push(instance.svm);
  }

  /**
   * @internal Checks, executes and applies one candidate; a candidate that cannot be charged changes nothing. A
   * gateway transaction's calls go to `evm` (none: they fail).
   */
  async apply(
    state: SvmState,
    instance: Instance,
    candidate: Candidate,
    window: ReadonlySet<string>,
    seen: ReadonlySet<string>,
    evm: ((tx: DecodedSvmTx) => Promise<GatewayRun>) | null,
  ): Promise<
    { kind: "skip"; skip: Omit<SvmSkipped, "index"> } | { kind: "included"; tx: DecodedSvmTx; receipt: SvmReceipt }
  > {
    let tx: DecodedSvmTx;
    if (isCandidateDecoded(candidate)) {
      tx = candidate;
    } else {
      const decoded = decodeSvmTransaction(candidate);
      if (!decoded.ok) return { kind: "skip", skip: { signature: null, code: decoded.code, reason: decoded.message } };
      tx = decoded.tx;
    }
    const preBalances = await this.balances(state, instance, tx.accountKeys);
    const outcome = await this.applyDecoded(state, instance, tx, window, seen, evm);
    if (outcome.kind === "skip") return outcome;
    const postBalances = await this.balances(state, instance, tx.accountKeys);
    return { ...outcome, receipt: { ...outcome.receipt, preBalances, postBalances } };
  }

  /** Lamports of each key: from the state, or for a built-in account (outside it) from litesvm. */
  private async balances(state: SvmState, instance: Instance, keys: readonly Uint8Array[]): Promise<bigint[]> {
    const out: bigint[] = [];
    for (const key of keys) {
      out.push(
        this.reserved.has(toHex(key))
          ? (fromLiteAccount(instance.svm.getAccount(key))?.lamports ?? 0n)
          : await state.lamports(key),
      );
    }
    return out;
  }

  private async applyDecoded(
    state: SvmState,
    instance: Instance,
    tx: DecodedSvmTx,
    window: ReadonlySet<string>,
    seen: ReadonlySet<string>,
    evm: ((tx: DecodedSvmTx) => Promise<GatewayRun>) | null,
  ): Promise<
    | { kind: "skip"; skip: Omit<SvmSkipped, "index"> }
    | { kind: "included"; tx: DecodedSvmTx; receipt: Omit<SvmReceipt, "preBalances" | "postBalances"> }
  > {
    const skip = (code: SvmInapplicableCode, reason: string) =>
      ({ kind: "skip", skip: { signature: tx.signature, code, reason } }) as const;
    if (!window.has(tx.recentBlockhash)) {
      return skip("stale_blockhash", `blockhash ${tx.recentBlockhash} is not among the last ${window.size}`);
    }
    if (seen.has(tx.signature)) return skip("duplicate", "already in this block");
    const processedAt = await state.processedAt(tx.signatureBytes);
    if (processedAt !== null) return skip("duplicate", `processed in slot ${processedAt}`);

    const payerKey = tx.accountKeys[0] as Uint8Array;
    const payerAddress = tx.accounts[0] as string;
    const payer = this.reserved.has(toHex(payerKey)) ? null : await state.getAccount(payerKey);
    if (payer === null) return skip("unknown_payer", `fee payer ${payerAddress} has no account`);
    const baseFee = LAMPORTS_PER_SIGNATURE * BigInt(tx.numSignatures);
    if (payer.lamports < baseFee) {
      return skip("insufficient_funds", `fee payer holds ${payer.lamports} lamports, the fee is ${baseFee}`);
    }

    if (tx.evmCalls !== null) {
      // A gateway transaction: litesvm runs nothing; the payer pays the base fee whatever the EVM calls do.
      const run: GatewayRun =
        evm === null
          ? { kind: "ran", outcome: { ok: false, gasUsed: 0n, error: { index: 0, reason: "no EVM" }, lines: [] } }
          : await evm(tx);
      if (run.kind === "skip") return skip("block_gas_limit", run.reason);
      const { outcome } = run;
      const error = outcome.error === null ? null : `EvmCallFailed(${outcome.error.index}, ${outcome.error.reason})`;
      const logs = [`Program ${EVM_GATEWAY_PROGRAM} invoke [1]`, ...outcome.lines.map((l) => `Program log: ${l}`)];
      logs.push(
        error === null ? `Program ${EVM_GATEWAY_PROGRAM} success` : `Program ${EVM_GATEWAY_PROGRAM} failed: ${error}`,
      );
      const computeUnits = outcome.gasUsed / GAS_PER_COMPUTE_UNIT;
      state.setAccount(payerKey, { ...payer, lamports: payer.lamports - baseFee });
      await this.credit(state, baseFee);
      return {
        kind: "included",
        tx,
        receipt: {
          signature: tx.signature,
          status: error === null ? "ok" : "err",
          error,
          fee: baseFee,
          computeUnits,
          logs,
        },
      };
    }

    // Load every named account (and the program data behind upgradeable programs) from the state into litesvm.
    const svm = instance.svm;
    const pre = await this.loadAccounts(state, instance, tx.accountKeys);
    const reservedBefore = this.reservedSnapshots(svm, tx.accountKeys, tx.writable);

    const result: TransactionMetadata | FailedTransactionMetadata =
      tx.version === "legacy" ? svm.sendLegacyTransaction(tx.raw) : svm.sendVersionedTransaction(tx.raw);
    const failed = result instanceof FailedTransactionMetadata;
    const meta = failed ? result.meta() : result;
    const logs = meta.logs();
    const computeUnits = meta.computeUnitsConsumed();

    // A writable built-in account (e.g. an SPL program's data account) changed: outside the state, so the
    // transaction cannot keep its effects. It fails and pays the base fee.
    const reservedChanged = this.reservedChanged(instance, reservedBefore);

    if (failed || reservedChanged) {
      const charged = payer.lamports - (fromLiteAccount(svm.getAccount(payerKey))?.lamports ?? 0n);
      const fee = reservedChanged ? baseFee : charged;
      if (fee <= 0n) return skip("not_chargeable", failed ? errorText(result) : "not charged");
      state.setAccount(payerKey, { ...payer, lamports: payer.lamports - fee });
      await this.credit(state, fee);
      const error = failed ? errorText(result) : "ReservedAccountModified";
      return {
        kind: "included",
        tx,
        receipt: { signature: tx.signature, status: "err", error, fee, computeUnits, logs },
      };
    }

    // Success: every writable account the state holds is read back; lamports that vanished are the fee.
    let before = 0n;
    let after = 0n;
    for (const [i, key] of tx.accountKeys.entries()) {
      const hex = toHex(key);
      if (tx.writable[i] !== true || this.reserved.has(hex)) continue;
      const old = pre.get(hex)?.account ?? null;
      const now = fromLiteAccount(svm.getAccount(key));
      before += old?.lamports ?? 0n;
      after += now?.lamports ?? 0n;
      if (now !== null && isLoaderOwned(now)) instance.tainted = true;
      if (!sameAccount(old, now)) state.setAccount(key, now);
    }
    const fee = before - after;
    if (fee < 0n) throw new Error(`litesvm created ${-fee} lamports in ${tx.signature}`);
    await this.credit(state, fee);
    return {
      kind: "included",
      tx,
      receipt: { signature: tx.signature, status: "ok", error: null, fee, computeUnits, logs },
    };
  }

  /**
   * @internal Runs one EVM -> SVM instruction (../cross-vm.ts) as a synthetic transaction: fee payer CROSS_VM_PAYER
   * (funded for the run, never stored), a compute limit, the instruction. Only the instruction's writable accounts are
   * read back, and only when it succeeds; lamports among them are conserved (the payer's fee stays in litesvm).
   */
  async invoke(state: SvmState, instance: Instance, request: InvokeRequest, blockhash: string): Promise<InvokeResult> {
    const program = base58Decoder.decode(request.programId);
    const fail = (error: string, computeUnits = 0n): InvokeResult => ({ ok: false, computeUnits, error });
    if (program === EVM_GATEWAY_PROGRAM || program === CROSS_VM_PAYER) return fail("UnsupportedProgramId");
    const limit =
      request.computeUnitLimit > MAX_INVOKE_COMPUTE_UNITS ? MAX_INVOKE_COMPUTE_UNITS : request.computeUnitLimit;
    const payer = base58Decoder.decode(this.payerKey) as Address;
    const accounts = request.accounts.map((a) => {
      const role = a.isSigner
        ? a.isWritable
          ? AccountRole.WRITABLE_SIGNER
          : AccountRole.READONLY_SIGNER
        : a.isWritable
          ? AccountRole.WRITABLE
          : AccountRole.READONLY;
      return { address: base58Decoder.decode(a.pubkey) as Address, role };
    });
    if (accounts.some((a) => a.address === payer)) return fail("UnsupportedAccount");
    const limitData = new Uint8Array(5);
    limitData[0] = 2; // ComputeBudgetInstruction::SetComputeUnitLimit(u32)
    new DataView(limitData.buffer).setUint32(1, Number(limit), true);
    const instructions: Instruction[] = [
      { programAddress: COMPUTE_BUDGET_PROGRAM as Address, data: limitData },
      { programAddress: program as Address, accounts, data: request.data },
    ];
    let raw: Uint8Array;
    try {
      const message = appendTransactionMessageInstructions(
        instructions,
        setTransactionMessageLifetimeUsingBlockhash(
          {
            blockhash: blockhash as Parameters<typeof setTransactionMessageLifetimeUsingBlockhash>[0]["blockhash"],
            lastValidBlockHeight: 0n,
          },
          setTransactionMessageFeePayer(payer, createTransactionMessage({ version: "legacy" })),
        ),
      );
      raw = new Uint8Array(transactionEncoder.encode(compileTransaction(message)));
    } catch (error) {
      return fail(`InvalidInstruction(${error instanceof Error ? error.message : String(error)})`);
    }
    const keys = [request.programId, ...request.accounts.map((a) => a.pubkey)];
    const writable = [false, ...request.accounts.map((a) => a.isWritable)];
    const svm = instance.svm;
    const pre = await this.loadAccounts(state, instance, keys);
    const reservedBefore = this.reservedSnapshots(svm, keys, writable);
    svm.setAccount(
      this.payerKey,
      new Account(CROSS_VM_PAYER_LAMPORTS, new Uint8Array(), keyOf(SYSTEM_PROGRAM), false, 0n),
    );
    let sent: TransactionMetadata | FailedTransactionMetadata;
    try {
      sent = svm.sendLegacyTransaction(raw);
    } catch (error) {
      // litesvm refused the bytes outright (nothing ran): deterministic, and the caller's problem, not the block's.
      instance.tainted = true;
      return fail(`InvalidTransaction(${error instanceof Error ? error.message : String(error)})`);
    }
    const result = sent;
    const failed = result instanceof FailedTransactionMetadata;
    const meta = failed ? result.meta() : result;
    const computeUnits = meta.computeUnitsConsumed();
    if (this.reservedChanged(instance, reservedBefore)) return fail("ReservedAccountModified", computeUnits);
    if (failed) return fail(errorText(result), computeUnits);
    let before = 0n;
    let after = 0n;
    const changed: { key: Uint8Array; account: SvmAccount | null }[] = [];
    const readBack = new Set<string>();
    for (const [i, key] of keys.entries()) {
      const hex = toHex(key);
      // An account named twice is counted once.
      if (writable[i] !== true || this.reserved.has(hex) || readBack.has(hex)) continue;
      readBack.add(hex);
      const old = pre.get(hex)?.account ?? null;
      const now = fromLiteAccount(svm.getAccount(key));
      before += old?.lamports ?? 0n;
      after += now?.lamports ?? 0n;
      if (now !== null && isLoaderOwned(now)) instance.tainted = true;
      if (!sameAccount(old, now)) changed.push({ key, account: now });
    }
    if (before !== after) throw new Error(`litesvm moved ${after - before} lamports in a cross-VM invoke`);
    for (const { key, account } of changed) state.setAccount(key, account);
    return { ok: true, computeUnits, returnData: new Uint8Array(meta.returnData().data()) };
  }

  /** Copies every named account (and the program data behind upgradeable programs) from the state into litesvm. */
  private async loadAccounts(
    state: SvmState,
    instance: Instance,
    keys: readonly Uint8Array[],
  ): Promise<Map<string, { key: Uint8Array; account: SvmAccount | null }>> {
    const pre = new Map<string, { key: Uint8Array; account: SvmAccount | null }>();
    const load = async (key: Uint8Array): Promise<SvmAccount | null> => {
      const hex = toHex(key);
      const known = pre.get(hex);
      if (known !== undefined) return known.account;
      const account = await state.getAccount(key);
      pre.set(hex, { key, account });
      return account;
    };
    for (const key of keys) {
      if (this.reserved.has(toHex(key))) continue;
      const account = await load(key);
      const programData = account === null ? null : programDataOf(account);
      if (programData !== null && !this.reserved.has(toHex(programData))) await load(programData);
    }
    for (const { key, account } of pre.values()) {
      if (account !== null && isLoaderOwned(account)) instance.tainted = true;
      instance.svm.setAccount(key, account === null ? ABSENT() : toLiteAccount(account));
    }
    return pre;
  }

  /** What the writable built-in accounts among `keys` hold before a run (they are outside the state). */
  private reservedSnapshots(
    svm: LiteSvm,
    keys: readonly Uint8Array[],
    writable: readonly boolean[],
  ): Map<string, Uint8Array | null> {
    const before = new Map<string, Uint8Array | null>();
    for (const [i, key] of keys.entries()) {
      const hex = toHex(key);
      if (writable[i] === true && this.reserved.has(hex)) before.set(hex, snapshot(svm, key));
    }
    return before;
  }

  /**
   * Whether a writable built-in account changed (e.g. an SPL program's data account): outside the state, so the run
   * cannot keep its effects. The instance is not reused.
   */
  private reservedChanged(instance: Instance, before: ReadonlyMap<string, Uint8Array | null>): boolean {
    let changed = false;
    for (const [hex, was] of before) {
      const now = snapshot(instance.svm, fromHex(hex));
      if (was === null ? now !== null : now === null || !bytesEqual(was, now)) changed = true;
    }
    if (changed) instance.tainted = true;
    return changed;
  }

  /** Adds `fee` to the fee collector (created as a plain system account on first use). */
  private async credit(state: SvmState, fee: bigint): Promise<void> {
    if (fee === 0n) return;
    const current = await state.getAccount(this.collectorKey);
    state.setAccount(
      this.collectorKey,
      current === null
        ? { lamports: fee, owner: keyOf(SYSTEM_PROGRAM), executable: false, rentEpoch: U64_MAX, data: new Uint8Array() }
        : { ...current, lamports: current.lamports + fee },
    );
  }
}

function snapshot(svm: LiteSvm, key: Uint8Array): Uint8Array | null {
  const account = fromLiteAccount(svm.getAccount(key));
  return account === null ? null : encodeSvmAccount(account);
}

const LOADER_KEYS = LOADERS.map((l) => keyOf(l));

function isLoaderOwned(account: SvmAccount): boolean {
  return LOADER_KEYS.some((k) => bytesEqual(k, account.owner));
}

/** An upgradeable-loader program account (UpgradeableLoaderState::Program, tag 2) names its program data account. */
function programDataOf(account: SvmAccount): Uint8Array | null {
  if (!account.executable || !bytesEqual(account.owner, keyOf(UPGRADEABLE_LOADER))) return null;
  const d = account.data;
  if (d.length < 36 || d[0] !== 2 || d[1] !== 0 || d[2] !== 0 || d[3] !== 0) return null;
  return d.slice(4, 36);
}

/**
 * The SVM side of one block (SvmExecutor.open): one state and one litesvm instance for the EVM's invokes and the
 * block's own transactions, journaled with the EVM state while the EVM transactions run (../cross-vm.ts).
 */
export class SvmBlockSession implements SvmSide {
  private readonly included: DecodedSvmTx[] = [];
  private readonly receipts: SvmReceipt[] = [];
  private readonly skipped: SvmSkipped[] = [];
  private readonly processed: Uint8Array[] = [];
  private readonly seen = new Set<string>();
  /** True while a gateway transaction's EVM calls run: an invoke then would re-enter the SVM. */
  private inGateway = false;
  private closed = false;
  /** Taken on first use: a block or call without SVM work never touches litesvm. */
  private lite: Instance | null = null;

  /** @internal */
  constructor(
    private readonly executor: SvmExecutor,
    private readonly state: SvmState,
    private readonly env: SvmBlockEnv,
    private readonly window: ReadonlySet<string>,
    private readonly slot: bigint,
    private readonly index: readonly bigint[],
  ) {}

  private get instance(): Instance {
    if (this.closed) throw new Error("SVM session used after close");
    this.lite ??= this.executor.acquire(this.env);
    return this.lite;
  }

  checkpoint(): void {
    this.state.checkpoint();
  }

  keepCheckpoint(): void {
    this.state.keepCheckpoint();
  }

  revertCheckpoint(): void {
    this.state.revertCheckpoint();
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    if (this.inGateway) return { ok: false, computeUnits: 0n, error: "ReentrantCrossVmCall" };
    // The synthetic transaction's lifetime token: litesvm does not check it.
    const blockhash = this.env.recentBlockhashes[0] ?? SYSTEM_PROGRAM;
    return this.executor.invoke(this.state, this.instance, request, blockhash);
  }

  /**
   * Runs the block's SVM transactions after its EVM ones; gateway transactions call `evm` (without it they fail).
   * "validate" throws ExecutionError "invalid_transaction" on one that cannot apply.
   */
  async run(
    txs: readonly Candidate[],
    mode: "build" | "validate",
    buildBudgetMs?: number,
    evm?: EvmSide,
  ): Promise<void> {
    if (txs.length > MAX_SVM_BLOCK_TRANSACTIONS) {
      throw new ExecutionError("invalid_argument", `${txs.length} candidates exceed ${MAX_SVM_BLOCK_TRANSACTIONS}`);
    }
    const deadline = mode === "build" && buildBudgetMs !== undefined ? performance.now() + buildBudgetMs : Infinity;
    const gateway = evm === undefined ? null : (tx: DecodedSvmTx) => this.callEvm(evm, tx);
    if (txs.length === 0) return;
    const instance = this.instance;
    for (const [i, candidate] of txs.entries()) {
      // Every validator re-executes the block within a round: past the budget the proposer stops adding.
      if (this.included.length > 0 && performance.now() > deadline) break;
      const outcome = await this.executor.apply(this.state, instance, candidate, this.window, this.seen, gateway);
      if (outcome.kind === "skip") {
        const skip: SvmSkipped = { index: i, ...outcome.skip };
        if (mode === "validate") {
          throw new ExecutionError("invalid_transaction", `SVM transaction ${i}: ${skip.code}: ${skip.reason}`, {
            index: i,
            signature: skip.signature,
            code: skip.code,
          });
        }
        this.skipped.push(skip);
        continue;
      }
      this.seen.add(outcome.tx.signature);
      this.processed.push(outcome.tx.signatureBytes);
      this.included.push(outcome.tx);
      this.receipts.push(outcome.receipt);
    }
  }

  /** Records the processed signatures and commits: the block's SVM root, receipts and new trie nodes. */
  async finish(): Promise<SvmExecutionResult> {
    if (this.closed) throw new Error("SVM session used after close");
    this.state.recordSignatures(this.slot, this.processed, this.index);
    const { root, writes } = await this.executor.commitState(this.state);
    this.close();
    return { root, included: this.included, receipts: this.receipts, skipped: this.skipped, writes };
  }

  /** Returns the litesvm instance; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.lite !== null) this.executor.release(this.lite);
  }

  private async callEvm(evm: EvmSide, tx: DecodedSvmTx): Promise<GatewayRun> {
    const calls = (tx.evmCalls ?? []).map((c) => ({
      from: evmAddressOf(tx.accountKeys[c.signerIndex] as Uint8Array),
      to: c.to,
      gasLimit: c.gasLimit,
      data: c.data,
    }));
    let asked = 0n;
    for (const c of calls) asked += c.gasLimit;
    if (asked > evm.gasLeft())
      return { kind: "skip", reason: `EVM gas limits ${asked}, ${evm.gasLeft()} left in the block` };
    this.inGateway = true;
    try {
      return { kind: "ran", outcome: await evm.callAll(calls) };
    } finally {
      this.inGateway = false;
    }
  }
}
