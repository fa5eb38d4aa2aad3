// The light client's root of trust: what the user got from a source other than the node it queries (the genesis
// file of the subnet, or the L1 registry). Everything else the client accepts is derived from it by checking
// certificates: the genesis set signs height 1, each certified header names the set of the next height.
import { fromHex, type Hex, isHex } from "../../consensus/bytes.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { createValidatorSet, ValidatorSetError, validatorAddress } from "../../consensus/validator-set.ts";

export interface AnchorValidator {
  /** 48-byte compressed BLS12-381 G1 key. */
  readonly publicKey: Hex | Uint8Array;
  readonly votingPower: bigint;
  /** Shown next to the validator's address when it signs; not part of any check. */
  readonly name?: string;
}

export interface TrustAnchor {
  readonly chainId: bigint;
  /** The genesis hash (docs/protocol.md "Genesis"): the parent of height 1. */
  readonly genesisHash: Hex;
  /** The genesis validator set: the set that decides height 1. */
  readonly validators: readonly AnchorValidator[];
}

/** The parts of a parsed genesis (src/config/genesis.ts `Genesis`) the anchor needs. */
export interface GenesisLike {
  readonly chainId: bigint;
  readonly hash: Hex;
  readonly validators: readonly { readonly blsPublicKey: Hex; readonly votingPower: bigint; readonly name: string }[];
}

/** The anchor of a parsed genesis file (loadGenesis / parseGenesis already checked keys and proofs of possession). */
export function anchorFromGenesis(genesis: GenesisLike): TrustAnchor {
  return {
    chainId: genesis.chainId,
    genesisHash: genesis.hash,
    validators: genesis.validators.map((v) => ({
      publicKey: v.blsPublicKey,
      votingPower: v.votingPower,
      name: v.name,
    })),
  };
}

export interface ResolvedAnchor {
  readonly chainId: bigint;
  readonly genesisHash: Hex;
  readonly set: ValidatorSet;
  /** Consensus address -> name, for the validators the anchor names. */
  readonly names: ReadonlyMap<Hex, string>;
}

/** Checks the anchor's shape and builds the genesis set. Throws RangeError: a bad anchor is the caller's mistake. */
export function resolveAnchor(anchor: TrustAnchor): ResolvedAnchor {
  if (typeof anchor.chainId !== "bigint" || anchor.chainId <= 0n || anchor.chainId >= 1n << 64n) {
    throw new RangeError(`anchor chainId ${String(anchor.chainId)} is not a positive u64 bigint`);
  }
  if (!isHex(anchor.genesisHash, 32))
    throw new RangeError(`anchor genesisHash ${anchor.genesisHash} is not 32-byte hex`);
  const names = new Map<Hex, string>();
  const inputs = anchor.validators.map((v, i) => {
    const publicKey = typeof v.publicKey === "string" ? hexKey(v.publicKey, i) : v.publicKey;
    if (v.name !== undefined) names.set(validatorAddress(publicKey), v.name);
    return { publicKey, votingPower: v.votingPower };
  });
  let set: ValidatorSet;
  try {
    set = createValidatorSet(inputs);
  } catch (error) {
    if (error instanceof ValidatorSetError) throw new RangeError(`anchor validators: ${error.message}`);
    throw error;
  }
  return { chainId: anchor.chainId, genesisHash: anchor.genesisHash.toLowerCase() as Hex, set, names };
}

function hexKey(key: Hex, i: number): Uint8Array {
  if (!isHex(key, 48)) throw new RangeError(`anchor validator #${i} public key is not 48-byte hex`);
  return fromHex(key);
}
