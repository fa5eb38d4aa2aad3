// The JSON-RPC server's view of a running node: committed blocks, receipts and the transaction index from the store,
// state at any committed height from the execution core, the mempool for pending nonces and submissions.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { certificateSigners, encodeCertificate } from "../../consensus/certificate.ts";
import { type Block, decodeBlock, isSvmEntry } from "../chain/block.ts";
import { decodeBlockReceipts, decodeReceipts, decodeSvmReceipts } from "../chain/receipts.ts";
import type { EvmObserver, ExecutionCore } from "../execution/core.ts";
import { storedSvmReceiptLeaf } from "../execution/svm/receipt.ts";
import { createTracer } from "../execution/tracers.ts";
import type { VmRoot } from "../execution/vm.ts";
import type { Mempool } from "../mempool/mempool.ts";
import type {
  CommittedEvent,
  RpcBackend,
  RpcCallRequest,
  RpcCertificate,
  RpcPendingTx,
  RpcSendResult,
  RpcValidatorSetChange,
} from "../rpc/backend.ts";
import { ErrorCode, RpcRequestError, readPrunableHistory, readPrunableState } from "../rpc/errors.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import type { BlockExecutor } from "./executor.ts";

export interface RpcBackendModules {
  readonly chainId: bigint;
  readonly version: string;
  readonly store: ChainStore;
  readonly core: ExecutionCore;
  readonly executor: BlockExecutor;
  readonly mempool: Mempool;
  readonly submit: (raw: Uint8Array) => Promise<RpcSendResult>;
  readonly status: () => unknown;
  readonly peerCount?: () => number;
  readonly syncing?: RpcBackend["syncing"];
  /** lumia_getStake / lumia_getRewards (the node's L1 mirror); absent without one. */
  readonly stakerReport?: RpcBackend["stakerReport"];
  /** lumia_getWorkReport (the node's work ledger); absent on a subnet not anchored to L1. */
  readonly workReport?: RpcBackend["workReport"];
  /** The "finalized" tag (src/l1/outputs.ts FinalizedTracker); absent without hard-finality contracts. */
  readonly finalizedHeight?: RpcBackend["finalizedHeight"];
  /** Serve debug_traceTransaction, debug_traceBlockBy* and debug_traceCall (config rpc.debug): they re-execute. */
  readonly debug?: boolean;
  /** Where failures of commit listeners and event reads go. */
  readonly log?: { warn(fields: Record<string, unknown>, message: string): void };
}

/** The backend plus the hook the node calls after each commit (the driver's outbox `committed`). */
export interface NodeRpcBackend extends RpcBackend {
  committed(height: number): void;
}

/** Decoded blocks are immutable once committed: a small cache spares decoding the head again for every call. */
const BLOCK_CACHE_SIZE = 256;

/**
 * lumia_getValidatorSetHistory over the store: the heights where the deciding set changed, ascending, the genesis set
 * from height 1. The store answers "which set decides height h" (validatorSetIdAt) but does not list its index, so the
 * history is read through it once per committed height (~25 us each) and extended as the chain grows, one reader at
 * a time. Ids may recur (a validator leaving and coming back restores an earlier set): each change is its own entry.
 */
export function validatorSetHistoryReader(
  store: Pick<ChainStore, "headHeight" | "validatorSetChanges">,
): () => Promise<readonly RpcValidatorSetChange[]> {
  // Committed heights only (height 1 is decided by the genesis set even before it commits).
  return async () => {
    const last = Math.max(store.headHeight, 1);
    return (await store.validatorSetChanges()).filter((c) => c.fromHeight <= last);
  };
}

