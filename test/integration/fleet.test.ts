import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { getFresh } from '../../bench/lib/http.js';
import { startHaproxy } from '../../bench/lib/haproxy.js';
import { fixture, graftCli, startGraft, tempDir, waitFor, type GraftProcess, type LogRecord } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';
import { record } from '../helpers/output.js';
import { FleetStore } from '../../src/fleet/fleet-store.js';
import { parseFleetUrl } from '../../src/net/fleet-url.js';

const NATS = 'nats://127.0.0.1:4222';

interface Host {
  id: string;
  dir: string;
  entry: string;
  g: GraftProcess;
}

/** Three masters of one service, each in a folder of its own (its own deployed copy of the entry). */
async function startFleet(service: string, keyFile: string, env: Record<string, Record<string, string>> = {}): Promise<Host[]> {
  const hosts: Host[] = [];
  for (const id of ['h1', 'h2', 'h3']) {
    const dir = tempDir('graft-host-');
    const entry = join(dir, 'server.ts');
    writeFileSync(entry, `export { default } from ${JSON.stringify(pathToFileURL(fixture('fleet-app.ts')).href)};\n`);
    const g = await startGraft(entry, {
      workers: 2,
      cwd: dir,
      env: { HOST_ID: id, ...env[id] },
      args: ['--name', service, '--host-id', id, '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile],
    });
    hosts.push({ id, dir, entry, g });
  }
  for (const h of hosts) await h.g.waitForLog((r) => r.msg === 'registered in the fleet');
  return hosts;
}

function fleet(...args: string[]) {
  return graftCli(['fleet', ...args]);
}

/** [start, end] of every reload a master logged (its own clock, the same machine's). */
function reloadIntervals(h: Host): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start: LogRecord | undefined;
  for (const r of h.g.logs) {
    if (r.msg === 'reload requested') start = r;
    if ((r.msg === 'reload done' || r.msg === 'reload failed; the live generation keeps serving') && start) {
      out.push([Date.parse(start.time as string), Date.parse(r.time as string)]);
      start = undefined;
    }
  }
  return out;
}

