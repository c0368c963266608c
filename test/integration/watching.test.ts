import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, root, startGraft, tempDir, tsxImport, waitFor, startWithConfigFile } from '../helpers/graft.js';

const get = async (url: string) => (await fetch(url)).text();
const applied = (l: { msg: string; role?: unknown }) => l.msg === 'config applied' && l.role === 'master';

describe('config watching survives what editors and platforms do', () => {
  test('atomic rename saves, delete and recreate, one event burst per save', async () => {
    const { g, file } = await startWithConfigFile(fixture('config-app.ts'), 'greeting: one\n', { workers: 1 });
    try {
      await g.waitRunning();
      // vim / VS Code: write a temp file, rename it over the original.
      writeFileSync(`${file}.tmp`, 'greeting: renamed\n');
      renameSync(`${file}.tmp`, file);
      await waitFor(async () => (await get(g.url)).endsWith('renamed\n'), 10_000, 'the renamed file to apply');
      // delete and recreate before the quiet period ends: one change, no rejection
      const from = g.logs.length;
      unlinkSync(file);
      writeFileSync(file, 'greeting: recreated\n');
      await waitFor(async () => (await get(g.url)).endsWith('recreated\n'), 10_000, 'the recreated file to apply');
      // one plain save (truncate + write: several inotify events) is one change
      const before = g.logs.filter(applied).length;
      writeFileSync(file, 'greeting: saved once\n');
      await waitFor(async () => (await get(g.url)).endsWith('saved once\n'), 10_000, 'the save to apply');
      // A second save is a barrier: anything the first save still caused is logged before it applies.
      writeFileSync(file, 'greeting: barrier\n');
      await waitFor(async () => (await get(g.url)).endsWith('barrier\n'), 10_000, 'the barrier save to apply');
      assert.equal(g.logs.filter(applied).length, before + 2, 'one save, one change');
      assert.equal(g.logs.slice(from).filter((l) => l.msg.startsWith('config change rejected')).length, 0);
    } finally {
      await g.stop();
    }
  });

  test("a Kubernetes ConfigMap's ..data symlink swap", async () => {
    const dir = tempDir();
    const mount = join(dir, 'config');
    mkdirSync(join(mount, '..2026_11_22_1'), { recursive: true });
    writeFileSync(join(mount, '..2026_11_22_1', 'app.yaml'), 'greeting: first\n');
    symlinkSync('..2026_11_22_1', join(mount, '..data'));
    symlinkSync('..data/app.yaml', join(mount, 'app.yaml'));
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', join(mount, 'app.yaml')] });
    try {
      await g.waitRunning();
      assert.equal(await get(g.url), '1 first\n');
      // What the kubelet does: a new timestamped dir, a new ..data_tmp link, renamed over ..data.
      mkdirSync(join(mount, '..2026_11_22_2'));
      writeFileSync(join(mount, '..2026_11_22_2', 'app.yaml'), 'greeting: second\n');
      symlinkSync('..2026_11_22_2', join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
      await waitFor(async () => (await get(g.url)) === '2 second\n', 10_000, 'the swapped ConfigMap to apply');
    } finally {
      await g.stop();
    }
  });
});

describe('watching reacts to its own files and to changed content only', () => {
  test("graft's log in the config file's directory and a bad edit: one rejection, nothing burned by unchanged content", async () => {
    // The default layout: graft.config.yaml in the working directory, `graft start app.ts > graft.log 2>&1` beside it.
    const dir = tempDir();
    const file = join(dir, 'graft.config.yaml');
    const logFile = join(dir, 'graft.log');
    writeFileSync(file, 'greeting: one\n');
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, cwd: dir });
    g.child.stderr!.on('data', (chunk: Buffer) => appendFileSync(logFile, chunk));
    try {
      await g.waitRunning();
      const rejections = () => g.logs.filter((l) => l.msg.startsWith('config change rejected'));
      writeFileSync(file, 'greeting: [unclosed\n');
      await g.waitForLog((l) => l.msg.startsWith('config change rejected'));
      // The same broken bytes saved again, and files that are not the config: nothing to report, no version made.
      writeFileSync(file, 'greeting: [unclosed\n');
      for (let i = 0; i < 20; i++) writeFileSync(join(dir, `other-${i}.txt`), `unrelated ${i}\n`);
      writeFileSync(file, 'greeting: two\n');
      // The rejected attempt was version 2 (its history entry says so); the fix is the next one.
      await waitFor(async () => (await get(g.url)) === '3 two\n', 10_000, 'the fixed file to apply as version 3');
      // Unchanged content rewritten, then a barrier change: version 4, not more.
      writeFileSync(file, 'greeting: two\n');
      writeFileSync(file, 'greeting: three\n');
      await waitFor(async () => (await get(g.url)) === '4 three\n', 10_000, 'the barrier change to apply as version 4');
      assert.equal(rejections().length, 1, `one rejection for one broken content; got ${rejections().length}`);
      const history = await g.cli('config', 'history', '--json');
      assert.equal(history.code, 0, history.stderr);
      const entries = JSON.parse(history.stdout) as Array<{ version: number; accepted: boolean }>;
      assert.deepEqual(
        entries.map((e) => [e.version, e.accepted]),
        [
          [1, true],
          [2, false],
          [3, true],
          [4, true],
        ],
        'every accepted version is kept, the one rejection is recorded once',
      );
    } finally {
      await g.stop();
    }
  });
});

