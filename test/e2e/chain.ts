// Reads a stopped node's level store and checks its chain independently of the node: every block hashes to what its
// certificate certifies, chains to its parent, and every certificate verifies
// against the validator set of its height (with blst; the certificate tests cover the pure-JS path); and the state of
// its newest heights is whole in the store (every trie node and code the roots reach, through the state generations).
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { certificateSigners, verifyCertificate } from "../../consensus/certificate.ts";
import type { Evidence, ValidatorSet } from "../../consensus/types.ts";
import { nextHeightValidatorSet } from "../../consensus/validator-set.ts";
import { blockHash, decodeBlock, decodeBlockHead } from "../../src/chain/block.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { blstScheme } from "../../src/crypto/blst.ts";
import { walkState } from "../../src/execution/reachable.ts";
import { EVM_VM } from "../../src/execution/vm.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";

/** Heights of state checked whole by readChain: the newest ones (fewer if the node keeps fewer). */
const STATE_CHECKED_HEIGHTS = 16;

export interface ChainReport {
  readonly hashes: readonly Hex[];
  /** Validator indices that signed each height's certificate. */
  readonly signers: readonly (readonly number[])[];
  readonly evidence: readonly Evidence[];
  readonly set: ValidatorSet;
  /** The newest heights whose state was walked, and those of them whose state is not whole (a node or code missing). */
  readonly stateChecked: readonly number[];
  readonly stateGaps: readonly { readonly height: number; readonly error: string }[];
}

/**
 * Walks the state of committed `height` in `store` (EVM accounts, storage tries and code; the SVM trie), reading every
 * node through the state generations; throws on the first one missing. Returns the number of nodes and code read.
 */
export async function walkStoredState(store: ChainStore, height: number): Promise<number> {
  const bytes = await store.getBlock(height);
  if (bytes === undefined) throw new Error(`no block ${height}`);
  const seen = new Set<string>();
  const read = async (key: string) => (await store.stateNode(fromHex(key)))?.value;
  let nodes = 0;
  for (const { vm, root } of decodeBlockHead(bytes).header.vmRoots) {
    nodes += await walkState(root, vm === EVM_VM.id, read, seen, async (key) => {
      if ((await read(key)) === undefined) throw new Error(`code ${key} is missing`);
      nodes++;
    });
  }
  return nodes;
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
    const from = Math.max(1, store.stateGenerations.keptFrom, store.headHeight - STATE_CHECKED_HEIGHTS + 1);
    const stateChecked: number[] = [];
    const stateGaps: { height: number; error: string }[] = [];
    for (let h = from; h <= store.headHeight; h++) {
      stateChecked.push(h);
      try {
        await walkStoredState(store, h);
      } catch (error) {
        stateGaps.push({ height: h, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return { hashes, signers, evidence, set: genesis.validatorSet, stateChecked, stateGaps };
  } finally {
    await store.close();
  }
}
