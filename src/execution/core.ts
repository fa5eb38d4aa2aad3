// The EVM execution core: runs a block's transactions on the parent state with @ethereumjs/vm (Prague) and returns
// every root a header commits to plus the new state nodes, without writing anything: the node puts `writes` in the
// same synced batch as the block (docs/execution.md).
//
// State: a secure Merkle-Patricia trie (keys hashed, as Ethereum, so eth_getProof proofs verify with standard tools)
// behind MerkleStateManager with Caches and one checkpoint per block; trie nodes come from an overlay (./overlay.ts)
// that reads the committed store and keeps new nodes private to this execution.
//
// Fees: runTx burns the base fee and pays the priority fee to the coinbase, like Ethereum; after the last transaction
// the core credits sum(gasUsed * baseFee) to REWARD_POOL_ADDRESS, so on this chain the base fee is not burned.
import { createBlock, type Block as EthBlock } from "@ethereumjs/block";
import type { Common } from "@ethereumjs/common";
import { paramsEVM } from "@ethereumjs/evm";
import { MerklePatriciaTrie } from "@ethereumjs/mpt";
import { Caches, getMerkleStateProof, type MerkleStateManager } from "@ethereumjs/statemanager";
import { createFeeMarket1559Tx } from "@ethereumjs/tx";
import {
  Account,
  type Address,
  bigIntToUnpaddedBytes,
  bytesToBigInt,
  createAddressFromString,
  generateAddress,
  setLengthLeft,
  ValueEncoding,
} from "@ethereumjs/util";
import { createVM, encodeReceipt, paramsVM, runTx, type VM } from "@ethereumjs/vm";
import { concatBytes, fromHex, type Hex, isHex, keccak256, toHex } from "../../consensus/bytes.ts";
import { orderedTrieRoot } from "../chain/ordered-trie.ts";
import { encodeRlp } from "../chain/rlp.ts";
import type { CrossVm, SvmSide } from "./cross-vm.ts";
import { evmGateway, svmPrecompileOptions } from "./cross-vm-evm.ts";
import { ExecutionError, isMissingNode, messageOf, withState } from "./errors.ts";
import { FlatAccounts } from "./flat-accounts.ts";
import { fastKeccak256 } from "./keccak.ts";
import { type KeyValueReader, NodeCache, OverlayDB } from "./overlay.ts";
import { reachableWrites } from "./reachable.ts";
import { BLOOM_BYTES, decodeRevertReason, orBloom } from "./receipts.ts";
import {
  logsWithTransfers,
  MAX_SIMULATED_BLOCKS,
  type SimulatedBlock,
  type SimulatedBlockRequest,
  type SimulatedCall,
  type SimulateOptions,
  type SimulationBase,
  SimulationError,
} from "./simulate.ts";
import { LinkedStateManager } from "./state-manager.ts";
import { type CallFrame, createTracer } from "./tracers.ts";
import { hasCode, TransferLedger } from "./transfer-ledger.ts";
import { commonFor, type DecodedTx } from "./tx.ts";
import { EMPTY_TRIE_ROOT, EVM_VM, globalStateRoot, type VmRoot, vmRootsProblem } from "./vm.ts";

export { ExecutionError, type ExecutionErrorCode } from "./errors.ts";
export type { KeyValueReader } from "./overlay.ts";
export type { VmModule, VmRoot } from "./vm.ts";
export { EVM_VM, globalStateRoot } from "./vm.ts";

/**
 * Receives the base fee of every transaction ("Lu" 0x4c75, 01), instead of it being burned. Not a precompile, no
 * code, no known private key: what happens to the pool is the reward mechanism's business (docs/execution.md).
 */
export const REWARD_POOL_ADDRESS: Hex = "0x00000000000000000000000000000000004c7501";
/** Accounts in the flat view of the head state (./flat-accounts.ts): ~200 bytes each. */
const MAX_FLAT_ACCOUNTS = 100_000;
/** Shared node cache budget (nodes of the last blocks are what the next block reads). */
export const DEFAULT_NODE_CACHE_BYTES = 64 * 1024 * 1024;
/** Candidates a block may be asked to consider; beyond this the caller is broken. */
export const MAX_CANDIDATE_TRANSACTIONS = 100_000;
/** Smallest gas any transaction uses: once less is left the builder stops looking. */
const MIN_TX_GAS = 21_000n;
const MAX_CODE_BYTES = 24_576;

export interface GenesisAccount {
  readonly address: Hex;
  readonly balance: bigint;
  readonly nonce?: bigint;
  readonly code?: Hex | null;
  /** slot -> value, 32-byte hex each (a shorter value is left-padded). */
  readonly storage?: Readonly<Record<Hex, Hex>> | ReadonlyMap<Hex, Hex>;
}

/** The portal's asset ids (staking-contracts/src/Portal.sol): LUMIA is the L2's native coin, ETH a predeploy token. */
const ETH_ASSET = 0;
const LUMIA_ASSET = 1;
/**
 * The BridgedEth predeploy (staking-contracts/src/BridgedEth.sol) and its OpenZeppelin ERC20 storage layout: balances
 * mapping at slot 0, total supply at slot 2. ETH deposits are minted by writing these slots.
 */
export const BRIDGED_ETH_ADDRESS: Hex = "0x00000000000000000000000000000000004c7503";
const ERC20_BALANCES_SLOT = 0n;
const ERC20_TOTAL_SUPPLY_SLOT = 2n;

export interface BlockEnv {
  readonly chainId: bigint;
  readonly height: number;
  readonly timestampMs: number;
  /** Receives priority fees (the proposer's operator address). */
  readonly coinbase: Hex;
  readonly gasLimit: bigint;
  readonly baseFeePerGas: bigint;
  /** The parent block hash (PREVRANDAO). */
  readonly prevRandao: Hex;
  /**
   * BLOCKHASH source: the hash of an earlier height (the EVM asks only for the 256 before `height`), null if unknown.
   * Without it BLOCKHASH is 0. Every node must answer the same, so only committed blocks qualify.
   */
  readonly blockHash?: (height: number) => Hex | null;
  /**
   * L1 portal deposits to credit before the transactions, in order (the block's forced deposits): LUMIA (asset 1) is
   * the L2's native coin, minted to `to`; ETH (asset 0) is minted as BridgedEth tokens (a predeploy's storage).
   */
  readonly deposits?: readonly { readonly to: Hex; readonly asset: number; readonly amount: bigint }[];
}

export interface ExecutedLog {
  readonly address: Hex;
  readonly topics: readonly Hex[];
  readonly data: Hex;
  /** Index within the block. */
  readonly logIndex: number;
}

export interface ExecutedReceipt {
  readonly transactionHash: Hex;
  readonly transactionIndex: number;
  readonly type: 0 | 1 | 2;
  readonly from: Hex;
  readonly to: Hex | null;
  readonly status: 0 | 1;
  readonly gasUsed: bigint;
  readonly cumulativeGasUsed: bigint;
  readonly effectiveGasPrice: bigint;
  /** Set for every creation transaction, failed ones included (as Ethereum clients report it). */
  readonly contractAddress: Hex | null;
  readonly logs: readonly ExecutedLog[];
  readonly logsBloom: Hex;
  /** Error(string) text or Panic(code) of a reverted transaction, else null. */
  readonly revertReason: string | null;
  /** Typed RLP receipt, as in the receipts trie. */
  readonly encoded: Uint8Array;
}

