// A sequencer operator's L1 transactions on the SequencerRegistry: governance approves an operator address, the
// operator registers its node (BLS key with proof of possession, peer id, commission) and later requests its exit.
// Each call reads the registry first so that the usual mistakes (not approved yet, already registered, a proof of
// possession that does not verify, not registered) fail with a typed OperatorError naming the next step, before any
// gas is spent; the transaction is then simulated, so any other refusal carries the contract's own error.
import {
  type Address,
  createPublicClient,
  createWalletClient,
  type Hash,
  http,
  isAddress,
  type PrivateKeyAccount,
  type PublicClient,
} from "viem";
import { fromHex, type Hex, isHex } from "../../consensus/bytes.ts";
import { validatorAddress } from "../../consensus/validator-set.ts";
import { SequencerRegistry } from "../../staking-contracts/artifacts.ts";
import { verifyProofOfPossession } from "../crypto/blst.ts";
import type { PublicIdentity } from "../keys/keys.ts";
import { l1Chain, peerIdBytes, sequencerRegistration, stakingRevert } from "./deploy.ts";

export const OPERATOR_LIMITS = {
  /** Per JSON-RPC request. */
  requestTimeoutMs: 30_000,
  /** Waiting for a sent transaction's receipt. */
  receiptTimeoutMs: 120_000,
  receiptPollMs: 200,
  /** Commission is in basis points of the pool's rewards; the contract's own cap (maxCommissionBps) is lower. */
  maxCommissionBps: 10_000,
} as const;

/** The registry's sequencer states (SequencerRegistry.Status). */
export const SEQUENCER_STATUS = ["none", "active", "exiting", "exited"] as const;
export type SequencerStatus = (typeof SEQUENCER_STATUS)[number];

export type OperatorErrorCode =
  /** identity.json is missing a field, or its fields do not belong together. */
  | "identity"
  /** The proof of possession does not verify for the BLS key (checked here and by the contract). */
  | "bad_pop"
  /** Governance has not approved the operator address (SequencerRegistry.approveOperator). */
  | "not_approved"
  /** The operator address already registered a sequencer (one per operator). */
  | "already_registered"
  /** Another sequencer holds this BLS key or peer id. */
  | "key_taken"
  /** The operator address has no sequencer. */
  | "not_registered"
  /** The sequencer is exiting or exited already. */
  | "not_active"
  /** The signing account does not hold the registry's GOVERNOR_ROLE. */
  | "not_governor"
  /** The contract refused for another reason (its error is in the message). */
  | "refused"
  /** The L1 endpoint did not answer, or the transaction did not get mined in time. */
  | "l1";

