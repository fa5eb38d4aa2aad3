// The user's side of the L1 Portal (docs/hard-finality.md "Deposits", "Withdrawals"): deposit on L1; start a
// withdrawal on the L2; prove it on L1 against a certified output with the node's own eth_getProof; finalize it after
// the Portal's delay. Every L1 or L2 transaction is simulated first, so a refusal comes back with the contract's error
// name and nothing is sent.
import {
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  decodeEventLog,
  encodeAbiParameters,
  type Hex,
  http,
  keccak256,
  type PrivateKeyAccount,
  type PublicClient,
} from "viem";
import { BridgedEth, L2MessagePasser, LumiaToken, OutputOracle, Portal } from "../../staking-contracts/artifacts.ts";
import { l1Chain } from "./deploy.ts";
import { BRIDGED_ETH_ADDRESS, L2_MESSAGE_PASSER_ADDRESS } from "./deploy-finality.ts";
import { revertOf } from "./sender.ts";

export const BRIDGE_ASSETS = { eth: 0, lumia: 1 } as const;
export type BridgeAsset = keyof typeof BRIDGE_ASSETS;
const REQUEST_TIMEOUT_MS = 30_000;
const RECEIPT_TIMEOUT_MS = 120_000;

export type BridgeErrorCode = "refused" | "not_found" | "no_output" | "too_early" | "mismatch" | "transport";

export class BridgeError extends Error {
  override readonly name = "BridgeError";
  constructor(
    readonly code: BridgeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A withdrawal as the L2MessagePasser hashed it and the Portal pays it. */
export interface Withdrawal {
  readonly nonce: bigint;
  readonly sender: Address;
  readonly l1Recipient: Address;
  readonly asset: number;
  readonly amount: bigint;
}

export interface StartedWithdrawal {
  readonly withdrawal: Withdrawal;
  /** keccak256(abi.encode(nonce, sender, l1Recipient, asset, amount)). */
  readonly hash: Hex;
  readonly l2TxHash: Hex;
  /** The L2 height of the transaction: an output at or above it can prove the withdrawal. */
  readonly height: bigint;
}

export interface Endpoint {
  readonly client: PublicClient;
  readonly chain: Chain;
  readonly url: string;
}

/** A public client and chain for a JSON-RPC endpoint (the chain id is read from it). */
export async function endpoint(url: string): Promise<Endpoint> {
  const client = createPublicClient({ transport: http(url, { timeout: REQUEST_TIMEOUT_MS }), cacheTime: 0 });
  try {
    return { client, chain: l1Chain(url, await client.getChainId()), url };
  } catch (cause) {
    throw new BridgeError("transport", `${url} does not answer: ${firstLine(cause)}`, { cause });
  }
}

export function withdrawalHash(w: Withdrawal): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: "uint256" }, { type: "address" }, { type: "address" }, { type: "uint8" }, { type: "uint256" }],
      [w.nonce, w.sender, w.l1Recipient, w.asset, w.amount],
    ),
  );
}

/** The message passer's storage slot of a withdrawal hash: sentMessages (slot 0)[hash]. */
export function sentMessageSlot(hash: Hex): Hex {
  return keccak256(encodeAbiParameters([{ type: "bytes32" }, { type: "uint256" }], [hash, 0n]));
}

/** Simulates, sends and waits for `request`; a revert anywhere becomes BridgeError "refused" with its name. */
async function send(
  at: Endpoint,
  account: PrivateKeyAccount,
  request: {
    address: Address;
    abi: readonly unknown[];
    functionName: string;
    args: readonly unknown[];
    value?: bigint;
  },
  what: string,
) {
  const wallet = createWalletClient({
    account,
    chain: at.chain,
    transport: http(at.url, { timeout: REQUEST_TIMEOUT_MS }),
  });
  let hash: Hex;
  try {
    const simulated = await at.client.simulateContract({ ...request, account, chain: at.chain } as never);
    hash = await wallet.writeContract(simulated.request as never);
  } catch (cause) {
    const revert = revertOf(cause);
    if (revert !== null) {
      throw new BridgeError("refused", `${what} refused: ${revert.name}(${revert.args.map(String).join(", ")})`, {
        cause,
      });
    }
    throw new BridgeError("transport", `${what} failed: ${firstLine(cause)}`, { cause });
  }
  const receipt = await at.client.waitForTransactionReceipt({
    hash,
    pollingInterval: 250,
    timeout: RECEIPT_TIMEOUT_MS,
  });
  if (receipt.status !== "success") throw new BridgeError("refused", `${what}: transaction ${hash} reverted`);
  return receipt;
}

