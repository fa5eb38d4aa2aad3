// Typed errors of the network layer. Peer-caused bad input never throws (it becomes a Verdict or a score change);
// these classes cover operational failures (a request that did not complete) and our own misuse (publishing an
// oversized message, a malformed key in the configuration).

/** Why a request did not produce a response. Closed set: callers switch on it. */
export type RequestErrorCode = "timeout" | "not_connected" | "refused" | "rejected" | "too_large" | "stream_error";

export class RequestError extends Error {
  override readonly name = "RequestError";
  readonly code: RequestErrorCode;
  readonly peer: string;
  readonly protocol: string;
  /** The code the serving side gave for "rejected" / "refused" (e.g. "rate_limited"), when it gave one. */
  readonly remoteCode: string | undefined;

  constructor(
    code: RequestErrorCode,
    context: { peer: string; protocol: string; remoteCode?: string; detail?: string },
    options?: { cause?: unknown },
  ) {
    const remote = context.remoteCode === undefined ? "" : ` (${context.remoteCode})`;
    const detail = context.detail === undefined ? "" : `: ${context.detail}`;
    super(`request ${context.protocol} to ${context.peer} failed: ${code}${remote}${detail}`, options);
    this.code = code;
    this.peer = context.peer;
    this.protocol = context.protocol;
    this.remoteCode = context.remoteCode;
  }
}

export type NetworkErrorCode =
  | "invalid_key" // private key bytes of the wrong length or inconsistent 64-byte form
  | "invalid_peer_id" // a peer id / multiaddr in the configuration does not parse
  | "unknown_topic" // publish to a topic that was never subscribed (we do not know its maxBytes)
  | "oversized" // publish larger than the topic's maxBytes
  | "not_started" // publish before start() or after stop()
  | "duplicate_registration"; // the same topic or protocol registered twice

/** Misuse of the network layer by the local node, or a bad configuration. Never caused by a remote peer. */
export class NetworkError extends Error {
  override readonly name = "NetworkError";
  readonly code: NetworkErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: NetworkErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.context = context;
  }
}