/** An operator transaction cannot be made; the message says why and what to do. */
export class OperatorError extends Error {
  override readonly name = "OperatorError";
  constructor(
    readonly code: OperatorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Where the registry lives. */
export interface OperatorTarget {
  readonly rpcUrl: string;
  readonly registry: Address;
}

export interface TxResult {
  readonly txHash: Hash;
  readonly blockNumber: bigint;
}

export interface RegisterResult extends TxResult {
  readonly sequencerId: number;
  readonly operator: Address;
  /** The registry's epoch when it registered; the sequencer can enter the set from the next boundary on. */
  readonly epoch: bigint;
  /** First L1 block at which the next epoch may start (advanceEpoch). */
  readonly nextEpochBlock: bigint;
  /** Self-stake (wei) the operator needs in its own pool to be chosen for a set. */
  readonly minSelfStake: bigint;
}

export interface ExitResult extends TxResult {
  readonly sequencerId: number;
  /** The epoch whose set no longer has the sequencer. */
  readonly effectiveEpoch: bigint;
  readonly nextEpochBlock: bigint;
}

export interface ApproveResult {
  /** null when the operator was already approved (nothing sent). */
  readonly tx: TxResult | null;
  readonly operator: Address;
}

export interface OperatorInfo {
  readonly operator: Address;
  readonly approved: boolean;
  /** 0 = none. */
  readonly sequencerId: number;
  readonly status: SequencerStatus;
  readonly epoch: bigint;
  readonly nextEpochBlock: bigint;
}

const REVERT_CODES: Readonly<Record<string, OperatorErrorCode>> = {
  OperatorNotApproved: "not_approved",
  AlreadyRegistered: "already_registered",
  KeyAlreadyRegistered: "key_taken",
  PeerIdAlreadyRegistered: "key_taken",
  InvalidProofOfPossession: "bad_pop",
  KeyEncodingMismatch: "bad_pop",
  NotRegistered: "not_registered",
  SequencerNotActive: "not_active",
  AccessControlUnauthorizedAccount: "not_governor",
};

function firstLine(e: unknown): string {
  const text = e instanceof Error ? ((e as { shortMessage?: string }).shortMessage ?? e.message) : String(e);
  return text.split("\n")[0] ?? "";
}

const formatArg = (a: unknown) => (typeof a === "bigint" ? a.toString() : String(a));

/**
 * Checks that an identity.json holds a registrable node: a 48-byte BLS key whose 96-byte proof of possession verifies,
 * a libp2p peer id, and a consensus address that is the key's. Returns it typed; OperatorError otherwise.
 */
export function checkIdentity(json: unknown, source: string): PublicIdentity {
  const fail = (what: string) =>
    new OperatorError("identity", `${source}: ${what}. Fix: use the identity.json that \`dcn init\` wrote`);
  if (typeof json !== "object" || json === null) throw fail("not a JSON object");
  const o = json as Record<string, unknown>;
  const hexField = (name: string, bytes: number): Hex => {
    const v = o[name];
    if (typeof v !== "string" || !isHex(v) || v.length !== 2 + 2 * bytes) {
      throw fail(`${name} is not 0x followed by ${2 * bytes} hex digits`);
    }
    return v.toLowerCase() as Hex;
  };
  const blsPublicKey = hexField("blsPublicKey", 48);
  const proofOfPossession = hexField("proofOfPossession", 96);
  const operator = hexField("operator", 20);
  const address = hexField("address", 20);
  const peerId = o.peerId;
  if (typeof peerId !== "string") throw fail("peerId is missing");
  try {
    peerIdBytes(peerId);
  } catch {
    throw fail(`peerId ${peerId} is not a libp2p peer id`);
  }
  if (validatorAddress(fromHex(blsPublicKey)) !== address) throw fail("address is not the BLS key's address");
  if (!verifyProofOfPossession(fromHex(blsPublicKey), fromHex(proofOfPossession))) {
    throw new OperatorError(
      "bad_pop",
      `${source}: the proof of possession does not verify for blsPublicKey (the registry would refuse it). ` +
        "Fix: take blsPublicKey and proofOfPossession together from the identity.json that `dcn init` wrote",
    );
  }
  return { blsPublicKey, proofOfPossession, peerId, operator, address };
}

/** The client pair of one target; `account` signs. */
function clients(target: OperatorTarget, account: PrivateKeyAccount | null) {
  const transport = http(target.rpcUrl, { timeout: OPERATOR_LIMITS.requestTimeoutMs });
  const publicClient = createPublicClient({ transport, cacheTime: 0 }) as PublicClient;
  return {
    publicClient,
    wallet: async () => {
      if (account === null) throw new Error("no account to sign with");
      const chain = l1Chain(target.rpcUrl, await publicClient.getChainId());
      return { chain, wallet: createWalletClient({ account, chain, transport }) };
    },
  };
}

/** Wraps L1 reads: a transport failure becomes OperatorError "l1" naming the endpoint. */
async function reading<T>(target: OperatorTarget, what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (cause) {
    throw new OperatorError(
      "l1",
      // Not the URL: it often holds an API key, and this message may end up in a log.
      `cannot read ${what} from the registry ${target.registry}: ${firstLine(cause)} ` +
        "(is the L1 up, and is this the registry address?)",
      { cause },
    );
  }
}

/** The registry's view of `operator`: approval, sequencer id and status, the epoch and the next boundary. */
export async function readOperator(target: OperatorTarget, operator: Address): Promise<OperatorInfo> {
  const { publicClient } = clients(target, null);
  return readOperatorWith(publicClient, target, operator);
}

async function readOperatorWith(
  client: PublicClient,
  target: OperatorTarget,
  operator: Address,
): Promise<OperatorInfo> {
  const read = <T>(functionName: string, args: readonly unknown[] = []) =>
    client.readContract({
      address: target.registry,
      abi: SequencerRegistry.abi,
      functionName: functionName as never,
      args: args as never,
    }) as Promise<T>;
  return reading(target, `operator ${operator}`, async () => {
    const [approved, id, epoch, nextEpochBlock] = await Promise.all([
      read<boolean>("approved", [operator]),
      read<number>("sequencerIdOf", [operator]),
      read<bigint>("currentEpoch"),
      read<bigint>("nextEpochBlock"),
    ]);
    let status: SequencerStatus = "none";
    if (id !== 0) {
      const s = await read<{ status: number }>("sequencer", [id]);
      status = SEQUENCER_STATUS[s.status] ?? "none";
    }
    return { operator, approved, sequencerId: Number(id), status, epoch, nextEpochBlock };
  });
}

/** Simulates, sends and waits for one registry call signed by `account`; refusals become typed errors. */
async function sendRegistryTx(
  target: OperatorTarget,
  account: PrivateKeyAccount,
  what: string,
  functionName: "register" | "requestExit" | "approveOperator",
  args: readonly unknown[],
): Promise<TxResult> {
  const c = clients(target, account);
  let hash: Hash;
  try {
    const { chain, wallet } = await c.wallet();
    const simulated = await c.publicClient.simulateContract({
      address: target.registry,
      abi: SequencerRegistry.abi,
      functionName: functionName as never,
      args: args as never,
      account,
      chain,
    });
    hash = await wallet.writeContract(simulated.request as never);
  } catch (cause) {
    const revert = stakingRevert(cause);
    if (revert !== null) {
      const code = REVERT_CODES[revert.name] ?? "refused";
      throw new OperatorError(
        code,
        `${what} refused by the registry: ${revert.name}(${revert.args.map(formatArg).join(", ")})`,
        { cause },
      );
    }
    throw new OperatorError("l1", `${what} failed: ${firstLine(cause)}`, { cause });
  }
  try {
    const receipt = await c.publicClient.waitForTransactionReceipt({
      hash,
      pollingInterval: OPERATOR_LIMITS.receiptPollMs,
      timeout: OPERATOR_LIMITS.receiptTimeoutMs,
    });
    if (receipt.status !== "success") throw new OperatorError("refused", `${what}: transaction ${hash} reverted`);
    return { txHash: hash, blockNumber: receipt.blockNumber };
  } catch (cause) {
    if (cause instanceof OperatorError) throw cause;
    throw new OperatorError("l1", `${what}: transaction ${hash} sent, but no receipt: ${firstLine(cause)}`, {
      cause,
    });
  }
}

export interface RegisterParameters {
  readonly identity: PublicIdentity;
  /** Signs the registration: its address becomes the sequencer's operator. */
  readonly account: PrivateKeyAccount;
  readonly commissionBps: number;
}

/** `SequencerRegistry.register` for a node identity (the EIP-2537 encodings of its key and proof of possession). */
export async function registerSequencer(target: OperatorTarget, p: RegisterParameters): Promise<RegisterResult> {
  if (!Number.isInteger(p.commissionBps) || p.commissionBps < 0 || p.commissionBps > OPERATOR_LIMITS.maxCommissionBps) {
    throw new RangeError(`commissionBps ${p.commissionBps} is not an integer from 0 to 10000`);
  }
  // Again here: a caller may build the identity itself, and a bad proof must never cost gas.
  const identity = checkIdentity(p.identity, "identity");
  const operator = p.account.address;
  const { publicClient } = clients(target, null);
  const before = await readOperatorWith(publicClient, target, operator);
  if (before.sequencerId !== 0) {
    throw new OperatorError(
      "already_registered",
      `${operator} already registered sequencer ${before.sequencerId} (${before.status}); an operator registers one ` +
        "sequencer: stake in it with dcn stake, or register another node from another operator address",
    );
  }
  if (!before.approved) {
    throw new OperatorError(
      "not_approved",
      `${operator} is not approved by the registry's governance yet. Fix: send this address to the subnet's ` +
        "governance; it approves it with SequencerRegistry.approveOperator (dcn approve --operator ADDRESS), then " +
        "run dcn register again",
    );
  }
  const keys = sequencerRegistration(identity.blsPublicKey, identity.proofOfPossession, peerIdBytes(identity.peerId));
  const tx = await sendRegistryTx(target, p.account, `register ${identity.address}`, "register", [
    {
      publicKey: keys.publicKey,
      publicKeyG1: keys.publicKeyG1,
      proofOfPossession: keys.proofOfPossession,
      proofOfPossessionG2: keys.proofOfPossessionG2,
      peerId: keys.peerId,
      commissionBps: p.commissionBps,
    },
  ]);
  const after = await readOperatorWith(publicClient, target, operator);
  const minSelfStake = await reading(
    target,
    "minSelfStake",
    () =>
      publicClient.readContract({
        address: target.registry,
        abi: SequencerRegistry.abi,
        functionName: "minSelfStake",
      }) as Promise<bigint>,
  );
  return {
    ...tx,
    sequencerId: after.sequencerId,
    operator,
    epoch: after.epoch,
    nextEpochBlock: after.nextEpochBlock,
    minSelfStake,
  };
}

/** `SequencerRegistry.requestExit` for the sequencer `account` operates: it leaves the set at the next boundary. */
export async function exitSequencer(target: OperatorTarget, account: PrivateKeyAccount): Promise<ExitResult> {
  const { publicClient } = clients(target, null);
  const before = await readOperatorWith(publicClient, target, account.address);
  if (before.sequencerId === 0) {
    throw new OperatorError(
      "not_registered",
      `${account.address} operates no sequencer on the registry ${target.registry}: sign with the operator key ` +
        "that registered it",
    );
  }
  if (before.status !== "active") {
    throw new OperatorError(
      "not_active",
      `sequencer ${before.sequencerId} is ${before.status} already` +
        (before.status === "exiting"
          ? `: it leaves the set at the next boundary (L1 block ${before.nextEpochBlock})`
          : ""),
    );
  }
  const tx = await sendRegistryTx(target, account, `exit sequencer ${before.sequencerId}`, "requestExit", []);
  const after = await readOperatorWith(publicClient, target, account.address);
  return {
    ...tx,
    sequencerId: before.sequencerId,
    effectiveEpoch: after.epoch + 1n,
    nextEpochBlock: after.nextEpochBlock,
  };
}

/** `SequencerRegistry.approveOperator` signed by a governor; nothing is sent when `operator` is approved already. */
export async function approveOperator(
  target: OperatorTarget,
  governor: PrivateKeyAccount,
  operator: string,
): Promise<ApproveResult> {
  if (!isAddress(operator)) throw new RangeError(`${operator} is not an address (0x + 40 hex)`);
  const { publicClient } = clients(target, null);
  const [isGovernor, approved] = await reading(target, "the governor role", async () => {
    const role = (await publicClient.readContract({
      address: target.registry,
      abi: SequencerRegistry.abi,
      functionName: "GOVERNOR_ROLE",
    })) as Hex;
    return Promise.all([
      publicClient.readContract({
        address: target.registry,
        abi: SequencerRegistry.abi,
        functionName: "hasRole",
        args: [role, governor.address],
      }) as Promise<boolean>,
      publicClient.readContract({
        address: target.registry,
        abi: SequencerRegistry.abi,
        functionName: "approved",
        args: [operator],
      }) as Promise<boolean>,
    ]);
  });
  if (!isGovernor) {
    throw new OperatorError(
      "not_governor",
      `${governor.address} does not hold the registry's GOVERNOR_ROLE: sign with the governance key`,
    );
  }
  if (approved) return { tx: null, operator };
  const tx = await sendRegistryTx(target, governor, `approve ${operator}`, "approveOperator", [operator]);
  return { tx, operator };
}
