// Property-based fuzzing of what a peer, an RPC client or an operator's file can feed the node, beyond the random-bytes
// properties other files have (test/node/blocks-and-verdicts.test.ts, test/storage/codecs.test.ts, test/rpc/
// protocol.test.ts, test/l1/batch.test.ts): mutations of VALID encodings (bit flips, truncation, extension, length
// fields inflated to 2^32), which reach much deeper into each decoder than random bytes do; the gossip verifiers on the
// same inputs (a verdict, never a throw); sync responses; raw transactions; config and genesis JSON. Each must give
// its typed outcome only, and a huge declared length must fail fast without allocating it.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildCertificate } from "../../consensus/certificate.ts";
import { DecodeError } from "../../consensus/codec.ts";
import { proposalDigest, voteDigestOf } from "../../consensus/signing.ts";
import type { Proposal, SignedVote, Vote } from "../../consensus/types.ts";
import { createValidatorSet, nextHeightValidatorSet, validatorAddress } from "../../consensus/validator-set.ts";
import { decodeSignedVote, encodeSignedProposal, encodeSignedVote } from "../../consensus/wire.ts";
import { signEip1559 } from "../../src/bench/tx.ts";
import { ConfigError, parseConfig } from "../../src/config/config.ts";
import { buildGenesis, GenesisError, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";
import { decodeTransaction } from "../../src/execution/tx.ts";
import { describeKeys, peerKeyFromSeed } from "../../src/keys/keys.ts";
import {
  decodeBlocksRequest,
  decodeBlocksResponse,
  decodeCertificateMessage,
  decodeHeightStateRequest,
  decodeHeightStateResponse,
  decodeProposalMessage,
  decodeSnapshotOffer,
  decodeStateNodesRequest,
  decodeStateNodesResponse,
  decodeStatus,
  decodeWorkSignature,
  encodeBlocksRequest,
  encodeBlocksResponse,
  encodeCertificateMessage,
  encodeHeightStateRequest,
  encodeHeightStateResponse,
  encodeProposalMessage,
  encodeSnapshotOffer,
  encodeStateNodesRequest,
  encodeStateNodesResponse,
  encodeStatus,
  encodeWorkSignature,
} from "../../src/node/messages.ts";
import {
  type VerifierContext,
  verifyCertificateMessage,
  verifyEvidenceMessage,
  verifyProposalMessage,
  verifyVoteMessage,
} from "../../src/node/verifier.ts";
import { decodeEvidence, encodeEvidence } from "../../src/storage/evidence.ts";

const CHAIN = 4242n;
const signers = [1, 2, 3, 4].map((i) => createBlstSigner(generateBlsSecretKey(new Uint8Array(32).fill(i))));
const set = createValidatorSet(signers.map((s) => ({ publicKey: s.publicKey, votingPower: 10n })));
const signerAt = (i: number) => {
  const s = signers.find((x) => validatorAddress(x.publicKey) === set.validators[i]?.address);
  if (s === undefined) throw new Error(`no signer for index ${i}`);
  return s;
};
const signVote = (v: Vote): SignedVote => ({
  ...v,
  signature: signerAt(v.validatorIndex).sign(voteDigestOf(CHAIN, v)),
});
const HASH_A = `0x${"aa".repeat(32)}` as const;
const HASH_B = `0x${"bb".repeat(32)}` as const;

const prevoteA = signVote({ type: "prevote", height: 5, round: 0, value: HASH_A, validatorIndex: 1 });
const prevoteB = signVote({ type: "prevote", height: 5, round: 0, value: HASH_B, validatorIndex: 1 });
const proposal: Proposal = { height: 5, round: 0, value: HASH_A, polRound: -1, proposerIndex: 0 };
const signedProposal = { ...proposal, signature: signerAt(0).sign(proposalDigest(CHAIN, proposal)) };
const precommits = [0, 1, 2].map((i) =>
  signVote({ type: "precommit", height: 4, round: 0, value: HASH_A, validatorIndex: i }),
);

const certificate = buildCertificate(CHAIN, set, precommits, blstScheme);

/** Valid encodings of every message a peer sends: the seeds the mutations start from. */
const samples: Record<string, { bytes: Uint8Array; decode: (b: Uint8Array) => unknown }> = {
  certificate: { bytes: encodeCertificateMessage(certificate), decode: decodeCertificateMessage },
  blocksResponse: {
    bytes: encodeBlocksResponse([
      { block: new Uint8Array(64).fill(1), certificate },
      { block: new Uint8Array(8).fill(2), certificate },
    ]),
    decode: decodeBlocksResponse,
  },
  status: { bytes: encodeStatus({ headHeight: 7, headHash: HASH_A }), decode: decodeStatus },
  blocksRequest: { bytes: encodeBlocksRequest({ fromHeight: 3, maxCount: 16 }), decode: decodeBlocksRequest },
  heightStateRequest: {
    bytes: encodeHeightStateRequest({ height: 5, round: 2 }),
    decode: decodeHeightStateRequest,
  },
  heightStateResponse: {
    bytes: encodeHeightStateResponse({
      proposals: [{ proposal: signedProposal, block: new Uint8Array([1, 2, 3]) }],
      votes: [prevoteA, prevoteB],
    }),
    decode: decodeHeightStateResponse,
  },
  proposal: {
    bytes: encodeProposalMessage({ proposal: signedProposal, block: new Uint8Array(40).fill(9) }),
    decode: decodeProposalMessage,
  },
  evidence: {
    bytes: encodeEvidence({ kind: "duplicateVote", first: prevoteA, second: prevoteB }),
    decode: decodeEvidence,
  },
  workSignature: {
    bytes: encodeWorkSignature({
      epoch: 3n,
      signerIndex: 1,
      digest: HASH_A,
      signature: prevoteA.signature,
      sentAtMs: 9,
    }),
    decode: decodeWorkSignature,
  },
  signedProposal: { bytes: encodeSignedProposal(signedProposal), decode: decodeProposalMessage },
  vote: { bytes: encodeSignedVote(prevoteA), decode: decodeSignedVote },
  snapshotOffer: {
    bytes: encodeSnapshotOffer({ height: 9, nextValidatorSet: set }),
    decode: decodeSnapshotOffer,
  },
  stateNodesRequest: {
    bytes: encodeStateNodesRequest([new Uint8Array(32).fill(3), Uint8Array.of(0x63, ...new Uint8Array(32).fill(4))]),
    decode: decodeStateNodesRequest,
  },
  stateNodesResponse: {
    bytes: encodeStateNodesResponse([new Uint8Array(70).fill(5), new Uint8Array(0), new Uint8Array(3)]),
    decode: decodeStateNodesResponse,
  },
};

/** A valid encoding damaged: bit flips, a cut, bytes appended, or a 4-byte window set to 0xff (huge lengths). */
const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
    n: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), extra: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant("inflate" as const), at: fc.nat() }),
);

