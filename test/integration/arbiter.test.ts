import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { getFresh } from '../../bench/lib/http.js';
import type { ApplyOutcome, HistoryEntry } from '../../src/config/history.js';
import { fixture, isAlive, startGraft, tempDir, waitFor, type GraftProcess, type LogRecord } from '../helpers/graft.js';

/**
 * Commands that overlap, driven concurrently through the control socket. The
 * gated app boots a generation only once the test opens its gate, so a reload
 * or an upgrade stays in flight exactly as long as the test needs.
 */
const openGate = (gates: string, generation: number) => writeFileSync(join(gates, String(generation)), '');

/** Which generation answers a request on a connection of its own (no keep-alive). */
const answeredBy = async (url: string) => Number((await getFresh(url)).body.split(' ')[0]);

const starting = (generation: number) => (l: LogRecord) => l.msg === 'reload: starting generation' && l.generation === generation;

async function gated(workers: number): Promise<{ g: GraftProcess; gates: string }> {
  const gates = tempDir();
  const g = await startGraft(fixture('gated-app.ts'), { workers, env: { GATE_DIR: gates } });
  await g.waitRunning();
  return { g, gates };
}

async function stopSuccessor(g: GraftProcess): Promise<void> {
  const status = await g.status().catch(() => undefined);
  if (!status || status.master.pid === (await g.firstMaster())) return;
  await g.cli('stop');
  await waitFor(() => !isAlive(status.master.pid), 20_000, 'the successor to stop');
}

describe('one arbiter: commands that overlap', { timeout: 300_000 }, () => {
  test('coalesced reloads: each caller hears its own previous generation, and after each answer new connections reach the new code', async () => {
    const { g, gates } = await gated(2);
    try {
      const answers = [1, 2, 3, 4].map(() => g.control({ cmd: 'reload' }) as Promise<{ generation: number; previous: number }>);
      await g.waitForLog(starting(2));
      const mid = await g.status();
      assert.equal(mid.master.busy, 'reload');
      assert.equal(mid.master.queued, 1, 'the three reloads asked for during the first wait as one');
      openGate(gates, 2);
      assert.deepEqual(await answers[0], { generation: 2, previous: 1 });
      assert.equal(await answeredBy(g.url), 2);
      await g.waitForLog(starting(3));
      openGate(gates, 3);
      for (const answer of await Promise.all(answers.slice(1))) assert.deepEqual(answer, { generation: 3, previous: 2 });
      assert.equal(await answeredBy(g.url), 3);
      assert.equal((await g.status()).master.generation, 3);
    } finally {
      await g.stop();
    }
  });

  test('scale during a reload: the new generation runs the scaled count, and status agrees', async () => {
    const { g, gates } = await gated(3);
    try {
      const reload = g.control({ cmd: 'reload' });
      await g.waitForLog(starting(2));
      const scale = g.control({ cmd: 'scale', workers: 2 });
      const mid = await waitFor(async () => {
        const s = await g.status();
        return s.master.queued === 1 ? s : undefined;
      }, 10_000, 'the scale to wait behind the reload');
      assert.equal(mid.master.desired, 3, 'nothing changes under a reload in flight');
      openGate(gates, 2);
      assert.deepEqual(await reload, { generation: 2, previous: 1 });
      assert.deepEqual(await scale, { from: 3, to: 2 });
      const after = await waitFor(async () => {
        const s = await g.status();
        return s.workers.length === 2 ? s : undefined;
      }, 20_000, 'the old generation and the surplus worker to be gone');
      assert.equal(after.master.desired, 2);
      assert.equal(after.master.actual, 2);
      assert.deepEqual(
        after.workers.map((w) => [w.generation, w.state]),
        [
          [2, 'ready'],
          [2, 'ready'],
        ],
      );
    } finally {
      await g.stop();
    }
  });

  test('stop during an upgrade stops both masters and closes the port', async () => {
    const { g } = await gated(1);
    let successor: number | undefined;
    try {
      const upgrade = g.control({ cmd: 'upgrade' }).then(
        () => undefined,
        (err: { code?: string }) => err,
      );
      // The successor forks its workers as generation 2; their gate stays shut.
      const forked = await g.waitForLog((l) => l.msg === 'worker started' && l.generation === 2);
      successor = forked.pid;
      const first = await g.firstMaster();
      assert.notEqual(successor, first);
      const stopped = (await g.control({ cmd: 'stop' })) as { stopped: boolean; pid: number };
      assert.deepEqual(stopped, { stopped: true, pid: first });
      assert.equal((await upgrade)?.code, 'GRAFT_STOPPING');
      assert.equal(isAlive(successor), false, 'the successor stopped before the stop was answered');
      assert.equal((await g.exited).code, 0);
      await assert.rejects(fetch(g.url), 'nothing listens on the port any more');
    } finally {
      if (successor && isAlive(successor)) process.kill(successor, 'SIGKILL');
      await g.stop();
    }
  });

  test('an upgrade asked for during a reload runs after it, on a fresh generation number', async () => {
    const { g, gates } = await gated(1);
    try {
      const reload = g.control({ cmd: 'reload' });
      await g.waitForLog(starting(2));
      const upgrade = g.control({ cmd: 'upgrade' }) as Promise<{ pid: number }>;
      openGate(gates, 2);
      openGate(gates, 3);
      assert.deepEqual(await reload, { generation: 2, previous: 1 });
      const { pid } = await upgrade;
      await g.masterExit(await g.firstMaster());
      const after = await g.status();
      assert.equal(after.master.pid, pid);
      assert.equal(after.master.generation, 3);
      assert.equal(after.master.masterGeneration, 2);
      const committed = g.logs.filter((l) => l.msg === 'reload: generation committed').map((l) => l.generation);
      assert.deepEqual(committed, [1, 2, 3], 'no generation number is used twice');
    } finally {
      await stopSuccessor(g);
      await g.stop();
    }
  });
});

