// Membership changes from the L1 staking registry. A committed block h whose L1 origin is in a later registry epoch
// than its parent's origin changes the set that decides height h + 2 to that epoch's set (read at block h's origin).
// Two heights, not one: when h commits, the header of h + 1 must already name the set of h + 2 (nextValidatorSetId),
// and every node then knows the sets of the next two heights from committed data alone (what gossip checks need).
import { fromHex } from "../../consensus/bytes.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { nextHeightValidatorSet, type ValidatorChange, validatorAddress } from "../../consensus/validator-set.ts";
import { decodeBlockHead } from "../chain/block.ts";
import type { Genesis } from "../config/genesis.ts";
import type { L1Ref, L1View } from "../l1/view.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import type { Logger } from "./log.ts";

export type MembershipAnswer =
  | { readonly kind: "ok"; readonly changes: readonly ValidatorChange[]; readonly setId: string | null }
  /** The L1 view cannot answer yet (lagging or unreachable mirror): try again later. */
  | { readonly kind: "unknown"; readonly reason: string };

const NO_CHANGE: MembershipAnswer = { kind: "ok", changes: [], setId: null };

export class Membership {
  /** Origins of the last committed headers, by height (reading them back is a store read per height otherwise). */
  private readonly origins = new Map<number, L1Ref>();

  constructor(
    private readonly genesis: Genesis,
    private readonly store: ChainStore,
    private readonly l1: L1View | null,
    private readonly log: Logger,
  ) {}

  /**
   * The set deciding `height + 1` given the set deciding `height` (with its priorities): the registry's epoch set if
   * block `height - 1` moved into a new epoch, else the same members with the next proposer priorities.
   */
  async nextSet(height: number, set: ValidatorSet): Promise<ValidatorSet | { unknown: string }> {
    const answer = await this.changesAfter(height - 1, set);
    if (answer.kind === "unknown") return { unknown: answer.reason };
    const next = nextHeightValidatorSet(set, answer.changes);
    if (answer.setId !== null && next.id !== answer.setId) {
      // The registry and this node disagree on the set's id: never adopt a set the certificates would not match.
      this.log.error({ height, ours: next.id, registry: answer.setId }, "registry set id differs from the derived set");
      return { unknown: `derived set ${next.id} is not the registry's ${answer.setId}` };
    }
    return next;
  }

  /**
   * The changes committed block `height` makes to `base` (the set of height + 1), giving the set of height + 2.
   * `height` must be committed (or 0).
   */
  async changesAfter(height: number, base: ValidatorSet): Promise<MembershipAnswer> {
    const l1 = this.l1;
    if (this.genesis.l1 === null || l1 === null || height < 1) return NO_CHANGE;
    const origin = await this.originOf(height);
    const parentOrigin = await this.originOf(height - 1);
    if (origin.number === parentOrigin.number) return NO_CHANGE;
    const [now, before] = await Promise.all([l1.epochAt(origin), l1.epochAt(parentOrigin)]);
    if (now.kind !== "ok" || before.kind !== "ok") {
      const bad = now.kind !== "ok" ? now : before;
      if (bad.kind === "invalid") this.log.error({ height, reason: bad.reason }, "committed L1 origin is invalid here");
      return { kind: "unknown", reason: bad.kind === "ok" ? "" : bad.reason };
    }
    if (now.value.epoch <= before.value.epoch) return NO_CHANGE;
    // Everyone in the new epoch's set with its power; everyone else leaves (power 0).
    const incoming = new Set(now.value.members.map((m) => validatorAddress(fromHex(m.publicKey))));
    const changes: ValidatorChange[] = [
      ...base.validators
        .filter((v) => !incoming.has(v.address))
        .map((v) => ({ publicKey: v.publicKey, votingPower: 0n })),
      ...now.value.members.map((m) => ({ publicKey: fromHex(m.publicKey), votingPower: m.votingPower })),
    ];
    this.log.info(
      { height, epoch: now.value.epoch.toString(), members: now.value.members.length, setId: now.value.setId },
      "registry epoch: its set decides from two heights on",
    );
    return { kind: "ok", changes, setId: now.value.setId };
  }

  /** The L1 origin of committed block `height` (the genesis origin for 0). Throws when the store lacks the block. */
  async originOf(height: number): Promise<L1Ref> {
    if (height === 0) return this.genesis.l1?.origin ?? { number: 0n, hash: `0x${"00".repeat(32)}` };
    const cached = this.origins.get(height);
    if (cached !== undefined) return cached;
    const bytes = await this.store.getBlock(height);
    if (bytes === undefined) throw new Error(`block ${height} is not in the store`);
    const origin = decodeBlockHead(bytes).header.l1Origin;
    this.origins.set(height, origin);
    if (this.origins.size > 8) this.origins.delete(Math.min(...this.origins.keys()));
    return origin;
  }
}
