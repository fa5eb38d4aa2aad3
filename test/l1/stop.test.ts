// A stopping node waits for its L1 passes in flight before it closes the store (src/node/node.ts, stop()): each task's
// idle() resolves only when the pass has ended, and a pass that fails after stop() is reported at debug as cut short,
// not as a failure. The batcher stands for the three tasks (batcher, output proposer, derivation), built alike.
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { Registry } from "prom-client";
import type { PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import { Batcher, createFinalityMetrics, type InboxReader } from "../../src/l1/batcher.ts";
import type { L1Sender } from "../../src/l1/sender.ts";

describe("stopping the batcher", () => {
  it("keeps idle() pending until the pass in flight ends, and reports that pass as cut short", async () => {
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    let fail: (error: Error) => void = () => {};
    // The L1 read the pass starts with hangs until the test fails it, as a read does when the store closes under it.
    const reader = {
      postedHeight: () =>
        new Promise<never>((_, reject) => {
          fail = reject;
        }),
    } as unknown as InboxReader;
    const batcher = new Batcher(
      {
        batchMinBlocks: 8,
        batchMaxAgeMs: 1_000,
        staggerMs: 1_000,
        pollMs: 3_600_000,
        transport: "calldata",
        batchesPerTurn: 4,
      },
      {
        chainId: 4242n,
        inbox: "0x00000000000000000000000000000000000000b1",
        reader,
        client: {} as PublicClient,
        store: { headHeight: 0 } as never,
        sender: {} as L1Sender,
        ownAddress: "0x00000000000000000000000000000000000000a1",
        log,
        metrics: createFinalityMetrics(new Registry()),
        nowMs: () => Date.now(),
      },
    );
    expect(await Promise.race([batcher.idle().then(() => "idle"), sleep(20, "busy")])).toBe("idle");

    batcher.start();
    const pass = batcher.tick();
    batcher.stop();
    expect(await Promise.race([batcher.idle().then(() => "idle"), sleep(50, "busy")])).toBe("busy");

    fail(new Error("the chain store is closed"));
    await pass;
    expect(await Promise.race([batcher.idle().then(() => "idle"), sleep(20, "busy")])).toBe("idle");
    expect(lines.map((l) => l.msg)).toContain("batcher pass cut short: the node is stopping");
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    // Stopped: no further pass starts.
    await batcher.tick();
    expect(lines.filter((l) => l.msg.includes("batcher pass"))).toHaveLength(1);
  });
});
