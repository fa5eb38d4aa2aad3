// A light client that verifies what a Lumia DCN node tells it instead of trusting it. Trust starts at the anchor (chain
// id, genesis hash, genesis validator set) and grows only through checks:
//
//   header     keccak256(header) = the certified block hash; chain id and height as asked; the header's
//              validatorSetId is the set trusted for that height; more than 2/3 of that set's power signed the
//              certificate (BLS, pure JS by default); stateRoot = the global root over vmRoots.
//   set change for each change the node reports at height t: the certified header of t - 1, verified with the set
//              trusted there, names the new set as nextValidatorSetId, and the members served hash to that id.
//   state      eth_getProof leads from the header's EVM root to the account (or proves it absent), and from the
//              account's storage root to the slot; the node's own numbers must match what the proof says.
//   tx         the raw transaction hashes to the asked hash and sits at rlp(index) under transactionsRoot; the typed
//              receipt sits at the same key under receiptsRoot; the receipt returned is decoded from the proven bytes.
//
// Pure: no Node APIs; the network is the injected transport (global fetch by default). docs/light-client.md.
import { concatBytes, fromHex, type Hex, isHex, keccak256, toHex, uintBytes } from "../../consensus/bytes.ts";
import { type Certificate, decodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import { DecodeError, decode } from "../../consensus/codec.ts";
import { nobleBlsScheme } from "../../consensus/crypto/bls-noble.ts";
import type { SignatureScheme, ValidatorSet } from "../../consensus/types.ts";
import { computeValidatorSetId, createValidatorSet, ValidatorSetError } from "../../consensus/validator-set.ts";
import { type BlockHeader, headerSchema } from "../chain/block.ts";
import { type ResolvedAnchor, resolveAnchor, type TrustAnchor } from "./anchor.ts";
import { LightClientError } from "./errors.ts";
import {
  decodeAccount,
  decodeReceipt,
  decodeStorageValue,
  EMPTY_CODE_HASH,
  EMPTY_TRIE_ROOT,
  type ProvenAccount,
  type ProvenReceipt,
  transactionType,
} from "./rlp.ts";
import { type HttpTransportOptions, httpTransport, RpcCallError, type RpcTransport } from "./transport.ts";
import { orderedTrieKey, secureTrieKey, verifyTrieProof } from "./trie.ts";

/** VM id of the EVM in a header's vmRoots (src/execution/vm.ts EVM_VM). */
export const EVM_VM_ID = 1;
export const DEFAULT_MAX_CACHED_HEADERS = 256;
export const DEFAULT_MAX_CACHED_SETS = 32;
/** Most validator-set changes the client follows; beyond it the history answer is refused as oversized. */
export const MAX_SET_CHANGES = 100_000;
/** Most validators a served set may have (the genesis limit; the certificate bitmap allows 65535). */
export const MAX_SET_VALIDATORS = 4096;

export type BlockSelector = number | "latest";

export type LightClientOptions = ({ readonly rpcUrl: string } | { readonly transport: RpcTransport }) & {
  /** The trusted anchor: chain id, genesis hash and genesis validators (anchorFromGenesis builds it from a file). */
  readonly genesis: TrustAnchor;
  /** BLS verification; default the pure-JS noble scheme (browsers). A Node caller may pass blstScheme. */
  readonly scheme?: SignatureScheme;
  readonly maxCachedHeaders?: number;
  readonly maxCachedSets?: number;
  /** For the HTTP transport made from rpcUrl. */
  readonly http?: HttpTransportOptions;
};

export interface VerifiedSigner {
  /** Index in the signing set's order (the certificate bitmap's bit). */
  readonly index: number;
  readonly address: Hex;
  readonly votingPower: bigint;
  /** From the anchor, when it names this validator. */
  readonly name?: string;
}

export interface VerifiedHeader {
  readonly height: number;
  readonly hash: Hex;
  readonly header: BlockHeader;
  readonly certificate: Certificate;
  /** The set that signed, trusted for this height. */
  readonly validatorSetId: Hex;
  readonly signers: readonly VerifiedSigner[];
  readonly signingPower: bigint;
  readonly totalVotingPower: bigint;
  readonly validatorCount: number;
}

export interface VerifiedAccount extends ProvenAccount {
  readonly address: Hex;
  /** False for an account the proof shows absent (all fields are then the empty account's). */
  readonly exists: boolean;
  readonly header: VerifiedHeader;
}

export interface VerifiedBalance {
  readonly address: Hex;
  readonly balance: bigint;
  readonly header: VerifiedHeader;
}

export interface VerifiedStorage {
  readonly address: Hex;
  /** 32-byte slot. */
  readonly slot: Hex;
  /** 32-byte value (zero when unset). */
  readonly value: Hex;
  readonly header: VerifiedHeader;
}

export interface VerifiedTransaction {
  readonly transactionHash: Hex;
  readonly blockNumber: number;
  readonly blockHash: Hex;
  readonly transactionIndex: number;
  /** The raw signed transaction, proven under transactionsRoot. */
  readonly transaction: Hex;
  /** Decoded from the receipt bytes proven under receiptsRoot. */
  readonly receipt: ProvenReceipt;
  readonly header: VerifiedHeader;
}

interface Epoch {
  readonly fromHeight: number;
  readonly id: Hex;
}

/** A lumia_getCertificate answer whose header and certificate decode and agree, not yet checked against a set. */
interface Certified {
  readonly header: BlockHeader;
  readonly headerHex: Hex;
  readonly hash: Hex;
  readonly certificate: Certificate;
}

export class LightClient {
  private readonly anchor: ResolvedAnchor;
  private readonly scheme: SignatureScheme;
  private readonly maxCachedHeaders: number;
  private readonly maxCachedSets: number;
  /** Heights where the deciding set changes, ascending; the first is the genesis set from height 1. */
  private readonly epochs: Epoch[];
  /** Sets already checked against their (trusted) id, least recently used first. */
  private readonly sets = new Map<Hex, ValidatorSet>();
  private readonly headers = new Map<number, VerifiedHeader>();
  /** The history is known to be complete up to this height (it was fetched after a certificate of it). */
  private historyCoversHeight = 0;
  private anchored = false;
  private trustTail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly transport: RpcTransport,
    anchor: ResolvedAnchor,
    options: LightClientOptions,
  ) {
    this.anchor = anchor;
    this.scheme = options.scheme ?? nobleBlsScheme;
    this.maxCachedHeaders = positive(options.maxCachedHeaders ?? DEFAULT_MAX_CACHED_HEADERS, "maxCachedHeaders");
    this.maxCachedSets = positive(options.maxCachedSets ?? DEFAULT_MAX_CACHED_SETS, "maxCachedSets");
    this.epochs = [{ fromHeight: 1, id: anchor.set.id }];
  }

  /**
   * A client of the node at `rpcUrl` (or behind `transport`) anchored at `genesis`. Checks that the node serves the
   * anchor's chain id (eth_chainId); the genesis hash is checked against the parent of height 1 on first use.
   * Throws RangeError for a malformed anchor, LightClientError for a node of another chain or out of reach.
   */
  static async create(options: LightClientOptions): Promise<LightClient> {
    const anchor = resolveAnchor(options.genesis);
    const transport = "transport" in options ? options.transport : httpTransport(options.rpcUrl, options.http);
    const client = new LightClient(transport, anchor, options);
    const chainId = await client.call("eth_chainId", []);
    if (!isQuantity(chainId) || BigInt(chainId) !== anchor.chainId) {
      throw new LightClientError(
        "wrong_chain",
        `the node serves chain id ${String(chainId)}, the anchor is chain ${anchor.chainId}`,
      );
    }
    return client;
  }

  /** The genesis validator set id (the first trusted set). */
  get genesisValidatorSetId(): Hex {
    return this.anchor.set.id;
  }

  /** The heights from which each trusted set decides, as far as the client has followed them. */
  trustedSets(): readonly { readonly fromHeight: number; readonly id: Hex }[] {
    return this.epochs.map((e) => ({ ...e }));
  }

  /** The members of a set the client trusts (one of trustedSets()), checked against its id when first fetched. */
  async trustedValidatorSet(id: Hex): Promise<ValidatorSet> {
    if (!this.epochs.some((e) => e.id === id)) {
      throw new LightClientError("unknown_validator_set", `validator set ${id} is not one this client trusts`);
    }
    return this.setFor(id);
  }

  /** The certified header of `block` (default: the node's latest), checked as described at the top of this file. */
  async verifiedHeader(block: BlockSelector = "latest"): Promise<VerifiedHeader> {
    if (block !== "latest") checkHeight(block);
    await this.ensureAnchored();
    if (block !== "latest") {
      const cached = this.cachedHeader(block);
      if (cached !== undefined) return cached;
    }
    const raw = await this.call("lumia_getCertificate", [block === "latest" ? "latest" : quantity(block)]);
    if (raw === null) throw new LightClientError("not_found", `the node has no certificate for block ${block}`);
    const certified = this.parseCertified(raw, block === "latest" ? null : block, "lumia_getCertificate");
    return this.verifyWithTrustedSet(certified);
  }

  async verifiedAccount(address: Hex, block: BlockSelector = "latest"): Promise<VerifiedAccount> {
    const who = checkAddress(address);
    const header = await this.verifiedHeader(block);
    const proof = await this.call("eth_getProof", [who, [], quantity(header.height)]);
    return this.checkAccountProof(who, proof, header);
  }

  async verifiedBalance(address: Hex, block: BlockSelector = "latest"): Promise<VerifiedBalance> {
    const account = await this.verifiedAccount(address, block);
    return { address: account.address, balance: account.balance, header: account.header };
  }

  /** The value of storage `slot` (hex of at most 32 bytes) of `address`, proven under the account's storage root. */
  async verifiedStorage(address: Hex, slot: Hex, block: BlockSelector = "latest"): Promise<VerifiedStorage> {
    const who = checkAddress(address);
    if (!SLOT_RE.test(slot)) throw new RangeError(`slot ${slot} is not hex of at most 32 bytes`);
    const slot32 = `0x${slot.slice(2).toLowerCase().padStart(64, "0")}` as Hex;
    const header = await this.verifiedHeader(block);
    const proof = await this.call("eth_getProof", [who, [slot32], quantity(header.height)]);
    const account = await this.checkAccountProof(who, proof, header);
    const entries = (proof as { storageProof?: unknown }).storageProof;
    if (!Array.isArray(entries) || entries.length > 1) {
      throw new LightClientError("bad_response", "eth_getProof: storageProof is not a list of the one asked slot");
    }
    const entry: unknown = entries[0];
    // An absent account has no storage: some nodes (ethereumjs) then send no entry, others (geth) a zero one.
    if (entry === undefined && !account.exists) return { address: who, slot: slot32, value: ZERO_WORD, header };
    if (typeof entry !== "object" || entry === null) {
      throw new LightClientError("bad_response", "eth_getProof: storageProof has no entry for the asked slot");
    }
    const { key, value, proof: nodes } = entry as { key?: unknown; value?: unknown; proof?: unknown };
    if (!isQuantityOrData(key) || BigInt(key) !== BigInt(slot32)) {
      throw new LightClientError("bad_proof", `eth_getProof proves slot ${String(key)}, asked ${slot32}`);
    }
    const result = await verifyTrieProof(account.storageRoot, secureTrieKey(fromHex(slot32)), nodes);
    if (!result.ok) {
      throw new LightClientError("bad_proof", `storage proof of ${who} slot ${slot32}: ${result.message}`);
    }
    const proven = result.value === null ? 0n : decodeStorageValue(result.value);
    if (proven === null) throw new LightClientError("bad_proof", `the proven storage leaf of ${slot32} is not RLP`);
    if (!isQuantityOrData(value) || BigInt(value) !== proven) {
      throw new LightClientError(
        "bad_proof",
        `eth_getProof claims ${who} slot ${slot32} = ${String(value)}, the proof under storage root ` +
          `${account.storageRoot} says ${quantity(proven)}`,
      );
    }
    return { address: who, slot: slot32, value: toHex(uintBytes(proven, 32)), header };
  }

  /** A committed transaction and its receipt, proven under a certified header. */
  async verifiedTransaction(transactionHash: Hex): Promise<VerifiedTransaction> {
    if (!isHex(transactionHash, 32)) throw new RangeError(`transaction hash ${transactionHash} is not 32-byte hex`);
    const hash = transactionHash.toLowerCase() as Hex;
    await this.ensureAnchored();
    const raw = await this.call("lumia_getTransactionCertificate", [hash]);
    if (raw === null) throw new LightClientError("not_found", `the node knows no committed transaction ${hash}`);
    const r = object(raw, "lumia_getTransactionCertificate");
    const blockNumber = quantityField(r, "blockNumber", "lumia_getTransactionCertificate");
    const index = quantityField(r, "transactionIndex", "lumia_getTransactionCertificate");
    const certified = this.parseCertified(r.certificate, blockNumber, "lumia_getTransactionCertificate.certificate");
    if (lower(r.header) !== certified.headerHex) {
      throw new LightClientError("header_mismatch", "the answer's header differs from its certificate's header");
    }
    const header = await this.verifyWithTrustedSet(certified);
    if (lower(r.blockHash) !== header.hash) {
      throw new LightClientError(
        "header_mismatch",
        `blockHash ${String(r.blockHash)}, the certified block is ${header.hash}`,
      );
    }
    if (lower(r.transactionHash) !== hash) {
      throw new LightClientError(
        "bad_proof",
        `the answer is for transaction ${String(r.transactionHash)}, asked ${hash}`,
      );
    }
    const tx = hexField(r, "transaction", "lumia_getTransactionCertificate");
    const receiptBytes = hexField(r, "receipt", "lumia_getTransactionCertificate");
    const txHashOfRaw = toHex(keccak256(fromHex(tx)));
    if (txHashOfRaw !== hash) {
      throw new LightClientError("bad_proof", `the transaction served hashes to ${txHashOfRaw}, asked ${hash}`);
    }
    const key = orderedTrieKey(index);
    await this.checkLeaf(header.header.transactionsRoot, key, r.transactionProof, tx, `transaction ${index}`);
    await this.checkLeaf(header.header.receiptsRoot, key, r.receiptProof, receiptBytes, `receipt ${index}`);
    const receipt = decodeReceipt(fromHex(receiptBytes));
    if (receipt === null) throw new LightClientError("bad_proof", `the proven receipt ${index} is not a typed receipt`);
    const txType = transactionType(fromHex(tx));
    if (receipt.type !== txType) {
      throw new LightClientError("bad_proof", `the proven receipt has type ${receipt.type}, the transaction ${txType}`);
    }
    return {
      transactionHash: hash,
      blockNumber,
      blockHash: header.hash,
      transactionIndex: index,
      transaction: tx,
      receipt,
      header,
    };
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Headers and certificates

  /** Decodes a lumia_getCertificate object and checks everything that needs no validator set. */
  private parseCertified(raw: unknown, height: number | null, what: string): Certified {
    const r = object(raw, what);
    const headerHex = hexField(r, "header", what);
    const certHex = hexField(r, "certificate", what);
    let header: BlockHeader;
    try {
      header = decode(headerSchema, fromHex(headerHex), "header");
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      throw new LightClientError("header_mismatch", `${what}: the header does not decode: ${error.message}`);
    }
    let certificate: Certificate;
    try {
      certificate = decodeCertificate(fromHex(certHex));
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      throw new LightClientError("bad_certificate", `${what}: the certificate does not decode: ${error.message}`);
    }
    const hash = toHex(keccak256(fromHex(headerHex)));
    if (hash !== certificate.blockHash) {
      throw new LightClientError(
        "header_mismatch",
        `${what}: the header hashes to ${hash}, the certificate certifies block ${certificate.blockHash}`,
      );
    }
    if (r.blockHash !== undefined && lower(r.blockHash) !== hash) {
      throw new LightClientError("header_mismatch", `${what}: blockHash ${String(r.blockHash)}, the header is ${hash}`);
    }
    if (header.chainId !== this.anchor.chainId || certificate.chainId !== this.anchor.chainId) {
      throw new LightClientError(
        "wrong_chain",
        `${what}: header of chain ${header.chainId}, certificate of chain ${certificate.chainId}, ` +
          `the anchor is chain ${this.anchor.chainId}`,
      );
    }
    if (header.height !== certificate.height) {
      throw new LightClientError(
        "header_mismatch",
        `${what}: header height ${header.height}, certificate height ${certificate.height}`,
      );
    }
    if (height !== null && header.height !== height) {
      throw new LightClientError("header_mismatch", `${what}: asked block ${height}, got block ${header.height}`);
    }
    return { header, headerHex, hash, certificate };
  }

  /** Checks `c` against the set trusted for its height (following set changes up to it first). */
  private async verifyWithTrustedSet(c: Certified): Promise<VerifiedHeader> {
    const height = c.header.height;
    await this.ensureHistory(height);
    const id = this.trustedIdAt(height);
    const set = await this.setFor(id);
    const verified = this.verifySigned(c, set);
    // The header also names the next height's set: once the history covers it, the two must agree.
    if (height + 1 <= this.historyCoversHeight && this.trustedIdAt(height + 1) !== c.header.nextValidatorSetId) {
      throw new LightClientError(
        "unknown_validator_set",
        `block ${height} commits to next validator set ${c.header.nextValidatorSetId}, the node's set history ` +
          `gives ${this.trustedIdAt(height + 1)} for height ${height + 1}`,
      );
    }
    this.remember(verified);
    return verified;
  }

  /** The certificate of `c` against `set`, which must be the set trusted for its height. */
  private verifySigned(c: Certified, set: ValidatorSet): VerifiedHeader {
    const { header, certificate } = c;
    if (header.validatorSetId !== set.id) {
      throw new LightClientError(
        "unknown_validator_set",
        `block ${header.height} names validator set ${header.validatorSetId}; the set trusted for height ` +
          `${header.height} is ${set.id}`,
      );
    }
    const verdict = verifyCertificate(certificate, set, { scheme: this.scheme, chainId: this.anchor.chainId });
    if (!verdict.ok) {
      throw new LightClientError(
        "bad_certificate",
        `certificate of block ${header.height} (${c.hash}): ${verdict.code}: ${verdict.message}`,
      );
    }
    const stateRoot = globalStateRoot(header.vmRoots);
    if (stateRoot !== header.stateRoot) {
      throw new LightClientError(
        "header_mismatch",
        `block ${header.height}: stateRoot ${header.stateRoot}, its vmRoots give ${stateRoot ?? "a malformed list"}`,
      );
    }
    const signers = verdict.signers.map((index) => {
      const v = set.validators[index];
      if (v === undefined) throw new Error(`verified signer ${index} is outside the set`);
      const name = this.anchor.names.get(v.address);
      return { index, address: v.address, votingPower: v.votingPower, ...(name === undefined ? {} : { name }) };
    });
    return {
      height: header.height,
      hash: c.hash,
      header,
      certificate,
      validatorSetId: set.id,
      signers,
      signingPower: verdict.signingPower,
      totalVotingPower: set.totalVotingPower,
      validatorCount: set.validators.length,
    };
  }

  private cachedHeader(height: number): VerifiedHeader | undefined {
    const found = this.headers.get(height);
    if (found !== undefined) {
      this.headers.delete(height);
      this.headers.set(height, found);
    }
    return found;
  }

  private remember(header: VerifiedHeader): void {
    this.headers.delete(header.height);
    this.headers.set(header.height, header);
    while (this.headers.size > this.maxCachedHeaders) this.headers.delete(this.headers.keys().next().value as number);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Trust: the genesis anchor and validator-set changes

  /** Runs `fn` after every earlier trust update: epochs only grow, one follower at a time. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.trustTail.then(fn, fn);
    this.trustTail = next.catch(() => undefined);
    return next;
  }

  /** Height 1 is the genesis set's and its parent is the genesis hash: the node's chain is the anchor's. */
  private ensureAnchored(): Promise<void> {
    if (this.anchored) return Promise.resolve();
    return this.serially(async () => {
      if (this.anchored) return;
      const raw = await this.call("lumia_getCertificate", [quantity(1)]);
      if (raw === null) throw new LightClientError("not_found", "the node has no certified block 1 yet");
      const c = this.parseCertified(raw, 1, "lumia_getCertificate(1)");
      if (c.header.parentHash !== this.anchor.genesisHash) {
        throw new LightClientError(
          "wrong_chain",
          `block 1's parent is ${c.header.parentHash}, the anchor's genesis hash is ${this.anchor.genesisHash}`,
        );
      }
      if (c.header.validatorSetId !== this.anchor.set.id) {
        throw new LightClientError(
          "wrong_chain",
          `block 1 is decided by validator set ${c.header.validatorSetId}, the anchor's genesis set is ` +
            `${this.anchor.set.id}`,
        );
      }
      this.remember(this.verifySigned(c, this.anchor.set));
      this.anchored = true;
    });
  }

  /**
   * Makes the epochs complete up to `height`: fetches the node's set history and follows each new change up to it.
   * Changes above `height` wait until a later height is asked for, so a node's bad future cannot block its past.
   */
  private ensureHistory(height: number): Promise<void> {
    if (height <= this.historyCoversHeight) return Promise.resolve();
    return this.serially(async () => {
      if (height <= this.historyCoversHeight) return;
      const entries = parseHistory(await this.call("lumia_getValidatorSetHistory", []));
      const genesis = entries[0];
      if (genesis === undefined || genesis.fromHeight !== 1 || genesis.id !== this.anchor.set.id) {
        throw new LightClientError(
          "wrong_chain",
          `the node's set history starts with ${genesis?.id} at ${genesis?.fromHeight}, the anchor's genesis set ` +
            `is ${this.anchor.set.id} from height 1`,
        );
      }
      for (const [i, known] of this.epochs.entries()) {
        const served = entries[i];
        if (served === undefined || served.fromHeight !== known.fromHeight || served.id !== known.id) {
          throw new LightClientError(
            "unknown_validator_set",
            `the node's set history rewrites change #${i} (set ${known.id} from height ${known.fromHeight}) ` +
              `as ${served === undefined ? "nothing" : `${served.id} from ${served.fromHeight}`}`,
          );
        }
      }
      for (const entry of entries.slice(this.epochs.length)) {
        if (entry.fromHeight > height) break;
        await this.followChange(entry);
      }
      this.historyCoversHeight = Math.max(this.historyCoversHeight, height);
    });
  }

  /** Trusts `change.id` from `change.fromHeight` once the header before it commits to it. */
  private async followChange(change: Epoch): Promise<void> {
    const previous = this.epochs[this.epochs.length - 1] as Epoch;
    const before = change.fromHeight - 1;
    const raw = await this.call("lumia_getCertificate", [quantity(before)]);
    if (raw === null) {
      throw new LightClientError("not_found", `the node has no certificate for block ${before}, before a set change`);
    }
    const c = this.parseCertified(raw, before, `lumia_getCertificate(${before})`);
    const header = this.verifySigned(c, await this.setFor(previous.id));
    if (header.header.nextValidatorSetId !== change.id) {
      throw new LightClientError(
        "unknown_validator_set",
        `the node reports a change to validator set ${change.id} at height ${change.fromHeight}, but the ` +
          `certified block ${before} commits to next set ${header.header.nextValidatorSetId}`,
      );
    }
    await this.setFor(change.id);
    this.epochs.push(change);
    this.remember(header);
  }

  private trustedIdAt(height: number): Hex {
    let lo = 0;
    let hi = this.epochs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.epochs[mid] as Epoch).fromHeight <= height) lo = mid;
      else hi = mid - 1;
    }
    return (this.epochs[lo] as Epoch).id;
  }

  /** The members of a set whose id is already trusted, fetched and checked against the id when not cached. */
  private async setFor(id: Hex): Promise<ValidatorSet> {
    if (id === this.anchor.set.id) return this.anchor.set;
    const cached = this.sets.get(id);
    if (cached !== undefined) {
      this.sets.delete(id);
      this.sets.set(id, cached);
      return cached;
    }
    const raw = await this.call("lumia_getValidatorSet", [id]);
    if (raw === null) throw new LightClientError("not_found", `the node does not serve validator set ${id}`);
    const r = object(raw, "lumia_getValidatorSet");
    const list = r.validators;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_SET_VALIDATORS) {
      throw new LightClientError("bad_response", `lumia_getValidatorSet(${id}): validators is not a list of 1..4096`);
    }
    const members = list.map((v: unknown, i: number) => {
      const m = object(v, `lumia_getValidatorSet validators[${i}]`);
      if (!isHex(m.publicKey, 48) || !isQuantity(m.votingPower)) {
        throw new LightClientError("bad_response", `lumia_getValidatorSet validators[${i}]: bad publicKey/votingPower`);
      }
      return { publicKey: fromHex(m.publicKey), votingPower: BigInt(m.votingPower) };
    });
    let served: Hex;
    let set: ValidatorSet;
    try {
      served = computeValidatorSetId(members);
      set = createValidatorSet(members);
    } catch (error) {
      if (!(error instanceof ValidatorSetError)) throw error;
      throw new LightClientError("bad_validator_set", `validator set ${id} as served is invalid: ${error.message}`);
    }
    if (served !== id || set.id !== id) {
      throw new LightClientError(
        "bad_validator_set",
        `the members served for validator set ${id} hash to ${served}${set.id === served ? "" : ` (in set order ${set.id})`}`,
      );
    }
    this.sets.set(id, set);
    while (this.sets.size > this.maxCachedSets) this.sets.delete(this.sets.keys().next().value as Hex);
    return set;
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Proofs

  private async checkAccountProof(address: Hex, raw: unknown, header: VerifiedHeader): Promise<VerifiedAccount> {
    const r = object(raw, "eth_getProof");
    if (typeof r.address !== "string" || r.address.toLowerCase() !== address) {
      throw new LightClientError("bad_proof", `eth_getProof answers for ${String(r.address)}, asked ${address}`);
    }
    const evmRoot = header.header.vmRoots.find((v) => v.vm === EVM_VM_ID)?.root;
    if (evmRoot === undefined) {
      throw new LightClientError("bad_proof", `block ${header.height} commits to no EVM state root`);
    }
    const result = await verifyTrieProof(evmRoot, secureTrieKey(fromHex(address)), r.accountProof);
    if (!result.ok) throw new LightClientError("bad_proof", `account proof of ${address}: ${result.message}`);
    let account: ProvenAccount;
    if (result.value === null) {
      account = { nonce: 0n, balance: 0n, storageRoot: EMPTY_TRIE_ROOT, codeHash: EMPTY_CODE_HASH };
    } else {
      const decoded = decodeAccount(result.value);
      if (decoded === null) throw new LightClientError("bad_proof", `the proven leaf of ${address} is not an account`);
      account = decoded;
    }
    const claims: [string, unknown, bigint | Hex][] = [
      ["balance", r.balance, account.balance],
      ["nonce", r.nonce, account.nonce],
      ["storageHash", r.storageHash, account.storageRoot],
      ["codeHash", r.codeHash, account.codeHash],
    ];
    for (const [field, claimed, proven] of claims) {
      const same =
        typeof proven === "bigint"
          ? isQuantityOrData(claimed) && BigInt(claimed) === proven
          : typeof claimed === "string" && claimed.toLowerCase() === proven;
      if (!same) {
        throw new LightClientError(
          "bad_proof",
          `eth_getProof claims ${field} ${String(claimed)} for ${address}, the proof under the certified EVM root ` +
            `${evmRoot} of block ${header.height} says ${typeof proven === "bigint" ? quantity(proven) : proven}`,
        );
      }
    }
    return { address, exists: result.value !== null, ...account, header };
  }

  private async checkLeaf(root: Hex, key: Uint8Array, proof: unknown, expected: Hex, what: string): Promise<void> {
    const result = await verifyTrieProof(root, key, proof);
    if (!result.ok) throw new LightClientError("bad_proof", `${what}: ${result.message}`);
    if (result.value === null) {
      throw new LightClientError("bad_proof", `${what}: the proof shows no entry at that index under ${root}`);
    }
    const proven = toHex(result.value);
    if (proven !== expected.toLowerCase()) {
      throw new LightClientError(
        "bad_proof",
        `${what}: the bytes served differ from the ones proven under root ${root} ` +
          `(served ${short(expected)}, proven ${short(proven)})`,
      );
    }
  }

  private async call(method: string, params: readonly unknown[]): Promise<unknown> {
    try {
      return await this.transport.request(method, params);
    } catch (error) {
      // A block above the head is an error in JSON-RPC ("header not found"), not a lie.
      if (error instanceof RpcCallError && error.rpcCode === -32000 && /not found/i.test(error.message)) {
        throw new LightClientError("not_found", error.message, { cause: error });
      }
      if (error instanceof LightClientError) throw error;
      throw new LightClientError("rpc_error", `${method}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Pure helpers

/**
 * keccak256 over (vm u8 || root bytes32)* sorted by vm id, as src/execution/vm.ts globalStateRoot computes it (that
 * module is the node's; the light client keeps its own copy, tested equal). Null for a malformed list.
 */
export function globalStateRoot(roots: readonly { readonly vm: number; readonly root: Hex }[]): Hex | null {
  if (roots.length === 0) return null;
  let previous = -1;
  for (const { vm, root } of roots) {
    if (!Number.isInteger(vm) || vm <= previous || vm > 255 || !isHex(root, 32)) return null;
    previous = vm;
  }
  return toHex(keccak256(concatBytes(...roots.flatMap(({ vm, root }) => [Uint8Array.of(vm), fromHex(root)]))));
}

function parseHistory(raw: unknown): Epoch[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_SET_CHANGES) {
    throw new LightClientError("bad_response", `lumia_getValidatorSetHistory: not a list of 1..${MAX_SET_CHANGES}`);
  }
  const out: Epoch[] = [];
  for (const [i, item] of raw.entries()) {
    const e = object(item, `lumia_getValidatorSetHistory[${i}]`);
    const fromHeight = quantityField(e, "fromHeight", `lumia_getValidatorSetHistory[${i}]`);
    if (!isHex(e.id, 32)) throw new LightClientError("bad_response", `lumia_getValidatorSetHistory[${i}].id`);
    const id = e.id.toLowerCase() as Hex;
    const prev = out[out.length - 1];
    if (prev !== undefined && (fromHeight <= prev.fromHeight || id === prev.id)) {
      throw new LightClientError(
        "bad_response",
        `lumia_getValidatorSetHistory[${i}]: ${id} from ${fromHeight} does not follow ${prev.id} from ${prev.fromHeight}`,
      );
    }
    out.push({ fromHeight, id });
  }
  return out;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new LightClientError(
      "bad_response",
      `${what}: expected an object, got ${String(JSON.stringify(value)).slice(0, 80)}`,
    );
  }
  return value as Record<string, unknown>;
}

function hexField(r: Record<string, unknown>, field: string, what: string): Hex {
  const v = r[field];
  if (!isHex(v)) throw new LightClientError("bad_response", `${what}.${field} is not hex bytes`);
  return v.toLowerCase() as Hex;
}

function quantityField(r: Record<string, unknown>, field: string, what: string): number {
  const v = r[field];
  if (!isQuantity(v) || BigInt(v) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LightClientError("bad_response", `${what}.${field} is not a hex quantity`);
  }
  return Number(BigInt(v));
}

const ZERO_WORD: Hex = `0x${"00".repeat(32)}`;
const SLOT_RE = /^0x[0-9a-fA-F]{1,64}$/;
const QUANTITY_RE = /^0x(0|[1-9a-fA-F][0-9a-fA-F]{0,63})$/;
const DATA_RE = /^0x[0-9a-fA-F]{0,64}$/;

function isQuantity(v: unknown): v is Hex {
  return typeof v === "string" && QUANTITY_RE.test(v);
}

/** A quantity, or hex data of at most 32 bytes (some nodes pad proof values). */
function isQuantityOrData(v: unknown): v is Hex {
  return typeof v === "string" && v.length > 2 && DATA_RE.test(v);
}

/** Hex from a node is compared case-insensitively: only its bytes are evidence. */
function lower(value: unknown): string | undefined {
  return typeof value === "string" ? value.toLowerCase() : undefined;
}

function quantity(n: number | bigint): Hex {
  return `0x${n.toString(16)}`;
}

function checkHeight(height: number): void {
  if (!Number.isSafeInteger(height) || height < 1) throw new RangeError(`block ${height} is not a height >= 1`);
}

function checkAddress(address: Hex): Hex {
  if (!isHex(address, 20)) throw new RangeError(`address ${address} is not 20-byte hex`);
  return address.toLowerCase() as Hex;
}

function positive(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${n}`);
  return n;
}

function short(hex: Hex): string {
  return hex.length > 42 ? `${hex.slice(0, 22)}…${hex.slice(-8)} (${(hex.length - 2) / 2} bytes)` : hex;
}
