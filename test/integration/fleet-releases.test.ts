import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create } from 'tar';
import { getFresh } from '../../bench/lib/http.js';
import { startHaproxy } from '../../bench/lib/haproxy.js';
import { loadOrderKey } from '../../src/bus/order-key.js';
import { newOrder, signOrder, type OrderOutcome } from '../../src/bus/order.js';
import { requestFromHost } from '../../src/bus/nats-send.js';
import { FleetStore } from '../../src/fleet/fleet-store.js';
import { parseFleetUrl } from '../../src/net/fleet-url.js';
import { ReleaseObjects } from '../../src/releases/release-objects.js';
import { spawn } from 'node:child_process';
import { fixture, graftCli, graftCommand, startGraft, tempDir, waitFor, type GraftProcess } from '../helpers/graft.js';
import { startNats } from '../helpers/stores.js';
import { underLoad } from '../helpers/load.js';
import { record } from '../helpers/output.js';

const NATS = 'nats://127.0.0.1:4222';

/** An app whose answer is its release's version.txt; `behaviour` runs first in its request handler. */
function release(root: string, version: string, behaviour = ''): string {
  const dir = join(root, version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'version.txt'), version);
  writeFileSync(
    join(dir, 'app.ts'),
    `import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
const version: string = readFileSync('./version.txt', 'utf8').trim();
let n = 0;
createServer((req, res) => {
  n++;
  ${behaviour}
  res.end(version);
}).listen(Number(process.env.PORT));
`,
  );
  return dir;
}

interface Host {
  id: string;
  dir: string;
  g: GraftProcess;
}

