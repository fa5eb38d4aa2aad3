// Yamux window updates with hysteresis.
//
// @chainsafe/libp2p-yamux (8.x) answers every data frame it receives with a window update frame that returns the
// frame's bytes to the sender. Gossip is many small messages (a vote is 145 bytes, a transfer about 110), so every
// message crossed the connection twice: the data frame, then a 12-byte window update back, each one a Noise frame and
// a socket write of its own. Other yamux implementations send an update only once at least half of the receive window
// has been consumed (rust-yamux since 2021, go-yamux, py-libp2p); this does the same: an established stream with at
// least half of its window free sends nothing, and the next update returns everything consumed since the last one.
// Flow control is unchanged: the sender still stops at the window and resumes on the update, which now comes after
// half a window (128 KiB by default) instead of after each frame; the window still grows when a half window is
// consumed within four round trips (the library's own rule, which runs whenever an update is sent).
import { StreamState, YamuxStream } from "@chainsafe/libp2p-yamux/stream";

/** The fields of YamuxStream (private in its typings) this reads. */
interface WindowState {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

type SendWindowUpdate = (this: YamuxStream) => void;

const PATCHED = Symbol.for("lumia-dcn.yamux-window-hysteresis");

/**
 * Installs the hysteresis on YamuxStream (once per process; later calls do nothing). Returns false, changing nothing,
 * when the library no longer has the method this wraps (another major version): the node then runs with the
 * library's own behaviour, and the caller logs it.
 */
export function installYamuxWindowHysteresis(): boolean {
  const proto = YamuxStream.prototype as unknown as Record<PropertyKey, unknown> & {
    sendWindowUpdate?: SendWindowUpdate;
  };
  if (proto[PATCHED] === true) return true;
  const original = proto.sendWindowUpdate;
  if (typeof original !== "function") return false;
  proto.sendWindowUpdate = function sendWindowUpdateWithHysteresis(this: YamuxStream): void {
    const s = this as unknown as WindowState;
    // SYN/ACK flags (stream opening) and paused streams keep the library's handling.
    if (s.state === StreamState.Established && 2 * s.recvWindowCapacity >= s.recvWindow) return;
    original.call(this);
  };
  proto[PATCHED] = true;
  return true;
}