/** Why a candidate was left out ("build") or a block is invalid ("validate"). */
export type InapplicableCode =
  | "wrong_chain"
  | "block_gas_limit"
  | "fee_below_base_fee"
  | "nonce_too_low"
  | "nonce_gap"
  | "insufficient_balance"
  | "sender_not_eoa"
  | "rejected";

export interface SkippedTx {
  readonly hash: Hex;
  readonly code: InapplicableCode;
  readonly reason: string;
}

export interface ExecutionResult {
  /** Global root: keccak256 over (vm id u8 || root) of `vmRoots` (./vm.ts). */
  readonly stateRoot: Hex;
  readonly vmRoots: readonly VmRoot[];
  readonly transactionsRoot: Hex;
  readonly receiptsRoot: Hex;
  readonly logsBloom: Hex;
  readonly gasUsed: bigint;
  /** Base fees credited to REWARD_POOL_ADDRESS by this block. */
  readonly rewardPoolCredit: bigint;
  readonly included: readonly DecodedTx[];
  readonly skipped: readonly SkippedTx[];
  readonly receipts: readonly ExecutedReceipt[];
  /** New state nodes and code, "0x" key hex -> value, for the commit batch. */
  readonly writes: ReadonlyMap<string, Uint8Array>;
}

export interface GenesisState {
  readonly stateRoot: Hex;
  readonly vmRoots: readonly VmRoot[];
  readonly writes: ReadonlyMap<string, Uint8Array>;
}

export interface AccountState {
  readonly nonce: bigint;
  readonly balance: bigint;
  readonly codeHash: Hex;
  readonly storageRoot: Hex;
}

/** EIP-1186 (eth_getProof) result. */
export interface AccountProof {
  readonly address: Hex;
  readonly balance: Hex;
  readonly codeHash: Hex;
  readonly nonce: Hex;
  readonly storageHash: Hex;
  readonly accountProof: readonly Hex[];
  readonly storageProof: readonly { readonly key: Hex; readonly value: Hex; readonly proof: readonly Hex[] }[];
}

export interface StateReader {
  getAccount(address: Hex): Promise<AccountState | null>;
  /** Empty ("0x") for accounts without code. */
  getCode(address: Hex): Promise<Hex>;
  /** The 32-byte value at `slot` (a 32-byte hex key). */
  getStorageAt(address: Hex, slot: Hex): Promise<Hex>;
  getProof(address: Hex, slots: readonly Hex[]): Promise<AccountProof>;
}

export interface AccessListEntry {
  readonly address: Hex;
  readonly storageKeys: readonly Hex[];
}

export interface CallRequest {
  readonly from?: Hex;
  readonly to?: Hex | null;
  readonly data?: Hex;
  readonly value?: bigint;
  readonly gas?: bigint;
  /** EIP-2930: addresses and slots warm from the start, paid for as a transaction carrying them pays. */
  readonly accessList?: readonly AccessListEntry[];
  /** Report what the call touched (eth_createAccessList): `accessList` in the result. */
  readonly reportAccessList?: boolean;
  /** Accounts changed for this call only (eth_call state overrides), before it runs. */
  readonly stateOverrides?: readonly StateOverride[];
}

/**
 * One account changed for a call (geth's state override): balance, nonce and code replaced; `state` replaces the
 * whole storage (slots not listed read 0), `stateDiff` only the slots listed. Slots and values are 32-byte hex.
 */
export interface StateOverride {
  readonly address: Hex;
  readonly balance?: bigint;
  readonly nonce?: bigint;
  readonly code?: Hex;
  readonly state?: readonly (readonly [Hex, Hex])[];
  readonly stateDiff?: readonly (readonly [Hex, Hex])[];
}

export interface CallResult {
  readonly status: 0 | 1;
  readonly returnData: Hex;
  /** Includes intrinsic gas (the basis of eth_estimateGas). */
  readonly gasUsed: bigint;
  readonly revertReason: string | null;
  /**
   * Why the call failed when it was not a revert: it could not start (intrinsic gas above `gas`, creation code too
   * large...: nothing ran), or it halted ("out of gas", "invalid opcode", "stack underflow"...: all gas is used).
   */
  readonly error: string | null;
  /**
   * With `reportAccessList`: every address and slot the call touched (the request's access list included), apart
   * from the sender, the recipient or created contract, and the precompiles, as geth's access-list tracer leaves them.
   */
  readonly accessList?: readonly AccessListEntry[];
}

/**
 * Watches the EVM run one transaction (debug tracing): called before the transaction at `index` of a block (or the
 * call) runs, with the VM that runs it and the transaction's gas limit. The returned function, if any, is called with
 * the transaction's result (null when it could not run), and makes the transaction run through runTx even where the
 * transfer fast path would apply, with the same outcome.
 */
export type EvmObserver = (index: number, vm: VM, gasLimit: bigint) => EvmWatch | undefined;

/** What watches one transaction run (a tracer): its state before the run and the run's end. */
export interface EvmWatch {
  /**
   * Before the run, on the state it starts from. `touched()` runs the transaction once on a checkpoint it reverts
   * and answers every address (with the storage slots) it touched: its access list with the sender, the recipient or
   * created contract and the fee recipient, precompiles left out.
   */
  readonly prepare?: (touched: () => Promise<readonly AccessListEntry[]>) => Promise<void>;
  /** After the run (null: it did not run), on the state it left. */
  readonly ended: (result: RunTxResult | null) => Promise<void> | void;
}
export type RunTxResult = Awaited<ReturnType<typeof runTx>>;

/** Bounds on eth_getProof arguments. */
export const MAX_PROOF_SLOTS = 1024;
/** Gas cap of one call (geth's default RPC gas cap): bounds the CPU an eth_call can take. */
export const MAX_CALL_GAS = 50_000_000n;

interface Session {
  readonly overlay: OverlayDB;
  readonly stateManager: LinkedStateManager;
}

function addressOf(hex: Hex, what: string): Address {
  if (!isHex(hex, 20)) throw new ExecutionError("invalid_argument", `${what} is not a 20-byte address: ${hex}`);
  return createAddressFromString(hex);
}

function slotBytes(hex: Hex, what: string): Uint8Array {
  if (!isHex(hex) || hex.length > 66) throw new ExecutionError("invalid_argument", `${what} is not a 32-byte word`);
  return setLengthLeft(fromHex(hex), 32);
}

function lower(address: Address): Hex {
  return address.toString().toLowerCase() as Hex;
}

function evmRootOf(roots: readonly VmRoot[]): Hex {
  const problem = vmRootsProblem(roots);
  if (problem !== null) throw new ExecutionError("invalid_argument", problem);
  const evm = roots.find((r) => r.vm === EVM_VM.id);
  if (evm === undefined) throw new ExecutionError("invalid_argument", "no EVM root in the VM root list");
  return evm.root.toLowerCase() as Hex;
}

export class ExecutionCore {
  readonly chainId: bigint;
  private readonly common: Common;
  /**
   * What each block's VM gets a copy of: the common with the VM's and the EVM's parameter tables merged once. createVM
   * merges them into the common it is given through JSON.parse(JSON.stringify(...)) for every VM: 13% of executing a
   * block of ten transfers. The merge is already done, so the copies skip it.
   */
  private readonly vmCommon: Common;
  private readonly cache: NodeCache;
  private readonly flat = new FlatAccounts(MAX_FLAT_ACCOUNTS);
  /** The EVM root of the newest block its node committed (committed()): executions on it skip the store read. */
  private lastCommittedRoot: Hex | null = null;

