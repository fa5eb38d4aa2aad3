// The Solana VM's identity in the global state commitment and the canonical encoding of its accounts. Every SVM
// account lives in one secure Merkle-Patricia trie (docs/svm.md): key keccak256(pubkey), value `svmAccountCodec`.
import {
  bytes,
  type Codec,
  decode,
  encode,
  type Infer,
  refine,
  struct,
  u8,
  u64,
  varBytes,
} from "../../../consensus/codec.ts";
import { EMPTY_TRIE_ROOT, type VmModule } from "../vm.ts";

/** VM id 2 in the global state root preimage (the EVM is 1). Never reused. */
export const SVM_VM: VmModule = { id: 2, name: "svm", emptyRoot: EMPTY_TRIE_ROOT };

/** Solana's MAX_PERMITTED_DATA_LENGTH: no account holds more. */
export const MAX_SVM_ACCOUNT_DATA_BYTES = 10 * 1024 * 1024;

/** Solana's base fee; litesvm charges it (plus any priority fee the transaction asks for). */
export const LAMPORTS_PER_SIGNATURE = 5_000n;

/**
 * Receives every fee (base and priority), so lamports are conserved: nothing is burned. A vanity address nobody
 * holds a key for; an ordinary system account otherwise.
 */
export const SVM_FEE_COLLECTOR = "LumiaFeeCo11ector11111111111111111111111111";
export const SYSTEM_PROGRAM = "11111111111111111111111111111111";

const executableFlag: Codec<number> = refine(u8, (v) => (v === 0 || v === 1 ? null : `executable flag ${v}`));

/**
 * lamports u64 | owner bytes32 | executable u8 (0/1) | rentEpoch u64 | data u32 length + bytes (<= 10 MiB).
 * Big-endian integers (consensus/codec.ts), one encoding per account.
 */
export const svmAccountCodec = struct({
  lamports: u64,
  owner: bytes(32),
  executable: executableFlag,
  rentEpoch: u64,
  data: varBytes(MAX_SVM_ACCOUNT_DATA_BYTES),
});

type WireAccount = Infer<typeof svmAccountCodec>;

/** An SVM account as stored: `owner` is the 32 raw bytes of the owner program's pubkey. */
export interface SvmAccount {
  readonly lamports: bigint;
  readonly owner: Uint8Array;
  readonly executable: boolean;
  readonly rentEpoch: bigint;
  readonly data: Uint8Array;
}

export function encodeSvmAccount(account: SvmAccount): Uint8Array {
  const wire: WireAccount = {
    lamports: account.lamports,
    owner: account.owner,
    executable: account.executable ? 1 : 0,
    rentEpoch: account.rentEpoch,
    data: account.data,
  };
  return encode(svmAccountCodec, wire, "svmAccount");
}

/** Throws DecodeError on bytes that are not a canonical account (a corrupt store: the trie only holds encodings). */
export function decodeSvmAccount(bytes: Uint8Array): SvmAccount {
  const wire = decode(svmAccountCodec, bytes, "svmAccount");
  return {
    lamports: wire.lamports,
    owner: wire.owner,
    executable: wire.executable === 1,
    rentEpoch: wire.rentEpoch,
    data: wire.data,
  };
}
