import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "consensus/**/*.test.ts", "src/**/*.test.ts", "p2p/**/*.test.ts"],
    setupFiles: ["./src/polyfill.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
