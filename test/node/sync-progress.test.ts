// eth_syncing's source: SyncManager.progress() reports a catch-up while blocks are being fetched towards a height at
// least two ahead of the head, and nothing for the next height alone (ordinary operation fetches that block).
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/node/log.ts";
import { encodeBlocksResponse } from "../../src/node/messages.ts";
import { SyncManager, type SyncNetwork } from "../../src/node/sync.ts";

describe("SyncManager.progress", () => {
  it("tells a catch-up from one missing block, and follows the head while blocks arrive", async () => {
    const store = { headHeight: 5 };
    const answers: ((data: Uint8Array) => void)[] = [];
    const network: SyncNetwork = {
      connectedPeers: () => ["peer-a"],
      request: () => new Promise<Uint8Array>((resolve) => answers.push(resolve)),
      handle: () => undefined,
      report: () => undefined,
    };
    const sync = new SyncManager(
      { chainId: 1n, blocksPerRequest: 16, maxResponseBytes: 1 << 20, requestTimeoutMs: 1_000, fanout: 2 },
      {
        network,
        store: store as never,
        driver: {} as never,
        verifier: {} as never,
        metrics: {} as never,
        log: silentLogger(),
      },
    );
    expect(sync.progress()).toBeNull();
    // The block of the next height only: fetched, but not catching up.
    sync.behind(6, "peer-a");
    expect(answers).toHaveLength(1);
    expect(sync.progress()).toBeNull();
    sync.behind(40, "peer-a");
    expect(sync.progress()).toEqual({ startingBlock: 5, currentBlock: 5, highestBlock: 40 });
    store.headHeight = 21;
    expect(sync.progress()).toEqual({ startingBlock: 5, currentBlock: 21, highestBlock: 40 });
    // The peer has nothing more to give: the run ends, and so does the catch-up.
    answers[0]?.(encodeBlocksResponse([]));
    await expect.poll(() => sync.progress()).toBeNull();
  });
});
