// The dependency direction is checked, not just documented: consensus/ is pure (runs in browsers, no I/O), the light
// client (src/light-client/) runs in browsers too, and p2p/ never imports the node (src/).
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^"']*?from\s+["']([^"']+)["']/g)].map((m) => m[1] ?? "");
}

describe("layering", () => {
  it("consensus/ imports only itself and pure libraries (@noble/*)", () => {
    const bad: string[] = [];
    for (const file of sources("consensus")) {
      for (const spec of imports(file)) {
        const ok =
          spec.startsWith("@noble/") ||
          (spec.startsWith(".") && !relative("consensus", join(file, "..", spec)).startsWith(".."));
        if (!ok) bad.push(`${file} imports ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("consensus/ uses no clock, randomness or timers", () => {
    const bad: string[] = [];
    for (const file of sources("consensus")) {
      const text = readFileSync(join(ROOT, file), "utf8").replace(/\/\/.*$/gm, "");
      for (const banned of [
        "Date.now",
        "new Date(",
        "Math.random",
        "setTimeout",
        "setInterval",
        "performance.now",
        "crypto.getRandomValues",
      ]) {
        if (text.includes(banned)) bad.push(`${file} uses ${banned}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("src/light-client/ runs in browsers: imports only consensus/, pure src/chain/ modules and pure libraries", () => {
    const pureLibraries = new Set(["@ethereumjs/mpt", "@ethereumjs/rlp", "@ethereumjs/util"]);
    const allowedModules = [
      "src/light-client/",
      "consensus/",
      "src/chain/block.ts",
      "src/chain/ordered-trie.ts",
      "src/chain/rlp.ts",
    ];
    const bad: string[] = [];
    for (const file of [
      ...sources("src/light-client"),
      "src/chain/block.ts",
      "src/chain/ordered-trie.ts",
      "src/chain/rlp.ts",
    ]) {
      for (const spec of imports(file)) {
        const target = spec.startsWith(".") ? relative(ROOT, join(ROOT, file, "..", spec)) : null;
        const ok =
          spec.startsWith("@noble/") ||
          pureLibraries.has(spec) ||
          (target !== null && allowedModules.some((m) => target === m || target.startsWith(m)));
        if (!ok) bad.push(`${file} imports ${spec}`);
      }
      const text = readFileSync(join(ROOT, file), "utf8").replace(/\/\/.*$/gm, "");
      for (const banned of ["Buffer", "process.", "require(", "node:", "__dirname", "import.meta.url"]) {
        if (text.includes(banned)) bad.push(`${file} uses ${banned}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("p2p/ does not import src/", () => {
    const bad = sources("p2p").flatMap((file) =>
      imports(file)
        .filter((spec) => spec.startsWith(".") && relative(ROOT, join(ROOT, file, "..", spec)).startsWith("src"))
        .map((spec) => `${file} imports ${spec}`),
    );
    expect(bad).toEqual([]);
  });
});
