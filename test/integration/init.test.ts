import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { titleOf } from '../../bench/lib/memory.js';
import { builtPackage, fixture, GraftProcess, isAlive, root, startGraft, tempDir } from '../helpers/graft.js';

/**
 * graft under an init-like parent: as PID 1 of its own PID namespace (what a
 * container runtime makes it), and from the unit `graft systemd` prints, with
 * systemd's stop semantics (KillMode=mixed: SIGTERM to the main pid only).
 */
const AS_INIT = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'];
const run = promisify(execFile);

/** The pids of a process's children, as this (outer) namespace numbers them. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((c) => [c, ...descendantsOf(c)]);
}

/** The command name of a process (a zombie's too), from /proc/<pid>/stat. */
function nameOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
}

function stateOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
}

/** Requests the app holds until the test releases them (test/fixtures/held.ts). */
function heldRequests(url: string, name: string, n: number): Promise<number[]> {
  return Promise.all(Array.from({ length: n }, () => fetch(`${url}/held/${name}`).then((r) => r.text().then(() => r.status))));
}

/** `graft start`'s process inside `unshare`: the namespace's PID 1. */
async function initOf(g: GraftProcess): Promise<number> {
  await g.waitRunning();
  const [init] = childrenOf(g.pid);
  assert.ok(init, 'unshare has its child');
  return init;
}

/** Stop the way a container runtime or systemd (KillMode=mixed) does: SIGTERM to the main process only. */
async function stopAsInit(g: GraftProcess, init: number): Promise<void> {
  const inFlight = heldRequests(g.url, 'term', 6);
  await g.held('term', 6);
  const everything = descendantsOf(init);
  // The live generation's workers: a reload's old generation may still be finishing its own drain (it stopped accepting before).
  const status = await g.status();
  const workers = status.workers.filter((w) => w.generation === status.master.generation).length;
  const from = g.logs.length;
  process.kill(init, 'SIGTERM');
  // Released only once every worker stopped accepting (a debug record): the stop must drain them, not cut them.
  await g.waitForLog(() => g.logs.slice(from).filter((r) => r.msg === 'draining: stopped accepting').length >= workers);
  g.release('term');
  assert.deepEqual(await inFlight, [200, 200, 200, 200, 200, 200], 'every request in flight was answered');
  assert.equal((await g.exited).code, 0, 'the service exited cleanly');
  const exits = g.logs.filter((l) => l.msg === 'worker exited');
  assert.ok(exits.length >= 2 && exits.every((l) => l.exitCode === 0 && l.signal === null), 'workers drained and exited by themselves, none was killed');
  assert.ok(g.logs.some((l) => l.msg === 'master stopped'));
  assert.deepEqual(everything.filter(isAlive), [], 'nothing is left behind');
}

describe('under an init-like parent', { timeout: 120_000 }, () => {
  test('as PID 1 of a namespace: an upgrade leaves no zombie, and TERM drains requests in flight and leaves nothing behind', async () => {
    // As installed (no tsx): a process tsx starts beside a master from source would be orphaned with it.
    builtPackage();
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, prefix: AS_INIT, built: true, env: { GRAFT_LOG_LEVEL: 'debug' } });
    try {
      const init = await initOf(g);
      const before = await g.status();
      assert.equal(before.master.keeper, 1, 'graft start is PID 1 of the namespace');
      const upgraded = await g.cli('upgrade');
      assert.equal(upgraded.code, 0, upgraded.stderr);
      await g.masterExit(before.master.pid);
      const children = childrenOf(init);
      assert.equal(children.filter((pid) => titleOf(pid).startsWith('graft master')).length, 1, 'one master under PID 1');
      assert.deepEqual(children.filter((pid) => stateOf(pid) === 'Z').map(nameOf), [], 'no zombie under PID 1: the old master, and whatever it started, were reaped');
      await stopAsInit(g, init);
    } finally {
      await g.stop();
    }
  });

  test('the unit graft systemd prints passes systemd-analyze verify, and runs: ExecStart, ExecReload, then a stop drains', async () => {
    const dir = tempDir();
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, cwd: dir, env: { DELAY_MS: '1500', GRAFT_LOG_LEVEL: 'debug' }, args: ['--name', 'checkout', '--graceful-timeout', '20'] });
    let unit: string;
    try {
      await g.waitRunning();
      const printed = await g.cli('systemd', '--env', 'DELAY_MS', '--env', 'HELD_DIR');
      assert.equal(printed.code, 0, printed.stderr);
      unit = printed.stdout;
    } finally {
      await g.stop();
    }
    assert.match(unit, /^KillMode=mixed$/m);
    assert.match(unit, /^Environment=DELAY_MS=1500$/m);
    assert.match(unit, /^TimeoutStopSec=35$/m, 'the drain timeout plus a margin');
    assert.match(unit, new RegExp(`^WorkingDirectory=${dir}$`, 'm'));
    const file = join(dir, 'checkout.service');
    writeFileSync(file, unit);
    await run('systemd-analyze', ['verify', file]);

    const environment = [...unit.matchAll(/^Environment=(.*)$/gm)].map((m) => unitWords(m[1]!)[0]!.split(/=(.*)/s).slice(0, 2) as [string, string]);
    const [node, ...args] = unitWords(/^ExecStart=(.*)$/m.exec(unit)![1]!);
    const child = spawn(AS_INIT[0]!, [...AS_INIT.slice(1), node!, ...args], {
      cwd: /^WorkingDirectory=(.*)$/m.exec(unit)![1]!,
      env: { PATH: process.env.PATH!, ...Object.fromEntries(environment) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const served = new GraftProcess(child, Number(args[args.indexOf('-p') + 1]), args[args.indexOf('--socket') + 1]!);
    try {
      const init = await initOf(served);
      const [reloadNode, ...reloadArgs] = unitWords(/^ExecReload=(.*)$/m.exec(unit)![1]!);
      const reload = await run(reloadNode!, reloadArgs, { cwd: root });
      assert.match(reload.stdout, /generation 2 serves/);
      await stopAsInit(served, init);
    } finally {
      await served.stop();
    }
  });
});

/** A unit's command line as systemd splits it: double quotes, backslash escapes, %% and $$. */
function unitWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) {
    const word = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
    words.push(word.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}
