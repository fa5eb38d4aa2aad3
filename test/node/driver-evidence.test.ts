// A vote that can add nothing is left unverified (the gossip path asks driver.redundantVote), but it may be half of an
// equivocation: when its validator's conflicting vote arrives, the driver checks the kept vote and counts it first,
// so that the evidence has both. A kept vote with a bad signature is dropped.
import { afterEach, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { SignedVote, Signer } from "../../consensus/types.ts";
import { indexOfAddress, validatorAddress } from "../../consensus/validator-set.ts";
import { type DriverHarness, driverHarness } from "./driver-harness.ts";

const CHAIN = 77_002n;
const V = `0x${"ab".repeat(32)}` as Hex;
const LONG = 60_000;

describe("driver: votes left unverified because they added nothing", () => {
  let harness: DriverHarness | null = null;

  afterEach(async () => {
    await harness?.close();
    harness = null;
  });

  /** Validator 0 of 7 (equal power: 5 votes are a quorum) at height 1, where five others prevoted V; nothing times out. */
  async function setUp() {
    harness = await driverHarness({
      chainId: CHAIN,
      validators: 7,
      timeouts: {
        proposeMs: LONG,
        proposeDeltaMs: 0,
        prevoteMs: LONG,
        prevoteDeltaMs: 0,
        precommitMs: LONG,
        precommitDeltaMs: 0,
      },
      rebroadcastMs: LONG,
    });
    const d = harness.driver;
    const fatal: Error[] = [];
    await d.start((error) => fatal.push(error));
    const set = d.validatorSetFor(1);
    if (set === undefined) throw new Error("no set for height 1");
    const prevote = (signer: Signer, value: Hex | null, signWith: Signer = signer): SignedVote => {
      const vote = {
        type: "prevote" as const,
        height: 1,
        round: 0,
        value,
        validatorIndex: indexOfAddress(set, validatorAddress(signer.publicKey)),
      };
      return { ...vote, signature: signWith.sign(voteDigestOf(CHAIN, vote)) };
    };
    const others = harness.signers.slice(1);
    for (const s of others.slice(0, 5)) d.onVote(prevote(s, V));
    await d.idle();
    return { d, prevote, late: others[5] as Signer, liar: others[0] as Signer, evidence: harness.evidence, fatal };
  }

  it("checks the kept vote when its validator's conflicting vote arrives, and produces the evidence", async () => {
    const { d, prevote, late, evidence, fatal } = await setUp();
    const kept = prevote(late, V);
    expect(d.redundantVote(kept)).toBe(true);
    expect(evidence).toEqual([]);
    const conflicting = prevote(late, null);
    d.onVote(conflicting);
    await d.idle();
    expect(fatal).toEqual([]);
    expect(evidence).toEqual([{ kind: "duplicateVote", first: kept, second: conflicting }]);
  });

  it("drops a kept vote whose signature is bad: no evidence, the conflicting vote counts alone", async () => {
    const { d, prevote, late, liar, evidence, fatal } = await setUp();
    const forged = prevote(late, V, liar);
    expect(d.redundantVote(forged)).toBe(true);
    d.onVote(prevote(late, null));
    await d.idle();
    expect(fatal).toEqual([]);
    expect(evidence).toEqual([]);
    // Its validator has voted now (nil): a vote of it for V is no longer redundant, it gets checked.
    expect(d.redundantVote(prevote(late, V))).toBe(false);
  });
});