/** Deposits `amount` of `asset` to `to` on the L2 (approving LUMIA first when needed). */
export async function deposit(
  l1: Endpoint,
  account: PrivateKeyAccount,
  portal: Address,
  o: { readonly asset: BridgeAsset; readonly amount: bigint; readonly to: Address },
): Promise<{ nonce: bigint; txHash: Hex; l1Block: bigint }> {
  if (o.asset === "lumia") {
    const token = (await l1.client.readContract({
      address: portal,
      abi: Portal.abi,
      functionName: "lumia",
    })) as Address;
    const allowance = (await l1.client.readContract({
      address: token,
      abi: LumiaToken.abi,
      functionName: "allowance",
      args: [account.address, portal],
    })) as bigint;
    if (allowance < o.amount) {
      await send(
        l1,
        account,
        { address: token, abi: LumiaToken.abi, functionName: "approve", args: [portal, o.amount] },
        "approve",
      );
    }
  }
  const receipt = await send(
    l1,
    account,
    o.asset === "lumia"
      ? { address: portal, abi: Portal.abi, functionName: "depositLumia", args: [o.to, o.amount] }
      : { address: portal, abi: Portal.abi, functionName: "depositETH", args: [o.to], value: o.amount },
    "deposit",
  );
  for (const log of receipt.logs) {
    try {
      const e = decodeEventLog({ abi: Portal.abi, data: log.data, topics: log.topics });
      if (e.eventName === "DepositInitiated") {
        return {
          nonce: (e.args as { nonce: bigint }).nonce,
          txHash: receipt.transactionHash,
          l1Block: receipt.blockNumber,
        };
      }
    } catch {}
  }
  throw new BridgeError("mismatch", `deposit ${receipt.transactionHash} emitted no DepositInitiated`);
}

/** Starts a withdrawal on the L2: LUMIA through the message passer, ETH through BridgedEth (burning tokens). */
export async function startWithdrawal(
  l2: Endpoint,
  account: PrivateKeyAccount,
  o: { readonly asset: BridgeAsset; readonly amount: bigint; readonly l1Recipient: Address },
): Promise<StartedWithdrawal> {
  const receipt = await send(
    l2,
    account,
    o.asset === "lumia"
      ? {
          address: L2_MESSAGE_PASSER_ADDRESS,
          abi: L2MessagePasser.abi,
          functionName: "initiateWithdrawal",
          args: [o.l1Recipient, BRIDGE_ASSETS.lumia],
          value: o.amount,
        }
      : {
          address: BRIDGED_ETH_ADDRESS,
          abi: BridgedEth.abi,
          functionName: "withdraw",
          args: [o.l1Recipient, o.amount],
        },
    "withdrawal",
  );
  return withdrawalOfReceipt(receipt.transactionHash, receipt.blockNumber, receipt.logs);
}

/** The withdrawal an L2 transaction started (its MessagePassed event). */
export async function findWithdrawal(l2: Endpoint, l2TxHash: Hex): Promise<StartedWithdrawal> {
  let receipt: Awaited<ReturnType<PublicClient["getTransactionReceipt"]>>;
  try {
    receipt = await l2.client.getTransactionReceipt({ hash: l2TxHash });
  } catch (cause) {
    throw new BridgeError("not_found", `no L2 transaction ${l2TxHash}: ${firstLine(cause)}`, { cause });
  }
  return withdrawalOfReceipt(l2TxHash, receipt.blockNumber, receipt.logs);
}

function withdrawalOfReceipt(
  l2TxHash: Hex,
  height: bigint,
  logs: readonly { address: Address; data: Hex; topics: readonly Hex[] }[],
): StartedWithdrawal {
  for (const log of logs) {
    if (log.address.toLowerCase() !== L2_MESSAGE_PASSER_ADDRESS) continue;
    try {
      const e = decodeEventLog({ abi: L2MessagePasser.abi, data: log.data, topics: log.topics as [Hex, ...Hex[]] });
      if (e.eventName !== "MessagePassed") continue;
      const a = e.args as {
        nonce: bigint;
        sender: Address;
        l1Recipient: Address;
        asset: number;
        amount: bigint;
        withdrawalHash: Hex;
      };
      const withdrawal = {
        nonce: a.nonce,
        sender: a.sender,
        l1Recipient: a.l1Recipient,
        asset: a.asset,
        amount: a.amount,
      };
      if (withdrawalHash(withdrawal) !== a.withdrawalHash) {
        throw new BridgeError("mismatch", `MessagePassed of ${l2TxHash} does not hash to its withdrawal hash`);
      }
      return { withdrawal, hash: a.withdrawalHash, l2TxHash, height };
    } catch (error) {
      if (error instanceof BridgeError) throw error;
    }
  }
  throw new BridgeError("not_found", `L2 transaction ${l2TxHash} started no withdrawal (no MessagePassed event)`);
}

export interface WithdrawalStatus {
  readonly hash: Hex;
  /** The first output at or above the withdrawal's height, if any. */
  readonly output: { readonly index: bigint; readonly height: bigint } | null;
  readonly provenAt: bigint | null;
  /** Unix seconds from which finalizeWithdrawal is accepted (null until proven). */
  readonly finalizableAt: bigint | null;
  readonly finalized: boolean;
}

