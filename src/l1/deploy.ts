// Deploys and wires the staking contracts (staking-contracts/README.md, "Deployment and roles") with viem, and the
// few operations a devnet and the tests need on top: fund an account, register a sequencer, advance the epoch.
// One code path for `dcn devnet` (on its anvil) and test/staking/fixture.ts. Accounts are either local viem accounts
// or addresses the node unlocks (anvil's dev accounts, or any account after anvil_impersonateAccount).
import { peerIdFromString } from "@libp2p/peer-id";
import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  decodeErrorResult,
  defineChain,
  getContract,
  type Hash,
  type Hex,
  http,
  type TransactionReceipt,
} from "viem";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import { LumiaToken, Rewards, SequencerRegistry, Slashing, Staking } from "../../staking-contracts/artifacts.ts";
import { g1ToEip2537, g2ToEip2537 } from "../../staking-contracts/eip2537.ts";

export const LUMIA = 10n ** 18n;
export const LUMIA_SUPPLY = 1_000_000_000n * LUMIA;

/** Every custom error of every contract, to name the revert of a nested call (Rewards -> SequencerRegistry). */
export const STAKING_ERRORS = [
  ...LumiaToken.abi,
  ...SequencerRegistry.abi,
  ...Staking.abi,
  ...Rewards.abi,
  ...Slashing.abi,
].filter((item) => item.type === "error");

