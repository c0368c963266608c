import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, createReadStream, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { bytes } from '../../src/cli/args.js';
import { formatRecord } from '../../src/core/log.js';
import { LineSplitter, type Line } from '../../src/logs/line-splitter.js';
import { checkLogDir, defaultLogDir } from '../../src/logs/log-dir.js';
import { LogFile } from '../../src/logs/log-file.js';
import { ServiceLog } from '../../src/logs/service-log.js';
import { follow, lastLines } from '../../src/logs/log-tail.js';
import { jsonObject, LineTagger, type LineTags } from '../../src/logs/tagged-line.js';
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

describe('tagged lines', () => {
  const tags: LineTags = { generation: 3, worker: 1, pid: 4242, stream: 'stdout' };
  const tagger = new LineTagger(tags);
  /** What the master writes for one line of the app's: one JSON text, as the file and a JSON stdout get it. */
  const tag = (text: string): string => {
    const object = jsonObject(text);
    return object ? tagger.json(text, object) : JSON.stringify(tagger.plain(text, false));
  };

  test("a pino line is spliced, not re-encoded: graft's tags first, then the app's text unchanged; its pid (the worker's) once", () => {
    const pino = '{"level":30,"time":1764916800000,"pid":4242,"hostname":"h","req":{"q":"a \\"b\\" \\u2028 \\\\"},"msg":"served"}';
    const out = tag(pino);
    assert.equal(out, '{"generation":3,"worker":1,"stream":"stdout",' + pino.slice(1));
    assert.deepEqual(JSON.parse(out), { generation: 3, worker: 1, stream: 'stdout', ...(JSON.parse(pino) as object) });
  });

  test("an object without a time or a pid gets the master's time and the pid tag", () => {
    const out = JSON.parse(tag('{"msg":"hi","n":1}')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ['generation', 'worker', 'pid', 'stream', 'time', 'msg', 'n']);
    assert.equal(out.pid, 4242);
    assert.match(String(out.time), /^\d{4}-\d\d-\d\dT/);
  });

  test('an empty object, with or without blanks, comes out as the tags alone', () => {
    for (const empty of ['{}', '{ }', '{\t }']) {
      const out = JSON.parse(tag(empty)) as Record<string, unknown>;
      assert.deepEqual(Object.keys(out), ['generation', 'worker', 'pid', 'stream', 'time'], empty);
    }
  });

  test('a line that starts with { and is not one JSON object is wrapped whole in msg, as valid JSON', () => {
    for (const text of ['{', '{not json}', '{"a":1}{"b":2}', '{"open":"}', '{"a":1,}', '{"a":1} ', ' {"a":1}', '{"a":01}', '[1]', '{"a":"\u0000"}x', '{"a":"\u0001"}', 'plain']) {
      assert.equal(jsonObject(text), undefined, text);
      const out = JSON.parse(tag(text)) as Record<string, unknown>;
      assert.deepEqual({ msg: out.msg, generation: out.generation, pid: out.pid, stream: out.stream }, { msg: text, generation: 3, pid: 4242, stream: 'stdout' }, text);
    }
  });

  test("an app key that a tag uses: the tag stays true at the top level, the app's value is kept as app_<key>", () => {
    const out = JSON.parse(tag('{"generation":"blue","pid":7,"app_pid":"taken","worker":1,"msg":"x"}')) as Record<string, unknown>;
    assert.deepEqual(out.generation, 3);
    assert.deepEqual(out.pid, 4242);
    assert.deepEqual(out.worker, 1, 'the same value is written once');
    assert.deepEqual(
      { app_generation: out.app_generation, app_pid: out.app_pid, app_app_pid: out.app_app_pid, app_worker: out.app_worker, msg: out.msg },
      { app_generation: 'blue', app_pid: 'taken', app_app_pid: 7, app_worker: undefined, msg: 'x' },
    );
    // A key written with an escape is the same key.
    const escaped = JSON.parse(tag('{"p\\u0069d":7,"msg":"x"}')) as Record<string, unknown>;
    assert.deepEqual({ pid: escaped.pid, app_pid: escaped.app_pid }, { pid: 4242, app_pid: 7 });
    // An app's __proto__ key stays a key of the line, never a prototype.
    const proto = tag('{"__proto__":{"polluted":true},"stream":"mine"}');
    assert.match(proto, /"__proto__":\{"polluted":true\}/);
    assert.equal((JSON.parse(proto) as Record<string, unknown>).app_stream, 'mine');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("on a terminal an app's JSON line is its msg and its other keys", () => {
    const record = tagger.record(jsonObject('{"level":30,"time":1764916800123,"pid":4242,"msg":"served","ms":4}')!);
    assert.equal(formatRecord(record, true), '06:40:00.123 OUT   [g3 #1 4242] served level=30 ms=4\n');
    assert.equal(formatRecord(tagger.plain('plain text', false), true).slice(12), ' OUT   [g3 #1 4242] plain text\n');
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
    const { file, seen, stop, done } = await following('old\nhalf', 1);
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

describe('two masters on one log file (graft upgrade)', () => {
  test('while one master renames the files, the other finds the rotation lock taken and leaves the file to it: no file renamed over another, no line lost', async () => {
    const dir = tempDir();
    const path = join(dir, 'api.log');
    // A long chain of rotated files: a rotation is many renames, one after another.
    const kept = 300;
    for (let i = 1; i <= kept; i++) writeFileSync(`${path}.${i}`, `kept-${i}\n`);
    const said: string[] = [];
    const options = { maxBytes: 1024, maxFiles: 1000, onError: (m: string) => said.push(m), onRemoved: (m: string) => said.push(m) };
    const one = new LogFile(path, options);
    const other = new LogFile(path, options);
    try {
      one.write(`one-${'x'.repeat(2000)}\n`);
      // The first master's rotation has begun (its first rename is the oldest file's)...
      while (!existsSync(`${path}.${kept + 1}`)) await new Promise((r) => setImmediate(r));
      assert.ok(existsSync(`${path}.rotating`) && existsSync(path), 'the rotation was still under way');
      // ...when the other's batch too finds the file past the size.
      other.write(`other-${'y'.repeat(2000)}\n`);
      await other.drained();
      await one.drained();
      one.write('one-after\n');
      other.write('other-after\n');
      await one.drained();
      await other.drained();
    } finally {
      await one.close();
      await other.close();
    }
    assert.deepEqual(said, [], 'no file failed or seemed removed');
    const names = readdirSync(dir);
    assert.ok(!names.includes('api.log.rotating'), 'the lock was let go');
    const text = names.map((f) => readFileSync(join(dir, f), 'utf8')).join('');
    const lines = text.split('\n').filter(Boolean).map((l) => l.replace(/-[xy]+$/, ''));
    const expected = [...Array.from({ length: kept }, (_, i) => `kept-${i + 1}`), 'one', 'other', 'one-after', 'other-after'];
    assert.deepEqual(lines.sort(), expected.sort(), 'every line in exactly one file');
    const indexes = names.filter((n) => n !== 'api.log').map((n) => Number(n.slice('api.log.'.length))).sort((a, b) => a - b);
    assert.deepEqual(indexes, Array.from({ length: indexes.length }, (_, i) => i + 1), 'the rotated files are numbered without a gap');
    assert.equal(readFileSync(`${path}.${kept + 1}`, 'utf8'), 'kept-300\n', 'rotated once: every kept file moved up by one');
  });

  test('a master rotates the file its own batch fills past the size, whichever master it is', async () => {
    const dir = tempDir();
    const path = join(dir, 'api.log');
    const said: string[] = [];
    const options = { maxBytes: 1024, maxFiles: 10, onError: (m: string) => said.push(m), onRemoved: (m: string) => said.push(m) };
    const idle = new LogFile(path, options);
    const writer = new LogFile(path, options);
    try {
      writer.write(`first-${'x'.repeat(2000)}\n`);
      await writer.drained();
      writer.write('second\n');
      await writer.drained();
    } finally {
      await idle.close();
      await writer.close();
    }
    assert.deepEqual(said, []);
    assert.match(readFileSync(`${path}.1`, 'utf8'), /^first-x+\n$/);
    assert.equal(readFileSync(path, 'utf8'), 'second\n');
  });
});

describe("a stop and the workers' last lines", () => {
  test('lines held back while a slow disk catches up are waited for, however long it takes: none lost', async () => {
    const dir = tempDir();
    // The log "file" is a FIFO the test reads: the disk is exactly as slow as the test makes it.
    const path = join(dir, 'slow.log');
    execFileSync('mkfifo', [path]);
    const reader = createReadStream(path);
    reader.pause();
    const got: Buffer[] = [];
    reader.on('data', (c) => got.push(Buffer.from(c)));
    const readerDone = new Promise<void>((r) => reader.on('end', () => r()));
    const log = new ServiceLog({ kind: 'file', file: path, maxBytes: 2 ** 30, maxFiles: 2 });
    const source = new PassThrough();
    log.attach({ generation: 1, index: 0, pid: 4242 }, source, undefined);
    // 3 MB from a worker that then exits: more than may wait in memory, so its pipe is held back.
    const count = 20_000;
    for (let i = 0; i < count; i++) source.write(`line ${i} ${'x'.repeat(140)}\n`);
    source.end();
    while (!source.isPaused()) await new Promise((r) => setImmediate(r));
    const closed = log.close();
    // The disk stalls for longer than a stop waits for a quiet pipe, then catches up.
    await new Promise((r) => setTimeout(r, 1500));
    reader.resume();
    await closed;
    await readerDone;
    const lines = Buffer.concat(got).toString('utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, count, 'every line reached the file');
    assert.equal((JSON.parse(lines.at(-1)!) as { msg: string }).msg, `line ${count - 1} ${'x'.repeat(140)}`);
  });
});

describe("a worker's last lines", () => {
  test('a worker exits only once what it printed has left it, however late the master reads its pipe', async () => {
    const lines = 4000;
    const script = `
      import { exitFlushed } from ${JSON.stringify(new URL('../../src/worker/exit.ts', import.meta.url).href)};
      for (let i = 0; i < ${lines}; i++) process.stdout.write('line ' + i + ' ${'x'.repeat(200)}\\n');
      exitFlushed(3);
    `;
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit') as Promise<[number | null]>;
    const ended = once(child.stdout, 'end');
    // The master reads late: the pipe fills, and the rest waits in the worker.
    child.stdout.pause();
    await new Promise((r) => setTimeout(r, 500));
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stdout.resume();
    const [code] = await exited;
    await ended;
    const got = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
    assert.equal(code, 3, 'the exit code is kept');
    assert.equal(got.length, lines, 'every line reached the reader');
    assert.match(got.at(-1)!, new RegExp(`^line ${lines - 1} `));
  });
});

describe('follow under rotation', () => {
  test("graft's writer in another process rotating often, its renames running while the follower lists the files: every line once, in order", async () => {
    const { file, seen, stop, done } = await following('', 0);
    // A rotation every 4 or 5 lines, each renaming every file so far (up to a few hundred) one at a time, in a master of its own.
    const count = 800;
    const script = `
      import { LogFile } from ${JSON.stringify(new URL('../../src/logs/log-file.ts', import.meta.url).href)};
      const writer = new LogFile(${JSON.stringify(file)}, { maxBytes: 64, maxFiles: 1000, onError: (m) => { throw new Error(m); }, onRemoved: (m) => { throw new Error(m); } });
      for (let i = 0; i < ${count}; i++) {
        writer.write('line ' + i + '\\n');
        await new Promise((r) => setImmediate(r));
      }
      await writer.close();
    `;
    const writer = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'inherit'] });
    const [code] = (await once(writer, 'exit')) as [number | null];
    assert.equal(code, 0);
    await waitUntil(() => seen.includes(`line ${count - 1}`)).catch(() => {});
    stop.abort();
    await done;
    const missing = Array.from({ length: count }, (_, i) => `line ${i}`).filter((l) => !seen.includes(l));
    assert.deepEqual(missing, [], 'no line skipped');
    assert.deepEqual(seen, Array.from({ length: count }, (_, i) => `line ${i}`));
  });

  test('a writer rotating the logrotate way (every file renamed) while the follower reads: every line once, in order', async () => {
    const { file, seen, stop, done } = await following('', 0);
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

/** A log file holding `text`, and a follower of it from its last `lines` lines on: what it printed, and how to stop it. */
async function following(text: string, lines: number) {
  const file = join(tempDir(), 'api.log');
  writeFileSync(file, text);
  const { position } = await lastLines(file, lines);
  const seen: string[] = [];
  const stop = new AbortController();
  const done = follow(file, position, (l) => seen.push(l), stop.signal);
  return { file, seen, stop, done };
}

async function waitUntil(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