describe('one arbiter: config changes that overlap', () => {
  function configFile(text: string): string {
    const file = join(tempDir(), 'app.yaml');
    writeFileSync(file, text);
    return file;
  }

  /** How many times each worker made each config version live. */
  function appliedPerWorker(g: GraftProcess): Map<string, number> {
    const counts = new Map<string, number>();
    for (const l of g.logs.filter((r) => r.role === 'worker' && r.msg === 'config applied')) {
      const key = `${l.pid}@${l.configVersion}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  test('three concurrent applies with overrides: each becomes one version, committed once by every worker, in order', async () => {
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', configFile('greeting: file\n')] });
    try {
      await g.waitRunning();
      const pids = (await g.status()).workers.map((w) => w.pid).sort();
      const outcomes = (await Promise.all(['a', 'b', 'c'].map((v) => g.control({ cmd: 'config', action: 'apply', set: [`greeting=${v}`] })))) as ApplyOutcome[];
      assert.deepEqual(
        outcomes.map((o) => [o.version, o.mode, o.replaced.length]),
        [
          [2, 'in-place', 0],
          [3, 'in-place', 0],
          [4, 'in-place', 0],
        ],
      );
      const after = await g.status();
      assert.deepEqual(after.workers.map((w) => w.pid).sort(), pids, 'no worker was replaced');
      assert.ok(after.workers.every((w) => w.configVersion === 4));
      assert.equal(g.logs.filter((l) => l.code === 'GRAFT_CONFIG_APPLY_FAILED').length, 0);
      for (const pid of pids) for (const v of [2, 3, 4]) assert.equal(appliedPerWorker(g).get(`${pid}@${v}`), 1, `worker ${pid} applied v${v} once`);
      assert.equal(await (await fetch(g.url)).text(), '4 c\n');
    } finally {
      await g.stop();
    }
  });

  test('three concurrent plain applies after an edit make one version', async () => {
    const file = configFile('greeting: one\n');
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', file] });
    try {
      await g.waitRunning();
      const pids = (await g.status()).workers.map((w) => w.pid).sort();
      writeFileSync(file, 'greeting: two\n');
      const outcomes = (await Promise.all([1, 2, 3].map(() => g.control({ cmd: 'config', action: 'apply' })))) as ApplyOutcome[];
      assert.ok(outcomes.every((o) => o.version === 2 && o.replaced.length === 0), JSON.stringify(outcomes));
      // The watcher may have asked too: still one version.
      const history = (await g.control({ cmd: 'config', action: 'history' })) as HistoryEntry[];
      assert.deepEqual(
        history.map((h) => [h.version, h.accepted]),
        [
          [1, true],
          [2, true],
        ],
      );
      assert.deepEqual((await g.status()).workers.map((w) => w.pid).sort(), pids);
      for (const pid of pids) assert.equal(appliedPerWorker(g).get(`${pid}@2`), 1);
    } finally {
      await g.stop();
    }
  });

  test('an upgrade carries the config version, the history and the apply overrides to the successor', async () => {
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', configFile('greeting: file\n'), '--set', 'db.pool=4'] });
    try {
      await g.waitRunning();
      await g.control({ cmd: 'config', action: 'apply', set: ['greeting=override'] });
      const { pid } = (await g.control({ cmd: 'upgrade' })) as { pid: number };
      await g.masterExit(await g.firstMaster());
      const after = await g.status();
      assert.equal(after.master.pid, pid);
      assert.equal(after.master.config?.version, 2, 'the version goes on, not back to 1');
      const history = (await g.control({ cmd: 'config', action: 'history' })) as HistoryEntry[];
      assert.deepEqual(
        history.map((h) => [h.version, h.accepted]),
        [
          [1, true],
          [2, true],
        ],
      );
      assert.equal(await (await fetch(`${g.url}/config`)).text(), JSON.stringify({ version: 2, greeting: 'override', pool: 4 }));
      const next = (await g.control({ cmd: 'config', action: 'apply', set: ['greeting=again'] })) as ApplyOutcome;
      assert.equal(next.version, 3);
    } finally {
      await stopSuccessor(g);
      await g.stop();
    }
  });

  test('a reload that a config change asked for is recorded like any other', async () => {
    const file = configFile('greeting: one\n');
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', file] });
    try {
      await g.waitRunning();
      writeFileSync(file, 'greeting: one\nrestartMe: 1\n');
      const outcome = (await g.control({ cmd: 'config', action: 'apply' })) as ApplyOutcome;
      assert.equal(outcome.mode, 'reload');
      const status = await g.status();
      assert.equal(status.master.generation, 2);
      assert.equal(status.master.lastReload?.outcome, 'ok');
      assert.equal(status.master.lastReload?.generation, 2);
      assert.match(String(status.master.lastReload?.reason), /^config v2/);
      assert.ok(g.logs.some((l) => l.msg === 'reload requested' && String(l.reason).startsWith('config v2')));
    } finally {
      await g.stop();
    }
  });
});
