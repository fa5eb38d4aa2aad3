// A chain of real blocks (header v5 with lastCertificate) and BLS certificates for the batch tests and the
// compression measurement: block h + 1 carries the canonical certificate of h, like the committed chain.
import { type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { type Certificate, encodeCertificate } from "../../consensus/certificate.ts";
import { type Block, blockHash, EMPTY_DEPOSITS_HASH, encodeBlock, ZERO_HASH } from "../../src/chain/block.ts";
import type { BatchItem } from "../../src/l1/batch.ts";
import { CHAIN_ID, certificateFor, testNet } from "../storage/fixtures.ts";

export { CHAIN_ID };

/** Deterministic pseudo-random bytes (signed transactions look random to a compressor). */
function noise(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A transaction-like byte string: an RLP-ish prefix, a recipient repeated across blocks, random signature. */
function transaction(height: number, i: number): Uint8Array {
  const out = new Uint8Array(110);
  out.set([0x02, 0xf8, 0x6b, 0x84], 0);
  out.set(utf8("recipient-0000000000").subarray(0, 20), 10);
  out.set(noise(height * 1_000 + i + 1, 70), 40);
  return out;
}

export function buildChain(count: number, txsPerBlock = 0, from = 1): BatchItem[] {
  const net = testNet();
  const set = net.genesis;
  const items: BatchItem[] = [];
  let parentHash: Hex = toHex(keccak256(utf8("batch test genesis")));
  let lastCertificate: Uint8Array = new Uint8Array(0);
  for (let height = from; height < from + count; height++) {
    const block: Block = {
      header: {
        chainId: CHAIN_ID,
        height,
        timestampMs: 1_700_000_000_000 + height * 1_000,
        parentHash,
        l1Origin: { number: 100n + BigInt(height >> 3), hash: toHex(keccak256(utf8(`l1 ${height >> 3}`))) },
        proposer: `0x${"ab".repeat(20)}`,
        validatorSetId: set.id,
        nextValidatorSetId: set.id,
        lastCertificateHash: height === 1 ? ZERO_HASH : toHex(keccak256(lastCertificate)),
        depositsHash: EMPTY_DEPOSITS_HASH,
        nextDepositNonce: 0n,
        transactionsRoot: toHex(keccak256(utf8(`tx ${height}`))),
        receiptsRoot: toHex(keccak256(utf8(`rc ${height}`))),
        stateRoot: toHex(keccak256(utf8(`st ${height}`))),
        gasLimit: 30_000_000n,
        gasUsed: BigInt(21_000 * txsPerBlock),
        baseFeePerGas: 1_000_000_000n,
        logsBloom: `0x${"00".repeat(256)}`,
        vmRoots: [{ vm: 1, root: toHex(keccak256(utf8(`evm ${height}`))) }],
      },
      lastCertificate,
      deposits: [],
      transactions: Array.from({ length: txsPerBlock }, (_, i) => transaction(height, i)),
    };
    const hash = blockHash(block.header);
    const certificate: Certificate = certificateFor(net, set, height, hash, 3);
    items.push({ height, block: encodeBlock(block), certificate });
    parentHash = hash;
    lastCertificate = encodeCertificate(certificate);
  }
  return items;
}
