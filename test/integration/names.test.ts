import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, graftCli, isAlive, startGraft, tempDir, waitFor, type CliResult, type GraftProcess, type StatusJson, oneLineError } from '../helpers/graft.js';

/** slow-app.ts as a project's own entry at `to`, with the module it imports beside it. */
function copySlowApp(to: string): void {
  copyFileSync(fixture('slow-app.ts'), to);
  copyFileSync(fixture('held.ts'), join(dirname(to), 'held.ts'));
}

/** One `graft: CODE: …` line and nothing else on stderr, and a non-zero exit. */
const oneLine = (r: CliResult, code: string, pattern?: RegExp) => oneLineError(r, code, pattern, { alone: true });

interface Listing {
  name: string;
  pid: number;
  entry: string;
  cwd: string;
  port: number;
  startedAt: string;
  answering: boolean;
  state?: string;
  generation?: number;
  workers?: { ready: number; desired: number };
  configVersion?: number;
}

/**
 * Two services of one user, each started from its own project directory (as
 * two projects on one host are), found by name or entry from anywhere.
 */
describe('services by name', () => {
  const runtime = tempDir('graft-rt-');
  const env = { GRAFT_RUNTIME_DIR: runtime };
  /** Where the commands run: not a project directory. */
  const elsewhere = tempDir('graft-elsewhere-');
  const dirA = tempDir('graft-api-');
  const dirB = tempDir('graft-billing-');
  const entryA = join(dirA, 'server.ts');
  const entryB = join(dirB, 'billing.ts');
  let api: GraftProcess;
  let billing: GraftProcess;

  const cli = (...args: string[]) => graftCli(args, { cwd: elsewhere, env });
  const status = async (target: string): Promise<StatusJson> => {
    const r = await cli('status', target, '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusJson;
  };
  const listed = async (): Promise<Listing[]> => {
    const r = await cli('ls', '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Listing[];
  };

  before(async () => {
    copySlowApp(entryA);
    copySlowApp(entryB);
    // api by --name; billing by default, from its entry's file name.
    api = await startGraft(entryA, { workers: 1, cwd: dirA, env, args: ['--name', 'api'] });
    billing = await startGraft(entryB, { workers: 1, cwd: dirB, env });
    await Promise.all([api.waitRunning(), billing.waitRunning()]);
  });

  after(async () => {
    // A master that replaced itself is not the child we started: stop each by name first.
    for (const name of ['api', 'billing']) await cli('stop', name);
    await Promise.all([api.stop(), billing.stop()]);
  });

  test('graft ls lists every running service with its master, workers, generation, config version, uptime and port', async () => {
    const services = await listed();
    assert.deepEqual(
      services.map((s) => s.name),
      ['api', 'billing'],
    );
    for (const [s, g, entry, cwd] of [
      [services[0]!, api, entryA, dirA],
      [services[1]!, billing, entryB, dirB],
    ] as const) {
      const st = await g.status();
      assert.equal(s.pid, st.master.pid);
      assert.equal(s.entry, entry);
      assert.equal(s.cwd, cwd);
      assert.equal(s.port, g.port);
      assert.equal(s.answering, true);
      assert.equal(s.state, 'running');
      assert.deepEqual(s.workers, { ready: 1, desired: 1 });
      assert.equal(s.generation, 1);
      assert.equal(s.configVersion, 1);
      assert.ok(Date.parse(s.startedAt) <= Date.now());
    }
    const table = await cli('ls');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME\s+PID\s+STATE\s+WORKERS\s+GEN\s+CONFIG\s+UPTIME\s+PORT$/m);
    assert.match(table.stdout, new RegExp(`^api\\s+${services[0]!.pid}\\s+running\\s+1/1\\s+1\\s+v1\\s+\\d+s\\s+${api.port}$`, 'm'));
    assert.match(table.stdout, new RegExp(`^billing\\s+${services[1]!.pid}\\s+running\\s+1/1\\s+1\\s+v1\\s+\\d+s\\s+${billing.port}$`, 'm'));
  });

  test('a master that does not answer is listed as not answering, without waiting for it', async () => {
    const pid = (await api.status()).master.pid;
    process.kill(pid, 'SIGSTOP');
    try {
      const services = await listed();
      assert.equal(services.find((s) => s.name === 'api')?.answering, false);
      assert.equal(services.find((s) => s.name === 'billing')?.answering, true);
      assert.match((await cli('ls')).stdout, new RegExp(`^api\\s+${pid}\\s+NOT ANSWERING\\s+-`, 'm'));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  test('control commands take a name or an entry from any directory, and reach that service only', async () => {
    const reload = await cli('reload', 'api');
    assert.equal(reload.code, 0, reload.stderr);
    assert.equal((await status('api')).master.generation, 2);
    assert.equal((await status('billing')).master.generation, 1, 'the other service was not reloaded');
    const byEntry = await cli('reload', entryB);
    assert.equal(byEntry.code, 0, byEntry.stderr);
    assert.equal((await status('billing')).master.generation, 2);
    assert.equal((await status(entryA)).master.generation, 2);
    assert.equal((await cli('scale', 'billing', '2')).code, 0);
    assert.equal((await status('billing')).master.desired, 2);
    const show = await graftCli(['config', 'show', '--name', 'api', '--json'], { cwd: elsewhere, env });
    assert.equal(show.code, 0, show.stderr);
    assert.equal((JSON.parse(show.stdout) as { version: number }).version, 1);
    // Each serves its own generation.
    assert.equal((await (await fetch(api.url)).text()).trim(), '2');
  });

  test('an unknown name is one GRAFT_NO_SERVICE line listing the running services', async () => {
    oneLine(await cli('reload', 'nosuch'), 'GRAFT_NO_SERVICE', /nosuch.*running: api, billing/);
    oneLine(await cli('status', '--name', 'nosuch'), 'GRAFT_NO_SERVICE', /running: api, billing/);
    oneLine(await cli('reload', join(elsewhere, 'nothing.ts')), 'GRAFT_NO_SERVICE', /nothing\.ts/);
    // No name, and no master started here: the running names are the hint.
    oneLine(await cli('status'), 'GRAFT_NO_MASTER', /running: api, billing/);
  });

  test('a name held by a live master is refused, and the running one is not touched', async () => {
    const held = await status('api');
    const dir = tempDir('graft-other-');
    const entry = join(dir, 'other.ts');
    copySlowApp(entry);
    const second = await startGraft(entry, { workers: 1, cwd: dir, env, args: ['--name', 'api'] });
    try {
      const exit = await second.exited;
      assert.equal(exit.code, 1);
      const lines = second.output.filter((l) => l.startsWith('graft: '));
      assert.equal(lines.length, 1, second.output.join('\n'));
      assert.deepEqual(second.output, lines, 'refused before a keeper or a master started: nothing else printed');
      assert.match(lines[0]!, new RegExp(`^graft: GRAFT_NAME_TAKEN: the name api is taken by the graft master ${held.master.pid} running ${entryA.replace(/[.]/g, '\\.')}`));
      assert.equal(second.logs.filter((r) => r.msg === 'worker started').length, 0, 'no worker was started');
    } finally {
      await second.stop();
    }
    const now = await status('api');
    assert.equal(now.master.pid, held.master.pid);
    assert.equal(now.master.generation, held.master.generation);
    assert.deepEqual(
      now.workers.map((w) => w.pid),
      held.workers.map((w) => w.pid),
    );
    assert.equal((await fetch(api.url)).status, 200);
  });

  test('two services of one entry from one directory, told apart by --name', async () => {
    const dir = tempDir('graft-twins-');
    const entry = join(dir, 'server.ts');
    copySlowApp(entry);
    const twins = await Promise.all(['blue', 'green'].map((name) => startGraft(entry, { workers: 1, cwd: dir, env, defaultSocket: true, args: ['--name', name] })));
    try {
      await Promise.all(twins.map((t) => t.waitRunning()));
      const both = (await listed()).filter((s) => s.entry === entry).map((s) => s.name);
      assert.deepEqual(both, ['blue', 'green']);
      for (const [i, name] of ['blue', 'green'].entries()) assert.equal((await status(name)).master.pid, await twins[i]!.firstMaster());
      // Config commands take the service positionally too, from the directory both were started from.
      const here = (...args: string[]) => graftCli(args, { cwd: dir, env });
      const apply = await here('config', 'apply', 'blue', '--set', 'greeting=hi');
      assert.equal(apply.code, 0, apply.stderr);
      const shown = async (name: string) => JSON.parse((await here('config', 'show', name, 'greeting', '--json')).stdout) as { value?: unknown };
      assert.equal((await shown('blue')).value, 'hi');
      assert.equal((await here('config', 'show', 'green', 'greeting', '--json')).code, 1, 'green was not changed');
      oneLine(await here('config', 'apply', 'blue', '--name', 'green', '--set', 'greeting=x'), 'GRAFT_BAD_ARGUMENT', /"blue" and --name "green" disagree/);
    } finally {
      await Promise.all(twins.map((t) => t.stop()));
    }
  });

  test("the default name comes from the entry's package.json and file name", async () => {
    const dir = tempDir('graft-pkg-');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@acme/shop' }));
    const entry = join(dir, 'server.ts');
    copySlowApp(entry);
    const shop = await startGraft(entry, { workers: 1, cwd: dir, env, defaultSocket: true });
    try {
      await shop.waitRunning();
      assert.equal((await status('acme-shop-server')).master.pid, await shop.firstMaster());
    } finally {
      await cli('stop', 'acme-shop-server');
      await shop.stop();
    }
  });

  test('after graft upgrade the name resolves to the new master, also once the old one is gone', async () => {
    const old = (await status('api')).master.pid;
    const startedAt = (await listed()).find((s) => s.name === 'api')!.startedAt;
    const r = await cli('upgrade', 'api');
    assert.equal(r.code, 0, r.stderr);
    const successor = Number(/master (\d+) serves/.exec(r.stdout)?.[1]);
    assert.ok(successor > 0 && successor !== old, r.stdout);
    assert.equal((await status('api')).master.pid, successor);
    await waitFor(() => !isAlive(old), 20_000, 'the old master to drain and exit');
    const record = JSON.parse(readFileSync(join(runtime, 'services', 'api.json'), 'utf8')) as { pid: number };
    assert.equal(record.pid, successor, 'the old master left the successor its record');
    const api2 = (await listed()).find((s) => s.name === 'api')!;
    assert.equal(api2.pid, successor);
    assert.equal(api2.startedAt, startedAt, 'the service is as old as before the upgrade');
    assert.equal((await cli('reload', 'api')).code, 0);
  });

  test('a stop removes the name; a record left by a master that died is taken over', async () => {
    const pid = (await status('billing')).master.pid;
    const stop = await cli('stop', 'billing');
    assert.equal(stop.code, 0, stop.stderr);
    await waitFor(() => !isAlive(pid), 20_000, 'billing to stop');
    assert.deepEqual(
      (await listed()).map((s) => s.name),
      ['api'],
    );
    assert.ok(!existsSync(join(runtime, 'services', 'billing.json')));

    // A master killed without its cleanup leaves its record behind.
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    writeFileSync(join(runtime, 'services', 'billing.json'), JSON.stringify({ name: 'billing', pid: dead.pid, socket: join(runtime, 'gone.sock'), entry: '/gone.js', cwd: '/', port: 1, startedAt: new Date(0).toISOString(), logs: { kind: 'stdio' } }));
    assert.deepEqual(
      (await listed()).map((s) => s.name),
      ['api'],
      'a stale record is not listed',
    );
    billing = await startGraft(entryB, { workers: 1, cwd: dirB, env });
    await billing.waitRunning();
    const again = (await listed()).find((s) => s.name === 'billing');
    assert.equal(again?.pid, (await billing.status()).master.pid);
    assert.equal((await cli('reload', 'billing')).code, 0);
  });
});