  private constructor(
    chainId: bigint,
    private readonly db: KeyValueReader,
    cacheBytes: number,
    private genesis: GenesisState | null,
    private readonly transferFastPath: boolean,
  ) {
    this.chainId = chainId;
    this.common = commonFor(chainId);
    this.vmCommon = this.common.copy();
    this.vmCommon.updateParams(paramsVM);
    this.vmCommon.updateParams(paramsEVM);
    // An own property: copies (Object.assign) keep it.
    this.vmCommon.updateParams = () => {};
    this.cache = new NodeCache(cacheBytes);
  }

  static async create(opts: {
    readonly chainId: bigint;
    readonly db: KeyValueReader;
    readonly alloc: readonly GenesisAccount[];
    readonly nodeCacheBytes?: number;
    /**
     * Plain value transfers to accounts without code are applied directly (balances, nonce, fees, EIP-161) instead of
     * through runTx: same state and receipts (test/execution/transfer-fast-path.test.ts), a fraction of the CPU.
     * False only to compare against runTx (tests, benchmarks).
     */
    readonly transferFastPath?: boolean;
  }): Promise<ExecutionCore> {
    if (opts.chainId <= 0n || opts.chainId > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ExecutionError("invalid_argument", `chain id ${opts.chainId} outside [1, 2^53 - 1]`);
    }
    const core = new ExecutionCore(
      opts.chainId,
      opts.db,
      opts.nodeCacheBytes ?? DEFAULT_NODE_CACHE_BYTES,
      null,
      opts.transferFastPath ?? true,
    );
    core.genesis = await core.buildGenesis(opts.alloc);
    return core;
  }

  /** The state of the genesis allocation; its writes are what the node stores before height 1. */
  async genesisStateRoot(): Promise<GenesisState> {
    if (this.genesis === null) throw new Error("ExecutionCore used before create() finished");
    return this.genesis;
  }

  /**
   * Executes `txs` on the state `parentVmRoots` (whose global root must be `parentStateRoot`). "build" leaves out
   * transactions that cannot apply and reports them in `skipped`; "validate" throws ExecutionError
   * "invalid_transaction" on the first one. Missing parent state throws "missing_state".
   */
  async execute(
    parentStateRoot: Hex,
    parentVmRoots: readonly VmRoot[],
    env: BlockEnv,
    txs: readonly DecodedTx[],
    mode: "build" | "validate",
    /** Build mode: stop including transactions once this much time has passed (the rest stay in the mempool). */
    buildBudgetMs?: number,
    /** The block's SVM side (EVM -> SVM invokes) and its SVM transactions, run before the EVM state is committed. */
    crossVm?: CrossVm,
    /** Watches transactions run (debug tracing of a block replayed in "validate" mode). */
    observe?: EvmObserver,
  ): Promise<ExecutionResult> {
    const parentEvmRoot = evmRootOf(parentVmRoots);
    if (globalStateRoot(parentVmRoots) !== parentStateRoot.toLowerCase()) {
      throw new ExecutionError("root_mismatch", "parent state root does not commit to the parent VM roots", {
        parentStateRoot,
        parentVmRoots,
      });
    }
    this.checkEnv(env);
    if (txs.length > MAX_CANDIDATE_TRANSACTIONS) {
      throw new ExecutionError("invalid_argument", `${txs.length} candidates exceed ${MAX_CANDIDATE_TRANSACTIONS}`);
    }
    await this.requireCommitted(parentEvmRoot);
    const session = await this.open(parentEvmRoot, null, true, true);
    const sm = session.stateManager;
    sm.link = crossVm?.svm ?? null;
    const vm = await this.vmFor(sm, env, sm.link);
    const block = this.blockFor(env);
    const baseFee = env.baseFeePerGas;

    const included: DecodedTx[] = [];
    const skipped: SkippedTx[] = [];
    const receipts: ExecutedReceipt[] = [];
    const logsBloom = new Uint8Array(BLOOM_BYTES);
    let gasUsed = 0n;
    let rewardPoolCredit = 0n;
    let logIndex = 0;

    const deadline = mode === "build" && buildBudgetMs !== undefined ? performance.now() + buildBudgetMs : Infinity;
    // Plain transfers change accounts here; written back before runTx, the cross-VM side and the pool credit read them.
    const ledger = new TransferLedger(sm);
    const coinbase = env.coinbase.toLowerCase();
    await withState(parentEvmRoot, async () => {
      await sm.checkpoint();
      for (const d of env.deposits ?? []) {
        if (d.amount === 0n) continue;
        if (d.asset === LUMIA_ASSET) {
          const to = createAddressFromString(d.to);
          const account = (await sm.getAccount(to)) ?? new Account();
          account.balance += d.amount;
          await sm.putAccount(to, account);
        } else if (d.asset === ETH_ASSET) {
          await creditBridgedEth(sm, d.to, d.amount);
        }
      }
      for (const [index, tx] of txs.entries()) {
        if (mode === "build" && env.gasLimit - gasUsed < MIN_TX_GAS) break;
        // A block every validator must re-execute within a round: past the budget the proposer stops adding.
        if (included.length > 0 && performance.now() > deadline) break;
        let problem = await this.inapplicable(ledger, tx, env, gasUsed);
        const watched = problem === null && observe !== undefined ? observe(index, vm, tx.tx.gasLimit) : undefined;
        if (problem === null && watched === undefined && this.transferFastPath && isPlainTransfer(tx)) {
          const spent = await plainTransfer(ledger, tx, env, coinbase);
          if (spent !== null) {
            gasUsed += spent;
            rewardPoolCredit += spent * baseFee;
            receipts.push(transferReceipt(tx, included.length, spent, gasUsed, baseFee));
            included.push(tx);
            continue;
          }
        }
        let result: RunTxResult | null = null;
        if (problem === null) {
          await ledger.writeBack();
          const run = (reportAccessList: boolean) =>
            runTx(vm, { tx: tx.tx, block, blockGasUsed: gasUsed, reportAccessList });
          try {
            await watched?.prepare?.(() => touchedBy(vm, run, tx.from, tx.to, env.coinbase));
            result = await run(false);
          } catch (error) {
            if (error instanceof ExecutionError || isMissingNode(error)) throw error;
            problem = { code: "rejected", reason: messageOf(error) };
          } finally {
            await watched?.ended(result);
          }
        }
        if (problem !== null || result === null) {
          const p = problem ?? { code: "rejected" as const, reason: "no result" };
          if (mode === "validate") {
            throw new ExecutionError(
              "invalid_transaction",
              `transaction ${index} (${tx.hash}): ${p.code}: ${p.reason}`,
              {
                index,
                hash: tx.hash,
                code: p.code,
              },
            );
          }
          skipped.push({ hash: tx.hash, code: p.code, reason: p.reason });
          continue;
        }
        const spent = result.totalGasSpent;
        gasUsed += spent;
        rewardPoolCredit += spent * baseFee;
        const receipt = this.receiptOf(tx, included.length, result, gasUsed, baseFee, logIndex);
        logIndex += receipt.logs.length;
        orBloom(logsBloom, result.bloom.bitvector);
        included.push(tx);
        receipts.push(receipt);
      }
      await ledger.writeBack();
      if (crossVm?.afterEvm !== undefined) {
        await crossVm.afterEvm(
          evmGateway(vm, block, env, {
            gasUsed: () => gasUsed,
            spend: (gas) => {
              gasUsed += gas;
              rewardPoolCredit += gas * baseFee;
            },
          }),
        );
      }
      if (rewardPoolCredit > 0n) {
        const pool = createAddressFromString(REWARD_POOL_ADDRESS);
        const account = (await sm.getAccount(pool)) ?? new Account();
        account.balance += rewardPoolCredit;
        await sm.putAccount(pool, account);
      }
      await sm.commit();
    });
    const evmRoot = toHex(await withState(parentEvmRoot, () => sm.getStateRoot()));
    this.flat.childOf(parentEvmRoot, evmRoot, sm.flushedAccounts);
    const vmRoots = this.replaceEvmRoot(parentVmRoots, evmRoot);
    const transactionsRoot = orderedTrieRoot(
      included.map((t) => t.raw),
      fastKeccak256,
    );
    const receiptsRoot = orderedTrieRoot(
      receipts.map((r) => r.encoded),
      fastKeccak256,
    );
    const writes = reachableWrites(evmRoot, session.overlay.writes);
    this.publish(writes);
    return {
      stateRoot: globalStateRoot(vmRoots),
      vmRoots,
      transactionsRoot,
      receiptsRoot,
      logsBloom: toHex(logsBloom),
      gasUsed,
      rewardPoolCredit,
      included,
      skipped,
      receipts,
      writes,
    };
  }

