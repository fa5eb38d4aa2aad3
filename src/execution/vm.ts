// The multi-VM seam. Each virtual machine keeps its own state commitment (the EVM: a secure Merkle-Patricia trie
// root); a block header carries one global root that binds all of them, so adding a VM does not change how a
// header commits to state, only how many entries the preimage has.
//
//   globalRoot = keccak256( (vmId u8 || root bytes32)* )   entries sorted by vmId ascending, ids unique
//
// With the EVM alone that is keccak256(0x01 || evmRoot).
import { concatBytes, fromHex, type Hex, isHex, keccak256, toHex } from "../../consensus/bytes.ts";
import { EMPTY_TRIE_ROOT } from "../chain/ordered-trie.ts";

/** Identity of a virtual machine inside the global state commitment. */
export interface VmModule {
  /** u8, unique, never reused: it is part of every global state root preimage. */
  readonly id: number;
  readonly name: string;
  /** Root of this VM's empty state (what a chain without any of its accounts commits to). */
  readonly emptyRoot: Hex;
}

export interface VmRoot {
  readonly vm: number;
  readonly root: Hex;
}

/** keccak256(rlp("")): the root of an empty Merkle-Patricia trie. */
export { EMPTY_TRIE_ROOT };

export const EVM_VM: VmModule = { id: 1, name: "evm", emptyRoot: EMPTY_TRIE_ROOT };

/** Returns why `roots` is not a well-formed root list, or null. */
export function vmRootsProblem(roots: readonly VmRoot[]): string | null {
  if (roots.length === 0) return "empty VM root list";
  if (roots.length > 255) return "more than 255 VM roots";
  let previous = -1;
  for (const { vm, root } of roots) {
    if (!Number.isInteger(vm) || vm < 0 || vm > 255) return `VM id ${vm} is not a u8`;
    if (vm <= previous) return "VM roots not sorted by strictly ascending id";
    if (!isHex(root, 32)) return `VM ${vm} root is not 32-byte hex`;
    previous = vm;
  }
  return null;
}

/** The global state root over the per-VM roots. Throws RangeError on a malformed list (a caller's bug). */
export function globalStateRoot(roots: readonly VmRoot[]): Hex {
  const problem = vmRootsProblem(roots);
  if (problem !== null) throw new RangeError(problem);
  return toHex(keccak256(concatBytes(...roots.flatMap(({ vm, root }) => [Uint8Array.of(vm), fromHex(root)]))));
}
