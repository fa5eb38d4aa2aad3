// State sync (src/node/state-sync.ts) between real node states (level stores, execution core, executor) over an
// in-process request transport that runs the serving node's own handlers (serveStateSync, the sync protocol's blocks).
// A source chain with many accounts, a token contract (code and a storage trie) and Solana transfers, certified with
// real BLS certificates, is synced into an empty store: every state read then answers as on the source, and the next
// block validates on the synced state. Peers that serve nodes off their hashes, blocks off the chain or certificates
// that do not verify are scored down and the sync completes from an honest one; an interrupted sync resumes from the
// nodes it had written; a node that state-synced serves the next one.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { encodeDeployData, encodeFunctionData } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, type Hex } from "../../consensus/bytes.ts";
import type { Certificate } from "../../consensus/certificate.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { RequestError, type RequestSpec } from "../../p2p/index.ts";
import { SVM_TX_PREFIX } from "../../src/chain/block.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import { generateKeys } from "../../src/keys/keys.ts";
import type { L1View } from "../../src/l1/view.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import type { ConsensusDriver } from "../../src/node/driver.ts";
import {
  decodeBlocksResponse,
  decodeSnapshotOffer,
  decodeStateNodesResponse,
  encodeBlocksResponse,
  encodeSnapshotOffer,
  encodeStateNodesResponse,
  protocols,
} from "../../src/node/messages.ts";
import { createMetrics } from "../../src/node/metrics.ts";
import {
  DEFAULT_STATE_SYNC_PARAMS,
  StateSync,
  StateSyncError,
  type StateSyncNetwork,
  serveStateSync,
} from "../../src/node/state-sync.ts";
import { SyncManager } from "../../src/node/sync.ts";
import type { VerifierContext } from "../../src/node/verifier.ts";
import { WorkLedger } from "../../src/node/work-ledger.ts";
import { ChainStore, type SnapshotInstall, StorageError } from "../../src/storage/chain-store.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { buildTx, SOL, signer, transferIx } from "../svm/helpers.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_003n;
const HEIGHTS = 24;
const RECIPIENTS_PER_HEIGHT = 12;
const sender = testAccount(1);
const hex = (n: number): Hex => `0x${n.toString(16)}`;
const log = pino({ level: "silent" });
const p = protocols(CHAIN);

type Handlers = Map<string, RequestSpec>;

/** The request handlers a node registers for state sync, over its state. */
function handlersOf(nodes: NodeStates, state: NodeState): Handlers {
  const handlers: Handlers = new Map();
  const network = {
    handle: (spec: RequestSpec) => handlers.set(spec.protocol, spec),
    connectedPeers: () => [],
    request: async () => new Uint8Array(0),
    report: () => undefined,
  };
  // The blocks protocol is the sync manager's; only its handlers run here.
  new SyncManager(
    { chainId: CHAIN, blocksPerRequest: 64, maxResponseBytes: 16 << 20, requestTimeoutMs: 5_000, fanout: 3 },
    {
      network,
      driver: {} as ConsensusDriver,
      store: state.store,
      verifier: {} as VerifierContext,
      log,
      metrics: createMetrics({ defaultMetrics: false }),
    },
  ).register();
  const methods = nodes.ethMethods(state);
  serveStateSync(network, {
    chainId: CHAIN,
    store: state.store,
    methods: () => methods,
    maxResponseBytes: 16 << 20,
    requestTimeoutMs: 5_000,
  });
  return handlers;
}

/** Handlers with one protocol's responses rewritten. */
function tampered(honest: Handlers, protocol: string, rewrite: (response: Uint8Array) => Uint8Array): Handlers {
  const out = new Map(honest);
  const spec = honest.get(protocol) as RequestSpec;
  out.set(protocol, {
    ...spec,
    handle: async (data, from, signal) => {
      const result = await spec.handle(data, from, signal);
      return result.kind === "ok" ? { kind: "ok", response: rewrite(result.response) } : result;
    },
  });
  return out;
}