  /**
   * Reads the state `vmRoots` commits to: committed state, or an uncommitted result's state when its `writes` are
   * given. Methods throw ExecutionError "missing_state" when the root is unknown.
   */
  reader(vmRoots: readonly VmRoot[], pendingWrites?: ReadonlyMap<string, Uint8Array>): StateReader {
    const root = evmRootOf(vmRoots);
    let session: Promise<Session> | null = null;
    const sm = (): Promise<MerkleStateManager> => {
      session ??= this.open(root, pendingWrites ?? null, false);
      return session.then((s) => s.stateManager);
    };
    return {
      getAccount: (address) =>
        withState(root, async () => {
          const account = await (await sm()).getAccount(addressOf(address, "address"));
          if (account === undefined) return null;
          return {
            nonce: account.nonce,
            balance: account.balance,
            codeHash: toHex(account.codeHash),
            storageRoot: toHex(account.storageRoot),
          };
        }),
      getCode: (address) =>
        withState(root, async () => toHex(await (await sm()).getCode(addressOf(address, "address")))),
      getStorageAt: (address, slot) =>
        withState(root, async () => {
          const value = await (await sm()).getStorage(addressOf(address, "address"), slotBytes(slot, "slot"));
          return toHex(setLengthLeft(value, 32));
        }),
      getProof: (address, slots) =>
        withState(root, async () => {
          if (slots.length > MAX_PROOF_SLOTS) {
            throw new ExecutionError("invalid_argument", `${slots.length} storage keys exceed ${MAX_PROOF_SLOTS}`);
          }
          const keys = slots.map((s) => slotBytes(s, "storage key"));
          const proof = (await getMerkleStateProof(await sm(), addressOf(address, "address"), keys)) as AccountProof;
          // An absent account has no storage trie: like geth, answer every key with value 0 and an empty proof (the
          // account proof already proves the absence).
          if (proof.storageProof.length === 0 && slots.length > 0) {
            return { ...proof, storageProof: slots.map((key) => ({ key, value: "0x0" as Hex, proof: [] })) };
          }
          return proof;
        }),
    };
  }

  /** Runs a call on `vmRoots` without keeping any state change (eth_call, eth_estimateGas). */
  async call(
    vmRoots: readonly VmRoot[],
    env: BlockEnv,
    request: CallRequest,
    svm?: SvmSide,
    /** Watches the call run (debug_traceCall; index 0). */
    observe?: EvmObserver,
  ): Promise<CallResult> {
    const root = evmRootOf(vmRoots);
    this.checkEnv(env);
    const session = await this.open(root, null, false);
    session.stateManager.link = svm ?? null;
    const vm = await this.vmFor(session.stateManager, env, session.stateManager.link);
    const block = this.blockFor(env);
    const from = addressOf(request.from ?? ZERO_ADDRESS, "from");
    const gasLimit = request.gas ?? (env.gasLimit < MAX_CALL_GAS ? env.gasLimit : MAX_CALL_GAS);
    if (gasLimit <= 0n || gasLimit > MAX_CALL_GAS) {
      throw new ExecutionError("invalid_argument", `call gas ${gasLimit} outside (0, ${MAX_CALL_GAS}]`);
    }
    let tx: ReturnType<typeof createFeeMarket1559Tx>;
    try {
      tx = createFeeMarket1559Tx(
        {
          ...(request.to === undefined || request.to === null ? {} : { to: request.to }),
          data: request.data ?? "0x",
          value: request.value ?? 0n,
          gasLimit,
          maxFeePerGas: env.baseFeePerGas,
          maxPriorityFeePerGas: 0n,
          ...(request.accessList === undefined
            ? {}
            : { accessList: request.accessList.map((e) => ({ address: e.address, storageKeys: [...e.storageKeys] })) }),
        },
        { common: this.common, freeze: false },
      );
    } catch (error) {
      return { status: 0, returnData: "0x", gasUsed: 0n, revertReason: null, error: messageOf(error) };
    }
    // Unsigned: runTx asks the transaction for its sender, so the call's `from` is answered directly.
    Object.defineProperty(tx, "getSenderAddress", { value: () => from });
    return withState(root, async () => {
      // The session's writes stay in its own overlay: the overrides never reach the store or another execution.
      if (request.stateOverrides !== undefined) await applyStateOverrides(session.stateManager, request.stateOverrides);
      const watched = observe?.(0, vm, gasLimit);
      let ran: RunTxResult | null = null;
      const run = (reportAccessList: boolean) =>
        runTx(vm, {
          tx,
          block,
          skipNonce: true,
          skipBalance: true,
          skipBlockGasLimitValidation: true,
          reportAccessList,
        });
      try {
        await watched?.prepare?.(() => touchedBy(vm, run, lower(from), request.to ?? null, env.coinbase));
        const result = await run(request.reportAccessList === true);
        ran = result;
        const exception = result.execResult.exceptionError;
        const failed = exception !== undefined;
        const reverted = exception?.error === "revert";
        const returnValue = result.execResult.returnValue;
        const out: CallResult = {
          status: failed ? 0 : 1,
          returnData: toHex(returnValue),
          gasUsed: result.totalGasSpent,
          revertReason: failed ? decodeRevertReason(returnValue) : null,
          error: failed && !reverted ? String(exception.error) : null,
        };
        if (request.reportAccessList !== true) return out;
        // geth's exclusions: the sender, the recipient (or the contract created) and the precompiles are warm anyway.
        const excluded = new Set([lower(from), lower(result.createdAddress ?? tx.to ?? from)]);
        const accessList = (result.accessList ?? [])
          .map((e) => ({ address: e.address.toLowerCase() as Hex, storageKeys: e.storageKeys as Hex[] }))
          .filter(
            (e) => !excluded.has(e.address) && vm.evm.getPrecompile?.(createAddressFromString(e.address)) === undefined,
          )
          .map((e) => ({
            address: e.address,
            storageKeys: e.storageKeys.map((k) => toHex(setLengthLeft(fromHex(k), 32))),
          }));
        return { ...out, accessList };
      } catch (error) {
        if (error instanceof ExecutionError || isMissingNode(error)) throw error;
        return { status: 0, returnData: "0x", gasUsed: 0n, revertReason: null, error: messageOf(error) };
      } finally {
        await watched?.ended(ran);
      }
    });
  }

