// The RPC's `finalized` tag from L1 (src/l1/outputs.ts FinalizedTracker) through an endpoint that keeps only its 8
// newest states, as a resumed anvil or an ordinary full node with a long-lagging finalized block would: the read of
// latestOutput() at the finalized block fails, and the output list at the latest block gives the same answer.
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFinalityMetrics } from "../../src/l1/batcher.ts";
import { FinalizedTracker, latestOutputHeight, outputHeightAtBlock } from "../../src/l1/outputs.ts";
import {
  certifyHeader,
  type FinalityChain,
  proposal,
  startFinalityChain,
  testHeader,
} from "../staking/finality-fixture.ts";

let chain: FinalityChain;

beforeAll(async () => {
  chain = await startFinalityChain({}, ["--prune-history", "8"]);
}, 120_000);
afterAll(async () => {
  await chain?.stop();
});

describe("FinalizedTracker", () => {
  it("reads the finalized output from the output list when the finalized block's state is gone", async () => {
    const oracle = chain.finality.addresses.outputOracle;
    const propose = async (height: number) => {
      const h = testHeader(height, await chain.setIdOf(1n));
      const receipt = await chain.mined(
        chain.finality.outputOracle.write.proposeOutput(
          proposal(1n, h, 0, certifyHeader(h, 0, chain.setKeys, [0, 1, 2])),
          chain.gov,
        ),
      );
      return receipt.blockNumber;
    };
    const before = await chain.publicClient.getBlockNumber();
    const first = await propose(5);
    const second = await propose(10);
    await chain.testClient.mine({ blocks: 80 });
    const third = await propose(15);
    await chain.testClient.mine({ blocks: 2 });
    const finalized = (await chain.publicClient.getBlock({ blockTag: "finalized" })).number;
    // The first two outputs are final, the third is not.
    expect(second).toBeLessThanOrEqual(finalized);
    expect(third).toBeGreaterThan(finalized);
    // The state of the finalized block is gone from this endpoint.
    await expect(latestOutputHeight(chain.publicClient, oracle, { blockTag: "finalized" })).rejects.toThrow();

    expect(await outputHeightAtBlock(chain.publicClient, oracle, before)).toBe(0);
    expect(await outputHeightAtBlock(chain.publicClient, oracle, first)).toBe(5);
    expect(await outputHeightAtBlock(chain.publicClient, oracle, second)).toBe(10);
    expect(await outputHeightAtBlock(chain.publicClient, oracle, third)).toBe(15);

    const registry = new Registry();
    const tracker = new FinalizedTracker({
      oracle,
      client: chain.publicClient,
      pollMs: 60_000,
      log: pino({ level: "silent" }),
      metrics: createFinalityMetrics(registry),
    });
    await tracker.poll();
    expect(tracker.finalizedHeight).toBe(10);
    expect((await registry.getSingleMetric("dcn_finalized_height")?.get())?.values[0]?.value).toBe(10);
  });
});
