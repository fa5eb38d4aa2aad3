// A validator whose clock is off, as `dcn start` processes with libfaketime shifting one node's wall clock (its
// monotonic clock, which timers use, is left alone). Behind by 8 s, every block looks early to it (the bound is 5 s):
// it votes nil on them, follows through the certificates and names its own clock as the culprit, and nobody is
// scored down or banned (before, it banned every proposer within a few heights and stopped for good). Ahead by 8 s,
// its blocks are refused as early by the others, who name its clock; the subnet commits without it as proposer.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex } from "../../consensus/bytes.ts";
import { validatorAddress } from "../../consensus/validator-set.ts";
import { Cluster } from "./cluster.ts";

/** Debian's libfaketime (packages faketime and libfaketime; .ci/run installs them). */
const LIBFAKETIME = (existsSync("/usr/lib") ? readdirSync("/usr/lib") : [])
  .map((dir) => join("/usr/lib", dir, "faketime", "libfaketime.so.1"))
  .find((p) => existsSync(p));
if (LIBFAKETIME === undefined) {
  // .ci/run installs it and sets DCN_REQUIRE_FAKETIME: there a missing library is a failure, not a skip.
  if (process.env.DCN_REQUIRE_FAKETIME === "1") throw new Error("libfaketime is required (Debian package libfaketime)");
  console.warn("test/e2e/clock-skew skipped: libfaketime is not installed (Debian package libfaketime)");
}

/** The environment that shifts a node's wall clock by `seconds` (e.g. "-8", "+8"). */
function skewed(seconds: string): Record<string, string> {
  return { LD_PRELOAD: LIBFAKETIME ?? "", FAKETIME: seconds, FAKETIME_DONT_FAKE_MONOTONIC: "1" };
}

describe.skipIf(LIBFAKETIME === undefined)("a validator whose clock is off", () => {
  let cluster: Cluster;
  const all = ["validator-0", "validator-1", "validator-2", "validator-3"];
  const others = all.slice(0, 3);
  const log = (name: string) => readFileSync(join(cluster.node(name).dir, "node.log"), "utf8");
  const lines = (name: string, fragment: string) =>
    log(name)
      .split("\n")
      .filter((l) => l.includes(fragment));

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 4, replicas: 0 });
  });

  afterAll(async () => {
    await cluster?.close();
  });

  it("8 s behind: it follows, votes nil on early blocks, names its own clock; nobody is banned", async () => {
    for (const name of others) cluster.start(name);
    cluster.start("validator-3", skewed("-8"));
    await cluster.waitForHeight(all, 2, 60_000);
    await cluster.waitFor(
      "validator-3 to name its clock",
      async () => lines("validator-3", "this node's clock is").length > 0,
      60_000,
    );
    const top = Math.max(...(await Promise.all(all.map((n) => cluster.height(n)))));
    await cluster.waitForHeight(all, top + 30, 60_000);

    const error = JSON.parse(lines("validator-3", "this node's clock is")[0] ?? "{}") as {
      level: string;
      offsetMs: number;
      proposers: number;
      msg: string;
    };
    expect(error.level).toBe("error");
    expect(error.msg).toMatch(/this node's clock is [789]\.\d s behind the other validators'/);
    expect(error.offsetMs).toBeGreaterThan(-9_000);
    expect(error.offsetMs).toBeLessThan(-7_000);
    expect(error.proposers).toBeGreaterThanOrEqual(2);
    const offset = await cluster.metric("validator-3", "dcn_consensus_clock_offset_seconds");
    expect(offset).toBeGreaterThan(-9);
    expect(offset).toBeLessThan(-7);
    expect(
      await cluster.metric("validator-3", "dcn_consensus_invalid_blocks_total", ['code="timestamp_in_future"']),
    ).toBeGreaterThan(0);
    for (const name of others) {
      const o = await cluster.metric(name, "dcn_consensus_clock_offset_seconds");
      expect(Math.abs(o), `${name}'s own offset`).toBeLessThan(1);
    }
    for (const name of all) {
      expect(lines(name, "peer banned"), name).toEqual([]);
      expect(lines(name, "scoring down the proposer"), name).toEqual([]);
      expect((await cluster.status(name))?.peers.length, `${name}'s peers`).toBe(3);
    }
  }, 150_000);

  it("8 s ahead: its blocks are refused as early, the others name its clock, the subnet goes on", async () => {
    await cluster.stop("validator-3");
    // The others may have named its clock already, 8 s behind: its first blocks, stamped above the genesis time, were.
    const named = (n: string) => lines(n, `the clock of validator ${address} is`).filter((l) => l.includes("ahead"));
    const address = validatorAddress(fromHex(cluster.node("validator-3").identity.blsPublicKey));
    const invalidBefore = await Promise.all(
      others.map((n) => cluster.metric(n, "dcn_consensus_invalid_blocks_total", ['code="timestamp_in_future"'])),
    );
    cluster.start("validator-3", skewed("+8"));
    await cluster.waitFor(
      "the others to name validator-3's clock",
      async () => others.every((n) => named(n).length > 0),
      90_000,
    );
    const top = Math.max(...(await Promise.all(all.map((n) => cluster.height(n)))));
    await cluster.waitForHeight(all, top + 10, 60_000);

    for (const [k, name] of others.entries()) {
      const warn = JSON.parse(named(name)[0] ?? "{}") as {
        offsetMs: number;
        comparedWith: number;
        msg: string;
      };
      expect(warn.msg, name).toMatch(/is [789]\.\d s ahead of the other proposers'/);
      expect(warn.comparedWith, name).toBe(2);
      expect(
        await cluster.metric(name, "dcn_consensus_invalid_blocks_total", ['code="timestamp_in_future"']),
        name,
      ).toBeGreaterThan(invalidBefore[k] ?? 0);
      const seen = await cluster.metric(name, "dcn_consensus_proposer_clock_offset_seconds", [
        `validator="${address}"`,
      ]);
      expect(seen, name).toBeGreaterThan(7);
      expect(seen, name).toBeLessThan(9);
    }
    await cluster.waitFor(
      "validator-3 to name its own clock",
      async () => lines("validator-3", "s ahead of the other validators'").length > 0,
      30_000,
    );
    for (const name of all) {
      expect(lines(name, "peer banned"), name).toEqual([]);
      expect(lines(name, "scoring down the proposer"), name).toEqual([]);
    }
  }, 150_000);
});
