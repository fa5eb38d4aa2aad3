// The light client's public API (docs/light-client.md). Pure: runs in browsers and in Node.
export { type AnchorValidator, anchorFromGenesis, type GenesisLike, type TrustAnchor } from "./anchor.ts";
export {
  type BlockSelector,
  globalStateRoot,
  LightClient,
  type LightClientOptions,
  type VerifiedAccount,
  type VerifiedBalance,
  type VerifiedHeader,
  type VerifiedSigner,
  type VerifiedStorage,
  type VerifiedTransaction,
} from "./client.ts";
export { LightClientError, type LightClientErrorCode } from "./errors.ts";
export type { ProvenLog, ProvenReceipt } from "./rlp.ts";
export { type HttpTransportOptions, httpTransport, RpcCallError, type RpcTransport } from "./transport.ts";
export { buildOrderedTrie, type OrderedTrie, verifyTrieProof } from "./trie.ts";
