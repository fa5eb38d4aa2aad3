// Integration tests of the permissioned network on real libp2p over 127.0.0.1 (TCP, Noise, Yamux, gossipsub).

import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Network, NetworkError, RequestError, type TopicSpec, type Verdict } from "../../p2p/index.ts";
import { dialAddress, identity, metricValue, type NodeFixture, sleep, startNode, waitFor } from "./helpers.ts";

const TOPIC = "/lumia/dcn/test/votes/1";

interface Received {
  readonly from: string;
  readonly value: string;
}

/**
 * A topic whose first byte selects the verdict: 1 accept, 2 ignore, 3 reject, 4 accept without forwarding. Records
 * what reached onMessage.
 */
function verdictTopic(received: Received[], maxBytes = 256): TopicSpec<string> {
  return {
    name: TOPIC,
    maxBytes,
    queueLength: 64,
    dropPolicy: "drop-newest",
    validate(data): Verdict<string> {
      const text = new TextDecoder().decode(data.subarray(1));
      switch (data[0]) {
        case 1:
          return { kind: "accept", value: text };
        case 2:
          return { kind: "ignore", code: "stale" };
        case 4:
          return { kind: "accept", value: text, forward: false };
        default:
          return { kind: "reject", code: "bad_signature" };
      }
    },
    onMessage(value, from) {
      received.push({ value, from });
    },
  };
}

/** An admitted peer with no validation of its own: it accepts and publishes anything, however large. */
function permissiveTopic(): TopicSpec<Uint8Array> {
  return {
    name: TOPIC,
    maxBytes: 1 << 20,
    queueLength: 64,
    dropPolicy: "drop-newest",
    validate: (data) => ({ kind: "accept", value: data }),
    onMessage() {},
  };
}

function msg(kind: number, text: string): Uint8Array {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(1 + body.length);
  out[0] = kind;
  out.set(body, 1);
  return out;
}

/**
 * Three admitted nodes subscribed to verdictTopic, started before the describe's tests and stopped after them: every
 * pair connected ("triangle"), or a line A - B - C where A and C never connect (no peer exchange, and only B dials).
 */
function threeNodes(shape: "triangle" | "line") {
  const [a, b, c] = [identity(), identity(), identity()];
  const got = { a: [] as Received[], b: [] as Received[], c: [] as Received[] };
  const nodes: NodeFixture[] = [];
  const node = (i: number): NodeFixture => {
    const n = nodes[i];
    if (n === undefined) throw new Error("nodes not started");
    return n;
  };
  beforeAll(async () => {
    const allowedPeers = [a.id, b.id, c.id];
    const A = await startNode(a, { allowedPeers });
    let B: NodeFixture;
    let C: NodeFixture;
    if (shape === "triangle") {
      B = await startNode(b, { allowedPeers, peers: [dialAddress(A.net)] });
      C = await startNode(c, { allowedPeers, peers: [dialAddress(A.net), dialAddress(B.net)] });
    } else {
      C = await startNode(c, { allowedPeers });
      B = await startNode(b, { allowedPeers, peers: [dialAddress(A.net), dialAddress(C.net)] });
    }
    nodes.push(A, B, C);
    A.net.subscribe(verdictTopic(got.a));
    B.net.subscribe(verdictTopic(got.b));
    C.net.subscribe(verdictTopic(got.c));
    const ends = shape === "triangle" ? 2 : 1;
    await waitFor(
      `every node sees its ${shape} neighbours subscribed`,
      () => [A, C].every((n) => n.net.topicPeers(TOPIC).length === ends) && B.net.topicPeers(TOPIC).length === 2,
    );
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.net.stop()));
  });
  return {
    ids: [a, b, c] as const,
    got,
    get A() {
      return node(0);
    },
    get B() {
      return node(1);
    },
    get C() {
      return node(2);
    },
  };
}

