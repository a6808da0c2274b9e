import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: integration tests spawn processes and open sockets; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default', './tests/support/summaryReporter.ts'],
  },
});
