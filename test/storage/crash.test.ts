// Crash consistency with a real process: a child (crash-child.ts) commits heights and saves a safety record after
// each, printing every height once both writes resolved; it is killed with SIGKILL at a random moment. Reopening must
// show every printed height and nothing torn: each height 1..head has its block, certificate (which verifies), hash
// index and set index; nothing exists above the head; the next validator set and the safety record match what the
// child computed. Three kill/reopen rounds run on the same directory, so the child also resumes from a crashed store.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCertificate } from "../../consensus/certificate.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { nextHeightValidatorSet } from "../../consensus/validator-set.ts";
import { blstScheme } from "../../src/crypto/blst.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";
import { blockAt, changesAfter, GENESIS_HASH, hashOf, safetyRecordAt, setAt, testNet } from "./fixtures.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Heights each child signs up front, so that its loop is (almost) only the store's writes. */
const CHILD_HEIGHTS = 150;
const net = testNet();
let dir: string;

interface ChildRun {
  readonly openedAtHead: number;
  readonly lastPrinted: number;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/**
 * Runs the child until it has printed `killAtLine` heights, waits `killAfterMs` (a height's writes take 1-3 ms, so
 * the kill lands at a random point of the next commit or safety write), then SIGKILLs it.
 */
function runAndKill(killAtLine: number, killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(ROOT, "bin/run.mjs"), join(ROOT, "test/storage/crash-child.ts"), dir, String(CHILD_HEIGHTS)],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let pending = "";
    let stderr = "";
    let openedAtHead = -1;
    let lastPrinted = -1;
    let printed = 0;
    let killTimer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child printed no height within 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("open ")) openedAtHead = Number(line.slice(5));
        else {
          lastPrinted = Number(line);
          printed++;
        }
        if (printed >= killAtLine && killTimer === undefined) {
          killTimer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        }
      }
    });
    child.on("error", reject);
    // "close" (not "exit"): every byte the child wrote before dying has been read by then.
    child.on("close", (_code, signal) => {
      clearTimeout(guard);
      if (killTimer !== undefined) clearTimeout(killTimer);
      resolve({ openedAtHead, lastPrinted, signal, stderr });
    });
  });
}

/**
 * Checks every height of the store, what lies above the head, the next validator set and the safety record.
 * Certificates are verified (BLS) from `verifyFrom` on: lower heights were verified in an earlier round.
 */
async function verifyStore(store: ChainStore, verifyFrom: number): Promise<void> {
  const head = store.headHeight;
  let set: ValidatorSet = net.genesis;
  for (let h = 1; h <= head; h++) {
    const block = await store.getBlock(h);
    expect(block, `block ${h}`).toEqual(blockAt(h));
    const hash = hashOf(blockAt(h));
    const cert = await store.getCertificate(h);
    if (cert === undefined) throw new Error(`height ${h} <= head ${head} has no certificate`);
    expect(cert.height).toBe(h);
    expect(cert.blockHash).toBe(hash);
    expect(await store.getBlockByHash(hash)).toEqual({ height: h, block: blockAt(h) });
    expect(await store.validatorSetIdAt(h)).toBe(set.id);
    const members = await store.getValidatorSet(set.id);
    if (members === undefined) throw new Error(`set ${set.id} of height ${h} is not stored`);
    if (h >= verifyFrom) {
      expect(verifyCertificate(cert, members, { scheme: blstScheme }).ok, `certificate ${h}`).toBe(true);
    }
    set = nextHeightValidatorSet(set, changesAfter(net, h));
  }
  expect(store.headHash()).toBe(head === 0 ? null : hashOf(blockAt(head)));
  // Nothing above the head: a commit is all or nothing.
  expect(await store.getBlock(head + 1)).toBeUndefined();
  expect(await store.getCertificate(head + 1)).toBeUndefined();
  expect(await store.getBlockByHash(hashOf(blockAt(head + 1)))).toBeUndefined();
  expect(store.validatorSetFor(head + 1)).toEqual(set);
  expect((await store.getRange(1, 10_000, 1 << 30)).length).toBe(head);

  const safety = await store.loadSafety();
  if (head > 0) {
    if (safety === null) throw new Error("no safety record after commits");
    // Saved after each commit: either the one for head + 1, or the kill came between commit and save.
    expect([head, head + 1]).toContain(safety.height);
    expect(safety).toEqual(safetyRecordAt(net, setAt(net, safety.height), safety.height));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dcn-crash-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("crash consistency", () => {
  it("keeps every printed height and tears nothing across three SIGKILLs at random moments", async () => {
    let previousHead = 0;
    for (let round = 0; round < 3; round++) {
      const killAtLine = 1 + Math.floor(Math.random() * (CHILD_HEIGHTS - 30));
      const killAfterMs = Math.random() * 3;
      const run = await runAndKill(killAtLine, killAfterMs);
      const context =
        `round ${round}, killed ${killAfterMs.toFixed(2)} ms after printed height #${killAtLine}, ` +
        `last printed ${run.lastPrinted}; stderr: ${run.stderr}`;
      expect(run.signal, context).toBe("SIGKILL");
      expect(run.openedAtHead, context).toBe(previousHead);
      expect(run.lastPrinted, context).toBeGreaterThan(previousHead);

      const store = await ChainStore.open(dir, { genesisHash: GENESIS_HASH, genesisValidatorSet: net.genesis });
      try {
        expect(store.headHeight, context).toBeGreaterThanOrEqual(run.lastPrinted);
        const safety = await store.loadSafety();
        expect(safety?.height, context).toBeGreaterThan(run.lastPrinted);
        await verifyStore(store, previousHead + 1);
        previousHead = store.headHeight;
      } finally {
        await store.close();
      }
    }
    expect(previousHead).toBeGreaterThan(3);
  }, 60_000);
});