describe("gossip between three admitted nodes", () => {
  const t = threeNodes("triangle");
  const { got } = t;
  const [a, b, c] = t.ids;

  it("delivers an accepted message to each other node exactly once", async () => {
    const result = await t.A.net.publish(TOPIC, msg(1, "hello"));
    expect(result.recipients).toBe(2);
    await waitFor("B and C receive", () => got.b.length >= 1 && got.c.length >= 1);
    // Give mesh forwarding (C may also get it from B) time to produce a duplicate if dedupe were broken.
    await sleep(300);
    expect(got.b).toEqual([{ value: "hello", from: a.id }]);
    expect(got.c).toEqual([{ value: "hello", from: a.id }]);
    expect(got.a).toEqual([]); // emitSelf is off
  });

  it("drops ignored and rejected messages, scoring down only the rejected sender", async () => {
    const before = { b: got.b.length, c: got.c.length };
    await t.B.net.publish(TOPIC, msg(2, "ignored"));
    await t.B.net.publish(TOPIC, msg(3, "forged"));
    // A marker published after them on the same connections: once it is in, the earlier ones were processed.
    await t.B.net.publish(TOPIC, msg(1, "marker"));
    await waitFor("A and C receive the marker", () =>
      [got.a, got.c].every((list) => list.some((r) => r.value === "marker")),
    );
    await waitFor("A and C score B down", () => t.A.net.score(b.id) < 0 && t.C.net.score(b.id) < 0);
    expect(got.a.map((r) => r.value)).toEqual(["marker"]);
    expect(got.c.slice(before.c).map((r) => r.value)).toEqual(["marker"]);
    expect(got.b.length).toBe(before.b);
    expect(t.A.net.score(b.id)).toBeLessThanOrEqual(-9); // one penalty of 10, decaying at 1/s
    expect(t.A.net.score(c.id)).toBe(0);
    expect(
      await metricValue(t.A.registry, "dcn_p2p_gossip_messages_total", { verdict: "reject", code: "bad_signature" }),
    ).toBe(1);
    expect(await metricValue(t.A.registry, "dcn_p2p_gossip_messages_total", { verdict: "ignore", code: "stale" })).toBe(
      1,
    );
    expect(await metricValue(t.A.registry, "dcn_p2p_gossip_messages_total", { verdict: "accept" })).toBe(1);
    expect(await metricValue(t.A.registry, "dcn_p2p_peers")).toBe(2);
    expect(await metricValue(t.A.registry, "dcn_p2p_gossip_bytes_total", { topic: TOPIC })).toBe(
      msg(2, "ignored").length + msg(3, "forged").length + msg(1, "marker").length,
    );
  });

  it("hands accepted messages to onMessage in arrival order", async () => {
    const values = Array.from({ length: 30 }, (_, i) => `seq-${i}`);
    for (const v of values) await t.C.net.publish(TOPIC, msg(1, v));
    await waitFor("B receives all", () => got.b.filter((r) => r.value.startsWith("seq-")).length === values.length);
    expect(got.b.filter((r) => r.value.startsWith("seq-")).map((r) => r.value)).toEqual(values);
  });

  it("refuses to publish oversized or unsubscribed messages, and republishing identical bytes reaches nobody", async () => {
    await expect(t.A.net.publish(TOPIC, new Uint8Array(257))).rejects.toMatchObject({ code: "oversized" });
    await expect(t.A.net.publish("/other/1", new Uint8Array(1))).rejects.toBeInstanceOf(NetworkError);
    const data = msg(1, "once");
    expect((await t.A.net.publish(TOPIC, data)).recipients).toBe(2);
    expect((await t.A.net.publish(TOPIC, data)).recipients).toBe(0);
  });
});

