// Submitting an epoch's certified work report to the L1 Rewards contract with the node's operator key. The contract
// accepts each epoch's report once (ReportAlreadyAccepted after that), so a submission that loses a race is harmless;
// the caller (src/node/work-reports.ts) staggers its validators so that normally one transaction is sent at all.
import { type Address, createWalletClient, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { WorkReportEntry } from "../../consensus/signing.ts";
import { Rewards } from "../../staking-contracts/artifacts.ts";
import { l1Chain, stakingRevert } from "./deploy.ts";
import { resolveStakingContracts } from "./staker.ts";
import { createL1Transport } from "./status.ts";

export const REWARDS_LIMITS = {
  requestTimeoutMs: 15_000,
  receiptTimeoutMs: 120_000,
} as const;

/** The aggregate of the epoch's validators over the report digest, in the contract's encoding. */
export interface ReportCertificate {
  /** Signer bitmap over the epoch's set (bit i = byte i >> 3, mask 1 << (i & 7)). */
  readonly signers: Hex;
  /** 96-byte compressed G2 aggregate. */
  readonly signature: Hex;
  /** The same point, 256-byte EIP-2537 encoding. */
  readonly signatureG2: Hex;
}

export type SubmitOutcome =
  | { readonly kind: "accepted"; readonly txHash: Hex; readonly l1Block: bigint; readonly gasUsed: bigint }
  /** Another submission landed first (or had already): nothing to do. */
  | { readonly kind: "already_accepted" }
  /** The contract refuses it for another reason (named): retrying the same report will not help. */
  | { readonly kind: "refused"; readonly reason: string }
  /** Transport, gas or a reverted transaction: may succeed later. */
  | { readonly kind: "failed"; readonly reason: string };

export class RewardsSubmitter {
  private rewards: Address | null = null;
  private readonly account;

  constructor(
    private readonly opts: {
      readonly rpcUrl: string;
      readonly registry: Address;
      /** The operator's secp256k1 key (keys/operator.json): it pays the gas. */
      readonly operatorKey: Uint8Array;
      /** Read-only client (the L1 mirror's). */
      readonly client: PublicClient;
    },
  ) {
    this.account = privateKeyToAccount(`0x${Buffer.from(opts.operatorKey).toString("hex")}`);
  }

  get operator(): Address {
    return this.account.address;
  }

  /** Whether the Rewards contract has accepted the report of `epoch` (at the L1 head). */
  async isAccepted(epoch: bigint): Promise<boolean> {
    const rewards = await this.rewardsAddress();
    return (await this.opts.client.readContract({
      address: rewards,
      abi: Rewards.abi,
      functionName: "reportAccepted",
      args: [epoch],
    })) as boolean;
  }

  /** Simulates, then sends `submitReport` and waits for its receipt. Never throws. */
  async submit(
    epoch: bigint,
    entries: readonly WorkReportEntry[],
    certificate: ReportCertificate,
  ): Promise<SubmitOutcome> {
    let rewards: Address;
    let chainId: number;
    try {
      rewards = await this.rewardsAddress();
      chainId = await this.opts.client.getChainId();
    } catch (error) {
      return { kind: "failed", reason: `cannot reach the L1: ${firstLine(error)}` };
    }
    const chain = l1Chain(this.opts.rpcUrl, chainId);
    const request = {
      address: rewards,
      abi: Rewards.abi,
      functionName: "submitReport",
      args: [epoch, entries.map((e) => ({ ...e })), certificate],
      account: this.account,
      chain,
    } as const;
    let hash: Hex;
    try {
      const simulated = await this.opts.client.simulateContract(request as never);
      const wallet = createWalletClient({
        account: this.account,
        chain,
        transport: createL1Transport(this.opts.rpcUrl, REWARDS_LIMITS.requestTimeoutMs),
      });
      hash = await wallet.writeContract(simulated.request as never);
    } catch (error) {
      const revert = stakingRevert(error);
      if (revert?.name === "ReportAlreadyAccepted") return { kind: "already_accepted" };
      if (revert !== null) return { kind: "refused", reason: `${revert.name}(${revert.args.map(String).join(", ")})` };
      return { kind: "failed", reason: firstLine(error) };
    }
    try {
      const receipt = await this.opts.client.waitForTransactionReceipt({
        hash,
        pollingInterval: 500,
        timeout: REWARDS_LIMITS.receiptTimeoutMs,
      });
      if (receipt.status !== "success") {
        // Reverted on chain after a good simulation: most likely another submission landed in between.
        return (await this.isAccepted(epoch).catch(() => false))
          ? { kind: "already_accepted" }
          : { kind: "failed", reason: `transaction ${hash} reverted` };
      }
      return { kind: "accepted", txHash: hash, l1Block: receipt.blockNumber, gasUsed: receipt.gasUsed };
    } catch (error) {
      return { kind: "failed", reason: `transaction ${hash}: ${firstLine(error)}` };
    }
  }

  private async rewardsAddress(): Promise<Address> {
    if (this.rewards === null) {
      const c = await resolveStakingContracts(this.opts.client, this.opts.registry, { blockNumber: await this.head() });
      this.rewards = c.rewards;
    }
    return this.rewards;
  }

  private head(): Promise<bigint> {
    return this.opts.client.getBlockNumber({ cacheTime: 0 });
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
