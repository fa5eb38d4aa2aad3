// Socket writes to a peer coalesced per turn of the event loop.
//
// A gossip message leaves as a yamux frame inside a Noise frame. @chainsafe/libp2p-noise (17.x) hands the transport
// each frame as two buffers, its 2-byte length and then the ciphertext, and @libp2p/tcp (11.x) passes each buffer to
// socket.write on its own. The socket is not corked, so each becomes a send() system call: two per message and peer,
// and on a loopback or LAN link two wake-ups of the receiving process, the first one to read two bytes. This corks a
// peer's socket at its first write in a turn of the event loop and uncorks it on process.nextTick: what the node
// writes to that peer in one turn (the frame's two parts, a vote and a transaction batch published together, a
// message and its IDONTWANT) leaves in one writev(). Nothing waits for a later turn, and Node's own backpressure is
// unchanged (write() still reports a full buffer; the bytes are only handed to the kernel a moment later).
import { Socket } from "node:net";
import type {
  CreateListenerOptions,
  DialTransportOptions,
  MultiaddrConnection,
  Transport,
  Upgrader,
} from "@libp2p/interface";
import type { Multiaddr } from "@multiformats/multiaddr";

const COALESCED = Symbol.for("lumia-dcn.coalesced-writes");

/**
 * Corks `socket` at its first write in a turn of the event loop and uncorks it on process.nextTick (once per socket;
 * later calls do nothing).
 */
export function coalesceSocketWrites(socket: Socket): void {
  const marked = socket as Socket & { [COALESCED]?: true };
  if (marked[COALESCED] === true) return;
  marked[COALESCED] = true;
  const write = socket.write;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = function coalescedWrite(this: Socket, ...args: Parameters<Socket["write"]>): boolean {
    if (!corked && !this.destroyed) {
      corked = true;
      this.cork();
      process.nextTick(uncork);
    }
    return (write as (...a: Parameters<Socket["write"]>) => boolean).apply(this, args);
  } as Socket["write"];
}

/**
 * The raw connection's socket: @libp2p/tcp's connection keeps it in its `socket` field (not in the interface's
 * typings). False when this transport's connections have none: their writes go on as the library makes them.
 */
function coalesceConnection(maConn: MultiaddrConnection): boolean {
  const socket = (maConn as MultiaddrConnection & { socket?: unknown }).socket;
  if (!(socket instanceof Socket)) return false;
  coalesceSocketWrites(socket);
  return true;
}

/** An upgrader that coalesces each raw connection's writes before the usual upgrade (Noise, then yamux). */
function coalescingUpgrader(upgrader: Upgrader, onUncoalesced: () => void): Upgrader {
  const prepare = (maConn: MultiaddrConnection): MultiaddrConnection => {
    if (!coalesceConnection(maConn)) onUncoalesced();
    return maConn;
  };
  return new Proxy(upgrader, {
    get(target, property) {
      if (property === "upgradeInbound") {
        return (maConn: MultiaddrConnection, opts: Parameters<Upgrader["upgradeInbound"]>[1]) =>
          target.upgradeInbound(prepare(maConn), opts);
      }
      if (property === "upgradeOutbound") {
        return (maConn: MultiaddrConnection, opts: Parameters<Upgrader["upgradeOutbound"]>[1]) =>
          target.upgradeOutbound(prepare(maConn), opts);
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Wraps a transport factory (`tcp()`) so that the connections it dials and accepts coalesce their socket writes.
 * `onUncoalesced` is called once if a connection exposes no socket (another transport, or a library version that
 * keeps it elsewhere): the node then runs with the library's own writes, and the caller logs it.
 */
export function withCoalescedWrites<Components>(
  factory: (components: Components) => Transport,
  onUncoalesced: () => void = () => {},
): (components: Components) => Transport {
  return (components) => {
    const transport = factory(components);
    let warned = false;
    const warnOnce = (): void => {
      if (warned) return;
      warned = true;
      onUncoalesced();
    };
    const dial = transport.dial.bind(transport);
    const createListener = transport.createListener.bind(transport);
    transport.dial = (ma: Multiaddr, options: DialTransportOptions) =>
      dial(ma, { ...options, upgrader: coalescingUpgrader(options.upgrader, warnOnce) });
    transport.createListener = (options: CreateListenerOptions) =>
      createListener({ ...options, upgrader: coalescingUpgrader(options.upgrader, warnOnce) });
    return transport;
  };
}
