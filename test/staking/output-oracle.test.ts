// OutputOracle on anvil: v6 headers encoded by the node, certified by the node's BLS code over the precommit digest
// and verified by the registry on chain; every refusal (below 2/3, another epoch's set, a tampered byte, another
// chain, a height that does not increase, malformed VM roots, a set too old) and the views.
import type { Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { toHex, uintBytes } from "../../consensus/bytes.ts";
import { certificateDigest } from "../../consensus/signing.ts";
import { BLOCK_VERSION, blockHash, encodeHeader } from "../../src/chain/block.ts";
import { globalStateRoot } from "../../src/execution/vm.ts";
import {
  certifyHeader,
  encodeHeaderV6Layout,
  type FinalityChain,
  proposal,
  revertOf,
  startFinalityChain,
  testHeader,
} from "./finality-fixture.ts";
import { LUMIA, SUBNET_CHAIN_ID } from "./fixture.ts";

let chain: FinalityChain;
let snapshot: Hex;
let setId1: Hex;
/** Signers of more than 2/3 of epoch 1's power (4000 + 3000 + 2000 of 10000). */
const QUORUM = [0, 1, 2];

beforeAll(async () => {
  chain = await startFinalityChain();
  setId1 = await chain.setIdOf(1n);
});
afterAll(async () => {
  await chain?.stop();
});
beforeEach(async () => {
  snapshot = await chain.snapshot();
});
afterEach(async () => {
  await chain.revert(snapshot);
});

const oracle = () => chain.finality.outputOracle;
const propose = (args: ReturnType<typeof proposal>) => chain.mined(oracle().write.proposeOutput(args, chain.gov));
const simulate = (args: ReturnType<typeof proposal>) => oracle().simulate.proposeOutput(args, chain.gov);

describe("header v6 and digest", () => {
  it("the node's encoder writes the layout the contract reads, and the contract's digest is the node's", async () => {
    expect(BLOCK_VERSION).toBe(6);
    const header = testHeader(42, setId1);
    const encoded = encodeHeader(header);
    expect(toHex(encoded)).toBe(toHex(encodeHeaderV6Layout(header)));
    expect(encoded.length).toBe(633 + 33);
    const onChain = await oracle().read.certificateDigest([42n, 3, blockHash(header)]);
    expect(onChain).toBe(toHex(certificateDigest(SUBNET_CHAIN_ID, 42, 3, blockHash(header))));
  });
});

describe("proposeOutput", () => {
  it("accepts a header certified by more than 2/3 of the epoch's power and stores the output", async () => {
    const header = testHeader(10, setId1);
    const receipt = await propose(proposal(1n, header, 2, certifyHeader(header, 2, chain.setKeys, QUORUM)));
    const events = await oracle().getEvents.OutputProposed({}, { blockHash: receipt.blockHash });
    expect(events.map((e) => e.args)).toEqual([
      { index: 0n, height: 10n, blockHash: blockHash(header), stateRoot: header.stateRoot },
    ]);
    const block = await chain.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    const output = await oracle().read.outputAt([0n]);
    expect(output).toEqual({
      blockHash: blockHash(header),
      stateRoot: header.stateRoot,
      evmRoot: header.vmRoots[0]?.root,
      height: 10n,
      epoch: 1n,
      l1BlockNumber: receipt.blockNumber,
      l1Timestamp: block.timestamp,
    });
    expect(await oracle().read.latestOutput()).toEqual(output);
    expect(await oracle().read.outputCount()).toBe(1n);
  });

  it("refuses signers of 2/3 or less of the power", async () => {
    const header = testHeader(10, setId1);
    // 4000 + 2000 = 60%; 3000 + 2000 + 1000 = 60%.
    for (const signers of [
      [0, 2],
      [1, 2, 3],
    ]) {
      const cert = certifyHeader(header, 0, chain.setKeys, signers);
      expect(await revertOf(simulate(proposal(1n, header, 0, cert)))).toBe("InsufficientSigningPower");
    }
  });

  it("refuses a certificate over another round, or by another epoch's set", async () => {
    const header = testHeader(10, setId1);
    const otherRound = certifyHeader(header, 1, chain.setKeys, QUORUM);
    expect(await revertOf(simulate(proposal(1n, header, 0, otherRound)))).toBe("InvalidSignature");

    // Epoch 2: validator 3's stake grows, so the set (and its id) changes.
    await chain.mined(
      chain.staking.write.stake([chain.ids[3] ?? 0, 500n * LUMIA], chain.as(chain.operators[3] ?? "0x")),
    );
    await chain.advanceEpoch();
    const setId2 = await chain.setIdOf(2n);
    expect(setId2).not.toBe(setId1);
    const cert = certifyHeader(header, 0, chain.setKeys, QUORUM);
    // The header names epoch 1's set: proposing it as epoch 2's is refused before any signature check.
    expect(await revertOf(simulate(proposal(2n, header, 0, cert)))).toBe("ValidatorSetMismatch");
    // A header naming a set that is no epoch's.
    const forged = testHeader(10, toHex(uintBytes(7, 32)));
    const forgedCert = certifyHeader(forged, 0, chain.setKeys, QUORUM);
    expect(await revertOf(simulate(proposal(1n, forged, 0, forgedCert)))).toBe("ValidatorSetMismatch");
    // An epoch without a set (the future).
    const future = testHeader(10, `0x${"00".repeat(32)}`);
    const futureCert = certifyHeader(future, 0, chain.setKeys, QUORUM);
    expect(await revertOf(simulate(proposal(9n, future, 0, futureCert)))).toBe("UnknownEpoch");
    // Epoch 1's certificate is still good while epoch 1 is within maxEpochAge.
    await propose(proposal(1n, header, 0, cert));
  });

  it("refuses a header with any byte changed after certification", async () => {
    const header = testHeader(10, setId1);
    const cert = certifyHeader(header, 0, chain.setKeys, QUORUM);
    const encoded = encodeHeader(header);
    // timestampMs, parentHash, proposer, lastCertificateHash, depositsHash, nextDepositNonce, gasUsed, logsBloom: all
    // covered by the block hash.
    for (const offset of [20, 30, 100, 190, 220, 250, 360, 440]) {
      const tampered = new Uint8Array(encoded);
      tampered[offset] = (tampered[offset] ?? 0) ^ 0x01;
      const args = [1n, toHex(tampered), 0, cert.signers, cert.signature, cert.signatureG2] as const;
      expect(await revertOf(simulate(args)), `offset ${offset}`).toBe("InvalidSignature");
    }
    // The state root no longer matches the VM roots.
    const badRoot = new Uint8Array(encoded);
    badRoot[330] = (badRoot[330] ?? 0) ^ 0x01;
    const args = [1n, toHex(badRoot), 0, cert.signers, cert.signature, cert.signatureG2] as const;
    expect(await revertOf(simulate(args))).toBe("StateRootMismatch");
  });

  it("refuses another chain's header, another version, and malformed VM roots", async () => {
    const other = testHeader(10, setId1, { chainId: SUBNET_CHAIN_ID + 1n });
    const otherCert = certifyHeader(other, 0, chain.setKeys, QUORUM);
    expect(await revertOf(simulate(proposal(1n, other, 0, otherCert)))).toBe("WrongChainId");

    const header = testHeader(10, setId1);
    const cert = certifyHeader(header, 0, chain.setKeys, QUORUM);
    const v5 = encodeHeader(header);
    v5[0] = 5;
    expect(await revertOf(simulate([1n, toHex(v5), 0, cert.signers, cert.signature, cert.signatureG2]))).toBe(
      "BadHeaderVersion",
    );
    const truncated = toHex(encodeHeader(header).subarray(0, 600));
    expect(await revertOf(simulate([1n, truncated, 0, cert.signers, cert.signature, cert.signatureG2]))).toBe(
      "MalformedHeader",
    );

    // A VM list without the EVM (a VM id 2 only), committed to by the state root: refused for want of an EVM root.
    const root = toHex(uintBytes(5, 32));
    const noEvm = testHeader(10, setId1, {
      vmRoots: [{ vm: 2, root }],
      stateRoot: globalStateRoot([{ vm: 2, root }]),
    });
    const noEvmCert = certifyHeader(noEvm, 0, chain.setKeys, QUORUM);
    expect(await revertOf(simulate(proposal(1n, noEvm, 0, noEvmCert)))).toBe("NoEvmRoot");
  });

  it("requires strictly increasing heights; finds outputs by height", async () => {
    for (const height of [10, 20, 30]) {
      const header = testHeader(height, setId1);
      await propose(proposal(1n, header, 0, certifyHeader(header, 0, chain.setKeys, QUORUM)));
    }
    for (const height of [30, 29, 5]) {
      const header = testHeader(height, setId1);
      const cert = certifyHeader(header, 0, chain.setKeys, QUORUM);
      expect(await revertOf(simulate(proposal(1n, header, 0, cert))), `height ${height}`).toBe("HeightNotIncreasing");
    }
    const at = (h: bigint) => oracle().read.outputIndexForHeight([h]);
    expect(await Promise.all([1n, 10n, 11n, 20n, 21n, 30n].map(at))).toEqual([0n, 0n, 1n, 1n, 2n, 2n]);
    expect(await revertOf(at(31n))).toBe("NoOutputAtOrAbove");
    expect(await revertOf(oracle().read.outputAt([3n]))).toBe("UnknownOutput");
    expect((await oracle().read.latestOutput()).height).toBe(30n);
  });

  it("refuses a set older than maxEpochAge epochs (its stake may be withdrawn)", async () => {
    const header = testHeader(10, setId1);
    const cert = certifyHeader(header, 0, chain.setKeys, QUORUM);
    for (let i = 0; i < 3; i++) await chain.advanceEpoch();
    expect(await chain.registry.read.currentEpoch()).toBe(4n);
    expect(await revertOf(simulate(proposal(1n, header, 0, cert)))).toBe("EpochTooOld");
  });
});
