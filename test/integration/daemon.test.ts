import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, freePort, graftCli, isAlive, oneLineError, tempDir, waitFor } from '../helpers/graft.js';

/** `graft start --daemon`: the service in the background, its logs in files, found by name. */
describe('graft start --daemon', { timeout: 120_000 }, () => {
  test('detaches once the master serves, logs to files, and is controlled by name', async () => {
    const runtime = tempDir('graft-rt-');
    const state = tempDir('graft-state-');
    const env = { GRAFT_RUNTIME_DIR: runtime, XDG_STATE_HOME: state };
    const port = await freePort();
    const started = await graftCli(['start', '-d', fixture('slow-app.ts'), '-w', '2', '-p', String(port), '--name', 'bg'], { env });
    assert.equal(started.code, 0, started.stderr);
    const m = /bg runs in the background: keeper (\d+), master (\d+), port (\d+)/.exec(started.stdout);
    assert.ok(m, started.stdout);
    const [keeper, master] = [Number(m[1]), Number(m[2])];
    let stopped = false;
    try {
      // graft start --daemon returned: the service goes on without it, answering at once.
      assert.equal(Number(m[3]), port);
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      const status = JSON.parse((await graftCli(['status', 'bg', '--json'], { env })).stdout) as { master: { pid: number; keeper: number } };
      assert.deepEqual([status.master.pid, status.master.keeper], [master, keeper]);
      // No terminal: graft's and the app's lines are in the per-user default log directory.
      const file = join(state, 'graft', 'logs', 'bg.log');
      await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('master running'), 10_000, 'the master running line in the log file');
      const logs = await graftCli(['logs', 'bg', '--lines', '50'], { env });
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, /master running/);
      // An upgrade keeps the keeper; a stop by name ends it.
      assert.equal((await graftCli(['upgrade', 'bg'], { env })).code, 0);
      assert.equal(isAlive(keeper), true);
      // The keeper's own lines (here: the replaced master it reaped) go to <name>.keeper.log beside the service's.
      const keeperLog = join(state, 'graft', 'logs', 'bg.keeper.log');
      const reaped = (line: string) => {
        const r = JSON.parse(line) as { role?: string; msg?: string; master?: number };
        return r.role === 'keeper' && r.msg === 'master exited' && r.master === master;
      };
      await waitFor(() => existsSync(keeperLog) && readFileSync(keeperLog, 'utf8').split('\n').filter(Boolean).some(reaped), 10_000, 'the keeper to log the replaced master in bg.keeper.log');
      const stop = await graftCli(['stop', 'bg'], { env });
      assert.equal(stop.code, 0, stop.stderr);
      await waitFor(() => !isAlive(keeper), 20_000, 'the keeper to exit with the service');
      stopped = true;
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
    } finally {
      if (!stopped && isAlive(keeper)) process.kill(keeper, 'SIGTERM');
      await waitFor(() => !isAlive(keeper), 20_000, 'the keeper to exit');
    }
  });

  test('a service that cannot start: one line with the reason, and nothing left in the background', async () => {
    const dir = tempDir();
    const env = { GRAFT_RUNTIME_DIR: dir, XDG_STATE_HOME: dir };
    const entry = join(dir, 'broken.ts');
    writeFileSync(entry, "throw new Error('no database configured');\n");
    const r = await graftCli(['start', '--daemon', entry, '-w', '1', '-p', String(await freePort()), '--name', 'broken'], { env });
    oneLineError(r, 'GRAFT_BOOT_FAILED', /no database configured/, { alone: true });
    const ls = await graftCli(['ls', '--json'], { env });
    assert.deepEqual(JSON.parse(ls.stdout), []);
  });

  test('a log directory it cannot write: one line, before anything starts', async () => {
    const dir = tempDir();
    const blocker = join(dir, 'file');
    writeFileSync(blocker, '');
    const r = await graftCli(['start', '-d', fixture('slow-app.ts'), '-p', String(await freePort()), '--log-dir', join(blocker, 'logs')], { env: { GRAFT_RUNTIME_DIR: dir } });
    oneLineError(r, 'GRAFT_LOG_DIR', undefined, { alone: true });
  });
});
