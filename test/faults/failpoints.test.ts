// DCN_FAILPOINT (src/node/failpoints.ts): the value is parsed strictly, and an armed failpoint kills its own process
// with SIGKILL at the matching point and height, and only there. Runs child processes (no namespaces needed).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { FailpointError, parseFailpoint } from "../../src/node/failpoints.ts";

const FAILPOINTS = fileURLToPath(new URL("../../src/node/failpoints.ts", import.meta.url));

/** Runs calls of failpoint(point, height) in a child with DCN_FAILPOINT=value; returns how it ended and its output. */
function child(value: string, calls: readonly [string, number][]) {
  const body = [
    `const { failpoint } = await import(${JSON.stringify(FAILPOINTS)});`,
    ...calls.map(([p, h]) => `console.log("at ${p} ${h}"); failpoint(${JSON.stringify(p)}, ${h});`),
    // after-prevote kills a little later: give it the time
    "await new Promise((r) => setTimeout(r, 300));",
    'console.log("survived");',
  ].join("\n");
  const res = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "--eval", body], {
    env: { ...process.env, DCN_FAILPOINT: value },
    encoding: "utf8",
    timeout: 20_000,
  });
  return { signal: res.signal, status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe("failpoints", () => {
  it("parses <point>[@<height>] and refuses anything else", () => {
    expect(parseFailpoint(undefined)).toBeNull();
    expect(parseFailpoint("")).toBeNull();
    expect(parseFailpoint("mid-commit")).toEqual({ point: "mid-commit", height: undefined });
    expect(parseFailpoint("after-prevote@12")).toEqual({ point: "after-prevote", height: 12 });
    for (const bad of ["mid_commit", "proposing@", "proposing@0", "proposing@-1", "proposing@1.5", "proposing@1@2"]) {
      expect(() => parseFailpoint(bad), bad).toThrow(FailpointError);
    }
  });

  it("kills its process with SIGKILL at the armed point and height only", () => {
    const hit = child("mid-write@5", [
      ["mid-commit", 5],
      ["mid-write", 4],
      ["mid-write", 5],
      ["mid-write", 6],
    ]);
    expect(hit.signal).toBe("SIGKILL");
    expect(hit.stdout).toContain("at mid-write 5");
    expect(hit.stdout).not.toContain("at mid-write 6");
    expect(hit.stderr).toContain("failpoint mid-write at height 5: SIGKILL");

    const miss = child("proposing@7", [
      ["proposing", 6],
      ["after-prevote", 7],
    ]);
    expect(miss.signal).toBeNull();
    expect(miss.stdout).toContain("survived");
  });

  it("after-prevote and after-precommit let the process run on briefly (the gossip write leaves), then kill it", () => {
    for (const point of ["after-prevote", "after-precommit"] as const) {
      const r = child(point, [[point, 3]]);
      expect(r.signal, point).toBe("SIGKILL");
      expect(r.stdout, point).not.toContain("survived");
      expect(r.stderr, point).toContain(`failpoint ${point} at height 3: SIGKILL`);
    }
    // A precommit point is not a prevote one.
    expect(child("after-precommit@3", [["after-prevote", 3]]).stdout).toContain("survived");
  });
});
