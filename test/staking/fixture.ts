// The staking contracts deployed on a real anvil (Prague, EIP-2537) from the committed artifacts, driven with viem
// through anvil's unlocked accounts; BLS keys, proofs of possession, votes and certificates made by the node's own
// code (src/crypto/blst.ts, consensus/). One chain per test file; `snapshot`/`revert` isolate the tests inside it.
import { type Address, type Chain, createTestClient, createWalletClient, type Hex, http } from "viem";
import { fromHex, toHex, uintBytes } from "../../consensus/bytes.ts";
import { type WorkReportEntry, workReportDigest } from "../../consensus/signing.ts";
import type { Signer } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { blsProofOfPossession, blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { type AnvilProcess, startAnvil } from "../../src/l1/anvil.ts";
import {
  DEFAULT_STAKING_PARAMS,
  deployStaking,
  LUMIA_SUPPLY,
  l1Chain,
  STAKING_ERRORS,
  type StakingParams,
  sequencerRegistration,
  stakingRevert,
} from "../../src/l1/deploy.ts";
import { g2ToEip2537 } from "../../staking-contracts/eip2537.ts";

export const L1_CHAIN_ID = 31_337;
/** The subnet's chain id: vote and work-report digests commit to it. */
export const SUBNET_CHAIN_ID = 994_873_017n;
export { LUMIA } from "../../src/l1/deploy.ts";
export const SUPPLY = LUMIA_SUPPLY;
const ACCOUNT_COUNT = 24;

/** Every custom error of every contract, to name the revert of a nested call (Rewards -> SequencerRegistry). */
export const ALL_ERRORS = STAKING_ERRORS;

export type DeployOptions = StakingParams;

export const DEFAULTS: DeployOptions = DEFAULT_STAKING_PARAMS;

/** A sequencer operator's keys: the node's BLS key (blst) and what registration needs. */
export interface OperatorKeys {
  readonly secretKey: Uint8Array;
  readonly signer: Signer;
  readonly publicKey: Hex;
  readonly publicKeyG1: Hex;
  readonly proofOfPossession: Hex;
  readonly proofOfPossessionG2: Hex;
  readonly peerId: Hex;
}

/** Deterministic keys from a small seed (scalar 1000 + seed). */
export function operatorKeys(seed: number): OperatorKeys {
  const secretKey = uintBytes(1000 + seed, 32);
  const signer = createBlstSigner(secretKey);
  const pop = blsProofOfPossession(secretKey);
  return {
    secretKey,
    signer,
    ...sequencerRegistration(
      toHex(signer.publicKey),
      toHex(pop),
      // An Ed25519 peer id multihash: identity(36) of the protobuf key 0x08 0x01 0x12 0x20 || key.
      toHex(new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...uintBytes(seed + 1, 32)])),
    ),
  };
}

/** The name of the custom error a failed call or transaction reverted with, or null. */
export function revertName(error: unknown): string | null {
  return stakingRevert(error)?.name ?? null;
}

/** Resolves to the custom error name when `promise` rejects with a revert; fails the test when it does not. */
export async function revertOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const name = revertName(error);
    if (name === null) throw error;
    return name;
  }
  throw new Error("expected a revert, but the call succeeded");
}

/** The signatures of `signerIndices` (set order) over `digest`, aggregated into the contracts' certificate form. */
export function aggregateOver(
  digest: Uint8Array,
  keysBySetIndex: readonly OperatorKeys[],
  signerIndices: readonly number[],
): WorkCertificate {
  const bitmap = new Uint8Array(Math.ceil(keysBySetIndex.length / 8));
  const signatures: Uint8Array[] = [];
  for (const i of signerIndices) {
    const keys = keysBySetIndex[i];
    if (keys === undefined) throw new Error(`no keys for set index ${i}`);
    bitmap[i >> 3] = (bitmap[i >> 3] ?? 0) | (1 << (i & 7));
    signatures.push(keys.signer.sign(digest));
  }
  const aggregate = blstScheme.aggregateSignatures(signatures);
  return { signers: toHex(bitmap), signature: toHex(aggregate), signatureG2: toHex(g2ToEip2537(aggregate)) };
}

