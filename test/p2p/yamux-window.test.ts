// Yamux window updates with hysteresis (p2p/yamux-window.ts): the method on a stream object driven as handleData
// drives it, then real connections moving more than a window through gossip.
import { StreamState, YamuxStream } from "@chainsafe/libp2p-yamux/stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TopicSpec } from "../../p2p/index.ts";
import { installYamuxWindowHysteresis } from "../../p2p/yamux-window.ts";
import { dialAddress, identity, type NodeFixture, startNode, waitFor } from "./helpers.ts";

const WINDOW = 256 * 1024;

interface Frame {
  readonly type: number;
  readonly flag: number;
  readonly length: number;
}

/** A YamuxStream's window state without the stream machinery: what sendWindowUpdate reads and writes. */
function streamAt(state: StreamState, frames: Frame[]) {
  const stream = Object.create(YamuxStream.prototype) as {
    recvWindow: number;
    recvWindowCapacity: number;
    sendWindowUpdate(): void;
  };
  Object.assign(stream, {
    state,
    recvWindow: WINDOW,
    recvWindowCapacity: WINDOW,
    maxStreamWindowSize: 16 * 1024 * 1024,
    epochStart: Date.now(),
    getRTT: () => -1, // no measured round trip: the window keeps its size
    sendFrame: (header: Frame) => {
      frames.push(header);
      return true;
    },
  });
  return stream;
}

describe("yamux window updates", () => {
  it("returns credit once half the window is consumed, not after every frame, and never lets the sender stall", () => {
    expect(installYamuxWindowHysteresis()).toBe(true);
    expect(installYamuxWindowHysteresis()).toBe(true); // once per process
    const frames: Frame[] = [];
    const stream = streamAt(StreamState.Established, frames);
    // The sender's view: it may send while it has credit.
    let credit = WINDOW;
    let received = 0;
    let updates = 0;
    for (let i = 0; i < 3000; i++) {
      const length = 150 + (i % 7) * 100; // gossip-sized frames
      expect(credit).toBeGreaterThanOrEqual(length);
      credit -= length;
      received += length;
      stream.recvWindowCapacity -= length; // what handleData does before calling sendWindowUpdate
      stream.sendWindowUpdate();
      for (const f of frames.splice(0)) {
        credit += f.length;
        updates++;
      }
      expect(stream.recvWindowCapacity).toBeGreaterThanOrEqual(WINDOW / 2);
    }
    // One update per half window consumed (the library sent one per frame: 3000).
    expect(received).toBeGreaterThan(5 * WINDOW);
    expect(updates).toBeGreaterThanOrEqual(Math.floor(received / (WINDOW / 2 + 1000)));
    expect(updates).toBeLessThanOrEqual(Math.ceil(received / (WINDOW / 2)));
    expect(credit).toBeGreaterThan(WINDOW / 2);
    expect(credit).toBe(stream.recvWindowCapacity);
  });

  it("still acknowledges a new stream at once, with its flag", () => {
    const frames: Frame[] = [];
    const stream = streamAt(StreamState.SYNReceived, frames);
    stream.sendWindowUpdate();
    expect(frames).toHaveLength(1);
    expect(frames[0]?.flag).not.toBe(0);
  });
});

describe("gossip through connections with window update hysteresis", () => {
  const [a, b] = [identity(), identity()];
  const received: number[] = [];
  let A: NodeFixture;
  let B: NodeFixture;

  const topic = (record: boolean): TopicSpec<Uint8Array> => ({
    name: "/lumia/dcn/test/bulk/1",
    maxBytes: 1 << 20,
    queueLength: 4096,
    dropPolicy: "drop-newest",
    validate: (data) => ({ kind: "accept", value: data }),
    onMessage: (data) => {
      if (record) received.push(data.length);
    },
  });

  beforeAll(async () => {
    A = await startNode(a, { allowedPeers: [a.id, b.id] });
    B = await startNode(b, { allowedPeers: [a.id, b.id], peers: [dialAddress(A.net)] });
    A.net.subscribe(topic(false));
    B.net.subscribe(topic(true));
    await waitFor("A sees B subscribed", () => A.net.topicPeers("/lumia/dcn/test/bulk/1").length === 1);
  });

  afterAll(async () => {
    await Promise.all([A?.net.stop(), B?.net.stop()]);
  });

  it("moves several windows' worth of large and small messages, all delivered", async () => {
    const sizes = [1 << 20, 300_000, ...Array.from({ length: 3000 }, (_, i) => 100 + (i % 50))];
    for (const [i, size] of sizes.entries()) {
      const data = new Uint8Array(size).fill(i & 0xff);
      data[0] = i & 0xff;
      data[1] = i >> 8;
      await A.net.publish("/lumia/dcn/test/bulk/1", data);
    }
    await waitFor("B receives every message", () => received.length === sizes.length, 20_000);
    expect(received).toEqual(sizes);
  }, 30_000);
});
