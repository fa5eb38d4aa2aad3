// A validator whose disk fills up, as `dcn start` processes: validator-3's data directory is a tmpfs mount shrunk to
// just above what it holds while the subnet runs. It must stop with an error that says the disk is full (exit 1),
// sign nothing it cannot persist, and, given space again, restart from its disk and catch up: no evidence against
// it, one chain on every node. Needs root to mount (the CI runs as root); skipped with a message elsewhere.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpRpc } from "../../src/bench/rpc.ts";
import { Cluster } from "./cluster.ts";

function mountUnavailable(): string | null {
  if (process.platform !== "linux") return `tmpfs mounts need Linux (this is ${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "mounting a tmpfs needs root";
  const probe = mkdtempSync(join(tmpdir(), "dcn-mount-probe-"));
  try {
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe], { encoding: "utf8" });
    if (r.error !== undefined) return `mount is not available: ${r.error.message}`;
    if (r.status !== 0) return `mount -t tmpfs failed: ${r.stderr.trim()}`;
    spawnSync("umount", [probe]);
    return null;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const unavailable = mountUnavailable();
if (unavailable !== null) console.warn(`test/e2e/disk-full skipped: ${unavailable}`);

function mount(dir: string, options: string): void {
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mount ${options} ${dir}: ${r.stderr}`);
}

function remount(dir: string, sizeBytes: number): void {
  const r = spawnSync("mount", ["-o", `remount,size=${sizeBytes}`, dir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`remount ${dir} to ${sizeBytes} bytes: ${r.stderr}`);
}

function usedBytes(dir: string): number {
  const s = statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

describe.skipIf(unavailable !== null)("a validator whose disk fills up", () => {
  let cluster: Cluster;
  let dataDir = "";
  let mounted = false;
  const all = ["validator-0", "validator-1", "validator-2", "validator-3"];
  const others = all.slice(0, 3);

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 4, replicas: 0 });
    dataDir = join(cluster.node("validator-3").dir, "data");
    mkdirSync(dataDir, { recursive: true });
    mount(dataDir, "size=256m");
    mounted = true;
  });

  afterAll(async () => {
    // close() stops the nodes, then fails to remove the mount point; the mount gone, the directory goes.
    await cluster?.close().catch(() => undefined);
    if (mounted) spawnSync("umount", ["-l", dataDir]);
    if (cluster !== undefined && process.env.DCN_KEEP_E2E !== "1") {
      await rm(cluster.plan.dir, { recursive: true, force: true });
    }
  });

  it("stops with a disk-full error, signs nothing it cannot keep; given space, restarts and catches up", async () => {
    for (const name of all) cluster.start(name);
    await cluster.waitForHeight(all, 5, 60_000);
    // Room for a few more writes only.
    remount(dataDir, Math.ceil((usedBytes(dataDir) + 256 * 1024) / 4096) * 4096);
    await cluster.waitFor("validator-3 to stop", async () => !cluster.running("validator-3"), 90_000);
    const ended = await cluster.stop("validator-3");
    const log = () => readFileSync(join(cluster.node("validator-3").dir, "node.log"), "utf8");
    const diskFull = () =>
      log()
        .split("\n")
        .filter((l) => l.includes("the disk holding the data directory"));
    expect(ended, log().split("\n").slice(-20).join("\n")).toEqual({ code: 1, signal: null });
    expect(diskFull()).toHaveLength(1);
    // The commit batch or the safety record's write (before a vote leaves), whichever came first.
    const first = JSON.parse(diskFull()[0] ?? "{}") as { level: string; err: { type: string } };
    expect(first.level).toBe("fatal");
    expect(["StorageError", "DriverError"]).toContain(first.err.type);
    expect(diskFull()[0]).toMatch(/No space left on device/);

    // Started again on the full disk: the same error, at once or at its first write.
    cluster.start("validator-3");
    await cluster.waitFor("validator-3 to stop again", async () => !cluster.running("validator-3"), 60_000);
    expect(await cluster.stop("validator-3")).toEqual({ code: 1, signal: null });
    expect(diskFull()).toHaveLength(2);

    // The others go on with three of four.
    const stoppedAt = await cluster.height("validator-0");
    await cluster.waitForHeight(others, stoppedAt + 5, 60_000);

    remount(dataDir, 256 * 1024 * 1024);
    cluster.start("validator-3");
    const top = Math.max(...(await Promise.all(others.map((n) => cluster.height(n)))));
    await cluster.waitForHeight(all, top + 3, 90_000);

    for (const name of all) {
      expect(await cluster.metric(name, "dcn_consensus_evidence_total"), name).toBe(0);
    }
    const rpcs = all.map((n) => new HttpRpc(cluster.node(n).rpc, { connections: 1 }));
    const head = Math.min(...(await Promise.all(all.map((n) => cluster.height(n)))));
    for (let h = 1; h <= head; h++) {
      const hashes = await Promise.all(
        rpcs.map(
          async (r) =>
            ((await r.call("eth_getBlockByNumber", [`0x${h.toString(16)}`, false])) as { hash: string }).hash,
        ),
      );
      expect(new Set(hashes).size, `height ${h}: ${hashes.join(" ")}`).toBe(1);
    }
  }, 240_000);
});
