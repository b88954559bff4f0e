import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests, and integration tests that boot real guests under QEMU, mount
// FUSE or start Hadoop. The machine has 2 cores and TCG guests are CPU-bound, so integration files
// run one at a time.
export default defineConfig({
  test: {
    reporters: ['default', './test/harness/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'src/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          globalSetup: ['test/harness/global-setup.ts'],
        },
      },
    ],
  },
});
