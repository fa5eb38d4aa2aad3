// The staking contracts deployed on a real anvil (Prague, EIP-2537) from the committed artifacts, driven with viem
// through anvil's unlocked accounts; BLS keys, proofs of possession, votes and certificates made by the node's own
// code (src/crypto/blst.ts, consensus/). One chain per test file; `snapshot`/`revert` isolate the tests inside it.
import {
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  createPublicClient,
  createTestClient,
  createWalletClient,
  decodeErrorResult,
  defineChain,
  getContract,
  type Hash,
  type Hex,
  http,
  type TransactionReceipt,
} from "viem";
import { fromHex, toHex, uintBytes } from "../../consensus/bytes.ts";
import { type WorkReportEntry, workReportDigest } from "../../consensus/signing.ts";
import type { Signer } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { blsProofOfPossession, blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { type AnvilProcess, startAnvil } from "../../src/l1/anvil.ts";
import { LumiaToken, Rewards, SequencerRegistry, Slashing, Staking } from "../../staking-contracts/artifacts.ts";
import { g1ToEip2537, g2ToEip2537 } from "../../staking-contracts/eip2537.ts";

export const L1_CHAIN_ID = 31_337;
/** The subnet's chain id: vote and work-report digests commit to it. */
export const SUBNET_CHAIN_ID = 994_873_017n;
export const LUMIA = 10n ** 18n;
export const SUPPLY = 1_000_000_000n * LUMIA;
const ACCOUNT_COUNT = 24;

/** Every custom error of every contract, to name the revert of a nested call (Rewards -> SequencerRegistry). */
export const ALL_ERRORS = [
  ...LumiaToken.abi,
  ...SequencerRegistry.abi,
  ...Staking.abi,
  ...Rewards.abi,
  ...Slashing.abi,
].filter((item) => item.type === "error");

export interface DeployOptions {
  readonly epochLengthBlocks: bigint;
  readonly minSelfStake: bigint;
  readonly maxValidators: number;
  readonly unbondingEpochs: bigint;
  readonly maxCommissionBps: number;
  readonly maxCommissionChangeBps: number;
  readonly emissionPerEpoch: bigint;
  readonly workShareBps: number;
  readonly weights: { blocksProposed: bigint; precommitsSigned: bigint; batchesPosted: bigint };
  readonly slashBps: number;
}

export const DEFAULTS: DeployOptions = {
  epochLengthBlocks: 10n,
  minSelfStake: 1_000n * LUMIA,
  maxValidators: 10,
  unbondingEpochs: 2n,
  maxCommissionBps: 2_000,
  maxCommissionChangeBps: 100,
  emissionPerEpoch: 10_000n * LUMIA,
  workShareBps: 5_000,
  weights: { blocksProposed: 10n, precommitsSigned: 1n, batchesPosted: 5n },
  slashBps: 1_000,
};

/** A sequencer operator's keys: the node's BLS key (blst) and what registration needs. */
export interface OperatorKeys {
  readonly secretKey: Uint8Array;
  readonly signer: Signer;
  readonly publicKey: Hex;
  readonly publicKeyG1: Hex;
  readonly proofOfPossession: Hex;
  readonly proofOfPossessionG2: Hex;
  readonly peerId: Hex;
}

/** Deterministic keys from a small seed (scalar 1000 + seed). */
export function operatorKeys(seed: number): OperatorKeys {
  const secretKey = uintBytes(1000 + seed, 32);
  const signer = createBlstSigner(secretKey);
  const pop = blsProofOfPossession(secretKey);
  return {
    secretKey,
    signer,
    publicKey: toHex(signer.publicKey),
    publicKeyG1: toHex(g1ToEip2537(signer.publicKey)),
    proofOfPossession: toHex(pop),
    proofOfPossessionG2: toHex(g2ToEip2537(pop)),
    // An Ed25519 peer id multihash: identity(36) of the protobuf key 0x08 0x01 0x12 0x20 || key.
    peerId: toHex(new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...uintBytes(seed + 1, 32)])),
  };
}

/** The name of the custom error a failed call or transaction reverted with, or null. */
export function revertName(error: unknown): string | null {
  if (!(error instanceof BaseError)) return null;
  const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
  if (!(reverted instanceof ContractFunctionRevertedError)) return null;
  if (reverted.data?.errorName !== undefined) return reverted.data.errorName;
  if (reverted.raw !== undefined) {
    try {
      return decodeErrorResult({ abi: ALL_ERRORS, data: reverted.raw }).errorName;
    } catch {
      return null;
    }
  }
  return null;
}

