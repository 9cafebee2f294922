import { defineConfig } from "vitest/config";

/**
 * Three tiers, one vitest project each (CONTRIBUTING.md, "Tests"):
 * - unit: pure code in this process (files in temporary folders allowed, no sockets, no child
 *   processes, no waiting on the wall clock); the quick loop, `npm run test:unit`.
 * - runtime: real processes and sockets on loopback: the CLI, the runtime, end-to-end runs.
 * - tools: our output against outside tools (docker-compose, systemd, podman, chromium, the
 *   language server, shellcheck).
 * `npm test` runs all three. Timeouts are generous everywhere: a slow machine makes a test slow,
 * never red. A unit test slower than the threshold is reported, not failed.
 */
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], slowTestThreshold: 1_000, testTimeout: 120_000, hookTimeout: 120_000 },
      },
      {
        extends: true,
        test: { name: "runtime", include: ["test/runtime/**/*.test.ts"], slowTestThreshold: 15_000, testTimeout: 300_000, hookTimeout: 300_000 },
      },
      {
        extends: true,
        test: { name: "tools", include: ["test/tools/**/*.test.ts"], slowTestThreshold: 30_000, testTimeout: 600_000, hookTimeout: 600_000 },
      },
    ],
  },
});
