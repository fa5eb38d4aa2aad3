// The Ethereum JSON-RPC methods the node serves, over the RpcBackend. Block tags: "latest", "safe" and "pending" are
// the head (every committed block is certified, so the head is soft-final; pending differs only for the nonce);
// "finalized" is the highest height covered by an output in an L1-finalized block (0 before one), "earliest" is 0.
import { z } from "zod";
import { fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { type Block, isSvmEntry } from "../chain/block.ts";
import { buildOrderedTrie, type OrderedTrie } from "../chain/ordered-trie.ts";
import type { StoredReceipt } from "../chain/receipts.ts";
import {
  MAX_SIMULATED_BLOCKS,
  MAX_SIMULATED_CALLS,
  SimulationError,
  type SimulationErrorKind,
} from "../execution/simulate.ts";
import { type TraceOptions, TraceTooLargeError } from "../execution/tracers.ts";
import type {
  RpcAccessListEntry,
  RpcBackend,
  RpcBlockOverrides,
  RpcCallRequest,
  RpcCallResult,
  RpcStateOverrides,
} from "./backend.ts";
import { bloomMayContain } from "./bloom.ts";
import { type MethodDef, method, methodWithContext, optional, required } from "./dispatch.ts";
import {
  ErrorCode,
  failure,
  invalidParams,
  type Outcome,
  RpcRequestError,
  revertError,
  sendRefusalMessage,
  success,
} from "./errors.ts";
import {
  firstLogIndex,
  formatBlock,
  formatCertifiedHeader,
  formatLog,
  formatReceipt,
  formatSimulatedBlock,
  formatTransaction,
  type LogPosition,
  quantity,
  type StoredLog,
  TxDecoder,
  txHash,
} from "./format.ts";
import {
  address,
  type BlockRef,
  blockCount,
  blockOverrides,
  blockRef,
  blockTagOrNumber,
  callRequest,
  fullTransactions,
  hash32,
  hexData,
  type LogFilter,
  logFilter,
  MAX_DATA_BYTES,
  quantity as quantityParam,
  rawTransaction,
  rewardPercentiles,
  simulatePayload,
  stateOverrides,
  storageKeys,
  storageSlot,
  traceCallConfig,
  traceConfig,
} from "./params.ts";
import { DEFAULT_SYNC_TIMEOUT_MS, MAX_SYNC_TIMEOUT_MS, MAX_SYNC_WAITERS, ReceiptWaiters } from "./send-sync.ts";

/** The tip suggested by eth_maxPriorityFeePerGas and added to the next base fee by eth_gasPrice: 1 gwei. */
export const SUGGESTED_PRIORITY_FEE = 1_000_000_000n;
/** Intrinsic gas of a plain transfer: the floor of every estimate. */
const TX_GAS = 21_000n;
/** geth's CallStipend, part of its optimistic first guess. */
const CALL_STIPEND = 2_300n;
/** geth stops the estimate binary search once the bracket is within 1.5% of the upper bound. */
const ESTIMATE_ERROR_RATIO = 0.015;
/** web3_sha3 input: as much as eth_call data. */
const hashInput = hexData(MAX_DATA_BYTES);
/** Runs of eth_createAccessList after the first, each with the list the one before found (they settle in 1-2). */
const MAX_ACCESS_LIST_RUNS = 8;
/** A bound on backend calls per estimate (binary search over 2^64 needs < 64). */
const MAX_ESTIMATE_STEPS = 64;
/** Blocks whose transaction and receipt tries lumia_getTransactionCertificate keeps for further proofs. */
const PROOF_TRIE_CACHE_BLOCKS = 8;

export interface MethodLimits {
  /** Most blocks one eth_getLogs may scan. */
  readonly maxLogRange: number;
  /** Most logs one eth_getLogs may return. */
  readonly maxLogResults: number;
  /** Most blocks one eth_feeHistory may cover (geth: 1024). */
  readonly maxFeeHistoryBlocks: number;
  /** Upper bound on the gas of eth_call and eth_estimateGas (geth's RPCGasCap). */
  readonly gasCap: bigint;
  /** Decoded transaction views kept for block and transaction lookups. */
  readonly txCacheEntries: number;
}

export const DEFAULT_METHOD_LIMITS: MethodLimits = {
  maxLogRange: 10_000,
  maxLogResults: 10_000,
  maxFeeHistoryBlocks: 1024,
  gasCap: 50_000_000n,
  txCacheEntries: 20_000,
};

type Failure = Outcome & { ok: false };

function isFailure(value: unknown): value is Failure {
  return typeof value === "object" && value !== null && (value as { ok?: unknown }).ok === false;
}

type BlockEntry = { hash: Hex; block: Block };

export function createMethods(
  backend: RpcBackend,
  limits: MethodLimits,
  /** eth_sendRawTransactionSync's waits (the server counts them for its metrics). */
  receiptWaiters = new ReceiptWaiters(backend),
): ReadonlyMap<string, MethodDef> {
  const txs = new TxDecoder(backend.chainId, limits.txCacheEntries);

  const heightOf = (ref: Exclude<BlockRef, { kind: "hash" }>) => tagHeight(backend, ref);
  const getLogs = createLogQuery(backend, limits);

  /** Height whose state a read uses; an error when the block is unknown (geth: "header not found"). */
  async function stateHeight(ref: BlockRef | undefined): Promise<number | Failure> {
    const r = ref ?? { kind: "tag", tag: "latest" };
    if (r.kind === "hash") {
      const found = await backend.blockByHash(r.hash);
      if (found === undefined) return failure(ErrorCode.server, `header for hash ${r.hash} not found`);
      return found.block.header.height;
    }
    const height = heightOf(r);
    const head = backend.headHeight();
    if (height > head) return failure(ErrorCode.server, `header not found: block ${height} is above the head ${head}`);
    return height;
  }

  /** The block a block query means, or undefined (answered as null). */
  async function blockOf(ref: BlockRef): Promise<BlockEntry | undefined> {
    if (ref.kind === "hash") return backend.blockByHash(ref.hash);
    const height = heightOf(ref);
    if (height > backend.headHeight()) return undefined;
    return backend.blockByHeight(height);
  }

  /** lumia_getCertificate's object with the encoded header it certifies (keccak256(header) = blockHash). */
  async function certifiedHeader(height: number): Promise<Record<string, unknown> | null | Failure> {
    const [cert, entry] = await Promise.all([backend.certificate(height), backend.blockByHeight(height)]);
    if (cert === undefined) return null;
    if (entry === undefined) return failure(ErrorCode.internal, `certified block ${height} is missing`);
    return formatCertifiedHeader(cert, entry.block);
  }

  // Proofs of one block are often asked together (a wallet checking its transactions): keep its tries a while.
  const proofTries = new Map<number, { transactions: OrderedTrie; receipts: OrderedTrie }>();
  async function triesOf(
    height: number,
    block: Block,
    receipts: readonly StoredReceipt[],
  ): Promise<{ transactions: OrderedTrie; receipts: OrderedTrie } | Failure> {
    const cached = proofTries.get(height);
    if (cached !== undefined) return cached;
    const svmLeaves = (await backend.svmReceiptLeaves?.(height)) ?? [];
    const tries = {
      transactions: buildOrderedTrie(block.transactions),
      // The EVM receipts, then the SVM entries' leaves: the block's order (docs/svm.md).
      receipts: buildOrderedTrie([...receipts.map((r) => r.encoded), ...svmLeaves]),
    };
    // The header's roots are authoritative: a proof against any other root would be refused by every client.
    if (
      tries.transactions.root !== block.header.transactionsRoot ||
      tries.receipts.root !== block.header.receiptsRoot
    ) {
      return failure(ErrorCode.internal, `the proof tries of block ${height} do not give the header's roots`);
    }
    if (proofTries.size >= PROOF_TRIE_CACHE_BLOCKS) proofTries.delete(proofTries.keys().next().value as number);
    proofTries.set(height, tries);
    return tries;
  }

  /** eth_getTransactionReceipt's answer: the receipt of a committed transaction, or null. */
  async function committedReceipt(hash: Hex): Promise<Outcome> {
    const location = await backend.transactionLocation(hash);
    if (location === undefined) return success(null);
    const [entry, receipts] = await Promise.all([
      backend.blockByHeight(location.height),
      backend.receipts(location.height),
    ]);
    if (receipts === undefined) return missingReceipts(location.height);
    const receipt = receipts[location.index];
    if (entry === undefined || receipt === undefined || receipt.transactionHash !== hash) {
      return failure(ErrorCode.internal, `receipt of ${hash} is not at its indexed position`);
    }
    return success(
      formatReceipt(receipt, {
        blockHash: entry.hash,
        blockNumber: location.height,
        index: location.index,
        firstLogIndex: firstLogIndex(receipts, location.index),
      }),
    );
  }

  function undecodable(hash: Hex): Failure {
    return failure(ErrorCode.internal, `stored transaction ${hash} does not decode`);
  }

  /** The EVM transaction at `index` of a committed block as Ethereum shows it; null past the EVM entries. */
  function committedTransaction(entry: BlockEntry, index: number): Record<string, unknown> | null | Failure {
    const { block, hash } = entry;
    const raw = block.transactions[index];
    // SVM entries (0x53 || Solana wire bytes, after every EVM entry) are served by the Solana methods (./solana.ts).
    if (raw === undefined || isSvmEntry(raw)) return null;
    const tx = txs.decode(raw);
    if (tx === null) return undecodable(txHash(raw));
    return formatTransaction(tx, {
      blockHash: hash,
      blockNumber: block.header.height,
      index,
      baseFeePerGas: block.header.baseFeePerGas,
    });
  }

  function transactionsOf(entry: BlockEntry, full: boolean): unknown[] | Failure {
    const { block } = entry;
    if (!full) return block.transactions.filter((raw) => !isSvmEntry(raw)).map((raw) => txHash(raw));
    const out: unknown[] = [];
    for (let index = 0; index < block.transactions.length; index++) {
      const tx = committedTransaction(entry, index);
      if (tx === null) break;
      if (isFailure(tx)) return tx;
      out.push(tx);
    }
    return out;
  }

  async function transactionAt(entry: BlockEntry | undefined, index: bigint): Promise<Outcome> {
    if (entry === undefined || index >= BigInt(entry.block.transactions.length)) return success(null);
    const tx = committedTransaction(entry, Number(index));
    return isFailure(tx) ? tx : success(tx);
  }

  /** Every EVM receipt of a block, as eth_getTransactionReceipt shows each; null for an unknown block. */
  async function blockReceipts(entry: BlockEntry | undefined): Promise<Outcome> {
    if (entry === undefined) return success(null);
    const height = entry.block.header.height;
    const receipts = await backend.receipts(height);
    if (receipts === undefined) {
      // A block without transactions (the genesis) may have no stored receipts.
      return entry.block.transactions.length === 0 ? success([]) : missingReceipts(height);
    }
    const out: unknown[] = [];
    let firstLog = 0;
    for (const [index, receipt] of receipts.entries()) {
      out.push(formatReceipt(receipt, { blockHash: entry.hash, blockNumber: height, index, firstLogIndex: firstLog }));
      firstLog += receipt.logs.length;
    }
    return success(out);
  }

  async function blockResult(entry: BlockEntry | undefined, full: boolean | undefined): Promise<Outcome> {
    if (entry === undefined) return success(null);
    const transactions = transactionsOf(entry, full === true);
    if (isFailure(transactions)) return transactions;
    return success(formatBlock(entry.hash, entry.block, transactions));
  }

  /**
   * Gas above the block's gas limit (or the configured cap) could never be bought by a real transaction. A call
   * without gas gets the cap, as in geth, so a halt that burns all of it is told apart from a revert.
   */
  async function capGas(height: number, request: RpcCallRequest): Promise<RpcCallRequest & { gas: bigint }> {
    const entry = await backend.blockByHeight(height);
    const blockLimit = request.blockOverrides?.gasLimit ?? entry?.block.header.gasLimit ?? limits.gasCap;
    const cap = blockLimit < limits.gasCap ? blockLimit : limits.gasCap;
    return { ...request, gas: request.gas === undefined || request.gas > cap ? cap : request.gas };
  }

  /**
   * status 0, as geth answers it: a halt the backend names (could not start, out of gas, invalid opcode) is -32000
   * with its text; no return data with all the gas burnt is an exceptional halt ("out of gas": REVERT returns what
   * is left); anything else is a revert (code 3 with the data).
   */
  function callFailure(result: RpcCallResult, gas: bigint): Failure {
    if (result.error !== undefined && result.error !== null) return failure(ErrorCode.server, result.error);
    const noData = result.returnData === "0x" && result.revertReason === null;
    if (noData && result.gasUsed >= gas) return failure(ErrorCode.server, "out of gas");
    return revertError(result.returnData, result.revertReason);
  }

  async function estimateGas(height: number, request: RpcCallRequest): Promise<Outcome> {
    const head = await backend.blockByHeight(height);
    let hi = request.blockOverrides?.gasLimit ?? head?.block.header.gasLimit ?? limits.gasCap;
    if (hi > limits.gasCap) hi = limits.gasCap;
    if (request.gas !== undefined && request.gas >= TX_GAS && request.gas < hi) hi = request.gas;

    // Like geth: a sender cannot buy more gas than its balance covers at the given fee cap.
    const feeCap = request.gasPrice ?? request.maxFeePerGas ?? 0n;
    if (feeCap > 0n && request.from !== undefined) {
      const from = request.from;
      const balance =
        request.stateOverrides?.find((o) => o.address === from)?.balance ??
        (await backend.account(height, from))?.balance ??
        0n;
      const value = request.value ?? 0n;
      if (value > balance) return failure(ErrorCode.server, "insufficient funds for transfer");
      const allowance = (balance - value) / feeCap;
      if (hi > allowance) hi = allowance;
    }

    const run = (gas: bigint) => backend.call(height, { ...request, gas });

    // A plain transfer to an account without code costs exactly the intrinsic gas.
    const data = request.data ?? "0x";
    if (data === "0x" && request.to !== undefined && request.to !== null && hi >= TX_GAS) {
      const to = request.to;
      const code = request.stateOverrides?.find((o) => o.address === to)?.code ?? (await backend.code(height, to));
      if (code === "0x" && (await run(TX_GAS)).status === 1) return success(quantity(TX_GAS));
    }

    const allowance = () => failure(ErrorCode.server, `gas required exceeds allowance (${hi})`);
    if (hi < TX_GAS) return allowance();
    const first = await run(hi);
    if (first.status === 0) {
      // geth: too little gas to start or running out of it at the cap is "exceeds allowance"; other halts say why.
      if (first.error !== undefined && first.error !== null) {
        return /intrinsic gas|out of gas/i.test(first.error) ? allowance() : failure(ErrorCode.server, first.error);
      }
      const outOfGas = first.returnData === "0x" && first.revertReason === null && first.gasUsed >= hi;
      if (outOfGas) return allowance();
      return revertError(first.returnData, first.revertReason);
    }
    let lo = first.gasUsed > TX_GAS ? first.gasUsed - 1n : TX_GAS - 1n;
    // geth's optimistic guess: what was used plus the stipend, scaled for the 63/64 rule of nested calls.
    const optimistic = ((first.gasUsed + CALL_STIPEND) * 64n) / 63n;
    if (optimistic < hi) {
      if ((await run(optimistic)).status === 1) hi = optimistic;
      else lo = optimistic;
    }
    for (let step = 0; lo + 1n < hi && step < MAX_ESTIMATE_STEPS; step++) {
      if (Number(hi - lo) / Number(hi) < ESTIMATE_ERROR_RATIO) break;
      let mid = (hi + lo) / 2n;
      // Most transactions need little more than they use: probe near lo first, as geth does.
      if (mid > lo * 2n) mid = lo * 2n;
      if ((await run(mid)).status === 1) hi = mid;
      else lo = mid;
    }
    return success(quantity(hi));
  }

  /**
   * geth's eth_createAccessList: run the call with the access list found so far (at first the request's), report what
   * it touched, and again with that, until the list no longer grows (warm accesses cost less gas, which can change
   * the path a call takes). The gas is that of the last run, which carried the list answered.
   */
  async function createAccessList(height: number, request: RpcCallRequest & { gas: bigint }): Promise<Outcome> {
    let list = request.accessList ?? [];
    for (let run = 0; ; run++) {
      const result = await backend.call(height, { ...request, accessList: list, reportAccessList: true });
      if (result.error !== undefined && result.error !== null && result.gasUsed === 0n) {
        // Nothing ran (intrinsic gas above the gas given...): there is no list to give.
        return failure(ErrorCode.server, result.error);
      }
      const found = result.accessList ?? [];
      if (sameAccessList(found, list) || run === MAX_ACCESS_LIST_RUNS) {
        const answer: Record<string, unknown> = {
          accessList: found.map((e) => ({ address: e.address, storageKeys: [...e.storageKeys] })),
          gasUsed: quantity(result.gasUsed),
        };
        if (result.status === 0) {
          answer.error =
            result.error ??
            (result.revertReason === null ? "execution reverted" : `execution reverted: ${result.revertReason}`);
        }
        return success(answer);
      }
      list = found;
    }
  }

  async function feeHistory(
    count: number,
    newestRef: BlockRef,
    percentiles: readonly number[] | undefined,
  ): Promise<Outcome> {
    const head = backend.headHeight();
    if (newestRef.kind === "hash") return invalidParams("newestBlock must be a tag or number");
    const newest = heightOf(newestRef);
    if (newest > head) {
      return failure(ErrorCode.server, `request beyond head block: requested ${newest}, head ${head}`);
    }
    const blocks = Math.min(count, limits.maxFeeHistoryBlocks);
    const baseFees: Hex[] = [];
    const ratios: number[] = [];
    const rewards: Hex[][] = [];
    let oldest = Math.max(0, newest - blocks + 1);
    for (let height = oldest; blocks > 0 && height <= newest; height++) {
      const entry = await backend.blockByHeight(height).catch((error: unknown) => {
        // History pruned below some height (storage.blockHistory): the answer starts above it, as geth's does (an
        // older block kept for light clients before it does not count).
        if (!(error instanceof RpcRequestError && error.rpcCode === ErrorCode.prunedHistory)) throw error;
        baseFees.length = 0;
        ratios.length = 0;
        rewards.length = 0;
        return undefined;
      });
      if (entry === undefined) {
        // The genesis (or a pruned prefix) may have no stored block: start after it.
        if (baseFees.length === 0) {
          oldest = height + 1;
          continue;
        }
        return failure(ErrorCode.internal, `committed block ${height} is missing`);
      }
      const h = entry.block.header;
      baseFees.push(quantity(h.baseFeePerGas));
      ratios.push(h.gasLimit === 0n ? 0 : Number(h.gasUsed) / Number(h.gasLimit));
      if (percentiles !== undefined && percentiles.length > 0) {
        const receipts = await backend.receipts(height);
        if (receipts === undefined) return missingReceipts(height);
        rewards.push(blockRewards(receipts, h.baseFeePerGas, percentiles));
      }
    }
    if (baseFees.length === 0) return success({ oldestBlock: "0x0", baseFeePerGas: [], gasUsedRatio: [] });
    // The base fee after the newest block: from the next header, or the one the next proposal will use.
    const next = newest === head ? backend.nextBaseFee() : (await backend.blockByHeight(newest + 1))?.block.header;
    if (next === undefined) return failure(ErrorCode.internal, `committed block ${newest + 1} is missing`);
    baseFees.push(quantity(typeof next === "bigint" ? next : next.baseFeePerGas));
    const out: Record<string, unknown> = {
      oldestBlock: quantity(oldest),
      baseFeePerGas: baseFees,
      gasUsedRatio: ratios,
    };
    if (percentiles !== undefined && percentiles.length > 0) out.reward = rewards;
    return success(out);
  }

  const methods: Record<string, MethodDef> = {
    web3_clientVersion: method([], () => success(backend.clientVersion)),
    net_version: method([], () => success(backend.chainId.toString(10))),
    net_listening: method([], () => success(true)),
    eth_chainId: method([], () => success(quantity(backend.chainId))),
    eth_blockNumber: method([], () => success(quantity(backend.headHeight()))),
    eth_syncing: method([], () => {
      const progress = backend.syncing?.() ?? null;
      if (progress === null) return success(false);
      return success({
        startingBlock: quantity(progress.startingBlock),
        currentBlock: quantity(progress.currentBlock),
        highestBlock: quantity(progress.highestBlock),
      });
    }),
    eth_accounts: method([], () => success([])),
    eth_gasPrice: method([], () => success(quantity(backend.nextBaseFee() + SUGGESTED_PRIORITY_FEE))),
    eth_maxPriorityFeePerGas: method([], () => success(quantity(SUGGESTED_PRIORITY_FEE))),

    eth_feeHistory: method(
      [
        required("blockCount", blockCount),
        required("newestBlock", blockTagOrNumber),
        optional("rewardPercentiles", rewardPercentiles),
      ],
      feeHistory,
    ),

    eth_getBalance: method([required("address", address), optional("block", blockRef)], async (who, ref) => {
      const height = await stateHeight(ref);
      if (isFailure(height)) return height;
      const account = await backend.account(height, who);
      return success(quantity(account?.balance ?? 0n));
    }),

    eth_getTransactionCount: method([required("address", address), optional("block", blockRef)], async (who, ref) => {
      if (ref?.kind === "tag" && ref.tag === "pending") return success(quantity(await backend.pendingNonce(who)));
      const height = await stateHeight(ref);
      if (isFailure(height)) return height;
      const account = await backend.account(height, who);
      return success(quantity(account?.nonce ?? 0n));
    }),

    eth_getCode: method([required("address", address), optional("block", blockRef)], async (who, ref) => {
      const height = await stateHeight(ref);
      if (isFailure(height)) return height;
      return success(await backend.code(height, who));
    }),

    eth_getStorageAt: method(
      [required("address", address), required("slot", storageSlot), optional("block", blockRef)],
      async (who, slot, ref) => {
        const height = await stateHeight(ref);
        if (isFailure(height)) return height;
        return success(await backend.storageAt(height, who, slot));
      },
    ),

    eth_getProof: method(
      [required("address", address), required("storageKeys", storageKeys), optional("block", blockRef)],
      async (who, keys, ref) => {
        const height = await stateHeight(ref);
        if (isFailure(height)) return height;
        return success(await backend.proof(height, who, keys));
      },
    ),

    lumia_getCertificate: method([optional("block", blockRef)], async (ref) => {
      const height = await stateHeight(ref);
      if (isFailure(height)) return height;
      const certified = await certifiedHeader(height);
      return isFailure(certified) ? certified : success(certified);
    }),

    lumia_getTransactionCertificate: method([required("hash", hash32)], async (hash) => {
      const location = await backend.transactionLocation(hash);
      if (location === undefined) return success(null);
      const [entry, receipts, certified] = await Promise.all([
        backend.blockByHeight(location.height),
        backend.receipts(location.height),
        certifiedHeader(location.height),
      ]);
      if (receipts === undefined) return missingReceipts(location.height);
      if (isFailure(certified)) return certified;
      const raw = entry?.block.transactions[location.index];
      const receipt = receipts[location.index];
      if (entry === undefined || raw === undefined || receipt?.transactionHash !== hash || certified === null) {
        return failure(ErrorCode.internal, `transaction ${hash} is indexed at a missing or uncertified position`);
      }
      const tries = await triesOf(location.height, entry.block, receipts);
      if (isFailure(tries)) return tries;
      return success({
        transactionHash: hash,
        blockNumber: quantity(location.height),
        blockHash: entry.hash,
        transactionIndex: quantity(location.index),
        header: certified.header,
        certificate: certified,
        transaction: toHex(raw),
        transactionProof: tries.transactions.prove(location.index),
        receipt: toHex(receipt.encoded),
        receiptProof: tries.receipts.prove(location.index),
      });
    }),

    lumia_getValidatorSetHistory: method([], async () => {
      const changes = await backend.validatorSetHistory();
      return success(changes.map((c) => ({ fromHeight: quantity(c.fromHeight), id: c.id })));
    }),

    lumia_getValidatorSet: method([required("id", hash32)], async (id) => {
      const set = await backend.validatorSet(id);
      if (set === undefined) return success(null);
      return success({
        id: set.id,
        totalVotingPower: quantity(set.totalVotingPower),
        validators: set.validators.map((v) => ({
          address: v.address,
          publicKey: v.publicKey,
          votingPower: quantity(v.votingPower),
        })),
      });
    }),

    lumia_status: method([], () => success(backend.status())),

    lumia_getStake: method([required("address", address)], async (who) => stakerAnswer(backend, who, false)),

    lumia_getRewards: method([required("address", address)], async (who) => stakerAnswer(backend, who, true)),

    lumia_getWorkReport: method([optional("epoch", quantityParam)], async (epoch) => {
      if (backend.workReport === undefined) {
        return failure(ErrorCode.server, "this node keeps no work reports (its subnet is not anchored to L1)");
      }
      return success(await backend.workReport(epoch ?? null));
    }),

    eth_call: method(
      [
        required("transaction", callRequest),
        optional("block", blockRef),
        optional("stateOverrides", stateOverrides),
        optional("blockOverrides", blockOverrides),
      ],
      async (request, ref, state, block) => {
        const height = await stateHeight(ref);
        if (isFailure(height)) return height;
        const capped = await capGas(height, withOverrides(request, state, block));
        const result = await backend.call(height, capped);
        if (result.status === 0) return callFailure(result, capped.gas);
        return success(result.returnData);
      },
    ),

    eth_simulateV1: method(
      [required("payload", simulatePayload), optional("block", blockRef)],
      async (payload, ref): Promise<Outcome> => {
        if (backend.simulate === undefined) return failure(ErrorCode.methodNotFound, "eth_simulateV1 is not served");
        const height = await stateHeight(ref);
        if (isFailure(height)) return height;
        const calls = payload.blocks.reduce((n, b) => n + b.calls.length, 0);
        if (payload.blocks.length > MAX_SIMULATED_BLOCKS || calls > MAX_SIMULATED_CALLS) {
          return failure(
            SIMULATION_ERROR_CODES.too_many,
            `at most ${MAX_SIMULATED_BLOCKS} blocks and ${MAX_SIMULATED_CALLS} calls are simulated at once`,
          );
        }
        try {
          const blocks = await backend.simulate(height, payload.blocks, {
            validation: payload.validation,
            traceTransfers: payload.traceTransfers,
            gasCap: limits.gasCap,
          });
          return success(blocks.map((b) => formatSimulatedBlock(b, payload.returnFullTransactions)));
        } catch (error) {
          if (error instanceof SimulationError) return failure(SIMULATION_ERROR_CODES[error.kind], error.message);
          throw error;
        }
      },
    ),

    eth_createAccessList: method(
      [required("transaction", callRequest), optional("block", blockRef)],
      async (request, ref) => {
        const height = await stateHeight(ref);
        if (isFailure(height)) return height;
        return createAccessList(height, await capGas(height, request));
      },
    ),

    eth_estimateGas: method(
      [
        required("transaction", callRequest),
        optional("block", blockRef),
        optional("stateOverrides", stateOverrides),
        optional("blockOverrides", blockOverrides),
      ],
      async (request, ref, state, block) => {
        const height = await stateHeight(ref);
        if (isFailure(height)) return height;
        return estimateGas(height, withOverrides(request, state, block));
      },
    ),

    eth_sendRawTransaction: method([required("transaction", rawTransaction)], async (raw) => {
      const result = await backend.sendRawTransaction(fromHex(raw));
      if (result.ok) return success(result.hash);
      return failure(ErrorCode.server, sendRefusalMessage(result.code, result.message));
    }),

    eth_getTransactionByHash: method([required("hash", hash32)], async (hash) => {
      const location = await backend.transactionLocation(hash);
      if (location !== undefined) {
        const entry = await backend.blockByHeight(location.height);
        const tx = entry === undefined ? null : committedTransaction(entry, location.index);
        if (tx === null) {
          return failure(ErrorCode.internal, `transaction ${hash} is indexed at a missing block position`);
        }
        return isFailure(tx) ? tx : success(tx);
      }
      const pending = backend.pendingTransaction(hash);
      if (pending === undefined) return success(null);
      const tx = txs.decode(pending.raw);
      if (tx === null) return undecodable(hash);
      return success(formatTransaction(tx, null));
    }),

    eth_getTransactionReceipt: method([required("hash", hash32)], committedReceipt),

    eth_sendRawTransactionSync: methodWithContext(
      [required("transaction", rawTransaction), optional("timeout", z.unknown())],
      async (context, raw, timeout): Promise<Outcome> => {
        const bytes = fromHex(raw);
        const hash = txHash(bytes);
        if (receiptWaiters.size >= MAX_SYNC_WAITERS) {
          return failure(ErrorCode.limitExceeded, `limit exceeded: ${MAX_SYNC_WAITERS} requests wait for receipts`);
        }
        const ms = syncTimeoutMs(timeout);
        // Waiting starts before the submission: a commit right after it is not missed.
        const wait = receiptWaiters.wait(hash, ms);
        const sent = await backend.sendRawTransaction(bytes);
        // Pooled already (sent before, or a peer's copy): it is waited for all the same.
        if (!sent.ok && backend.pendingTransaction(hash) === undefined) {
          wait.cancel();
          // Committed already: its receipt.
          const done = await committedReceipt(hash);
          if (done.ok && done.result !== null) return done;
          return failure(ErrorCode.server, sendRefusalMessage(sent.code, sent.message));
        }
        // Behind a nonce gap it cannot run until the gap is filled: EIP-7966's "not ready" (5), at once.
        const from = txs.decode(bytes)?.from;
        const queued = from === undefined ? [] : (backend.txpoolContentFrom?.(from).queued ?? []);
        if (queued.some((r) => txHash(r) === hash)) {
          wait.cancel();
          return failure(
            SYNC_NOT_READY,
            "the transaction was added to the pool but cannot run yet: its nonce is past the account's next one",
            hash,
          );
        }
        const slot = context.waitSlot;
        slot?.pause();
        const receipt = await wait.receipt.finally(() => slot?.resume());
        if (receipt === null) {
          return failure(
            SYNC_TIMEOUT,
            `the transaction was added to the pool but was not committed within ${ms} ms`,
            hash,
          );
        }
        return success(receipt);
      },
    ),

    eth_getBlockByNumber: method(
      [required("block", blockTagOrNumber), optional("fullTransactions", fullTransactions)],
      async (ref, full) => blockResult(await blockOf(ref), full),
    ),

    eth_getBlockByHash: method(
      [required("hash", hash32), optional("fullTransactions", fullTransactions)],
      async (hash, full) => blockResult(await backend.blockByHash(hash), full),
    ),

    eth_getBlockTransactionCountByNumber: method([required("block", blockTagOrNumber)], async (ref) => {
      const entry = await blockOf(ref);
      return success(entry === undefined ? null : quantity(entry.block.transactions.length));
    }),

    eth_getBlockTransactionCountByHash: method([required("hash", hash32)], async (hash) => {
      const entry = await backend.blockByHash(hash);
      return success(entry === undefined ? null : quantity(entry.block.transactions.length));
    }),

    eth_getLogs: method([required("filter", logFilter)], getLogs),

    eth_getBlockReceipts: method([required("block", blockRef)], async (ref) => blockReceipts(await blockOf(ref))),

    eth_getTransactionByBlockHashAndIndex: method(
      [required("hash", hash32), required("index", quantityParam)],
      async (hash, index) => transactionAt(await backend.blockByHash(hash), index),
    ),

    eth_getTransactionByBlockNumberAndIndex: method(
      [required("block", blockTagOrNumber), required("index", quantityParam)],
      async (ref, index) => transactionAt(await blockOf(ref), index),
    ),

    // No proof of work, so no uncles: a count of 0 for a known block, and never an uncle.
    eth_getUncleCountByBlockHash: method([required("hash", hash32)], async (hash) =>
      success((await backend.blockByHash(hash)) === undefined ? null : "0x0"),
    ),
    eth_getUncleCountByBlockNumber: method([required("block", blockTagOrNumber)], async (ref) =>
      success((await blockOf(ref)) === undefined ? null : "0x0"),
    ),
    eth_getUncleByBlockHashAndIndex: method([required("hash", hash32), required("index", quantityParam)], () =>
      success(null),
    ),
    eth_getUncleByBlockNumberAndIndex: method(
      [required("block", blockTagOrNumber), required("index", quantityParam)],
      () => success(null),
    ),

    net_peerCount: method([], () => success(quantity(backend.peerCount?.() ?? 0))),

    txpool_status: method([], () => {
      const counts = backend.txpoolStatus?.() ?? { pending: 0, queued: 0 };
      return success({ pending: quantity(counts.pending), queued: quantity(counts.queued) });
    }),

    txpool_contentFrom: method([required("address", address)], (who) => {
      const held = backend.txpoolContentFrom?.(who) ?? { pending: [], queued: [] };
      // geth's shape: transactions by nonce (decimal), as eth_getTransactionByHash shows a pending one.
      const byNonce = (raws: readonly Uint8Array[]): Record<string, unknown> | Failure => {
        const out: Record<string, unknown> = {};
        for (const raw of raws) {
          const tx = txs.decode(raw);
          if (tx === null) return undecodable(txHash(raw));
          out[tx.nonce.toString(10)] = formatTransaction(tx, null);
        }
        return out;
      };
      const pending = byNonce(held.pending);
      if (isFailure(pending)) return pending;
      const queued = byNonce(held.queued);
      if (isFailure(queued)) return queued;
      return success({ pending, queued });
    }),

    web3_sha3: method([required("data", hashInput)], (data) => success(toHex(keccak256(fromHex(data))))),
  };
  if (backend.traceBlock !== undefined && backend.traceCall !== undefined) {
    Object.assign(methods, debugMethods(backend.traceBlock.bind(backend), backend.traceCall.bind(backend)));
  }
  return new Map(Object.entries(methods));

  /** debug_trace*: present only when the backend serves them (config rpc.debug); each replays on this node. */
  function debugMethods(
    traceBlock: NonNullable<RpcBackend["traceBlock"]>,
    traceCall: NonNullable<RpcBackend["traceCall"]>,
  ): Record<string, MethodDef> {
    async function traceEntries(entry: BlockEntry | undefined, options: TraceOptions): Promise<Outcome> {
      if (entry === undefined) return failure(ErrorCode.server, "block not found");
      const height = entry.block.header.height;
      return traced(async () => {
        const traces = await traceBlock(height, null, options);
        const hashes = entry.block.transactions.filter((raw) => !isSvmEntry(raw)).map((raw) => txHash(raw));
        return hashes.map((hash, i) => ({ txHash: hash, result: traces[i] ?? null }));
      });
    }
    return {
      debug_traceTransaction: method(
        [required("hash", hash32), optional("config", traceConfig)],
        async (hash, options): Promise<Outcome> => {
          const location = await backend.transactionLocation(hash);
          if (location === undefined) return failure(ErrorCode.server, `transaction ${hash} not found`);
          return traced(async () => (await traceBlock(location.height, location.index, options ?? {}))[0] ?? null);
        },
      ),
      debug_traceBlockByNumber: method(
        [required("block", blockTagOrNumber), optional("config", traceConfig)],
        async (ref, options) => {
          // geth's answer: the genesis ran no transactions.
          if (ref.kind !== "hash" && heightOf(ref) === 0) return failure(ErrorCode.server, "genesis is not traceable");
          return traceEntries(await blockOf(ref), options ?? {});
        },
      ),
      debug_traceBlockByHash: method(
        [required("hash", hash32), optional("config", traceConfig)],
        async (hash, options) => traceEntries(await backend.blockByHash(hash), options ?? {}),
      ),
      debug_traceCall: method(
        [required("transaction", callRequest), optional("block", blockRef), optional("config", traceCallConfig)],
        async (request, ref, config): Promise<Outcome> => {
          const height = await stateHeight(ref);
          if (isFailure(height)) return height;
          const capped = await capGas(height, withOverrides(request, config?.stateOverrides, config?.blockOverrides));
          return traced(() => traceCall(height, capped, config?.options ?? {}));
        },
      ),
    };
  }
}

/** geth's codes for a simulation that cannot run as asked (the whole eth_simulateV1 request fails). */
const SIMULATION_ERROR_CODES: Record<SimulationErrorKind, number> = {
  nonce_too_low: -38010,
  nonce_too_high: -38011,
  fee_too_low: -38012,
  intrinsic_gas: -38013,
  insufficient_funds: -38014,
  block_gas_limit: -38015,
  block_number: -38020,
  block_timestamp: -38021,
  too_many: -38026,
  invalid: ErrorCode.invalidParams,
};

/** A trace's answer; one too large to give whole is -32005 (the client narrows it), not an internal error. */
async function traced(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return success(await run());
  } catch (error) {
    if (error instanceof TraceTooLargeError) return failure(ErrorCode.limitExceeded, error.message);
    throw error;
  }
}

