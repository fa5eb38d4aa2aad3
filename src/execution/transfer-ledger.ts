// The accounts that plain transfers touch within one block execution, held as plain fields between one read and one
// write of the state manager. A transfer changes three accounts (sender, recipient, coinbase). Through the state
// manager each change was a read (the account cache's RLP decoded into an Account) and a write (encoded again): six
// reads and three writes per transfer, most of a block's allocations. Here an account is read once per block and
// written back once: before anything else reads the state manager (runTx, the cross-VM side, the reward pool credit)
// and at the end of the block.
//
// The state written back is what applying the transfers one by one through the state manager gives, EIP-161 included:
// a touched account that ends empty is deleted (or never created), as runTx's cleanup does after each transaction; an
// account emptied by one transfer and credited by a later one ends as the later one left it either way.
import type { MerkleStateManager } from "@ethereumjs/statemanager";
import {
  Account,
  type Address,
  createAddressFromString,
  equalsBytes,
  KECCAK256_NULL,
  KECCAK256_RLP,
} from "@ethereumjs/util";

export interface LedgerAccount {
  readonly address: Address;
  nonce: bigint;
  balance: bigint;
  readonly storageRoot: Uint8Array;
  readonly codeHash: Uint8Array;
  /** The account is in the state (not only created by this ledger). */
  readonly existed: boolean;
  /** Changed (or touched) since it was read: written back. */
  touched: boolean;
}

export class TransferLedger {
  private readonly accounts = new Map<string, LedgerAccount>();

  constructor(private readonly sm: MerkleStateManager) {}

  /** The account at `key` (lowercase 0x hex; `address` when the caller has it), read from the state on first use. */
  async account(key: string, known?: Address): Promise<LedgerAccount> {
    const held = this.accounts.get(key);
    if (held !== undefined) return held;
    const address = known ?? createAddressFromString(key);
    const stored = await this.sm.getAccount(address);
    const account: LedgerAccount =
      stored === undefined
        ? {
            address,
            nonce: 0n,
            balance: 0n,
            storageRoot: KECCAK256_RLP,
            codeHash: KECCAK256_NULL,
            existed: false,
            touched: false,
          }
        : {
            address,
            nonce: stored.nonce,
            balance: stored.balance,
            storageRoot: stored.storageRoot,
            codeHash: stored.codeHash,
            existed: true,
            touched: false,
          };
    this.accounts.set(key, account);
    return account;
  }

  /** Writes every touched account to the state manager and forgets all of them (what follows may change any). */
  async writeBack(): Promise<void> {
    for (const account of this.accounts.values()) {
      if (!account.touched) continue;
      if (isEmpty(account)) {
        if (account.existed) await this.sm.deleteAccount(account.address);
        continue;
      }
      await this.sm.putAccount(
        account.address,
        new Account(account.nonce, account.balance, account.storageRoot, account.codeHash),
      );
    }
    this.accounts.clear();
  }
}

/** EIP-161 emptiness, as ethereumjs' Account.isEmpty: no nonce, no balance, no code. */
function isEmpty(account: LedgerAccount): boolean {
  return account.nonce === 0n && account.balance === 0n && equalsBytes(account.codeHash, KECCAK256_NULL);
}

/** Whether the account has code (a transfer to it runs it). */
export function hasCode(account: LedgerAccount): boolean {
  return !equalsBytes(account.codeHash, KECCAK256_NULL);
}