describe('graft fleet deploy: releases through the fleet Object Store, rolled back host by host', () => {
  const service = `rel-${randomBytes(4).toString('hex')}`;
  const work = tempDir('fleet-releases-');
  const keyFile = join(work, 'fleet.key');
  let hosts: Host[] = [];
  let store: FleetStore;

  before(async () => {
    writeFileSync(keyFile, randomBytes(32).toString('hex'));
    for (const id of ['h1', 'h2', 'h3']) {
      // Each host's service directory holds the entry as first installed by hand.
      const dir = release(join(work, 'hosts'), id);
      writeFileSync(join(dir, 'version.txt'), 'disk');
      const g = await startGraft('app.ts', {
        workers: 2,
        cwd: dir,
        env: { HOST_ID: id },
        args: ['--name', service, '--host-id', id, '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile, '--min-healthy-time', '1'],
      });
      hosts.push({ id, dir, g });
    }
    for (const h of hosts) await h.g.waitForLog((r) => r.msg === 'registered in the fleet');
    store = await FleetStore.open(parseFleetUrl(NATS));
  });
  after(async () => {
    await Promise.all(hosts.map((h) => h.g.stop()));
    // The machine's NATS server keeps no release of this test's.
    if (store) await (await ReleaseObjects.open(store.nc)).prune(service, new Set(), 0);
    await store?.close();
  });

  const fleet = (...args: string[]) => graftCli(['fleet', ...args, '--fleet', NATS, '--name', service, '--bus-key', keyFile]);
  const served = async () => Promise.all(hosts.map(async (h) => (await getFresh(h.g.url)).body));

  test('R1 then R2 everywhere behind HAProxy under 64 keep-alive connections; R3 unhealthy on h2: h1 and h2 back on R2, h3 never touched, only R3\'s own 500s fail', async () => {
    const lb = await startHaproxy({ backends: hosts.map((h) => ({ name: h.id, port: h.g.port })), dir: tempDir('graft-lb-'), onLine: (l) => record('haproxy', l) });
    try {
      const r1 = release(work, 'r1');
      const r2 = release(work, 'r2');
      // Bad only where HOST_ID says h2: the same files, a host of its own kind (its config, its data).
      const r3 = release(work, 'r3', 'if (process.env.HOST_ID === "h2" && n % 2) { res.statusCode = 500; res.end("r3 failing"); return; }');
      const { value, load } = await underLoad(
        lb.url,
        async () => {
          const one = await fleet('deploy', r1, '--json');
          assert.equal(one.code, 0, one.stderr + one.stdout);
          assert.deepEqual(await served(), ['r1', 'r1', 'r1']);
          const two = await fleet('deploy', r2, '--json');
          assert.equal(two.code, 0, two.stderr + two.stdout);
          assert.deepEqual(await served(), ['r2', 'r2', 'r2']);
          const h3 = (await hosts[2]!.g.status()).master.generation;
          return { r2: (JSON.parse(two.stdout) as { steps: Array<{ outcome: OrderOutcome }> }).steps[0]!.outcome.value as { release: string }, h3, three: await fleet('deploy', r3, '--json') };
        },
        { connections: 64 },
      );
      assert.equal(value.three.code, 1, value.three.stdout + value.three.stderr);
      const report = JSON.parse(value.three.stdout) as { stoppedAt: string; notReached: string[]; rolledBack: Array<{ host: string; ok: boolean }>; steps: Array<{ host: string; ok: boolean; error?: { code: string; message: string } }> };
      assert.equal(report.stoppedAt, 'h2');
      assert.equal(report.steps[1]!.error?.code, 'GRAFT_ROLLED_BACK');
      assert.match(report.steps[1]!.error!.message, /5xx .*rolled back to release/);
      assert.deepEqual(report.notReached, ['h3']);
      assert.deepEqual(report.rolledBack, [{ host: 'h1', ok: true }]);
      assert.deepEqual(await served(), ['r2', 'r2', 'r2']);
      assert.equal((await hosts[2]!.g.status()).master.generation, value.h3, 'h3 was never touched');
      assert.equal(load.errors + load.unanswered, 0, `failed requests through HAProxy: ${JSON.stringify(load)}`);
      assert.ok(load.answered > 500, `only ${load.answered} answered`);
      const status = await graftCli(['fleet', 'status', '--fleet', NATS, '--name', service, '--json']);
      const fleetStatus = JSON.parse(status.stdout) as { hosts: Array<{ host: string; release: string }> };
      assert.deepEqual(fleetStatus.hosts.map((h) => h.release), [value.r2.release, value.r2.release, value.r2.release]);
    } finally {
      await lb.stop();
    }
  });

  test('a host whose release directory was deleted fetches it again from the Object Store, checked; a tampered object is refused everywhere', async () => {
    const live = (await hosts[0]!.g.status()) as unknown as { master: { release: string } };
    const r2 = live.master.release;
    const r4 = release(work, 'r4');
    const four = await fleet('deploy', r4, '--max-unavailable', '3');
    assert.equal(four.code, 0, four.stderr + four.stdout);
    // h1 loses its copy of R2: the fleet rollback to R2 fetches it.
    rmSync(join(hosts[0]!.dir, '.graft', 'releases', service, r2), { recursive: true, force: true });
    const back = await fleet('rollback', r2);
    assert.equal(back.code, 0, back.stderr + back.stdout);
    assert.deepEqual(await served(), ['r2', 'r2', 'r2']);
    assert.ok(hosts[0]!.g.logs.some((l) => l.msg === 'release fetched from the fleet' && l.release === r2));
    // An object whose files are not the ones its name says.
    const objects = await ReleaseObjects.open(store.nc);
    const fake = 'abcdef0123456789abcdef0123456789';
    const tarball = join(tempDir('fake-'), 'fake.tgz');
    await create({ gzip: true, file: tarball, cwd: release(work, 'fake'), portable: true }, ['app.ts', 'version.txt']);
    await objects.put(service, fake, readFileSync(tarball));
    const refused = await fleet('rollback', fake, '--json');
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    const report = JSON.parse(refused.stdout) as { steps: Array<{ error?: { code: string; message: string } }> };
    assert.equal(report.steps[0]!.error?.code, 'GRAFT_RELEASE_TAMPERED');
    assert.match(report.steps[0]!.error!.message, new RegExp(`fetched as release ${fake} digest to [0-9a-f]{32}: refused`));
    assert.deepEqual(await served(), ['r2', 'r2', 'r2']);
  });

  test('an unsigned, a replayed and a path-naming deploy order are refused; the service serves on', async () => {
    const key = loadOrderKey(keyFile);
    const before = (await hosts[2]!.g.status()).master.generation;
    const unsigned = newOrder({ service, host: 'h3', action: 'deploy', release: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' });
    const raw = await store.nc.request(`graft.${service}.orders.h3`, JSON.stringify(unsigned), { timeout: 10_000 });
    const no = JSON.parse(raw.string()) as OrderOutcome;
    assert.equal(no.ok, false);
    assert.match(no.error!.message, /not signed/);
    const path = signOrder(newOrder({ service, host: 'h3', action: 'deploy', release: '../../etc' }), key);
    const bad = await requestFromHost(store.nc, path, key, 10_000, NATS);
    assert.equal(bad.ok, false);
    assert.match(bad.error!.message, /names its release by id \(32 hex digits\), and nothing else/);
    const live = ((await hosts[2]!.g.status()) as unknown as { master: { release: string } }).master.release;
    const same = signOrder(newOrder({ service, host: 'h3', action: 'rollback', release: live }), key);
    const first = await requestFromHost(store.nc, same, key, 10_000, NATS);
    assert.equal(first.ok, true, JSON.stringify(first));
    const replay = await requestFromHost(store.nc, same, key, 10_000, NATS);
    assert.equal(replay.ok, false);
    assert.match(replay.error!.message, /already carried out \(a replay\)/);
    assert.equal((await hosts[2]!.g.status()).master.generation, before, 'nothing reloaded');
    await waitFor(async () => (await getFresh(hosts[2]!.g.url)).body === 'r2', 5000, 'h3 serving');
  });
});

describe('a NATS restart in the middle of a fleet deploy (a server of the test\'s own)', () => {
  test('the rollout stops and says which host may have moved, no host is left half-changed, and a rerun finishes the job', async () => {
    const nats = await startNats();
    const url = `nats://127.0.0.1:${nats.port}`;
    const service = `restart-${randomBytes(4).toString('hex')}`;
    const work = tempDir('fleet-nats-restart-');
    const keyFile = join(work, 'fleet.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'));
    const hosts: Host[] = [];
    try {
      for (const id of ['h1', 'h2', 'h3']) {
        const dir = release(join(work, 'hosts'), id);
        writeFileSync(join(dir, 'version.txt'), 'disk');
        const g = await startGraft('app.ts', { workers: 2, cwd: dir, env: { HOST_ID: id }, args: ['--name', service, '--host-id', id, '--fleet', url, '--bus', url, '--bus-key', keyFile] });
        hosts.push({ id, dir, g });
      }
      for (const h of hosts) await h.g.waitForLog((r) => r.msg === 'registered in the fleet');
      // Release 1 boots on h1 only when the test lets it: NATS restarts while h1 carries out the order.
      const r1 = release(work, 'r1');
      writeFileSync(
        join(r1, 'app.ts'),
        `import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { held } from ${JSON.stringify(fixture('held.ts'))};
const version: string = readFileSync('./version.txt', 'utf8').trim();
const start = () => createServer((req, res) => res.end(version)).listen(Number(process.env.PORT));
if (process.env.HOST_ID === 'h1') void held('boot').then(start);
else start();
`,
      );
      const args = [...graftCommand().slice(1), 'fleet', 'deploy', r1, '--fleet', url, '--name', service, '--bus-key', keyFile, '--timeout', '20'];
      const cli = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GRAFT_RUNTIME_DIR: work } });
      let stderr = '';
      let stdout = '';
      cli.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => cli.once('exit', resolve));
      await hosts[0]!.g.held('boot', 2);
      const restartedAt = Date.now();
      await nats.restart();
      hosts[0]!.g.release('boot');
      const code = await exited;
      record('cli', stderr + stdout);
      assert.notEqual(code, 0, 'the rollout cannot go on without its server');
      assert.match(stdout, /^deploy stopped at h1; sent the order but no answer came back: h1 \(it may have carried it out; graft fleet status shows what each host runs\); not reached: h2, h3$/m);
      assert.match(stderr, /^graft: GRAFT_FLEET_FAILED: the deploy rollout stopped at h1 /m);
      // h1 carried the order out all the same: its reload finishes, whole.
      await hosts[0]!.g.waitForLog((l) => l.msg === 'release live');
      // Each host runs one release on all its workers: h1 moved, the others not.
      const states = await Promise.all(hosts.map(async (h) => ({ served: (await getFresh(h.g.url)).body, status: await h.g.status() })));
      assert.deepEqual(states.map((x) => x.served), ['r1', 'disk', 'disk']);
      for (const s of states) assert.equal(new Set(s.status.workers.filter((w) => w.state === 'ready').map((w) => w.generation)).size, 1, 'one generation serves');
      // The masters reconnect by themselves; the same command again finishes the job.
      for (const h of hosts) {
        await waitFor(
          async () => {
            const m = ((await h.g.status()) as unknown as { master: { bus?: Array<{ connected: boolean; since: string }>; fleet?: { connected: boolean; since: string } } }).master;
            const back = (c: { connected: boolean; since: string } | undefined) => c?.connected === true && Date.parse(c.since) >= restartedAt;
            return m.bus?.every(back) && back(m.fleet);
          },
          30_000,
          `${h.id} connected to the restarted server`,
        );
      }
      // And each has written its state again (h1 now ready on r1): the rollout reads readiness from there.
      await waitFor(
        async () => (JSON.parse((await graftCli(['fleet', 'status', '--fleet', url, '--name', service, '--json'])).stdout || '{}') as { ready?: number }).ready === 3,
        30_000,
        'every host ready in the fleet registry',
      );
      const again = await graftCli(['fleet', 'deploy', r1, '--fleet', url, '--name', service, '--bus-key', keyFile]);
      assert.equal(again.code, 0, again.stderr + again.stdout);
      assert.deepEqual(await Promise.all(hosts.map(async (h) => (await getFresh(h.g.url)).body)), ['r1', 'r1', 'r1']);
    } finally {
      await Promise.all(hosts.map((h) => h.g.stop()));
      await nats.stop();
    }
  });
});
