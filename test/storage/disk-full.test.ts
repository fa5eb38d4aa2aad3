import { describe, expect, it } from "vitest";
import { isDiskFull, StorageError } from "../../src/storage/errors.ts";

describe("isDiskFull", () => {
  it("finds ENOSPC or LevelDB's message anywhere in the cause chain, and nothing else", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    expect(isDiskFull(enospc)).toBe(true);
    const level = new Error("IO error: /data/000012.log: No space left on device");
    const wrapped = new StorageError("io", "cannot write the commit batch", { cause: level });
    expect(isDiskFull(new Error("consensus driver stopped", { cause: wrapped }))).toBe(true);
    expect(
      isDiskFull(new StorageError("io", "cannot write", { cause: new Error("IO error: Permission denied") })),
    ).toBe(false);
    expect(isDiskFull("No space left on device")).toBe(false);
    expect(isDiskFull(undefined)).toBe(false);
  });
});
