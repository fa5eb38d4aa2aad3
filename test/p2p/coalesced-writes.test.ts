// Socket writes coalesced per turn of the event loop (p2p/coalesced-writes.ts): on a bare socket pair, then through
// real libp2p connections, where a gossip message must leave in one system call instead of two.
import { once } from "node:events";
import { createServer, type Server, Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { coalesceSocketWrites } from "../../p2p/coalesced-writes.ts";
import type { TopicSpec } from "../../p2p/index.ts";
import { dialAddress, identity, type NodeFixture, startNode, waitFor } from "./helpers.ts";

/** Counts the socket's hand-offs to the kernel: one per _write (one buffer) or _writev (several) call. */
function countHandOffs(socket: Socket): { write: number; writev: number; buffers: number } {
  const counts = { write: 0, writev: 0, buffers: 0 };
  const s = socket as unknown as {
    _write: (...a: unknown[]) => void;
    _writev: (chunks: unknown[], cb: unknown) => void;
  };
  const write = s._write.bind(socket);
  const writev = s._writev.bind(socket);
  s._write = (...a) => {
    counts.write++;
    counts.buffers++;
    write(...a);
  };
  s._writev = (chunks, cb) => {
    counts.writev++;
    counts.buffers += chunks.length;
    writev(chunks, cb);
  };
  return counts;
}

describe("coalesceSocketWrites", () => {
  let server: Server;
  let client: Socket;
  let received: Buffer[];

  const connect = async (): Promise<void> => {
    received = [];
    server = createServer((peer) => peer.on("data", (d: Buffer) => received.push(d)));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    client = new Socket();
    client.connect(address.port, "127.0.0.1");
    await once(client, "connect");
  };

  afterEach(async () => {
    client?.destroy();
    await new Promise((r) => server?.close(r));
  });

  const bytes = (): Buffer => Buffer.concat(received);

  it("hands what one turn writes to the kernel at once, and every later turn's writes too", async () => {
    await connect();
    coalesceSocketWrites(client);
    coalesceSocketWrites(client); // once per socket: a second call changes nothing
    const counts = countHandOffs(client);
    expect(client.write(Buffer.from([0, 3]))).toBe(true);
    expect(client.write(Buffer.from("abc"))).toBe(true);
    expect(client.write(Buffer.from("de"))).toBe(true);
    expect(counts).toEqual({ write: 0, writev: 0, buffers: 0 }); // corked until the turn ends
    await new Promise((r) => process.nextTick(r));
    expect(counts).toEqual({ write: 0, writev: 1, buffers: 3 });
    // A later turn: its single write goes out alone, and nothing stays corked.
    await new Promise((r) => setImmediate(r));
    client.write(Buffer.from("f"));
    await new Promise((r) => setImmediate(r));
    expect(counts).toEqual({ write: 1, writev: 1, buffers: 4 });
    await waitFor("the server reads all", () => bytes().length === 8);
    expect([...bytes()]).toEqual([0, 3, ...Buffer.from("abcdef")]);
  });

  it("keeps Node's backpressure: a write over the high-water mark reports it, and drain follows", async () => {
    await connect();
    coalesceSocketWrites(client);
    const big = Buffer.alloc(4 * client.writableHighWaterMark, 7);
    expect(client.write(big)).toBe(false);
    await once(client, "drain");
    await waitFor("the server reads all", () => bytes().length === big.length);
    expect(bytes().every((b) => b === 7)).toBe(true);
  });

  it("lets a socket that is ended or destroyed in the turn close as usual", async () => {
    await connect();
    coalesceSocketWrites(client);
    client.write(Buffer.from("xy"));
    client.end();
    await once(client, "finish");
    await waitFor("the server reads all", () => bytes().length === 2);
    await connect();
    coalesceSocketWrites(client);
    client.write(Buffer.from("z"));
    client.destroy();
    await new Promise((r) => setImmediate(r));
    expect(client.destroyed).toBe(true);
  });
});

describe("gossip through connections with coalesced writes", () => {
  const TOPIC = "/lumia/dcn/test/coalesced/1";
  const [a, b] = [identity(), identity()];
  const received: number[] = [];
  const warnings: string[] = [];
  let A: NodeFixture;
  let B: NodeFixture;
  const sockets: Socket[] = [];
  const originalConnect = Socket.prototype.connect;

  const topic = (record: boolean): TopicSpec<Uint8Array> => ({
    name: TOPIC,
    maxBytes: 1 << 16,
    queueLength: 4096,
    dropPolicy: "drop-newest",
    validate: (data) => ({ kind: "accept", value: data }),
    onMessage: (data) => {
      if (record) received.push(data[0] as number);
    },
  });

  beforeAll(async () => {
    const log = (level: string, message: string) => {
      if (level === "warn") warnings.push(message);
    };
    A = await startNode(a, { allowedPeers: [a.id, b.id], log });
    // B dials A: B's outbound sockets are the ones whose writes are counted below.
    Socket.prototype.connect = function (this: Socket, ...args: unknown[]) {
      sockets.push(this);
      return (originalConnect as (...x: unknown[]) => Socket).apply(this, args);
    } as typeof Socket.prototype.connect;
    B = await startNode(b, { allowedPeers: [a.id, b.id], peers: [dialAddress(A.net)], log });
    A.net.subscribe(topic(true));
    B.net.subscribe(topic(false));
    await waitFor("B sees A subscribed", () => B.net.topicPeers(TOPIC).length === 1);
  });

  afterAll(async () => {
    Socket.prototype.connect = originalConnect;
    await Promise.all([A?.net.stop(), B?.net.stop()]);
  });

  it("sends each message, published in a turn of its own, in one system call, and delivers all", async () => {
    const open = sockets.filter((s) => !s.destroyed);
    expect(open.length).toBeGreaterThanOrEqual(1);
    const counts = open.map(countHandOffs);
    const n = 200;
    for (let i = 0; i < n; i++) {
      await B.net.publish(TOPIC, new Uint8Array(120).fill(i & 0xff));
      await new Promise((r) => setImmediate(r));
    }
    await waitFor("A receives every message", () => received.length === n);
    expect(received).toEqual(Array.from({ length: n }, (_, i) => i & 0xff));
    const handOffs = counts.reduce((sum, c) => sum + c.write + c.writev, 0);
    const buffers = counts.reduce((sum, c) => sum + c.buffers, 0);
    // Each message is a Noise frame of two buffers (length, ciphertext): 2n system calls without coalescing.
    expect(buffers).toBeGreaterThanOrEqual(2 * n);
    expect(handOffs).toBeLessThanOrEqual(n + 20);
    expect(warnings).toEqual([]);
  });
});
