// A small real chain for the RPC tests: viem-signed transactions executed by the ethereumjs VM (Prague, Merkle state),
// their receipts turned into StoredReceipts, blocks built with src/chain/block.ts and kept encoded in a Map. The
// RpcBackend answers from these, so every RPC answer is checked against data a real EVM produced.
import { createBlock } from "@ethereumjs/block";
import { getMerkleStateProof, MerkleStateManager } from "@ethereumjs/statemanager";
import { createFeeMarket1559Tx } from "@ethereumjs/tx";
import { Account, createAddressFromString } from "@ethereumjs/util";
import { createVM, encodeReceipt, runTx, type VM } from "@ethereumjs/vm";
import solc from "solc";
import {
  type Abi,
  encodeFunctionData,
  getContractAddress,
  type PrivateKeyAccount,
  type TransactionSerializable,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { concatBytes, fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import {
  type Block,
  type BlockHeader,
  blockHash,
  decodeBlock,
  EMPTY_DEPOSITS_HASH,
  encodeBlock,
  ZERO_HASH,
} from "../../src/chain/block.ts";
import type { StoredReceipt } from "../../src/chain/receipts.ts";
import { commonFor, decodeTransaction } from "../../src/execution/tx.ts";
import type {
  CommittedEvent,
  RpcAccount,
  RpcAccountProof,
  RpcBackend,
  RpcCallRequest,
  RpcCallResult,
  RpcCertificate,
  RpcPendingTx,
  RpcValidatorSet,
  RpcValidatorSetChange,
} from "../../src/rpc/backend.ts";
import { logsBloom } from "../../src/rpc/bloom.ts";

export const CHAIN_ID = 424_242n;
export const GAS_LIMIT = 30_000_000n;
export const GENESIS_BASE_FEE = 1_000_000_000n;
export const GENESIS_TIMESTAMP_MS = 1_700_000_000_250;
export const BLOCK_INTERVAL_MS = 1_300;
export const PROPOSER: Hex = "0x00000000000000000000000000000000000000aa";
export const GWEI = 1_000_000_000n;
export const ETHER = 10n ** 18n;

export const PROBE_SOURCE = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.0;
contract Probe {
  event Ping(address indexed from, uint256 indexed n, bytes data);
  mapping(uint256 => uint256) public slots;
  function answer() external pure returns (uint256) { return 42; }
  function fail(string calldata reason) external pure { revert(reason); }
  function fill(uint256 n) external { for (uint256 i = 0; i < n; i++) slots[i] = i + 1; }
  function ping(uint256 n, bytes calldata data) external { emit Ping(msg.sender, n, data); }
}`;

export function compileProbe(): { abi: Abi; bytecode: Hex } {
  const input = {
    language: "Solidity",
    sources: { "Probe.sol": { content: PROBE_SOURCE } },
    settings: { outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const probe = output.contracts["Probe.sol"]?.Probe;
  if (probe === undefined) throw new Error("solc produced no Probe contract");
  return { abi: probe.abi, bytecode: `0x${probe.evm.bytecode.object}` };
}

export const alice = privateKeyToAccount(`0x${"11".repeat(32)}`);
export const bob = privateKeyToAccount(`0x${"22".repeat(32)}`);
export const carol = privateKeyToAccount(`0x${"33".repeat(32)}`);

/** EIP-1559 base fee of the block after `parent` (same rule as the execution core). */
export function nextBaseFeeOf(parent: BlockHeader): bigint {
  const target = parent.gasLimit / 2n;
  const base = parent.baseFeePerGas;
  if (parent.gasUsed === target) return base;
  if (parent.gasUsed > target) {
    const delta = (base * (parent.gasUsed - target)) / target / 8n;
    return base + (delta > 1n ? delta : 1n);
  }
  return base - (base * (target - parent.gasUsed)) / target / 8n;
}

/** One-at-a-time access to the state manager (its state root is moved to the height a read asks for). */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export interface ChainFixture {
  readonly backend: TestBackend;
  readonly abi: Abi;
  readonly probe: Hex;
  /** Transactions by role, for assertions. */
  readonly txs: Record<"deploy" | "transfer" | "pingBob" | "pingAlice" | "failing" | "fill", Hex>;
}

export class TestBackend implements RpcBackend {
  readonly chainId = CHAIN_ID;
  readonly clientVersion = "lumia-dcn/rpc-test";
  readonly blocks = new Map<number, Uint8Array>();
  readonly hashes = new Map<Hex, number>();
  readonly receiptsByHeight = new Map<number, readonly StoredReceipt[]>();
  readonly locations = new Map<Hex, { height: number; index: number }>();
  readonly stateRoots = new Map<number, Uint8Array>();
  readonly pending = new Map<Hex, RpcPendingTx & { nonce: bigint }>();
  /** Heights whose receipts were read: shows the bloom prefilter at work. */
  readonly receiptReads: number[] = [];
  readonly committedListeners = new Set<(event: CommittedEvent) => void>();
  readonly pendingListeners = new Set<(tx: RpcPendingTx) => void>();
  /** What listeners threw (the node logs these): kept for assertions. */
  readonly listenerErrors: unknown[] = [];
  private readonly lock = new Lock();
  head = -1;

  constructor(readonly vm: VM) {}

  headHeight(): number {
    return this.head;
  }

  headHeader(): BlockHeader {
    const bytes = this.blocks.get(this.head);
    if (bytes === undefined) throw new Error("no head block");
    return decodeBlock(bytes).header;
  }

  async blockByHeight(height: number): Promise<{ hash: Hex; block: Block } | undefined> {
    const bytes = this.blocks.get(height);
    if (bytes === undefined) return undefined;
    const block = decodeBlock(bytes);
    return { hash: blockHash(block.header), block };
  }

  async blockByHash(hash: Hex): Promise<{ hash: Hex; block: Block } | undefined> {
    const height = this.hashes.get(hash);
    return height === undefined ? undefined : this.blockByHeight(height);
  }

  async receipts(height: number): Promise<readonly StoredReceipt[] | undefined> {
    this.receiptReads.push(height);
    return this.receiptsByHeight.get(height);
  }

  async transactionLocation(hash: Hex): Promise<{ height: number; index: number } | undefined> {
    return this.locations.get(hash);
  }

  private atHeight<T>(height: number, fn: (sm: MerkleStateManager) => Promise<T>): Promise<T> {
    return this.lock.run(async () => {
      const root = this.stateRoots.get(height);
      if (root === undefined) throw new Error(`no state at height ${height}`);
      const sm = this.vm.stateManager as MerkleStateManager;
      await sm.setStateRoot(root);
      return fn(sm);
    });
  }

  proof(height: number, address: Hex, slots: readonly Hex[]): Promise<RpcAccountProof> {
    return this.atHeight(height, async (sm) => {
      const p = await getMerkleStateProof(
        sm,
        createAddressFromString(address),
        slots.map((k) => fromHex(k)),
      );
      return p as unknown as RpcAccountProof;
    });
  }

  /** A stand-in certificate for every committed height (not a valid encoding: the RPC only passes it through). */
  async certificate(height: number): Promise<RpcCertificate | undefined> {
    const entry = await this.blockByHeight(height);
    return entry === undefined ? undefined : stubCertificate(height, entry.hash);
  }

  onCommitted(listener: (event: CommittedEvent) => void): () => void {
    this.committedListeners.add(listener);
    return () => this.committedListeners.delete(listener);
  }

  onPendingTransaction(listener: (tx: RpcPendingTx) => void): () => void {
    this.pendingListeners.add(listener);
    return () => this.pendingListeners.delete(listener);
  }

  /** Hands `event` to the commit listeners, as the node does after a commit (tests also replay events with it). */
  emitCommitted(event: CommittedEvent): void {
    for (const listener of [...this.committedListeners]) {
      try {
        listener(event);
      } catch (error) {
        this.listenerErrors.push(error);
      }
    }
  }

  /** The event of committed height `height`. */
  async committedEvent(height: number): Promise<CommittedEvent> {
    const entry = await this.blockByHeight(height);
    const receipts = this.receiptsByHeight.get(height);
    if (entry === undefined || receipts === undefined) throw new Error(`no committed block ${height}`);
    return { height, hash: entry.hash, block: entry.block, receipts, certificate: stubCertificate(height, entry.hash) };
  }

  async validatorSet(_id: Hex): Promise<RpcValidatorSet | undefined> {
    return undefined;
  }

  async validatorSetHistory(): Promise<readonly RpcValidatorSetChange[]> {
    return [];
  }

  status(): unknown {
    return { head: this.head };
  }

  account(height: number, address: Hex): Promise<RpcAccount | null> {
    return this.atHeight(height, async (sm) => {
      const account = await sm.getAccount(createAddressFromString(address));
      if (account === undefined) return null;
      return {
        nonce: account.nonce,
        balance: account.balance,
        codeHash: toHex(account.codeHash),
        storageRoot: toHex(account.storageRoot),
      };
    });
  }

  code(height: number, address: Hex): Promise<Hex> {
    return this.atHeight(height, async (sm) => toHex(await sm.getCode(createAddressFromString(address))));
  }

  storageAt(height: number, address: Hex, slot: Hex): Promise<Hex> {
    return this.atHeight(height, async (sm) => {
      const value = await sm.getStorage(createAddressFromString(address), fromHex(slot));
      return `0x${toHex(value).slice(2).padStart(64, "0")}` as Hex;
    });
  }

  call(height: number, request: RpcCallRequest): Promise<RpcCallResult> {
    const header = this.headerAt(height);
    return this.atHeight(height, async (sm) => {
      const common = commonFor(CHAIN_ID);
      const tx = createFeeMarket1559Tx(
        {
          ...(request.to === undefined || request.to === null ? {} : { to: request.to }),
          data: request.data ?? "0x",
          value: request.value ?? 0n,
          gasLimit: request.gas ?? header.gasLimit,
          maxFeePerGas: header.baseFeePerGas,
          maxPriorityFeePerGas: 0n,
        },
        { common, freeze: false },
      );
      const from = createAddressFromString(request.from ?? `0x${"00".repeat(20)}`);
      Object.defineProperty(tx, "getSenderAddress", { value: () => from });
      await sm.checkpoint();
      try {
        const result = await runTx(this.vm, {
          tx,
          block: ethBlock(header),
          skipNonce: true,
          skipBalance: true,
          skipBlockGasLimitValidation: true,
        });
        const halt = result.execResult.exceptionError?.error;
        return {
          status: halt === undefined ? 1 : 0,
          returnData: toHex(result.execResult.returnValue),
          gasUsed: result.totalGasSpent,
          revertReason: null,
          // Like geth: a halt other than REVERT is reported by name (out of gas, invalid opcode...).
          error: halt === undefined || halt === "revert" ? null : halt,
        };
      } catch (error) {
        // Could not start (gas below intrinsic): nothing ran.
        const message = error instanceof Error ? error.message : String(error);
        return { status: 0, returnData: "0x", gasUsed: 0n, revertReason: null, error: message.split("\n")[0] ?? "" };
      } finally {
        await sm.revert();
      }
    });
  }

  private headerAt(height: number): BlockHeader {
    const bytes = this.blocks.get(height);
    if (bytes === undefined) throw new Error(`no block ${height}`);
    return decodeBlock(bytes).header;
  }

  nextBaseFee(): bigint {
    return nextBaseFeeOf(this.headHeader());
  }

  async sendRawTransaction(
    raw: Uint8Array,
  ): Promise<{ ok: true; hash: Hex } | { ok: false; code: string; message: string }> {
    const decoded = decodeTransaction(raw, CHAIN_ID);
    if (!decoded.ok) return decoded;
    const tx = decoded.tx;
    if (this.pending.has(tx.hash) || this.locations.has(tx.hash)) return { ok: false, code: "known", message: "" };
    const account = await this.account(this.head, tx.from);
    const expected = await this.pendingNonce(tx.from);
    if (tx.nonce < (account?.nonce ?? 0n)) {
      return { ok: false, code: "nonce_too_low", message: `next nonce ${account?.nonce ?? 0n}, tx nonce ${tx.nonce}` };
    }
    if (tx.nonce !== expected) return { ok: false, code: "nonce_gap", message: `expected nonce ${expected}` };
    if ((account?.balance ?? 0n) < tx.gasLimit * tx.maxFeePerGas + tx.value) {
      return { ok: false, code: "insufficient_funds", message: "" };
    }
    const pending = { hash: tx.hash, raw, from: tx.from, nonce: tx.nonce };
    this.pending.set(tx.hash, pending);
    for (const listener of [...this.pendingListeners]) listener(pending);
    return { ok: true, hash: tx.hash };
  }

  async pendingNonce(address: Hex): Promise<bigint> {
    let nonce = (await this.account(this.head, address))?.nonce ?? 0n;
    for (const tx of this.pending.values()) if (tx.from === address && tx.nonce >= nonce) nonce = tx.nonce + 1n;
    return nonce;
  }

  pendingTransaction(hash: Hex): RpcPendingTx | undefined {
    return this.pending.get(hash);
  }

  /** Executes `raws` on the head state and commits block head+1. */
  commitBlock(raws: readonly Hex[]): Promise<void> {
    return this.lock.run(async () => {
      const headRoot = this.stateRoots.get(this.head);
      if (headRoot !== undefined) await (this.vm.stateManager as MerkleStateManager).setStateRoot(headRoot);
      await this.execute(raws);
      // Inside the lock: events leave in height order, each once, like the node's.
      if (this.committedListeners.size > 0) this.emitCommitted(await this.committedEvent(this.head));
    });
  }

  private async execute(raws: readonly Hex[]): Promise<void> {
    const height = this.head + 1;
    const parent = height === 0 ? null : this.headHeader();
    const header0: Omit<BlockHeader, "transactionsRoot" | "receiptsRoot" | "stateRoot" | "gasUsed" | "logsBloom"> = {
      chainId: CHAIN_ID,
      height,
      timestampMs: GENESIS_TIMESTAMP_MS + height * BLOCK_INTERVAL_MS,
      parentHash: parent === null ? ZERO_HASH : blockHash(parent),
      l1Origin: { number: 0n, hash: ZERO_HASH },
      proposer: PROPOSER,
      validatorSetId: toHex(keccak256(utf8("validator set"))),
      nextValidatorSetId: toHex(keccak256(utf8("validator set"))),
      lastCertificateHash: ZERO_HASH,
      depositsHash: EMPTY_DEPOSITS_HASH,
      nextDepositNonce: 0n,
      gasLimit: GAS_LIMIT,
      baseFeePerGas: parent === null ? GENESIS_BASE_FEE : nextBaseFeeOf(parent),
      vmRoots: [],
    };
    const receipts: StoredReceipt[] = [];
    const sm = this.vm.stateManager as MerkleStateManager;
    let cumulative = 0n;
    for (const [index, rawHex] of raws.entries()) {
      const decoded = decodeTransaction(fromHex(rawHex), CHAIN_ID);
      if (!decoded.ok) throw new Error(`fixture transaction ${index} does not decode: ${decoded.message}`);
      const tx = decoded.tx;
      const result = await runTx(this.vm, {
        tx: tx.tx,
        block: ethBlock(header0),
        skipBlockGasLimitValidation: true,
      });
      cumulative += result.totalGasSpent;
      const logs = (result.execResult.logs ?? []).map(([address, topics, data]) => ({
        address: toHex(address),
        topics: topics.map((t) => toHex(t)),
        data: toHex(data),
      }));
      const status = result.execResult.exceptionError === undefined ? 1 : 0;
      const encoded = encodeReceipt(
        {
          status,
          cumulativeBlockGasUsed: cumulative,
          bitvector: fromHex(logsBloom(logs)),
          logs: result.execResult.logs ?? [],
        },
        tx.type,
      );
      const baseFee = header0.baseFeePerGas;
      const tip =
        tx.maxFeePerGas - baseFee < tx.maxPriorityFeePerGas ? tx.maxFeePerGas - baseFee : tx.maxPriorityFeePerGas;
      receipts.push({
        transactionHash: tx.hash,
        type: tx.type,
        from: tx.from,
        to: tx.to,
        contractAddress: result.createdAddress === undefined ? null : (result.createdAddress.toString() as Hex),
        status,
        gasUsed: result.totalGasSpent,
        cumulativeGasUsed: cumulative,
        effectiveGasPrice: baseFee + tip,
        logs,
        revertReason: "",
        encoded,
      });
      this.locations.set(tx.hash, { height, index });
      this.pending.delete(tx.hash);
    }
    const stateRoot = await sm.getStateRoot();
    const header: BlockHeader = {
      ...header0,
      // Not the Ethereum trie roots (the RPC only passes them through): distinct per block is all the tests need.
      transactionsRoot: toHex(keccak256(concatBytes(utf8("txs"), ...raws.map((r) => fromHex(r))))),
      receiptsRoot: toHex(keccak256(concatBytes(utf8("receipts"), ...receipts.map((r) => r.encoded)))),
      stateRoot: toHex(stateRoot),
      gasUsed: cumulative,
      logsBloom: logsBloom(receipts.flatMap((r) => r.logs)),
      vmRoots: [{ vm: 0, root: toHex(stateRoot) }],
    };
    const block: Block = {
      header,
      lastCertificate: new Uint8Array(0),
      deposits: [],
      transactions: raws.map((r) => fromHex(r)),
    };
    this.blocks.set(height, encodeBlock(block));
    this.hashes.set(blockHash(header), height);
    this.receiptsByHeight.set(height, receipts);
    this.stateRoots.set(height, stateRoot);
    this.head = height;
  }
}

const STUB_VALIDATOR_SET_ID: Hex = toHex(keccak256(utf8("validator set")));

function stubCertificate(height: number, blockHash: Hex): RpcCertificate {
  return {
    encoded: toHex(keccak256(concatBytes(utf8("certificate"), fromHex(blockHash)))),
    height,
    round: 0,
    blockHash,
    validatorSetId: STUB_VALIDATOR_SET_ID,
    signers: [0, 1, 2],
    signingPower: 300n,
    totalPower: 400n,
  };
}

function ethBlock(header: Pick<BlockHeader, "height" | "timestampMs" | "gasLimit" | "baseFeePerGas" | "proposer">) {
  return createBlock(
    {
      header: {
        number: BigInt(header.height),
        timestamp: BigInt(Math.floor(header.timestampMs / 1000)),
        gasLimit: header.gasLimit,
        baseFeePerGas: header.baseFeePerGas,
        coinbase: header.proposer,
      },
    },
    { common: commonFor(CHAIN_ID) },
  );
}

function sign(account: PrivateKeyAccount, tx: TransactionSerializable): Promise<Hex> {
  return account.signTransaction(tx);
}

/**
 * Heights: 0 genesis (funded accounts); 1 deploy Probe + transfer; 2 pings (legacy, EIP-2930) + a reverting call;
 * 3 fill(3) writing storage; 4..12 empty.
 */
export async function buildChain(): Promise<ChainFixture> {
  const { abi, bytecode } = compileProbe();
  const common = commonFor(CHAIN_ID);
  const vm = await createVM({ common, stateManager: new MerkleStateManager({ common }) });
  for (const who of [alice, bob, carol]) {
    await vm.stateManager.putAccount(createAddressFromString(who.address), new Account(0n, 100n * ETHER));
  }
  const backend = new TestBackend(vm);
  await backend.commitBlock([]);

  const chainId = Number(CHAIN_ID);
  const fee = { chainId, maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: 2n * GWEI };
  const deploy = await sign(alice, { type: "eip1559", nonce: 0, data: bytecode, gas: 1_000_000n, ...fee });
  const transfer = await sign(alice, {
    type: "eip1559",
    nonce: 1,
    to: bob.address,
    value: ETHER,
    gas: 21_000n,
    ...fee,
  });
  await backend.commitBlock([deploy, transfer]);

  const probe = getContractAddress({ from: alice.address, nonce: 0n }).toLowerCase() as Hex;
  const pingBob = await sign(bob, {
    type: "legacy",
    chainId,
    nonce: 0,
    to: probe,
    gas: 100_000n,
    gasPrice: 5n * GWEI,
    data: encodeFunctionData({ abi, functionName: "ping", args: [7n, "0xbeef"] }),
  });
  const pingAlice = await sign(alice, {
    type: "eip2930",
    chainId,
    nonce: 2,
    to: probe,
    gas: 100_000n,
    gasPrice: 5n * GWEI,
    accessList: [{ address: probe, storageKeys: [`0x${"00".repeat(32)}`] }],
    data: encodeFunctionData({ abi, functionName: "ping", args: [8n, "0x"] }),
  });
  const failing = await sign(alice, {
    type: "eip1559",
    nonce: 3,
    to: probe,
    gas: 100_000n,
    ...fee,
    data: encodeFunctionData({ abi, functionName: "fail", args: ["boom"] }),
  });
  await backend.commitBlock([pingBob, pingAlice, failing]);

  const fill = await sign(alice, {
    type: "eip1559",
    nonce: 4,
    to: probe,
    gas: 200_000n,
    ...fee,
    data: encodeFunctionData({ abi, functionName: "fill", args: [3n] }),
  });
  await backend.commitBlock([fill]);
  for (let i = 0; i < 9; i++) await backend.commitBlock([]);

  const hashOf = (raw: Hex) => toHex(keccak256(fromHex(raw)));
  return {
    backend,
    abi,
    probe,
    txs: {
      deploy: hashOf(deploy),
      transfer: hashOf(transfer),
      pingBob: hashOf(pingBob),
      pingAlice: hashOf(pingAlice),
      failing: hashOf(failing),
      fill: hashOf(fill),
    },
  };
}

/** A signed ping(n) to the fixture's probe from `account`, at its next nonce counting pending transactions. */
export async function signPing(fx: ChainFixture, account: PrivateKeyAccount, n: bigint): Promise<Hex> {
  const nonce = await fx.backend.pendingNonce(account.address.toLowerCase() as Hex);
  return account.signTransaction({
    type: "eip1559",
    chainId: Number(fx.backend.chainId),
    nonce: Number(nonce),
    to: fx.probe,
    gas: 100_000n,
    maxFeePerGas: 20n * GWEI,
    maxPriorityFeePerGas: 2n * GWEI,
    data: encodeFunctionData({ abi: fx.abi, functionName: "ping", args: [n, "0x"] }),
  });
}