export interface WorkCertificate {
  readonly signers: Hex;
  readonly signature: Hex;
  readonly signatureG2: Hex;
}

export type StakingChain = Awaited<ReturnType<typeof startStakingChain>>;

/** `anvilArgs`: more anvil flags (`--prune-history 8`: an L1 endpoint that keeps only the newest states). */
export async function startStakingChain(overrides: Partial<DeployOptions> = {}, anvilArgs: readonly string[] = []) {
  const opts: DeployOptions = { ...DEFAULTS, ...overrides };
  const anvil: AnvilProcess = await startAnvil({
    port: 0,
    chainId: BigInt(L1_CHAIN_ID),
    args: ["--hardfork", "prague", "--accounts", String(ACCOUNT_COUNT), "--silent", ...anvilArgs],
  });
  try {
    return await deploy(anvil, opts);
  } catch (error) {
    await anvil.stop(0);
    throw error;
  }
}

async function deploy(anvil: AnvilProcess, opts: DeployOptions) {
  const chain: Chain = l1Chain(anvil.url, L1_CHAIN_ID);
  const transport = http(anvil.url, { timeout: 20_000 });
  const testClient = createTestClient({ chain, transport, mode: "anvil" });
  const accounts = (await createWalletClient({ chain, transport }).getAddresses()) as Address[];
  const at = (i: number): Address => {
    const a = accounts[i];
    if (a === undefined) throw new Error(`anvil has no account #${i}`);
    return a;
  };
  const governance = at(0);
  const treasury = at(1);
  /** Accounts free for operators and delegators. */
  const users = accounts.slice(2);
  const d = await deployStaking({
    rpcUrl: anvil.url,
    chainId: L1_CHAIN_ID,
    governance,
    treasury,
    subnetChainId: SUBNET_CHAIN_ID,
    params: opts,
  });
  const { registry } = d;

  /** Mines until the next `advanceEpoch` is allowed, then sends it. Returns the new epoch. */
  const advanceEpoch = () => d.advanceEpoch((blocks) => testClient.mine({ blocks }));

  /** Aggregates the signatures of `signerIndices` (set order) over the work report digest. */
  function certify(
    epoch: bigint,
    entries: readonly WorkReportEntry[],
    keysBySetIndex: readonly OperatorKeys[],
    signerIndices: readonly number[],
  ): WorkCertificate {
    return aggregateOver(workReportDigest(SUBNET_CHAIN_ID, epoch, entries), keysBySetIndex, signerIndices);
  }

  /** The operator keys in the set order of `epoch`, from a key lookup. */
  async function keysInSetOrder(epoch: bigint, byPublicKey: ReadonlyMap<string, OperatorKeys>) {
    const [publicKeys] = await registry.read.validatorSet([epoch]);
    return publicKeys.map((pk) => {
      const keys = byPublicKey.get(pk.toLowerCase());
      if (keys === undefined) throw new Error(`unknown key ${pk}`);
      return keys;
    });
  }

  return {
    ...d,
    anvil,
    chain,
    opts,
    testClient,
    governance,
    treasury,
    users,
    gov: { account: governance, chain },
    advanceEpoch,
    certify,
    keysInSetOrder,
    /** A tx option for `account`. */
    as: (account: Address) => ({ account, chain }),
    snapshot: () => testClient.snapshot(),
    revert: (id: Hex) => testClient.revert({ id }),
    stop: () => anvil.stop(5_000),
  };
}

/** The order consensus/validator-set.ts gives these keys and powers. */
export function consensusOrder(validators: readonly { publicKey: Hex; power: bigint }[]) {
  const set = createValidatorSet(validators.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: v.power })));
  return { set, publicKeys: set.validators.map((v) => toHex(v.publicKey)), id: set.id };
}
