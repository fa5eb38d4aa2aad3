// Submitting an epoch's certified work report to the L1 Rewards contract with the node's operator key (through the
// operator's L1Sender). The contract accepts each epoch's report once (ReportAlreadyAccepted after that), so a
// submission that loses a race is harmless; the caller (src/node/work-reports.ts) staggers its validators so that
// normally one transaction is sent at all.
import type { Abi, Address, Hex, PublicClient } from "viem";
import type { WorkReportEntry } from "../../consensus/signing.ts";
import { Rewards } from "../../staking-contracts/artifacts.ts";
import { firstLine, type L1Sender } from "./sender.ts";
import { resolveStakingContracts } from "./staker.ts";

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
  | { readonly kind: "failed"; readonly reason: string }
  /** The node stopped while the transaction was pending (it may still be mined). */
  | { readonly kind: "stopped"; readonly reason: string };

export class RewardsSubmitter {
  private rewards: Address | null = null;

  constructor(
    private readonly opts: {
      readonly registry: Address;
      /** The operator's sender (shared with the batcher and the output proposer: one nonce sequence). */
      readonly sender: L1Sender;
      /** Read-only client (the L1 mirror's). */
      readonly client: PublicClient;
    },
  ) {}

  get operator(): Address {
    return this.opts.sender.address;
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

  /** Sends `submitReport` (simulated first) and waits for it to be mined. Never throws. */
  async submit(
    epoch: bigint,
    entries: readonly WorkReportEntry[],
    certificate: ReportCertificate,
  ): Promise<SubmitOutcome> {
    let rewards: Address;
    try {
      rewards = await this.rewardsAddress();
    } catch (error) {
      return { kind: "failed", reason: `cannot reach the L1: ${firstLine(error)}` };
    }
    const outcome = await this.opts.sender.send("work-report", {
      address: rewards,
      abi: Rewards.abi as Abi,
      functionName: "submitReport",
      args: [epoch, entries.map((e) => ({ ...e })), certificate],
    });
    switch (outcome.kind) {
      case "mined":
        return { kind: "accepted", txHash: outcome.txHash, l1Block: outcome.l1Block, gasUsed: outcome.gasUsed };
      case "refused":
        return outcome.error === "ReportAlreadyAccepted"
          ? { kind: "already_accepted" }
          : { kind: "refused", reason: outcome.reason };
      case "stopped":
        return { kind: "stopped", reason: outcome.reason };
      case "fee_cap":
      case "withdrawn":
        return { kind: "failed", reason: outcome.reason };
      case "failed":
        // Reverted on chain after a good simulation: most likely another submission landed in between.
        return (await this.isAccepted(epoch).catch(() => false))
          ? { kind: "already_accepted" }
          : { kind: "failed", reason: outcome.reason };
    }
  }

  private async rewardsAddress(): Promise<Address> {
    if (this.rewards === null) {
      const head = await this.opts.client.getBlockNumber({ cacheTime: 0 });
      const c = await resolveStakingContracts(this.opts.client, this.opts.registry, { blockNumber: head });
      this.rewards = c.rewards;
    }
    return this.rewards;
  }
}
