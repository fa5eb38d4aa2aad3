// Reads a stopped node's level store and checks its chain independently of the node: every block hashes to what its
// certificate certifies, chains to its parent, and every certificate verifies
// against the validator set of its height (with blst; the certificate tests cover the pure-JS path).
import type { Hex } from "../../consensus/bytes.ts";
import { certificateSigners, verifyCertificate } from "../../consensus/certificate.ts";
import type { Evidence, ValidatorSet } from "../../consensus/types.ts";
import { nextHeightValidatorSet } from "../../consensus/validator-set.ts";
import { blockHash, decodeBlock } from "../../src/chain/block.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { blstScheme } from "../../src/crypto/blst.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";

export interface ChainReport {
  readonly hashes: readonly Hex[];
  /** Validator indices that signed each height's certificate. */
  readonly signers: readonly (readonly number[])[];
  readonly evidence: readonly Evidence[];
  readonly set: ValidatorSet;
}

export async function readChain(dataDir: string, genesisPath: string): Promise<ChainReport> {
  const genesis = await loadGenesis(genesisPath);
  const store = await ChainStore.open(dataDir, {
    genesisHash: genesis.hash,
    genesisValidatorSet: genesis.validatorSet,
  });
  try {
    const hashes: Hex[] = [];
    const signers: number[][] = [];
    let set = genesis.validatorSet;
    let parent = genesis.hash;
    for (let h = 1; h <= store.headHeight; h++) {
      const bytes = await store.getBlock(h);
      const cert = await store.getCertificate(h);
      if (bytes === undefined || cert === undefined) throw new Error(`height ${h}: block or certificate missing`);
      const block = decodeBlock(bytes);
      const hash = blockHash(block.header);
      if (hash !== cert.blockHash)
        throw new Error(`height ${h}: block hash ${hash} is not the certified ${cert.blockHash}`);
      if (block.header.parentHash !== parent)
        throw new Error(`height ${h}: parent ${block.header.parentHash} != ${parent}`);
      const verdict = verifyCertificate(cert, set, { chainId: genesis.chainId, scheme: blstScheme });
      if (!verdict.ok) throw new Error(`height ${h}: certificate refused: ${verdict.code} ${verdict.message}`);
      hashes.push(hash);
      signers.push(certificateSigners(cert, set));
      parent = hash;
      set = nextHeightValidatorSet(set);
    }
    const evidence = await store.listEvidence(0, 1000);
    return { hashes, signers, evidence, set: genesis.validatorSet };
  } finally {
    await store.close();
  }
}