describe("gossip along a line of three nodes (A - B - C, A and C not connected)", () => {
  const t = threeNodes("line");
  const { got } = t;
  const [a, b] = t.ids;

  it("relays an accepted message, and delivers one accepted without forwarding to the middle node only", async () => {
    // B forwards to its mesh, which gossipsub's heartbeat builds after the subscriptions are known: send distinct
    // markers until one reaches C, so that B's relay to C is known to work before the message that must not pass.
    const relayed = () => got.c.filter((r) => r.value.startsWith("relayed"));
    for (let i = 0; i < 50 && relayed().length === 0; i++) {
      await t.A.net.publish(TOPIC, msg(1, `relayed-${i}`));
      await sleep(100);
    }
    expect(relayed().length).toBeGreaterThan(0);
    // B validates one message at a time in arrival order: once "after" reached C, "kept" was judged before it.
    await t.A.net.publish(TOPIC, msg(4, "kept"));
    await t.A.net.publish(TOPIC, msg(1, "after"));
    await waitFor("C receives the next relayed message", () => got.c.some((r) => r.value === "after"));
    expect(got.b.map((r) => r.value).slice(-2)).toEqual(["kept", "after"]);
    expect(got.c.map((r) => r.value)).not.toContain("kept");
    expect(got.c.every((r) => r.from === b.id)).toBe(true);
    expect(t.A.net.connectedPeers()).toEqual([b.id]);
    // Not forwarding is not a fault of the sender.
    expect(t.B.net.score(a.id)).toBe(0);
    expect(
      await metricValue(t.B.registry, "dcn_p2p_gossip_messages_total", { verdict: "accept", code: "not_forwarded" }),
    ).toBe(1);
  });
});

describe("admission", () => {
  const [h, x] = [identity(), identity()];
  const received: Received[] = [];
  const refusals: string[] = [];
  let served = 0;
  let H: NodeFixture;
  let X: NodeFixture;

  beforeAll(async () => {
    H = await startNode(h, {
      allowedPeers: [h.id],
      log: (_level, msg, fields) => {
        if (msg.includes("gater refused")) refusals.push(String(fields?.peer));
      },
    });
    H.net.subscribe(verdictTopic(received));
    H.net.handle({
      protocol: "/test/echo/1",
      maxRequestBytes: 1024,
      maxResponseBytes: 1024,
      timeoutMs: 2_000,
      maxRequestsPerSecondPerPeer: 100,
      handle: (request) => {
        served++;
        return { kind: "ok", response: request };
      },
    });
    // The outsider admits H, so only H's gater stands in the way.
    X = await startNode(x, { allowedPeers: [h.id], peers: [dialAddress(H.net)] });
    X.net.subscribe(verdictTopic([]));
  });

  afterAll(async () => {
    await Promise.all([H?.net.stop(), X?.net.stop()]);
  });

  it("never lists an unknown peer, never delivers its gossip, never serves its requests", async () => {
    // X redials every few hundred ms; watch H's side over a window long enough for several attempts.
    const deadline = Date.now() + 1_500;
    while (Date.now() < deadline) {
      expect(H.net.connectedPeers()).not.toContain(x.id);
      await X.net.publish(TOPIC, msg(1, `outsider-${Date.now()}`)).catch(() => ({ recipients: 0 }));
      await X.net.request(h.id, "/test/echo/1", new Uint8Array([1])).catch((err: unknown) => {
        expect(err).toBeInstanceOf(RequestError);
      });
      await sleep(50);
    }
    expect(H.net.connectedPeers()).toEqual([]);
    expect(H.net.topicPeers(TOPIC)).toEqual([]);
    expect(received).toEqual([]);
    expect(served).toBe(0);
    expect(H.net.isAdmitted(x.id)).toBe(false);
    // The outsider did reach H (so the assertions above are not vacuous): H's gater turned it away.
    expect(refusals).toContain(x.id);
  });

  it("admits the peer once it is added to the allow list, and disconnects it when removed", async () => {
    H.net.setAllowedPeers([h.id, x.id]);
    await waitFor("X connected to H", () => H.net.connectedPeers().includes(x.id));
    await expect(X.net.request(h.id, "/test/echo/1", new Uint8Array([7]))).resolves.toEqual(new Uint8Array([7]));
    expect(served).toBe(1);
    H.net.setAllowedPeers([h.id]);
    await waitFor("X disconnected from H", () => !H.net.connectedPeers().includes(x.id));
    await sleep(800);
    expect(H.net.connectedPeers()).not.toContain(x.id);
  });
});

