import { defineConfig } from "vitest/config";

// Unit tests (`*.test.ts`) are pure and run in parallel; integration tests (`*.integration.test.ts`) share one
// real Kafka broker (and each its own ClickHouse data dir) and run one file at a time (`--no-file-parallelism` in
// the test:integration script). Fault tests (`test/faults/**/*.faults.test.ts`, `npm run test:faults`) kill services,
// stop the broker and fail ClickHouse writes on purpose; they run one file at a time, on demand, not in `npm test`.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts"],
          // A few unit tests run the built CLI as a process: on a busy 2-core machine that takes seconds.
          testTimeout: 30_000,
          exclude: ["**/*.integration.test.ts", "**/node_modules/**", "**/dist/**"],
        },
      },
      {
        test: {
          name: "integration",
          include: [
            "packages/*/src/**/*.integration.test.ts",
            "services/*/src/**/*.integration.test.ts",
            "test/**/*.integration.test.ts",
          ],
          exclude: ["**/node_modules/**", "**/dist/**"],
          globalSetup: ["test/harness/global-setup.ts"],
          setupFiles: ["test/harness/setup.ts"],
          // Webhook receivers of the tests listen on 127.0.0.1 over plain http: local development's setting.
          env: { USAGE_WEBHOOK_ALLOW_PRIVATE: "true" },
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: "faults",
          include: ["test/faults/**/*.faults.test.ts"],
          exclude: ["**/node_modules/**", "**/dist/**"],
          globalSetup: ["test/harness/global-setup.ts"],
          setupFiles: ["test/harness/setup.ts"],
          env: { USAGE_WEBHOOK_ALLOW_PRIVATE: "true" },
          testTimeout: 420_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
