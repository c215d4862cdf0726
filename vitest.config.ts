import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration files start DynamoDB Local (a JVM) and drive real clients: generous limits,
    // and no more files at once than these two-core machines can carry.
    testTimeout: 300_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
  },
});