/** Resolves to the custom error name when `promise` rejects with a revert; fails the test when it does not. */
export async function revertOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const name = revertName(error);
    if (name === null) throw error;
    return name;
  }
  throw new Error("expected a revert, but the call succeeded");
}

export interface WorkCertificate {
  readonly signers: Hex;
  readonly signature: Hex;
  readonly signatureG2: Hex;
}

export type StakingChain = Awaited<ReturnType<typeof startStakingChain>>;

export async function startStakingChain(overrides: Partial<DeployOptions> = {}) {
  const opts: DeployOptions = { ...DEFAULTS, ...overrides };
  const anvil: AnvilProcess = await startAnvil({
    port: 0,
    chainId: BigInt(L1_CHAIN_ID),
    args: ["--hardfork", "prague", "--accounts", String(ACCOUNT_COUNT), "--silent"],
  });
  try {
    return await deploy(anvil, opts);
  } catch (error) {
    await anvil.stop(0);
    throw error;
  }
}

async function deploy(anvil: AnvilProcess, opts: DeployOptions) {
  const chain: Chain = defineChain({
    id: L1_CHAIN_ID,
    name: "anvil",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [anvil.url] } },
  });
  const transport = http(anvil.url, { timeout: 20_000 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 20 });
  const walletClient = createWalletClient({ chain, transport });
  const testClient = createTestClient({ chain, transport, mode: "anvil" });
  const accounts = (await walletClient.getAddresses()) as Address[];
  const at = (i: number): Address => {
    const a = accounts[i];
    if (a === undefined) throw new Error(`anvil has no account #${i}`);
    return a;
  };
  const governance = at(0);
  const treasury = at(1);
  /** Accounts free for operators and delegators. */
  const users = accounts.slice(2);

  async function mined(hash: Promise<Hash> | Hash): Promise<TransactionReceipt> {
    const receipt = await publicClient.waitForTransactionReceipt({ hash: await hash, pollingInterval: 20 });
    if (receipt.status !== "success") throw new Error(`transaction ${receipt.transactionHash} reverted`);
    return receipt;
  }

  async function deployContract(
    artifact: { abi: readonly unknown[]; bytecode: Hex },
    args: readonly unknown[],
  ): Promise<Address> {
    const hash = await walletClient.deployContract({
      abi: artifact.abi as never,
      bytecode: artifact.bytecode,
      args: args as never,
      account: governance,
      chain,
    });
    const receipt = await mined(hash);
    if (receipt.contractAddress == null) throw new Error("deployment produced no contract");
    return receipt.contractAddress;
  }

  const tokenAddress = await deployContract(LumiaToken, [governance, SUPPLY]);
  const registryAddress = await deployContract(SequencerRegistry, [
    governance,
    opts.epochLengthBlocks,
    { minSelfStake: opts.minSelfStake, maxValidators: opts.maxValidators },
  ]);
  const stakingAddress = await deployContract(Staking, [
    governance,
    tokenAddress,
    registryAddress,
    opts.unbondingEpochs,
    { maxBps: opts.maxCommissionBps, maxChangeBps: opts.maxCommissionChangeBps },
    treasury,
  ]);
  const rewardsAddress = await deployContract(Rewards, [
    governance,
    tokenAddress,
    registryAddress,
    stakingAddress,
    SUBNET_CHAIN_ID,
    opts.emissionPerEpoch,
    opts.workShareBps,
    opts.weights,
  ]);
  const slashingAddress = await deployContract(Slashing, [
    registryAddress,
    stakingAddress,
    SUBNET_CHAIN_ID,
    opts.slashBps,
  ]);

  const client = { public: publicClient, wallet: walletClient };
  const token = getContract({ address: tokenAddress, abi: LumiaToken.abi, client });
  const registry = getContract({ address: registryAddress, abi: SequencerRegistry.abi, client });
  const staking = getContract({ address: stakingAddress, abi: Staking.abi, client });
  const rewards = getContract({ address: rewardsAddress, abi: Rewards.abi, client });
  const slashing = getContract({ address: slashingAddress, abi: Slashing.abi, client });
  const gov = { account: governance, chain };

  await mined(registry.write.setStaking([stakingAddress], gov));
  await mined(staking.write.setRewards([rewardsAddress], gov));
  await mined(registry.write.grantRole([await registry.read.SLASHER_ROLE(), slashingAddress], gov));
  await mined(staking.write.grantRole([await staking.read.SLASHER_ROLE(), slashingAddress], gov));

  /** Sends LUMIA from governance (the holder of the supply) and approves Staking and Rewards to pull it. */
  async function fundAccount(account: Address, amount: bigint): Promise<void> {
    await mined(token.write.transfer([account, amount], gov));
    await mined(token.write.approve([stakingAddress, 2n ** 255n], { account, chain }));
    await mined(token.write.approve([rewardsAddress, 2n ** 255n], { account, chain }));
  }

  /** Mines until the next `advanceEpoch` is allowed, then sends it. Returns the new epoch. */
  async function advanceEpoch(): Promise<bigint> {
    const next = await registry.read.nextEpochBlock();
    const head = await publicClient.getBlockNumber({ cacheTime: 0 });
    // The advancing transaction goes into block head + 1.
    if (next > head + 1n) await testClient.mine({ blocks: Number(next - head - 1n) });
    await mined(registry.write.advanceEpoch({ account: governance, chain }));
    return registry.read.currentEpoch();
  }

  /** Approves `operator`, registers its keys with `commissionBps`, and self-stakes `selfStake`. */
  async function addSequencer(operator: Address, keys: OperatorKeys, selfStake: bigint, commissionBps = 500) {
    await mined(registry.write.approveOperator([operator], gov));
    const receipt = await mined(
      registry.write.register(
        [
          {
            publicKey: keys.publicKey,
            publicKeyG1: keys.publicKeyG1,
            proofOfPossession: keys.proofOfPossession,
            proofOfPossessionG2: keys.proofOfPossessionG2,
            peerId: keys.peerId,
            commissionBps,
          },
        ],
        { account: operator, chain },
      ),
    );
    const id = await registry.read.sequencerIdOf([operator]);
    if (selfStake > 0n) await mined(staking.write.stake([id, selfStake], { account: operator, chain }));
    return { id, registerGas: receipt.gasUsed };
  }

  /** Aggregates the signatures of `signerIndices` (set order) over the work report digest. */
  function certify(
    epoch: bigint,
    entries: readonly WorkReportEntry[],
    keysBySetIndex: readonly OperatorKeys[],
    signerIndices: readonly number[],
  ): WorkCertificate {
    const digest = workReportDigest(SUBNET_CHAIN_ID, epoch, entries);
    const bitmap = new Uint8Array(Math.ceil(keysBySetIndex.length / 8));
    const signatures: Uint8Array[] = [];
    for (const i of signerIndices) {
      const keys = keysBySetIndex[i];
      if (keys === undefined) throw new Error(`no keys for set index ${i}`);
      bitmap[i >> 3] = (bitmap[i >> 3] ?? 0) | (1 << (i & 7));
      signatures.push(keys.signer.sign(digest));
    }
    const aggregate = blstScheme.aggregateSignatures(signatures);
    return { signers: toHex(bitmap), signature: toHex(aggregate), signatureG2: toHex(g2ToEip2537(aggregate)) };
  }

  /** The operator keys in the set order of `epoch`, from a key lookup. */
  async function keysInSetOrder(epoch: bigint, byPublicKey: ReadonlyMap<string, OperatorKeys>) {
    const [publicKeys] = await registry.read.validatorSet([epoch]);
    return publicKeys.map((pk) => {
      const keys = byPublicKey.get(pk.toLowerCase());
      if (keys === undefined) throw new Error(`unknown key ${pk}`);
      return keys;
    });
  }

  return {
    anvil,
    chain,
    opts,
    publicClient,
    walletClient,
    testClient,
    governance,
    treasury,
    users,
    token,
    registry,
    staking,
    rewards,
    slashing,
    addresses: {
      token: tokenAddress,
      registry: registryAddress,
      staking: stakingAddress,
      rewards: rewardsAddress,
      slashing: slashingAddress,
    },
    gov,
    mined,
    deployContract,
    fundAccount,
    advanceEpoch,
    addSequencer,
    certify,
    keysInSetOrder,
    /** A tx option for `account`. */
    as: (account: Address) => ({ account, chain }),
    snapshot: () => testClient.snapshot(),
    revert: (id: Hex) => testClient.revert({ id }),
    stop: () => anvil.stop(5_000),
  };
}

/** The order consensus/validator-set.ts gives these keys and powers. */
export function consensusOrder(validators: readonly { publicKey: Hex; power: bigint }[]) {
  const set = createValidatorSet(validators.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: v.power })));
  return { set, publicKeys: set.validators.map((v) => toHex(v.publicKey)), id: set.id };
}