  /**
   * eth_simulateV1 (./simulate.ts): the blocks' calls run in order on one private view of the state after `base`,
   * each on the state the calls before it left; nothing reaches the store. Block numbers must grow (a gap is filled
   * with empty blocks) and timestamps too. Without `validation` a call runs as eth_call does (no nonce or balance
   * check, base fee 0 unless overridden); with it, as a transaction would, less the signature. Throws
   * SimulationError for what makes the whole request unanswerable.
   */
  async simulate(
    vmRoots: readonly VmRoot[],
    base: SimulationBase,
    blocks: readonly SimulatedBlockRequest[],
    options: SimulateOptions,
    svm?: SvmSide,
  ): Promise<SimulatedBlock[]> {
    const root = evmRootOf(vmRoots);
    const session = await this.open(root, null, false);
    const sm = session.stateManager;
    sm.link = svm ?? null;
    const simulatedHashes = new Map<number, Hex>();
    const blockHash = (height: number) => simulatedHashes.get(height) ?? base.blockHash(height);
    let parent = {
      height: base.height,
      hash: base.hash,
      timestampMs: base.timestampMs,
      gasLimit: base.gasLimit,
      gasUsed: base.gasUsed,
      baseFeePerGas: base.baseFeePerGas,
    };
    let gasLeft = options.gasCap;
    const out: SimulatedBlock[] = [];
    return withState(root, async () => {
      for (const [i, request] of blocks.entries()) {
        const number = request.number ?? parent.height + 1;
        if (number <= parent.height) {
          throw new SimulationError(
            "block_number",
            `block ${i}: number ${number} is not above the one before it, ${parent.height}`,
          );
        }
        if (out.length + (number - parent.height) > MAX_SIMULATED_BLOCKS) {
          throw new SimulationError("too_many", `more than ${MAX_SIMULATED_BLOCKS} blocks, with the gaps filled`);
        }
        // Gaps between numbers are filled with empty blocks, each a second after the one before.
        while (parent.height + 1 < number) {
          const empty: SimulatedBlockRequest = { calls: [] };
          const filled = await this.simulateBlock(sm, vmRoots, parent, empty, options, blockHash, gasLeft);
          out.push(filled.block);
          simulatedHashes.set(filled.block.env.height, filled.block.hash);
          parent = nextParent(filled.block);
        }
        const timestampMs = request.timestampMs ?? parent.timestampMs + 1000;
        if (Math.floor(timestampMs / 1000) <= Math.floor(parent.timestampMs / 1000)) {
          throw new SimulationError(
            "block_timestamp",
            `block ${i}: time ${Math.floor(timestampMs / 1000)} is not after the block before it, ${Math.floor(parent.timestampMs / 1000)}`,
          );
        }
        const ran = await this.simulateBlock(
          sm,
          vmRoots,
          parent,
          { ...request, number, timestampMs },
          options,
          blockHash,
          gasLeft,
        );
        gasLeft = ran.gasLeft;
        out.push(ran.block);
        simulatedHashes.set(ran.block.env.height, ran.block.hash);
        parent = nextParent(ran.block);
      }
      return out;
    });
  }

  /** One simulated block on the simulation's state: its calls, the reward pool credit, its root and hash. */
  private async simulateBlock(
    sm: LinkedStateManager,
    baseVmRoots: readonly VmRoot[],
    parent: {
      height: number;
      hash: Hex;
      timestampMs: number;
      gasLimit: bigint;
      gasUsed: bigint;
      baseFeePerGas: bigint;
    },
    request: SimulatedBlockRequest,
    options: SimulateOptions,
    blockHash: (height: number) => Hex | null,
    gasCapLeft: bigint,
  ): Promise<{ block: SimulatedBlock; gasLeft: bigint }> {
    const env: BlockEnv = {
      chainId: this.chainId,
      height: request.number ?? parent.height + 1,
      timestampMs: request.timestampMs ?? parent.timestampMs + 1000,
      coinbase: request.feeRecipient ?? ZERO_ADDRESS,
      gasLimit: request.gasLimit ?? parent.gasLimit,
      baseFeePerGas: request.baseFeePerGas ?? (options.validation ? this.nextBaseFee(parent) : 0n),
      prevRandao: request.prevRandao ?? ZERO_WORD,
      blockHash,
    };
    this.checkEnv(env);
    if (request.stateOverrides !== undefined) await applyStateOverrides(sm, request.stateOverrides);
    const vm = await this.vmFor(sm, env, sm.link);
    const block = this.blockFor(env);
    const calls: SimulatedCall[] = [];
    const unsigned: Uint8Array[] = [];
    let gasUsed = 0n;
    let gasLeft = gasCapLeft;
    for (const [index, call] of request.calls.entries()) {
      const where = `block ${env.height}, call ${index}`;
      const from = addressOf(call.from ?? ZERO_ADDRESS, "from");
      const account = (await sm.getAccount(from)) ?? new Account();
      const nonce = call.nonce ?? account.nonce;
      const blockGasLeft = env.gasLimit - gasUsed;
      const gas = call.gas ?? (blockGasLeft < gasLeft ? blockGasLeft : gasLeft);
      if (gas > blockGasLeft) {
        throw new SimulationError(
          "block_gas_limit",
          `${where}: gas ${gas} above what the block has left, ${blockGasLeft}`,
        );
      }
      if (gas > gasLeft) {
        throw new SimulationError("too_many", `${where}: the simulation's calls need more than the gas cap ${gasLeft}`);
      }
      const legacy = call.gasPrice !== undefined;
      let maxFeePerGas = call.gasPrice ?? call.maxFeePerGas ?? (options.validation ? env.baseFeePerGas : 0n);
      const maxPriorityFeePerGas = call.gasPrice ?? call.maxPriorityFeePerGas ?? 0n;
      if (options.validation) {
        if (nonce < account.nonce) {
          throw new SimulationError(
            "nonce_too_low",
            `${where}: nonce too low: address ${lower(from)}, tx: ${nonce} state: ${account.nonce}`,
          );
        }
        if (nonce > account.nonce) {
          throw new SimulationError(
            "nonce_too_high",
            `${where}: nonce too high: address ${lower(from)}, tx: ${nonce} state: ${account.nonce}`,
          );
        }
        if (maxFeePerGas < env.baseFeePerGas) {
          throw new SimulationError(
            "fee_too_low",
            `${where}: max fee per gas less than block base fee: maxFeePerGas: ${maxFeePerGas}, baseFee: ${env.baseFeePerGas}`,
          );
        }
      } else if (maxFeePerGas < env.baseFeePerGas) {
        // As eth_call: no fee check, the base fee is paid (the balance is made to suffice).
        maxFeePerGas = env.baseFeePerGas;
      }
      let tx: ReturnType<typeof createFeeMarket1559Tx>;
      try {
        tx = createFeeMarket1559Tx(
          {
            nonce,
            ...(call.to === undefined || call.to === null ? {} : { to: call.to }),
            data: call.data ?? "0x",
            value: call.value ?? 0n,
            gasLimit: gas,
            maxFeePerGas,
            maxPriorityFeePerGas: maxPriorityFeePerGas < maxFeePerGas ? maxPriorityFeePerGas : maxFeePerGas,
            ...(call.accessList === undefined
              ? {}
              : { accessList: call.accessList.map((e) => ({ address: e.address, storageKeys: [...e.storageKeys] })) }),
          },
          { common: this.common, freeze: false },
        );
      } catch (error) {
        throw new SimulationError("invalid", `${where}: ${messageOf(error)}`);
      }
      const intrinsic = tx.getIntrinsicGas();
      if (gas < intrinsic) {
        throw new SimulationError(
          "intrinsic_gas",
          `${where}: intrinsic gas too low: gas ${gas}, minimum needed ${intrinsic}`,
        );
      }
      if (options.validation) {
        const cost = gas * maxFeePerGas + (call.value ?? 0n);
        if (account.balance < cost) {
          throw new SimulationError(
            "insufficient_funds",
            `${where}: insufficient funds for gas * price + value: address ${lower(from)} have ${account.balance} want ${cost}`,
          );
        }
      }
      Object.defineProperty(tx, "getSenderAddress", { value: () => from });
      const tracer = options.traceTransfers ? createTracer({ tracer: "callTracer", withLog: true }) : null;
      const watched = tracer?.observer(0)(0, vm, gas);
      let ran: RunTxResult | null = null;
      try {
        ran = await runTx(vm, {
          tx,
          block,
          blockGasUsed: gasUsed,
          skipNonce: !options.validation,
          skipBalance: !options.validation,
          skipBlockGasLimitValidation: true,
        });
      } catch (error) {
        if (error instanceof ExecutionError || isMissingNode(error)) throw error;
        throw new SimulationError("invalid", `${where}: ${messageOf(error)}`);
      } finally {
        await watched?.ended(ran);
      }
      const exec = ran.execResult;
      const exception = exec.exceptionError;
      const spent = ran.totalGasSpent;
      gasUsed += spent;
      gasLeft -= spent;
      const returnData = toHex(exec.returnValue);
      const logs =
        exception !== undefined
          ? []
          : tracer !== null
            ? logsWithTransfers(tracer.result() as CallFrame)
            : (exec.logs ?? []).map(([address, topics, data]) => ({
                address: toHex(address),
                topics: topics.map((t) => toHex(t)),
                data: toHex(data),
              }));
      unsigned.push(tx.getMessageToSign());
      calls.push({
        hash: toHex(keccak256(concatBytes(tx.getHashedMessageToSign(), from.bytes))),
        type: legacy ? 0 : 2,
        from: lower(from),
        to: call.to ?? null,
        nonce,
        gas,
        value: call.value ?? 0n,
        input: call.data ?? "0x",
        maxFeePerGas,
        maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
        status: exception === undefined ? 1 : 0,
        returnData,
        gasUsed: spent,
        logs,
        error:
          exception === undefined
            ? null
            : exception.error === "revert"
              ? { code: -32000, message: revertMessage(exec.returnValue), data: returnData }
              : { code: -32015, message: String(exception.error) },
      });
    }
    const credit = gasUsed * env.baseFeePerGas;
    if (credit > 0n) {
      const pool = createAddressFromString(REWARD_POOL_ADDRESS);
      const account = (await sm.getAccount(pool)) ?? new Account();
      account.balance += credit;
      await sm.putAccount(pool, account);
    }
    const evmRoot = toHex(await sm.getStateRoot());
    const stateRoot = globalStateRoot(this.replaceEvmRoot(baseVmRoots, evmRoot));
    const transactionsRoot = orderedTrieRoot(unsigned, fastKeccak256);
    const hash = toHex(
      keccak256(
        encodeRlp([
          fromHex(parent.hash),
          bigIntToUnpaddedBytes(BigInt(env.height)),
          bigIntToUnpaddedBytes(BigInt(Math.floor(env.timestampMs / 1000))),
          fromHex(env.coinbase),
          bigIntToUnpaddedBytes(env.gasLimit),
          bigIntToUnpaddedBytes(gasUsed),
          bigIntToUnpaddedBytes(env.baseFeePerGas),
          fromHex(env.prevRandao),
          fromHex(stateRoot),
          fromHex(transactionsRoot),
        ]),
      ),
    );
    return {
      block: { env, hash, parentHash: parent.hash, stateRoot, transactionsRoot, gasUsed, calls },
      gasLeft,
    };
  }

