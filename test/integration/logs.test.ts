import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { logFiles } from '../../src/logs/log-dir.js';
import { record } from '../helpers/output.js';
import { fixture, graftCli, graftCommand, onlyGeneration, startGraft, tempDir, waitFor, type CliResult, oneLineError } from '../helpers/graft.js';

interface Line {
  msg: string;
  stream?: 'stdout' | 'stderr';
  generation?: number;
  worker?: number;
  pid: number;
  role?: string;
  [key: string]: unknown;
}

/** Every line of a service's log files, oldest file first: what a user's `cat name.log.N … name.log` shows. */
function lines(dir: string, name: string): Line[] {
  return logFiles(join(dir, `${name}.log`)).flatMap((f) => {
    let text: string;
    try {
      text = readFileSync(f.path, 'utf8');
    } catch (err) {
      // Rotated away between the listing and the read (a burst still being written): the caller waits and reads again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);
  });
}

/** The numbers of burst `id`'s lines among `found`, in the order they appear. */
function burst(found: Line[], id: string): number[] {
  return found.filter((l) => l.msg.startsWith(`burst ${id} `)).map((l) => Number(l.msg.split(' ')[2]));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** One `graft: CODE: …` line and nothing else on stderr, and a non-zero exit. */
const oneLine = (r: CliResult, code: string, pattern?: RegExp) => oneLineError(r, code, pattern, { alone: true });

async function say(url: string, path: string): Promise<number> {
  return Number((await (await fetch(`${url}${path}`)).text()).trim());
}

describe('logs', () => {
  test('app lines land in the log file whole, tagged with generation, worker, pid and stream; the tag follows a reload', async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const dir = join(tempDir(), 'logs'); // created by graft
    const g = await startGraft(fixture('talk-app.ts'), { workers: 2, env, args: ['--name', 'talker', '--log-dir', dir] });
    try {
      await g.waitRunning();
      const pid1 = await say(g.url, '/say?text=hello-1');
      const errPid = await say(g.url, '/err?text=oops-1');
      const s1 = await g.status();
      const out = await waitFor(() => lines(dir, 'talker').find((l) => l.msg === 'hello-1'), 10_000, 'hello-1 in the file');
      assert.deepEqual(
        { stream: out.stream, generation: out.generation, worker: out.worker, pid: out.pid },
        { stream: 'stdout', generation: 1, worker: s1.workers.find((w) => w.pid === pid1)!.index, pid: pid1 },
      );
      const err = await waitFor(() => lines(dir, 'talker').find((l) => l.msg === 'oops-1'), 10_000, 'oops-1 in the file');
      assert.deepEqual({ stream: err.stream, generation: err.generation, pid: err.pid }, { stream: 'stderr', generation: 1, pid: errPid });
      // graft's own lines share the file; the app's do not reach the master's terminal.
      assert.ok(lines(dir, 'talker').some((l) => l.role === 'master' && l.msg === 'master running'));
      assert.ok(!g.output.some((l) => l.includes('hello-1') || l.includes('oops-1')));

      assert.equal((await g.cli('reload')).code, 0);
      await onlyGeneration(g, 2);
      const pid2 = await say(g.url, '/say?text=hello-2');
      const out2 = await waitFor(() => lines(dir, 'talker').find((l) => l.msg === 'hello-2'), 10_000, 'hello-2 in the file');
      assert.deepEqual({ generation: out2.generation, pid: out2.pid }, { generation: 2, pid: pid2 });
      // What a worker printed without a newline as it exited is one whole line, tagged like the rest.
      const last = await waitFor(
        () => {
          const found = lines(dir, 'talker').filter((l) => l.msg === 'last words of generation 1');
          return found.length === 2 ? found : undefined;
        },
        10_000,
        'the last words of both generation-1 workers',
      );
      assert.deepEqual(last.map((l) => [l.generation, l.stream]), [
        [1, 'stdout'],
        [1, 'stdout'],
      ]);
      assert.deepEqual(new Set(last.map((l) => l.pid)), new Set(s1.workers.map((w) => w.pid)));
      const table = await g.cli('status');
      assert.match(table.stdout, new RegExp(`^service talker  logs ${join(dir, 'talker.log').replace(/[.]/g, '\\.')} \\(rotated at 10M, 5 files\\)$`, 'm'));
    } finally {
      await g.stop();
    }
    // The master's last lines, and its workers', are in the file once it has exited.
    const all = lines(dir, 'talker');
    assert.ok(all.some((l) => l.msg === 'master stopped'));
    assert.equal(all.filter((l) => l.msg === 'last words of generation 2').length, 2);
  });

  test('rotation by size keeps at most --log-max-files files, and graft logs --lines returns the newest lines in order', async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const dir = tempDir();
    const g = await startGraft(fixture('talk-app.ts'), { workers: 1, env, args: ['--name', 'rotor', '--log-dir', dir, '--log-max-size', '2K', '--log-max-files', '3'] });
    try {
      await g.waitRunning();
      await fetch(`${g.url}/burst?id=r&n=300`);
      await waitFor(() => burst(lines(dir, 'rotor'), 'r').includes(299), 10_000, 'the whole burst in the files');
      const files = logFiles(join(dir, 'rotor.log'));
      assert.deepEqual(
        files.map((f) => f.path),
        [join(dir, 'rotor.log.2'), join(dir, 'rotor.log.1'), join(dir, 'rotor.log')],
      );
      // A file is cut after the line that reaches the size, never inside one.
      for (const f of files) assert.ok(f.size < 2048 + 300, `${f.path} is ${f.size} bytes`);
      const kept = burst(lines(dir, 'rotor'), 'r');
      assert.deepEqual(kept, range(300 - kept.length, 300), 'the files hold the newest lines, in order, oldest deleted');

      // Right after a rotation the live file is nearly empty: ask for no more lines than the files hold.
      const wanted = Math.min(40, lines(dir, 'rotor').length);
      const r = await graftCli(['logs', 'rotor', '--lines', String(wanted)], { env, cwd: tempDir() });
      assert.equal(r.code, 0, r.stderr);
      const printed = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
      assert.equal(printed.length, wanted);
      const numbers = burst(printed, 'r');
      assert.ok(numbers.length >= wanted - 5, `only ${numbers.length} burst lines among the last ${wanted}`);
      assert.deepEqual(numbers, range(300 - numbers.length, 300), 'the newest lines, across the rotated files, in order');
      assert.equal((await graftCli(['logs', 'rotor'], { env })).stdout.trim().split('\n').length, 20, 'the default is 20 lines');
    } finally {
      await g.stop();
    }
    // Read after the master stopped: its files, by directory.
    const stopped = await graftCli(['logs', 'rotor', '--log-dir', dir, '-n', '1'], { env });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal((JSON.parse(stopped.stdout) as Line).msg, 'master stopped');
  });

  test('rotation while graft upgrade hands the file from one master to the next: every line once, whole, and no more files than allowed', async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const dir = tempDir();
    const g = await startGraft(fixture('talk-app.ts'), { workers: 2, env, args: ['--name', 'handed', '--log-dir', dir, '--log-max-size', '16K', '--log-max-files', '400'] });
    try {
      await g.waitRunning();
      // Lines pour in, burst after burst (about 8 KB each: a rotation every other one), for as long as the master is replaced.
      let upgraded = false;
      const upgrade = g.cli('upgrade').finally(() => (upgraded = true));
      const ids: string[] = [];
      while (!upgraded && ids.length < 400) {
        const id = `u${ids.length}`;
        ids.push(id);
        await fetch(`${g.url}/burst?id=${id}&n=50`);
      }
      assert.equal((await upgrade).code, 0);
      ids.push('after');
      await fetch(`${g.url}/burst?id=after&n=50`);
      await waitFor(() => burst(lines(dir, 'handed'), 'after').length === 50, 20_000, 'every line of the burst after the upgrade in the files').catch((err: Error) => {
        const seen = burst(lines(dir, 'handed'), 'after');
        const files = logFiles(join(dir, 'handed.log')).map((f) => `${f.path.slice(dir.length + 1)} ${f.size}`);
        throw new Error(`${err.message}: lines ${JSON.stringify(seen)} of it are there; files: ${files.join(', ')}`);
      });
      assert.ok(ids.length > 3, `only ${ids.length} bursts while the upgrade ran`);
      // Read once nothing writes (a read during a rotation sees files renamed under it).
      await g.stop();
      const all = lines(dir, 'handed');
      for (const id of ids) {
        const seen = burst(all, id);
        assert.deepEqual([...seen].sort((a, b) => a - b), range(0, 50), `burst ${id}: every line once, none lost, none repeated`);
      }
      const files = logFiles(join(dir, 'handed.log'));
      assert.ok(files.length <= 400 && files.length > 2, `${files.length} files`);
      // Rotated by one master at a time (a lock), whichever wrote: none was cut twice into a sliver, and none grew far
      // past the size while only the draining old master's workers wrote (a file ends up to a batch of each past it).
      const holds = (path: string) => {
        const found = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
        return `${found.length} lines from "${found[0]?.msg}" (pid ${found[0]?.pid}) to "${found.at(-1)?.msg}" (pid ${found.at(-1)?.pid})`;
      };
      for (const f of files.slice(0, -1)) {
        assert.ok(f.size >= 16 * 1024 && f.size < 2 * 16 * 1024, `${f.path} is ${f.size} bytes: ${holds(f.path)}`);
      }
    } finally {
      await g.stop();
    }
  });

  test('graft logs --follow prints the lines written after it started, across rotations, none lost or repeated', async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const dir = tempDir();
    const g = await startGraft(fixture('talk-app.ts'), { workers: 1, env, args: ['--name', 'tail', '--log-dir', dir, '--log-max-size', '2K', '--log-max-files', '100'] });
    await g.waitRunning();
    const follower = spawn(process.execPath, [...graftCommand().slice(1), 'logs', 'tail', '--follow', '--lines', '1'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const seen: Line[] = [];
    createInterface({ input: follower.stdout }).on('line', (l) => {
      record('follower', l);
      seen.push(JSON.parse(l) as Line);
    });
    createInterface({ input: follower.stderr }).on('line', (l) => record('follower', l));
    const exited = new Promise<number | null>((resolve) => follower.once('exit', (code) => resolve(code)));
    try {
      // The last line is printed: from here on it follows.
      await waitFor(() => seen.length >= 1, 15_000, 'the follower to print the last line');
      await say(g.url, '/say?text=followed-1');
      await waitFor(() => seen.some((l) => l.msg === 'followed-1'), 10_000, 'the follower to see followed-1');
      const before = logFiles(join(dir, 'tail.log')).length;
      await fetch(`${g.url}/burst?id=f&n=200`);
      await waitFor(() => burst(seen, 'f').includes(199), 15_000, 'the follower to see the whole burst');
      assert.ok(logFiles(join(dir, 'tail.log')).length >= before + 5, 'the file was rotated while it followed');
      assert.deepEqual(burst(seen, 'f'), range(0, 200));
      follower.kill('SIGINT');
      assert.equal(await exited, 0);
    } finally {
      follower.kill('SIGKILL');
      await g.stop();
    }
  });

  test('without --log-dir, app lines go to the master\'s stdout and stderr as tagged JSON lines', async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const g = await startGraft(fixture('talk-app.ts'), { workers: 1, env, args: ['--name', 'plain'] });
    try {
      await g.waitRunning();
      const pid = await say(g.url, '/say?text=to-stdout');
      await say(g.url, '/err?text=to-stderr');
      const out = await waitFor(() => g.output.map((l) => (l.startsWith('{') ? (JSON.parse(l) as Line) : undefined)).find((l) => l?.msg === 'to-stdout'), 10_000, 'the stdout line');
      assert.deepEqual({ stream: out.stream, generation: out.generation, worker: out.worker, pid: out.pid }, { stream: 'stdout', generation: 1, worker: 0, pid });
      const err = await g.waitForLog((r) => r.msg === 'to-stderr');
      assert.deepEqual({ stream: err.stream, generation: err.generation, pid: err.pid }, { stream: 'stderr', generation: 1, pid });
      oneLine(await graftCli(['logs', 'plain'], { env }), 'GRAFT_NO_LOG_FILES', /service plain \(master \d+\) writes no log files: its lines go to the stdout and stderr/);
    } finally {
      await g.stop();
    }
  });

  test("an app's pino lines stay JSON objects in the log file: the app's own fields with graft's tags; other lines are wrapped", async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const dir = tempDir();
    const g = await startGraft(fixture('pino-app.ts'), { workers: 1, env, args: ['--name', 'pinot', '--log-dir', dir] });
    try {
      await g.waitRunning();
      const pid = await say(g.url, '/log?msg=hello-pino');
      const line = await waitFor(() => lines(dir, 'pinot').find((l) => l.msg === 'hello-pino'), 10_000, 'the pino line in the file');
      const { time, hostname, ...rest } = line;
      assert.deepEqual(rest, { generation: 1, worker: 0, pid, stream: 'stdout', level: 30, custom: 'value', reqId: 1, nested: { quote: 'a "b" \\ c' }, msg: 'hello-pino' });
      assert.equal(typeof time, 'number', "pino's own time, kept");
      assert.equal(typeof hostname, 'string');
      // The app's text itself, after graft's tags (pino's pid is the worker's: written once).
      const raw = readFileSync(join(dir, 'pinot.log'), 'utf8').split('\n').find((l) => l.includes('"hello-pino"'))!;
      assert.match(raw, new RegExp(`^\\{"generation":1,"worker":0,"stream":"stdout","level":30,"time":\\d+,"pid":${pid},"hostname":`));

      const errPid = await say(g.url, '/err?msg=warned');
      const err = await waitFor(() => lines(dir, 'pinot').find((l) => l.msg === 'warned'), 10_000, 'the stderr pino line');
      assert.deepEqual({ stream: err.stream, pid: err.pid, level: err.level, custom: err.custom }, { stream: 'stderr', pid: errPid, level: 40, custom: 'on stderr' });

      // The app's own `generation` and `worker` keys: graft's tags stay true, the app's values are kept beside them.
      await say(g.url, '/clash?msg=clashing');
      const clash = await waitFor(() => lines(dir, 'pinot').find((l) => l.msg === 'clashing'), 10_000, 'the clashing line');
      assert.deepEqual(
        { generation: clash.generation, worker: clash.worker, app_generation: clash.app_generation, app_worker: clash.app_worker, level: clash.level },
        { generation: 1, worker: 0, app_generation: 'blue', app_worker: 'w-7', level: 30 },
      );

      // Lines that look like JSON and are not: each is one valid JSON line, the text whole in `msg`.
      const broken = ['{not json}', '{"a":1}{"b":2}', '{"open": "}', '[1,2]', '{'];
      for (const text of broken) await say(g.url, `/broken?text=${encodeURIComponent(text)}`);
      const wrapped = await waitFor(
        () => {
          const found = lines(dir, 'pinot').filter((l) => broken.includes(l.msg));
          return found.length === broken.length ? found : undefined;
        },
        10_000,
        'the broken lines',
      );
      assert.deepEqual(wrapped.map((l) => [l.msg, l.stream, l.pid]), broken.map((t) => [t, 'stdout', pid]));
    } finally {
      await g.stop();
    }
    // Every line of the file is one JSON object (lines() parses each).
    assert.ok(lines(dir, 'pinot').every((l) => typeof l === 'object' && l !== null && !Array.isArray(l)));
  });

  test("without --log-dir, an app's pino line goes to the master's stdout as one JSON object with graft's tags", async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const g = await startGraft(fixture('pino-app.ts'), { workers: 1, env, args: ['--name', 'pinout'] });
    try {
      await g.waitRunning();
      const pid = await say(g.url, '/log?msg=pino-to-stdout');
      const raw = await waitFor(() => g.output.find((l) => l.includes('pino-to-stdout')), 10_000, 'the pino line on stdout');
      const { time, hostname, ...rest } = JSON.parse(raw) as Line;
      assert.deepEqual(rest, { generation: 1, worker: 0, pid, stream: 'stdout', level: 30, custom: 'value', reqId: 1, nested: { quote: 'a "b" \\ c' }, msg: 'pino-to-stdout' });
      assert.equal(typeof time, 'number');
      assert.equal(typeof hostname, 'string');
      await say(g.url, `/broken?text=${encodeURIComponent('{half')}`);
      const broken = await waitFor(() => g.output.find((l) => l.includes('{half')), 10_000, 'the broken line on stdout');
      assert.deepEqual({ msg: (JSON.parse(broken) as Line).msg, stream: (JSON.parse(broken) as Line).stream }, { msg: '{half', stream: 'stdout' });
    } finally {
      await g.stop();
    }
  });

  test('a full disk: the service serves on, graft says so, lines go to stderr meanwhile, and the file takes lines again once there is room', async () => {
    // A 256 KiB filesystem of its own (tmpfs, which needs root, as the namespace tests do).
    const dir = tempDir('graft-full-disk-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
    try {
      const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
      const g = await startGraft(fixture('talk-app.ts'), { workers: 1, env, args: ['--name', 'full', '--log-dir', dir, '--log-max-size', '10M'] });
      try {
        await g.waitRunning();
        // About a megabyte of tagged lines into 256 KiB.
        assert.equal((await fetch(`${g.url}/burst?id=fill&n=6000`)).status, 200);
        const failed = await g.waitForLog((r) => r.code === 'GRAFT_LOG_DIR');
        assert.match(String(failed.error), /ENOSPC/);
        assert.equal((await fetch(`${g.url}/say?text=meanwhile`)).status, 200, 'the service serves on');
        await waitFor(() => g.output.some((l) => l.includes('"msg":"meanwhile"')), 10_000, 'a line written while the disk is full, on stderr');
        // Room again (a user empties the file); after graft's reopen delay, lines reach the file again.
        const file = join(dir, 'full.log');
        truncateSync(file, 0);
        await waitFor(
          async () => {
            await fetch(`${g.url}/say?text=back`);
            return readFileSync(file, 'utf8').includes('"msg":"back"');
          },
          20_000,
          'a line in the log file again',
        );
      } finally {
        await g.stop();
      }
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  test('a log directory removed while serving: graft says so once, makes it again and writes there; the service serves on', async () => {
    const dir = join(tempDir('graft-removed-'), 'logs');
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const g = await startGraft(fixture('talk-app.ts'), { workers: 1, env, args: ['--name', 'gone', '--log-dir', dir] });
    try {
      await g.waitRunning();
      const file = join(dir, 'gone.log');
      assert.equal((await fetch(`${g.url}/say?text=before`)).status, 200);
      await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('"msg":"before"'), 10_000, 'the first line in the file');
      rmSync(dir, { recursive: true, force: true });
      const warned = await g.waitForLog((r) => r.msg === 'log file removed; writing to a new one in its place');
      assert.equal(warned.code, 'GRAFT_LOG_DIR');
      assert.equal(warned.level, 'warn');
      assert.match(String(warned.error), new RegExp(`${file} was removed while graft wrote to it`));
      assert.equal((await fetch(`${g.url}/say?text=after`)).status, 200, 'the service serves on');
      await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('"msg":"after"'), 10_000, 'a line in the new file');
      assert.equal(g.logs.filter((r) => r.msg === 'log file removed; writing to a new one in its place').length, 1, 'said once');
    } finally {
      await g.stop();
    }
  });

  test('a standby master waits without making the log directory or file (made, they would hide one removed under the master in control)', async () => {
    const dir = join(tempDir('graft-standby-'), 'logs');
    // Started the way the keeper starts its standby: the keeper's pid, an IPC channel, GRAFT_STANDBY.
    const standby = spawn(process.execPath, [...graftCommand().slice(1), 'start', fixture('talk-app.ts'), '--name', 'waits', '--log-dir', dir], {
      env: { ...process.env, GRAFT_RUNTIME_DIR: tempDir('graft-rt-'), GRAFT_KEEPER: String(process.pid), GRAFT_STANDBY: '1' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    standby.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => standby.once('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        standby.on('message', (m: { graft?: string }) => m?.graft === 'standby-ready' && resolve());
        void exited.then((code) => reject(new Error(`the standby exited (${code}) before it was ready: ${stderr}`)));
      });
      assert.equal(existsSync(dir), false, 'no log directory made by a standby');
    } finally {
      if (standby.connected) standby.disconnect();
    }
    assert.equal(await exited, 0, 'a standby whose keeper is gone exits');
  });

  test('bad input: an unwritable log directory, bad sizes, an unknown service', async () => {
    const env = { GRAFT_RUNTIME_DIR: tempDir('graft-rt-') };
    const blocker = join(tempDir(), 'a-file');
    writeFileSync(blocker, 'in the way');
    // Under a regular file: no directory can be made there, even by root.
    const g = await startGraft(fixture('talk-app.ts'), { workers: 1, env, args: ['--name', 'nodir', '--log-dir', join(blocker, 'logs')] });
    const exit = await g.exited;
    assert.equal(exit.code, 1);
    const errors = g.output.filter((l) => l.startsWith('graft: '));
    assert.deepEqual(errors, [`graft: GRAFT_LOG_DIR: cannot use ${join(blocker, 'logs')} as the log directory: a file is in the way; pass another --log-dir`]);
    assert.equal(g.logs.filter((r) => r.msg === 'worker started').length, 0);

    const entry = fixture('talk-app.ts');
    oneLine(await graftCli(['start', entry, '--log-dir', tempDir(), '--log-max-size', '10X'], { env }), 'GRAFT_BAD_ARGUMENT', /--log-max-size .*"10X"/);
    oneLine(await graftCli(['start', entry, '--log-dir', tempDir(), '--log-max-size', '12'], { env }), 'GRAFT_BAD_ARGUMENT', /--log-max-size must be a size from 1K/);
    oneLine(await graftCli(['start', entry, '--log-dir', tempDir(), '--log-max-files', '1'], { env }), 'GRAFT_BAD_ARGUMENT', /--log-max-files/);
    oneLine(await graftCli(['start', entry, '--log-max-size', '1M'], { env }), 'GRAFT_BAD_ARGUMENT', /--log-max-size applies to log files: give --log-dir/);
    oneLine(await graftCli(['logs', 'nosuch'], { env }), 'GRAFT_NO_SERVICE', /nosuch/);
    oneLine(await graftCli(['logs', 'nosuch', '--log-dir', tempDir()], { env }), 'GRAFT_NO_SERVICE', /nosuch\.log does not exist/);
    oneLine(await graftCli(['logs', 'x', '--lines', 'many'], { env }), 'GRAFT_BAD_ARGUMENT', /--lines/);
  });
});