function missingReceipts(height: number): Failure {
  return failure(ErrorCode.internal, `receipts of committed block ${height} are missing`);
}

/** Height of a tag or number without looking at hashes; may be above the head. */
export function tagHeight(
  backend: Pick<RpcBackend, "headHeight" | "finalizedHeight">,
  ref: Exclude<BlockRef, { kind: "hash" }>,
): number {
  if (ref.kind === "number") return ref.height;
  switch (ref.tag) {
    case "latest":
    case "safe":
    case "pending":
      return backend.headHeight();
    case "finalized":
      // Never above the head: a node still catching up serves only what it has.
      return Math.min(backend.finalizedHeight?.() ?? 0, backend.headHeight());
    case "earliest":
      return 0;
  }
}

/** Each log of a block with its position: `logIndex` counts across the block, as every log answer shows it. */
export function* blockLogs(
  receipts: readonly StoredReceipt[],
  blockHash: Hex,
  blockNumber: number,
): Generator<{ log: StoredLog; position: LogPosition }> {
  let logIndex = 0;
  for (const [transactionIndex, receipt] of receipts.entries()) {
    for (const log of receipt.logs) {
      yield {
        log,
        position: { blockHash, blockNumber, transactionHash: receipt.transactionHash, transactionIndex, logIndex },
      };
      logIndex++;
    }
  }
}

