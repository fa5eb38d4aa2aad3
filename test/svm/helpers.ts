// Test chain for the SVM executor: real level in a temp dir (the execution tests' TestDb), real litesvm, transactions
// built and signed with @solana/kit exactly as a wallet would.
import {
  type Address,
  appendTransactionMessageInstructions,
  type Blockhash,
  createKeyPairSignerFromPrivateKeyBytes,
  createTransactionMessage,
  getTransactionEncoder,
  type Instruction,
  type KeyPairSigner,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from "@solana/kit";
import { getCreateAccountInstruction, getTransferSolInstruction } from "@solana-program/system";
import {
  getInitializeAccount3Instruction,
  getInitializeMint2Instruction,
  getMintSize,
  getTokenSize,
  TOKEN_PROGRAM_ADDRESS,
} from "@solana-program/token";
import { type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { svmBlockhash } from "../../src/execution/svm/blockhash.ts";
import {
  SVM_BLOCKHASH_WINDOW,
  type SvmExecutionResult,
  SvmExecutor,
  type SvmGenesisAccount,
} from "../../src/execution/svm/executor.ts";

import { TestDb } from "../execution/helpers.ts";

export { TestDb };

export const SOL = 1_000_000_000n;

/** A deterministic key pair (seeded), so two runs build byte-identical transactions. */
export function signer(i: number): Promise<KeyPairSigner> {
  return createKeyPairSignerFromPrivateKeyBytes(keccak256(utf8(`lumia-svm-test-${i}`)));
}

/** The L2 block hash the test chain uses for `slot` (any 32 bytes will do). */
export function l2Hash(slot: number): Hex {
  return toHex(keccak256(uintBytes(slot, 8)));
}

export async function buildTx(
  payer: KeyPairSigner,
  instructions: readonly Instruction[],
  blockhash: string,
  version: 0 | "legacy" = 0,
): Promise<Uint8Array> {
  const message = pipe(
    createTransactionMessage({ version }),
    (m) => setTransactionMessageFeePayerSigner(payer, m),
    (m) =>
      setTransactionMessageLifetimeUsingBlockhash({ blockhash: blockhash as Blockhash, lastValidBlockHeight: 0n }, m),
    (m) => appendTransactionMessageInstructions(instructions, m),
  );
  const signed = await signTransactionMessageWithSigners(message);
  return new Uint8Array(getTransactionEncoder().encode(signed));
}

export function transferIx(from: KeyPairSigner, to: Address, lamports: bigint): Instruction {
  return getTransferSolInstruction({ source: from, destination: to, amount: lamports });
}

/** A chain of SVM blocks on one store: slot n's blockhash is svmBlockhash(l2Hash(n)); commits every result. */
export class TestChain {
  root: Hex;
  slot = 0;
  /** Blockhashes of slots 1..slot, oldest first. */
  readonly blockhashes: string[] = [];

  constructor(
    readonly store: TestDb,
    public executor: SvmExecutor,
    genesisRoot: Hex,
  ) {
    this.root = genesisRoot;
  }

  static async create(store: TestDb, alloc: readonly SvmGenesisAccount[]): Promise<TestChain> {
    const executor = new SvmExecutor({ db: store.reader });
    const genesis = await executor.genesis(alloc);
    await store.commit(genesis.writes);
    return new TestChain(store, executor, genesis.root);
  }

  /** The blockhash a client would use now (the last block's). */
  get latestBlockhash(): string {
    const last = this.blockhashes[this.blockhashes.length - 1];
    if (last === undefined) throw new Error("no block yet");
    return last;
  }

  env(slot = this.slot + 1) {
    return {
      slot,
      unixTimestamp: 1_750_000_000 + slot,
      blockhash: svmBlockhash(l2Hash(slot)),
      recentBlockhashes: this.blockhashes.slice(-SVM_BLOCKHASH_WINDOW).reverse(),
    };
  }

  async next(txs: readonly Uint8Array[] = [], mode: "build" | "validate" = "build"): Promise<SvmExecutionResult> {
    const env = this.env();
    const result = await this.executor.execute(this.root, env, txs, mode);
    await this.store.commit(result.writes);
    this.root = result.root;
    this.slot = env.slot;
    this.blockhashes.push(env.blockhash);
    return result;
  }

  async lamports(address: Address): Promise<bigint> {
    return (await this.executor.reader(this.root).getAccount(address))?.lamports ?? 0n;
  }
}

/**
 * One transaction's instructions that create an SPL mint (6 decimals, `payer` the mint authority) and a token account
 * of that mint per `[account, owner]`, rent paid by `payer`: what a wallet sends before minting.
 */
export function splSetupInstructions(opts: {
  readonly payer: KeyPairSigner;
  readonly mint: KeyPairSigner;
  readonly accounts: readonly (readonly [KeyPairSigner, Address])[];
  readonly rentMint: bigint;
  readonly rentToken: bigint;
}): Instruction[] {
  const { payer, mint } = opts;
  return [
    getCreateAccountInstruction({
      payer,
      newAccount: mint,
      lamports: opts.rentMint,
      space: getMintSize(),
      programAddress: TOKEN_PROGRAM_ADDRESS,
    }),
    getInitializeMint2Instruction({ mint: mint.address, decimals: 6, mintAuthority: payer.address }),
    ...opts.accounts.flatMap(([account, owner]) => [
      getCreateAccountInstruction({
        payer,
        newAccount: account,
        lamports: opts.rentToken,
        space: getTokenSize(),
        programAddress: TOKEN_PROGRAM_ADDRESS,
      }),
      getInitializeAccount3Instruction({ account: account.address, mint: mint.address, owner }),
    ]),
  ];
}
