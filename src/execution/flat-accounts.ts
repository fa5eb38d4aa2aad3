// Account encodings of the head state by address, read before the account trie: a transfer reads its sender,
// recipient and the coinbase, and each read walked and decoded the trie from its root (pool admission, then
// execution, on every node). The view belongs to one state root. Trie reads at that root fill it; when an execution
// from that root produced the next head, the view moves to it by that execution's account changes (a copy: an
// execution still running on the old root keeps reading the old map). Any other root gets no view from readers, and
// a new empty one when an execution starts from it (a node that synced or restarted).
import type { Hex } from "../../consensus/bytes.ts";

/** Unprefixed lowercase address hex -> account RLP, or null for no account. */
export type AccountMap = Map<string, Uint8Array | null>;

/** Children remembered per view: the candidates of a height (one per round that got that far). */
const MAX_CHILDREN = 16;

export class FlatAccounts {
  private view: { readonly root: Hex; readonly accounts: AccountMap } | null = null;
  private readonly children = new Map<
    Hex,
    { readonly parent: Hex; readonly changes: ReadonlyMap<string, Uint8Array | null> }
  >();

  /** `maxAccounts`: a view that grew larger is dropped instead of copied when it moves. */
  constructor(private readonly maxAccounts: number) {}

  /**
   * The accounts of `root`: the current view, or the view moved to its child `root`; else, when `start`, a new empty
   * view of `root` (executions start one), otherwise null (readers of other roots read the trie).
   */
  at(root: Hex, start: boolean): AccountMap | null {
    const view = this.view;
    if (view?.root === root) return view.accounts;
    const child = this.children.get(root);
    if (view !== null && child?.parent === view.root && view.accounts.size <= this.maxAccounts) {
      const accounts: AccountMap = new Map(view.accounts);
      for (const [address, rlp] of child.changes) accounts.set(address, rlp);
      this.moveTo(root, accounts);
      return accounts;
    }
    if (!start) return null;
    const accounts: AccountMap = new Map();
    this.moveTo(root, accounts);
    return accounts;
  }

  /** An execution from `parent` produced `root` by these account changes (unprefixed address hex -> RLP or null). */
  childOf(parent: Hex, root: Hex, changes: ReadonlyMap<string, Uint8Array | null>): void {
    if (this.view?.root !== parent) return;
    this.children.delete(root);
    this.children.set(root, { parent, changes });
    if (this.children.size > MAX_CHILDREN) {
      const oldest = this.children.keys().next().value;
      if (oldest !== undefined) this.children.delete(oldest);
    }
  }

  private moveTo(root: Hex, accounts: AccountMap): void {
    this.view = { root, accounts };
    this.children.clear();
  }
}