/** eth_getLogs over committed blocks (also eth_getFilterLogs'). */
export function createLogQuery(
  backend: RpcBackend,
  limits: Pick<MethodLimits, "maxLogRange" | "maxLogResults">,
): (filter: LogFilter) => Promise<Outcome> {
  const heightOf = (ref: Exclude<BlockRef, { kind: "hash" }>) => tagHeight(backend, ref);
  return async function getLogs(filter: LogFilter): Promise<Outcome> {
    let from: number;
    let to: number;
    if (filter.blockHash !== null) {
      const entry = await backend.blockByHash(filter.blockHash);
      if (entry === undefined) return failure(ErrorCode.server, `unknown block ${filter.blockHash}`);
      from = entry.block.header.height;
      to = from;
    } else {
      if (filter.fromBlock.kind === "hash" || filter.toBlock.kind === "hash")
        return invalidParams("block hash in range");
      from = heightOf(filter.fromBlock);
      to = heightOf(filter.toBlock);
      if (from > to) return invalidParams(`invalid block range: fromBlock ${from} is after toBlock ${to}`);
    }
    const head = backend.headHeight();
    if (to > head) to = head;
    if (from > to) return success([]);
    const span = to - from + 1;
    if (span > limits.maxLogRange) {
      return failure(
        ErrorCode.limitExceeded,
        `block range too large: ${span} blocks requested (${from}..${to}), the limit is ${limits.maxLogRange}`,
      );
    }
    const matcher = logMatcher(filter);
    const out: unknown[] = [];
    for (let height = from; height <= to; height++) {
      const entry = await backend.blockByHeight(height);
      if (entry === undefined || !matcher.mayMatchBloom(fromHex(entry.block.header.logsBloom))) continue;
      const receipts = await backend.receipts(height);
      if (receipts === undefined) return missingReceipts(height);
      for (const { log, position } of blockLogs(receipts, entry.hash, height)) {
        if (!matcher.matches(log)) continue;
        if (out.length >= limits.maxLogResults) {
          return failure(
            ErrorCode.limitExceeded,
            `query returned more than ${limits.maxLogResults} results; narrow the block range or the filter`,
          );
        }
        out.push(formatLog(log, position));
      }
    }
    return success(out);
  };
}

