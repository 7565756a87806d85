import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites start real daemons; two cores, so keep file parallelism modest.
    maxWorkers: 2,
    env: { RUSTFS_KMS_NATIVE_TEST_HOOKS: '1' },
  },
});
