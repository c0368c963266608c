import assert from 'node:assert/strict';
import { renameSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { bytes } from '../../src/cli/args.js';
import { LineSplitter, type Line } from '../../src/logs/line-splitter.js';
import { checkLogDir, defaultLogDir } from '../../src/logs/log-dir.js';
import { follow, lastLines } from '../../src/logs/log-tail.js';
import { tempDir } from '../helpers/output.js';

function split(chunks: Array<string | Buffer>, max?: number): Line[] {
  const out: Line[] = [];
  const s = new LineSplitter((l) => out.push(l), max);
  for (const c of chunks) s.push(c);
  s.end();
  return out;
}

describe('line splitter', () => {
  test('emits a line only once its newline arrived, whatever the chunks', () => {
    assert.deepEqual(
      split(['a', 'b\nc', 'd\r\n', '\n', 'tail']).map((l) => l.text),
      ['ab', 'cd', '', 'tail'],
    );
  });

  test('a UTF-8 character cut between two chunks stays whole', () => {
    const bytes = Buffer.from('héllo\n');
    assert.deepEqual(
      split([bytes.subarray(0, 2), bytes.subarray(2)]).map((l) => l.text),
      ['héllo'],
    );
  });

  test('a line longer than the bound is cut into marked pieces', () => {
    assert.deepEqual(split(['abcdefg\n'], 3), [
      { text: 'abc', partial: true },
      { text: 'def', partial: true },
      { text: 'g', partial: false },
    ]);
  });
});

describe('sizes', () => {
  test('K, M and G are powers of 1024; a trailing B or iB is allowed', () => {
    assert.equal(bytes('--s', '10M', 1, 2 ** 40), 10 * 1024 * 1024);
    assert.equal(bytes('--s', '512k', 1, 2 ** 40), 512 * 1024);
    assert.equal(bytes('--s', '1GiB', 1, 2 ** 40), 1024 ** 3);
    assert.equal(bytes('--s', '300B', 1, 2 ** 40), 300);
    assert.equal(bytes('--s', '4096', 1, 2 ** 40), 4096);
    assert.equal(bytes('--s', '1.5K', 1, 2 ** 40), 1536);
    for (const bad of ['', 'M', '10X', '-1K', '10i', '1T']) {
      assert.throws(() => bytes('--s', bad, 1, 2 ** 40), /GRAFT_BAD_ARGUMENT|must be a size/, bad);
    }
    assert.throws(() => bytes('--s', '12', 1024, 2 ** 40), /from 1K/);
  });
});

describe('log files', () => {
  test('the default directory follows XDG_STATE_HOME', () => {
    const saved = process.env.XDG_STATE_HOME;
    try {
      process.env.XDG_STATE_HOME = '/var/state';
      assert.equal(defaultLogDir(), '/var/state/graft/logs');
      delete process.env.XDG_STATE_HOME;
      assert.match(defaultLogDir(), /\/\.local\/state\/graft\/logs$/);
    } finally {
      if (saved === undefined) delete process.env.XDG_STATE_HOME;
      else process.env.XDG_STATE_HOME = saved;
    }
  });

  test('a directory that cannot be made is GRAFT_LOG_DIR, naming it', () => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, '');
    assert.throws(() => checkLogDir(join(file, 'logs'), 'api'), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'GRAFT_LOG_DIR');
      assert.ok(err.message.includes(join(file, 'logs')));
      return true;
    });
    assert.throws(() => checkLogDir(file, 'api'), /GRAFT_LOG_DIR|a file is in the way/);
  });

  test('the last lines come from the rotated files too, oldest first; a line being written is left out', async () => {
    const dir = tempDir();
    const file = join(dir, 'api.log');
    writeFileSync(`${file}.2`, 'l1\nl2\n');
    writeFileSync(`${file}.1`, 'l3\nl4\n');
    writeFileSync(file, 'l5\nl6\nhalf');
    assert.deepEqual((await lastLines(file, 5)).lines, ['l2', 'l3', 'l4', 'l5', 'l6']);
    assert.deepEqual((await lastLines(file, 100)).lines, ['l1', 'l2', 'l3', 'l4', 'l5', 'l6']);
    const none = await lastLines(file, 0);
    assert.deepEqual(none.lines, []);
    assert.equal(none.position?.offset, 'l5\nl6\n'.length);
  });

  test('follow reads on across a rotation, from where the tail stopped', async () => {
    const dir = tempDir();
    const file = join(dir, 'api.log');
    writeFileSync(file, 'old\nhalf');
    const { position } = await lastLines(file, 1);
    const seen: string[] = [];
    const stop = new AbortController();
    const done = follow(file, position, (l) => seen.push(l), stop.signal);
    appendFileSync(file, ' done\nnext\n');
    // Rotated twice before the follower may have looked: both files are still read, in order.
    renameSync(file, `${file}.1`);
    writeFileSync(file, 'a\n');
    renameSync(`${file}.1`, `${file}.2`);
    renameSync(file, `${file}.1`);
    writeFileSync(file, 'b\n');
    await waitUntil(() => seen.includes('b'));
    appendFileSync(file, 'c\n');
    await waitUntil(() => seen.includes('c'));
    stop.abort();
    await done;
    assert.deepEqual(seen, ['half done', 'next', 'a', 'b', 'c']);
  });
});

describe('follow under rotation', () => {
  test('a writer rotating the logrotate way (every file renamed) while the follower reads: every line once, in order', async () => {
    const dir = tempDir();
    const file = join(dir, 'api.log');
    writeFileSync(file, '');
    const { position } = await lastLines(file, 0);
    const seen: string[] = [];
    const stop = new AbortController();
    const done = follow(file, position, (l) => seen.push(l), stop.signal);
    const rotate = () => {
      for (let i = 100; i >= 1; i--) {
        try {
          renameSync(i === 1 ? file : `${file}.${i - 1}`, `${file}.${i}`);
        } catch {
          // not there yet
        }
      }
      writeFileSync(file, '');
    };
    for (let i = 0; i < 400; i++) {
      appendFileSync(file, `line ${i}\n`);
      if (i % 7 === 6) rotate();
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => seen.includes('line 399'));
    stop.abort();
    await done;
    assert.deepEqual(seen, Array.from({ length: 400 }, (_, i) => `line ${i}`));
  });
});

async function waitUntil(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