  /** EIP-1559: the base fee moves by at most 1/8 towards keeping blocks at half the gas limit. */
  nextBaseFee(parent: { readonly gasLimit: bigint; readonly gasUsed: bigint; readonly baseFeePerGas: bigint }): bigint {
    const target = parent.gasLimit / 2n;
    const base = parent.baseFeePerGas;
    if (target === 0n || parent.gasUsed === target) return base;
    if (parent.gasUsed > target) {
      const delta = (base * (parent.gasUsed - target)) / target / 8n;
      return base + (delta > 1n ? delta : 1n);
    }
    return base - (base * (target - parent.gasUsed)) / target / 8n;
  }

  private checkEnv(env: BlockEnv): void {
    if (env.chainId !== this.chainId) {
      throw new ExecutionError("invalid_argument", `block env chain ${env.chainId}, core chain ${this.chainId}`);
    }
    if (!Number.isSafeInteger(env.height) || env.height < 0 || !Number.isSafeInteger(env.timestampMs)) {
      throw new ExecutionError("invalid_argument", "block env height/timestamp out of range");
    }
    if (env.gasLimit <= 0n || env.baseFeePerGas < 0n || !isHex(env.prevRandao, 32) || !isHex(env.coinbase, 20)) {
      throw new ExecutionError("invalid_argument", "block env gas limit, base fee, prevRandao or coinbase malformed");
    }
  }

  /**
   * Tells the core that the state with these roots is durable in the store (its block was committed): the next
   * executions, built on it, need not read the store to check so. Keeps the consensus path free of a disk read.
   */
  committed(vmRoots: readonly VmRoot[]): void {
    this.lastCommittedRoot = evmRootOf(vmRoots);
  }

  /**
   * Executions build on committed state only: `writes` leaves out nodes read from below (./overlay.ts), which is
   * sound only if everything under the parent root is in the store. Commits are atomic, so the root node suffices.
   */
  private async requireCommitted(evmRoot: Hex): Promise<void> {
    if (evmRoot === EMPTY_TRIE_ROOT || evmRoot === this.lastCommittedRoot) return;
    let node: Uint8Array | undefined;
    try {
      node = await this.db.get(fromHex(evmRoot));
    } catch (cause) {
      throw new ExecutionError("storage", "reading the parent state root failed", { evmRoot }, { cause });
    }
    if (node === undefined) {
      throw new ExecutionError("missing_state", `parent state root ${evmRoot} is not committed`, { evmRoot });
    }
  }

  /** A private state view of `evmRoot`. `caches` batch account/storage writes (executions); reads skip them. */
  private async open(
    evmRoot: Hex,
    pending: ReadonlyMap<string, Uint8Array> | null,
    caches = true,
    /** An execution: start a flat account view of `evmRoot` if there is none (./flat-accounts.ts). */
    execution = false,
  ): Promise<Session> {
    const overlay = new OverlayDB(this.db, this.cache, pending);
    const trie = new MerklePatriciaTrie({
      db: overlay,
      valueEncoding: ValueEncoding.Bytes,
      useKeyHashing: true,
      common: this.common,
    });
    const stateManager = new LinkedStateManager({
      common: this.common,
      trie,
      ...(caches ? { caches: new Caches() } : {}),
    });
    if (evmRoot !== EMPTY_TRIE_ROOT) {
      const found = await trie.checkRoot(fromHex(evmRoot));
      if (!found)
        throw new ExecutionError("missing_state", `state root ${evmRoot} is not in the database`, { evmRoot });
    }
    trie.root(fromHex(evmRoot));
    const flat = pending === null ? this.flat.at(evmRoot, execution) : null;
    if (flat !== null) stateManager.useFlatView(flat);
    return { overlay, stateManager };
  }

