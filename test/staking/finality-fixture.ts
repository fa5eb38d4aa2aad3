// The hard-finality contracts on a real anvil next to the staking contracts (./fixture.ts), with a registered set of
// four validators in epoch 1; headers encoded by the node (src/chain/block.ts, version 6) and certified by the node's
// BLS code over the precommit digest (consensus/signing.ts certificateDigest); an L2 made by the node's execution
// core (src/execution/) on a real level database, so withdrawals are proven with real Merkle-Patricia proofs.
import {
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  decodeErrorResult,
  encodeFunctionData,
  type Hex,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { concatBytes, fromHex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { certificateDigest } from "../../consensus/signing.ts";
import {
  type BlockHeader,
  blockHash,
  EMPTY_BLOOM,
  EMPTY_DEPOSITS_HASH,
  encodeHeader,
  ZERO_HASH,
} from "../../src/chain/block.ts";
import { type AccountProof, ExecutionCore, type ExecutionResult, globalStateRoot } from "../../src/execution/core.ts";
import { EVM_VM } from "../../src/execution/vm.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import {
  ASSET,
  BRIDGED_ETH_ADDRESS,
  DEFAULT_FINALITY_PARAMS,
  deployFinality,
  FINALITY_ERRORS,
  type FinalityParams,
  L2_MESSAGE_PASSER_ADDRESS,
  l2Predeploys,
} from "../../src/l1/deploy-finality.ts";
import { BridgedEth, L2MessagePasser } from "../../staking-contracts/artifacts.ts";
import { decoded, env, signRaw, TestDb } from "../execution/helpers.ts";
import {
  aggregateOver,
  L1_CHAIN_ID,
  LUMIA,
  type OperatorKeys,
  operatorKeys,
  type StakingChain,
  SUBNET_CHAIN_ID,
  startStakingChain,
  type WorkCertificate,
} from "./fixture.ts";

export { ASSET, L2_MESSAGE_PASSER_ADDRESS };

/** Epoch 1's validators: powers 4000, 3000, 2000, 1000 (set order = this order). */
export const VALIDATOR_STAKES = [4_000n, 3_000n, 2_000n, 1_000n].map((p) => p * LUMIA);

export const TEST_FINALITY_PARAMS: FinalityParams = {
  ...DEFAULT_FINALITY_PARAMS,
  finalizationDelaySeconds: 600n,
  deposit: { minEth: 10n ** 15n, maxEth: 10n * 10n ** 18n, minLumia: LUMIA, maxLumia: 10_000n * LUMIA },
};

export type FinalityChain = Awaited<ReturnType<typeof startFinalityChain>>;

/** Staking chain + four registered validators in epoch 1 + BatchInbox, OutputOracle and Portal. */
/** `anvilArgs`: more anvil flags, as startStakingChain takes them. */
export async function startFinalityChain(params: Partial<FinalityParams> = {}, anvilArgs: readonly string[] = []) {
  const chain: StakingChain = await startStakingChain({}, anvilArgs);
  try {
    const operators = chain.users.slice(0, VALIDATOR_STAKES.length);
    const byKey = new Map<string, OperatorKeys>();
    const ids: number[] = [];
    for (const [i, stake] of VALIDATOR_STAKES.entries()) {
      const operator = operators[i] as Address;
      await chain.fundAccount(operator, 100_000n * LUMIA);
      const keys = operatorKeys(i + 1);
      byKey.set(keys.publicKey, keys);
      ids.push((await chain.addSequencer(operator, keys, stake)).id);
    }
    await chain.advanceEpoch(); // epoch 1 with the four
    const setKeys = await chain.keysInSetOrder(1n, byKey);
    const finality = await deployFinality({
      rpcUrl: chain.anvil.url,
      chainId: L1_CHAIN_ID,
      deployer: chain.governance,
      registry: chain.addresses.registry,
      token: chain.addresses.token,
      subnetChainId: SUBNET_CHAIN_ID,
      params: { ...TEST_FINALITY_PARAMS, ...params },
    });
    const setIdOf = async (epoch: bigint): Promise<Hex> => (await chain.registry.read.epochInfo([epoch])).setId;
    return { ...chain, finality, operators, ids, byKey, setKeys, setIdOf };
  } catch (error) {
    await chain.stop();
    throw error;
  }
}

/** The custom error a failed call reverted with (any staking or finality contract's), or null. */
/** anvil's default accounts come from this mnemonic (`anvil --help`). */
const ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

/** The secp256k1 key of operator `i` (an anvil account), to send as it does (an L1Sender's operator key). */
export async function operatorKeyOf(chain: FinalityChain, i = 0): Promise<Uint8Array> {
  const operator = chain.operators[i] as Address;
  const accounts = await jsonRpc<Address[]>(chain.anvil.url, "eth_accounts", [], 5_000);
  const index = accounts.findIndex((a) => a.toLowerCase() === operator.toLowerCase());
  const key = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index }).getHdKey().privateKey;
  if (index < 0 || key === null) throw new Error(`operator ${operator} is not an anvil account`);
  return key;
}

