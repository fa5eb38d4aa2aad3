// Public API of the network layer. The node imports from here only.
export { NetworkError, type NetworkErrorCode, RequestError, type RequestErrorCode } from "./errors.ts";
export {
  generatePeerKey,
  type LogFn,
  type LogLevel,
  MAX_ALLOWED_PEERS,
  Network,
  type NetworkOptions,
  type PublishResult,
  peerIdFromPrivateKey,
  type RequestOptions,
  type RequestResult,
  type RequestSpec,
  type TopicSpec,
  type Verdict,
} from "./network.ts";
export type { DropPolicy } from "./queue.ts";
export { DEFAULT_SCORE_PARAMS, type ScoreParams } from "./score.ts";