describe("scoring and bans", () => {
  const [h, m] = [identity(), identity()];
  const received: Received[] = [];
  let H: NodeFixture;
  let M: NodeFixture;
  const banMs = 2_500;

  beforeAll(async () => {
    H = await startNode(h, {
      allowedPeers: [h.id, m.id],
      score: { rejectPenalty: 10, disconnectBelow: -50, banMs, decayPerSecond: 0 },
    });
    H.net.subscribe(verdictTopic(received, 100));
    M = await startNode(m, { allowedPeers: [h.id, m.id], peers: [dialAddress(H.net)] });
    M.net.subscribe(permissiveTopic());
    await waitFor(
      "H and M see each other subscribed",
      () => H.net.topicPeers(TOPIC).includes(m.id) && M.net.topicPeers(TOPIC).includes(h.id),
    );
  });

  afterAll(async () => {
    await Promise.all([H?.net.stop(), M?.net.stop()]);
  });

  it("rejects an oversized message before validation and scores the sender down", async () => {
    const big = msg(1, "x".repeat(200));
    expect((await M.net.publish(TOPIC, big)).recipients).toBe(1);
    await waitFor("H scores M down", () => H.net.score(m.id) === -10);
    expect(received).toEqual([]);
    expect(
      await metricValue(H.registry, "dcn_p2p_gossip_messages_total", { verdict: "reject", code: "oversized" }),
    ).toBe(1);
  });

  it("counts the node's own reports against the peer", () => {
    H.net.report(m.id, "reject", "bad_certificate");
    expect(H.net.score(m.id)).toBe(-20);
  });

  it("disconnects and bans a peer whose score crosses the threshold, until the ban ends", async () => {
    // The ban starts at some instant after this one and before waitFor sees it: the reconnection is bounded from
    // below by this one (the ban's own start could be up to one poll earlier than bannedAt).
    const beforeBan = Date.now();
    for (let i = 0; i < 3; i++) await M.net.publish(TOPIC, msg(1, `${i}${"y".repeat(200)}`));
    await waitFor("H bans M", () => H.net.isBanned(m.id));
    const bannedAt = Date.now();
    await waitFor("M disconnected", () => !H.net.connectedPeers().includes(m.id));
    expect(await metricValue(H.registry, "dcn_p2p_peer_bans_total")).toBe(1);
    // M keeps redialing (it lists H as a bootstrap peer); H's gater refuses it for the whole ban.
    while (Date.now() - bannedAt < banMs - 300) {
      expect(H.net.connectedPeers()).not.toContain(m.id);
      await sleep(50);
    }
    await waitFor("M reconnects after the ban", () => H.net.connectedPeers().includes(m.id), 6_000);
    expect(Date.now() - beforeBan).toBeGreaterThanOrEqual(banMs);
    expect(H.net.score(m.id)).toBe(0);
  });
});