export interface StakingParams {
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

export const DEFAULT_STAKING_PARAMS: StakingParams = {
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

/** What `SequencerRegistry.register` takes: both forms of the BLS key and of its proof of possession. */
export interface SequencerRegistration {
  readonly publicKey: Hex;
  readonly publicKeyG1: Hex;
  readonly proofOfPossession: Hex;
  readonly proofOfPossessionG2: Hex;
  /** The libp2p peer id's multihash bytes. */
  readonly peerId: Hex;
}

/** The multihash bytes of a libp2p peer id string (what the registry stores). */
export function peerIdBytes(peerId: string): Hex {
  return toHex(peerIdFromString(peerId).toMultihash().bytes);
}

/** The registration of a node's 48-byte BLS key, its 96-byte proof of possession and its peer id multihash bytes. */
export function sequencerRegistration(publicKey: Hex, proofOfPossession: Hex, peerId: Hex): SequencerRegistration {
  return {
    publicKey,
    publicKeyG1: toHex(g1ToEip2537(fromHex(publicKey))),
    proofOfPossession,
    proofOfPossessionG2: toHex(g2ToEip2537(fromHex(proofOfPossession))),
    peerId,
  };
}

/** The name of the custom error a failed call or transaction reverted with (and its arguments), or null. */
export function stakingRevert(error: unknown): { name: string; args: readonly unknown[] } | null {
  if (!(error instanceof BaseError)) return null;
  const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
  if (!(reverted instanceof ContractFunctionRevertedError)) return null;
  if (reverted.data?.errorName !== undefined) return { name: reverted.data.errorName, args: reverted.data.args ?? [] };
  if (reverted.raw !== undefined) {
    try {
      const decoded = decodeErrorResult({ abi: STAKING_ERRORS, data: reverted.raw });
      return { name: decoded.errorName, args: decoded.args ?? [] };
    } catch {
      return null;
    }
  }
  return null;
}

export function l1Chain(rpcUrl: string, chainId: number): Chain {
  return defineChain({
    id: chainId,
    name: "l1",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

export interface StakingAddresses {
  readonly token: Address;
  readonly registry: Address;
  readonly staking: Address;
  readonly rewards: Address;
  readonly slashing: Address;
}

export interface DeployStakingOptions {
  readonly rpcUrl: string;
  readonly chainId: number;
  /** Deploys, holds the token supply and the governance roles. */
  readonly governance: Account | Address;
  readonly treasury: Address;
  /** The subnet's chain id: vote and work-report digests commit to it (Rewards, Slashing). */
  readonly subnetChainId: bigint;
  readonly params?: Partial<StakingParams>;
  /** Deploy LumiaToken with this supply to governance; or pass an existing token. */
  readonly token?: Address;
  readonly pollingIntervalMs?: number;
}

export type StakingDeployment = Awaited<ReturnType<typeof deployStaking>>;

/**
 * The viem clients and helpers a deployment script needs on one L1: `mined` waits for a receipt and fails on a revert,
 * `deployContract` deploys an artifact from `account` and returns its address.
 */
export function createDeployer(o: {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly account: Account | Address;
  readonly pollingIntervalMs?: number;
}) {
  const chain = l1Chain(o.rpcUrl, o.chainId);
  const pollingInterval = o.pollingIntervalMs ?? 20;
  const transport = http(o.rpcUrl, { timeout: 20_000 });
  const publicClient = createPublicClient({ chain, transport, pollingInterval, cacheTime: 0 });
  const walletClient = createWalletClient({ chain, transport });

  async function mined(hash: Promise<Hash> | Hash): Promise<TransactionReceipt> {
    const receipt = await publicClient.waitForTransactionReceipt({ hash: await hash, pollingInterval });
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
      account: o.account,
      chain,
    });
    const receipt = await mined(hash);
    if (receipt.contractAddress == null) throw new Error("deployment produced no contract");
    return receipt.contractAddress;
  }

  return { chain, publicClient, walletClient, mined, deployContract };
}

/** Deploys LumiaToken (unless given), SequencerRegistry, Staking, Rewards and Slashing, and wires them. */
export async function deployStaking(o: DeployStakingOptions) {
  const params: StakingParams = { ...DEFAULT_STAKING_PARAMS, ...o.params };
  const governance = o.governance;
  const governanceAddress = typeof governance === "string" ? governance : governance.address;
  const { chain, publicClient, walletClient, mined, deployContract } = createDeployer({
    rpcUrl: o.rpcUrl,
    chainId: o.chainId,
    account: governance,
    ...(o.pollingIntervalMs === undefined ? {} : { pollingIntervalMs: o.pollingIntervalMs }),
  });

  const tokenAddress = o.token ?? (await deployContract(LumiaToken, [governanceAddress, LUMIA_SUPPLY]));
  const registryAddress = await deployContract(SequencerRegistry, [
    governanceAddress,
    params.epochLengthBlocks,
    { minSelfStake: params.minSelfStake, maxValidators: params.maxValidators },
  ]);
  const stakingAddress = await deployContract(Staking, [
    governanceAddress,
    tokenAddress,
    registryAddress,
    params.unbondingEpochs,
    { maxBps: params.maxCommissionBps, maxChangeBps: params.maxCommissionChangeBps },
    o.treasury,
  ]);
  const rewardsAddress = await deployContract(Rewards, [
    governanceAddress,
    tokenAddress,
    registryAddress,
    stakingAddress,
    o.subnetChainId,
    params.emissionPerEpoch,
    params.workShareBps,
    params.weights,
  ]);
  const slashingAddress = await deployContract(Slashing, [
    registryAddress,
    stakingAddress,
    o.subnetChainId,
    params.slashBps,
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
  async function fundAccount(account: Account | Address, amount: bigint): Promise<void> {
    const address = typeof account === "string" ? account : account.address;
    if (amount > 0n) await mined(token.write.transfer([address, amount], gov));
    await mined(token.write.approve([stakingAddress, 2n ** 255n], { account, chain }));
    await mined(token.write.approve([rewardsAddress, 2n ** 255n], { account, chain }));
  }

  /**
   * Mines until the next `advanceEpoch` is allowed (with `mine`, e.g. anvil_mine; without it, waits for the L1's
   * own blocks), then sends it. Returns the new epoch.
   */
  async function advanceEpoch(mine?: (blocks: number) => Promise<void>): Promise<bigint> {
    const next = await registry.read.nextEpochBlock();
    for (;;) {
      const head = await publicClient.getBlockNumber({ cacheTime: 0 });
      // The advancing transaction goes into block head + 1.
      if (next <= head + 1n) break;
      if (mine !== undefined) await mine(Number(next - head - 1n));
      else await new Promise((r) => setTimeout(r, 200));
    }
    await mined(registry.write.advanceEpoch({ account: governance, chain }));
    return registry.read.currentEpoch();
  }

  /** Approves `operator`, registers its keys with `commissionBps`, and self-stakes `selfStake` (already funded). */
  async function addSequencer(
    operator: Account | Address,
    keys: SequencerRegistration,
    selfStake: bigint,
    commissionBps = 500,
  ) {
    const operatorAddress = typeof operator === "string" ? operator : operator.address;
    await mined(registry.write.approveOperator([operatorAddress], gov));
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
    const id = await registry.read.sequencerIdOf([operatorAddress]);
    if (selfStake > 0n) await mined(staking.write.stake([id, selfStake], { account: operator, chain }));
    return { id, registerGas: receipt.gasUsed };
  }

  return {
    chain,
    params,
    publicClient,
    walletClient,
    governance,
    treasury: o.treasury,
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
    } satisfies StakingAddresses,
    gov,
    mined,
    deployContract,
    fundAccount,
    advanceEpoch,
    addSequencer,
  };
}