  private async vmFor(stateManager: MerkleStateManager, env: BlockEnv, svm: SvmSide | null): Promise<VM> {
    const lookup = env.blockHash;
    const zero = new Uint8Array(32);
    // What the EVM needs of a blockchain: BLOCKHASH asks for a block by number and uses its hash.
    const blockchain = {
      getBlock: async (height: number) => {
        const hash = lookup?.(height) ?? null;
        const bytes = hash !== null && isHex(hash, 32) ? fromHex(hash) : zero;
        return { hash: () => bytes };
      },
      putBlock: async () => {},
      shallowCopy() {
        return this;
      },
    };
    // A copy per VM: the EVM subscribes to its common's events, which would pile up on a shared instance.
    const precompile = svmPrecompileOptions(svm);
    const vm = await createVM({
      common: this.vmCommon.copy(),
      stateManager,
      blockchain,
      evmOpts: { customPrecompiles: precompile.customPrecompiles },
    });
    if (svm !== null) precompile.attach(vm);
    return vm;
  }

  private blockFor(env: BlockEnv): EthBlock {
    return createBlock(
      {
        header: {
          number: BigInt(env.height),
          timestamp: BigInt(Math.floor(env.timestampMs / 1000)),
          coinbase: env.coinbase,
          gasLimit: env.gasLimit,
          baseFeePerGas: env.baseFeePerGas,
          mixHash: env.prevRandao,
        },
      },
      { common: this.common },
    );
  }

  /** The stateless and account checks that decide whether a transaction can apply now. */
  private async inapplicable(
    ledger: TransferLedger,
    tx: DecodedTx,
    env: BlockEnv,
    gasUsed: bigint,
  ): Promise<{ code: InapplicableCode; reason: string } | null> {
    if (tx.chainId !== this.chainId) return { code: "wrong_chain", reason: `transaction chain ${tx.chainId}` };
    if (tx.gasLimit > env.gasLimit - gasUsed) {
      return {
        code: "block_gas_limit",
        reason: `gas limit ${tx.gasLimit}, ${env.gasLimit - gasUsed} left in the block`,
      };
    }
    if (tx.maxFeePerGas < env.baseFeePerGas) {
      return { code: "fee_below_base_fee", reason: `max fee ${tx.maxFeePerGas} < base fee ${env.baseFeePerGas}` };
    }
    const account = await ledger.account(tx.from, tx.sender);
    const nonce = account.nonce;
    if (tx.nonce < nonce)
      return { code: "nonce_too_low", reason: `account nonce ${nonce}, transaction nonce ${tx.nonce}` };
    if (tx.nonce > nonce) return { code: "nonce_gap", reason: `account nonce ${nonce}, transaction nonce ${tx.nonce}` };
    const balance = account.balance;
    const maxCost = tx.gasLimit * tx.maxFeePerGas + tx.value;
    if (balance < maxCost) return { code: "insufficient_balance", reason: `balance ${balance}, needs ${maxCost}` };
    if (hasCode(account)) {
      return { code: "sender_not_eoa", reason: "the sender has code (EIP-3607)" };
    }
    return null;
  }

  private receiptOf(
    tx: DecodedTx,
    transactionIndex: number,
    result: Awaited<ReturnType<typeof runTx>>,
    cumulativeGasUsed: bigint,
    baseFee: bigint,
    firstLogIndex: number,
  ): ExecutedReceipt {
    const failed = result.execResult.exceptionError !== undefined;
    const logs = (result.execResult.logs ?? []).map(([address, topics, data], i) => ({
      address: toHex(address),
      topics: topics.map((t) => toHex(t)),
      data: toHex(data),
      logIndex: firstLogIndex + i,
    }));
    const isRevert = failed && result.execResult.exceptionError?.error === "revert";
    return executedReceipt(tx, transactionIndex, cumulativeGasUsed, baseFee, {
      status: failed ? 0 : 1,
      gasUsed: result.totalGasSpent,
      logs,
      logsBloom: toHex(result.bloom.bitvector),
      revertReason: isRevert ? decodeRevertReason(result.execResult.returnValue) : null,
      encoded: encodeReceipt(result.receipt, tx.type),
    });
  }

  /** Offers a result's nodes to the shared cache: the next block usually reads them. */
  private publish(writes: ReadonlyMap<string, Uint8Array>): void {
    for (const [key, value] of writes) this.cache.set(key, value);
  }

  private replaceEvmRoot(parent: readonly VmRoot[], evmRoot: Hex): VmRoot[] {
    return parent.map((r) => (r.vm === EVM_VM.id ? { vm: r.vm, root: evmRoot } : r));
  }

  private async buildGenesis(alloc: readonly GenesisAccount[]): Promise<GenesisState> {
    const session = await this.open(EMPTY_TRIE_ROOT, null);
    const sm = session.stateManager;
    const seen = new Set<string>();
    await sm.checkpoint();
    for (const [i, entry] of alloc.entries()) {
      const address = addressOf(entry.address, `alloc[${i}].address`);
      const key = lower(address);
      if (seen.has(key)) throw new ExecutionError("invalid_argument", `alloc[${i}]: duplicate address ${key}`);
      seen.add(key);
      const nonce = entry.nonce ?? 0n;
      if (entry.balance < 0n || nonce < 0n) {
        throw new ExecutionError("invalid_argument", `alloc[${i}]: negative balance or nonce`);
      }
      await sm.putAccount(address, new Account(nonce, entry.balance));
      if (entry.code !== undefined && entry.code !== null && entry.code !== "0x") {
        if (!isHex(entry.code) || entry.code.length > 2 + 2 * MAX_CODE_BYTES) {
          throw new ExecutionError(
            "invalid_argument",
            `alloc[${i}].code is not hex of at most ${MAX_CODE_BYTES} bytes`,
          );
        }
        await sm.putCode(address, fromHex(entry.code));
      }
      const storage = entry.storage instanceof Map ? [...entry.storage] : Object.entries(entry.storage ?? {});
      for (const [slot, value] of storage) {
        await sm.putStorage(address, slotBytes(slot as Hex, `alloc[${i}] slot`), slotBytes(value as Hex, "value"));
      }
    }
    await sm.commit();
    const evmRoot = toHex(await sm.getStateRoot());
    const vmRoots = [{ vm: EVM_VM.id, root: evmRoot }];
    return { stateRoot: globalStateRoot(vmRoots), vmRoots, writes: reachableWrites(evmRoot, session.overlay.writes) };
  }
}

/** The receipt runTx gives a successful plain transfer: no logs, an empty bloom. */
function transferReceipt(
  tx: DecodedTx,
  transactionIndex: number,
  spent: bigint,
  cumulativeGasUsed: bigint,
  baseFee: bigint,
): ExecutedReceipt {
  return executedReceipt(tx, transactionIndex, cumulativeGasUsed, baseFee, {
    status: 1,
    gasUsed: spent,
    logs: NO_LOGS,
    logsBloom: EMPTY_BLOOM_HEX,
    revertReason: null,
    encoded: encodeTransferReceipt(tx.type, cumulativeGasUsed),
  });
}

const NO_LOGS: readonly ExecutedLog[] = Object.freeze([]);
const EMPTY_BLOOM = new Uint8Array(BLOOM_BYTES);
const EMPTY_BLOOM_HEX = toHex(EMPTY_BLOOM);
const STATUS_SUCCESS = Uint8Array.of(1);

/**
 * encodeReceipt of @ethereumjs/vm for a successful receipt without logs: `type ||` RLP([0x01, cumulativeGasUsed,
 * empty bloom, []]) (no type byte for a legacy transaction), for a cumulative gas above 0 (it is at least 21,000).
 * Every transfer has one; the general encoder builds it from a fresh bloom through several intermediate arrays.
 */
