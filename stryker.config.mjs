// Mutation testing (npm run test:mutation): does the unit suite fail when the code it
// covers is changed? Scope: the shared core, the worker's drain, the config snapshot.
// The score and the mutants that live are in test/mutation/RESULTS.md (scripts/mutation-results.ts).
import { readdirSync } from 'node:fs';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  tap: {
    // Not the swap layer's and the Apollo source's own tests: they run 8 to 10 s, and each mutant of the
    // slot or the reconnect loop they happen to reach would run them to a timeout; the scope has its own tests.
    testFiles: readdirSync('test/unit')
      .filter((f) => f.endsWith('.test.ts') && !['swappable.test.ts', 'apollo.test.ts'].includes(f))
      .map((f) => `test/unit/${f}`),
    // TAP, which the runner reads (Node's default reporter is spec).
    nodeArgs: ['-r', '{{hookFile}}', '--test-reporter=tap', '--import', 'tsx', '{{testFile}}'],
    forceBail: true,
  },
  coverageAnalysis: 'perTest',
  // Message and log text is not behavior: a changed word in an error sentence is no defect the
  // unit tests should catch (the integration tests match the sentences users see).
  mutator: { excludedMutations: ['StringLiteral'] },
  // src/core/ but its error catalog, its logger and the IPC message shapes: every test file loads
  // those, so each of their mutants would run the whole unit suite.
  mutate: [
    'src/core/**/*.ts',
    '!src/core/errors.ts',
    '!src/core/log.ts',
    '!src/core/ipc.ts',
    'src/worker/http-drain.ts',
    'src/worker/lingering-close.ts',
    'src/worker/h2-drain.ts',
    'src/worker/event-stream-drain.ts',
    'src/worker/grpc-call-drain.ts',
    'src/worker/websocket-drain.ts',
    'src/worker/drain-hooks.ts',
    'src/worker/stream-end.ts',
    'src/config/snapshot.ts',
  ],
  // Not copied into Stryker's sandbox: nothing a unit test reads.
  ignorePatterns: ['dist', 'examples', 'docs', '.cache', '.graft', 'reports'],
  concurrency: 2,
  // Later runs retest only mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  // A mutant that makes a test hang counts as found (timed out) once it runs this much past the test's usual time.
  timeoutMS: 2000,
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.cache/stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: null },
};
