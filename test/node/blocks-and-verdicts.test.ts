// Block format and validity, node message decoders under hostile bytes, and the gossip verdicts of verifier.ts with
// real BLS signatures.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keccak256, toHex } from "../../consensus/bytes.ts";
import { DecodeError } from "../../consensus/codec.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { SignedVote, Vote } from "../../consensus/types.ts";
import { createValidatorSet, nextHeightValidatorSet, validatorAddress } from "../../consensus/validator-set.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import {
  type Block,
  type BlockContext,
  blockHash,
  blockHashOfEncoded,
  checkBlock,
  type Deposit,
  decodeBlock,
  decodeBlockHead,
  depositsHash,
  EMPTY_BLOOM,
  EMPTY_DEPOSITS_HASH,
  encodeBlock,
  ZERO_HASH,
} from "../../src/chain/block.ts";
import { BatchVerifier } from "../../src/crypto/batch-verify.ts";
import { blstScheme, createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";
import {
  decodeBlocksRequest,
  decodeBlocksResponse,
  decodeCertificateMessage,
  decodeHeightStateResponse,
  decodeProposalMessage,
  decodeStatus,
} from "../../src/node/messages.ts";
import { type VerifierContext, verifyVoteMessage, verifyVoteMessageBatched } from "../../src/node/verifier.ts";
import { VoteGate } from "../../src/node/vote-gate.ts";

const CHAIN = 777n;
const signers = [1, 2, 3, 4].map((i) => createBlstSigner(generateBlsSecretKey(new Uint8Array(32).fill(i))));
const set = createValidatorSet(signers.map((s) => ({ publicKey: s.publicKey, votingPower: 10n })));
const parentHash = `0x${"ab".repeat(32)}` as const;
/** checkBlock only hashes the parent certificate (the executor verifies it): any bytes do here. */
const LAST_CERTIFICATE = new Uint8Array([1, 2, 3, 4]);

function block(
  overrides: Partial<Block["header"]> = {},
  transactions: Uint8Array[] = [new Uint8Array([1, 2, 3])],
  lastCertificate: Uint8Array = LAST_CERTIFICATE,
): Block {
  return {
    header: {
      chainId: CHAIN,
      height: 5,
      timestampMs: 1_000_100,
      parentHash,
      l1Origin: { number: 0n, hash: ZERO_HASH },
      proposer: validatorAddress(signers[0]?.publicKey ?? new Uint8Array()),
      validatorSetId: set.id,
      nextValidatorSetId: set.id,
      lastCertificateHash: toHex(keccak256(LAST_CERTIFICATE)),
      depositsHash: EMPTY_DEPOSITS_HASH,
      nextDepositNonce: 3n,
      transactionsRoot: ZERO_HASH,
      receiptsRoot: ZERO_HASH,
      stateRoot: ZERO_HASH,
      gasLimit: 30_000_000n,
      gasUsed: 21_000n,
      baseFeePerGas: 1_000_000_000n,
      logsBloom: EMPTY_BLOOM,
      vmRoots: [{ vm: 1, root: ZERO_HASH }],
      ...overrides,
    },
    lastCertificate,
    deposits: [],
    transactions,
  };
}

function deposit(nonce: bigint, l1BlockNumber: bigint): Deposit {
  return { nonce, l1BlockNumber, from: `0x${"01".repeat(20)}`, to: `0x${"02".repeat(20)}`, asset: 1, amount: 5n };
}

/** A block whose deposits and header commitments agree (checkBlock then judges the nonces and L1 blocks). */
function withDeposits(deposits: Deposit[]): Block {
  const b = block({ depositsHash: depositsHash(deposits), nextDepositNonce: 3n + BigInt(deposits.length) });
  return { ...b, deposits };
}

const ctx: BlockContext = {
  chainId: CHAIN,
  height: 5,
  parentHash,
  parentTimestampMs: 1_000_000,
  parentL1Origin: { number: 0n, hash: ZERO_HASH },
  parentDepositNonce: 3n,
  l1Anchored: false,
  validatorSetId: set.id,
  nextValidatorSetId: set.id,
  gasLimit: 30_000_000n,
  baseFeePerGas: 1_000_000_000n,
  isValidator: (a) => set.validators.some((v) => v.address === a),
  nowMs: 1_000_200,
  maxClockDriftMs: 5_000,
  maxBlockBytes: 10_000,
  maxBlockTransactions: 10,
};

describe("blocks", () => {
  it("round-trips, and the hash of the encoded block is the hash of its header", () => {
    const b = block();
    const bytes = encodeBlock(b);
    expect(decodeBlock(bytes)).toEqual(b);
    expect(blockHashOfEncoded(bytes)).toBe(blockHash(b.header));
    expect(checkBlock(b, bytes.length, ctx)).toBeNull();
  });

  it("reads the header and last certificate of an encoded block without its transactions", () => {
    const b = block({}, [new Uint8Array([1, 2, 3]), new Uint8Array(200).fill(9)]);
    const bytes = encodeBlock(b);
    expect(decodeBlockHead(bytes)).toEqual({ header: b.header, lastCertificate: b.lastCertificate });
    // Only the prefix is read: a block cut inside its transactions still gives its head, one cut before does not.
    expect(decodeBlockHead(bytes.subarray(0, bytes.length - 100)).header).toEqual(b.header);
    expect(() => decodeBlockHead(bytes.subarray(0, 40))).toThrow(DecodeError);
  });

  it.each([
    ["wrong_chain", block({ chainId: 1n })],
    ["wrong_height", block({ height: 6 })],
    ["wrong_parent", block({ parentHash: ZERO_HASH })],
    ["wrong_validator_set", block({ validatorSetId: ZERO_HASH })],
    ["wrong_next_validator_set", block({ nextValidatorSetId: ZERO_HASH })],
    ["wrong_l1_origin", block({ l1Origin: { number: 7n, hash: `0x${"07".repeat(32)}` } })],
    ["wrong_last_certificate", block({}, undefined, new Uint8Array([1, 2, 3, 5]))],
    ["wrong_last_certificate", block({ lastCertificateHash: ZERO_HASH })],
    ["wrong_deposits", block({ depositsHash: ZERO_HASH })],
    ["wrong_deposits", block({ nextDepositNonce: 4n })],
    ["wrong_deposits", withDeposits([deposit(4n, 0n)])],
    ["wrong_deposits", withDeposits([deposit(3n, 1n)])],
    ["unknown_proposer", block({ proposer: `0x${"11".repeat(20)}` })],
    ["timestamp_not_after_parent", block({ timestampMs: 1_000_000 })],
    ["timestamp_in_future", block({ timestampMs: 1_000_200 + 5_001 })],
    ["wrong_gas_limit", block({ gasLimit: 1n })],
    ["wrong_base_fee", block({ baseFeePerGas: 7n })],
    ["gas_used_above_limit", block({ gasUsed: 30_000_001n })],
    [
      "too_many_transactions",
      block(
        {},
        Array.from({ length: 11 }, (_, i) => new Uint8Array([i])),
      ),
    ],
  ])("refuses a block with %s", (code, b) => {
    expect(checkBlock(b, encodeBlock(b).length, ctx)?.code).toBe(code);
  });

  it("decoders of every node message throw only DecodeError on arbitrary bytes", () => {
    const decoders = [
      decodeBlock,
      decodeProposalMessage,
      decodeCertificateMessage,
      decodeStatus,
      decodeBlocksRequest,
      decodeBlocksResponse,
      decodeHeightStateResponse,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: decoders.length - 1 }), (bytes, i) => {
        try {
          decoders[i]?.(bytes);
        } catch (error) {
          if (!(error instanceof DecodeError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
    // Truncations of a valid block are refused with DecodeError, never accepted.
    const bytes = encodeBlock(block());
    for (let n = 0; n < bytes.length; n++) expect(() => decodeBlock(bytes.subarray(0, n))).toThrow(DecodeError);
  });
});

describe("vote verdicts", () => {
  const behind: number[] = [];
  const vctx: VerifierContext = {
    chainId: CHAIN,
    scheme: blstScheme,
    headHeight: () => 4,
    validatorSetFor: (h) => (h === 5 ? set : h === 6 ? nextHeightValidatorSet(set) : undefined),
    committedValidatorSet: async () => undefined,
    behind: (h) => behind.push(h),
  };
  // The set orders validators by power then address: find the signer behind index i.
  const signerAt = (i: number) =>
    signers.find((s) => validatorAddress(s.publicKey) === set.validators[i]?.address) ??
    (signers[0] as (typeof signers)[0]);
  const sign = (vote: Vote, signerIndex = vote.validatorIndex): SignedVote => ({
    ...vote,
    signature: signerAt(signerIndex).sign(voteDigestOf(CHAIN, vote)),
  });
  const vote: Vote = { type: "prevote", height: 5, round: 0, value: null, validatorIndex: 0 };

  it("accepts a correctly signed vote of the next two heights", () => {
    expect(verifyVoteMessage(vctx, encodeSignedVote(sign(vote)), "p").kind).toBe("accept");
    expect(verifyVoteMessage(vctx, encodeSignedVote(sign({ ...vote, height: 6 })), "p").kind).toBe("accept");
  });

  it("rejects a bad signature, a signature by another validator, an unknown index and malformed bytes", () => {
    const forged = { ...sign(vote), signature: new Uint8Array(96).fill(3) };
    expect(verifyVoteMessage(vctx, encodeSignedVote(forged), "p")).toEqual({ kind: "reject", code: "bad_signature" });
    expect(verifyVoteMessage(vctx, encodeSignedVote(sign(vote, 1)), "p")).toEqual({
      kind: "reject",
      code: "bad_signature",
    });
    expect(verifyVoteMessage(vctx, encodeSignedVote(sign({ ...vote, validatorIndex: 9 })), "p")).toEqual({
      kind: "reject",
      code: "unknown_validator",
    });
    expect(verifyVoteMessage(vctx, new Uint8Array(10), "p").kind).toBe("reject");
  });

  it("ignores stale heights and starts a catch-up for heights beyond the next two", () => {
    expect(verifyVoteMessage(vctx, encodeSignedVote(sign({ ...vote, height: 4 })), "p")).toEqual({
      kind: "ignore",
      code: "stale_height",
    });
    expect(verifyVoteMessage(vctx, encodeSignedVote(sign({ ...vote, height: 9 })), "p")).toEqual({
      kind: "ignore",
      code: "future_height",
    });
    expect(behind).toEqual([8]);
  });

  it("ignores, unverified, a vote the driver says can add nothing", () => {
    const redundant = { ...vctx, redundantVote: (v: Vote) => v.validatorIndex === 3 };
    const forged = { ...sign({ ...vote, validatorIndex: 3 }), signature: new Uint8Array(96).fill(3) };
    expect(verifyVoteMessage(redundant, encodeSignedVote(forged), "p")).toEqual({
      kind: "ignore",
      code: "redundant_vote",
    });
    expect(verifyVoteMessage(redundant, encodeSignedVote(sign({ ...vote, validatorIndex: 2 })), "p").kind).toBe(
      "accept",
    );
  });

  it("gives the same verdicts when the gossip path checks the votes of one turn together", async () => {
    const batches: [number, boolean][] = [];
    const batch = new BatchVerifier(blstScheme, { onBatch: (size, valid) => batches.push([size, valid]) });
    const forged = { ...sign({ ...vote, validatorIndex: 2 }), signature: sign(vote, 1).signature };
    const messages = [
      sign(vote),
      sign({ ...vote, validatorIndex: 1 }),
      forged,
      sign({ ...vote, validatorIndex: 3 }),
      sign({ ...vote, validatorIndex: 9 }),
      sign({ ...vote, height: 4 }),
    ].map((v) => encodeSignedVote(v));
    // A gate of a driver that is not deciding holds nothing (the gate itself: test/node/vote-gate.test.ts).
    const gate = new VoteGate({ position: () => null, counts: () => ({ voters: new Set(), senders: new Set() }) });
    const verdicts = await Promise.all(messages.map((m) => verifyVoteMessageBatched(vctx, gate, batch, m, "p")));
    expect(verdicts.map((v) => (v.kind === "accept" ? "accept" : `${v.kind} ${v.code}`))).toEqual([
      "accept",
      "accept",
      "reject bad_signature",
      "accept",
      "reject unknown_validator",
      "ignore stale_height",
    ]);
    expect(verdicts.map((v) => v.kind)).toEqual(messages.map((m) => verifyVoteMessage(vctx, m, "p").kind));
    expect(batches).toEqual([[4, false]]);
  });
});