/** EIP-7966's error codes: no receipt within the wait; the transaction cannot run yet. */
const SYNC_TIMEOUT = 4;
const SYNC_NOT_READY = 5;

/**
 * eth_sendRawTransactionSync's wait: a positive quantity (hex) or integer of milliseconds up to the node's maximum;
 * anything else (absent, zero, too long, not a number) is the default, as EIP-7966 asks.
 */
function syncTimeoutMs(value: unknown): number {
  let ms: number | null = null;
  if (typeof value === "number" && Number.isSafeInteger(value)) ms = value;
  else if (typeof value === "string" && /^0x[0-9a-fA-F]{1,12}$/.test(value)) ms = Number(BigInt(value));
  return ms !== null && ms > 0 && ms <= MAX_SYNC_TIMEOUT_MS ? ms : DEFAULT_SYNC_TIMEOUT_MS;
}

/** Whether two access lists name the same addresses with the same slots (order aside). */
function sameAccessList(a: readonly RpcAccessListEntry[], b: readonly RpcAccessListEntry[]): boolean {
  const keysOf = (list: readonly RpcAccessListEntry[]) => {
    const out = new Map<Hex, Set<Hex>>();
    for (const e of list) {
      const slots = out.get(e.address) ?? new Set<Hex>();
      for (const k of e.storageKeys) slots.add(k);
      out.set(e.address, slots);
    }
    return out;
  };
  const x = keysOf(a);
  const y = keysOf(b);
  if (x.size !== y.size) return false;
  for (const [address, slots] of x) {
    const other = y.get(address);
    if (other === undefined || other.size !== slots.size) return false;
    for (const k of slots) if (!other.has(k)) return false;
  }
  return true;
}

