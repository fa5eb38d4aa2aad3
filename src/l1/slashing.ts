// Submitting equivocation evidence to the L1 Slashing contract with the node's operator key (through the operator's
// L1Sender): two conflicting votes of one validator, in the node's wire format with their signatures in EIP-2537
// form, and the registry epoch whose set the validator signed in. The contract slashes and jails once per
// (sequencer, vote type, height, round) and once per (sequencer, epoch): a repeat comes back as EvidenceAlreadyUsed or
// AlreadySlashed from the simulation, at no cost.
import type { Abi, Address, Hex, PublicClient } from "viem";
import { toHex } from "../../consensus/bytes.ts";
import type { SignedVote } from "../../consensus/types.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import { SequencerRegistry, Slashing } from "../../staking-contracts/artifacts.ts";
import { g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import type { L1Sender } from "./sender.ts";

/** A vote as Slashing.submitEvidence takes it. */
export interface VoteEvidence {
  /** The 145-byte SignedVote encoding (consensus/wire.ts). */
  readonly encoded: Hex;
  /** The vote's signature as an EIP-2537 G2 point (256 bytes). */
  readonly signatureG2: Hex;
}

export function voteEvidence(vote: SignedVote): VoteEvidence {
  return { encoded: toHex(encodeSignedVote(vote)), signatureG2: toHex(g2ToEip2537(vote.signature)) };
}

export type EvidenceOutcome =
  | { readonly kind: "slashed"; readonly txHash: Hex; readonly l1Block: bigint }
  /** This evidence, or other evidence of the same validator in the same epoch, was used already. */
  | { readonly kind: "already_used"; readonly reason: string }
  /** The contract refuses it for another reason (named: too old, unknown epoch, ...): retrying will not help. */
  | { readonly kind: "refused"; readonly reason: string }
  /** Transport, fees or a reverted transaction: may succeed later. */
  | { readonly kind: "failed"; readonly reason: string }
  | { readonly kind: "stopped"; readonly reason: string };

const ALREADY_USED = new Set(["EvidenceAlreadyUsed", "AlreadySlashed"]);

export class SlashingSubmitter {
  constructor(
    private readonly opts: {
      readonly registry: Address;
      readonly slashing: Address;
      /** The operator's sender (shared with the batcher, the output proposer and the work reports). */
      readonly sender: L1Sender;
      /** Read-only client (the L1 mirror's). */
      readonly client: PublicClient;
    },
  ) {}

  /** Whether the configured address holds the registry's slasher role (a wrong l1.slashing would only waste gas). */
  async isRegistrySlasher(): Promise<boolean> {
    const role = (await this.opts.client.readContract({
      address: this.opts.registry,
      abi: SequencerRegistry.abi,
      functionName: "SLASHER_ROLE",
    })) as Hex;
    return (await this.opts.client.readContract({
      address: this.opts.registry,
      abi: SequencerRegistry.abi,
      functionName: "hasRole",
      args: [role, this.opts.slashing],
    })) as boolean;
  }

  /** Sends `submitEvidence` (simulated first) and waits for it to be mined. Never throws. */
  async submit(epoch: bigint, a: SignedVote, b: SignedVote): Promise<EvidenceOutcome> {
    const outcome = await this.opts.sender.send("evidence", {
      address: this.opts.slashing,
      abi: Slashing.abi as Abi,
      functionName: "submitEvidence",
      args: [epoch, voteEvidence(a), voteEvidence(b)],
    });
    switch (outcome.kind) {
      case "mined":
        return { kind: "slashed", txHash: outcome.txHash, l1Block: outcome.l1Block };
      case "refused":
        return outcome.error !== null && ALREADY_USED.has(outcome.error)
          ? { kind: "already_used", reason: outcome.reason }
          : { kind: "refused", reason: outcome.reason };
      case "stopped":
        return { kind: "stopped", reason: outcome.reason };
      case "fee_cap":
      case "withdrawn":
      case "failed":
        return { kind: "failed", reason: outcome.reason };
    }
  }
}
