// The stateful parts of a node under the network: chain store, execution core, mempool and block executor, opened
// over one data directory. The node (node.ts) wraps them with libp2p, HTTP and the JSON-RPC; the driver simulation
// (test/sim/driver-sim.ts) wraps the same parts with a simulated network and clock, so both run identical code.
import { join } from "node:path";
import { MAX_TRANSACTION_BYTES } from "../chain/block.ts";
import { DEFAULT_MEMPOOL_LIMITS, type NodeConfig } from "../config/config.ts";
import type { Genesis } from "../config/genesis.ts";
import { blstScheme } from "../crypto/blst.ts";
import { ExecutionCore } from "../execution/core.ts";
import { SvmExecutor } from "../execution/svm/executor.ts";
import type { L1View } from "../l1/view.ts";
import { Mempool } from "../mempool/mempool.ts";
import { DEFAULT_SVM_LANE_LIMITS, SvmLane, type SvmLaneLimits } from "../mempool/svm-lane.ts";
import { ChainStore } from "../storage/chain-store.ts";
import { BlockExecutor, type ExecutorParams } from "./executor.ts";
import type { Logger } from "./log.ts";
import { Membership } from "./membership.ts";

/** The pool's limits that come from the node config (`mempool`); the largest transaction and gas limit: the chain's. */
export type PoolLimits = NodeConfig["mempool"];

export interface NodeState {
  readonly store: ChainStore;
  readonly core: ExecutionCore;
  readonly mempool: Mempool;
  readonly executor: BlockExecutor;
  readonly membership: Membership;
}

/**
 * Opens the chain store under `<dataDir>/chain` (created on first use), the execution core on it, and a mempool and a
 * block executor positioned on the committed head. `nowMs` is the clock of timestamps and mempool ageing.
 */
export async function openNodeState(opts: {
  readonly dataDir: string;
  readonly genesis: Genesis;
  readonly executor: ExecutorParams;
  readonly nowMs: () => number;
  readonly mempool?: PoolLimits;
  /** The pool's Solana lane (default DEFAULT_SVM_LANE_LIMITS). */
  readonly svmLane?: SvmLaneLimits;
  /** Required when the genesis anchors the subnet to L1 (genesis `l1`). */
  readonly l1?: L1View | null;
  readonly log: Logger;
}): Promise<NodeState> {
  const { genesis, nowMs } = opts;
  const l1 = opts.l1 ?? null;
  if (genesis.l1 !== null && l1 === null) {
    throw new Error(
      "the genesis anchors this subnet to L1 (genesis l1): the node needs an L1 mirror (config l1.rpcUrl)",
    );
  }
  const store = await ChainStore.open(join(opts.dataDir, "chain"), {
    genesisHash: genesis.hash,
    genesisValidatorSet: genesis.validatorSet,
  });
  try {
    const core = await ExecutionCore.create({
      chainId: genesis.chainId,
      db: store.stateReader(),
      alloc: genesis.execution.alloc.map((a) => ({
        address: a.address,
        balance: a.balance,
        nonce: a.nonce,
        ...(a.code === null ? {} : { code: a.code }),
        storage: Object.fromEntries(a.storage),
      })),
    });
    const svm = new SvmExecutor({ db: store.stateReader() });
    const parent = await BlockExecutor.loadParent(genesis, core, store, svm);
    // The mempool checks against the committed head; `executor` is assigned right below, before anything runs.
    let executor: BlockExecutor | null = null;
    const mempool = new Mempool(
      {
        ...(opts.mempool ?? DEFAULT_MEMPOOL_LIMITS),
        maxTxBytes: MAX_TRANSACTION_BYTES,
        blockGasLimit: genesis.execution.gasLimit,
      },
      {
        chainId: genesis.chainId,
        accounts: {
          nonce: (a) => (executor as BlockExecutor).accounts().nonce(a),
          balance: (a) => (executor as BlockExecutor).accounts().balance(a),
        },
        baseFee: () => (executor === null ? core.nextBaseFee(parent) : executor.nextBaseFee()),
        nowMs,
        svm: new SvmLane(opts.svmLane ?? DEFAULT_SVM_LANE_LIMITS, {
          window: () => (executor as BlockExecutor).svmWindow(),
          lamports: (a) => (executor as BlockExecutor).svmHead().lamports(a),
          processedAt: (sig) => (executor as BlockExecutor).svmHead().processedAt(sig),
        }),
      },
    );
    executor = new BlockExecutor(
      opts.executor,
      { genesis, core, mempool, store, nowMs, l1, scheme: blstScheme, svm },
      parent,
    );
    await executor.loadRecentHashes();
    return { store, core, mempool, executor, membership: new Membership(genesis, store, l1, opts.log) };
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}
