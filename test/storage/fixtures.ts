// Real consensus objects for the storage tests and the crash child process: BLS validators (blst), blocks, precommits
// and certificates built with consensus/certificate.ts, and a deterministic schedule of validator-set changes so that
// a test can recompute every set the child committed.
import { concatBytes, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { buildCertificate, type Certificate } from "../../consensus/certificate.ts";
import type { LockState } from "../../consensus/machine.ts";
import { proposalDigest, voteDigest } from "../../consensus/signing.ts";
import type { Evidence, SignedProposal, SignedVote, Signer, ValidatorSet } from "../../consensus/types.ts";
import { createValidatorSet, nextHeightValidatorSet, type ValidatorChange } from "../../consensus/validator-set.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import type { CommitRecord, SafetyRecord } from "../../src/storage/chain-store.ts";

export const CHAIN_ID = 0x4c554d49n;
export const GENESIS_HASH: Hex = toHex(keccak256(utf8("lumia storage test genesis")));
export const OTHER_GENESIS_HASH: Hex = toHex(keccak256(utf8("another chain")));

/** Unequal powers so that proposer priorities spread out and some go negative. */
const POWERS = [10n, 20n, 30n, 45n] as const;

export interface TestNet {
  readonly genesis: ValidatorSet;
  readonly signerFor: (publicKey: Uint8Array) => Signer;
  /** A key that is not in the genesis set, added and removed by the change schedule. */
  readonly extraKey: Uint8Array;
}

export function testNet(firstScalar = 1): TestNet {
  const signers = new Map<string, Signer>();
  const add = (scalar: number): Signer => {
    // blst hands out Node Buffers; decoded values are plain Uint8Arrays, and toEqual tells the two apart.
    const inner = createBlstSigner(uintBytes(scalar, 32));
    const signer: Signer = {
      publicKey: new Uint8Array(inner.publicKey),
      sign: (message) => new Uint8Array(inner.sign(message)),
    };
    signers.set(toHex(signer.publicKey), signer);
    return signer;
  };
  const genesis = createValidatorSet(
    POWERS.map((votingPower, i) => ({ publicKey: add(firstScalar + i).publicKey, votingPower })),
  );
  const extra = add(firstScalar + POWERS.length);
  return {
    genesis,
    extraKey: extra.publicKey,
    signerFor: (publicKey) => {
      const signer = signers.get(toHex(publicKey));
      if (signer === undefined) throw new Error(`no signer for ${toHex(publicKey).slice(0, 18)}`);
      return signer;
    },
  };
}

/** The validator changes applied after `height`: every 5th height adds, every 10th removes the extra validator. */
export function changesAfter(net: TestNet, height: number): ValidatorChange[] {
  if (height % 10 === 0) return [{ publicKey: net.extraKey, votingPower: 0n }];
  if (height % 5 === 0) return [{ publicKey: net.extraKey, votingPower: 25n }];
  return [];
}

/** The set of height `height` by replaying the change schedule from genesis. */
export function setAt(net: TestNet, height: number): ValidatorSet {
  let set = net.genesis;
  for (let h = 1; h < height; h++) set = nextHeightValidatorSet(set, changesAfter(net, h));
  return set;
}

/** A deterministic block of varying size (opaque bytes to the store). */
export function blockAt(height: number): Uint8Array {
  return concatBytes(utf8(`block ${height}`), new Uint8Array((height % 7) * 100).fill(height & 0xff));
}

export function hashOf(block: Uint8Array): Hex {
  return toHex(keccak256(block));
}

export function precommit(net: TestNet, set: ValidatorSet, index: number, height: number, value: Hex): SignedVote {
  const validator = set.validators[index];
  if (validator === undefined) throw new Error(`no validator ${index}`);
  const signature = net.signerFor(validator.publicKey).sign(voteDigest(CHAIN_ID, "precommit", height, 0, value));
  return { type: "precommit", height, round: 0, value, validatorIndex: index, signature };
}

/** A certificate signed by every member of `set`. */
/** A certificate of `blockHash` signed by the first `signerCount` validators of `set` (default: all). */
export function certificateFor(
  net: TestNet,
  set: ValidatorSet,
  height: number,
  blockHash: Hex,
  signerCount = set.validators.length,
): Certificate {
  const votes = set.validators.slice(0, signerCount).map((_, i) => precommit(net, set, i, height, blockHash));
  return buildCertificate(CHAIN_ID, set, votes, blstScheme);
}

/** The commit record of `height` when `set` decides it; the next set follows the change schedule. */
export function commitRecordAt(net: TestNet, set: ValidatorSet, height: number): CommitRecord {
  const block = blockAt(height);
  const blockHash = hashOf(block);
  return {
    height,
    blockHash,
    block,
    certificate: certificateFor(net, set, height, blockHash),
    nextValidatorSet: nextHeightValidatorSet(set, changesAfter(net, height)),
  };
}

export function signedVote(
  net: TestNet,
  set: ValidatorSet,
  type: "prevote" | "precommit",
  index: number,
  height: number,
  round: number,
  value: Hex | null,
): SignedVote {
  const validator = set.validators[index];
  if (validator === undefined) throw new Error(`no validator ${index}`);
  const signature = net.signerFor(validator.publicKey).sign(voteDigest(CHAIN_ID, type, height, round, value));
  return { type, height, round, value, validatorIndex: index, signature };
}

export function signedProposal(
  net: TestNet,
  set: ValidatorSet,
  index: number,
  height: number,
  round: number,
  value: Hex,
  polRound = -1,
): SignedProposal {
  const validator = set.validators[index];
  if (validator === undefined) throw new Error(`no validator ${index}`);
  const proposal = { height, round, polRound, value, proposerIndex: index };
  return { ...proposal, signature: net.signerFor(validator.publicKey).sign(proposalDigest(CHAIN_ID, proposal)) };
}

/** A full safety record at `height`: locked in round 1, own prevote and precommit, own proposal and its body. */
export function safetyRecordAt(net: TestNet, set: ValidatorSet, height: number): SafetyRecord {
  const block = blockAt(height);
  const value = hashOf(block);
  const lock: LockState = { lockedValue: value, lockedRound: 1, validValue: value, validRound: 1 };
  const proofOfLock = set.validators.map((_, i) => signedVote(net, set, "prevote", i, height, 1, value));
  const ownPrevote = proofOfLock[0];
  if (ownPrevote === undefined) throw new Error("empty set");
  return {
    mark: { height, round: 1, step: "precommit", digest: voteDigest(CHAIN_ID, "precommit", height, 1, value) },
    height,
    lock,
    proofOfLock,
    ownVotes: [ownPrevote, signedVote(net, set, "precommit", 0, height, 1, value)],
    ownProposal: signedProposal(net, set, 0, height, 1, value),
    blocks: [{ hash: value, block }],
  };
}

export function duplicateVoteEvidence(
  net: TestNet,
  set: ValidatorSet,
  type: "prevote" | "precommit",
  index: number,
  height: number,
  round: number,
): Evidence {
  return {
    kind: "duplicateVote",
    first: signedVote(net, set, type, index, height, round, hashOf(utf8(`a ${height}`))),
    second: signedVote(net, set, type, index, height, round, null),
  };
}

export function duplicateProposalEvidence(
  net: TestNet,
  set: ValidatorSet,
  index: number,
  height: number,
  round: number,
): Evidence {
  return {
    kind: "duplicateProposal",
    first: signedProposal(net, set, index, height, round, hashOf(utf8(`a ${height}`))),
    second: signedProposal(net, set, index, height, round, hashOf(utf8(`b ${height}`))),
  };
}
