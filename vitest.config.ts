import { defineConfig } from "vitest/config";

/**
 * Test files that start subnets of node processes and anvil, or drop packets: their nodes run on wall-clock timeouts.
 * They run one at a time, after the others, which run two at a time: side by side with a subnet, a busy unit test would
 * slow its processes into timeouts on a 2-core machine. The simulators (test/sim) run minutes of consensus on a
 * virtual clock in one process, so they run with the unit tests: the load only makes them take longer.
 */
const SUBNETS = [
  "test/cli/devnet.test.ts",
  "test/cli/devnet-{bridge,derive,membership,rewards}.test.ts",
  "test/e2e/**/*.test.ts",
  "test/faults/**/*.test.ts",
  "test/bench/bench-tool.test.ts",
];

export default defineConfig({
  test: {
    setupFiles: ["./src/polyfill.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/**/*.test.ts", "consensus/**/*.test.ts", "src/**/*.test.ts", "p2p/**/*.test.ts"],
          exclude: SUBNETS,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: "subnets", include: SUBNETS, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
