// Locating and running anvil, shared by `dcn devnet` and the tests: the npm package first, then PATH, and a message
// naming the way out when neither exists; a busy port is refused instead of probing someone else's process; the
// state file makes a restart resume the chain; an anvil left by a killed devnet is recognised and stopped.
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEVNET_L1_HINTS } from "../../src/cli/devnet.ts";
import {
  AnvilError,
  findAnvil,
  freePort,
  jsonRpc,
  requireAnvil,
  startAnvil,
  stopLeftoverAnvil,
} from "../../src/l1/anvil.ts";

const dir = mkdtempSync(join(tmpdir(), "dcn-anvil-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("findAnvil", () => {
  it("prefers the npm package, falls back to PATH, and returns null when neither has it", () => {
    const fromPackage = findAnvil({ PATH: "" });
    expect(fromPackage).toMatch(/@foundry-rs\/anvil-linux-amd64\/bin\/anvil$/);

    const bin = join(dir, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "anvil"), "#!/bin/sh\n");
    chmodSync(join(bin, "anvil"), 0o755);
    const missing = () => {
      throw new Error("Cannot find module");
    };
    expect(findAnvil({ PATH: `/nonexistent:${bin}` }, missing)).toBe(join(bin, "anvil"));
    expect(findAnvil({ PATH: "/nonexistent" }, missing)).toBeNull();
  });

  it("names the package and the --l1 way out when anvil is missing", () => {
    let error: unknown;
    try {
      requireAnvil(DEVNET_L1_HINTS.notFound, () => null);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AnvilError);
    expect((error as AnvilError).code).toBe("not_found");
    expect((error as AnvilError).message).toMatch(/@foundry-rs\/anvil-linux-amd64 is missing.*dcn devnet --l1 URL/);
  });
});

describe("startAnvil", () => {
  it("refuses a port something else listens on instead of taking that process for anvil", async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    try {
      const error = await startAnvil({ port, chainId: 31_337n, hints: DEVNET_L1_HINTS }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AnvilError);
      expect((error as AnvilError).code).toBe("port_in_use");
      expect((error as AnvilError).message).toContain(`127.0.0.1:${port} is in use`);
      expect((error as AnvilError).message).toContain("--l1-port");
    } finally {
      server.close();
    }
  });

  it("keeps the chain in the state file: a restart resumes at the same block", async () => {
    const statePath = join(dir, "state.json");
    const first = await startAnvil({ port: 0, chainId: 31_337n, statePath, args: ["--silent"] });
    for (let i = 0; i < 3; i++) await jsonRpc(first.url, "evm_mine", [], 2_000);
    expect(Number(await jsonRpc<string>(first.url, "eth_blockNumber", [], 2_000))).toBe(3);
    await first.stop();
    expect(alive(first.pid)).toBe(false);
    expect(existsSync(statePath)).toBe(true);

    const second = await startAnvil({ port: 0, chainId: 31_337n, statePath, args: ["--silent"] });
    try {
      expect(Number(await jsonRpc<string>(second.url, "eth_blockNumber", [], 2_000))).toBe(3);
    } finally {
      await second.stop();
    }
  });
});

describe("stopLeftoverAnvil", () => {
  it("stops the anvil named by a pid file when its command line names the state file, and nothing else", async () => {
    const statePath = join(dir, "leftover-state.json");
    const pidFile = join(dir, "anvil.pid");
    const bin = findAnvil();
    if (bin === null) throw new Error("anvil is not installed");
    const port = await freePort();
    // Detached and unreferenced, like the anvil of a devnet that was killed outright.
    const orphan = spawn(bin, ["--host", "127.0.0.1", "--port", String(port), "--state", statePath, "--silent"], {
      stdio: "ignore",
      detached: true,
    });
    const pid = orphan.pid ?? 0;
    writeFileSync(pidFile, `${pid}\n`);
    try {
      expect(await stopLeftoverAnvil(pidFile, join(dir, "another-state.json"))).toBeNull();
      expect(alive(pid)).toBe(true);
      expect(await stopLeftoverAnvil(pidFile, statePath)).toBe(pid);
      await new Promise((r) => setTimeout(r, 100)); // reaped by our child handle
      expect(alive(pid)).toBe(false);
      expect(await stopLeftoverAnvil(pidFile, statePath)).toBeNull(); // already gone
    } finally {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});
