// Ethereum JSON-RPC shapes of blocks, transactions, receipts and logs, as geth returns them and viem parses them:
// quantities are minimal hex ("0x0", no leading zeros), data is even-length hex.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { type Block, encodeHeader, ZERO_HASH } from "../chain/block.ts";
import type { StoredReceipt } from "../chain/receipts.ts";
import { fastKeccak256 } from "../execution/keccak.ts";
import type { SimulatedBlock, SimulatedLog } from "../execution/simulate.ts";
import { type DecodedTx, decodeTransaction } from "../execution/tx.ts";
import type { RpcCertificate } from "./backend.ts";
import { logsBloom } from "./bloom.ts";

/** keccak256(rlp([])): the uncles hash of every block without uncles. */
export const EMPTY_UNCLES_HASH: Hex = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";
const ZERO_NONCE: Hex = "0x0000000000000000";

export function quantity(value: bigint | number): Hex {
  return `0x${value.toString(16)}`;
}

export function txHash(raw: Uint8Array): Hex {
  return toHex(fastKeccak256(raw));
}

/** The fields of a signed transaction the RPC shows; kept instead of the ethereumjs object (much smaller). */
export interface TxFields {
  readonly hash: Hex;
  readonly type: 0 | 1 | 2;
  readonly from: Hex;
  readonly to: Hex | null;
  readonly nonce: bigint;
  readonly gas: bigint;
  readonly value: bigint;
  readonly input: Hex;
  readonly chainId: bigint;
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
  readonly accessList: readonly { readonly address: Hex; readonly storageKeys: readonly Hex[] }[] | null;
  readonly v: bigint;
  readonly r: bigint;
  readonly s: bigint;
}

export function txFields(tx: DecodedTx, chainId: bigint): TxFields {
  const inner = tx.tx;
  const accessList =
    "accessList" in inner
      ? inner.accessList.map(([address, keys]) => ({ address: toHex(address), storageKeys: keys.map((k) => toHex(k)) }))
      : null;
  return {
    hash: tx.hash,
    type: tx.type,
    from: tx.from,
    to: tx.to,
    nonce: tx.nonce,
    gas: tx.gasLimit,
    value: tx.value,
    input: toHex(tx.data),
    chainId: tx.chainId ?? chainId,
    maxFeePerGas: tx.maxFeePerGas,
    maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
    accessList,
    v: inner.v ?? 0n,
    r: inner.r ?? 0n,
    s: inner.s ?? 0n,
  };
}

/**
 * Decodes raw transactions for display, caching the light views by hash (blocks are read again and again by explorers
 * and wallets). Bounded: the oldest entry goes first.
 */
export class TxDecoder {
  private readonly cache = new Map<Hex, TxFields>();
  constructor(
    private readonly chainId: bigint,
    private readonly maxEntries = 20_000,
  ) {}

