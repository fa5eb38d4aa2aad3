// The Solana VM execution module: runs a block's Solana transactions on a parent SVM root with litesvm and returns the
// new root, the receipts and the new trie nodes, writing nothing (the node puts `writes` in the block's commit batch,
// as for the EVM: docs/execution.md, docs/svm.md).
//
// litesvm is the instruction processor only. The node owns everything that must be deterministic and survive a
// restart: the accounts (a trie, ./state.ts; litesvm snapshots are not deterministic), signature checks (once, at
// decode), the recent-blockhash window and replay protection (processed signatures live in the trie), the clock.
// Before each transaction every account it names is copied from the state into litesvm, afterwards every writable one
// is read back; so what litesvm held before (another block, another fork) never leaks into a result.

import { getBase58Encoder } from "@solana/kit";
import {
  Account,
  Clock,
  EpochSchedule,
  FailedTransactionMetadata,
  LiteSvm,
  type TransactionMetadata,
} from "litesvm/dist/internal.js";
import { bytesEqual, fromHex, type Hex, isHex, toHex } from "../../../consensus/bytes.ts";
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
  | "not_chargeable";

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
  readonly computeUnits: bigint;
  readonly logs: readonly string[];
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

interface Instance {
  readonly svm: LiteSvm;
  /** Whether a program account went through it: litesvm caches programs, so the instance is not reused. */
  tainted: boolean;
}

const base58 = getBase58Encoder();

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
  private readonly collectorKey = keyOf(SVM_FEE_COLLECTOR);

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
   */
  async execute(
    parentRoot: Hex,
    env: SvmBlockEnv,
    txs: readonly Candidate[],
    mode: "build" | "validate",
    /** Build mode: stop including transactions once this much time has passed (the rest stay in the pool). */
    buildBudgetMs?: number,
  ): Promise<SvmExecutionResult> {
    const window = this.checkEnv(env, parentRoot);
    if (txs.length > MAX_SVM_BLOCK_TRANSACTIONS) {
      throw new ExecutionError("invalid_argument", `${txs.length} candidates exceed ${MAX_SVM_BLOCK_TRANSACTIONS}`);
    }
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

    const instance = this.acquire(env);
    const included: DecodedSvmTx[] = [];
    const receipts: SvmReceipt[] = [];
    const skipped: SvmSkipped[] = [];
    const processed: Uint8Array[] = [];
    const seen = new Set<string>();
    const deadline = mode === "build" && buildBudgetMs !== undefined ? performance.now() + buildBudgetMs : Infinity;
    try {
      for (const [i, candidate] of txs.entries()) {
        // Every validator re-executes the block within a round: past the budget the proposer stops adding.
        if (included.length > 0 && performance.now() > deadline) break;
        const outcome = await this.apply(state, instance, candidate, window, seen);
        if (outcome.kind === "skip") {
          const skip: SvmSkipped = { index: i, ...outcome.skip };
          if (mode === "validate") {
            throw new ExecutionError("invalid_transaction", `SVM transaction ${i}: ${skip.code}: ${skip.reason}`, {
              index: i,
              signature: skip.signature,
              code: skip.code,
            });
          }
          skipped.push(skip);
          continue;
        }
        seen.add(outcome.tx.signature);
        processed.push(outcome.tx.signatureBytes);
        included.push(outcome.tx);
        receipts.push(outcome.receipt);
      }
    } finally {
      this.release(instance);
    }
    state.recordSignatures(slot, processed, index);
    const { root, writes } = await state.commit();
    for (const [key, value] of writes) this.cache.set(key, value);
    return { root, included, receipts, skipped, writes };
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
      if (base58Bytes32(hash) === null) throw new ExecutionError("invalid_argument", `recent blockhash ${hash}`);
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

  private acquire(env: SvmBlockEnv): Instance {
    const svm = this.idle.pop() ?? SvmExecutor.createInstance();
    const slot = BigInt(env.slot);
    const epoch = slot / SVM_SLOTS_PER_EPOCH;
    svm.setClock(new Clock(slot, 0n, epoch, epoch + 1n, BigInt(env.unixTimestamp)));
    svm.setSlotHashes(env.recentBlockhashes.map((hash, i) => ({ slot: slot - 1n - BigInt(i), hash })));
    return { svm, tainted: false };
  }

  private release(instance: Instance): void {
    if (!instance.tainted && this.idle.length < MAX_IDLE_INSTANCES) this.idle.push(instance.svm);
  }

  /** Checks, executes and applies one candidate; a candidate that cannot be charged changes nothing. */
  private async apply(
    state: SvmState,
    instance: Instance,
    candidate: Candidate,
    window: ReadonlySet<string>,
    seen: ReadonlySet<string>,
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

    // Load every named account (and the program data behind upgradeable programs) from the state into litesvm.
    const svm = instance.svm;
    const pre = new Map<string, { key: Uint8Array; account: SvmAccount | null }>();
    const load = async (key: Uint8Array): Promise<SvmAccount | null> => {
      const hex = toHex(key);
      const known = pre.get(hex);
      if (known !== undefined) return known.account;
      const account = await state.getAccount(key);
      pre.set(hex, { key, account });
      return account;
    };
    for (const key of tx.accountKeys) {
      if (this.reserved.has(toHex(key))) continue;
      const account = await load(key);
      const programData = account === null ? null : programDataOf(account);
      if (programData !== null && !this.reserved.has(toHex(programData))) await load(programData);
    }
    const reservedBefore = new Map<string, Uint8Array | null>();
    for (const [i, key] of tx.accountKeys.entries()) {
      const hex = toHex(key);
      if (tx.writable[i] === true && this.reserved.has(hex)) reservedBefore.set(hex, snapshot(svm, key));
    }
    for (const { key, account } of pre.values()) {
      if (account !== null && isLoaderOwned(account)) instance.tainted = true;
      svm.setAccount(key, account === null ? ABSENT() : toLiteAccount(account));
    }

    const result: TransactionMetadata | FailedTransactionMetadata =
      tx.version === "legacy" ? svm.sendLegacyTransaction(tx.raw) : svm.sendVersionedTransaction(tx.raw);
    const failed = result instanceof FailedTransactionMetadata;
    const meta = failed ? result.meta() : result;
    const logs = meta.logs();
    const computeUnits = meta.computeUnitsConsumed();

    // A writable built-in account (e.g. an SPL program's data account) changed: outside the state, so the
    // transaction cannot keep its effects. It fails and pays the base fee.
    let reservedChanged = false;
    for (const [hex, before] of reservedBefore) {
      const after = snapshot(svm, fromHex(hex));
      if (before === null ? after !== null : after === null || !bytesEqual(before, after)) reservedChanged = true;
    }
    if (reservedChanged) instance.tainted = true;

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
