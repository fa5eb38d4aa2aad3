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

/** keccak256("lumia.dcn.v1.work-report"): the domain of epoch work reports, signed by the epoch's set for L1. */
export const WORK_REPORT_DOMAIN = keccak256(utf8("lumia.dcn.v1.work-report"));

/** One validator's work in an epoch (u64 counts). Entry i of a report is validator i of the epoch's set. */
export interface WorkReportEntry {
  readonly blocksProposed: bigint;
  readonly precommitsSigned: bigint;
  readonly batchesPosted: bigint;
}

/**
 * What the epoch's validators sign so that the L1 Rewards contract pays for the epoch's work:
 *   keccak256(WORK_REPORT_DOMAIN || chainId u64 || epoch u64 || keccak256(abi.encode(entries)))
 * with abi.encode of a `(uint64,uint64,uint64)[]`: the offset word 0x20, the count word, then three 32-byte words per
 * entry (blocksProposed, precommitsSigned, batchesPosted). Throws RangeError when a number is not a u64.
 */
export function workReportDigest(chainId: bigint, epoch: bigint, entries: readonly WorkReportEntry[]): Uint8Array {
  const words: Uint8Array[] = [uintBytes(32, 32), uintBytes(entries.length, 32)];
  for (const e of entries) {
    for (const count of [e.blocksProposed, e.precommitsSigned, e.batchesPosted]) {
      uintBytes(count, 8); // the u64 range check
      words.push(uintBytes(count, 32));
    }
  }
  return keccak256(
    concatBytes(WORK_REPORT_DOMAIN, uintBytes(chainId, 8), uintBytes(epoch, 8), keccak256(concatBytes(...words))),
  );
}
