// L1 endpoint failover: one viem transport over the primary endpoint (`l1.rpcUrl`) and its fallbacks
// (`l1.fallbackRpcUrls`). Requests go to the endpoint in use; when it fails as an endpoint (no connection, a timeout,
// HTTP 5xx or 429, a closed socket, an internal or rate-limit JSON-RPC error) the same request goes to the next one,
// which stays in use. The primary is tried again `primaryRetryMs` after the switch away from it. A JSON-RPC answer
// that the next endpoint would give as well (a revert, a bad parameter, "nonce too low") is passed on as is.
//
// viem's own `fallback` transport starts every request at the first endpoint (a primary that hangs costs each request
// its timeout) and ranks endpoints with a loop that never stops; this one is sticky and holds no timer.
import {
  createTransport,
  type EIP1193RequestFn,
  HttpRequestError,
  InternalRpcError,
  LimitExceededRpcError,
  ResourceUnavailableRpcError,
  SocketClosedError,
  TimeoutError,
  type Transport,
  WebSocketRequestError,
} from "viem";

export interface FailoverEvents {
  /** The endpoint in use changed (`from` failed with `error`, or the primary is tried again: `error` null). */
  onSwitch?(from: number, to: number, error: unknown): void;
}

export interface FailoverParams {
  /** How long after switching away from the primary it is tried again. */
  readonly primaryRetryMs: number;
  readonly nowMs?: () => number;
}

export const DEFAULT_PRIMARY_RETRY_MS = 60_000;
/** How long closeAll waits for an endpoint's WebSocket to be handed over before giving up on it. */
const CLOSE_WAIT_MS = 1_000;

/** Whether `error` says the endpoint failed rather than answered: the same request may succeed on another one. */
export function endpointFailed(error: unknown): boolean {
  return (
    error instanceof HttpRequestError ||
    error instanceof TimeoutError ||
    error instanceof WebSocketRequestError ||
    error instanceof SocketClosedError ||
    error instanceof InternalRpcError ||
    error instanceof LimitExceededRpcError ||
    error instanceof ResourceUnavailableRpcError
  );
}

/** The endpoints' transports (primary first) as one; `state.active` is the index in use, shared by every client made. */
export function failoverTransport(
  transports: readonly Transport[],
  params: FailoverParams,
  events: FailoverEvents = {},
): Transport & { readonly state: { active: number } } {
  if (transports.length === 0) throw new RangeError("failoverTransport needs at least one transport");
  const nowMs = params.nowMs ?? Date.now;
  const state = { active: 0, switchedAt: 0 };
  const switchTo = (to: number, error: unknown) => {
    if (to === state.active) return;
    const from = state.active;
    state.active = to;
    state.switchedAt = nowMs();
    events.onSwitch?.(from, to, error);
  };
  const transport: Transport = ({ chain, pollingInterval, timeout }) => {
    const instances = transports.map((t) => t({ chain, pollingInterval, retryCount: 0, timeout }));
    return createTransport(
      {
        key: "failover",
        name: "L1 failover",
        type: "failover",
        retryCount: 0,
        ...(timeout === undefined ? {} : { timeout }),
        request: (async (args, options) => {
          if (state.active !== 0 && nowMs() - state.switchedAt >= params.primaryRetryMs) switchTo(0, null);
          let last: unknown;
          for (let k = 0; k < instances.length; k++) {
            const i = (state.active + k) % instances.length;
            const instance = instances[i];
            if (instance === undefined) continue;
            try {
              const answer = await instance.request(args, options);
              if (k > 0) switchTo(i, last);
              return answer;
            } catch (error) {
              if (!endpointFailed(error)) throw error;
              last = error;
            }
          }
          throw last;
        }) as EIP1193RequestFn,
      },
      {
        /**
         * Closes every endpoint's WebSocket, if any (src/l1/status.ts closeL1Client). viem opens a socket to hand it
         * over, so one that cannot connect is given up after a second rather than holding up a stop.
         */
        async closeAll() {
          await Promise.all(
            instances.map(async (instance) => {
              const getRpcClient = (instance.value as { getRpcClient?: () => Promise<{ close(): void }> } | undefined)
                ?.getRpcClient;
              if (getRpcClient === undefined) return;
              let timer: ReturnType<typeof setTimeout> | undefined;
              const giveUp = new Promise<null>((resolve) => {
                timer = setTimeout(() => resolve(null), CLOSE_WAIT_MS);
              });
              try {
                (await Promise.race([getRpcClient(), giveUp]))?.close();
              } catch {
                // never connected
              } finally {
                clearTimeout(timer);
              }
            }),
          );
        },
      },
    );
  };
  return Object.assign(transport, { state: state as { active: number } });
}
