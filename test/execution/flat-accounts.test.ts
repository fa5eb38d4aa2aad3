import { describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { FlatAccounts } from "../../src/execution/flat-accounts.ts";

const root = (n: number): Hex => `0x${n.toString(16).padStart(64, "0")}`;
const rlp = (n: number) => Uint8Array.of(n);

describe("FlatAccounts", () => {
  it("starts a view only for executions, and moves it to a recorded child by a copy with the child's changes", () => {
    const flat = new FlatAccounts(100);
    expect(flat.at(root(1), false)).toBeNull();
    const parent = flat.at(root(1), true);
    expect(parent).not.toBeNull();
    parent?.set("aa", rlp(1));
    parent?.set("bb", null);
    flat.childOf(root(1), root(2), new Map([["aa", rlp(2)]]));
    flat.childOf(root(1), root(3), new Map([["aa", null]]));
    const child = flat.at(root(3), false);
    expect(child?.get("aa")).toBeNull();
    expect(child?.get("bb")).toBeNull();
    // The parent's map is untouched: an execution still running on it keeps reading the parent's state.
    expect(parent?.get("aa")).toEqual(rlp(1));
    // The sibling was a child of the old view only; other roots get no view from readers.
    expect(flat.at(root(2), false)).toBeNull();
    expect(flat.at(root(1), false)).toBeNull();
  });

  it("ignores children of roots it does not view, and drops a view grown past its bound instead of copying it", () => {
    const flat = new FlatAccounts(1);
    const view = flat.at(root(1), true);
    flat.childOf(root(9), root(2), new Map());
    expect(flat.at(root(2), false)).toBeNull();
    view?.set("aa", rlp(1));
    view?.set("bb", rlp(2));
    flat.childOf(root(1), root(3), new Map());
    expect(flat.at(root(3), false)).toBeNull();
    expect(flat.at(root(3), true)?.size).toBe(0);
  });
});