describe("request/response", () => {
  const [s, k] = [identity(), identity()];
  let S: NodeFixture;
  let K: NodeFixture;
  const allowed = [s.id, k.id];

  beforeAll(async () => {
    S = await startNode(s, { allowedPeers: allowed });
    const base = { maxRequestBytes: 64, maxResponseBytes: 4096, timeoutMs: 3_000, maxRequestsPerSecondPerPeer: 1000 };
    S.net.handle({
      ...base,
      protocol: "/test/echo/1",
      handle: (request) =>
        request[0] === 0xff ? { kind: "reject", code: "malformed_height" } : { kind: "ok", response: request },
    });
    S.net.handle({ ...base, protocol: "/test/big/1", handle: () => ({ kind: "ok", response: new Uint8Array(2000) }) });
    S.net.handle({
      ...base,
      protocol: "/test/slow/1",
      handle: async (_request, _from, signal) => {
        await new Promise((resolve) => {
          const t = setTimeout(resolve, 2_000);
          signal.addEventListener("abort", () => {
            clearTimeout(t);
            resolve(undefined);
          });
        });
        return { kind: "ok", response: new Uint8Array([1]) };
      },
    });
    S.net.handle({
      ...base,
      protocol: "/test/limited/1",
      maxRequestsPerSecondPerPeer: 3,
      handle: () => ({ kind: "ok", response: new Uint8Array([1]) }),
    });
    K = await startNode(k, { allowedPeers: allowed, peers: [dialAddress(S.net)] });
    await waitFor("K connected to S", () => K.net.connectedPeers().includes(s.id));
  });

  afterAll(async () => {
    await Promise.all([S?.net.stop(), K?.net.stop()]);
  });

  const failure = async (p: Promise<unknown>): Promise<RequestError> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof RequestError)) throw new Error(`expected a RequestError, got ${String(err)}`);
    return err;
  };

  it("round-trips a request", async () => {
    const request = new TextEncoder().encode("height=42");
    expect(await K.net.request(s.id, "/test/echo/1", request)).toEqual(request);
    expect(await metricValue(K.registry, "dcn_p2p_requests_total", { direction: "outbound", result: "ok" })).toBe(1);
    // The server counts after closing its end, which can be a moment after our response arrived.
    for (let i = 0; i < 100; i++) {
      if ((await metricValue(S.registry, "dcn_p2p_requests_total", { direction: "inbound", result: "ok" })) >= 1) break;
      await sleep(20);
    }
    expect(await metricValue(S.registry, "dcn_p2p_requests_total", { direction: "inbound", result: "ok" })).toBe(1);
  });

  it("fails with too_large when the response exceeds the caller's maxResponseBytes", async () => {
    const err = await failure(K.net.request(s.id, "/test/big/1", new Uint8Array(1), { maxResponseBytes: 1000 }));
    expect(err.code).toBe("too_large");
    // The same exchange within the cap works: the limit, not the protocol, failed.
    expect((await K.net.request(s.id, "/test/big/1", new Uint8Array(1), { maxResponseBytes: 2000 })).length).toBe(2000);
  });

  it("fails with timeout when the handler is slower than the caller waits", async () => {
    const start = Date.now();
    const err = await failure(K.net.request(s.id, "/test/slow/1", new Uint8Array(1), { timeoutMs: 200 }));
    expect(err.code).toBe("timeout");
    expect(Date.now() - start).toBeLessThan(1_500);
  });

  it("refuses requests over the per-peer rate", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => K.net.request(s.id, "/test/limited/1", new Uint8Array(1))),
    );
    const refused = results.filter(
      (r) => r.status === "rejected" && r.reason instanceof RequestError && r.reason.code === "refused",
    );
    expect(results.filter((r) => r.status === "fulfilled").length).toBe(3);
    expect(refused.length).toBe(5);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ remoteCode: "rate_limited" });
  });

  it("a handler reject reaches the requester as rejected and scores the requester down on the serving side", async () => {
    const err = await failure(K.net.request(s.id, "/test/echo/1", new Uint8Array([0xff])));
    expect(err.code).toBe("rejected");
    expect(err.remoteCode).toBe("malformed_height");
    expect(S.net.score(k.id)).toBeLessThan(0);
    expect(K.net.score(s.id)).toBe(0);
  });

  it("rejects an oversized request without calling the handler", async () => {
    const before = S.net.score(k.id);
    const err = await failure(K.net.request(s.id, "/test/echo/1", new Uint8Array(65)));
    expect(err.code).toBe("rejected");
    expect(err.remoteCode).toBe("oversized");
    expect(S.net.score(k.id)).toBeLessThan(before);
  });

  it("queues parallel requests beyond the per-peer stream limit instead of failing them", async () => {
    const requests = Array.from({ length: 48 }, (_, i) => K.net.request(s.id, "/test/echo/1", new Uint8Array([i])));
    const responses = await Promise.all(requests);
    expect(responses.map((r) => r[0])).toEqual(Array.from({ length: 48 }, (_, i) => i));
  });

  it("fails with not_connected for a peer we have no connection to, and refused for an unknown protocol", async () => {
    expect((await failure(K.net.request(identity().id, "/test/echo/1", new Uint8Array(1)))).code).toBe("not_connected");
    expect((await failure(K.net.request(s.id, "/test/nothing/1", new Uint8Array(1)))).code).toBe("refused");
  });
});

