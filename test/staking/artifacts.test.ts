// staking-contracts/artifacts.ts is generated (npm run build:contracts) and committed: these tests fail when it no
// longer matches the Solidity sources, the compiler, the settings or OpenZeppelin, the way a generated file is checked.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { INPUTS_HASH, SOLC_VERSION } from "../../staking-contracts/artifacts.ts";
import { ARTIFACTS_PATH, buildArtifactsSource, inputsHash } from "../../staking-contracts/build.ts";

const FIX = "staking-contracts/artifacts.ts is stale: run `npm run build:contracts` and commit the result";

describe("staking-contracts/artifacts.ts", () => {
  it("records the hash of the current sources, compiler, settings and OpenZeppelin version", () => {
    expect(INPUTS_HASH, FIX).toBe(inputsHash());
  });

  it("is byte for byte what a rebuild produces", () => {
    const rebuilt = buildArtifactsSource();
    expect(rebuilt.includes(SOLC_VERSION)).toBe(true);
    expect(rebuilt === readFileSync(ARTIFACTS_PATH, "utf8"), FIX).toBe(true);
  });
});
