// Shared pieces of the execution tests: a real level database standing in for the node's state bucket, signed
// transactions from deterministic keys, and block environments.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import type { TransactionSerializable, Hex as ViemHex } from "viem";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";
import { fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import type { BlockEnv, ExecutionResult, GenesisAccount, KeyValueReader } from "../../src/execution/core.ts";
import { type DecodedTx, decodeTransaction } from "../../src/execution/tx.ts";

export const CHAIN_ID = 31_337_001n;
export const BASE_FEE = 1_000_000_000n;
export const GAS_LIMIT = 30_000_000n;
export const COINBASE: Hex = toHex(uintBytes(0xc0ffee, 20));
export const ETHER = 10n ** 18n;

/** A level database in a temp dir; `commit` applies a result's writes the way the chain store does. */
export class TestDb {
  private constructor(
    readonly dir: string,
    public db: Level<Uint8Array, Uint8Array>,
  ) {}

  static async open(): Promise<TestDb> {
    const dir = await mkdtemp(join(tmpdir(), "lumia-exec-"));
    const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
    await db.open();
    return new TestDb(dir, db);
  }

  /** Reads go through `this.db` at call time, so a reopened database is picked up. */
  readonly reader: KeyValueReader = { get: (key) => this.db.get(key) };

  async commit(writes: ReadonlyMap<string, Uint8Array>): Promise<void> {
    await this.db.batch([...writes].map(([key, value]) => ({ type: "put" as const, key: fromHex(key), value })));
  }

  async reopen(): Promise<void> {
    await this.db.close();
    this.db = new Level<Uint8Array, Uint8Array>(this.dir, { keyEncoding: "view", valueEncoding: "view" });
    await this.db.open();
  }

  async destroy(): Promise<void> {
    await this.db.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function testAccount(i: number): PrivateKeyAccount {
  return privateKeyToAccount(toHex(keccak256(utf8(`lumia-exec-test-${i}`))) as ViemHex);
}

export function addressOf(account: PrivateKeyAccount): Hex {
  return account.address.toLowerCase() as Hex;
}

export function fund(accounts: readonly PrivateKeyAccount[], balance: bigint): GenesisAccount[] {
  return accounts.map((a) => ({ address: addressOf(a), balance }));
}

export function env(height: number, overrides: Partial<BlockEnv> = {}): BlockEnv {
  return {
    chainId: CHAIN_ID,
    height,
    timestampMs: 1_750_000_000_000 + height * 1000,
    coinbase: COINBASE,
    gasLimit: GAS_LIMIT,
    baseFeePerGas: BASE_FEE,
    prevRandao: toHex(keccak256(uintBytes(height, 8))),
    ...overrides,
  };
}

export type TxFields = Record<string, unknown>;

export async function signRaw(account: PrivateKeyAccount, fields: TxFields, chainId = CHAIN_ID): Promise<Uint8Array> {
  const dynamic = fields.type === undefined || fields.type === "eip1559";
  const request = {
    chainId: Number(chainId),
    type: "eip1559",
    ...(dynamic ? { maxFeePerGas: 2n * BASE_FEE, maxPriorityFeePerGas: 1_000_000n } : { gasPrice: 2n * BASE_FEE }),
    gas: 21_000n,
    ...fields,
  };
  return fromHex(await account.signTransaction(request as TransactionSerializable));
}

export function decoded(raw: Uint8Array, chainId = CHAIN_ID): DecodedTx {
  const result = decodeTransaction(raw, chainId);
  if (!result.ok) throw new Error(`${result.code}: ${result.message}`);
  return result.tx;
}

export async function signed(account: PrivateKeyAccount, fields: TxFields): Promise<DecodedTx> {
  return decoded(await signRaw(account, fields));
}

export interface Parent {
  readonly stateRoot: Hex;
  readonly vmRoots: ExecutionResult["vmRoots"];
}