/** Requests answered in-process by each peer's handlers, as the p2p Network would carry them. */
class Loopback implements StateSyncNetwork {
  readonly reports: { peer: string; code: string }[] = [];
  /** Requests refused for the rate (the server's per-peer token bucket), when `rateLimited`. */
  refusals = 0;
  private sent = 0;
  constructor(
    private readonly peers: ReadonlyMap<string, Handlers>,
    /** Every other request is refused for the rate, as a busy server's limit would. */
    private readonly rateLimited = false,
  ) {}

  connectedPeers(): string[] {
    return [...this.peers.keys()];
  }

  async request(peer: string, protocol: string, data: Uint8Array): Promise<Uint8Array> {
    const spec = this.peers.get(peer)?.get(protocol);
    if (spec === undefined) throw new RequestError("not_connected", { peer, protocol });
    if (this.rateLimited && this.sent++ % 2 === 1) {
      this.refusals++;
      throw new RequestError("refused", { peer, protocol, remoteCode: "rate_limited" });
    }
    const result = await spec.handle(data, "syncing-node", new AbortController().signal);
    if (result.kind === "reject") throw new RequestError("rejected", { peer, protocol, remoteCode: result.code });
    return result.response;
  }

  report(peer: string, _kind: "reject", code: string): void {
    this.reports.push({ peer, code });
  }
}

const flipLast = (bytes: Uint8Array): Uint8Array => {
  const out = bytes.slice();
  out[out.length - 1] = (out[out.length - 1] as number) ^ 1;
  return out;
};