export function finalityRevertName(error: unknown): string | null {
  if (!(error instanceof BaseError)) return null;
  const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
  if (!(reverted instanceof ContractFunctionRevertedError)) return null;
  if (reverted.data?.errorName !== undefined) return reverted.data.errorName;
  if (reverted.raw === undefined) return null;
  try {
    return decodeErrorResult({ abi: FINALITY_ERRORS, data: reverted.raw }).errorName;
  } catch {
    return null;
  }
}

/** Resolves to the custom error name when `promise` rejects with a revert; fails the test when it does not. */
export async function revertOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const name = finalityRevertName(error);
    if (name === null) throw error;
    return name;
  }
  throw new Error("expected a revert, but the call succeeded");
}

/** An EVM-only VM root list and the global state root over it. */
export function evmState(evmRoot: Hex): Pick<BlockHeader, "stateRoot" | "vmRoots"> {
  const vmRoots = [{ vm: EVM_VM.id, root: evmRoot }];
  return { stateRoot: globalStateRoot(vmRoots), vmRoots };
}

/** A well-formed v6 header of the subnet at `height`, decided by the set `validatorSetId`. */
export function testHeader(height: number, validatorSetId: Hex, overrides: Partial<BlockHeader> = {}): BlockHeader {
  return {
    chainId: SUBNET_CHAIN_ID,
    height,
    timestampMs: 1_750_000_000_000 + height * 1000,
    parentHash: toHex(keccak256(uintBytes(height - 1, 8))),
    l1Origin: { number: 7n, hash: toHex(keccak256(utf8("l1-origin"))) },
    proposer: toHex(uintBytes(0xabc, 20)),
    validatorSetId,
    nextValidatorSetId: validatorSetId,
    lastCertificateHash: ZERO_HASH,
    depositsHash: EMPTY_DEPOSITS_HASH,
    nextDepositNonce: 0n,
    transactionsRoot: toHex(keccak256(utf8("txs"))),
    receiptsRoot: toHex(keccak256(utf8("receipts"))),
    gasLimit: 30_000_000n,
    gasUsed: 0n,
    baseFeePerGas: 1_000_000_000n,
    logsBloom: EMPTY_BLOOM,
    ...evmState(toHex(keccak256(utf8(`evm-root-${height}`)))),
    ...overrides,
  };
}

/**
 * The header v6 layout of docs/protocol.md written out independently of the codec: a test checks that src/chain/block.ts
 * encodes exactly this, so OutputOracle's fixed offsets read the node's headers.
 */
export function encodeHeaderV6Layout(h: BlockHeader): Uint8Array {
  return concatBytes(
    Uint8Array.of(6),
    uintBytes(h.chainId, 8),
    uintBytes(h.height, 8),
    uintBytes(h.timestampMs, 8),
    fromHex(h.parentHash),
    uintBytes(h.l1Origin.number, 8),
    fromHex(h.l1Origin.hash),
    fromHex(h.proposer),
    fromHex(h.validatorSetId),
    fromHex(h.nextValidatorSetId),
    fromHex(h.lastCertificateHash),
    fromHex(h.depositsHash),
    uintBytes(h.nextDepositNonce, 8),
    fromHex(h.transactionsRoot),
    fromHex(h.receiptsRoot),
    fromHex(h.stateRoot),
    uintBytes(h.gasLimit, 8),
    uintBytes(h.gasUsed, 8),
    uintBytes(h.baseFeePerGas, 8),
    fromHex(h.logsBloom),
    uintBytes(h.vmRoots.length, 4),
    ...h.vmRoots.flatMap((r) => [Uint8Array.of(r.vm), fromHex(r.root)]),
  );
}

/** A certificate of `header` in `round` by `signerIndices` of a set (keys in set order), as the node aggregates one. */
export function certifyHeader(
  header: BlockHeader,
  round: number,
  keysBySetIndex: readonly OperatorKeys[],
  signerIndices: readonly number[],
): WorkCertificate {
  return aggregateOver(
    certificateDigest(header.chainId, header.height, round, blockHash(header)),
    keysBySetIndex,
    signerIndices,
  );
}

/** proposeOutput's arguments for `header` certified by `cert` of `epoch`. */
export function proposal(epoch: bigint, header: BlockHeader, round: number, cert: WorkCertificate) {
  return [epoch, toHex(encodeHeader(header)), round, cert.signers, cert.signature, cert.signatureG2] as const;
}

// ---------------------------------------------------------------------------------------------------------------------
// The L2: the node's execution core with the L2MessagePasser predeploy in its genesis.

export interface Withdrawal {
  readonly nonce: bigint;
  readonly sender: Address;
  readonly l1Recipient: Address;
  readonly asset: number;
  readonly amount: bigint;
}