/** Priority-fee percentiles of one block, weighted by gas used, as geth computes them. */
function blockRewards(receipts: readonly StoredReceipt[], baseFee: bigint, percentiles: readonly number[]): Hex[] {
  if (receipts.length === 0) return percentiles.map(() => "0x0");
  const sorted = receipts
    .map((r) => ({ reward: r.effectiveGasPrice > baseFee ? r.effectiveGasPrice - baseFee : 0n, gasUsed: r.gasUsed }))
    .sort((a, b) => (a.reward < b.reward ? -1 : a.reward > b.reward ? 1 : 0));
  let total = 0n;
  for (const item of sorted) total += item.gasUsed;
  const out: Hex[] = [];
  let index = 0;
  let sum = (sorted[0] as { gasUsed: bigint }).gasUsed;
  for (const p of percentiles) {
    // Percentiles are given with up to 6 decimals of precision; bigint keeps large gas totals exact.
    const threshold = (total * BigInt(Math.round(p * 1_000_000))) / 100_000_000n;
    while (sum < threshold && index < sorted.length - 1) {
      index++;
      sum += (sorted[index] as { gasUsed: bigint }).gasUsed;
    }
    out.push(quantity((sorted[index] as { reward: bigint }).reward));
  }
  return out;
}

export interface LogMatcher {
  mayMatchBloom(bloom: Uint8Array): boolean;
  matches(log: StoredReceipt["logs"][number]): boolean;
}

