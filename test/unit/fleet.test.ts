import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { agreement, parseMaxUnavailable } from '../../src/cli/fleet-command.js';
import type { HostRecord } from '../../src/fleet/registration.js';
import { CodeScan, codeVersion } from '../../src/pool/code-version.js';
import { hostname } from 'node:os';
import { FleetStore } from '../../src/fleet/fleet-store.js';
import { RolloutSlots } from '../../src/fleet/rollout-semaphore.js';
import { parseFleetUrl } from '../../src/net/fleet-url.js';

describe('fleet', () => {
  test('--max-unavailable: hosts or a percentage of them, at least one', () => {
    assert.equal(parseMaxUnavailable(undefined, 10), 1);
    assert.equal(parseMaxUnavailable('3', 10), 3);
    assert.equal(parseMaxUnavailable('25%', 10), 2);
    assert.equal(parseMaxUnavailable('10%', 3), 1);
    assert.equal(parseMaxUnavailable('100%', 7), 7);
    for (const bad of ['0', '-1', 'x', '101%', '1.5', '']) {
      assert.throws(() => parseMaxUnavailable(bad, 3), (e: { code?: string }) => e.code === 'GRAFT_BAD_ARGUMENT', bad);
    }
  });

  test('agreement: one config and one code version, by content, whatever the version numbers', () => {
    const host = (host: string, version: number, hash: string, code: string, ready = true) => ({ host, ready, config: { version, hash }, code }) as HostRecord;
    assert.deepEqual(agreement([host('a', 3, 'h1', 'c1'), host('b', 5, 'h1', 'c1')]), { sameConfig: true, sameCode: true, ready: 2 });
    assert.deepEqual(agreement([host('a', 3, 'h1', 'c1'), host('b', 3, 'h2', 'c2', false)]), { sameConfig: false, sameCode: false, ready: 1 });
  });
});

test('code version: the same files in two places are one version; a change is another; an entry the master does not build is scanned', async () => {
  const hosts = [mkdtempSync(join(tmpdir(), 'graft-code-')), mkdtempSync(join(tmpdir(), 'graft-code-'))];
  try {
    for (const dir of hosts) {
      writeFileSync(join(dir, 'app.js'), "import { n } from './lib.js';\nimport 'node:http';\nconsole.log(n);\n");
      writeFileSync(join(dir, 'lib.js'), 'export const n = 1;\n');
    }
    const [a, b] = hosts.map((dir) => codeVersion([join(dir, 'app.js'), join(dir, 'lib.js')], dir));
    assert.match(a!, /^[0-9a-f]{12}$/);
    assert.equal(a, b);
    const scans = hosts.map((dir) => new CodeScan(join(dir, 'app.js')));
    try {
      assert.equal(await scans[0]!.version(), a, 'the scan lists the entry and the files it imports');
      assert.equal(await scans[1]!.version(), a);
      writeFileSync(join(hosts[1]!, 'lib.js'), 'export const n = 2;\n');
      const changed = await scans[1]!.version();
      assert.notEqual(changed, a);
      assert.equal(changed, codeVersion([join(hosts[1]!, 'app.js'), join(hosts[1]!, 'lib.js')], hosts[1]!));
      writeFileSync(join(hosts[1]!, 'lib.js'), 'export const n = ;\n');
      assert.equal(await scans[1]!.version(), undefined, 'an entry that does not build has no version');
    } finally {
      await Promise.all(scans.map((s) => s.close()));
    }
  } finally {
    for (const dir of hosts) rmSync(dir, { recursive: true, force: true });
  }
});

test('rollout slots: a slot whose holder died on this machine is free at once; one held elsewhere (another host, another pid namespace) waits for its TTL', async () => {
  const store = await FleetStore.open(parseFleetUrl('nats://127.0.0.1:4222'));
  const service = `slots-${process.pid}-${Date.now()}`;
  try {
    const kv = await store.slots();
    // A pid that cannot run: above Linux's pid_max.
    await kv.create(`${service}.slot.0`, RolloutSlots.localHolder().replace(/:\d+$/, ':4194305'));
    const mine = new RolloutSlots(kv, service, 1, RolloutSlots.localHolder(), 30_000);
    const held = await mine.acquire(5_000);
    assert.equal(held.key, `${service}.slot.0`);
    await held.release();
    await kv.create(`${service}.slot.0`, `${hostname()}:pid:[1]:1`);
    await assert.rejects(mine.acquire(300), { code: 'GRAFT_FLEET_BUSY' });
    await kv.delete(`${service}.slot.0`);
  } finally {
    await store.close();
  }
});
