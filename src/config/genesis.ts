// The genesis file: chain id, start time and the initial validators. Every node must load byte-for-byte the same
// content, which `hash` (keccak256 of a canonical binary encoding, docs/protocol.md "Genesis") pins down.
//
// Checked beyond shape: every proof of possession verifies against its key (same-message BLS aggregation, which
// certificates rely on, is open to rogue-key attacks without it), no key, peer id or name appears twice, powers are
// > 0 and their total fits CometBFT's bound, 1..MAX_GENESIS_VALIDATORS validators.
import { resolve } from "node:path";
import { PublicKey } from "@chainsafe/blst";
import { peerIdFromString } from "@libp2p/peer-id";
import { getBase58Encoder } from "@solana/kit";
import { z } from "zod";
import { concatBytes, fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import {
  bytes,
  type Codec,
  encode,
  hex32,
  hexBytes,
  list,
  mapped,
  nullable,
  struct,
  u64,
  u64Number,
  u256,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import {
  createValidatorSet,
  MAX_TOTAL_VOTING_POWER,
  ValidatorSetError,
  validatorAddress,
} from "../../consensus/validator-set.ts";
import { verifyProofOfPossession } from "../crypto/blst.ts";
import { type PublicIdentity, toChecksumAddress } from "../keys/keys.ts";
import { addIssue, type FileErrorCode, FileIssuesError, type Issue, issuesFromZod, readJsonFile } from "./issues.ts";

/** The genesis file is missing, unreadable or invalid. One line per issue. */
export class GenesisError extends FileIssuesError {
  override readonly name = "GenesisError";
  constructor(code: FileErrorCode, file: string, issues: readonly Issue[], options?: { cause?: unknown }) {
    super(code, file, issues, options);
  }
}

/**
 * Verifying a proof of possession costs about 40 ms (pure-JS hash to G2 with the PoP tag), so the bound also caps
 * startup at about 20 s.
 */
export const MAX_GENESIS_VALIDATORS = 512;
export const MAX_VALIDATOR_NAME_BYTES = 64;
/** Base58 peer ids of Ed25519 and secp256k1 keys are 52-53 characters, RSA ones 46; room to spare. */
export const MAX_PEER_ID_CHARS = 128;
/** Multihash bytes of a peer id (identity multihash of a protobuf key: 38-41 bytes; sha2-256 for RSA: 34). */
export const MAX_PEER_ID_BYTES = 64;
export const GENESIS_MAX_BYTES = 4 * 1024 * 1024;
/** Chain ids are EVM chain ids: JavaScript numbers in wallets, so at most 2^53 - 1. */
export const MAX_CHAIN_ID = BigInt(Number.MAX_SAFE_INTEGER);
/** 5: the SVM allocation (`svm.alloc`); the genesis state holds the SVM root from then on. */
export const GENESIS_VERSION = 5;
/** Defaults of the execution section: a 30M gas block limit and a 1 gwei initial base fee (LUMIA has 18 decimals). */
export const DEFAULT_GAS_LIMIT = 30_000_000n;
export const DEFAULT_BASE_FEE_PER_GAS = 1_000_000_000n;
export const MAX_ALLOC_ACCOUNTS = 100_000;
export const MAX_ALLOC_STORAGE_SLOTS = 4096;
export const MAX_CODE_BYTES = 24_576;
export const MAX_SVM_ALLOC_ACCOUNTS = 10_000;
/** keccak256("lumia.dcn.v1.genesis"): prefix of the hashed preimage, so no other signed or hashed format collides. */
export const GENESIS_DOMAIN: Uint8Array = keccak256(utf8("lumia.dcn.v1.genesis"));

export interface GenesisValidator {
  readonly name: string;
  readonly blsPublicKey: Hex;
  readonly proofOfPossession: Hex;
  readonly votingPower: bigint;
  readonly peerId: string;
  /** EIP-55 checksummed. */
  readonly operator: Hex;
  /** Consensus address, validatorAddress(blsPublicKey). */
  readonly address: Hex;
}

/** A pre-funded (or pre-deployed) account of the genesis state. */
export interface GenesisAccount {
  /** Lowercase. */
  readonly address: Hex;
  readonly balance: bigint;
  readonly nonce: bigint;
  readonly code: Hex | null;
  /** slot -> value, both 32-byte hex, lowercase. */
  readonly storage: ReadonlyMap<Hex, Hex>;
}

export interface GenesisExecution {
  readonly gasLimit: bigint;
  /** Base fee of height 1 (EIP-1559 moves it from there). */
  readonly baseFeePerGas: bigint;
  /** Sorted by address. */
  readonly alloc: readonly GenesisAccount[];
}

/** A pre-funded Solana account: a system-owned account without data. */
export interface GenesisSvmAccount {
  /** Base58 pubkey (32 bytes). */
  readonly address: string;
  readonly lamports: bigint;
}

export interface GenesisSvm {
  /** Sorted by the pubkey bytes. */
  readonly alloc: readonly GenesisSvmAccount[];
}

/**
 * The L1 anchor of a subnet whose membership follows the staking registry: the registry's address and the L1 block the
 * chain starts from (the L1 origin of the genesis). Null for a subnet whose set is fixed by the genesis.
 */
export interface GenesisL1 {
  readonly chainId: bigint;
  /** SequencerRegistry address (checksummed). */
  readonly registry: Hex;
  readonly origin: { readonly number: bigint; readonly hash: Hex };
  /**
   * The hard-finality contracts (checksummed): where batches and outputs go and whose deposits the chain must
   * include. Null for a subnet that posts nothing to L1 (soft finality only).
   */
  readonly finality: GenesisFinality | null;
}

export interface GenesisFinality {
  readonly batchInbox: Hex;
  readonly outputOracle: Hex;
  readonly portal: Hex;
}

export interface Genesis {
  readonly chainId: bigint;
  readonly genesisTimeMs: number;
  readonly execution: GenesisExecution;
  /** The Solana VM's initial accounts (empty when the file has no `svm`). */
  readonly svm: GenesisSvm;
  readonly l1: GenesisL1 | null;
  /** In file order. */
  readonly validators: readonly GenesisValidator[];
  /** The height-1 validator set (CometBFT order and priorities). */
  readonly validatorSet: ValidatorSet;
  readonly hash: Hex;
}

/** The file as JSON (what `buildGenesis` returns and `parseGenesis` reads). */
export interface GenesisAccountJson {
  readonly address: Hex;
  readonly balance: string;
  readonly nonce?: string;
  readonly code?: Hex;
  readonly storage?: Readonly<Record<string, Hex>>;
}

export interface GenesisJson {
  readonly chainId: string;
  readonly genesisTimeMs: number;
  readonly l1?: {
    readonly chainId: string;
    readonly registry: Hex;
    readonly origin: { readonly number: string; readonly hash: Hex };
    readonly finality?: { readonly batchInbox: Hex; readonly outputOracle: Hex; readonly portal: Hex };
  };
  readonly execution?: {
    readonly gasLimit?: string;
    readonly baseFeePerGas?: string;
    readonly alloc?: readonly GenesisAccountJson[];
  };
  readonly svm?: { readonly alloc?: readonly { readonly address: string; readonly lamports: string }[] };
  readonly validators: readonly {
    readonly name: string;
    readonly blsPublicKey: Hex;
    readonly proofOfPossession: Hex;
    readonly votingPower: string;
    readonly peerId: string;
    readonly operator: Hex;
  }[];
}

// ---------------------------------------------------------------------------------------------------------------------
// Schema

const DECIMAL_RE = /^(0|[1-9][0-9]*)$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function hexField(bytes: number, what: string, example: string) {
  return z.string().superRefine((value, ctx) => {
    if (!/^0x[0-9a-fA-F]*$/.test(value)) {
      addIssue(
        ctx,
        `${JSON.stringify(value.slice(0, 24))} is not 0x-prefixed hex`,
        `write the ${what} as 0x followed by ${2 * bytes} hex digits, e.g. ${example}`,
      );
    } else if (value.length !== 2 + 2 * bytes) {
      addIssue(
        ctx,
        `${(value.length - 2) / 2} bytes, a ${what} has ${bytes}`,
        `copy the ${what} again from the validator's identity.json (written by \`dcn init\`)`,
      );
    }
  });
}

const validatorSchema = z.strictObject({
  name: z
    .string()
    .max(MAX_VALIDATOR_NAME_BYTES)
    .superRefine((value, ctx) => {
      if (!NAME_RE.test(value)) {
        addIssue(
          ctx,
          `${JSON.stringify(value)} is not a valid name`,
          "use letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. validator-1)",
        );
      }
    })
    .meta({ examples: ["validator-1"] }),
  blsPublicKey: hexField(48, "BLS public key", "0xa1b2…").meta({ examples: ["0x<96 hex digits>"] }),
  proofOfPossession: hexField(96, "proof of possession", "0x8f3a…").meta({ examples: ["0x<192 hex digits>"] }),
  votingPower: z
    .string()
    .superRefine((value, ctx) => {
      if (!DECIMAL_RE.test(value)) {
        addIssue(
          ctx,
          `${JSON.stringify(value)} is not a decimal integer string`,
          'write the power as a decimal string, e.g. "100"',
        );
      } else if (BigInt(value) === 0n) {
        addIssue(ctx, "voting power 0", "give the validator power > 0, or leave it out of the genesis");
      } else if (BigInt(value) > MAX_TOTAL_VOTING_POWER) {
        addIssue(
          ctx,
          `${value} exceeds the maximum total voting power ${MAX_TOTAL_VOTING_POWER}`,
          "scale all powers down",
        );
      }
    })
    .meta({ examples: ["100"] }),
  peerId: z
    .string()
    .max(MAX_PEER_ID_CHARS)
    .superRefine((value, ctx) => {
      try {
        peerIdFromString(value);
      } catch (error) {
        addIssue(
          ctx,
          `${JSON.stringify(value)} is not a libp2p peer id (${(error as Error).message})`,
          "copy the peerId from the validator's identity.json (it starts with 12D3KooW)",
        );
      }
    })
    .meta({ examples: ["12D3KooW..."] }),
  operator: z
    .string()
    .superRefine((value, ctx) => {
      if (!/^0x[0-9a-fA-F]{40}$/.test(value)) {
        addIssue(
          ctx,
          `${JSON.stringify(value)} is not a 20-byte 0x address`,
          "write the operator's Ethereum address, 0x followed by 40 hex digits",
        );
      } else if (
        value !== value.toLowerCase() &&
        value !== `0x${value.slice(2).toUpperCase()}` &&
        toChecksumAddress(value as Hex) !== value
      ) {
        addIssue(
          ctx,
          `${value} fails its EIP-55 checksum (a mistyped character?)`,
          `check the address; its checksummed form would be ${toChecksumAddress(value as Hex)}`,
        );
      }
    })
    .meta({ examples: ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"] }),
});

export const genesisSchema = z
  .strictObject({
    chainId: z
      .string()
      .superRefine((value, ctx) => {
        if (!DECIMAL_RE.test(value) || BigInt(value) === 0n || BigInt(value) > MAX_CHAIN_ID) {
          addIssue(
            ctx,
            `${JSON.stringify(value)} is not a chain id`,
            `write a decimal string in [1, ${MAX_CHAIN_ID}], e.g. "994873017"`,
          );
        }
      })
      .meta({ examples: ["994873017"] }),
    genesisTimeMs: z
      .number()
      .int()
      .min(0)
      .max(Number.MAX_SAFE_INTEGER)
      .meta({ examples: [1_767_225_600_000] }),
    execution: z
      .strictObject({
        gasLimit: decimalString("gas limit", 21_000n, 2n ** 63n - 1n).optional(),
        baseFeePerGas: decimalString("base fee per gas (wei)", 0n, 2n ** 63n - 1n).optional(),
        alloc: z
          .array(
            z.strictObject({
              address: z.string().regex(/^0x[0-9a-fA-F]{40}$/, "a 20-byte 0x address"),
              balance: decimalString("balance (wei)", 0n, 2n ** 256n - 1n),
              nonce: decimalString("nonce", 0n, 2n ** 63n - 1n).optional(),
              code: z
                .string()
                .regex(/^0x([0-9a-fA-F]{2})*$/, "0x-prefixed hex bytes")
                .refine((c) => (c.length - 2) / 2 <= MAX_CODE_BYTES, `at most ${MAX_CODE_BYTES} bytes of code`)
                .optional(),
              storage: z
                .record(
                  z.string().regex(/^0x[0-9a-fA-F]{64}$/, "a 32-byte slot"),
                  z.string().regex(/^0x[0-9a-fA-F]{64}$/),
                )
                .optional(),
            }),
          )
          .max(MAX_ALLOC_ACCOUNTS)
          .optional(),
      })
      .optional(),
    svm: z
      .strictObject({
        alloc: z
          .array(
            z.strictObject({
              address: z.string().superRefine((value, ctx) => {
                if (base58Pubkey(value) === null) {
                  addIssue(
                    ctx,
                    `${JSON.stringify(value.slice(0, 60))} is not a base58 Solana pubkey`,
                    "write the account's address as Solana wallets show it (base58 of 32 bytes)",
                  );
                }
              }),
              lamports: decimalString("lamports", 1n, 2n ** 64n - 1n),
            }),
          )
          .max(MAX_SVM_ALLOC_ACCOUNTS)
          .optional(),
      })
      .optional()
      .meta({ description: "Solana VM accounts funded at genesis (base58 pubkey -> lamports)" }),
    validators: z.array(validatorSchema).min(1).max(MAX_GENESIS_VALIDATORS),
    l1: z
      .strictObject({
        chainId: decimalString("L1 chain id", 1n, 2n ** 63n - 1n).meta({ description: "Chain id of the L1" }),
        registry: z
          .string()
          .regex(/^0x[0-9a-fA-F]{40}$/, "a 20-byte 0x address")
          .meta({ description: "SequencerRegistry address on the L1" }),
        origin: z
          .strictObject({
            number: decimalString("L1 block number", 0n, 2n ** 63n - 1n),
            hash: z.string().regex(/^0x[0-9a-fA-F]{64}$/, "a 32-byte 0x block hash"),
          })
          .meta({ description: "The L1 block the chain starts from: the L1 origin of the genesis" }),
        finality: z
          .strictObject({
            batchInbox: z.string().regex(/^0x[0-9a-fA-F]{40}$/, "a 20-byte 0x address"),
            outputOracle: z.string().regex(/^0x[0-9a-fA-F]{40}$/, "a 20-byte 0x address"),
            portal: z.string().regex(/^0x[0-9a-fA-F]{40}$/, "a 20-byte 0x address"),
          })
          .optional()
          .meta({
            description:
              "Hard-finality contracts on the L1 (BatchInbox, OutputOracle, Portal); omit for soft finality only",
          }),
      })
      .optional()
      .meta({ description: "Follow the L1 staking registry for membership (omit for a fixed set)" }),
  })
  .meta({ title: "Lumia DCN genesis" });

/** The 32 bytes of a base58 pubkey, or null. */
function base58Pubkey(value: string): Uint8Array | null {
  if (value.length < 32 || value.length > 44) return null;
  try {
    const out = new Uint8Array(getBase58Encoder().encode(value));
    return out.length === 32 ? out : null;
  } catch {
    return null;
  }
}

function decimalString(what: string, min: bigint, max: bigint) {
  return z.string().superRefine((value, ctx) => {
    if (!DECIMAL_RE.test(value)) {
      addIssue(
        ctx,
        `${JSON.stringify(value)} is not a decimal integer string`,
        `write the ${what} as a decimal string`,
      );
    } else if (BigInt(value) < min || BigInt(value) > max) {
      addIssue(ctx, `${value} is out of range`, `the ${what} must be in [${min}, ${max}]`);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Canonical encoding

const utf8Name: Codec<string> = mapped(
  varBytes(MAX_VALIDATOR_NAME_BYTES),
  `u32 length (<= ${MAX_VALIDATOR_NAME_BYTES}) || utf8`,
  (wire, fail) => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(wire);
    } catch {
      return fail("name is not UTF-8");
    }
  },
  (value) => utf8(value),
);

/** Layout documented in docs/protocol.md "Genesis". Validators appear in validator-set order. */
export const genesisEncoding = versioned(
  GENESIS_VERSION,
  struct({
    chainId: u64,
    genesisTimeMs: u64Number,
    validators: list(
      struct({
        blsPublicKey: hexBytes(48),
        proofOfPossession: hexBytes(96),
        votingPower: u64,
        operator: hexBytes(20),
        peerId: varBytes(MAX_PEER_ID_BYTES),
        name: utf8Name,
      }),
      MAX_GENESIS_VALIDATORS,
    ),
    gasLimit: u64,
    baseFeePerGas: u64,
    l1: nullable(
      struct({
        chainId: u64,
        registry: hexBytes(20),
        originNumber: u64,
        originHash: hex32,
        finality: nullable(struct({ batchInbox: hexBytes(20), outputOracle: hexBytes(20), portal: hexBytes(20) })),
      }),
    ),
    alloc: list(
      struct({
        address: hexBytes(20),
        balance: u256,
        nonce: u64,
        code: varBytes(MAX_CODE_BYTES),
        storage: list(struct({ slot: hexBytes(32), value: hexBytes(32) }), MAX_ALLOC_STORAGE_SLOTS),
      }),
      MAX_ALLOC_ACCOUNTS,
    ),
    svmAlloc: list(struct({ address: bytes(32), lamports: u64 }), MAX_SVM_ALLOC_ACCOUNTS),
  }),
);

/** The canonical bytes of a genesis (without the domain prefix). */
export function encodeGenesis(
  genesis: Pick<Genesis, "chainId" | "genesisTimeMs" | "validators" | "validatorSet" | "execution" | "svm" | "l1">,
): Uint8Array {
  const byAddress = new Map(genesis.validators.map((v) => [v.address.toLowerCase(), v]));
  const ordered = genesis.validatorSet.validators.map((member) => {
    const v = byAddress.get(member.address.toLowerCase());
    if (v === undefined) throw new Error(`validator set member ${member.address} is not a genesis validator`);
    return {
      blsPublicKey: v.blsPublicKey,
      proofOfPossession: v.proofOfPossession,
      votingPower: v.votingPower,
      operator: v.operator,
      peerId: peerIdFromString(v.peerId).toMultihash().bytes,
      name: v.name,
    };
  });
  return encode(
    genesisEncoding,
    {
      chainId: genesis.chainId,
      genesisTimeMs: genesis.genesisTimeMs,
      validators: ordered,
      gasLimit: genesis.execution.gasLimit,
      baseFeePerGas: genesis.execution.baseFeePerGas,
      l1:
        genesis.l1 === null
          ? null
          : {
              chainId: genesis.l1.chainId,
              registry: genesis.l1.registry,
              originNumber: genesis.l1.origin.number,
              originHash: genesis.l1.origin.hash,
              finality: genesis.l1.finality,
            },
      alloc: genesis.execution.alloc.map((a) => ({
        address: a.address,
        balance: a.balance,
        nonce: a.nonce,
        code: a.code === null ? new Uint8Array(0) : fromHex(a.code),
        storage: [...a.storage]
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
          .map(([slot, value]) => ({ slot, value })),
      })),
      svmAlloc: genesis.svm.alloc.map((a) => ({
        address: base58Pubkey(a.address) as Uint8Array,
        lamports: a.lamports,
      })),
    },
    "genesis",
  );
}

/** keccak256(GENESIS_DOMAIN || encodeGenesis(genesis)). */
export function genesisHash(
  genesis: Pick<Genesis, "chainId" | "genesisTimeMs" | "validators" | "validatorSet" | "execution" | "svm" | "l1">,
): Hex {
  return toHex(keccak256(concatBytes(GENESIS_DOMAIN, encodeGenesis(genesis))));
}

// ---------------------------------------------------------------------------------------------------------------------
// Parsing

function firstSeen<T>(
  items: readonly T[],
  key: (item: T) => string,
  report: (first: number, again: number) => void,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    const first = seen.get(k);
    if (first === undefined) seen.set(k, i);
    else report(first, i);
  });
}

/** Validates a genesis document. Throws GenesisError listing every issue found. */
export function parseGenesis(json: unknown, source = "genesis"): Genesis {
  const result = genesisSchema.safeParse(json);
  if (!result.success) throw new GenesisError("invalid", source, issuesFromZod(genesisSchema, json, result.error));
  const g = result.data;
  const issues: Issue[] = [];
  const at = (i: number, field: string) => `validators[${i}].${field}`;

  const validators: GenesisValidator[] = g.validators.map((v) => {
    const publicKey = fromHex(v.blsPublicKey);
    return {
      name: v.name,
      blsPublicKey: v.blsPublicKey.toLowerCase() as Hex,
      proofOfPossession: v.proofOfPossession.toLowerCase() as Hex,
      votingPower: BigInt(v.votingPower),
      // Canonical base58 form, whichever encoding the file used.
      peerId: peerIdFromString(v.peerId).toString(),
      operator: toChecksumAddress(v.operator as Hex),
      address: validatorAddress(publicKey),
    };
  });

  firstSeen(
    validators,
    (v) => v.blsPublicKey,
    (first, i) =>
      issues.push({
        path: at(i, "blsPublicKey"),
        message: `the same BLS key as validators[${first}]`,
        fix: "list each validator once; every validator needs its own consensus key",
      }),
  );
  firstSeen(
    validators,
    (v) => v.peerId,
    (first, i) =>
      issues.push({
        path: at(i, "peerId"),
        message: `the same peer id as validators[${first}]`,
        fix: "list each validator once; every node needs its own peer key",
      }),
  );
  firstSeen(
    validators,
    (v) => v.name,
    (first, i) =>
      issues.push({
        path: at(i, "name"),
        message: `the same name as validators[${first}]`,
        fix: "give every validator a distinct name",
      }),
  );

  validators.forEach((v, i) => {
    const publicKey = fromHex(v.blsPublicKey);
    if (!isValidPublicKey(publicKey)) {
      issues.push({
        path: at(i, "blsPublicKey"),
        message: "not a valid BLS12-381 public key (not a compressed G1 point in the subgroup, or the identity)",
        fix: "copy blsPublicKey again from the validator's identity.json",
      });
    } else if (!verifyProofOfPossession(publicKey, fromHex(v.proofOfPossession))) {
      issues.push({
        path: at(i, "proofOfPossession"),
        message: `the proof of possession does not verify for blsPublicKey ${v.blsPublicKey.slice(0, 18)}…`,
        fix:
          "take blsPublicKey and proofOfPossession together from the validator's identity.json (`dcn init` writes " +
          "both). A key without a valid proof is refused: BLS signature aggregation over such keys is open to " +
          "rogue-key attacks, where one validator forges the signatures of others",
      });
    }
  });

  let total = 0n;
  for (const v of validators) total += v.votingPower;
  if (total > MAX_TOTAL_VOTING_POWER) {
    issues.push({
      path: "validators",
      message: `total voting power ${total} exceeds the maximum ${MAX_TOTAL_VOTING_POWER}`,
      fix: "scale all powers down by the same factor",
    });
  }
  if (issues.length > 0) throw new GenesisError("invalid", source, issues);

  let validatorSet: ValidatorSet;
  try {
    validatorSet = createValidatorSet(
      validators.map((v) => ({ publicKey: fromHex(v.blsPublicKey), votingPower: v.votingPower })),
    );
  } catch (error) {
    // Everything createValidatorSet checks was checked above; reaching here is a missed case, still reported in kind.
    if (!(error instanceof ValidatorSetError)) throw error;
    throw new GenesisError(
      "invalid",
      source,
      [{ path: "validators", message: error.message, fix: "see the message" }],
      { cause: error },
    );
  }
  const alloc: GenesisAccount[] = (g.execution?.alloc ?? [])
    .map((a) => ({
      address: a.address.toLowerCase() as Hex,
      balance: BigInt(a.balance),
      nonce: BigInt(a.nonce ?? "0"),
      code: a.code === undefined || a.code === "0x" ? null : (a.code.toLowerCase() as Hex),
      storage: new Map(
        Object.entries(a.storage ?? {}).map(([k, v]) => [k.toLowerCase() as Hex, v.toLowerCase() as Hex] as const),
      ),
    }))
    .sort((x, y) => (x.address < y.address ? -1 : x.address > y.address ? 1 : 0));
  firstSeen(
    alloc,
    (a) => a.address,
    (first, i) =>
      issues.push({
        path: `execution.alloc[${i}]`,
        message: `the same address as execution.alloc[${first}]`,
        fix: "list each account once",
      }),
  );
  const svmAlloc = (g.svm?.alloc ?? [])
    .map((a) => ({
      address: a.address,
      lamports: BigInt(a.lamports),
      key: toHex(base58Pubkey(a.address) as Uint8Array),
    }))
    .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  firstSeen(
    svmAlloc,
    (a) => a.key,
    (first, i) =>
      issues.push({
        path: `svm.alloc[${i}]`,
        message: `the same pubkey as svm.alloc[${first}]`,
        fix: "list each account once",
      }),
  );
  if (issues.length > 0) throw new GenesisError("invalid", source, issues);
  const svm: GenesisSvm = { alloc: svmAlloc.map(({ address, lamports }) => ({ address, lamports })) };
  const execution: GenesisExecution = {
    gasLimit: BigInt(g.execution?.gasLimit ?? DEFAULT_GAS_LIMIT),
    baseFeePerGas: BigInt(g.execution?.baseFeePerGas ?? DEFAULT_BASE_FEE_PER_GAS),
    alloc,
  };
  const l1: GenesisL1 | null =
    g.l1 === undefined
      ? null
      : {
          chainId: BigInt(g.l1.chainId),
          registry: toChecksumAddress(g.l1.registry as Hex),
          origin: { number: BigInt(g.l1.origin.number), hash: g.l1.origin.hash.toLowerCase() as Hex },
          finality:
            g.l1.finality === undefined
              ? null
              : {
                  batchInbox: toChecksumAddress(g.l1.finality.batchInbox as Hex),
                  outputOracle: toChecksumAddress(g.l1.finality.outputOracle as Hex),
                  portal: toChecksumAddress(g.l1.finality.portal as Hex),
                },
        };
  const partial = {
    chainId: BigInt(g.chainId),
    genesisTimeMs: g.genesisTimeMs,
    execution,
    svm,
    validators,
    validatorSet,
    l1,
  };
  return { ...partial, hash: genesisHash(partial) };
}

function isValidPublicKey(publicKey: Uint8Array): boolean {
  try {
    PublicKey.fromBytes(publicKey, true);
    return true;
  } catch {
    return false;
  }
}

/** Reads and validates a genesis file. */
export async function loadGenesis(path: string): Promise<Genesis> {
  const absolute = resolve(path);
  const json = await readJsonFile(
    absolute,
    GENESIS_MAX_BYTES,
    "genesis file",
    (code, issue, cause) => new GenesisError(code, absolute, [issue], cause === null ? undefined : { cause }),
  );
  return parseGenesis(json, absolute);
}

export interface BuildGenesisParameters {
  readonly chainId: bigint;
  readonly genesisTimeMs: number;
  readonly validators: readonly {
    readonly name: string;
    readonly votingPower: bigint;
    readonly identity: PublicIdentity;
  }[];
  readonly execution?: GenesisJson["execution"];
  readonly svm?: GenesisJson["svm"];
  readonly l1?: GenesisJson["l1"];
}

/** A genesis document for devnet tooling, validated like a loaded one (throws GenesisError). */
export function buildGenesis(params: BuildGenesisParameters): GenesisJson {
  const json: GenesisJson = {
    chainId: params.chainId.toString(),
    genesisTimeMs: params.genesisTimeMs,
    validators: params.validators.map((v) => ({
      name: v.name,
      blsPublicKey: v.identity.blsPublicKey,
      proofOfPossession: v.identity.proofOfPossession,
      votingPower: v.votingPower.toString(),
      peerId: v.identity.peerId,
      operator: v.identity.operator,
    })),
    ...(params.execution === undefined ? {} : { execution: params.execution }),
    ...(params.svm === undefined ? {} : { svm: params.svm }),
    ...(params.l1 === undefined ? {} : { l1: params.l1 }),
  };
  parseGenesis(json, "built genesis");
  return json;
}