  /** null when the bytes do not decode (never for committed transactions; possible for corrupt storage). */
  decode(raw: Uint8Array): TxFields | null {
    const hash = txHash(raw);
    const cached = this.cache.get(hash);
    if (cached !== undefined) return cached;
    const decoded = decodeTransaction(raw, this.chainId);
    if (!decoded.ok) return null;
    const fields = txFields(decoded.tx, this.chainId);
    if (this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(hash, fields);
    return fields;
  }
}

export interface TxPosition {
  readonly blockHash: Hex;
  readonly blockNumber: number;
  readonly index: number;
  readonly baseFeePerGas: bigint;
}

/** The price per gas a transaction pays in a block with this base fee (EIP-1559 effective gas price). */
export function effectiveGasPrice(tx: TxFields, baseFeePerGas: bigint): bigint {
  if (tx.type !== 2) return tx.maxFeePerGas;
  const withTip = baseFeePerGas + tx.maxPriorityFeePerGas;
  return withTip < tx.maxFeePerGas ? withTip : tx.maxFeePerGas;
}

/** Transaction object; `position` null for a pending transaction (block fields null, as geth does). */
export function formatTransaction(tx: TxFields, position: TxPosition | null): Record<string, unknown> {
  const out: Record<string, unknown> = {
    blockHash: position?.blockHash ?? null,
    blockNumber: position === null ? null : quantity(position.blockNumber),
    transactionIndex: position === null ? null : quantity(position.index),
    hash: tx.hash,
    type: quantity(tx.type),
    from: tx.from,
    to: tx.to,
    nonce: quantity(tx.nonce),
    gas: quantity(tx.gas),
    gasPrice: quantity(position === null ? tx.maxFeePerGas : effectiveGasPrice(tx, position.baseFeePerGas)),
    value: quantity(tx.value),
    input: tx.input,
    chainId: quantity(tx.chainId),
    v: quantity(tx.v),
    r: quantity(tx.r),
    s: quantity(tx.s),
  };
  if (tx.type !== 0) {
    out.yParity = quantity(tx.v);
    out.accessList = tx.accessList ?? [];
  }
  if (tx.type === 2) {
    out.maxFeePerGas = quantity(tx.maxFeePerGas);
    out.maxPriorityFeePerGas = quantity(tx.maxPriorityFeePerGas);
  }
  return out;
}

export interface LogPosition {
  readonly blockHash: Hex;
  readonly blockNumber: number;
  readonly transactionHash: Hex;
  readonly transactionIndex: number;
  readonly logIndex: number;
}

export type StoredLog = StoredReceipt["logs"][number];

export function formatLog(log: StoredLog, position: LogPosition): Record<string, unknown> {
  return {
    address: log.address,
    topics: log.topics,
    data: log.data,
    blockHash: position.blockHash,
    blockNumber: quantity(position.blockNumber),
    transactionHash: position.transactionHash,
    transactionIndex: quantity(position.transactionIndex),
    logIndex: quantity(position.logIndex),
    removed: false,
  };
}

/** Index of the first log of receipt `index` in its block (logIndex counts across the block). */
export function firstLogIndex(receipts: readonly StoredReceipt[], index: number): number {
  let n = 0;
  for (let i = 0; i < index; i++) n += receipts[i]?.logs.length ?? 0;
  return n;
}

export function formatReceipt(
  receipt: StoredReceipt,
  position: {
    readonly blockHash: Hex;
    readonly blockNumber: number;
    readonly index: number;
    readonly firstLogIndex: number;
  },
): Record<string, unknown> {
  return {
    transactionHash: receipt.transactionHash,
    transactionIndex: quantity(position.index),
    blockHash: position.blockHash,
    blockNumber: quantity(position.blockNumber),
    from: receipt.from,
    to: receipt.to,
    cumulativeGasUsed: quantity(receipt.cumulativeGasUsed),
    gasUsed: quantity(receipt.gasUsed),
    effectiveGasPrice: quantity(receipt.effectiveGasPrice),
    contractAddress: receipt.contractAddress,
    logs: receipt.logs.map((log, i) =>
      formatLog(log, {
        blockHash: position.blockHash,
        blockNumber: position.blockNumber,
        transactionHash: receipt.transactionHash,
        transactionIndex: position.index,
        logIndex: position.firstLogIndex + i,
      }),
    ),
    logsBloom: logsBloom(receipt.logs),
    type: quantity(receipt.type),
    status: receipt.status === 1 ? "0x1" : "0x0",
  };
}

/** Encoded size of the block in this chain's wire format (header, then length-prefixed transactions). */
export function blockSize(block: Block): number {
  let size = encodeHeader(block.header).length + 4;
  for (const tx of block.transactions) size += 4 + tx.length;
  return size;
}

/** Ethereum-shaped block. `transactions` is hashes or full objects, already formatted by the caller. */
export function formatBlock(hash: Hex, block: Block, transactions: readonly unknown[]): Record<string, unknown> {
  const h = block.header;
  return {
    number: quantity(h.height),
    hash,
    parentHash: h.parentHash,
    nonce: ZERO_NONCE,
    mixHash: ZERO_HASH,
    sha3Uncles: EMPTY_UNCLES_HASH,
    logsBloom: h.logsBloom,
    transactionsRoot: h.transactionsRoot,
    stateRoot: h.stateRoot,
    receiptsRoot: h.receiptsRoot,
    miner: h.proposer,
    difficulty: "0x0",
    totalDifficulty: "0x0",
    extraData: "0x",
    size: quantity(blockSize(block)),
    gasLimit: quantity(h.gasLimit),
    gasUsed: quantity(h.gasUsed),
    // The header keeps milliseconds; Ethereum tools expect seconds.
    timestamp: quantity(Math.floor(h.timestampMs / 1000)),
    baseFeePerGas: quantity(h.baseFeePerGas),
    transactions,
    uncles: [],
  };
}

/**
 * The header a newHeads subscription sends: eth_getBlockByNumber(n, false) without `transactions`, `uncles` and
 * `size` (geth's shape; the size would count transactions a header does not carry).
 */
export function formatHeader(hash: Hex, block: Block): Record<string, unknown> {
  const { transactions: _transactions, uncles: _uncles, size: _size, ...header } = formatBlock(hash, block, []);
  return header;
}

/** lumia_getCertificate's object (and the certificates subscription's). */
export function formatCertificate(cert: RpcCertificate): Record<string, unknown> {
  return {
    certificate: cert.encoded,
    height: quantity(cert.height),
    round: quantity(cert.round),
    blockHash: cert.blockHash,
    validatorSetId: cert.validatorSetId,
    signers: cert.signers,
    signingPower: quantity(cert.signingPower),
    totalPower: quantity(cert.totalPower),
  };
}

/**
 * lumia_getCertificate's object (and the certificates subscription's): the certificate and the encoded header it
 * certifies (keccak256(header) = blockHash).
 */
export function formatCertifiedHeader(cert: RpcCertificate, block: Block): Record<string, unknown> {
  return { ...formatCertificate(cert), header: toHex(encodeHeader(block.header)) };
}

/**
 * An eth_simulateV1 block: Ethereum's block fields for the simulated header (its hash is keccak256 of an RLP list of
 * its fields, src/execution/core.ts; it has no certificate), `transactions` as hashes or objects, and `calls`, each
 * call's outcome with its logs placed in the block (logIndex counts across it).
 */
export function formatSimulatedBlock(block: SimulatedBlock, fullTransactions: boolean): Record<string, unknown> {
  const env = block.env;
  const number = env.height;
  let logIndex = 0;
  const allLogs: SimulatedLog[] = [];
  const calls = block.calls.map((call, index) => {
    const out: Record<string, unknown> = {
      status: call.status === 1 ? "0x1" : "0x0",
      returnData: call.returnData,
      gasUsed: quantity(call.gasUsed),
      logs: call.logs.map((log) => {
        allLogs.push(log);
        return formatLog(log, {
          blockHash: block.hash,
          blockNumber: number,
          transactionHash: call.hash,
          transactionIndex: index,
          logIndex: logIndex++,
        });
      }),
    };
    if (call.error !== null) out.error = { ...call.error };
    return out;
  });
  const transactions = block.calls.map((call, index) => {
    if (!fullTransactions) return call.hash;
    // Not signed: the sender is the one the call names, the signature fields are 0.
    const { hash, type, from, to, nonce, gas, value, input, maxFeePerGas, maxPriorityFeePerGas } = call;
    const fields: TxFields = {
      hash,
      type,
      from,
      to,
      nonce,
      gas,
      value,
      input,
      maxFeePerGas,
      maxPriorityFeePerGas,
      chainId: env.chainId,
      accessList: [],
      v: 0n,
      r: 0n,
      s: 0n,
    };
    return formatTransaction(fields, {
      blockHash: block.hash,
      blockNumber: number,
      index,
      baseFeePerGas: env.baseFeePerGas,
    });
  });
  return {
    number: quantity(number),
    hash: block.hash,
    parentHash: block.parentHash,
    nonce: ZERO_NONCE,
    mixHash: env.prevRandao,
    sha3Uncles: EMPTY_UNCLES_HASH,
    logsBloom: logsBloom(allLogs),
    transactionsRoot: block.transactionsRoot,
    stateRoot: block.stateRoot,
    miner: env.coinbase,
    difficulty: "0x0",
    totalDifficulty: "0x0",
    extraData: "0x",
    gasLimit: quantity(env.gasLimit),
    gasUsed: quantity(block.gasUsed),
    timestamp: quantity(Math.floor(env.timestampMs / 1000)),
    baseFeePerGas: quantity(env.baseFeePerGas),
    transactions,
    uncles: [],
    calls,
  };
}