export async function withdrawalStatus(
  l1: Endpoint,
  portal: Address,
  started: StartedWithdrawal,
): Promise<WithdrawalStatus> {
  const read = <T>(address: Address, abi: readonly unknown[], functionName: string, args: readonly unknown[] = []) =>
    l1.client.readContract({
      address,
      abi: abi as never,
      functionName: functionName as never,
      args: args as never,
    }) as Promise<T>;
  const oracle = await read<Address>(portal, Portal.abi, "oracle");
  let output: WithdrawalStatus["output"] = null;
  try {
    const index = await read<bigint>(oracle, OutputOracle.abi, "outputIndexForHeight", [started.height]);
    const o = await read<{ height: bigint }>(oracle, OutputOracle.abi, "outputAt", [index]);
    output = { index, height: BigInt(o.height) };
  } catch (error) {
    if (revertOf(error)?.name !== "NoOutputAtOrAbove") throw error;
  }
  const [provenAt] = await read<readonly [bigint, bigint]>(portal, Portal.abi, "provenWithdrawals", [started.hash]);
  const delay = await read<bigint>(portal, Portal.abi, "finalizationDelaySeconds");
  const finalized = await read<boolean>(portal, Portal.abi, "finalizedWithdrawals", [started.hash]);
  const proven = BigInt(provenAt) === 0n ? null : BigInt(provenAt);
  return {
    hash: started.hash,
    output,
    provenAt: proven,
    finalizableAt: proven === null ? null : proven + BigInt(delay),
    finalized,
  };
}

/**
 * Proves `started` on L1 against the newest output (one exists at or above its height), with that output's header
 * from the L2 node (lumia_getCertificate) and the message passer's account and storage proofs at that height
 * (eth_getProof).
 * BridgeError "no_output" while no output covers the height yet.
 */
export async function proveWithdrawal(
  l1: Endpoint,
  l2: Endpoint,
  account: PrivateKeyAccount,
  portal: Address,
  started: StartedWithdrawal,
): Promise<{ txHash: Hex; outputIndex: bigint; outputHeight: bigint }> {
  const status = await withdrawalStatus(l1, portal, started);
  if (status.output === null) {
    throw new BridgeError(
      "no_output",
      `no output covers L2 height ${started.height} yet: wait for the next output (docs/hard-finality.md)`,
    );
  }
  const oracle = (await l1.client.readContract({
    address: portal,
    abi: Portal.abi,
    functionName: "oracle",
  })) as Address;
  // The newest output rather than the first at or above the withdrawal: the message passer's sentMessages only grow,
  // so it proves the withdrawal as well, and its state is what a node that prunes old state still has (the first
  // output's may be older than storage.stateHistory; docs/storage.md).
  const count = (await l1.client.readContract({
    address: oracle,
    abi: OutputOracle.abi,
    functionName: "outputCount",
  })) as bigint;
  const index = count > status.output.index ? count - 1n : status.output.index;
  const output = (await l1.client.readContract({
    address: oracle,
    abi: OutputOracle.abi,
    functionName: "outputAt",
    args: [index],
  })) as { blockHash: Hex; height: bigint };
  const height = BigInt(output.height);
  const certified = (await l2.client.request({
    method: "lumia_getCertificate" as never,
    params: [`0x${height.toString(16)}`] as never,
  })) as { header: Hex; blockHash: Hex } | null;
  if (certified === null) throw new BridgeError("not_found", `the L2 node has no block ${height}`);
  if (keccak256(certified.header) !== output.blockHash) {
    throw new BridgeError("mismatch", `the L2 node's block ${height} is not the one the L1 output certifies`);
  }
  const proof = await l2.client.getProof({
    address: L2_MESSAGE_PASSER_ADDRESS,
    storageKeys: [sentMessageSlot(started.hash)],
    blockNumber: height,
  });
  const storage = proof.storageProof[0];
  if (storage === undefined || storage.value !== 1n) {
    throw new BridgeError("mismatch", `the L2 state at ${height} does not hold withdrawal ${started.hash}`);
  }
  const receipt = await send(
    l1,
    account,
    {
      address: portal,
      abi: Portal.abi,
      functionName: "proveWithdrawal",
      args: [started.withdrawal, index, certified.header, proof.accountProof, storage.proof],
    },
    "proveWithdrawal",
  );
  return { txHash: receipt.transactionHash, outputIndex: index, outputHeight: height };
}

/** Pays a proven withdrawal once the Portal's delay has passed (BridgeError "too_early" before). */
export async function finalizeWithdrawal(
  l1: Endpoint,
  account: PrivateKeyAccount,
  portal: Address,
  started: StartedWithdrawal,
): Promise<{ txHash: Hex }> {
  const status = await withdrawalStatus(l1, portal, started);
  if (status.finalizableAt === null) throw new BridgeError("refused", `withdrawal ${started.hash} is not proven yet`);
  const block = await l1.client.getBlock({ blockTag: "latest" });
  if (block.timestamp < status.finalizableAt) {
    throw new BridgeError(
      "too_early",
      `withdrawal ${started.hash} can be finalized from ${new Date(Number(status.finalizableAt) * 1000).toISOString()}`,
    );
  }
  const receipt = await send(
    l1,
    account,
    { address: portal, abi: Portal.abi, functionName: "finalizeWithdrawal", args: [started.withdrawal] },
    "finalizeWithdrawal",
  );
  return { txHash: receipt.transactionHash };
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