export function createRpcBackend(m: RpcBackendModules): NodeRpcBackend {
  const cache = new Map<number, { hash: Hex; block: Block }>();
  const validatorSetHistory = validatorSetHistoryReader(m.store);
  /** Heights below it have no block, certificate or receipts any more, but those kept for light clients. */
  const historyFrom = () => m.store.historyKeptFrom;
  async function blockByHeight(height: number): Promise<{ hash: Hex; block: Block } | undefined> {
    const cached = cache.get(height);
    if (cached !== undefined) return cached;
    // Block 0 is the genesis, made from genesis.json (it is not stored).
    if (height === 0) return m.executor.genesisBlock();
    if (!Number.isSafeInteger(height) || height < 1 || height > m.store.headHeight) return undefined;
    const read = await readPrunableHistory(height, historyFrom, async () => {
      const [bytes, cert] = await Promise.all([m.store.getBlock(height), m.store.getCertificate(height)]);
      return bytes === undefined || cert === undefined ? undefined : { bytes, cert };
    });
    if (read === undefined) return undefined;
    const entry = { hash: read.cert.blockHash, block: decodeBlock(read.bytes) };
    if (cache.size >= BLOCK_CACHE_SIZE) cache.delete(cache.keys().next().value as number);
    cache.set(height, entry);
    return entry;
  }
  /** vmRoots of the state after `height` (0 = genesis). */
  async function rootsAt(height: number) {
    if (height === m.executor.head.height) return m.executor.head.vmRoots;
    if (height === 0) return (await m.executor.genesisBlock()).block.header.vmRoots;
    const b = await blockByHeight(height);
    if (b === undefined) throw new Error(`no block at height ${height}`);
    return b.block.header.vmRoots;
  }
  const keptFrom = () => m.store.stateGenerations.keptFrom;
  /**
   * eth_call (and debug_traceCall, with `observe`) on the state after `height`, as a next block would run it, with the
   * request's block overrides in that block's place.
   */
  function callAt(height: number, request: RpcCallRequest, observe?: EvmObserver) {
    return atState(height, async (roots) => {
      const head = m.executor.head;
      const b = height === head.height ? null : await blockByHeight(height);
      const h = b?.block.header;
      const o = request.blockOverrides;
      return m.executor.call(
        roots,
        {
          chainId: m.chainId,
          height: o?.number ?? height + 1,
          timestampMs: o?.timestampMs ?? (h?.timestampMs ?? head.timestampMs) + 1,
          coinbase: o?.feeRecipient ?? `0x${"00".repeat(20)}`,
          gasLimit: o?.gasLimit ?? h?.gasLimit ?? head.gasLimit,
          baseFeePerGas: o?.baseFeePerGas ?? m.executor.nextBaseFee(),
          prevRandao: o?.prevRandao ?? b?.hash ?? head.hash,
          blockHash: m.executor.blockHashLookup,
        },
        request,
        observe,
      );
    });
  }
  // Traces re-execute whole blocks on the node's event loop: one at a time, so a burst of them queues instead of
  // taking every core from consensus.
  let traceLane: Promise<unknown> = Promise.resolve();
  function oneTraceAtATime<T>(run: () => Promise<T>): Promise<T> {
    const next = traceLane.then(run, run);
    traceLane = next.catch(() => undefined);
    return next;
  }
  const debug: Pick<RpcBackend, "traceBlock" | "traceCall"> =
    m.debug !== true
      ? {}
      : {
          traceBlock: (height, index, options) =>
            oneTraceAtATime(() =>
              // The parent's state is what a replay starts from.
              readPrunableState(height - 1, keptFrom, async () => {
                const entry = await blockByHeight(height);
                if (entry === undefined) throw new Error(`no committed block ${height}`);
                // BLOCKHASH in the replay reads the hashes of the 256 blocks before it, from their certificates.
                const history = historyFrom();
                if (Math.max(2, height - 256) < history) {
                  throw new RpcRequestError(
                    ErrorCode.prunedHistory,
                    `pruned history unavailable: replaying block ${height} needs the hashes of the 256 blocks ` +
                      `before it, and this node keeps blocks ${history} and later (storage.blockHistory)`,
                  );
                }
                const evmCount = entry.block.transactions.filter((raw) => !isSvmEntry(raw)).length;
                const indices = index === null ? [...Array(evmCount).keys()] : [index];
                const tracers = new Map(indices.map((i) => [i, createTracer(options)]));
                await m.executor.replay(height, (i, vm, gasLimit) => tracers.get(i)?.observer(i)(i, vm, gasLimit));
                return indices.map((i) => tracers.get(i)?.result() ?? null);
              }),
            ),
          traceCall: (height, request, options) =>
            oneTraceAtATime(async () => {
              const tracer = createTracer(options);
              await callAt(height, request, tracer.observer(0));
              return tracer.result();
            }),
        };
  /** Reads the state after `height`; refused as pruned when it is older than what this node keeps. */
  function atState<T>(height: number, read: (roots: readonly VmRoot[]) => Promise<T>): Promise<T> {
    return readPrunableState(height, keptFrom, async () => read(await rootsAt(height)));
  }
  async function certificate(height: number): Promise<RpcCertificate | undefined> {
    const cert = await readPrunableHistory(height, historyFrom, () => m.store.getCertificate(height));
    if (cert === undefined) return undefined;
    const id = await m.store.validatorSetIdAt(height);
    const set = id === undefined ? undefined : await m.store.getValidatorSet(id);
    if (set === undefined) return undefined;
    // Stored certificates were verified before commit: the signing power is the signers' power, no BLS needed.
    const signers = certificateSigners(cert, set);
    let signingPower = 0n;
    for (const i of signers) signingPower += set.validators[i]?.votingPower ?? 0n;
    return {
      encoded: toHex(encodeCertificate(cert)),
      height: cert.height,
      round: cert.round,
      blockHash: cert.blockHash,
      validatorSetId: cert.validatorSetId,
      signers,
      signingPower,
      totalPower: set.totalVotingPower,
    };
  }

  // Commit events: two heights instead of a queue. Every height in (delivered, target] is read back from the store and
  // handed to the listeners in order, so a burst of commits (a synced batch) is neither skipped nor repeated, and
  // nothing is read while no one listens.
  const committedListeners = new Set<(event: CommittedEvent) => void>();
  let delivered = m.store.headHeight;
  let target = delivered;
  let pumping = false;
  async function pump(): Promise<void> {
    pumping = true;
    try {
      while (delivered < target && committedListeners.size > 0) {
        const height = delivered + 1;
        const entry = await blockByHeight(height);
        const receipts = await m.store.getReceipts(height);
        const cert = await certificate(height);
        // Everyone left and someone new came while this read ran: that listener starts after the newest commit.
        if (delivered !== height - 1) continue;
        if (entry === undefined || receipts === undefined) {
          m.log?.warn({ height }, "committed block or receipts missing: no commit event for it");
        } else {
          // Decoded once, when a subscription first reads them (logs, Solana signatures): heads and certificates
          // need none, and the stored encoding holds both VMs' receipts.
          let decoded: ReturnType<typeof decodeBlockReceipts> | undefined;
          const event: CommittedEvent = {
            height,
            hash: entry.hash,
            block: entry.block,
            get receipts() {
              decoded ??= decodeBlockReceipts(receipts);
              return decoded.evm;
            },
            get svmReceipts() {
              decoded ??= decodeBlockReceipts(receipts);
              return decoded.svm;
            },
            certificate: cert,
          };
          for (const listener of [...committedListeners]) {
            try {
              listener(event);
            } catch (error) {
              m.log?.warn({ err: error, height }, "commit listener failed");
            }
          }
        }
        delivered = height;
      }
    } catch (error) {
      // A failed read (the store closing): retried from the same height at the next commit.
      m.log?.warn({ err: error, height: delivered + 1 }, "cannot read a committed block for its commit event");
    } finally {
      pumping = false;
    }
    if (committedListeners.size === 0) delivered = target;
  }

  return {
    committed(height) {
      if (height > target) target = height;
      if (committedListeners.size === 0) delivered = target;
      else if (!pumping) void pump();
    },
    onCommitted(listener) {
      if (committedListeners.size === 0) delivered = target;
      committedListeners.add(listener);
      return () => {
        committedListeners.delete(listener);
      };
    },
    onPendingTransaction(listener: (tx: RpcPendingTx) => void) {
      return m.mempool.onAdded((tx) => {
        try {
          listener({ hash: tx.hash, raw: tx.raw, from: tx.from });
        } catch (error) {
          m.log?.warn({ err: error, hash: tx.hash }, "pending transaction listener failed");
        }
      });
    },
    chainId: m.chainId,
    clientVersion: `lumia-dcn/${m.version}`,
    headHeight: () => m.store.headHeight,
    blockByHeight,
    async blockByHash(hash) {
      const found = await m.store.getBlockByHash(hash);
      if (found !== undefined) return blockByHeight(found.height);
      const genesis = await m.executor.genesisBlock();
      return genesis.hash === hash.toLowerCase() ? genesis : undefined;
    },
    async receipts(height) {
      const bytes = await readPrunableHistory(height, historyFrom, () => m.store.getReceipts(height));
      return bytes === undefined ? undefined : decodeReceipts(bytes);
    },
    async svmReceiptLeaves(height) {
      const bytes = await readPrunableHistory(height, historyFrom, () => m.store.getReceipts(height));
      return bytes === undefined ? [] : decodeSvmReceipts(bytes).map(storedSvmReceiptLeaf);
    },
    transactionLocation: (hash) => m.store.getTransactionLocation(hash),
    async account(height, address) {
      const account = await atState(height, (roots) => m.core.reader(roots).getAccount(address));
      return account === null
        ? null
        : {
            nonce: account.nonce,
            balance: account.balance,
            codeHash: account.codeHash,
            storageRoot: account.storageRoot,
          };
    },
    async code(height, address) {
      return atState(height, (roots) => m.core.reader(roots).getCode(address));
    },
    async storageAt(height, address, slot) {
      return atState(height, (roots) => m.core.reader(roots).getStorageAt(address, slot));
    },
    call(height, request: RpcCallRequest) {
      return callAt(height, request);
    },
    simulate(height, blocks, options) {
      return atState(height, async (roots) => {
        const head = m.executor.head;
        const b = height === head.height ? null : await blockByHeight(height);
        const h = b?.block.header;
        return m.executor.simulate(
          roots,
          {
            chainId: m.chainId,
            height,
            hash: b?.hash ?? head.hash,
            timestampMs: h?.timestampMs ?? head.timestampMs,
            gasLimit: h?.gasLimit ?? head.gasLimit,
            gasUsed: h?.gasUsed ?? head.gasUsed,
            baseFeePerGas: h?.baseFeePerGas ?? head.baseFeePerGas,
            blockHash: m.executor.blockHashLookup,
          },
          blocks,
          options,
        );
      });
    },
    nextBaseFee: () => m.executor.nextBaseFee(),
    sendRawTransaction: (raw) => m.submit(raw),
    async pendingNonce(address) {
      const queued = m.mempool.senderNonce(address);
      if (queued !== undefined) return queued;
      return (await m.executor.accounts().nonce(address)) ?? 0n;
    },
    async proof(height, address, slots) {
      return atState(height, (roots) => m.core.reader(roots).getProof(address, slots));
    },
    certificate,
    async validatorSet(id) {
      const set = await m.store.getValidatorSet(id);
      if (set === undefined) return undefined;
      return {
        id: set.id,
        totalVotingPower: set.totalVotingPower,
        validators: set.validators.map((v) => ({
          address: v.address,
          publicKey: toHex(v.publicKey),
          votingPower: v.votingPower,
        })),
      };
    },
    validatorSetHistory,
    ...debug,
    txpoolStatus: () => m.mempool.counts(),
    txpoolContentFrom(address) {
      const held = m.mempool.ofSender(address);
      return { pending: held.pending.map((t) => t.raw), queued: held.queued.map((t) => t.raw) };
    },
    status: () => m.status(),
    ...(m.peerCount === undefined ? {} : { peerCount: m.peerCount }),
    ...(m.syncing === undefined ? {} : { syncing: m.syncing }),
    ...(m.stakerReport === undefined ? {} : { stakerReport: m.stakerReport }),
    ...(m.workReport === undefined ? {} : { workReport: m.workReport }),
    ...(m.finalizedHeight === undefined ? {} : { finalizedHeight: m.finalizedHeight }),
    pendingTransaction(hash) {
      const tx = m.mempool.get(hash);
      return tx === undefined ? undefined : { hash: tx.hash, raw: tx.raw, from: tx.from };
    },
  };
}