/** eth_getLogs' address and topic matching (also the logs subscription's). */
export function logMatcher(filter: Pick<LogFilter, "addresses" | "topics">): LogMatcher {
  const addresses = new Set(filter.addresses);
  const addressBytes = filter.addresses.map((a) => fromHex(a));
  const topicSets = filter.topics.map((alternatives) => (alternatives === null ? null : new Set(alternatives)));
  const topicBytes = filter.topics.map((alternatives) => alternatives?.map((t) => fromHex(t)) ?? null);
  return {
    mayMatchBloom(bloom) {
      // A block without logs has an empty bloom: skip it even for a filter that matches everything.
      if (bloom.every((b) => b === 0)) return false;
      if (addressBytes.length > 0 && !addressBytes.some((a) => bloomMayContain(bloom, a))) return false;
      for (const alternatives of topicBytes) {
        if (alternatives !== null && !alternatives.some((t) => bloomMayContain(bloom, t))) return false;
      }
      return true;
    },
    matches(log) {
      if (addresses.size > 0 && !addresses.has(log.address)) return false;
      if (topicSets.length > log.topics.length) return false;
      for (const [i, allowed] of topicSets.entries()) {
        if (allowed !== null && !allowed.has(log.topics[i] as Hex)) return false;
      }
      return true;
    },
  };
}

/** The call with its state and block overrides (absent ones left out). */
function withOverrides(
  request: RpcCallRequest,
  state: RpcStateOverrides | undefined,
  block: RpcBlockOverrides | undefined,
): RpcCallRequest {
  return {
    ...request,
    ...(state === undefined ? {} : { stateOverrides: state }),
    ...(block === undefined ? {} : { blockOverrides: block }),
  };
}

/** A staker's L1 position from the node's L1 mirror, or a server error saying why there is none. */
async function stakerAnswer(backend: RpcBackend, who: Hex, withClaims: boolean): Promise<Outcome> {
  if (backend.stakerReport === undefined) return failure(ErrorCode.server, "this node has no L1 mirror (no l1 config)");
  const answer = await backend.stakerReport(who, withClaims);
  if (answer.ok) return success(answer.value);
  // Too many staking reads waiting on the L1: a limit, as a busy server answers (EIP-1474), worth retrying.
  if (answer.busy === true) return failure(ErrorCode.limitExceeded, `staking reads are busy: ${answer.reason}`);
  return failure(ErrorCode.server, `L1 staking data unavailable: ${answer.reason}`);
}
