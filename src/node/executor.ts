// The driver's view of execution: builds blocks from the mempool on top of the head, executes proposed and synced
// blocks and checks that every result the header claims (transactions and receipts roots, state roots of every VM,
// gas used, logs bloom) matches, and hands the state writes, receipts and transaction index to the commit batch.
// Execution results are kept per block hash for the height being decided, so a block is executed once per node.
//
// Two VMs run in every block (docs/svm.md "Blocks"): the EVM entries first, through ExecutionCore, then the SVM entries
// (0x53 || Solana wire bytes) through SvmExecutor, with slot = height, the header's timestamp and the blockhashes of
// the last 150 committed blocks. The header's vmRoots hold both roots; transactionsRoot and receiptsRoot cover every
// entry in block order. The two VMs share one linked state per block (docs/cross-vm.md): EVM transactions may invoke
// SVM instructions through a precompile, and SVM gateway transactions call the EVM, before the EVM state is committed.
import { bytesEqual, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import {
  type Certificate,
  decodeCertificate,
  encodeCertificate,
  verifyCertificate,
} from "../../consensus/certificate.ts";
import { DecodeError } from "../../consensus/codec.ts";
import type { SignatureScheme, ValidatorSet } from "../../consensus/types.ts";
import { indexOfAddress } from "../../consensus/validator-set.ts";
import {
  type Block,
  type BlockHeader,
  type BlockProblem,
  blockHash,
  checkBlock,
  type Deposit,
  decodeBlock,
  depositsHash,
  EMPTY_BLOOM,
  EMPTY_DEPOSITS_HASH,
  encodeBlock,
  isSvmEntry,
  MAX_BLOCK_DEPOSITS,
  problem,
  ZERO_HASH,
} from "../chain/block.ts";
import { EMPTY_TRIE_ROOT, orderedTrieRoot } from "../chain/ordered-trie.ts";
import { encodeReceipts } from "../chain/receipts.ts";
import type { Genesis } from "../config/genesis.ts";
import type {
  BlockEnv,
  CallRequest,
  CallResult,
  EvmObserver,
  ExecutionCore,
  ExecutionResult,
} from "../execution/core.ts";
import { fastKeccak256 } from "../execution/keccak.ts";
import type { SimulatedBlock, SimulatedBlockRequest, SimulateOptions, SimulationBase } from "../execution/simulate.ts";
import { SVM_VM } from "../execution/svm/account.ts";
import { svmBlockhash } from "../execution/svm/blockhash.ts";
import {
  MAX_SVM_BLOCK_TRANSACTIONS,
  SVM_BLOCKHASH_WINDOW,
  type SvmBlockEnv,
  type SvmExecutionResult,
  SvmExecutor,
} from "../execution/svm/executor.ts";
import { encodeSvmReceiptLeaf, signatureIndexKey, toStoredSvmReceipt } from "../execution/svm/receipt.ts";
import type { DecodedSvmTx } from "../execution/svm/tx.ts";
import { SvmDecodeCache } from "../execution/svm/tx-cache.ts";
import type { DecodedTx } from "../execution/tx.ts";
import { globalStateRoot, type VmRoot } from "../execution/vm.ts";
import type { L1Answer, L1Ref, L1View } from "../l1/view.ts";
import type { Mempool } from "../mempool/mempool.ts";
import { type SvmHeadView, svmEntryOf } from "../mempool/svm-lane.ts";
import type { ChainStore } from "../storage/chain-store.ts";

/** What the next block is built on: the head's header fields that the next header depends on. */
export interface ParentInfo {
  readonly hash: Hex;
  readonly height: number;
  readonly timestampMs: number;
  readonly l1Origin: L1Ref;
  /** The parent header's nextDepositNonce (0 at the genesis). */
  readonly depositNonce: bigint;
  readonly gasLimit: bigint;
  readonly gasUsed: bigint;
  readonly baseFeePerGas: bigint;
  readonly stateRoot: Hex;
  readonly vmRoots: readonly { readonly vm: number; readonly root: Hex }[];
  /**
   * An L1 block at or before the L1 block of every deposit from `depositNonce` on: where reading the portal's deposits
   * may start (depositsScanFrom).
   */
  readonly depositsFrom: bigint;
}

/**
 * Where the deposits after block `h` (nonces from its nextDepositNonce) can first be on L1. A block includes every
 * deposit due by its origin, up to MAX_BLOCK_DEPOSITS, in nonce order, and nonces follow L1 order: so after a block
 * that included fewer than the maximum, every later deposit is after its origin; after a full one, none is before the
 * last it included. The genesis bounds nothing: deposits made before its origin are due in block 1.
 */
export function depositsScanFrom(h: BlockHeader, deposits: readonly Deposit[]): bigint {
  if (h.height === 0) return 0n;
  const last = deposits.at(-1);
  return deposits.length >= MAX_BLOCK_DEPOSITS && last !== undefined ? last.l1BlockNumber : h.l1Origin.number + 1n;
}

/** The origin of every block of a subnet without an L1 anchor. */
export const NO_L1_ORIGIN: L1Ref = { number: 0n, hash: ZERO_HASH };

export interface ExecutorParams {
  readonly maxBlockBytes: number;
  readonly maxBlockTransactions: number;
  readonly maxClockDriftMs: number;
  /**
   * Time the proposer may spend executing the transactions of a block it builds (default 250 ms). Every validator
   * re-executes the block before it prevotes, so a block that takes longer than a round's timeouts to execute fails
   * the round, and the next proposer's block is larger still: throughput collapses instead of levelling off.
   */
  readonly maxBuildMs?: number;
}

export const DEFAULT_MAX_BUILD_MS = 250;

/**
 * How far (in L1 blocks) a proposed block's L1 origin may trail the newest block this node's L1 view has confirmed.
 * The origin decides which portal deposits are due, so this bounds how long a proposer can keep a deposit out: a
 * deposit is on L2 at the latest MAX_L1_ORIGIN_LAG_BLOCKS (+ the confirmation depth) L1 blocks after it
 * (docs/hard-finality.md "Deposits"). Judged on the local view: a block past it gets a nil prevote, not blame.
 */
export const MAX_L1_ORIGIN_LAG_BLOCKS = 32n;

/** The set deciding a height and the set deciding the next one: the header names both. */
export interface DecidingSets {
  readonly set: ValidatorSet;
  readonly next: ValidatorSet;
}

export interface CommitExtras {
  readonly stateWrites: ReadonlyMap<string, Uint8Array>;
  readonly receipts: Uint8Array;
  readonly transactionHashes: readonly Hex[];
  /**
   * The block's last certificate when it differs from the one this node holds for the parent: the store replaces
   * its certificate of the parent with it, so every node serves the same (canonical) certificate below its head.
   */
  readonly parentCertificate?: Certificate;
}

/** Keeps at most this many executed candidates (a few proposals per round, a few rounds). */
const MAX_CANDIDATES = 64;
/** Bytes of a block that are not transactions, kept free when filling it (header, certificate, deposits). */
const BLOCK_OVERHEAD_BYTES = 64 * 1024;

/** What executing a block's entries on both VMs gives: the header's claims, and each VM's own result. */
export interface BlockExecution {
  readonly stateRoot: Hex;
  readonly vmRoots: readonly VmRoot[];
  readonly transactionsRoot: Hex;
  readonly receiptsRoot: Hex;
  readonly logsBloom: Hex;
  readonly gasUsed: bigint;
  readonly writes: ReadonlyMap<string, Uint8Array>;
  readonly evm: ExecutionResult;
  readonly svm: SvmExecutionResult;
}

/** The SVM root of a VM root list; every state since the genesis has one. */
export function svmRootOf(vmRoots: readonly VmRoot[]): Hex {
  const entry = vmRoots.find((r) => r.vm === SVM_VM.id);
  if (entry === undefined) throw new Error("the VM root list has no SVM root (a state from before the SVM genesis)");
  return entry.root;
}

export class BlockExecutor {
  private parent: ParentInfo;
  private candidates = new Map<
    Hex,
    { result: BlockExecution; txs: readonly DecodedTx[]; lastCertificate: Certificate | null }
  >();
  /** The Solana VM (docs/svm.md); its trie shares the store's state bucket. */
  readonly svm: SvmExecutor;
  /** Decodes SVM entries of blocks when the pool has no SVM lane (the lane's cache otherwise). */
  private readonly svmDecoder: SvmDecodeCache;
  /** svmBlockhash of the hashes in `recent`, by height (computed once per block). */
  private readonly svmHashes = new Map<number, string>();
  private svmWindowCache: { readonly height: number; readonly set: ReadonlySet<string> } | null = null;
  private svmHeadCache: {
    readonly hash: Hex;
    readonly view: SvmHeadView & { readonly root: Hex; readonly height: number };
  } | null = null;
  /** The encoded certificate this node holds for the parent (empty for the genesis): what a block it builds carries. */
  private parentCertificate: Uint8Array = new Uint8Array(0);
  private readonly operators: ReadonlyMap<Hex, Hex>;
  /** genesisBlock()'s answer, made once. */
  private genesisEntry: Promise<{ readonly hash: Hex; readonly block: Block }> | null = null;
  /** Hashes of the last 256 committed blocks (and the genesis as height 0): what BLOCKHASH can see. */
  private readonly recent = new Map<number, Hex>();

  constructor(
    private readonly params: ExecutorParams,
    private readonly m: {
      readonly genesis: Genesis;
      readonly core: ExecutionCore;
      readonly mempool: Mempool;
      readonly store: ChainStore;
      readonly nowMs: () => number;
      /** The L1 mirror when the genesis anchors the subnet to L1, else null. */
      readonly l1: L1View | null;
      /** Checks the parent certificates that blocks carry. */
      readonly scheme: SignatureScheme;
      /** The SVM executor over the store's state (one is created when absent). */
      readonly svm?: SvmExecutor;
    },
    parent: ParentInfo,
  ) {
    this.parent = parent;
    this.svm = m.svm ?? new SvmExecutor({ db: m.store.stateReader() });
    this.svmDecoder = m.mempool.svm?.decoder ?? new SvmDecodeCache();
    this.operators = new Map(m.genesis.validators.map((v) => [v.address.toLowerCase() as Hex, v.operator]));
  }

  /** The parent of the next block after a restart: the head header, or the genesis (whose state it writes once). */
  static async loadParent(
    genesis: Genesis,
    core: ExecutionCore,
    store: ChainStore,
    svm: SvmExecutor = new SvmExecutor({ db: store.stateReader() }),
  ): Promise<ParentInfo> {
    if (store.headHeight === 0) {
      const { parent, writes } = await genesisParent(genesis, core, svm);
      await store.putState(writes);
      return parent;
    }
    const bytes = await store.getBlock(store.headHeight);
    const hash = store.headHash();
    if (bytes === undefined || hash === null)
      throw new Error(`head block ${store.headHeight} is missing from the store`);
    const head = decodeBlock(bytes);
    return parentOf(head.header, hash, head.deposits);
  }

  /** Loads the hashes BLOCKHASH may ask for and the head's certificate; call once after construction. */
  async loadRecentHashes(): Promise<void> {
    this.recent.set(0, this.m.genesis.hash);
    const head = this.m.store.headHeight;
    if (head > 0) {
      const cert = await this.m.store.getCertificate(head);
      if (cert === undefined) throw new Error(`head block ${head} has no certificate in the store`);
      this.parentCertificate = encodeCertificate(cert);
    }
    for (let h = Math.max(1, head - 255); h <= head; h++) {
      const cert = await this.m.store.getCertificate(h);
      if (cert !== undefined) this.recent.set(h, cert.blockHash);
    }
  }

  /** The SVM blockhashes of heights `height - 1`, `height - 2`, ... back to the genesis, at most 150. */
  recentSvmBlockhashes(height: number, partial = false, hashAt?: (height: number) => Hex | undefined): string[] {
    const out: string[] = [];
    for (let h = height - 1; h >= 0 && h >= height - SVM_BLOCKHASH_WINDOW; h--) {
      let blockhash = this.svmHashes.get(h);
      if (blockhash === undefined) {
        const hash = hashAt === undefined ? this.recent.get(h) : hashAt(h);
        if (hash === undefined && partial) break;
        if (hash === undefined) throw new Error(`the hash of committed height ${h} is not loaded`);
        blockhash = svmBlockhash(hash);
        // Kept for the heights in memory only (they are dropped with them); a replay's older ones are not.
        if (hashAt === undefined) this.svmHashes.set(h, blockhash);
      }
      out.push(blockhash);
    }
    return out;
  }

  /** The blockhash clients use now: the head block's (valid through height head + 150). */
  latestSvmBlockhash(): { readonly blockhash: string; readonly height: number } {
    return { blockhash: this.recentSvmBlockhashes(this.parent.height + 1)[0] as string, height: this.parent.height };
  }

  /** The blockhashes a transaction may name to enter the next block. */
  svmWindow(): ReadonlySet<string> {
    const next = this.parent.height + 1;
    if (this.svmWindowCache?.height !== next) {
      this.svmWindowCache = { height: next, set: new Set(this.recentSvmBlockhashes(next)) };
    }
    return this.svmWindowCache.set;
  }

  /** The committed head's SVM state, for the pool's lane and the Solana RPC (one reader per head: its trie is shared). */
  svmHead(): SvmHeadView & { readonly root: Hex; readonly height: number } {
    if (this.svmHeadCache?.hash === this.parent.hash) return this.svmHeadCache.view;
    const root = svmRootOf(this.parent.vmRoots);
    const reader = this.svm.reader(root);
    const window = this.svmWindow();
    const view: SvmHeadView & { readonly root: Hex; readonly height: number } = {
      root,
      height: this.parent.height,
      window: () => window,
      lamports: async (address) => {
        if (this.svm.isReserved(address)) return null;
        return (await reader.getAccount(address))?.lamports ?? null;
      },
      processedAt: (signature) => reader.processedAt(signature),
    };
    this.svmHeadCache = { hash: this.parent.hash, view };
    return view;
  }

  /** `partial`: as many of the recent blockhashes as are in memory (calls on old heights). */
  private svmEnv(
    height: number,
    timestampMs: number,
    partial = false,
    hashAt?: (height: number) => Hex | undefined,
  ): SvmBlockEnv {
    return {
      slot: height,
      unixTimestamp: Math.floor(timestampMs / 1000),
      recentBlockhashes: this.recentSvmBlockhashes(height, partial, hashAt),
    };
  }

  /**
   * Runs a block on the head: the EVM entries (which may invoke SVM instructions), then the SVM entries (which may
   * call the EVM), on one linked state of both VMs (docs/cross-vm.md). Build mode shares one time budget.
   */
  private async executeBoth(
    env: BlockEnv,
    txs: readonly DecodedTx[],
    svmTxs: readonly (Uint8Array | DecodedSvmTx)[],
    mode: "build" | "validate",
    budgetMs?: number,
    replay?: { readonly parent: ParentInfo; readonly svmEnv: SvmBlockEnv; readonly observe: EvmObserver },
  ): Promise<{ evm: ExecutionResult; svm: SvmExecutionResult }> {
    const parent = replay?.parent ?? this.parent;
    const startedMs = performance.now();
    const session = await this.svm.open(
      svmRootOf(parent.vmRoots),
      replay?.svmEnv ?? this.svmEnv(env.height, env.timestampMs),
    );
    try {
      const evm = await this.m.core.execute(
        parent.stateRoot,
        parent.vmRoots,
        env,
        txs,
        mode,
        budgetMs,
        {
          svm: session,
          afterEvm: (gateway) =>
            session.run(
              svmTxs,
              mode,
              budgetMs === undefined ? undefined : Math.max(0, budgetMs - (performance.now() - startedMs)),
              gateway,
            ),
        },
        replay?.observe,
      );
      return { evm, svm: await session.finish() };
    } finally {
      session.close();
    }
  }

  /**
   * Runs committed block `height` again on its parent's state, with `observe` watching its EVM transactions run
   * (debug tracing), and checks that it gives the header's roots: a replay that differs throws, so no trace of a run
   * other than the block's own is ever given. Heights whose parent state was pruned throw a missing-state error.
   */
  async replay(height: number, observe: EvmObserver): Promise<void> {
    if (!Number.isSafeInteger(height) || height < 1 || height > this.m.store.headHeight) {
      throw new Error(`no committed block ${height} to replay`);
    }
    const bytes = await this.m.store.getBlock(height);
    if (bytes === undefined) throw new Error(`committed block ${height} is missing`);
    const block = decodeBlock(bytes);
    const h = block.header;
    // BLOCKHASH and the SVM's recent blockhashes look back up to 256 heights: from memory or the certificates.
    const hashes = new Map<number, Hex>([[0, this.m.genesis.hash]]);
    for (let at = Math.max(1, height - 256); at < height; at++) {
      const hash = this.recent.get(at) ?? (await this.m.store.getCertificate(at))?.blockHash;
      if (hash === undefined) throw new Error(`the certificate of committed block ${at} is missing`);
      hashes.set(at, hash);
    }
    let parent: ParentInfo;
    if (height === 1) {
      parent = (await genesisParent(this.m.genesis, this.m.core, this.svm)).parent;
    } else {
      const parentBytes = await this.m.store.getBlock(height - 1);
      const parentHash = hashes.get(height - 1);
      if (parentBytes === undefined || parentHash === undefined)
        throw new Error(`committed block ${height - 1} is missing`);
      const p = decodeBlock(parentBytes);
      parent = parentOf(p.header, parentHash, p.deposits);
    }
    const txs: DecodedTx[] = [];
    const svmTxs: DecodedSvmTx[] = [];
    for (const [i, raw] of block.transactions.entries()) {
      if (isSvmEntry(raw)) {
        const decoded = this.svmDecoder.decode(raw.subarray(1));
        if (!decoded.ok) throw new Error(`committed SVM transaction ${i} of block ${height} does not decode`);
        svmTxs.push(decoded.tx);
        continue;
      }
      const decoded = this.m.mempool.decoder.decode(raw);
      if (!decoded.ok) throw new Error(`committed transaction ${i} of block ${height} does not decode`);
      txs.push(decoded.tx);
    }
    const env = this.env(
      height,
      h.timestampMs,
      h.proposer,
      h.baseFeePerGas,
      block.deposits,
      parent,
      (at) => hashes.get(at) ?? null,
    );
    const { evm, svm } = await this.executeBoth(env, txs, svmTxs, "validate", undefined, {
      parent,
      svmEnv: this.svmEnv(height, h.timestampMs, false, (at) => hashes.get(at)),
      observe,
    });
    const mismatch = compare(h, this.combine(evm, svm));
    if (mismatch !== null) throw new Error(`replaying block ${height} does not give its header: ${mismatch}`);
  }

  /**
   * What JSON-RPC shows as block 0. The genesis is genesis.json, not a stored block, so this is made from it: its hash
   * (block 1's parentHash), time, gas limit, base fee, state roots and set; no transactions, no gas used.
   */
  genesisBlock(): Promise<{ readonly hash: Hex; readonly block: Block }> {
    this.genesisEntry ??= genesisParent(this.m.genesis, this.m.core, this.svm).then(
      ({ parent }) => ({
        hash: this.m.genesis.hash,
        block: {
          header: {
            chainId: this.m.genesis.chainId,
            height: 0,
            timestampMs: parent.timestampMs,
            parentHash: ZERO_HASH,
            l1Origin: parent.l1Origin,
            proposer: `0x${"00".repeat(20)}`,
            validatorSetId: this.m.genesis.validatorSet.id,
            nextValidatorSetId: this.m.genesis.validatorSet.id,
            lastCertificateHash: ZERO_HASH,
            depositsHash: EMPTY_DEPOSITS_HASH,
            nextDepositNonce: 0n,
            transactionsRoot: EMPTY_TRIE_ROOT,
            receiptsRoot: EMPTY_TRIE_ROOT,
            stateRoot: parent.stateRoot,
            gasLimit: parent.gasLimit,
            gasUsed: 0n,
            baseFeePerGas: parent.baseFeePerGas,
            logsBloom: EMPTY_BLOOM,
            vmRoots: parent.vmRoots,
          },
          lastCertificate: new Uint8Array(0),
          deposits: [],
          transactions: [],
        },
      }),
      (error: unknown) => {
        this.genesisEntry = null;
        throw error;
      },
    );
    return this.genesisEntry;
  }

  /** eth_call on `vmRoots`, with the SVM precompile reading (never committing) the SVM state of the same roots. */
  async call(
    vmRoots: readonly VmRoot[],
    env: BlockEnv,
    request: CallRequest,
    observe?: EvmObserver,
  ): Promise<CallResult> {
    // A call on an old height: the blockhashes before it may no longer be in memory, and a call needs none of them.
    const session = await this.svm.openForCall(svmRootOf(vmRoots), this.svmEnv(env.height, env.timestampMs, true));
    try {
      return await this.m.core.call(vmRoots, env, request, session, observe);
    } finally {
      session.close();
    }
  }

  /** eth_simulateV1 on `vmRoots` (the state after `base`), the SVM precompile reading that state as for a call. */
  async simulate(
    vmRoots: readonly VmRoot[],
    base: SimulationBase,
    blocks: readonly SimulatedBlockRequest[],
    options: SimulateOptions,
  ): Promise<SimulatedBlock[]> {
    const session = await this.svm.openForCall(
      svmRootOf(vmRoots),
      this.svmEnv(base.height + 1, base.timestampMs + 1000, true),
    );
    try {
      return await this.m.core.simulate(vmRoots, base, blocks, options, session);
    } finally {
      session.close();
    }
  }

  /** Both VMs' results as the header claims them (EVM entries first, then SVM entries). */
  private combine(evm: ExecutionResult, svm: SvmExecutionResult): BlockExecution {
    const vmRoots = evm.vmRoots.map((r) => (r.vm === SVM_VM.id ? { vm: r.vm, root: svm.root } : r));
    const noSvm = svm.included.length === 0;
    return {
      stateRoot: globalStateRoot(vmRoots),
      vmRoots,
      transactionsRoot: noSvm
        ? evm.transactionsRoot
        : orderedTrieRoot([...evm.included.map((t) => t.raw), ...svm.included.map(svmEntryOf)], fastKeccak256),
      receiptsRoot: noSvm
        ? evm.receiptsRoot
        : orderedTrieRoot(
            [...evm.receipts.map((r) => r.encoded), ...svm.receipts.map(encodeSvmReceiptLeaf)],
            fastKeccak256,
          ),
      logsBloom: evm.logsBloom,
      gasUsed: evm.gasUsed,
      writes: svm.writes.size === 0 ? evm.writes : new Map([...evm.writes, ...svm.writes]),
      evm,
      svm,
    };
  }

  /** BLOCKHASH lookup for execution at the next height (and for calls). */
  readonly blockHashLookup = (height: number): Hex | null => this.recent.get(height) ?? null;

  /** How far ahead of this node's clock a proposed block's timestamp may be. */
  get maxClockDriftMs(): number {
    return this.params.maxClockDriftMs;
  }

  get head(): ParentInfo {
    return this.parent;
  }

  nextBaseFee(): bigint {
    return this.m.core.nextBaseFee(this.parent);
  }

  /**
   * Builds a block for `height` on the head from the mempool and executes it. Null when the L1 view cannot yet say
   * which deposits the block must include (propose nothing: the next round retries).
   */
  async build(height: number, proposer: Hex, sets: DecidingSets): Promise<{ block: Block; bytes: Uint8Array } | null> {
    const parent = this.parent;
    const baseFee = this.nextBaseFee();
    const timestampMs = Math.max(this.m.nowMs(), parent.timestampMs + 1);
    let l1Origin = this.nextL1Origin();
    let deposits = await this.depositsFor(l1Origin);
    if (deposits.kind !== "ok" && l1Origin !== parent.l1Origin) {
      // The new origin's deposits cannot be read yet: stay on the parent's origin (its deposits were readable).
      l1Origin = parent.l1Origin;
      deposits = await this.depositsFor(l1Origin);
    }
    if (deposits.kind !== "ok") return null;
    const maxBytes = this.params.maxBlockBytes - BLOCK_OVERHEAD_BYTES;
    const candidates = this.m.mempool.pending({
      gasLimit: parent.gasLimit,
      maxBytes,
      maxCount: this.params.maxBlockTransactions,
      baseFee,
    });
    // SVM candidates after the EVM ones, in what the EVM candidates leave of the byte and count limits.
    let evmBytes = 0;
    for (const t of candidates) evmBytes += t.raw.length + 4;
    const lane = this.m.mempool.svm;
    const svmCandidates =
      lane?.pending({
        maxBytes: maxBytes - evmBytes,
        maxCount: Math.min(this.params.maxBlockTransactions - candidates.length, MAX_SVM_BLOCK_TRANSACTIONS),
      }) ?? [];
    const { evm, svm } = await this.executeBoth(
      this.env(height, timestampMs, proposer, baseFee, deposits.value),
      candidates,
      svmCandidates,
      "build",
      this.params.maxBuildMs ?? DEFAULT_MAX_BUILD_MS,
    );
    // Inapplicable now (stale, replayed, unfunded payer): they would be skipped again in every block.
    // A gateway transaction without room for its EVM gas limits in this block stays for the next one.
    lane?.drop(svm.skipped.flatMap((k) => (k.signature === null || k.code === "block_gas_limit" ? [] : [k.signature])));
    const result = this.combine(evm, svm);
    const header: BlockHeader = {
      chainId: this.m.genesis.chainId,
      height,
      timestampMs,
      parentHash: parent.hash,
      l1Origin,
      proposer,
      validatorSetId: sets.set.id,
      nextValidatorSetId: sets.next.id,
      lastCertificateHash: height === 1 ? ZERO_HASH : toHex(keccak256(this.parentCertificate)),
      depositsHash: depositsHash(deposits.value),
      nextDepositNonce: parent.depositNonce + BigInt(deposits.value.length),
      transactionsRoot: result.transactionsRoot,
      receiptsRoot: result.receiptsRoot,
      stateRoot: result.stateRoot,
      gasLimit: parent.gasLimit,
      gasUsed: result.gasUsed,
      baseFeePerGas: baseFee,
      logsBloom: result.logsBloom,
      vmRoots: result.vmRoots,
    };
    const block: Block = {
      header,
      lastCertificate: this.parentCertificate,
      deposits: deposits.value,
      transactions: [...evm.included.map((t) => t.raw), ...svm.included.map(svmEntryOf)],
    };
    const bytes = encodeBlock(block);
    this.remember(blockHashOf(block), result, evm.included, null);
    return { block, bytes };
  }

  /**
   * Checks a block for the next height: header rules, then execution on the head, then every claimed result. A
   * `certified` block (synced with a certificate) skips the clock bound: +2/3 of the stake already accepted it.
   */
  async validate(
    block: Block,
    bytes: Uint8Array,
    sets: DecidingSets,
    certified: boolean,
  ): Promise<BlockProblem | null> {
    const set = sets.set;
    const parent = this.parent;
    const h = block.header;
    const structural = checkBlock(block, bytes.length, {
      chainId: this.m.genesis.chainId,
      height: parent.height + 1,
      parentHash: parent.hash,
      parentTimestampMs: parent.timestampMs,
      parentL1Origin: parent.l1Origin,
      parentDepositNonce: parent.depositNonce,
      l1Anchored: this.m.genesis.l1 !== null,
      validatorSetId: set.id,
      nextValidatorSetId: sets.next.id,
      gasLimit: parent.gasLimit,
      baseFeePerGas: this.nextBaseFee(),
      isValidator: (address) => indexOfAddress(set, address) >= 0,
      nowMs: certified ? Number.MAX_SAFE_INTEGER : this.m.nowMs(),
      maxClockDriftMs: this.params.maxClockDriftMs,
      maxBlockBytes: this.params.maxBlockBytes,
      maxBlockTransactions: this.params.maxBlockTransactions,
    });
    if (structural !== null) return structural;
    const origin = await this.checkL1Origin(h.l1Origin);
    if (origin !== null) return origin;
    const head = certified ? null : (this.m.l1?.confirmedHead() ?? null);
    if (this.m.genesis.l1 !== null && head !== null && head.number > h.l1Origin.number + MAX_L1_ORIGIN_LAG_BLOCKS) {
      return problem(
        "l1_origin_too_old",
        `L1 origin ${h.l1Origin.number} trails the confirmed L1 block ${head.number} by more than ${MAX_L1_ORIGIN_LAG_BLOCKS}`,
      );
    }
    const last = await this.checkLastCertificate(block.lastCertificate);
    if (!last.ok) return last.problem;
    const deposits = await this.checkDeposits(block);
    if (deposits !== null) return deposits;
    const txs: DecodedTx[] = [];
    const svmTxs: DecodedSvmTx[] = [];
    for (const [i, raw] of block.transactions.entries()) {
      // Through the pool's caches: a transaction this node admitted is not decoded and verified again.
      if (isSvmEntry(raw)) {
        const decoded = this.svmDecoder.decode(raw.subarray(1));
        if (!decoded.ok) {
          return problem("invalid_transaction", `SVM transaction ${i}: ${decoded.code}: ${decoded.message}`);
        }
        svmTxs.push(decoded.tx);
        continue;
      }
      const decoded = this.m.mempool.decoder.decode(raw);
      if (!decoded.ok) return problem("invalid_transaction", `transaction ${i}: ${decoded.code}: ${decoded.message}`);
      txs.push(decoded.tx);
    }
    if (svmTxs.length > MAX_SVM_BLOCK_TRANSACTIONS) {
      return problem("too_many_transactions", `${svmTxs.length} SVM transactions exceed ${MAX_SVM_BLOCK_TRANSACTIONS}`);
    }
    let result: BlockExecution;
    try {
      const { evm, svm } = await this.executeBoth(
        this.env(h.height, h.timestampMs, h.proposer, h.baseFeePerGas, block.deposits),
        txs,
        svmTxs,
        "validate",
      );
      result = this.combine(evm, svm);
    } catch (error) {
      if (error instanceof Error && "code" in error && error.code === "invalid_transaction") {
        return problem("invalid_transaction", error.message);
      }
      throw error;
    }
    const mismatch = compare(h, result);
    if (mismatch !== null) return problem("execution_mismatch", mismatch);
    this.remember(blockHashOf(block), result, txs, last.replaces);
    return null;
  }

  /**
   * A block's last certificate must certify the parent, by the set that decided the parent. The certificate this node
   * holds itself needs no check; another signer subset is verified (one aggregate pairing).
   */
  private async checkLastCertificate(
    bytes: Uint8Array,
  ): Promise<{ ok: true; replaces: Certificate | null } | { ok: false; problem: BlockProblem }> {
    const parent = this.parent;
    // Height 1 (no parent certificate) is checked by checkBlock.
    if (parent.height === 0 || bytesEqual(bytes, this.parentCertificate)) return { ok: true, replaces: null };
    const fail = (message: string) => ({ ok: false as const, problem: problem("wrong_last_certificate", message) });
    let cert: Certificate;
    try {
      cert = decodeCertificate(bytes);
    } catch (error) {
      if (error instanceof DecodeError) return fail(`last certificate: ${error.message}`);
      throw error;
    }
    if (cert.height !== parent.height || cert.blockHash !== parent.hash) {
      return fail(`last certificate is for ${cert.height} ${cert.blockHash}, not the parent ${parent.hash}`);
    }
    const setId = await this.m.store.validatorSetIdAt(parent.height);
    const set = setId === undefined ? undefined : await this.m.store.getValidatorSet(setId);
    if (set === undefined) throw new Error(`the set that decided height ${parent.height} is not in the store`);
    const verdict = verifyCertificate(cert, set, { scheme: this.m.scheme, chainId: this.m.genesis.chainId });
    if (!verdict.ok) return fail(`last certificate: ${verdict.code}: ${verdict.message}`);
    return { ok: true, replaces: cert };
  }

  /**
   * The L1 origin of the next block: the newest L1 block the mirror has confirmed, else the parent's (no L1 anchor, or
   * the mirror knows nothing newer, e.g. while its RPC is down: the chain goes on, membership just does not move).
   */
  private nextL1Origin(): L1Ref {
    const parent = this.parent.l1Origin;
    const head = this.m.l1?.confirmedHead() ?? null;
    return head !== null && head.number > parent.number ? head : parent;
  }

  /** The deposits a block anchored at `origin` must include after the parent's. */
  private async depositsFor(origin: L1Ref): Promise<L1Answer<Deposit[]>> {
    const l1 = this.m.l1;
    if (l1 === null || this.m.genesis.l1?.finality == null) return { kind: "ok", value: [] };
    return l1.depositsAt(origin, this.parent.depositNonce, MAX_BLOCK_DEPOSITS, this.parent.depositsFrom);
  }

  /**
   * Forced inclusion: the block's deposits must be exactly the ones this node reads from the portal for its origin
   * (checkBlock already checked the hash, nonces and nextDepositNonce).
   */
  private async checkDeposits(block: Block): Promise<BlockProblem | null> {
    const expected = await this.depositsFor(block.header.l1Origin);
    if (expected.kind === "unknown") {
      return problem(
        "l1_origin_not_confirmed",
        `deposits of L1 origin ${block.header.l1Origin.number}: ${expected.reason}`,
      );
    }
    if (expected.kind === "invalid") return problem("wrong_l1_origin", expected.reason);
    if (depositsHash(expected.value) !== block.header.depositsHash) {
      return problem(
        "wrong_deposits",
        `the block includes ${block.deposits.length} deposits; the portal has ${expected.value.length} due by its origin`,
      );
    }
    return null;
  }

  /** A moved origin must be a canonical L1 block at confirmation depth in this node's view. */
  private async checkL1Origin(origin: L1Ref): Promise<BlockProblem | null> {
    const parent = this.parent.l1Origin;
    if (origin.number === parent.number && origin.hash === parent.hash) return null;
    const l1 = this.m.l1;
    if (l1 === null) return problem("wrong_l1_origin", "this node follows no L1: run it with an l1 section");
    const answer = await l1.checkConfirmed(origin);
    if (answer.kind === "ok") return null;
    return problem(
      answer.kind === "invalid" ? "wrong_l1_origin" : "l1_origin_not_confirmed",
      `L1 origin ${origin.number} ${origin.hash}: ${answer.reason}`,
    );
  }

  /** State writes, receipts and transaction hashes of an executed candidate, for the commit batch. */
  commitExtras(hash: Hex): CommitExtras {
    const c = this.candidates.get(hash);
    if (c === undefined) throw new Error(`block ${hash} was not executed on this node`);
    const svm = c.result.svm;
    return {
      stateWrites: c.result.writes,
      receipts: encodeReceipts(
        c.result.evm.receipts,
        svm.receipts.map((r, i) => toStoredSvmReceipt(r, (svm.included[i] as DecodedSvmTx).signatureBytes)),
      ),
      // In block order, so an entry's index is its position: SVM entries under their signature's index key.
      transactionHashes: [...c.txs.map((t) => t.hash), ...svm.included.map((t) => signatureIndexKey(t.signatureBytes))],
      ...(c.lastCertificate === null ? {} : { parentCertificate: c.lastCertificate }),
    };
  }

  /**
   * After the commit batch is durable: the block is the new parent (with the certificate this node committed it
   * with); the mempool drops what it included.
   */
  async committed(block: Block, hash: Hex, certificate: Certificate): Promise<void> {
    const c = this.candidates.get(hash);
    this.parent = parentOf(block.header, hash, block.deposits);
    this.m.core.committed(block.header.vmRoots);
    this.parentCertificate = encodeCertificate(certificate);
    this.candidates = new Map();
    this.recent.set(block.header.height, hash);
    this.recent.delete(block.header.height - 256);
    this.svmHashes.delete(block.header.height - 256);
    this.m.mempool.svm?.onCommitted(c?.result.svm.included.map((t) => t.signature) ?? [], this.svmHead());
    for (const t of c?.result.svm.included ?? []) this.svmDecoder.forget(t.raw);
    await this.m.mempool.onCommitted(c?.txs.map((t) => t.hash) ?? [], this.accounts());
  }

  /** Account nonces and balances of the committed head, for the mempool. */
  accounts() {
    const reader = this.m.core.reader(this.parent.vmRoots);
    return {
      nonce: async (address: Hex) => (await reader.getAccount(address))?.nonce ?? 0n,
      balance: async (address: Hex) => (await reader.getAccount(address))?.balance ?? 0n,
      account: async (address: Hex) => {
        const account = await reader.getAccount(address);
        return { nonce: account?.nonce ?? 0n, balance: account?.balance ?? 0n };
      },
    };
  }

  private env(
    height: number,
    timestampMs: number,
    proposer: Hex,
    baseFeePerGas: bigint,
    deposits: readonly Deposit[] = [],
    /** The head, or a replayed block's parent. */
    parent: ParentInfo = this.parent,
    blockHash: (height: number) => Hex | null = this.blockHashLookup,
  ) {
    return {
      deposits,
      chainId: this.m.genesis.chainId,
      height,
      timestampMs,
      // Priority fees go to the operator behind the proposer's consensus key (DESIGN.md: rewards to operators).
      coinbase: this.operators.get(proposer.toLowerCase() as Hex) ?? proposer,
      gasLimit: parent.gasLimit,
      baseFeePerGas,
      prevRandao: parent.hash,
      blockHash,
    };
  }

  private remember(
    hash: Hex,
    result: BlockExecution,
    txs: readonly DecodedTx[],
    lastCertificate: Certificate | null,
  ): void {
    if (this.candidates.size >= MAX_CANDIDATES) {
      const oldest = this.candidates.keys().next().value;
      if (oldest !== undefined) this.candidates.delete(oldest);
    }
    this.candidates.set(hash, { result, txs, lastCertificate });
  }
}

function blockHashOf(block: Block): Hex {
  return blockHash(block.header);
}

/** The genesis as the parent of height 1, with the state writes of its allocations. */
async function genesisParent(
  genesis: Genesis,
  core: ExecutionCore,
  svm: SvmExecutor,
): Promise<{ parent: ParentInfo; writes: Map<string, Uint8Array> }> {
  const evm = await core.genesisStateRoot();
  const svmGenesis = await svm.genesis(genesis.svm.alloc);
  const vmRoots = [...evm.vmRoots, { vm: SVM_VM.id, root: svmGenesis.root }].sort((a, b) => a.vm - b.vm);
  return {
    parent: {
      hash: genesis.hash,
      height: 0,
      timestampMs: genesis.genesisTimeMs,
      l1Origin: genesis.l1?.origin ?? NO_L1_ORIGIN,
      depositNonce: 0n,
      gasLimit: genesis.execution.gasLimit,
      gasUsed: genesis.execution.gasLimit / 2n, // at target: the base fee of height 1 is the genesis base fee
      baseFeePerGas: genesis.execution.baseFeePerGas,
      stateRoot: globalStateRoot(vmRoots),
      vmRoots,
      depositsFrom: 0n,
    },
    writes: new Map([...evm.writes, ...svmGenesis.writes]),
  };
}

function parentOf(h: BlockHeader, hash: Hex, deposits: readonly Deposit[]): ParentInfo {
  return {
    hash,
    height: h.height,
    timestampMs: h.timestampMs,
    l1Origin: h.l1Origin,
    depositNonce: h.nextDepositNonce,
    gasLimit: h.gasLimit,
    gasUsed: h.gasUsed,
    baseFeePerGas: h.baseFeePerGas,
    stateRoot: h.stateRoot,
    vmRoots: h.vmRoots,
    depositsFrom: depositsScanFrom(h, deposits),
  };
}

function compare(h: BlockHeader, r: BlockExecution): string | null {
  const checks: [string, unknown, unknown][] = [
    ["transactionsRoot", h.transactionsRoot, r.transactionsRoot],
    ["receiptsRoot", h.receiptsRoot, r.receiptsRoot],
    ["stateRoot", h.stateRoot, r.stateRoot],
    ["gasUsed", h.gasUsed, r.gasUsed],
    ["logsBloom", h.logsBloom, r.logsBloom],
    ["vmRoots", JSON.stringify(h.vmRoots), JSON.stringify(r.vmRoots)],
  ];
  for (const [name, claimed, computed] of checks) {
    if (claimed !== computed) return `${name}: header ${String(claimed)}, executed ${String(computed)}`;
  }
  return null;
}
