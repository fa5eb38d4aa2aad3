// Deploys the hard-finality contracts (staking-contracts/README.md, "Hard finality") next to a deployed registry and
// token, with viem: BatchInbox (batches for data availability), OutputOracle (certified L2 outputs) and Portal
// (deposits, withdrawals proven against outputs). One code path for the devnet and the tests, like deploy.ts.
import { type Account, type Address, getContract, type Hex } from "viem";
import { BatchInbox, BridgedEth, L2MessagePasser, OutputOracle, Portal } from "../../staking-contracts/artifacts.ts";
import { BRIDGED_ETH_ADDRESS, type GenesisAccount } from "../execution/core.ts";
import { createDeployer, STAKING_ERRORS } from "./deploy.ts";

/**
 * The L2MessagePasser predeploy ("Lu" 0x4c75, 02; REWARD_POOL_ADDRESS is 01): a genesis allocation puts its runtime
 * code here, and the Portal proves withdrawals against this account's storage.
 */
export const L2_MESSAGE_PASSER_ADDRESS: Hex = "0x00000000000000000000000000000000004c7502";
/** The BridgedEth predeploy: ETH deposited through the Portal, as an ERC-20 on the L2 (LUMIA is the native coin). */
export { BRIDGED_ETH_ADDRESS } from "../execution/core.ts";

/** Asset ids of Portal and L2MessagePasser. */
export const ASSET = { eth: 0, lumia: 1 } as const;

/** Every custom error of the staking and finality contracts: OutputOracle lets the registry's errors through. */
export const FINALITY_ERRORS = [
  ...STAKING_ERRORS,
  ...[...BatchInbox.abi, ...OutputOracle.abi, ...Portal.abi, ...L2MessagePasser.abi, ...BridgedEth.abi].filter(
    (item) => item.type === "error",
  ),
];

export interface FinalityParams {
  /** Epochs before the registry's current one whose sets may still certify an output (OutputOracle.maxEpochAge). */
  readonly maxEpochAge: bigint;
  /** Seconds between proving a withdrawal and paying it. */
  readonly finalizationDelaySeconds: bigint;
  /** Per-deposit bounds, in wei of the asset. */
  readonly deposit: { minEth: bigint; maxEth: bigint; minLumia: bigint; maxLumia: bigint };
}

export const DEFAULT_FINALITY_PARAMS: FinalityParams = {
  maxEpochAge: 2n,
  finalizationDelaySeconds: 3_600n,
  deposit: { minEth: 10n ** 15n, maxEth: 100n * 10n ** 18n, minLumia: 10n ** 18n, maxLumia: 1_000_000n * 10n ** 18n },
};

export interface DeployFinalityOptions {
  readonly rpcUrl: string;
  readonly chainId: number;
  /** Sends the deployments; holds no role afterwards (the contracts have no owner). */
  readonly deployer: Account | Address;
  readonly registry: Address;
  readonly token: Address;
  readonly subnetChainId: bigint;
  /** The L2MessagePasser's address on the L2 (default L2_MESSAGE_PASSER_ADDRESS). */
  readonly messagePasser?: Address;
  readonly params?: Partial<FinalityParams>;
  readonly pollingIntervalMs?: number;
}

export interface FinalityAddresses {
  readonly batchInbox: Address;
  readonly outputOracle: Address;
  readonly portal: Address;
}

export type FinalityDeployment = Awaited<ReturnType<typeof deployFinality>>;

/**
 * The L2 predeploys of a subnet with hard finality, for its genesis allocation: the L2MessagePasser (withdrawals) and
 * BridgedEth (deposited ETH). Their addresses are constants of the contracts and of the execution core.
 */
export function l2Predeploys(): GenesisAccount[] {
  return [
    { address: L2_MESSAGE_PASSER_ADDRESS, balance: 0n, code: L2MessagePasser.deployedBytecode },
    { address: BRIDGED_ETH_ADDRESS, balance: 0n, code: BridgedEth.deployedBytecode },
  ];
}

/** Deploys BatchInbox, OutputOracle and Portal against `registry` and `token`. */
export async function deployFinality(o: DeployFinalityOptions) {
  const params: FinalityParams = { ...DEFAULT_FINALITY_PARAMS, ...o.params };
  if (o.subnetChainId <= 0n || o.subnetChainId >= 2n ** 64n) {
    throw new RangeError(`subnet chain id ${o.subnetChainId} is not a positive u64`);
  }
  const { chain, publicClient, walletClient, mined, deployContract } = createDeployer({
    rpcUrl: o.rpcUrl,
    chainId: o.chainId,
    account: o.deployer,
    ...(o.pollingIntervalMs === undefined ? {} : { pollingIntervalMs: o.pollingIntervalMs }),
  });

  const batchInboxAddress = await deployContract(BatchInbox, [o.registry]);
  const outputOracleAddress = await deployContract(OutputOracle, [o.registry, o.subnetChainId, params.maxEpochAge]);
  const portalAddress = await deployContract(Portal, [
    outputOracleAddress,
    o.token,
    o.messagePasser ?? L2_MESSAGE_PASSER_ADDRESS,
    params.deposit,
    params.finalizationDelaySeconds,
  ]);

  const client = { public: publicClient, wallet: walletClient };
  return {
    chain,
    params,
    publicClient,
    walletClient,
    mined,
    batchInbox: getContract({ address: batchInboxAddress, abi: BatchInbox.abi, client }),
    outputOracle: getContract({ address: outputOracleAddress, abi: OutputOracle.abi, client }),
    portal: getContract({ address: portalAddress, abi: Portal.abi, client }),
    addresses: {
      batchInbox: batchInboxAddress,
      outputOracle: outputOracleAddress,
      portal: portalAddress,
    } satisfies FinalityAddresses,
  };
}
