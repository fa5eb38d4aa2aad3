// The work-report gossip verdicts and quorum logic of src/node/work-reports.ts with real BLS keys: a signature is
// accepted only over this node's own report digest by a member of the epoch's set, and a quorum (> 2/3 of the power)
// is reached once enough distinct members signed. The L1 submission itself is covered on a devnet
// (test/cli/devnet-rewards.test.ts).
import { describe, expect, it } from "vitest";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import { workReportDigest } from "../../consensus/signing.ts";
import { blstScheme, createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";
import { silentLogger } from "../../src/node/log.ts";
import { decodeWorkSignature, encodeWorkSignature, type WorkSignature } from "../../src/node/messages.ts";
import type { WorkLedger, WorkReport } from "../../src/node/work-ledger.ts";
import { DEFAULT_WORK_REPORTER_PARAMS, WorkReporter } from "../../src/node/work-reports.ts";

const signers = [1, 2, 3, 4].map((i) => createBlstSigner(generateBlsSecretKey(new Uint8Array(32).fill(i))));
const entries = signers.map((_, i) => ({ blocksProposed: BigInt(i), precommitsSigned: 10n, batchesPosted: 0n }));
const report: WorkReport = {
  epoch: 7n,
  firstHeight: 1,
  lastHeight: 10,
  setId: `0x${"11".repeat(32)}`,
  members: signers.map((s) => ({ address: "0x00", publicKey: toHex(s.publicKey), votingPower: 10n })),
  entries,
  digest: toHex(workReportDigest(5n, 7n, entries)),
  submittable: true,
};

/** The ledger's side of the interface the reporter uses: one completed report. */
function ledgerWith(r: WorkReport): WorkLedger {
  return { onReport: () => () => {}, recentReports: () => [r], report: () => r } as unknown as WorkLedger;
}

function signatureFrom(i: number, digest: Hex = report.digest, epoch = report.epoch): Uint8Array {
  const s = signers[i];
  if (s === undefined) throw new Error("no signer");
  const msg: WorkSignature = { epoch, signerIndex: i, digest, signature: s.sign(fromHex(digest)), sentAtMs: 1 };
  return encodeWorkSignature(msg);
}

describe("work report gossip", () => {
  it("accepts members' signatures over the same digest, rejects forgeries, and reaches a quorum at 3 of 4", () => {
    const published: Uint8Array[] = [];
    const reporter = new WorkReporter(DEFAULT_WORK_REPORTER_PARAMS, {
      ledger: ledgerWith(report),
      signer: signers[0] ?? null,
      scheme: blstScheme,
      submitter: null,
      publish: (b) => published.push(b),
      log: silentLogger(),
      nowMs: () => 1_000,
    });
    reporter.start();
    try {
      // It signed and sent its own signature at once.
      expect(published).toHaveLength(1);
      const own = decodeWorkSignature(published[0] ?? new Uint8Array());
      expect(own).toMatchObject({ epoch: 7n, signerIndex: 0, digest: report.digest });
      expect(reporter.status(7n)).toMatchObject({ phase: "collecting", signers: [0] });

      expect(reporter.validate(new Uint8Array([1, 2, 3]))).toEqual({ kind: "reject", code: "malformed" });
      const otherDigest = toHex(
        workReportDigest(
          5n,
          7n,
          entries.map((e) => ({ ...e, batchesPosted: 1n })),
        ),
      );
      expect(reporter.validate(signatureFrom(1, otherDigest))).toEqual({ kind: "reject", code: "wrong_digest" });
      expect(reporter.validate(signatureFrom(1, report.digest, 8n))).toEqual({ kind: "ignore", code: "unknown_epoch" });
      // Member 2's signature presented as member 1's.
      const forged = decodeWorkSignature(signatureFrom(2));
      expect(reporter.validate(encodeWorkSignature({ ...forged, signerIndex: 1 }))).toEqual({
        kind: "reject",
        code: "bad_signature",
      });
      expect(reporter.validate(encodeWorkSignature({ ...forged, signerIndex: 9 }))).toEqual({
        kind: "reject",
        code: "bad_signer_index",
      });

      for (const i of [1, 2]) {
        const verdict = reporter.validate(signatureFrom(i));
        expect(verdict.kind).toBe("accept");
        if (verdict.kind === "accept") reporter.onSignature(verdict.value);
      }
      expect(reporter.validate(signatureFrom(1))).toEqual({ kind: "ignore", code: "duplicate" });
      expect(reporter.status(7n)).toMatchObject({ phase: "quorum", signers: [0, 1, 2], signingPower: 30n });
    } finally {
      reporter.stop();
    }
  });
});
