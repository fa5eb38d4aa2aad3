// Node-state scaffolding shared by the block-level SVM tests: real stores in temp dirs (openNodeState), commits with a
// certificate shaped like the node's (stores do not verify signatures), and the Ethereum and Solana JSON-RPC methods
// over a node state, called in-process.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { Hex } from "../../consensus/bytes.ts";
import { buildCertificate, type Certificate } from "../../consensus/certificate.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import { nextHeightValidatorSet } from "../../consensus/validator-set.ts";
import { type Block, blockHash } from "../../src/chain/block.ts";
import { buildGenesis, type Genesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { describeKeys, generateKeys, type OperatorKeys } from "../../src/keys/keys.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { createRpcBackend } from "../../src/node/rpc-backend.ts";
import { type MethodDef, RequestHandler } from "../../src/rpc/dispatch.ts";
import { createMethods } from "../../src/rpc/methods.ts";
import { createSolanaMethods } from "../../src/rpc/solana.ts";
import { createSolanaRpcBackend } from "../../src/rpc/solana-backend.ts";

const PARAMS = { maxBlockBytes: 1 << 20, maxBlockTransactions: 1_000, maxClockDriftMs: 60_000 };

type Methods = ReadonlyMap<
  string,
  { run(params: unknown): Promise<{ ok: true; result: unknown } | { ok: false; error: { message: string } }> }
>;

/**
 * A genesis with one validator (`keys`, default a fresh key) and `funded` holding `balance` wei, and `svm.address`
 * holding `svm.lamports` when given: a subnet of one for block tests.
 */
export function singleValidatorGenesis(
  chainId: bigint,
  funded: Hex,
  balance: bigint,
  svm?: { readonly address: string; readonly lamports: bigint },
  keys: OperatorKeys = generateKeys(),
): Genesis {
  return parseGenesis(
    buildGenesis({
      chainId,
      genesisTimeMs: 1_000,
      validators: [{ name: "v0", votingPower: 10n, identity: describeKeys(keys) }],
      execution: { alloc: [{ address: funded, balance: balance.toString() }] },
      ...(svm === undefined ? {} : { svm: { alloc: [{ address: svm.address, lamports: svm.lamports.toString() }] } }),
    }),
  );
}

/** Node states of one genesis in temp dirs; close() closes them and removes the dirs. */
export class NodeStates {
  private readonly dirs: string[] = [];
  private readonly open: NodeState[] = [];

  /**
   * With the validator's BLS key (`consensusKey`), commits carry real certificates (a light client verifies them);
   * without, certificates shaped like the node's with a zero signature (the stores do not verify signatures).
   */
  constructor(
    private readonly genesis: Genesis,
    private readonly consensusKey?: Uint8Array,
  ) {}

  /** A state in a new temp dir, or reopened in `dir` (a restart). */
  async state(dir?: string): Promise<{ state: NodeState; dir: string }> {
    const path = dir ?? (await mkdtemp(join(tmpdir(), "dcn-node-state-")));
    if (dir === undefined) this.dirs.push(path);
    const state = await openNodeState({
      dataDir: path,
      genesis: this.genesis,
      executor: PARAMS,
      nowMs: () => Date.now(),
      log: pino({ level: "silent" }),
    });
    this.open.push(state);
    return { state, dir: path };
  }

  /** Closes one state (before reopening its dir). */
  async closeOne(state: NodeState): Promise<void> {
    await state.store.close();
    this.open.splice(this.open.indexOf(state), 1);
  }

  async close(): Promise<void> {
    for (const state of this.open) await state.store.close().catch(() => undefined);
    for (const dir of this.dirs) await rm(dir, { recursive: true, force: true });
  }

  /** The deciding sets of a single-set subnet. */
  sets() {
    return { set: this.genesis.validatorSet, next: nextHeightValidatorSet(this.genesis.validatorSet) };
  }

  /** Commits `block` on `state` with a certificate shaped like the node's. */
  async commit(state: NodeState, block: Block, bytes: Uint8Array): Promise<void> {
    const hash = blockHash(block.header);
    const set = this.genesis.validatorSet;
    const cert: Certificate =
      this.consensusKey !== undefined
        ? this.certify(block.header.height, hash)
        : {
            chainId: this.genesis.chainId,
            height: block.header.height,
            round: 0,
            blockHash: hash,
            validatorSetId: set.id,
            validatorCount: set.validators.length,
            signers: Uint8Array.of(1),
            signature: new Uint8Array(96),
          };
    const extras = state.executor.commitExtras(hash);
    await state.store.commit({
      height: block.header.height,
      blockHash: hash,
      block: bytes,
      certificate: cert,
      nextValidatorSet: this.sets().next,
      stateWrites: extras.stateWrites,
      receipts: extras.receipts,
      transactionHashes: extras.transactionHashes,
    });
    await state.executor.committed(block, hash, cert);
  }

  /** The single validator's real certificate of `hash` at `height`, round 0. */
  private certify(height: number, hash: Hex): Certificate {
    const signer = createBlstSigner(this.consensusKey as Uint8Array);
    const vote = { type: "precommit" as const, height, round: 0, value: hash, validatorIndex: 0 };
    const signature = signer.sign(voteDigestOf(this.genesis.chainId, vote));
    return buildCertificate(this.genesis.chainId, this.genesis.validatorSet, [{ ...vote, signature }], blstScheme);
  }

  /** Admits `raws` to the pool of `state`, builds the next block from it, checks it carries them all, and commits it. */
  async build(state: NodeState, raws: readonly Uint8Array[]): Promise<Block> {
    for (const raw of raws) {
      const added = await state.mempool.add(raw, { kind: "local" });
      if (!added.ok) throw new Error(`${added.code}: ${added.message}`);
    }
    const proposer = this.genesis.validatorSet.validators[0]?.address ?? "0x";
    const built = await state.executor.build(state.store.headHeight + 1, proposer, this.sets());
    if (built === null) throw new Error("no block");
    if (built.block.transactions.length !== raws.length) {
      throw new Error(`the block carries ${built.block.transactions.length} of ${raws.length} transactions`);
    }
    await this.commit(state, built.block, built.bytes);
    return built.block;
  }

  /** Calls an Ethereum JSON-RPC method (eth_*, lumia_*, debug_*: the debug API is on) on `state`; throws on an error answer. */
  eth(state: NodeState, name: string, args: unknown[]): Promise<unknown> {
    return run(this.ethMethods(state) as Methods, name, args);
  }

  /** The Ethereum JSON-RPC method table over `state` (read-only: submissions are refused). */
  ethMethods(state: NodeState): ReadonlyMap<string, MethodDef> {
    return createMethods(
      createRpcBackend({
        chainId: this.genesis.chainId,
        version: "test",
        store: state.store,
        core: state.core,
        executor: state.executor,
        mempool: state.mempool,
        submit: async () => ({ ok: false, code: "unsupported", message: "read-only" }),
        status: () => ({}),
        debug: true,
      }),
      { maxLogRange: 100, maxLogResults: 100, maxFeeHistoryBlocks: 100, gasCap: 50_000_000n, txCacheEntries: 16 },
    );
  }

  /** Calls a Solana JSON-RPC method on `state`; throws on an error answer. */
  solana(state: NodeState, name: string, args: unknown[]): Promise<unknown> {
    const methods = createSolanaMethods(
      createSolanaRpcBackend({
        genesis: this.genesis,
        store: state.store,
        executor: state.executor,
        finalizedHeight: () => 0,
        submit: async () => ({ ok: false, code: "unused", message: "" }),
      }),
    );
    return run(methods as Methods, name, args);
  }
}

/** Through the JSON-RPC envelope the transports use (parameter parsing, typed errors), without a socket. */
async function run(methods: Methods, name: string, args: unknown[]): Promise<unknown> {
  const handler = new RequestHandler({ methods: methods as ReadonlyMap<string, MethodDef>, maxBatch: 1 });
  const answer = await handler.handle(JSON.stringify({ jsonrpc: "2.0", id: 1, method: name, params: args }), null);
  if (answer === null || Array.isArray(answer)) throw new Error(`${name}: no single answer`);
  if ("error" in answer)
    throw Object.assign(new Error(`${name}: ${answer.error.message}`), { code: answer.error.code });
  return answer.result;
}
