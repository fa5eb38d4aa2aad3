// The node's EVM state manager: ethereumjs' MerkleStateManager (with Caches) with three changes.
// - Its checkpoints also checkpoint the linked SVM state, so both revert together (cross-VM calls, docs/cross-vm.md).
// - A flush writes the changed accounts into the account trie as one batch (./trie-batch.ts): each changed trie node
//   is hashed once, where one put per account re-hashed the path from the root every time. Each contract's changed
//   storage slots go into its storage trie the same way, first (the new storage roots land in the account cache and
//   go out in the account batch). Code is flushed as ethereumjs does.
// - Account reads look in the flat view of the state root first (./flat-accounts.ts) and fill it from the trie.

import { RLP } from "@ethereumjs/rlp";
import { CODEHASH_PREFIX, MerkleStateManager } from "@ethereumjs/statemanager";
import {
  Account,
  type Address,
  bytesToUnprefixedHex,
  concatBytes,
  createAccountFromBytesArray,
  createAddressFromString,
  equalsBytes as equalBytes,
  unprefixedHexToBytes,
} from "@ethereumjs/util";
import { decodeRlp } from "../chain/rlp.ts";
import type { SvmSide } from "./cross-vm.ts";
import type { AccountMap } from "./flat-accounts.ts";
import { fastKeccak256 } from "./keccak.ts";
import { applyBatchToTrie } from "./trie-batch.ts";

/** createAccountFromRLP without its copies: the account's roots are views into `rlp` (which nothing changes). */
function accountOf(rlp: Uint8Array): Account {
  const values = decodeRlp(rlp);
  if (!Array.isArray(values)) throw new Error("Invalid serialized account input. Must be array");
  return createAccountFromBytesArray(values as Uint8Array[]);
}

export class LinkedStateManager extends MerkleStateManager {
  link: SvmSide | null = null;
  /** The flat view and the trie root it belongs to (the root when it was given); used only while the trie is there. */
  private flat: { readonly root: Uint8Array; readonly accounts: AccountMap } | null = null;
  /** Every account the flushes wrote (unprefixed address hex -> RLP, null: deleted): how the view moves on. */
  readonly flushedAccounts = new Map<string, Uint8Array | null>();

  constructor(opts: ConstructorParameters<typeof MerkleStateManager>[0]) {
    super(opts);
    // The batches read and write storage nodes by hash alone: per-contract key prefixes are not supported.
    if (this._prefixStorageTrieKeys) throw new Error("LinkedStateManager does not support prefixStorageTrieKeys");
  }

  /** Reads accounts through `accounts`, the flat view of the trie's current root. */
  useFlatView(accounts: AccountMap): void {
    this.flat = { root: this._trie.root(), accounts };
  }

  override async getAccount(address: Address): Promise<Account | undefined> {
    const flat = this.flat;
    const cache = this._caches?.account;
    if (flat === null || cache?.get(address) !== undefined || !equalBytes(this._trie.root(), flat.root)) {
      return super.getAccount(address);
    }
    const key = bytesToUnprefixedHex(address.bytes);
    let rlp = flat.accounts.get(key);
    if (rlp === undefined) {
      rlp = await this._trie.get(address.bytes);
      flat.accounts.set(key, rlp);
    }
    const account = rlp === null ? undefined : accountOf(rlp);
    cache?.put(address, account);
    return account;
  }

  override async checkpoint(): Promise<void> {
    await super.checkpoint();
    this.link?.checkpoint();
  }

  override async commit(): Promise<void> {
    await super.commit();
    this.link?.keepCheckpoint();
  }

  override async revert(): Promise<void> {
    await super.revert();
    this.link?.revertCheckpoint();
  }

  override async flush(): Promise<void> {
    const caches = this._caches;
    const accounts = caches?.account;
    // Without an account cache every putAccount went to the trie directly: nothing is pending here.
    if (caches === undefined || accounts === undefined) return super.flush();
    for (const [addressHex, entry] of caches.code?.flush() ?? []) {
      const code = entry.code;
      if (code === undefined) continue;
      const address = createAddressFromString(`0x${addressHex}`);
      const codeHash = fastKeccak256(code);
      await this._getCodeDB().put(this._prefixCodeHashes ? concatBytes(CODEHASH_PREFIX, codeHash) : codeHash, code);
      if ((await this.getAccount(address)) === undefined) await this.putAccount(address, new Account());
      await this.modifyAccountFields(address, { codeHash });
    }
    await this.flushStorage(caches.storage?.flush() ?? []);
    const changed = accounts.flush();
    if (changed.length === 0) return;
    for (const [addressHex, entry] of changed) this.flushedAccounts.set(addressHex, entry.accountRLP ?? null);
    await applyBatchToTrie(
      this._trie,
      changed.map(([addressHex, entry]) => [fastKeccak256(unprefixedHexToBytes(addressHex)), entry.accountRLP ?? null]),
    );
  }

  /** Each contract's changed slots as one batch into its storage trie, then its new storage root into its account. */
  private async flushStorage(slots: readonly [string, string, Uint8Array | undefined][]): Promise<void> {
    if (slots.length === 0) return;
    const byContract = new Map<string, [Uint8Array, Uint8Array | null][]>();
    for (const [addressHex, keyHex, value] of slots) {
      // The cache holds RLP(value without leading zeros); an empty value deletes the slot.
      const decoded = decodeRlp(value ?? new Uint8Array(0)) as Uint8Array;
      const update: [Uint8Array, Uint8Array | null] = [
        fastKeccak256(unprefixedHexToBytes(keyHex)),
        decoded.length === 0 ? null : RLP.encode(decoded),
      ];
      const list = byContract.get(addressHex);
      if (list === undefined) byContract.set(addressHex, [update]);
      else list.push(update);
    }
    for (const [addressHex, updates] of byContract) {
      const address = createAddressFromString(`0x${addressHex}`);
      const account = await this.getAccount(address);
      if (account === undefined) continue;
      // The state manager keeps one storage trie object per contract: it must see the new root too.
      const storageTrie = this._getStorageTrie(address, account);
      account.storageRoot = await applyBatchToTrie(storageTrie, updates);
      await this.putAccount(address, account);
    }
  }
}
