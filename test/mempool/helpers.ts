// Real signed transactions (viem local accounts) and an in-memory account view for the mempool tests.
import { privateKeyToAccount } from "viem/accounts";
import { fromHex, type Hex, toHex, uintBytes } from "../../consensus/bytes.ts";
import { type AccountView, Mempool, type MempoolLimits } from "../../src/mempool/mempool.ts";

export const CHAIN_ID = 777n;
export const GWEI = 1_000_000_000n;
export const RECIPIENT: Hex = "0x00000000000000000000000000000000000000aa";

export type Account = ReturnType<typeof privateKeyToAccount>;

/** Deterministic accounts: the private key of account i is i + 1. */
export function account(i: number): Account {
  return privateKeyToAccount(toHex(uintBytes(i + 1, 32)));
}

export function addressOf(a: Account): Hex {
  return a.address.toLowerCase() as Hex;
}

export interface TxParams {
  readonly nonce: number | bigint;
  /** Max fee per gas (gas price for legacy and EIP-2930). */
  readonly maxFee?: bigint;
  /** Max priority fee per gas (ignored for legacy and EIP-2930). */
  readonly tip?: bigint;
  readonly gas?: bigint;
  readonly value?: bigint;
  readonly type?: "legacy" | "eip2930" | "eip1559";
  readonly chainId?: number;
  readonly data?: Hex;
}

export async function signTx(from: Account, p: TxParams): Promise<Uint8Array> {
  const common = {
    chainId: p.chainId ?? Number(CHAIN_ID),
    nonce: Number(p.nonce),
    to: RECIPIENT,
    value: p.value ?? 1n,
    gas: p.gas ?? 21_000n,
    ...(p.data === undefined ? {} : { data: p.data }),
  };
  const maxFee = p.maxFee ?? 10n * GWEI;
  let signed: Hex;
  switch (p.type ?? "eip1559") {
    case "legacy":
      signed = await from.signTransaction({ ...common, type: "legacy", gasPrice: maxFee });
      break;
    case "eip2930":
      signed = await from.signTransaction({ ...common, type: "eip2930", gasPrice: maxFee, accessList: [] });
      break;
    case "eip1559":
      signed = await from.signTransaction({
        ...common,
        type: "eip1559",
        maxFeePerGas: maxFee,
        maxPriorityFeePerGas: p.tip ?? GWEI,
      });
      break;
  }
  return fromHex(signed);
}

/** A plain in-memory head state: unknown accounts have nonce 0 and no balance. */
export class MemoryAccounts implements AccountView {
  readonly nonces = new Map<Hex, bigint>();
  readonly balances = new Map<Hex, bigint>();
  reads = 0;

  constructor(funded: readonly Account[] = [], balance = 10n ** 24n) {
    for (const a of funded) this.balances.set(addressOf(a), balance);
  }

  async nonce(address: Hex): Promise<bigint> {
    this.reads++;
    return this.nonces.get(address.toLowerCase() as Hex) ?? 0n;
  }

  async balance(address: Hex): Promise<bigint> {
    return this.balances.get(address.toLowerCase() as Hex) ?? 0n;
  }

  set(a: Account, state: { nonce?: bigint; balance?: bigint }): this {
    if (state.nonce !== undefined) this.nonces.set(addressOf(a), state.nonce);
    if (state.balance !== undefined) this.balances.set(addressOf(a), state.balance);
    return this;
  }

  copy(): MemoryAccounts {
    const out = new MemoryAccounts();
    for (const [k, v] of this.nonces) out.nonces.set(k, v);
    for (const [k, v] of this.balances) out.balances.set(k, v);
    return out;
  }
}

export const TEST_LIMITS: MempoolLimits = {
  maxCount: 1000,
  maxBytes: 1024 * 1024,
  maxPerSender: 16,
  maxTxBytes: 128 * 1024,
  blockGasLimit: 30_000_000n,
  minReplacementBumpPercent: 10,
  maxNonceGap: 64,
  peerRatePerSecond: 1000,
};

export interface TestPool {
  readonly pool: Mempool;
  readonly accounts: MemoryAccounts;
  /** Base fee of the next block, as the pool sees it. */
  baseFee: bigint;
  nowMs: number;
}

export function testPool(
  limits: Partial<MempoolLimits> = {},
  accounts = new MemoryAccounts(),
  baseFee = GWEI,
): TestPool {
  const state: { pool?: Mempool; accounts: MemoryAccounts; baseFee: bigint; nowMs: number } = {
    accounts,
    baseFee,
    nowMs: 1_000_000,
  };
  const pool = new Mempool(
    { ...TEST_LIMITS, ...limits },
    { chainId: CHAIN_ID, accounts, baseFee: () => state.baseFee, nowMs: () => state.nowMs },
  );
  state.pool = pool;
  return state as TestPool;
}

export const LOCAL = { kind: "local" } as const;