export function encodeTransferReceipt(type: 0 | 1 | 2, cumulativeGasUsed: bigint): Uint8Array {
  const list = encodeRlp([STATUS_SUCCESS, bigIntToUnpaddedBytes(cumulativeGasUsed), EMPTY_BLOOM, []]);
  return type === 0 ? list : concatBytes(Uint8Array.of(type), list);
}

const ZERO_WORD: Hex = `0x${"00".repeat(32)}`;
const ZERO_ADDRESS: Hex = `0x${"00".repeat(20)}`;

/** A simulated block as the parent of the next one. */
function nextParent(block: SimulatedBlock) {
  return {
    height: block.env.height,
    hash: block.hash,
    timestampMs: block.env.timestampMs,
    gasLimit: block.env.gasLimit,
    gasUsed: block.gasUsed,
    baseFeePerGas: block.env.baseFeePerGas,
  };
}

/** geth's message for a reverted call: "execution reverted", with the reason when the data is Error(string). */
function revertMessage(returnValue: Uint8Array): string {
  const reason = decodeRevertReason(returnValue);
  return reason === null ? "execution reverted" : `execution reverted: ${reason}`;
}

/**
 * Every address (and storage slot) a transaction touches, from one run of it on a checkpoint that is reverted: its
 * EIP-2929 access list, the sender, the recipient or created contract, the fee recipient; no precompile.
 */
async function touchedBy(
  vm: VM,
  run: (reportAccessList: boolean) => Promise<RunTxResult>,
  from: Hex,
  to: Hex | null,
  coinbase: Hex,
): Promise<AccessListEntry[]> {
  const sm = vm.stateManager;
  await sm.checkpoint();
  let result: RunTxResult;
  try {
    result = await run(true);
  } finally {
    await sm.revert();
  }
  const slots = new Map<Hex, Set<Hex>>();
  const add = (address: string | null | undefined) => {
    if (address === null || address === undefined) return undefined;
    const a = address.toLowerCase() as Hex;
    if (vm.evm.getPrecompile?.(createAddressFromString(a)) !== undefined) return undefined;
    let set = slots.get(a);
    if (set === undefined) {
      set = new Set();
      slots.set(a, set);
    }
    return set;
  };
  for (const a of [from, to, result.createdAddress?.toString(), coinbase]) add(a);
  for (const e of result.accessList ?? []) {
    const set = add(e.address);
    for (const k of e.storageKeys) set?.add(toHex(setLengthLeft(fromHex(k as Hex), 32)));
  }
  return [...slots].map(([address, keys]) => ({ address, storageKeys: [...keys] }));
}

/** Writes a call's state overrides into its own session's state (never a block's). */
async function applyStateOverrides(sm: MerkleStateManager, overrides: readonly StateOverride[]): Promise<void> {
  for (const o of overrides) {
    const address = createAddressFromString(o.address);
    const account = (await sm.getAccount(address)) ?? new Account();
    if (o.balance !== undefined) account.balance = o.balance;
    if (o.nonce !== undefined) account.nonce = o.nonce;
    await sm.putAccount(address, account);
    if (o.code !== undefined) await sm.putCode(address, fromHex(o.code));
    if (o.state !== undefined) await sm.clearStorage(address);
    for (const [slot, value] of o.state ?? o.stateDiff ?? []) {
      await sm.putStorage(address, fromHex(slot), fromHex(value));
    }
  }
}

/** A receipt's fields that follow from the transaction and its place in the block, plus what execution gave. */
function executedReceipt(
  tx: DecodedTx,
  transactionIndex: number,
  cumulativeGasUsed: bigint,
  baseFee: bigint,
  outcome: Pick<ExecutedReceipt, "status" | "gasUsed" | "logs" | "logsBloom" | "revertReason" | "encoded">,
): ExecutedReceipt {
  return {
    transactionHash: tx.hash,
    transactionIndex,
    type: tx.type,
    from: tx.from,
    to: tx.to,
    cumulativeGasUsed,
    effectiveGasPrice: baseFee + tipPerGas(tx, baseFee),
    // Set for every creation transaction, failed ones included (as Ethereum clients report it).
    contractAddress: tx.to === null ? toHex(generateAddress(tx.sender.bytes, bigIntToUnpaddedBytes(tx.nonce))) : null,
    ...outcome,
  };
}

/** What the proposer earns per gas: the tip, capped by what the fee cap leaves above the base fee (legacy: all of it). */
function tipPerGas(tx: DecodedTx, baseFee: bigint): bigint {
  const room = tx.maxFeePerGas - baseFee;
  return room < tx.maxPriorityFeePerGas ? room : tx.maxPriorityFeePerGas;
}

/**
 * Precompiles live at addresses 0x01..0x11 (Prague); everything up to 0xffff is left to runTx, so a future precompile
 * (which charges gas and runs code even for an empty call) can never take the fast path.
 */
function isLowAddress(address: Hex): boolean {
  return /^0x0{36}/.test(address);
}

/**
 * A call with no data and no access list to a non-precompile (intrinsic gas exactly 21,000 means both are empty):
 * if the recipient has no code either, nothing but balances and the sender's nonce can change.
 */
function isPlainTransfer(tx: DecodedTx): boolean {
  return tx.to !== null && tx.intrinsicGas === PLAIN_TRANSFER_GAS && !isLowAddress(tx.to);
}

const PLAIN_TRANSFER_GAS = 21_000n;

/**
 * Applies an applicable plain transfer (`inapplicable` passed: nonce, balance, fee cap, EOA sender) exactly as runTx
 * would under Prague: the sender pays 21,000 gas at the effective price plus the value and bumps its nonce, the
 * recipient gets the value, the coinbase the tip; touched accounts left empty are deleted (EIP-161, as runTx's journal
 * cleanup does; the ledger does it when it writes back). Returns the gas used, or null (nothing changed) when the
 * recipient has code: runTx must run it.
 */
async function plainTransfer(
  ledger: TransferLedger,
  tx: DecodedTx,
  env: BlockEnv,
  coinbase: string,
): Promise<bigint | null> {
  const recipient = await ledger.account(tx.to as Hex);
  if (hasCode(recipient)) return null;
  const gas = PLAIN_TRANSFER_GAS;
  const tip = tipPerGas(tx, env.baseFeePerGas);
  const sender = await ledger.account(tx.from, tx.sender);
  sender.nonce += 1n;
  sender.balance -= gas * (env.baseFeePerGas + tip) + tx.value;
  sender.touched = true;
  recipient.balance += tx.value;
  recipient.touched = true;
  const miner = await ledger.account(coinbase);
  miner.balance += gas * tip;
  miner.touched = true;
  return gas;
}

/** Mints `amount` BridgedEth to `to` by writing the token's balance and total supply slots. */
async function creditBridgedEth(sm: MerkleStateManager, to: Hex, amount: bigint): Promise<void> {
  const token = createAddressFromString(BRIDGED_ETH_ADDRESS);
  const balanceSlot = keccak256(
    concatBytes(setLengthLeft(fromHex(to), 32), setLengthLeft(bigIntToUnpaddedBytes(ERC20_BALANCES_SLOT), 32)),
  );
  const supplySlot = setLengthLeft(bigIntToUnpaddedBytes(ERC20_TOTAL_SUPPLY_SLOT), 32);
  for (const slot of [balanceSlot, supplySlot]) {
    const current = bytesToBigInt(await sm.getStorage(token, slot));
    await sm.putStorage(token, slot, bigIntToUnpaddedBytes(current + amount));
  }
}