describe("redial", () => {
  const [a, b] = [identity(), identity()];
  const allowed = [a.id, b.id];
  let A: NodeFixture;
  let B: NodeFixture;

  afterAll(async () => {
    await Promise.all([A?.net.stop(), B?.net.stop()]);
  });

  it("reconnects to a restarted bootstrap peer on the same key and port within a few seconds", async () => {
    B = await startNode(b, { allowedPeers: allowed });
    const bAddr = dialAddress(B.net);
    A = await startNode(a, { allowedPeers: allowed, peers: [bAddr] });
    await waitFor("A connected to B", () => A.net.connectedPeers().includes(b.id));

    await B.net.stop();
    await waitFor("A notices B is gone", () => !A.net.connectedPeers().includes(b.id));
    // Stay down long enough for A's backoff to grow to its cap.
    await sleep(3_000);
    const listen = bAddr.replace(/\/p2p\/.*$/, "");
    // The restarted node registers its protocol before start, as the node does at boot.
    const net = await Network.create({ privateKey: b.key, listen: [listen], peers: [], allowedPeers: allowed });
    net.handle({
      protocol: "/test/status/1",
      maxRequestBytes: 8,
      maxResponseBytes: 8,
      timeoutMs: 1_000,
      maxRequestsPerSecondPerPeer: 10,
      handle: () => ({ kind: "ok", response: Uint8Array.of(2) }),
    });
    B = { net, registry: new Registry() };
    await net.start();
    const reconnectMs = await waitFor(
      "A reconnects to the restarted B",
      () => A.net.connectedPeers().includes(b.id),
      5_000,
    );
    expect(reconnectMs).toBeLessThan(5_000);
    // The dialer's view can run a moment ahead of the listener's inbound upgrade.
    await waitFor("the restarted B lists A", () => B.net.connectedPeers().includes(a.id), 2_000);
    expect(await A.net.request(b.id, "/test/status/1", new Uint8Array(1))).toEqual(Uint8Array.of(2));
  });
});

describe("lifecycle", () => {
  it("stops a network that never started, stops twice, and refuses to restart or publish after stop", async () => {
    const me = identity();
    const net = await Network.create({
      privateKey: me.key,
      listen: ["/ip4/127.0.0.1/tcp/0"],
      peers: [],
      allowedPeers: [],
    });
    net.subscribe({ ...permissiveTopic() });
    await Promise.all([net.stop(), net.stop()]);
    await expect(net.start()).rejects.toMatchObject({ code: "not_started" });
    await expect(net.publish(TOPIC, new Uint8Array(1))).rejects.toMatchObject({ code: "not_started" });
    await expect(net.request(me.id, "/x/1", new Uint8Array(1))).rejects.toMatchObject({ code: "not_connected" });
  });

  it("rejects malformed configuration with NetworkError", async () => {
    const me = identity();
    const base = { privateKey: me.key, listen: [], peers: [], allowedPeers: [] };
    await expect(Network.create({ ...base, allowedPeers: ["not-a-peer-id"] })).rejects.toMatchObject({
      code: "invalid_peer_id",
    });
    await expect(Network.create({ ...base, peers: ["/ip4/127.0.0.1/tcp/1"] })).rejects.toMatchObject({
      code: "invalid_peer_id",
    });
    await expect(Network.create({ ...base, privateKey: new Uint8Array(5) })).rejects.toMatchObject({
      code: "invalid_key",
    });
  });
});
