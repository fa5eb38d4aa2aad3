// The node's SolanaRpcBackend (./solana.ts) over its chain store and block executor: accounts from the SVM root a
// committed header names, transactions from the transaction index (an SVM entry sits under its signature's index
// key) with their receipts from the block's stored receipts, blockhashes from the executor's window or the store.
import type { Hex } from "../../consensus/bytes.ts";
import { type Block, blockHashOfEncoded, decodeBlock, decodeBlockHead, isSvmEntry } from "../chain/block.ts";
import { decodeSvmReceipts } from "../chain/receipts.ts";
import type { GenesisSvm } from "../config/genesis.ts";
import { SVM_VM } from "../execution/svm/account.ts";
import { svmBlockhash } from "../execution/svm/blockhash.ts";
import type { SvmExecutor } from "../execution/svm/executor.ts";
import { type StoredSvmReceipt, signatureIndexKey } from "../execution/svm/receipt.ts";
import type { VmRoot } from "../execution/vm.ts";
import { readPrunableState } from "./errors.ts";
import type { SolanaRpcBackend, SolanaSendResult, SolanaTransactionRecord } from "./solana.ts";
import { SVM_BLOCKHASH_VALID_BLOCKS } from "./solana.ts";

/** Decoded blocks kept for transaction lookups: clients poll getSignatureStatuses for the same few blocks. */
const BLOCK_CACHE_ENTRIES = 16;

export interface SolanaBackendDeps {
  readonly genesis: { readonly hash: Hex; readonly svm: GenesisSvm };
  readonly store: {
    readonly headHeight: number;
    /** `keptFrom`: heights below it have no state any more (storage.stateHistory). */
    readonly stateGenerations: { readonly keptFrom: number };
    /** Heights below it have no block or receipts any more (storage.blockHistory). */
    readonly historyKeptFrom: number;
    getBlock(height: number): Promise<Uint8Array | undefined>;
    getReceipts(height: number): Promise<Uint8Array | undefined>;
    getTransactionLocation(hash: Hex): Promise<{ height: number; index: number } | undefined>;
  };
  readonly executor: {
    readonly head: { readonly height: number; readonly vmRoots: readonly VmRoot[] };
    readonly svm: SvmExecutor;
    recentSvmBlockhashes(height: number): string[];
  };
  readonly finalizedHeight: () => number;
  readonly submit: (entry: Uint8Array) => Promise<SolanaSendResult>;
}

export function createSolanaRpcBackend(d: SolanaBackendDeps): SolanaRpcBackend {
  let genesisRoot: Promise<Hex> | null = null;
  // Committed blocks never change: a decoded block and its SVM receipts can be kept by height.
  const blocks = new Map<number, { block: Block; receipts: readonly StoredSvmReceipt[] }>();

  /** A committed block with its SVM receipts; undefined when its history was deleted (storage.blockHistory). */
  async function committedBlock(height: number) {
    const cached = blocks.get(height);
    if (cached !== undefined) return cached;
    const [bytes, receiptBytes] = await Promise.all([d.store.getBlock(height), d.store.getReceipts(height)]);
    if (bytes === undefined || receiptBytes === undefined) {
      if (height < d.store.historyKeptFrom) return undefined;
      throw new Error(`block or receipts of committed height ${height} are missing`);
    }
    const entry = { block: decodeBlock(bytes), receipts: decodeSvmReceipts(receiptBytes) };
    if (blocks.size >= BLOCK_CACHE_ENTRIES) blocks.delete(blocks.keys().next().value as number);
    blocks.set(height, entry);
    return entry;
  }

  async function svmRootAt(height: number): Promise<Hex | null> {
    const head = d.executor.head;
    let roots: readonly VmRoot[];
    if (height === head.height) {
      roots = head.vmRoots;
    } else if (height === 0) {
      // Deterministic and already stored: recomputed once rather than kept since the genesis.
      genesisRoot ??= d.executor.svm.genesis(d.genesis.svm.alloc).then((g) => g.root);
      return genesisRoot;
    } else {
      const bytes = await d.store.getBlock(height);
      if (bytes === undefined) return null;
      roots = decodeBlockHead(bytes).header.vmRoots;
    }
    return roots.find((r) => r.vm === SVM_VM.id)?.root ?? null;
  }

  return {
    genesisHash: d.genesis.hash,
    headHeight: () => d.executor.head.height,
    finalizedHeight: d.finalizedHeight,
    async blockhashAt(height) {
      const head = d.executor.head.height;
      if (height < 0 || height > head) return null;
      if (head - height < SVM_BLOCKHASH_VALID_BLOCKS)
        return d.executor.recentSvmBlockhashes(head + 1)[head - height] ?? null;
      const bytes = await d.store.getBlock(height);
      return bytes === undefined ? null : svmBlockhash(blockHashOfEncoded(bytes));
    },
    account(height, address) {
      const read = async () => {
        const root = await svmRootAt(height);
        if (root === null) throw new Error(`the SVM root of committed height ${height} is missing`);
        return d.executor.svm.reader(root).getAccount(address);
      };
      return readPrunableState(height, () => d.store.stateGenerations.keptFrom, read);
    },
    async transaction(signature): Promise<SolanaTransactionRecord | undefined> {
      const location = await d.store.getTransactionLocation(signatureIndexKey(signature));
      if (location === undefined) return undefined;
      const committed = await committedBlock(location.height);
      // Its height's history was deleted after the index was read: as gone as the index entry now is.
      if (committed === undefined) return undefined;
      const { block, receipts } = committed;
      const entry = block.transactions[location.index];
      const firstSvm = block.transactions.findIndex(isSvmEntry);
      if (entry === undefined || !isSvmEntry(entry) || firstSvm < 0) return undefined;
      const receipt = receipts[location.index - firstSvm];
      if (receipt === undefined)
        throw new Error(`SVM receipt ${location.index} of height ${location.height} is missing`);
      return {
        height: location.height,
        blockTime: Math.floor(block.header.timestampMs / 1000),
        wire: entry.subarray(1),
        receipt,
      };
    },
    submit: d.submit,
  };
}
