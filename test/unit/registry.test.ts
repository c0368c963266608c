import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { claimName, ensureNameFree, findService, listServices, readRecord, releaseName, servicesDir } from '../../src/registry/service-registry.js';
import { tempDir } from '../helpers/output.js';

/** A process whose title says what it is, as a master's does (`ps` shows it; /proc/<pid>/cmdline holds it). */
function processTitled(title: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', `process.title = ${JSON.stringify(title)}; console.log('up'); setInterval(() => {}, 1000)`], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve) => child.stdout!.once('data', () => resolve(child)));
}

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const description = (name: string, pid: number) => ({ name, pid, socket: `/tmp/${name}.sock`, entry: `/srv/${name}.js`, cwd: '/srv', port: 3000, logs: { kind: 'stdio' as const } });

describe('service registry', () => {
  const saved = { dir: process.env.GRAFT_RUNTIME_DIR, title: process.title };
  const children: ChildProcess[] = [];

  before(() => {
    process.env.GRAFT_RUNTIME_DIR = tempDir('graft-rt-');
    process.title = 'graft master registry-test'; // this process plays a master
  });

  after(async () => {
    await Promise.all(children.map(stopped));
    process.title = saved.title;
    if (saved.dir === undefined) delete process.env.GRAFT_RUNTIME_DIR;
    else process.env.GRAFT_RUNTIME_DIR = saved.dir;
  });

  test('a name held by a live master is refused; its successor takes it over with the start time', async () => {
    const holder = await processTitled('graft master api');
    children.push(holder);
    const held = claimName(description('api', holder.pid!), holder.pid);
    assert.throws(() => ensureNameFree('api'), /GRAFT_NAME_TAKEN|the name api is taken by the graft master \d+ running \/srv\/api\.js/);
    assert.throws(() => claimName(description('api', process.pid)), (err: { code?: string }) => err.code === 'GRAFT_NAME_TAKEN');
    ensureNameFree('api', holder.pid); // a successor of that master may
    const taken = claimName(description('api', process.pid), holder.pid);
    assert.equal(taken.startedAt, held.startedAt);
    assert.equal(findService('api')?.pid, process.pid);
    releaseName('api');
    assert.equal(readRecord('api'), undefined);
  });

  test('a record whose master is gone, or whose pid now belongs to another program, is taken over silently', async () => {
    const dead = await processTitled('graft master old');
    await stopped(dead);
    writeFileSync(join(servicesDir(), 'old.json'), JSON.stringify({ ...description('old', dead.pid!), startedAt: new Date(0).toISOString() }));
    const other = await processTitled('some other program');
    children.push(other);
    writeFileSync(join(servicesDir(), 'reused.json'), JSON.stringify({ ...description('reused', other.pid!), startedAt: new Date(0).toISOString() }));
    assert.deepEqual(listServices().map((s) => s.name), []);
    assert.equal(claimName(description('old', process.pid)).pid, process.pid);
    assert.notEqual(claimName(description('reused', process.pid)).startedAt, new Date(0).toISOString());
    assert.deepEqual(listServices().map((s) => s.name), ['old', 'reused']);
  });
});
