// The validator's side of execution (src/node/executor.ts) on a real level store, execution core and mempool: a block
// built by the proposer validates; any header result that differs from what execution gives is refused with a reason.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nextHeightValidatorSet } from "../../consensus/validator-set.ts";
import { type Block, blockHash, encodeBlock } from "../../src/chain/block.ts";
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

describe("block executor", () => {
  let dir: string;
  let store: ChainStore;
  let executor: BlockExecutor;
  let mempool: Mempool;
  let genesis: Genesis;
  const sender = testAccount(1);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dcn-executor-"));
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
      const raw = await sender.signTransaction({
        chainId: Number(CHAIN),
        nonce,
        to: addressOf(testAccount(2)),
        value: 1_000n,
        gas: 21_000n,
        type: "eip1559",
        maxFeePerGas: 5n * GWEI,
        maxPriorityFeePerGas: GWEI,
      });
      const added = await mempool.add(Uint8Array.from(Buffer.from(raw.slice(2), "hex")), { kind: "local" });
      expect(added.ok).toBe(true);
    }
  });

  afterAll(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const proposer = () => genesis.validatorSet.validators[0]?.address ?? "0x";
  /** A subnet without an L1 anchor always has the inputs to build. */
  const build = async (height: number) => {
    const built = await executor.build(height, proposer(), sets());
    if (built === null) throw new Error("the executor could not build");
    return built;
  };
  const sets = () => ({ set: genesis.validatorSet, next: nextHeightValidatorSet(genesis.validatorSet) });

  it("builds a block from the mempool that validates", async () => {
    const { block, bytes } = await build(1);
    expect(block.transactions).toHaveLength(3);
    expect(block.header.gasUsed).toBe(63_000n);
    expect(block.header.baseFeePerGas).toBe(genesis.execution.baseFeePerGas);
    expect(await executor.validate(block, bytes, sets(), false)).toBeNull();
    const extras = executor.commitExtras(blockHash(block.header));
    expect(extras.transactionHashes).toHaveLength(3);
    expect(extras.stateWrites.size).toBeGreaterThan(0);
  });

  it.each([
    ["stateRoot", { stateRoot: `0x${"11".repeat(32)}` }, "execution_mismatch"],
    ["receiptsRoot", { receiptsRoot: `0x${"22".repeat(32)}` }, "execution_mismatch"],
    ["transactionsRoot", { transactionsRoot: `0x${"33".repeat(32)}` }, "execution_mismatch"],
    ["gasUsed", { gasUsed: 63_001n }, "execution_mismatch"],
    ["logsBloom", { logsBloom: `0x${"ff".repeat(256)}` }, "execution_mismatch"],
    ["vmRoots", { vmRoots: [{ vm: 1, root: `0x${"44".repeat(32)}` }] }, "execution_mismatch"],
    ["baseFeePerGas", { baseFeePerGas: 7n }, "wrong_base_fee"],
    ["gasLimit", { gasLimit: 1_000_000n }, "wrong_gas_limit"],
  ] as const)("refuses a block whose %s differs from execution", async (_field, change, code) => {
    const { block } = await build(1);
    const tampered: Block = { ...block, header: { ...block.header, ...change } };
    const problem = await executor.validate(tampered, encodeBlock(tampered), sets(), false);
    expect(problem?.code).toBe(code);
    expect(problem?.message.length).toBeGreaterThan(0);
  });

  it("refuses a block with a transaction that does not decode or cannot apply", async () => {
    const { block } = await build(1);
    const junk: Block = { ...block, transactions: [...block.transactions, new Uint8Array([1, 2, 3])] };
    expect((await executor.validate(junk, encodeBlock(junk), sets(), false))?.code).toBe("invalid_transaction");
    // The same transaction twice: its nonce is used by the first copy.
    const first = block.transactions[0] as Uint8Array;
    const replay: Block = { ...block, transactions: [first, first] };
    expect((await executor.validate(replay, encodeBlock(replay), sets(), false))?.code).toBe("invalid_transaction");
  });
});
