// Unit tests of the network layer's pure parts: score/ban bookkeeping, the bounded validation queue, rate limits,
// request framing and key handling. Clocks are injected; nothing here opens a socket.
import { describe, expect, it } from "vitest";
import { bytesEqual, concatBytes, utf8 } from "../../consensus/bytes.ts";
import { decodeResponse, encodeResponse, MAX_CODE_BYTES } from "../../p2p/framing.ts";
import { generatePeerKey, NetworkError, peerIdFromPrivateKey } from "../../p2p/index.ts";
import { privateKeyFromBytes } from "../../p2p/keys.ts";
import { type QueueJob, ValidationQueue } from "../../p2p/queue.ts";
import { KeyedSlots, TokenBuckets } from "../../p2p/rate-limit.ts";
import { PeerScores, resolveScoreParams } from "../../p2p/score.ts";

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("PeerScores", () => {
  const params = { rejectPenalty: 10, disconnectBelow: -50, banMs: 60_000, decayPerSecond: 2 };

  it("penalizes, decays toward zero, and never goes positive", () => {
    const c = clock();
    const scores = new PeerScores(params, 100, c.now);
    expect(scores.penalize("p")).toEqual({ banned: false, score: -10 });
    c.advance(2_000);
    expect(scores.score("p")).toBe(-6);
    c.advance(60_000);
    expect(scores.score("p")).toBe(0);
    scores.prune();
    expect(scores.trackedPeers).toBe(0);
  });

  it("bans at the threshold for banMs, then forgets the ban", () => {
    const c = clock();
    const scores = new PeerScores({ ...params, decayPerSecond: 0 }, 100, c.now);
    for (let i = 0; i < 4; i++) expect(scores.penalize("p").banned).toBe(false);
    const outcome = scores.penalize("p");
    expect(outcome).toEqual({ banned: true, score: -50, untilMs: c.now() + 60_000 });
    expect(scores.isBanned("p")).toBe(true);
    expect(scores.score("p")).toBe(0); // a ban resets the score: the peer returns with a clean slate
    c.advance(59_999);
    expect(scores.isBanned("p")).toBe(true);
    c.advance(1);
    expect(scores.isBanned("p")).toBe(false);
    expect(scores.isBanned("q")).toBe(false);
  });

  it("validates parameters", () => {
    expect(() => resolveScoreParams({ disconnectBelow: 5 })).toThrow(RangeError);
    expect(() => resolveScoreParams({ rejectPenalty: 0 })).toThrow(RangeError);
    expect(resolveScoreParams(undefined).rejectPenalty).toBe(10);
  });
});

describe("ValidationQueue", () => {
  interface Probe {
    readonly job: QueueJob<string>;
    readonly events: string[];
    release(): void;
  }
  function probe(name: string, log: string[]): Probe {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const events: string[] = [];
    return {
      events,
      release: () => release(),
      job: {
        run: async () => {
          log.push(`run ${name}`);
          await gate;
          return name;
        },
        drop: (reason) => log.push(`drop ${name} ${reason}`),
        done: (r) => log.push(`done ${r}`),
        fail: () => log.push(`fail ${name}`),
      },
    };
  }

  it("drop-newest keeps the queued jobs and drops the arrival", async () => {
    const log: string[] = [];
    const q = new ValidationQueue<string>(2, "drop-newest", 1);
    const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => probe(n, log)) as [Probe, Probe, Probe, Probe];
    for (const p of [a, b, c, d]) q.push(p.job); // a runs, b and c wait, d finds the queue full
    expect(log).toEqual(["run a", "drop d queue_full"]);
    for (const p of [a, b, c]) p.release();
    await new Promise((r) => setTimeout(r, 10));
    expect(log).toEqual(["run a", "drop d queue_full", "done a", "run b", "done b", "run c", "done c"]);
  });

  it("drop-oldest drops the longest-waiting job", async () => {
    const log: string[] = [];
    const q = new ValidationQueue<string>(2, "drop-oldest", 1);
    const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => probe(n, log)) as [Probe, Probe, Probe, Probe];
    for (const p of [a, b, c, d]) q.push(p.job);
    expect(log).toEqual(["run a", "drop b queue_full"]);
    for (const p of [a, c, d]) p.release();
    await new Promise((r) => setTimeout(r, 10));
    expect(log.slice(2)).toEqual(["done a", "run c", "done c", "run d", "done d"]);
    expect(q.length).toBe(0);
  });

  it("runs up to `concurrency` jobs at once, reports throwing validators, and drops waiting jobs on close", async () => {
    const log: string[] = [];
    const q = new ValidationQueue<string>(10, "drop-newest", 2);
    const [a, b, c] = ["a", "b", "c"].map((n) => probe(n, log)) as [Probe, Probe, Probe];
    for (const p of [a, b, c]) q.push(p.job);
    expect(q.active).toBe(2);
    q.push({ ...c.job, run: () => Promise.reject(new Error("bug")), fail: () => log.push("fail boom") });
    q.close();
    expect(log).toEqual(["run a", "run b", "drop c closed", "drop c closed"]);
    a.release();
    b.release();
    await new Promise((r) => setTimeout(r, 10));
    expect(log.slice(4)).toEqual(["done a", "done b"]);
    const q2 = new ValidationQueue<string>(1, "drop-newest", 1);
    q2.push({ ...c.job, run: () => Promise.reject(new Error("bug")), fail: () => log.push("fail boom") });
    await new Promise((r) => setTimeout(r, 10));
    expect(log.at(-1)).toBe("fail boom");
  });

  it("a background queue lets the event loop turn between two jobs that resolve at once", async () => {
    for (const background of [false, true]) {
      const log: string[] = [];
      const q = new ValidationQueue<string>(10, "drop-newest", 1, background);
      const instant = (name: string): QueueJob<string> => ({
        run: async () => {
          log.push(`run ${name}`);
          return name;
        },
        drop: () => {},
        done: () => {},
        fail: () => {},
      });
      for (const name of ["a", "b", "c"]) q.push(instant(name));
      setImmediate(() => log.push("event loop"));
      await new Promise((r) => setTimeout(r, 10));
      // Foreground: the backlog runs as one chain of microtasks. Background: what was waiting on the loop goes first.
      expect(log, `background ${background}`).toEqual(
        background ? ["run a", "event loop", "run b", "run c"] : ["run a", "run b", "run c", "event loop"],
      );
    }
  });
});