describe("state sync", () => {
  let genesis: Genesis;
  let nodes: NodeStates;
  let source: NodeState;
  let honest: Handlers;
  let nonce = 0;
  let token: Hex;
  const dirs: string[] = [];
  const recipients: Hex[] = [];
  let payer: Awaited<ReturnType<typeof signer>>;
  let payee: Awaited<ReturnType<typeof signer>>;

  async function emptyStore(): Promise<{ store: ChainStore; dir: string }> {
    const dir = await mkdtemp(join(tmpdir(), "dcn-state-sync-"));
    dirs.push(dir);
    const store = await ChainStore.open(join(dir, "chain"), {
      genesisHash: genesis.hash,
      genesisValidatorSet: genesis.validatorSet,
    });
    return { store, dir };
  }

  function stateSync(store: ChainStore, network: StateSyncNetwork, attempts = 3): StateSync {
    return new StateSync(
      { ...DEFAULT_STATE_SYNC_PARAMS, chainId: CHAIN, attempts, nodesPerRequest: 16, waitForPeersMs: 0 },
      { network, store, genesis, log, sleep: async () => undefined },
    );
  }

  beforeAll(async () => {
    const keys = generateKeys();
    payer = await signer(1);
    payee = await signer(2);
    genesis = singleValidatorGenesis(
      CHAIN,
      addressOf(sender),
      10n ** 24n,
      { address: payer.address, lamports: 10n * SOL },
      keys,
    );
    nodes = new NodeStates(genesis, keys.consensus);
    ({ state: source } = await nodes.state());
    const { Token } = contracts();
    const deploy = await signRaw(
      sender,
      {
        nonce: nonce++,
        data: encodeDeployData({ abi: Token.abi, bytecode: Token.bytecode, args: [10n ** 9n] }),
        gas: 2_000_000n,
      },
      CHAIN,
    );
    await nodes.build(source, [deploy]);
    const receipt = (await nodes.eth(source, "eth_getBlockReceipts", [hex(1)])) as { contractAddress: Hex }[];
    token = receipt[0]?.contractAddress as Hex;
    for (let h = 2; h <= HEIGHTS; h++) {
      const raws: Uint8Array[] = [];
      for (let i = 0; i < RECIPIENTS_PER_HEIGHT; i++) {
        const to = `0x${(h * 1_000 + i).toString(16).padStart(40, "0")}` as Hex;
        recipients.push(to);
        raws.push(await signRaw(sender, { nonce: nonce++, to, value: 10n ** 12n + BigInt(i) }, CHAIN));
      }
      // Token balances: a storage trie with a slot per holder.
      const data = encodeFunctionData({
        abi: Token.abi,
        functionName: "transfer",
        args: [recipients.at(-1), BigInt(h)],
      });
      raws.push(await signRaw(sender, { nonce: nonce++, to: token, data, gas: 100_000n }, CHAIN));
      if (h % 3 === 0) {
        const blockhash = source.executor.latestSvmBlockhash().blockhash;
        const wire = await buildTx(payer, [transferIx(payer, payee.address, SOL / 100n + BigInt(h))], blockhash);
        raws.push(concatBytes(Uint8Array.of(SVM_TX_PREFIX), wire));
      }
      await nodes.build(source, raws);
    }
    honest = handlersOf(nodes, source);
  }, 120_000);

  afterAll(async () => {
    await nodes?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("syncs an empty store to the head's state; reads answer as on the source and the next block validates", async () => {
    const { store, dir } = await emptyStore();
    const network = new Loopback(new Map([["good", honest]]));
    const sync = stateSync(store, network);
    const result = await sync.run();
    expect(result.height).toBe(HEIGHTS);
    expect(sync.progress()).toEqual({
      phase: "done",
      height: HEIGHTS,
      attempt: 1,
      fetched: result.fetched,
      local: 0,
      bytes: result.bytes,
      queued: 0,
    });
    expect(result.local).toBe(0);
    expect(result.fetched).toBeGreaterThan(HEIGHTS * RECIPIENTS_PER_HEIGHT);
    expect(network.reports).toEqual([]);
    expect(store.headHeight).toBe(HEIGHTS);
    expect(store.historyKeptFrom).toBe(HEIGHTS + 1);
    expect(store.stateGenerations.keptFrom).toBe(HEIGHTS);
    // Below the whole history the installed blocks are served as one run (a node that state-synced serves the next).
    expect((await store.getRange(1, 100, 1 << 24)).map((r) => r.height)).toEqual(
      [...Array(HEIGHTS).keys()].map((i) => i + 1),
    );
    await store.close();

    // The node opens on it as after a restart.
    const { state: synced } = await nodes.state(dir);
    const latest = async (state: NodeState, method: string, params: unknown[]) =>
      nodes.eth(state, method, [...params, "latest"]);
    for (const who of [addressOf(sender), ...recipients]) {
      expect(await latest(synced, "eth_getBalance", [who])).toBe(await latest(source, "eth_getBalance", [who]));
    }
    const { Token } = contracts();
    for (const who of recipients.filter((_, i) => i % RECIPIENTS_PER_HEIGHT === RECIPIENTS_PER_HEIGHT - 1)) {
      const call = { to: token, data: encodeFunctionData({ abi: Token.abi, functionName: "balanceOf", args: [who] }) };
      const balance = await latest(synced, "eth_call", [call]);
      expect(balance).toBe(await latest(source, "eth_call", [call]));
      expect(BigInt(balance as Hex)).toBeGreaterThan(0n);
    }
    expect(await latest(synced, "eth_getCode", [token])).toBe(await latest(source, "eth_getCode", [token]));
    expect(await nodes.solana(synced, "getBalance", [payee.address])).toEqual(
      await nodes.solana(source, "getBalance", [payee.address]),
    );
    // History: the blocks came (with certificates), receipts did not.
    expect(await nodes.eth(synced, "eth_getBlockByNumber", [hex(HEIGHTS), false])).toEqual(
      await nodes.eth(source, "eth_getBlockByNumber", [hex(HEIGHTS), false]),
    );
    expect(await synced.store.getCertificate(1)).toEqual(await source.store.getCertificate(1));
    // The next block, built on the source, executes on the synced state to the same roots.
    const raw = await signRaw(sender, { nonce: nonce++, to: recipients[0], value: 1n }, CHAIN);
    const next = await nodes.build(source, [raw]);
    const bytes = (await source.store.getBlock(HEIGHTS + 1)) as Uint8Array;
    expect(await synced.executor.validate(next, bytes, nodes.sets(), true)).toBeNull();
    await nodes.commit(synced, next, bytes);
    expect(synced.store.headHash()).toBe(source.store.headHash());
    // A node that state-synced is a source in turn: light-client anchor, blocks and state.
    const { store: second } = await emptyStore();
    const again = await stateSync(second, new Loopback(new Map([["synced", handlersOf(nodes, synced)]]))).run();
    expect(again.height).toBe(HEIGHTS + 1);
    expect(second.headHash()).toBe(source.store.headHash());
    await second.close();
    await nodes.closeOne(synced);
  });

  it("the store refuses a snapshot whose parts do not fit together, and stays empty", async () => {
    const { store } = await emptyStore();
    const head = source.store.headHeight;
    const blocks = await Promise.all(
      [head - 1, head].map(async (height) => {
        const certificate = (await source.store.getCertificate(height)) as Certificate;
        return {
          height,
          blockHash: certificate.blockHash,
          block: (await source.store.getBlock(height)) as Uint8Array,
          certificate,
        };
      }),
    );
    const good: SnapshotInstall = {
      blocks,
      nextValidatorSet: source.store.validatorSetFor(head + 1),
      setChanges: [{ fromHeight: 1, set: genesis.validatorSet }],
    };
    const other = createValidatorSet([{ publicKey: new Uint8Array(48).fill(7), votingPower: 1n }]);
    const refused = async (install: SnapshotInstall, why: RegExp, headAfter = 0) => {
      const error = await store.installSnapshot(install).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe("invalid_record");
      expect((error as StorageError).message).toMatch(why);
      expect(store.headHeight).toBe(headAfter);
    };
    await refused({ ...good, blocks: [] }, /no block/);
    await refused({ ...good, setChanges: [] }, /genesis set at height 1/);
    await refused({ ...good, setChanges: [{ fromHeight: 1, set: other }] }, /genesis set at height 1/);
    await refused(
      { ...good, setChanges: [...good.setChanges, { fromHeight: head + 5, set: other }] },
      /above head \+ 1/,
    );
    await refused({ ...good, nextValidatorSet: other }, /next set/);
    const [first, second] = blocks as [(typeof blocks)[number], (typeof blocks)[number]];
    await refused({ ...good, blocks: [first, { ...second, certificate: first.certificate }] }, /certificate is for/);
    await store.installSnapshot(good);
    expect(store.headHeight).toBe(head);
    await refused(good, /already has height/, head);
    await store.close();
  });

  it("a work ledger on a state-synced store counts from its third whole height, with the epoch there partial", async () => {
    const { store, dir } = await emptyStore();
    await stateSync(store, new Loopback(new Map([["good", honest]]))).run();
    await store.close();
    const { state: synced } = await nodes.state(dir);
    const head = synced.store.headHeight;
    // The registry as the L1 mirror would read it: epoch 3 with the genesis set, whatever the origin.
    const l1 = {
      epochAt: async () => ({ kind: "ok", value: { epoch: 3n, setId: genesis.validatorSet.id, members: [] } }),
      batchesPosted: async () => ({ kind: "ok", value: [] }),
    } as unknown as L1View;
    const warnings: string[] = [];
    const ledger = await WorkLedger.open({
      dbPath: join(dir, "work"),
      genesis,
      store: synced.store,
      l1,
      log: Object.assign(pino({ level: "silent" }), { warn: (_: unknown, msg: string) => warnings.push(msg) }),
    });
    await ledger.catchUp();
    // The blocks before the synced head are there, their receipts and predecessors are not: nothing counted yet.
    expect(ledger.accountedHeight).toBe(0);
    for (let i = 0; i < 4; i++) {
      const next = await nodes.build(source, [
        await signRaw(sender, { nonce: nonce++, to: recipients[1], value: 1n }, CHAIN),
      ]);
      const bytes = (await source.store.getBlock(next.header.height)) as Uint8Array;
      expect(await synced.executor.validate(next, bytes, nodes.sets(), true)).toBeNull();
      await nodes.commit(synced, next, bytes);
      await ledger.catchUp();
    }
    expect(synced.store.historyKeptFrom).toBe(head + 1);
    expect(ledger.accountedHeight).toBe(head + 4);
    expect(warnings).toEqual([
      "work ledger starts where this node's history begins: the epoch in progress gives no report",
    ]);
    await ledger.close();
    await nodes.closeOne(synced);
  });

  it("scores down peers whose offers, nodes, blocks or certificates do not verify, and completes from an honest one", async () => {
    const badNodes = tampered(honest, p.stateNodes, (response) =>
      encodeStateNodesResponse(decodeStateNodesResponse(response).map((v) => (v.length > 0 ? flipLast(v) : v))),
    );
    const badBlocks = tampered(honest, p.blocks, (response) =>
      encodeBlocksResponse(decodeBlocksResponse(response).map((item) => ({ ...item, block: flipLast(item.block) }))),
    );
    const badCertificates = tampered(honest, p.lightClient, (response) => {
      const body = JSON.parse(new TextDecoder().decode(response)) as { result?: { certificate?: string } };
      const cert = body.result?.certificate;
      if (cert !== undefined && body.result !== undefined) {
        body.result.certificate = `${cert.slice(0, -1)}${cert.endsWith("0") ? "1" : "0"}`;
      }
      return new TextEncoder().encode(JSON.stringify(body));
    });
    // Same head, other proposer priorities (no header commits to them): outvoted by the peers offering that height.
    const badOffer = tampered(honest, p.snapshot, (response) => {
      const offer = decodeSnapshotOffer(response);
      const set = offer.nextValidatorSet;
      const validators = set.validators.map((v, i) =>
        i === 0 ? { ...v, proposerPriority: v.proposerPriority + 7n } : v,
      );
      return encodeSnapshotOffer({ ...offer, nextValidatorSet: { ...set, validators } });
    });
    const { store } = await emptyStore();
    // The faulty peers come first: the offer, the anchor and the first node requests go to them.
    const network = new Loopback(
      new Map([
        ["bad-offer", badOffer],
        ["bad-certificates", badCertificates],
        ["bad-blocks", badBlocks],
        ["bad-nodes", badNodes],
        ["good", honest],
      ]),
    );
    const result = await stateSync(store, network, 4).run();
    expect(result.height).toBe(source.store.headHeight);
    expect(store.headHash()).toBe(source.store.headHash());
    const codes = new Map(network.reports.map((r) => [r.peer, r.code]));
    expect(codes.get("bad-offer")).toBe("state_sync_bad_offer");
    expect(codes.get("bad-certificates")).toBe("state_sync_bad_certificate");
    expect(codes.get("bad-blocks")).toBe("state_sync_bad_block");
    expect(codes.get("bad-nodes")).toBe("state_sync_bad_node");
    expect(codes.has("good")).toBe(false);
    await store.close();
  });

  it("resumes an interrupted sync from the nodes it wrote, waiting out refusals for the rate", async () => {
    const { store } = await emptyStore();
    let served = 0;
    const spec = honest.get(p.stateNodes) as RequestSpec;
    const failing = new Map(honest);
    failing.set(p.stateNodes, {
      ...spec,
      handle: async (data, from, signal) => {
        if (++served > 6) throw new Error("connection lost");
        return spec.handle(data, from, signal);
      },
    });
    await expect(stateSync(store, new Loopback(new Map([["flaky", failing]])), 1).run()).rejects.toBeInstanceOf(
      StateSyncError,
    );
    expect(store.headHeight).toBe(0);
    // Through a peer that refuses every other request for the rate: each is sent again after a wait.
    const limited = new Loopback(new Map([["good", honest]]), true);
    const result = await stateSync(store, limited).run();
    expect(limited.refusals).toBeGreaterThan(5);
    expect(limited.reports).toEqual([]);
    expect(result.local).toBeGreaterThan(0);
    expect(result.fetched).toBeGreaterThan(0);
    expect(store.headHash()).toBe(source.store.headHash());
    await store.close();
  });
});