function mutate(bytes: Uint8Array, m: typeof mutation extends fc.Arbitrary<infer M> ? M : never): Uint8Array {
  const out = Uint8Array.from(bytes);
  if (out.length === 0) return out;
  switch (m.kind) {
    case "flip":
      for (let k = 0; k < m.n; k++) {
        const i = (m.at + k * 7919) % out.length;
        out[i] = (out[i] ?? 0) ^ (1 << m.bit);
      }
      return out;
    case "cut":
      return out.subarray(0, m.at % out.length);
    case "append":
      return Uint8Array.from([...out, ...m.extra]);
    case "inflate": {
      const i = m.at % out.length;
      for (let k = i; k < Math.min(out.length, i + 4); k++) out[k] = 0xff;
      return out;
    }
  }
}

function onlyDecodeError(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
  }
}

const names = Object.keys(samples);

describe("decoders on damaged valid encodings", () => {
  it("throw DecodeError or decode, never anything else, and fail fast on inflated lengths", () => {
    let slowest = 0;
    fc.assert(
      fc.property(fc.constantFrom(...names), mutation, (name, m) => {
        const sample = samples[name];
        if (sample === undefined) return;
        const input = mutate(sample.bytes, m);
        const started = performance.now();
        onlyDecodeError(() => sample.decode(input));
        slowest = Math.max(slowest, performance.now() - started);
      }),
      { numRuns: 5_000 },
    );
    // A length field claiming 4 GiB must be refused from the bytes at hand, not allocated.
    expect(slowest).toBeLessThan(200);
  });

  it("sync: a blocks response of damaged entries plus random tails gives DecodeError or a value", () => {
    const response = samples.blocksResponse?.bytes ?? new Uint8Array(0);
    fc.assert(
      fc.property(mutation, fc.uint8Array({ maxLength: 300 }), (m, tail) => {
        onlyDecodeError(() => decodeBlocksResponse(mutate(Uint8Array.from([...response, ...tail]), m)));
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("gossip verifiers on hostile bytes", () => {
  const ctx: VerifierContext = {
    chainId: CHAIN,
    scheme: blstScheme,
    headHeight: () => 4,
    validatorSetFor: (h) => (h === 5 ? set : h === 6 ? nextHeightValidatorSet(set) : undefined),
    committedValidatorSet: async () => set,
    behind: () => {},
  };
  const seeds = [
    encodeSignedVote(prevoteA),
    encodeProposalMessage({ proposal: signedProposal, block: new Uint8Array(40).fill(9) }),
    encodeEvidence({ kind: "duplicateVote", first: prevoteA, second: prevoteB }),
    ...precommits.map(encodeSignedVote),
  ];

  it("return accept, ignore or reject, never throw, on damaged and random messages", async () => {
    const verdicts = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc
            .tuple(fc.constantFrom(...seeds, encodeCertificateMessage(certificate)), mutation)
            .map(([b, m]) => mutate(b, m)),
          fc.uint8Array({ maxLength: 400 }),
        ),
        async (data) => {
          const results = [
            verifyVoteMessage(ctx, data, "peer"),
            verifyProposalMessage(ctx, data, "peer"),
            verifyCertificateMessage(ctx, data, "peer"),
            await verifyEvidenceMessage(ctx, data, "peer"),
          ];
          for (const r of results) {
            expect(["accept", "ignore", "reject"]).toContain(r.kind);
            const key = r.kind === "accept" ? "accept" : `${r.kind}:${r.code}`;
            verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
          }
        },
      ),
      { numRuns: 600 },
    );
    // The inputs got past decoding into the signature and height checks, not only "malformed".
    expect([...verdicts.keys()].some((k) => k.includes("signature") || k.includes("height"))).toBe(true);
  });

  it("a bit flip anywhere in a valid signed vote never yields an accepted vote with other content", () => {
    const original = encodeSignedVote(prevoteA);
    for (let i = 0; i < original.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Uint8Array.from(original);
        damaged[i] = (damaged[i] ?? 0) ^ (1 << bit);
        expect(verifyVoteMessage(ctx, damaged, "peer").kind, `byte ${i} bit ${bit}`).not.toBe("accept");
      }
    }
  });
});

describe("raw transactions", () => {
  it("decodeTransaction returns a typed refusal for damaged and random bytes, never throws", () => {
    // A real EIP-1559 transfer as the seed.
    const seed = signEip1559(
      {
        chainId: CHAIN,
        nonce: 0,
        maxPriorityFeePerGas: 1n,
        maxFeePerGas: 10n ** 10n,
        gas: 21_000n,
        to: `0x${"01".repeat(20)}`,
        value: 1n,
        data: new Uint8Array(0),
      },
      new Uint8Array(32).fill(7),
    ).raw;
    expect(decodeTransaction(seed, CHAIN).ok).toBe(true);
    fc.assert(
      fc.property(
        fc.oneof(
          mutation.map((m) => mutate(seed, m)),
          fc.uint8Array({ maxLength: 300 }),
        ),
        (raw) => {
          const r = decodeTransaction(raw, CHAIN);
          if (!r.ok) expect(typeof r.code).toBe("string");
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

/** Any JSON value, and the valid document with one field replaced by one. */
const jsonValue = fc.jsonValue({ maxDepth: 4 });

function replaceAt(doc: Record<string, unknown>, path: readonly string[], value: unknown): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined) return doc;
  const inner = doc[head];
  return {
    ...doc,
    [head]:
      rest.length === 0 || typeof inner !== "object" || inner === null
        ? value
        : replaceAt(inner as Record<string, unknown>, rest, value),
  };
}

function leafPaths(doc: unknown, prefix: string[] = []): string[][] {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return [prefix];
  return Object.entries(doc).flatMap(([k, v]) => [[...prefix, k], ...leafPaths(v, [...prefix, k])]);
}

describe("config and genesis files", () => {
  const config = {
    role: "validator",
    dataDir: "data",
    genesis: "genesis.json",
    keys: { dir: "keys" },
    p2p: { listen: ["/ip4/0.0.0.0/tcp/26656"], peers: [], replicas: [] },
    consensus: { timeoutProposeMs: 1000 },
    metrics: { enabled: true, host: "127.0.0.1", port: 9100 },
    rpc: { enabled: true, host: "127.0.0.1", port: 8545 },
    log: { level: "info" },
  };

  it("parseConfig accepts the seed and gives ConfigError (never another error) for any damaged field", () => {
    expect(() => parseConfig(config, "/srv/dcn")).not.toThrow();
    const paths = leafPaths(config).filter((p) => p.length > 0);
    // Tagged, so that a whole document that happens to look like [path, value] is not taken for one.
    const whole = jsonValue.map((doc) => ({ doc }));
    const field = fc
      .tuple(fc.constantFrom(...paths), jsonValue)
      .map(([path, value]) => ({ doc: replaceAt(config, path, value) as unknown }));
    fc.assert(
      fc.property(fc.oneof(whole, field), ({ doc }) => {
        try {
          parseConfig(doc, "/srv/dcn");
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it("parseGenesis gives GenesisError (never another error) for any damaged field", () => {
    const identities = [1, 2, 3].map((i) =>
      describeKeys({
        consensus: generateBlsSecretKey(new Uint8Array(32).fill(i)),
        peer: peerKeyFromSeed(new Uint8Array(32).fill(i)),
        operator: new Uint8Array(32).fill(i),
      }),
    );
    const genesis = buildGenesis({
      chainId: CHAIN,
      genesisTimeMs: 1_700_000_000_000,
      validators: identities.map((identity, i) => ({ name: `v${i}`, votingPower: 10n, identity })),
      execution: { alloc: [{ address: `0x${"11".repeat(20)}`, balance: "1000" }] },
    }) as unknown as Record<string, unknown>;
    expect(() => parseGenesis(genesis)).not.toThrow();
    const paths = leafPaths(genesis).filter((p) => p.length > 0);
    fc.assert(
      fc.property(fc.constantFrom(...paths), jsonValue, (path, value) => {
        try {
          parseGenesis(replaceAt(genesis, path, value));
        } catch (error) {
          if (!(error instanceof GenesisError)) throw error;
        }
      }),
      { numRuns: 300 },
    );
  });
});
