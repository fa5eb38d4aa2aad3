// The JSON-RPC server's view of a running node: committed blocks, receipts and the transaction index from the store,
// state at any committed height from the execution core, the mempool for pending nonces and submissions.
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { certificateSigners, encodeCertificate } from "../../consensus/certificate.ts";
import { type Block, decodeBlock } from "../chain/block.ts";
import { decodeReceipts } from "../chain/receipts.ts";
import type { ExecutionCore } from "../execution/core.ts";
import type { Mempool } from "../mempool/mempool.ts";
import type { RpcBackend, RpcCallRequest, RpcSendResult } from "../rpc/backend.ts";
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
}

/** Decoded blocks are immutable once committed: a small cache spares decoding the head again for every call. */
const BLOCK_CACHE_SIZE = 256;

export function createRpcBackend(m: RpcBackendModules): RpcBackend {
  const cache = new Map<number, { hash: Hex; block: Block }>();
  async function blockByHeight(height: number): Promise<{ hash: Hex; block: Block } | undefined> {
    const cached = cache.get(height);
    if (cached !== undefined) return cached;
    if (!Number.isSafeInteger(height) || height < 1 || height > m.store.headHeight) return undefined;
    const bytes = await m.store.getBlock(height);
    const cert = await m.store.getCertificate(height);
    if (bytes === undefined || cert === undefined) return undefined;
    const entry = { hash: cert.blockHash, block: decodeBlock(bytes) };
    if (cache.size >= BLOCK_CACHE_SIZE) cache.delete(cache.keys().next().value as number);
    cache.set(height, entry);
    return entry;
  }
  /** vmRoots of the state after `height` (0 = genesis). */
  async function rootsAt(height: number) {
    if (height === m.executor.head.height) return m.executor.head.vmRoots;
    if (height === 0) return (await m.core.genesisStateRoot()).vmRoots;
    const b = await blockByHeight(height);
    if (b === undefined) throw new Error(`no block at height ${height}`);
    return b.block.header.vmRoots;
  }
  return {
    chainId: m.chainId,
    clientVersion: `lumia-dcn/${m.version}`,
    headHeight: () => m.store.headHeight,
    blockByHeight,
    async blockByHash(hash) {
      const found = await m.store.getBlockByHash(hash);
      return found === undefined ? undefined : blockByHeight(found.height);
    },
    async receipts(height) {
      const bytes = await m.store.getReceipts(height);
      return bytes === undefined ? undefined : decodeReceipts(bytes);
    },
    transactionLocation: (hash) => m.store.getTransactionLocation(hash),
    async account(height, address) {
      const account = await m.core.reader(await rootsAt(height)).getAccount(address);
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
      return m.core.reader(await rootsAt(height)).getCode(address);
    },
    async storageAt(height, address, slot) {
      return m.core.reader(await rootsAt(height)).getStorageAt(address, slot);
    },
    async call(height, request: RpcCallRequest) {
      const roots = await rootsAt(height);
      const head = m.executor.head;
      const b = height === head.height ? null : await blockByHeight(height);
      const h = b?.block.header;
      return m.core.call(
        roots,
        {
          chainId: m.chainId,
          height: height + 1,
          timestampMs: (h?.timestampMs ?? head.timestampMs) + 1,
          coinbase: `0x${"00".repeat(20)}`,
          gasLimit: h?.gasLimit ?? head.gasLimit,
          baseFeePerGas: m.executor.nextBaseFee(),
          prevRandao: b?.hash ?? head.hash,
          blockHash: m.executor.blockHashLookup,
        },
        request,
      );
    },
    nextBaseFee: () => m.executor.nextBaseFee(),
    sendRawTransaction: (raw) => m.submit(raw),
    async pendingNonce(address) {
      const queued = m.mempool.senderNonce(address);
      if (queued !== undefined) return queued;
      return (await m.executor.accounts().nonce(address)) ?? 0n;
    },
    async proof(height, address, slots) {
      return m.core.reader(await rootsAt(height)).getProof(address, slots);
    },
    async certificate(height) {
      const cert = await m.store.getCertificate(height);
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
    },
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
    status: () => m.status(),
    pendingTransaction(hash) {
      const tx = m.mempool.get(hash);
      return tx === undefined ? undefined : { hash: tx.hash, raw: tx.raw, from: tx.from };
    },
  };
}
