// Block validation reuses the decode (and sender recovery) the pool did at admission (Mempool.decoder); a block whose
// transactions this node never saw, or saw and refused, still gets every check. Real level store, execution core,
// mempool and block executor.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RLP } from "@ethereumjs/rlp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex } from "../../consensus/bytes.ts";
import { nextHeightValidatorSet } from "../../consensus/validator-set.ts";
import { type Block, encodeBlock } from "../../src/chain/block.ts";
import { buildGenesis, type Genesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme } from "../../src/crypto/blst.ts";
import { ExecutionCore } from "../../src/execution/core.ts";
import { describeKeys, generateKeys } from "../../src/keys/keys.ts";
import { Mempool } from "../../src/mempool/mempool.ts";
import { BlockExecutor } from "../../src/node/executor.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";
import { addressOf, testAccount } from "../execution/helpers.ts";

const CHAIN = 4_242n;
const GWEI = 1_000_000_000n;

describe("block validation through the pool's decode cache", () => {
  let dir: string;
  let store: ChainStore;
  let executor: BlockExecutor;
  let mempool: Mempool;
  let genesis: Genesis;
  const sender = testAccount(1);
  const transfer = async (nonce: number) =>
    fromHex(
      await sender.signTransaction({
        chainId: Number(CHAIN),
        nonce,
        to: addressOf(testAccount(2)),
        value: 1_000n,
        gas: 21_000n,
        type: "eip1559",
        maxFeePerGas: 5n * GWEI,
        maxPriorityFeePerGas: GWEI,
      }),
    );

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dcn-decode-reuse-"));
    const identities = [0, 1, 2, 3].map(() => describeKeys(generateKeys()));
    genesis = parseGenesis(
      buildGenesis({
        chainId: CHAIN,
        genesisTimeMs: 1_000,
        validators: identities.map((identity, i) => ({ name: `v${i}`, votingPower: 10n, identity })),
        execution: { alloc: [{ address: addressOf(sender), balance: (10n ** 21n).toString() }] },
      }),
    );
    store = await ChainStore.open(join(dir, "chain"), {
      genesisHash: genesis.hash,
      genesisValidatorSet: genesis.validatorSet,
    });
    const core = await ExecutionCore.create({
      chainId: CHAIN,
      db: store.stateReader(),
      alloc: genesis.execution.alloc.map((a) => ({ address: a.address, balance: a.balance })),
    });
    const parent = await BlockExecutor.loadParent(genesis, core, store);
    let ex: BlockExecutor | null = null;
    mempool = new Mempool(
      {
        maxCount: 1000,
        maxBytes: 1 << 20,
        maxPerSender: 64,
        maxTxBytes: 128 * 1024,
        blockGasLimit: genesis.execution.gasLimit,
        minReplacementBumpPercent: 10,
        maxNonceGap: 16,
        peerRatePerSecond: 100,
      },
      {
        chainId: CHAIN,
        accounts: {
          nonce: (a) => (ex as BlockExecutor).accounts().nonce(a),
          balance: (a) => (ex as BlockExecutor).accounts().balance(a),
        },
        baseFee: () => core.nextBaseFee(parent),
        nowMs: () => Date.now(),
      },
    );
    ex = new BlockExecutor(
      { maxBlockBytes: 2_000_000, maxBlockTransactions: 1000, maxClockDriftMs: 5_000 },
      { genesis, core, mempool, store, nowMs: () => Date.now(), l1: null, scheme: blstScheme },
      parent,
    );
    await ex.loadRecentHashes();
    executor = ex;
    for (let nonce = 0; nonce < 3; nonce++) {
      const added = await mempool.add(await transfer(nonce), { kind: "local" });
      expect(added.ok).toBe(true);
    }
  });

  afterAll(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const proposer = () => genesis.validatorSet.validators[0]?.address ?? "0x";
  const sets = () => ({ set: genesis.validatorSet, next: nextHeightValidatorSet(genesis.validatorSet) });
  const build = async (height: number) => {
    const built = await executor.build(height, proposer(), sets());
    if (built === null) throw new Error("the executor could not build");
    return built;
  };
  const validate = (block: Block) => executor.validate(block, encodeBlock(block), sets(), false);
  /** The transaction with its last signature field (s) or the one before (r) replaced. */
  const resigned = (raw: Uint8Array, fromEnd: 1 | 2, value: Uint8Array) => {
    const fields = RLP.decode(raw.subarray(1)) as Uint8Array[];
    fields[fields.length - fromEnd] = value;
    return Uint8Array.of(2, ...RLP.encode(fields));
  };

  it("validates a block of pooled transactions without decoding them again", async () => {
    const { block } = await build(1);
    expect(block.transactions).toHaveLength(3);
    const before = mempool.decoder.stats;
    expect(await validate(block)).toBeNull();
    const after = mempool.decoder.stats;
    expect(after.hits - before.hits).toBe(3);
    expect(after.misses).toBe(before.misses);
  });

  it("fully decodes and executes a valid transaction the pool never saw", async () => {
    const { block } = await build(1);
    const unseen = await transfer(3);
    const before = mempool.decoder.stats;
    // The header was built without it: decoding and execution accept the transaction, the roots then differ.
    const problem = await validate({ ...block, transactions: [...block.transactions, unseen] });
    expect(problem?.code).toBe("execution_mismatch");
    expect(mempool.decoder.stats.misses - before.misses).toBe(1);
  });

  it("refuses unseen transactions with a bad signature, or a signature of somebody without funds", async () => {
    const { block } = await build(1);
    const unseen = await transfer(3);
    const highS = resigned(unseen, 1, fromHex(`0x${"ff".repeat(32)}`));
    const high = await validate({ ...block, transactions: [...block.transactions, highS] });
    expect(high?.code).toBe("invalid_transaction");
    expect(high?.message).toMatch(/bad_signature/);
    // Another r recovers another (unfunded) sender: the sender comes from these bytes, never from a cached neighbour.
    const r = RLP.decode(unseen.subarray(1)) as Uint8Array[];
    const otherR = Uint8Array.from(r[r.length - 2] as Uint8Array);
    otherR[31] = (otherR[31] as number) ^ 1;
    const stranger = resigned(unseen, 2, otherR);
    const refused = await validate({ ...block, transactions: [...block.transactions, stranger] });
    expect(refused?.code).toBe("invalid_transaction");
    // Asking twice gives the same answer: the refusal was not remembered as a success.
    expect((await validate({ ...block, transactions: [...block.transactions, highS] }))?.code).toBe(
      "invalid_transaction",
    );
  });

  it("refuses a transaction the pool refused", async () => {
    const { block } = await build(1);
    const tooFarAhead = await transfer(40);
    const added = await mempool.add(tooFarAhead, { kind: "local" });
    expect(added.ok).toBe(false);
    const problem = await validate({ ...block, transactions: [...block.transactions, tooFarAhead] });
    expect(problem?.code).toBe("invalid_transaction");
  });
});
