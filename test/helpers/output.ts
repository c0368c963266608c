import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, type TestContext } from 'node:test';
import { setLogSink } from '../../src/core/log.js';

/**
 * What the processes of a test print (graft's JSON log lines, the app's
 * output) and what graft code running in the test process logs goes to a file
 * per test, shown only when the test fails. Lines printed between tests (a
 * `before` hook starting a service) go to the next test's file. Every file and
 * folder made here is removed when the test process exits.
 */
const folders: string[] = [];
process.on('exit', () => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder, removed when the test process exits. */
export function tempDir(prefix = 'graft-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  folders.push(dir);
  return dir;
}

const outputDir = tempDir('graft-test-output-');
let current: string | undefined;
let between: string[] = [];
let counter = 0;

/** One line of output from `source` (a pid, `cli`, `in-process`). */
export function record(source: string, line: string): void {
  const text = `[${source}] ${line.replace(/\n$/, '')}\n`;
  if (current) appendFileSync(current, text);
  else between.push(text);
}

setLogSink((line) => record('in-process', line));

const SHOWN = 300;

beforeEach((t) => {
  current = join(outputDir, `${++counter}-${t.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.log`);
  appendFileSync(current, between.join(''));
  between = [];
});

/** `passed` is there at run time (Node 20.12+) but not in @types/node 20. */
type Finished = TestContext & { readonly passed: boolean };

afterEach((context) => {
  const t = context as Finished;
  const file = current;
  current = undefined;
  if (!file) return;
  if (!t.passed) {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    t.diagnostic(`output of this test's processes (${lines.length} lines${lines.length > SHOWN ? `, the last ${SHOWN} shown` : ''}):`);
    for (const line of lines.slice(-SHOWN)) t.diagnostic(line);
  }
  rmSync(file, { force: true });
});
