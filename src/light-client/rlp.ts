// The RLP values a light client reads out of proven trie leaves: Ethereum accounts (state trie), storage values
// (storage tries) and typed receipts (receipts trie). Each decoder returns null for bytes that are not the format:
// a leaf under a certified root that does not decode means the proof is for something else, a refusal upstream.
import { RLP } from "@ethereumjs/rlp";
import { type Hex, toHex } from "../../consensus/bytes.ts";

type Rlp = Uint8Array | Rlp[];

export interface ProvenAccount {
  readonly nonce: bigint;
  readonly balance: bigint;
  readonly storageRoot: Hex;
  readonly codeHash: Hex;
}

export interface ProvenLog {
  readonly address: Hex;
  readonly topics: readonly Hex[];
  readonly data: Hex;
}

export interface ProvenReceipt {
  /** EIP-2718 type: 0 legacy, 1 EIP-2930, 2 EIP-1559, ... */
  readonly type: number;
  /** 1 success, 0 failure (EIP-658). */
  readonly status: 0 | 1;
  readonly cumulativeGasUsed: bigint;
  readonly logsBloom: Hex;
  readonly logs: readonly ProvenLog[];
}

/** keccak256 of empty code and the root of an empty trie: what an account absent from the state has. */
export const EMPTY_CODE_HASH: Hex = "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470";
export const EMPTY_TRIE_ROOT: Hex = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

const MAX_LOGS = 100_000;

function decodeRlp(bytes: Uint8Array): Rlp | null {
  try {
    return RLP.decode(bytes) as Rlp;
  } catch {
    return null;
  }
}

/** A canonical RLP scalar (no leading zero byte) as a bigint; null otherwise. */
function scalar(item: Rlp | undefined, maxBytes: number): bigint | null {
  if (!(item instanceof Uint8Array) || item.length > maxBytes) return null;
  if (item.length > 0 && item[0] === 0) return null;
  return item.length === 0 ? 0n : BigInt(toHex(item));
}

function fixed(item: Rlp | undefined, length: number): Hex | null {
  return item instanceof Uint8Array && item.length === length ? toHex(item) : null;
}

/** rlp([nonce, balance, storageRoot, codeHash]), the value of an account leaf. */
export function decodeAccount(bytes: Uint8Array): ProvenAccount | null {
  const item = decodeRlp(bytes);
  if (!Array.isArray(item) || item.length !== 4) return null;
  const nonce = scalar(item[0], 8);
  const balance = scalar(item[1], 32);
  const storageRoot = fixed(item[2], 32);
  const codeHash = fixed(item[3], 32);
  if (nonce === null || balance === null || storageRoot === null || codeHash === null) return null;
  return { nonce, balance, storageRoot, codeHash };
}

/** rlp(value without leading zeros), the value of a storage leaf. */
export function decodeStorageValue(bytes: Uint8Array): bigint | null {
  const item = decodeRlp(bytes);
  return scalar(item ?? undefined, 32);
}

/** EIP-2718 receipt: `type || rlp([status, cumulativeGasUsed, bloom, logs])`, or the bare list for legacy. */
export function decodeReceipt(bytes: Uint8Array): ProvenReceipt | null {
  const first = bytes[0];
  if (first === undefined) return null;
  const type = first <= 0x7f ? first : 0;
  const item = decodeRlp(first <= 0x7f ? bytes.subarray(1) : bytes);
  if (!Array.isArray(item) || item.length !== 4) return null;
  const [statusItem, gasItem, bloomItem, logsItem] = item;
  if (!(statusItem instanceof Uint8Array)) return null;
  // Post-Byzantium receipts carry a status byte; a 32-byte state root (pre-Byzantium) never occurs on this chain.
  let status: 0 | 1;
  if (statusItem.length === 0) status = 0;
  else if (statusItem.length === 1 && statusItem[0] === 1) status = 1;
  else return null;
  const cumulativeGasUsed = scalar(gasItem, 8);
  const logsBloom = fixed(bloomItem, 256);
  if (cumulativeGasUsed === null || logsBloom === null || !Array.isArray(logsItem) || logsItem.length > MAX_LOGS) {
    return null;
  }
  const logs: ProvenLog[] = [];
  for (const log of logsItem) {
    if (!Array.isArray(log) || log.length !== 3) return null;
    const [addressItem, topicsItem, dataItem] = log;
    const address = fixed(addressItem, 20);
    if (address === null || !Array.isArray(topicsItem) || topicsItem.length > 4 || !(dataItem instanceof Uint8Array)) {
      return null;
    }
    const topics: Hex[] = [];
    for (const t of topicsItem) {
      const topic = fixed(t, 32);
      if (topic === null) return null;
      topics.push(topic);
    }
    logs.push({ address, topics, data: toHex(dataItem) });
  }
  return { type, status, cumulativeGasUsed, logsBloom, logs };
}

/** The EIP-2718 type of a raw signed transaction (0 for a legacy RLP list). */
export function transactionType(raw: Uint8Array): number {
  const first = raw[0] ?? 0xc0;
  return first <= 0x7f ? first : 0;
}
