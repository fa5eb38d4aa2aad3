// A synthetic certified chain for the light-client tests, served by the node's real JSON-RPC server
// (src/rpc/server.ts + src/rpc/methods.ts) over an RpcBackend built here: real BLS keys (blst) and certificates
// (consensus/certificate.ts buildCertificate), headers whose roots are the node's own functions (orderedTrieRoot,
// globalStateRoot), EVM state in a real MerkleStateManager (its proofs are what the node's eth_getProof returns) and
// viem-signed transactions with typed receipts. Validator sets change twice: A decides 1..4, B 5..8, C from 9.
import { RLP } from "@ethereumjs/rlp";
import { getMerkleStateProof, MerkleStateManager } from "@ethereumjs/statemanager";
import { Account, createAddressFromString } from "@ethereumjs/util";
import { privateKeyToAccount } from "viem/accounts";
import { concatBytes, fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { buildCertificate, type Certificate, encodeCertificate } from "../../consensus/certificate.ts";
import { voteDigest } from "../../consensus/signing.ts";
import type { SignedVote, Signer, ValidatorSet } from "../../consensus/types.ts";
import { createValidatorSet, hasQuorum } from "../../consensus/validator-set.ts";
import {
  type Block,
  type BlockHeader,
  blockHash,
  EMPTY_BLOOM,
  EMPTY_DEPOSITS_HASH,
  ZERO_HASH,
} from "../../src/chain/block.ts";
import { orderedTrieRoot } from "../../src/chain/ordered-trie.ts";
import type { StoredReceipt } from "../../src/chain/receipts.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { globalStateRoot } from "../../src/execution/vm.ts";
import type { TrustAnchor } from "../../src/light-client/anchor.ts";
import type {
  CommittedEvent,
  RpcAccount,
  RpcAccountProof,
  RpcBackend,
  RpcCallResult,
  RpcCertificate,
  RpcPendingTx,
  RpcSendResult,
  RpcValidatorSet,
  RpcValidatorSetChange,
} from "../../src/rpc/backend.ts";
import { logsBloom } from "../../src/rpc/bloom.ts";

export const CHAIN_ID = 777_001n;
export const GENESIS_HASH: Hex = toHex(keccak256(utf8("light-client test genesis")));
export const HEAD = 12;
export const GWEI = 1_000_000_000n;
export const ETHER = 10n ** 18n;

export const alice = privateKeyToAccount(`0x${"a1".repeat(32)}`);
export const bob = privateKeyToAccount(`0x${"b2".repeat(32)}`);
/** A contract-like account with code and storage: slot 0 = 42, slot 7 = the height. */
export const TOKEN: Hex = "0x00000000000000000000000000000000c0ffee00";
export const TOKEN_CODE: Hex = "0x600160005500";
/** Bob's account appears at height 3: absent before. */
export const BOB_FROM_HEIGHT = 3;

export interface TestSet {
  readonly name: string;
  readonly set: ValidatorSet;
  readonly signer: (publicKey: Uint8Array) => Signer;
}

function makeSet(name: string, members: readonly (readonly [scalar: number, power: bigint])[]): TestSet {
  const signers = new Map<Hex, Signer>();
  const inputs = members.map(([scalar, votingPower]) => {
    const signer = createBlstSigner(uintBytes(scalar, 32));
    signers.set(toHex(signer.publicKey), signer);
    return { publicKey: new Uint8Array(signer.publicKey), votingPower };
  });
  return {
    name,
    set: createValidatorSet(inputs),
    signer: (publicKey) => {
      const s = signers.get(toHex(publicKey));
      if (s === undefined) throw new Error(`set ${name} has no signer for ${toHex(publicKey).slice(0, 14)}`);
      return s;
    },
  };
}

export const SET_A = makeSet("A", [
  [1, 10n],
  [2, 10n],
  [3, 10n],
  [4, 10n],
]);
export const SET_B = makeSet("B", [
  [3, 10n],
  [4, 20n],
  [5, 30n],
  [6, 40n],
]);
export const SET_C = makeSet("C", [
  [5, 50n],
  [6, 50n],
  [7, 50n],
]);
/** Keys that never decide anything on the honest chain: the forger of the "uncommitted change" chain. */
export const SET_D = makeSet("D", [
  [21, 10n],
  [22, 10n],
  [23, 10n],
]);

export function honestSetAt(height: number): TestSet {
  return height <= 4 ? SET_A : height <= 8 ? SET_B : SET_C;
}

export function anchorOf(set: TestSet = SET_A, overrides: Partial<TrustAnchor> = {}): TrustAnchor {
  return {
    chainId: CHAIN_ID,
    genesisHash: GENESIS_HASH,
    validators: set.set.validators.map((v, i) => ({
      publicKey: v.publicKey,
      votingPower: v.votingPower,
      name: `${set.name}${i}`,
    })),
    ...overrides,
  };
}

export interface ChainOptions {
  /** The set deciding each height (default: A, B from 5, C from 9). */
  readonly setAt?: (height: number) => TestSet;
  /** The set a header names as next (default: the one deciding height + 1). */
  readonly nextSetOf?: (height: number) => TestSet;
}

/** Precommits of `signers` (indices in the set of `height`) aggregated into a certificate; not checked for quorum. */
export function certificateOf(
  ts: TestSet,
  height: number,
  hash: Hex,
  signerIndices: readonly number[],
  chainId: bigint = CHAIN_ID,
): Certificate {
  const votes: SignedVote[] = signerIndices.map((validatorIndex) => {
    const v = ts.set.validators[validatorIndex];
    if (v === undefined) throw new Error(`no validator ${validatorIndex}`);
    const signature = ts.signer(v.publicKey).sign(voteDigest(chainId, "precommit", height, 0, hash));
    return { type: "precommit", height, round: 0, value: hash, validatorIndex, signature: new Uint8Array(signature) };
  });
  const quorum = hasQuorum(
    signerIndices.reduce((sum, i) => sum + (ts.set.validators[i]?.votingPower ?? 0n), 0n),
    ts.set.totalVotingPower,
  );
  if (quorum) return buildCertificate(chainId, ts.set, votes, blstScheme);
  // Below quorum buildCertificate refuses (a driver bug there): assemble what a lying node would serve by hand.
  const signers = new Uint8Array(Math.ceil(ts.set.validators.length / 8));
  for (const i of signerIndices) signers[i >> 3] = (signers[i >> 3] as number) | (1 << (i & 7));
  return {
    chainId,
    height,
    round: 0,
    blockHash: hash,
    validatorSetId: ts.set.id,
    validatorCount: ts.set.validators.length,
    signers,
    signature: new Uint8Array(blstScheme.aggregateSignatures(votes.map((v) => v.signature))),
  };
}

interface Committed {
  readonly hash: Hex;
  readonly block: Block;
  readonly certificate: Certificate;
  readonly receipts: readonly StoredReceipt[];
  readonly stateRoot: Uint8Array;
  readonly setName: string;
}

/** A transfer or a call with a log, signed by alice, and its (made-up but well-formed) execution result. */
interface PlannedTx {
  readonly raw: Hex;
  readonly hash: Hex;
  readonly type: number;
  readonly to: Hex;
  readonly status: 0 | 1;
  readonly gasUsed: bigint;
  readonly logs: readonly { readonly address: Hex; readonly topics: readonly Hex[]; readonly data: Hex }[];
}

/** Heights with transactions: 2 (two), 6 (three, one failing, one with a log), 10 (one legacy). */
async function plannedTransactions(height: number, nonce: number): Promise<PlannedTx[]> {
  const chainId = Number(CHAIN_ID);
  const fee = { chainId, maxFeePerGas: 3n * GWEI, maxPriorityFeePerGas: GWEI };
  const out: PlannedTx[] = [];
  const add = async (raw: Hex, to: Hex, type: number, status: 0 | 1, logs: PlannedTx["logs"]) => {
    out.push({
      raw,
      hash: toHex(keccak256(fromHex(raw))),
      type,
      to,
      status,
      gasUsed: 21_000n + 1000n * BigInt(out.length),
      logs,
    });
  };
  if (height === 2) {
    for (let i = 0; i < 2; i++) {
      const raw = await alice.signTransaction({
        type: "eip1559",
        nonce: nonce + i,
        to: bob.address,
        value: 5n,
        gas: 21_000n,
        ...fee,
      });
      await add(raw, bob.address, 2, 1, []);
    }
  } else if (height === 6) {
    const transfer = await alice.signTransaction({
      type: "eip1559",
      nonce,
      to: bob.address,
      value: 7n,
      gas: 21_000n,
      ...fee,
    });
    await add(transfer, bob.address, 2, 1, []);
    const failing = await alice.signTransaction({
      type: "eip2930",
      chainId,
      nonce: nonce + 1,
      to: TOKEN,
      gas: 90_000n,
      gasPrice: 3n * GWEI,
      data: "0xdead",
    });
    await add(failing, TOKEN, 1, 0, []);
    const logging = await alice.signTransaction({
      type: "eip1559",
      nonce: nonce + 2,
      to: TOKEN,
      gas: 90_000n,
      data: "0xbeef",
      ...fee,
    });
    await add(logging, TOKEN, 2, 1, [
      { address: TOKEN, topics: [toHex(keccak256(utf8("Ping(uint256)"))), toHex(uintBytes(6, 32))], data: "0x0102" },
    ]);
  } else if (height === 10) {
    const legacy = await alice.signTransaction({
      type: "legacy",
      chainId,
      nonce,
      to: bob.address,
      value: 9n,
      gas: 21_000n,
      gasPrice: 3n * GWEI,
    });
    await add(legacy, bob.address, 0, 1, []);
  }
  return out;
}

function encodeTypedReceipt(type: number, status: 0 | 1, cumulative: bigint, logs: PlannedTx["logs"]): Uint8Array {
  const body = RLP.encode([
    status === 1 ? Uint8Array.of(1) : new Uint8Array(0),
    cumulative,
    fromHex(logsBloom(logs)),
    logs.map((l) => [fromHex(l.address), l.topics.map((t) => fromHex(t)), fromHex(l.data)]),
  ]);
  return type === 0 ? body : concatBytes(Uint8Array.of(type), body);
}

/** One-at-a-time access to the state manager (its root is moved to the height a read asks for). */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export class SyntheticChain implements RpcBackend {
  readonly chainId = CHAIN_ID;
  readonly clientVersion = "lumia-dcn/light-client-test";
  readonly committed = new Map<number, Committed>();
  readonly byHash = new Map<Hex, number>();
  readonly locations = new Map<Hex, { height: number; index: number }>();
  readonly transactions: PlannedTx[] = [];
  private readonly lock = new Lock();

  private constructor(
    private readonly sm: MerkleStateManager,
    private readonly setAt: (height: number) => TestSet,
  ) {}

  static async build(opts: ChainOptions = {}): Promise<SyntheticChain> {
    const setAt = opts.setAt ?? honestSetAt;
    const nextSetOf = opts.nextSetOf ?? ((h: number) => setAt(h + 1));
    const sm = new MerkleStateManager();
    const chain = new SyntheticChain(sm, setAt);
    const aliceAddress = createAddressFromString(alice.address);
    const token = createAddressFromString(TOKEN);
    await sm.putAccount(token, new Account(0n, 0n));
    await sm.putCode(token, fromHex(TOKEN_CODE));
    await sm.putStorage(token, fromHex(toHex(uintBytes(0, 32))), Uint8Array.of(42));
    let parentHash = GENESIS_HASH;
    let lastCertificate: Uint8Array = new Uint8Array(0);
    let nonce = 0;
    for (let height = 1; height <= HEAD; height++) {
      const txs = await plannedTransactions(height, nonce);
      nonce += txs.length;
      await sm.putAccount(aliceAddress, new Account(BigInt(nonce), 100n * ETHER - BigInt(height) * GWEI));
      await sm.putStorage(token, fromHex(toHex(uintBytes(7, 32))), uintBytes(height, 1));
      if (height >= BOB_FROM_HEIGHT) {
        await sm.putAccount(createAddressFromString(bob.address), new Account(0n, BigInt(height) * 1000n));
      }
      const evmRoot = await sm.getStateRoot();
      let cumulative = 0n;
      const receipts: StoredReceipt[] = txs.map((tx) => {
        cumulative += tx.gasUsed;
        return {
          transactionHash: tx.hash,
          type: tx.type,
          from: alice.address.toLowerCase() as Hex,
          to: tx.to.toLowerCase() as Hex,
          contractAddress: null,
          status: tx.status,
          gasUsed: tx.gasUsed,
          cumulativeGasUsed: cumulative,
          effectiveGasPrice: 2n * GWEI,
          logs: tx.logs,
          revertReason: "",
          encoded: encodeTypedReceipt(tx.type, tx.status, cumulative, tx.logs),
        };
      });
      const vmRoots = [{ vm: 1, root: toHex(evmRoot) }];
      const ts = setAt(height);
      const header: BlockHeader = {
        chainId: CHAIN_ID,
        height,
        timestampMs: 1_767_225_600_000 + height * 1000,
        parentHash,
        l1Origin: { number: 0n, hash: ZERO_HASH },
        proposer: ts.set.validators[0]?.address ?? "0x",
        validatorSetId: ts.set.id,
        nextValidatorSetId: nextSetOf(height).set.id,
        lastCertificateHash: height === 1 ? ZERO_HASH : toHex(keccak256(lastCertificate)),
        depositsHash: EMPTY_DEPOSITS_HASH,
        nextDepositNonce: 0n,
        transactionsRoot: orderedTrieRoot(txs.map((t) => fromHex(t.raw))),
        receiptsRoot: orderedTrieRoot(receipts.map((r) => r.encoded)),
        stateRoot: globalStateRoot(vmRoots),
        gasLimit: 30_000_000n,
        gasUsed: cumulative,
        baseFeePerGas: GWEI,
        logsBloom: txs.length === 0 ? EMPTY_BLOOM : logsBloom(txs.flatMap((t) => t.logs)),
        vmRoots,
      };
      const hash = blockHash(header);
      const all = ts.set.validators.map((_, i) => i);
      // Every third height one validator stays silent when the rest still hold a quorum: bitmaps with gaps.
      const withoutLast = all.slice(0, -1);
      const quorumWithout = hasQuorum(
        withoutLast.reduce((s, i) => s + (ts.set.validators[i]?.votingPower ?? 0n), 0n),
        ts.set.totalVotingPower,
      );
      const signers = height % 3 === 0 && quorumWithout ? withoutLast : all;
      const certificate = certificateOf(ts, height, hash, signers);
      chain.committed.set(height, {
        hash,
        block: { header, lastCertificate, deposits: [], transactions: txs.map((t) => fromHex(t.raw)) },
        certificate,
        receipts,
        stateRoot: evmRoot,
        setName: ts.name,
      });
      chain.byHash.set(hash, height);
      for (const [index, tx] of txs.entries()) {
        chain.locations.set(tx.hash, { height, index });
        chain.transactions.push(tx);
      }
      parentHash = hash;
      lastCertificate = encodeCertificate(certificate);
    }
    return chain;
  }

  // ---- RpcBackend: what the light client uses

  headHeight(): number {
    return HEAD;
  }

  async blockByHeight(height: number): Promise<{ hash: Hex; block: Block } | undefined> {
    const c = this.committed.get(height);
    return c === undefined ? undefined : { hash: c.hash, block: c.block };
  }

  async blockByHash(hash: Hex): Promise<{ hash: Hex; block: Block } | undefined> {
    const height = this.byHash.get(hash);
    return height === undefined ? undefined : this.blockByHeight(height);
  }

  async receipts(height: number): Promise<readonly StoredReceipt[] | undefined> {
    return this.committed.get(height)?.receipts;
  }

  async transactionLocation(hash: Hex): Promise<{ height: number; index: number } | undefined> {
    return this.locations.get(hash);
  }

  private atHeight<T>(height: number, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(async () => {
      const root = this.committed.get(height)?.stateRoot;
      if (root === undefined) throw new Error(`no state at height ${height}`);
      await this.sm.setStateRoot(root);
      return fn();
    });
  }

  proof(height: number, address: Hex, slots: readonly Hex[]): Promise<RpcAccountProof> {
    return this.atHeight(height, async () => {
      const p = await getMerkleStateProof(
        this.sm,
        createAddressFromString(address),
        slots.map((s) => fromHex(s)),
      );
      return p as unknown as RpcAccountProof;
    });
  }

  account(height: number, address: Hex): Promise<RpcAccount | null> {
    return this.atHeight(height, async () => {
      const a = await this.sm.getAccount(createAddressFromString(address));
      if (a === undefined) return null;
      return { nonce: a.nonce, balance: a.balance, codeHash: toHex(a.codeHash), storageRoot: toHex(a.storageRoot) };
    });
  }

  code(height: number, address: Hex): Promise<Hex> {
    return this.atHeight(height, async () => toHex(await this.sm.getCode(createAddressFromString(address))));
  }

  storageAt(height: number, address: Hex, slot: Hex): Promise<Hex> {
    return this.atHeight(height, async () => {
      const v = await this.sm.getStorage(createAddressFromString(address), fromHex(slot));
      return `0x${toHex(v).slice(2).padStart(64, "0")}` as Hex;
    });
  }

  async certificate(height: number): Promise<RpcCertificate | undefined> {
    const c = this.committed.get(height);
    if (c === undefined) return undefined;
    const ts = this.setAt(height);
    const signers: number[] = [];
    let signingPower = 0n;
    ts.set.validators.forEach((v, i) => {
      if ((((c.certificate.signers[i >> 3] as number) >> (i & 7)) & 1) === 1) {
        signers.push(i);
        signingPower += v.votingPower;
      }
    });
    return {
      encoded: toHex(encodeCertificate(c.certificate)),
      height,
      round: c.certificate.round,
      blockHash: c.hash,
      validatorSetId: ts.set.id,
      signers,
      signingPower,
      totalPower: ts.set.totalVotingPower,
    };
  }

  async validatorSet(id: Hex): Promise<RpcValidatorSet | undefined> {
    const ts = [SET_A, SET_B, SET_C, SET_D].find((s) => s.set.id === id);
    if (ts === undefined) return undefined;
    return {
      id,
      totalVotingPower: ts.set.totalVotingPower,
      validators: ts.set.validators.map((v) => ({
        address: v.address,
        publicKey: toHex(v.publicKey),
        votingPower: v.votingPower,
      })),
    };
  }

  async validatorSetHistory(): Promise<readonly RpcValidatorSetChange[]> {
    const out: RpcValidatorSetChange[] = [];
    for (let height = 1; height <= HEAD; height++) {
      const id = this.setAt(height).set.id;
      if (out[out.length - 1]?.id !== id) out.push({ fromHeight: height, id });
    }
    return out;
  }

  status(): unknown {
    return { headHeight: HEAD };
  }

  // ---- RpcBackend: the rest, which a read-only certified chain does not serve

  async call(): Promise<RpcCallResult> {
    return { status: 0, returnData: "0x", gasUsed: 0n, revertReason: null, error: "calls are not served here" };
  }

  nextBaseFee(): bigint {
    return GWEI;
  }

  async sendRawTransaction(): Promise<RpcSendResult> {
    return { ok: false, code: "malformed", message: "this test chain accepts no transactions" };
  }

  async pendingNonce(): Promise<bigint> {
    return 0n;
  }

  pendingTransaction(): RpcPendingTx | undefined {
    return undefined;
  }

  onCommitted(_listener: (event: CommittedEvent) => void): () => void {
    return () => undefined;
  }

  onPendingTransaction(_listener: (tx: RpcPendingTx) => void): () => void {
    return () => undefined;
  }
}