/** keccak256(abi.encode(nonce, sender, l1Recipient, asset, amount)). */
export function withdrawalHash(w: Withdrawal): Hex {
  return toHex(
    keccak256(
      concatBytes(
        uintBytes(w.nonce, 32),
        uintBytes(BigInt(w.sender), 32),
        uintBytes(BigInt(w.l1Recipient), 32),
        uintBytes(w.asset, 32),
        uintBytes(w.amount, 32),
      ),
    ),
  );
}

/** The storage key of `sentMessages[hash]` in L2MessagePasser (mapping at slot 0). */
export function sentMessageSlot(hash: Hex): Hex {
  return toHex(keccak256(concatBytes(fromHex(hash), uintBytes(0, 32))));
}

/** The L2 user who withdraws (funded at genesis). */
export const L2_USER = privateKeyToAccount(toHex(keccak256(utf8("lumia-finality-l2-user"))) as Hex);

export interface L2Block {
  readonly result: ExecutionResult;
  readonly withdrawals: readonly Withdrawal[];
  /** eth_getProof of the message passer at this block for `slots`. */
  readonly proof: (slots: readonly Hex[]) => Promise<AccountProof>;
}

/** An L2 on a level database in a temp dir: genesis with the predeploy and a funded user. */
export async function startL2() {
  const store = await TestDb.open();
  const core = await ExecutionCore.create({
    chainId: SUBNET_CHAIN_ID,
    db: store.reader,
    alloc: [...l2Predeploys(), { address: L2_USER.address.toLowerCase() as Hex, balance: 1_000n * 10n ** 18n }],
  });
  const genesis = await core.genesisStateRoot();
  await store.commit(genesis.writes);
  let nonce = 0;

  /**
   * Executes block 1 on genesis with one withdrawal per request, commits it, and returns what the Portal needs. LUMIA
   * (the native coin) leaves through L2MessagePasser.initiateWithdrawal; ETH through BridgedEth.withdraw, after the
   * block's deposits minted the user's bridged ETH (as an L1 deposit would). Every transaction must succeed.
   */
  async function withdrawBlock(requests: readonly { l1Recipient: Address; asset: number; amount: bigint }[]) {
    const txs = [];
    const deposits = [];
    for (const r of requests) {
      const eth = r.asset === ASSET.eth;
      if (eth) deposits.push({ to: L2_USER.address.toLowerCase() as Hex, asset: ASSET.eth, amount: r.amount });
      const raw = await signRaw(
        L2_USER,
        eth
          ? {
              to: BRIDGED_ETH_ADDRESS,
              gas: 200_000n,
              nonce: nonce++,
              data: encodeFunctionData({
                abi: BridgedEth.abi,
                functionName: "withdraw",
                args: [r.l1Recipient, r.amount],
              }),
            }
          : {
              to: L2_MESSAGE_PASSER_ADDRESS,
              value: r.amount,
              gas: 200_000n,
              nonce: nonce++,
              data: encodeFunctionData({
                abi: L2MessagePasser.abi,
                functionName: "initiateWithdrawal",
                args: [r.l1Recipient, r.asset],
              }),
            },
        SUBNET_CHAIN_ID,
      );
      txs.push(decoded(raw, SUBNET_CHAIN_ID));
    }
    const result = await core.execute(
      genesis.stateRoot,
      genesis.vmRoots,
      env(1, { chainId: SUBNET_CHAIN_ID, deposits }),
      txs,
      "validate",
    );
    for (const receipt of result.receipts) {
      if (receipt.status !== 1)
        throw new Error(`L2 transaction ${receipt.transactionHash} failed: ${receipt.revertReason}`);
    }
    await store.commit(result.writes);
    const withdrawals: Withdrawal[] = requests.map((r, i) => ({
      nonce: BigInt(i),
      sender: L2_USER.address,
      l1Recipient: r.l1Recipient,
      asset: r.asset,
      amount: r.amount,
    }));
    const reader = core.reader(result.vmRoots);
    const block: L2Block = {
      result,
      withdrawals,
      proof: (slots) => reader.getProof(L2_MESSAGE_PASSER_ADDRESS, slots),
    };
    return block;
  }

  return { core, store, genesis, withdrawBlock, stop: () => store.destroy() };
}

/** The v6 header of an executed L2 block at `height`, decided by `validatorSetId`. */
export function headerOf(result: ExecutionResult, height: number, validatorSetId: Hex): BlockHeader {
  return testHeader(height, validatorSetId, {
    transactionsRoot: result.transactionsRoot,
    receiptsRoot: result.receiptsRoot,
    stateRoot: result.stateRoot,
    vmRoots: result.vmRoots,
    gasUsed: result.gasUsed,
    logsBloom: result.logsBloom,
  });
}

/** proveWithdrawal's proof arguments for `w` from an eth_getProof answer. */
export async function withdrawalProof(block: L2Block, w: Withdrawal) {
  const proof = await block.proof([sentMessageSlot(withdrawalHash(w))]);
  const storage = proof.storageProof[0];
  if (storage === undefined) throw new Error("no storage proof");
  return { accountProof: [...proof.accountProof], storageProof: [...storage.proof], value: storage.value };
}
