import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, startGraft, tempDir, waitFor } from '../helpers/graft.js';

describe('reload triggers', () => {
  test('SIGHUP reloads', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      g.child.kill('SIGHUP');
      const committed = await g.waitForLog((l) => l.msg === 'reload: generation committed' && l.generation === 2);
      assert.equal(committed.previous, 1);
      assert.equal((await (await fetch(g.url)).text()).trim(), '2');
    } finally {
      await g.stop();
    }
  });

  test('--watch reloads when a source file changes, and a broken save keeps the old code serving', async () => {
    const dir = tempDir();
    const entry = join(dir, 'app.mts');
    const source = (text: string) => `import { createServer } from 'node:http';\ncreateServer((q, s) => s.end(${JSON.stringify(text)})).listen(Number(process.env.PORT));\n`;
    writeFileSync(entry, source('one'));
    const g = await startGraft(entry, { workers: 1, args: ['--watch'], cwd: dir });
    try {
      await g.waitRunning();
      await g.waitForLog((l) => l.msg === 'watching for code changes');
      assert.equal(await (await fetch(g.url)).text(), 'one');
      writeFileSync(entry, source('two'));
      await waitFor(async () => (await (await fetch(g.url)).text()) === 'two', 15_000, 'the new code to serve');
      const requested = g.logs.find((l) => l.msg === 'reload requested' && l.reason === 'watch');
      assert.deepEqual(requested?.files, [entry]);
      writeFileSync(entry, 'this is not javascript(');
      await g.waitForLog((l) => l.msg.startsWith('reload: generation rejected'), 15_000);
      assert.equal(await (await fetch(g.url)).text(), 'two');
      assert.match(readFileSync(entry, 'utf8'), /not javascript/);
    } finally {
      await g.stop();
    }
  });

  test('a worker that does not drain within --graceful-timeout is killed', async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'ok');
    const g = await startGraft(fixture('mode-app.ts'), { workers: 1, env: { MODE_FILE: mode }, args: ['--graceful-timeout', '0.5'] });
    try {
      await g.waitRunning();
      // A request never released: only the graceful timeout can retire its worker.
      const slow = fetch(`${g.url}/held/never`).then(
        () => 'answered',
        () => 'failed',
      );
      await g.held('never');
      const r = await g.cli('reload');
      assert.equal(r.code, 0);
      const killed = await g.waitForLog((l) => l.msg === 'worker killed after the graceful timeout');
      assert.equal(killed.generation, 1);
      assert.equal(await slow, 'failed');
    } finally {
      await g.stop();
    }
  });
});