describe('config without a master', () => {
  test('a plain node process that imports graft loads, validates and watches by itself', async () => {
    const dir = tempDir();
    const file = join(dir, 'app.json');
    writeFileSync(file, '{"greeting":"hi"}');
    const child = spawn(process.execPath, ['--import', tsxImport, fixture('standalone-app.mts')], {
      cwd: root,
      env: { ...process.env, GRAFT_CONFIG: file, GRAFT_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: Array<Record<string, unknown>> = [];
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      for (const line of c.split('\n').filter(Boolean)) events.push(JSON.parse(line) as Record<string, unknown>);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    try {
      await waitFor(() => events.length > 0, 10_000, 'the app to start');
      assert.deepEqual(events[0], { event: 'start', current: { greeting: 'hi', db: { pool: 1 } }, version: 1 });
      writeFileSync(file, '{"greeting":"hello"}');
      await waitFor(() => events.some((e) => e.event === 'greeting'), 10_000, 'the greeting listener');
      assert.deepEqual(events[1], { event: 'greeting', next: 'hello', prev: 'hi', version: 2 });
      writeFileSync(file, '{"greeting":"hello","db":{"pool":"many"}}');
      await waitFor(() => stderr.includes('config change rejected'), 10_000, 'the rejection');
      assert.match(stderr, /db\.pool/);
      writeFileSync(file, '{"greeting":"hello","db":{"pool":4}}');
      await waitFor(() => events.some((e) => e.event === 'db'), 10_000, 'the db listener');
      assert.deepEqual(events.at(-1), { event: 'db', next: { pool: 4 }, version: 3 });
      assert.equal(events.filter((e) => e.event === 'greeting').length, 1, 'listeners run once per change that touches them');
    } finally {
      child.kill();
    }
  });
});

describe('job workers', () => {
  test('iterations run on the current snapshot; a change applies from the next one, or aborts the running one', async () => {
    const dir = tempDir();
    const file = join(dir, 'jobs.yaml');
    writeFileSync(file, 'job:\n  name: a\n  everyMs: 50\n  workMs: 50\n');
    const g = await startGraft(join(root, 'examples/jobs/worker.ts'), { workers: 1, args: ['--config', file] });
    try {
      await g.waitRunning();
      await waitFor(() => g.output.some((l) => l.includes('job a iteration 2 on config v1')), 10_000, 'iterations on v1');
      writeFileSync(file, 'job:\n  name: b\n  everyMs: 50\n  workMs: 50\n');
      await waitFor(() => g.output.some((l) => /job b iteration \d+ on config v2/.test(l)), 10_000, 'iterations on v2');
      const firstB = g.output.findIndex((l) => l.includes('job b iteration'));
      assert.ok(!g.output.slice(firstB).some((l) => l.includes('job a iteration')), 'no iteration on the old snapshot after the change');
      // abort mode: a long iteration is cut short by the next change
      writeFileSync(file, 'job:\n  name: c\n  everyMs: 50\n  workMs: 60000\n  onChange: abort\n');
      await g.cli('reload'); // onChange is read when the loop starts
      await waitFor(() => g.output.some((l) => /job c iteration \d+ on config v3/.test(l)), 15_000, 'a long iteration on v3');
      writeFileSync(file, 'job:\n  name: d\n  everyMs: 50\n  workMs: 60000\n  onChange: abort\n');
      await waitFor(() => g.output.some((l) => /job c iteration \d+ aborted/.test(l)), 10_000, 'the running iteration to be aborted');
      await waitFor(() => g.output.some((l) => /job d iteration \d+ on config v4/.test(l)), 10_000, 'the next iteration on v4');
      const stopped = await g.cli('stop');
      assert.equal(stopped.code, 0, stopped.stderr);
    } finally {
      await g.stop();
    }
  });
});