describe("TokenBuckets", () => {
  it("allows a burst of one second's worth, then refills at the rate", () => {
    const c = clock();
    const buckets = new TokenBuckets(3, 10, c.now);
    expect([1, 2, 3, 4].map(() => buckets.take("p"))).toEqual([true, true, true, false]);
    expect(buckets.take("q")).toBe(true); // per peer
    c.advance(333);
    expect(buckets.take("p")).toBe(false);
    c.advance(1);
    expect(buckets.take("p")).toBe(true);
  });

  it("holds a bounded number of peers, evicting idle (full) buckets first", () => {
    const c = clock();
    const buckets = new TokenBuckets(1, 2, c.now);
    expect(buckets.take("a")).toBe(true);
    expect(buckets.take("b")).toBe(true);
    expect(buckets.take("c")).toBe(false); // both a and b are mid-bucket
    c.advance(1_000);
    expect(buckets.take("c")).toBe(true);
    expect(buckets.size).toBeLessThanOrEqual(2);
  });
});

describe("KeyedSlots", () => {
  it("queues beyond the limit, hands slots over in order, and lets aborted waiters leave", async () => {
    const slots = new KeyedSlots();
    const never = new AbortController().signal;
    await slots.acquire("k", 1, never);
    const order: string[] = [];
    const abort = new AbortController();
    const w1 = slots.acquire("k", 1, never).then(() => order.push("w1"));
    const w2 = slots.acquire("k", 1, abort.signal).then(
      () => order.push("w2"),
      () => order.push("w2 aborted"),
    );
    const w3 = slots.acquire("k", 1, never).then(() => order.push("w3"));
    abort.abort(new Error("timeout"));
    await w2;
    slots.release("k");
    await w1;
    slots.release("k");
    await w3;
    slots.release("k");
    expect(order).toEqual(["w2 aborted", "w1", "w3"]);
    expect(slots.keys).toBe(0);
  });
});

describe("response framing", () => {
  it("round-trips every status and reads the documented byte layout", () => {
    expect(encodeResponse({ kind: "ok", response: Uint8Array.of(9, 8) })).toEqual(Uint8Array.of(0, 9, 8));
    expect(encodeResponse({ kind: "rejected", code: "bad" })).toEqual(concatBytes(Uint8Array.of(1), utf8("bad")));
    for (const frame of [
      { kind: "ok", response: Uint8Array.of(1, 2, 3) },
      { kind: "rejected", code: "malformed_height" },
      { kind: "refused", code: "rate_limited" },
      { kind: "failed", code: "handler_error" },
    ] as const) {
      expect(decodeResponse(encodeResponse(frame))).toEqual(frame);
    }
  });

  it("treats malformed frames as undefined and sanitizes codes", () => {
    expect(decodeResponse(new Uint8Array(0))).toBeUndefined();
    expect(decodeResponse(Uint8Array.of(7))).toBeUndefined();
    expect(decodeResponse(concatBytes(Uint8Array.of(1), new Uint8Array(MAX_CODE_BYTES + 1)))).toBeUndefined();
    expect(decodeResponse(concatBytes(Uint8Array.of(2), utf8("a b\n")))).toEqual({ kind: "refused", code: "a_b_" });
    expect(encodeResponse({ kind: "failed", code: "x".repeat(500) }).length).toBe(1 + MAX_CODE_BYTES);
  });
});

describe("peer keys", () => {
  it("accepts the 32-byte seed and the equivalent 64-byte form, with the same peer id", () => {
    const seed = generatePeerKey();
    expect(seed.length).toBe(32);
    const full = privateKeyFromBytes(seed).raw;
    expect(full.length).toBe(64);
    expect(bytesEqual(full.subarray(0, 32), seed)).toBe(true);
    expect(peerIdFromPrivateKey(full)).toBe(peerIdFromPrivateKey(seed));
    expect(peerIdFromPrivateKey(seed)).toMatch(/^12D3KooW/);
    expect(peerIdFromPrivateKey(generatePeerKey())).not.toBe(peerIdFromPrivateKey(seed));
  });

  it("rejects wrong lengths and a 64-byte key whose public half does not match", () => {
    expect(() => peerIdFromPrivateKey(new Uint8Array(31))).toThrow(NetworkError);
    const bad = new Uint8Array(privateKeyFromBytes(generatePeerKey()).raw);
    bad[40] = (bad[40] ?? 0) ^ 1;
    expect(() => peerIdFromPrivateKey(bad)).toThrow(/does not match/);
  });
});
