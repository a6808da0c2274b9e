import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Test files that share worker processes (isolate: false): each runs in a process that earlier
 * files of this list ran in, with their modules already loaded. A fresh process per file costs
 * about a second of start and imports; over these ~115 files that was a minute of the suite's
 * two workers. They may, because none leaves the process changed: what a test sets on `process`
 * (an env variable, a listener) it restores, it patches no module, and it closes what it opens.
 * Checked by running them all in one run without isolation, in three orders (two shuffled), with
 * the same results as isolated. A new file here must keep that rule; one that cannot (a browser,
 * Node-RED's process-wide singleton, a gateway process left running) belongs in the isolated project.
 */
const SHARED = [
  'tests/{config,control,controlPipeline,log,lorawan,modbus,profiles,report,sim,store}/*.test.ts',
  // the firmware unit tests; e2e/ runs gateway processes and stays isolated
  'tests/firmware/*.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: integration tests spawn processes and open sockets; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default', './tests/support/summaryReporter.ts'],
    projects: [
      { extends: true, test: { name: 'isolated', include: ['tests/**/*.test.ts'], exclude: [...configDefaults.exclude, ...SHARED] } },
      { extends: true, test: { name: 'shared', include: SHARED, isolate: false } },
    ],
  },
});