describe('fleet', () => {
  let keyFile: string;
  before(() => {
    keyFile = join(tempDir('graft-key-'), 'fleet.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'));
  });

  describe('three masters', () => {
    const service = `fleet-${randomBytes(4).toString('hex')}`;
    let hosts: Host[] = [];
    before(async () => {
      hosts = await startFleet(service, keyFile, { h2: { LIMIT_MAX: '20' } });
    });
    after(async () => {
      await Promise.all(hosts.map((h) => h.g.stop()));
    });

    test('fleet status lists every master and says whether they run one config and one code version', async () => {
      const r = await fleet('status', '--fleet', NATS, '--name', service, '--json');
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as { hosts: Array<{ host: string; ready: boolean; port: number; code: string }>; sameCode: boolean; sameConfig: boolean; ready: number };
      assert.deepEqual(
        s.hosts.map((h) => [h.host, h.ready, h.port]),
        hosts.map((h) => [h.id, true, h.g.port]),
      );
      assert.equal(s.sameCode, true);
      assert.equal(s.sameConfig, true);
      const text = await fleet('status', '--fleet', NATS, '--name', service);
      assert.match(text.stdout, /3 of 3 hosts ready; one config on every host; one code version on every host/);
      assert.match((await hosts[0]!.g.cli('status')).stdout, new RegExp(`^fleet nats://127\\.0\\.0\\.1:4222  connected since \\S+  registered as ${service}\\.h1$`, 'm'));
    });

    test('a rolling reload behind HAProxy under keep-alive load fails no request, and two operators together (--max-unavailable 1 and 34%) never reload two hosts at once', async () => {
      const lb = await startHaproxy({ backends: hosts.map((h) => ({ name: h.id, port: h.g.port })), dir: tempDir('graft-lb-'), onLine: (l) => record('haproxy', l) });
      try {
        const before = hosts.map((h) => reloadIntervals(h).length);
        const { failed, load, value } = await underLoad(
          lb.url,
          // One operator counts hosts, the other a share of them: 34% of 3 hosts is one host at a time too.
          () => Promise.all(['1', '34%'].map((most) => fleet('reload', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--max-unavailable', most, '--json'))),
          { connections: 32 },
        );
        for (const r of value) assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.ok(load.answered > 500, `only ${load.answered} requests answered`);
        assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
        // Each operator reloaded each host once: six reloads, none overlapping another host's.
        const intervals = hosts.flatMap((h, i) => reloadIntervals(h).slice(before[i]).map(([s, e]) => ({ host: h.id, s, e })));
        assert.equal(intervals.length, 6, JSON.stringify(intervals));
        for (const a of intervals) {
          for (const b of intervals) {
            if (a !== b && a.host !== b.host) assert.ok(a.e <= b.s || b.e <= a.s, `${a.host} and ${b.host} reloaded at once: ${JSON.stringify([a, b])}`);
          }
        }
        for (const h of hosts) assert.equal((await h.g.status()).master.generation, 3);
      } finally {
        await lb.stop();
      }
    });

    test('a config rollout refused by the second host stops there and puts the first host back', async () => {
      const r = await fleet('config', 'apply', '--set', 'limit=50', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--json');
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout) as { stoppedAt: string; notReached: string[]; rolledBack: Array<{ host: string; ok: boolean }>; steps: Array<{ host: string; ok: boolean; error?: { code: string; message: string } }> };
      assert.equal(report.stoppedAt, 'h2');
      assert.match(r.stderr, /^graft: GRAFT_FLEET_FAILED: the config rollout stopped at h2 \(GRAFT_CONFIG_INVALID: /m);
      assert.deepEqual(report.notReached, ['h3']);
      assert.equal(report.steps[1]!.error?.code, 'GRAFT_CONFIG_INVALID');
      assert.match(report.steps[1]!.error!.message, /limit/);
      assert.deepEqual(report.rolledBack, [{ host: 'h1', ok: true }]);
      for (const h of hosts) {
        const body = (await getFresh(h.g.url)).body;
        assert.match(body, /limit=10\n$/, `${h.id} serves ${body}`);
      }
      // A value every host takes goes everywhere.
      const ok = await fleet('config', 'apply', '--set', 'limit=15', '--fleet', NATS, '--name', service, '--bus-key', keyFile);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      for (const h of hosts) assert.match((await getFresh(h.g.url)).body, /limit=15\n$/);
    });

    test('with --no-rollback a config rollout refused by the second host leaves the first host changed, and says so', async () => {
      const r = await fleet('config', 'apply', '--set', 'limit=50', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--no-rollback', '--json');
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout) as { stoppedAt: string; notReached: string[]; rolledBack: unknown[]; steps: Array<{ host: string; ok: boolean }> };
      assert.equal(report.stoppedAt, 'h2');
      assert.deepEqual(report.notReached, ['h3']);
      assert.deepEqual(report.rolledBack, []);
      assert.deepEqual(
        report.steps.map((step) => [step.host, step.ok]),
        [
          ['h1', true],
          ['h2', false],
        ],
      );
      const served = await Promise.all(hosts.map(async (h) => /limit=(\d+)\n$/.exec((await getFresh(h.g.url)).body)?.[1]));
      assert.deepEqual(served, ['50', '15', '15'], 'h1 keeps the change; h2 refused it; h3 was not reached');
      const back = await fleet('config', 'apply', '--set', 'limit=15', '--fleet', NATS, '--name', service, '--bus-key', keyFile);
      assert.equal(back.code, 0, back.stdout + back.stderr);
      for (const h of hosts) assert.match((await getFresh(h.g.url)).body, /limit=15\n$/);
    });

    test('--slot-timeout: a rollout slot held by another operator for longer stops the rollout before any host changes (GRAFT_FLEET_BUSY)', async () => {
      const generations = await Promise.all(hosts.map(async (h) => (await h.g.status()).master.generation));
      const store = await FleetStore.open(parseFleetUrl(NATS));
      const slots = await store.slots();
      // Another machine's operator, mid-rollout: its slot stays held (refreshed) for as long as it works.
      await slots.create(`${service}.slot.0`, 'another-machine:pid:[1]:42');
      try {
        const r = await fleet('reload', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--slot-timeout', '1');
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /^graft: GRAFT_FLEET_FAILED: the reload rollout stopped at h1 \(GRAFT_FLEET_BUSY: every one of 1 rollout slot\(s\) of \S+ stayed taken for 1 s: another rollout is running/m);
        assert.match(r.stdout, /^reload stopped at h1; not reached: h2, h3$/m);
        assert.deepEqual(await Promise.all(hosts.map(async (h) => (await h.g.status()).master.generation)), generations, 'no host changed');
      } finally {
        await slots.delete(`${service}.slot.0`);
        await store.close();
      }
    });

    test('fleet config apply --reset takes every override away: each host serves its own config again', async () => {
      const r = await fleet('config', 'apply', '--reset', '--fleet', NATS, '--name', service, '--bus-key', keyFile);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const h of hosts) assert.match((await getFresh(h.g.url)).body, /limit=10\n$/, `${h.id} is back on its own limit`);
    });

    test('a broken version stops a reload rollout at the first host, which keeps serving its old generation', async () => {
      const generations = await Promise.all(hosts.map(async (h) => (await h.g.status()).master.generation));
      writeFileSync(hosts[0]!.entry, 'export default {;\n');
      const r = await fleet('reload', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--json');
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout) as { stoppedAt: string; notReached: string[]; steps: Array<{ host: string; ok: boolean; error?: { code: string } }> };
      assert.equal(report.stoppedAt, 'h1');
      assert.deepEqual(report.notReached, ['h2', 'h3']);
      assert.equal(report.steps[0]!.error?.code, 'GRAFT_BOOT_FAILED');
      for (const [i, h] of hosts.entries()) assert.equal((await h.g.status()).master.generation, generations[i]);
      assert.match((await getFresh(hosts[0]!.g.url)).body, /^h1 /);
      // Every host is ready: h1 still runs the code it ran before the broken files arrived.
      const s = JSON.parse((await fleet('status', '--fleet', NATS, '--name', service, '--json')).stdout) as { ready: number };
      assert.equal(s.ready, 3);
    });
  });

  test('a swap rollout: every host swaps in place; a host whose files are broken stops it, and the host already swapped is reported, not rolled back', async () => {
    const service = `fleet-swap-${randomBytes(4).toString('hex')}`;
    const hosts: Array<{ id: string; g: GraftProcess; write: (body: string) => void }> = [];
    try {
      for (const id of ['h1', 'h2']) {
        const dir = tempDir('graft-host-');
        const write = (body: string) => writeFileSync(join(dir, 'version.ts'), body);
        write(`export const version: string = 'v0';\n`);
        writeFileSync(join(dir, 'handler.ts'), `import type { IncomingMessage, ServerResponse } from 'node:http';\nimport { version } from './version.js';\nexport default function handle(_q: IncomingMessage, res: ServerResponse): void {\n  res.end(version);\n}\n`);
        const g = await startGraft(join(dir, 'handler.ts'), { workers: 2, cwd: dir, args: ['--swap', '--name', service, '--host-id', id, '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile] });
        hosts.push({ id, g, write });
      }
      for (const h of hosts) await h.g.waitForLog((r) => r.msg === 'registered in the fleet');
      for (const h of hosts) h.write(`export const version: string = 'v1';\n`);
      const ok = await fleet('swap', 'handler.ts', '--fleet', NATS, '--name', service, '--bus-key', keyFile);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      for (const h of hosts) assert.equal((await getFresh(h.g.url)).body, 'v1');
      const same = await fleet('status', '--fleet', NATS, '--name', service);
      assert.match(same.stdout, /one code version on every host/);

      hosts[0]!.write(`export const version: string = 'v2';\n`);
      hosts[1]!.write(`export const version: string = ;\n`);
      const r = await fleet('swap', 'handler.ts', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--json');
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout) as { stoppedAt: string; steps: Array<{ host: string; ok: boolean; error?: { code: string; message: string } }>; rolledBack: Array<{ host: string; ok: boolean; skipped?: string }> };
      assert.equal(report.stoppedAt, 'h2');
      assert.equal(report.steps[1]!.error?.code, 'GRAFT_SWAP_LOAD');
      assert.match(report.steps[1]!.error!.message, /version\.ts:1/);
      assert.deepEqual(report.rolledBack.map((b) => [b.host, b.ok]), [['h1', false]]);
      assert.match(report.rolledBack[0]!.skipped!, /cannot undo a reload or swap of the files on disk/);
      assert.equal((await getFresh(hosts[0]!.g.url)).body, 'v2');
      assert.equal((await getFresh(hosts[1]!.g.url)).body, 'v1', 'the broken version never went live on h2');
      const differ = await waitFor(async () => {
        const s = await fleet('status', '--fleet', NATS, '--name', service);
        return /code versions differ/.test(s.stdout) ? s : undefined;
      }, 15_000, 'the registry to show the code versions apart');
      assert.match(differ.stdout, /2 of 2 hosts ready/);
    } finally {
      await Promise.all(hosts.map((h) => h.g.stop()));
    }
  });

  test('a host in the middle of graft upgrade: the rollout\'s order waits behind the upgrade, the master that hands over refuses it, and its successor carries it out once', async () => {
    const service = `fleet-upgrading-${randomBytes(4).toString('hex')}`;
    const gates = tempDir('graft-gates-');
    const g = await startGraft(fixture('gated-app.ts'), { workers: 1, env: { GATE_DIR: gates }, args: ['--name', service, '--host-id', 'u1', '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile] });
    try {
      await g.waitForLog((r) => r.msg === 'registered in the fleet');
      const first = (await g.status()).master.pid;
      // The successor's workers (generation 2) wait for their gate: the upgrade holds the old master's arbiter meanwhile.
      const upgrade = g.cli('upgrade');
      await g.waitForLog((r) => r.msg === 'upgrade: starting a new master');
      // The registry may show the host busy already: --max-unavailable 2 lets the rollout go to it anyway.
      const rollout = fleet('config', 'apply', '--set', 'greeting=hi', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--max-unavailable', '2', '--json');
      const received = await g.waitForLog((r) => r.msg === 'order received' && r.pid === first);
      writeFileSync(join(gates, '2'), '');
      const up = await upgrade;
      assert.equal(up.code, 0, up.stderr);
      const r = await rollout;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const refused = g.logs.find((l) => l.msg === 'order failed' && l.id === received.id);
      assert.equal(refused?.code, 'GRAFT_STOPPING', 'the master that handed over refused the order it held');
      assert.equal(refused?.pid, first);
      const carried = g.logs.filter((l) => l.msg === 'order carried out');
      assert.equal(carried.length, 1, 'carried out once');
      assert.notEqual(carried[0]!.pid, first, 'by the successor');
      const status = await g.status();
      assert.equal(status.master.config?.version, 2);
      assert.deepEqual(status.master.orders, [carried[0]!.id]);
    } finally {
      await g.stop();
    }
  });

  test('a master in the registry that takes no orders is listed as such, and a rollout refuses before touching any host', async () => {
    const service = `fleet-deaf-${randomBytes(4).toString('hex')}`;
    const withBus = await startGraft(fixture('fleet-app.ts'), { workers: 1, args: ['--name', service, '--host-id', 'a1', '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile] });
    const deaf = await startGraft(fixture('fleet-app.ts'), { workers: 1, args: ['--name', service, '--host-id', 'a2', '--fleet', NATS] });
    try {
      for (const g of [withBus, deaf]) await g.waitForLog((r) => r.msg === 'registered in the fleet');
      const warned = await deaf.waitForLog((r) => r.code === 'GRAFT_FLEET_NO_ORDERS');
      assert.equal(warned.level, 'warn');
      const status = await fleet('status', '--fleet', NATS, '--name', service);
      assert.match(status.stdout, /^a2 .* NO /m);
      const r = await fleet('reload', '--fleet', NATS, '--name', service, '--bus-key', keyFile);
      assert.match(r.stderr, /^graft: GRAFT_FLEET_NO_ORDERS: a2 takes no orders on the fleet's NATS server/);
      for (const g of [withBus, deaf]) assert.equal((await g.status()).master.generation, 1, 'no host was touched');
    } finally {
      await Promise.all([withBus.stop(), deaf.stop()]);
    }
  });

  test('bad input: an unknown store, a missing key, no hosts, a bad --max-unavailable', async () => {
    const unknown = await fleet('status', '--fleet', 'etcd2://x', '--name', 'a');
    assert.match(unknown.stderr, /^graft: GRAFT_FLEET_URL: /);
    const down = await fleet('status', '--fleet', 'nats://127.0.0.1:1', '--name', 'a');
    assert.match(down.stderr, /^graft: GRAFT_STORE_UNREACHABLE: nats:\/\/127\.0\.0\.1:1 cannot be reached/);
    const nokey = await fleet('reload', '--fleet', NATS, '--name', 'a');
    assert.match(nokey.stderr, /^graft: GRAFT_BUS_KEY: graft fleet reload needs --bus-key FILE/);
    const empty = await fleet('reload', '--fleet', NATS, '--name', `none-${randomBytes(3).toString('hex')}`, '--bus-key', keyFile);
    assert.match(empty.stderr, /^graft: GRAFT_FLEET_EMPTY: /);
    const bad = await fleet('reload', '--fleet', NATS, '--name', 'a', '--bus-key', keyFile, '--max-unavailable', '0');
    assert.match(bad.stderr, /^graft: GRAFT_BAD_ARGUMENT: --max-unavailable/);
    const nobody = await fleet('status', '--fleet', NATS, '--name', `none-${randomBytes(3).toString('hex')}`);
    assert.match(nobody.stderr, /^graft: GRAFT_FLEET_EMPTY: no master of service none-/);
    const redis = await fleet('status', '--fleet', 'redis://127.0.0.1:6379', '--name', 'a');
    assert.match(redis.stderr, /^graft: GRAFT_FLEET_URL: --fleet "redis:\/\/127\.0\.0\.1:6379": graft keeps its fleet registry in NATS JetStream KV/);
    const badSet = await fleet('config', 'apply', '--set', 'limit', '--fleet', NATS, '--name', 'a', '--bus-key', keyFile);
    assert.match(badSet.stderr, /^graft: GRAFT_BAD_ARGUMENT: --set needs key\.path=value, got "limit"/);
    // Checked before the fleet's server is asked anything: with it down, that would be GRAFT_STORE_UNREACHABLE.
    const badUnset = await fleet('config', 'apply', '--unset', 'a..b', '--fleet', 'nats://127.0.0.1:1', '--name', 'a', '--bus-key', keyFile);
    assert.match(badUnset.stderr, /^graft: GRAFT_BAD_KEY_PATH: key path "a\.\.b"/);
    const secret = await fleet('status', '--fleet', 'nats://u:secret@127.0.0.1:99999', '--name', 'a');
    assert.match(secret.stderr, /^graft: GRAFT_FLEET_URL: --fleet "nats:\/\/u:\*\*\*@127\.0\.0\.1:99999": not a valid URL/);
    for (const r of [unknown, down, nokey, empty, bad, nobody, redis, badSet, badUnset, secret]) assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});
