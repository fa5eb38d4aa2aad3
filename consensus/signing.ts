// Domain-separated digests that validators sign. Exact bytes are documented in docs/protocol.md and fixed by golden
// vectors in test/consensus/golden.test.ts. The layout is abi.encodePacked-compatible so Solidity can recompute it:
//   keccak256(domain(32) || chainId(u64 BE) || height(u64 BE) || round(u32 BE) || ...)
import { concatBytes, fromHex, keccak256, uintBytes, utf8 } from "./bytes.ts";
import type { Proposal, Vote, VoteType } from "./types.ts";

/** keccak256 of an ASCII tag: one 32-byte domain per signed message kind. */
export const DOMAIN = {
  proposal: keccak256(utf8("lumia.dcn.v1.proposal")),
  prevote: keccak256(utf8("lumia.dcn.v1.prevote")),
  precommit: keccak256(utf8("lumia.dcn.v1.precommit")),
} as const;

/** 32 zero bytes stand for a vote for nil (no block hash is zero). */
export const NIL_VALUE = new Uint8Array(32);

export function voteDigest(chainId: bigint, type: VoteType, height: number, round: number, value: string | null) {
  return keccak256(
    concatBytes(
      DOMAIN[type],
      uintBytes(chainId, 8),
      uintBytes(height, 8),
      uintBytes(round, 4),
      value === null ? NIL_VALUE : fromHex(value),
    ),
  );
}

export function voteDigestOf(chainId: bigint, vote: Vote): Uint8Array {
  return voteDigest(chainId, vote.type, vote.height, vote.round, vote.value);
}

/** The digest a soft-finality certificate's aggregate signature is over: the precommit digest of the block. */
export function certificateDigest(chainId: bigint, height: number, round: number, blockHash: string): Uint8Array {
  return voteDigest(chainId, "precommit", height, round, blockHash);
}

/** polRound is encoded as u32 with -1 as 0xffffffff. */
export function proposalDigest(chainId: bigint, proposal: Proposal): Uint8Array {
  return keccak256(
    concatBytes(
      DOMAIN.proposal,
      uintBytes(chainId, 8),
      uintBytes(proposal.height, 8),
      uintBytes(proposal.round, 4),
      uintBytes(proposal.polRound < 0 ? 0xffffffff : proposal.polRound, 4),
      fromHex(proposal.value),
    ),
  );
}
