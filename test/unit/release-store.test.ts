import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { create } from 'tar';
import { parseOrder } from '../../src/bus/order.js';
import { entryInRelease, ReleaseStore } from '../../src/releases/release-store.js';

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function dir(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'graft-release-'));
  made.push(d);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(d, name, '..'), { recursive: true });
    writeFileSync(join(d, name), text);
  }
  return d;
}

function store(keep = 5): ReleaseStore {
  return new ReleaseStore(join(dir({}), '.graft', 'releases', 'svc'), 'app.js', keep);
}

describe('the release store', () => {
  test('the same files give the same id, from a directory or a tarball with a top folder; packages and .git stay out', async () => {
    const s = store();
    const files = { 'app.js': 'console.log(1)', 'lib/x.js': 'export {}', 'node_modules/p/index.js': 'big', '.git/HEAD': 'ref' };
    const one = await s.stage(dir(files));
    assert.equal(one.existed, false);
    assert.match(one.release.id, /^[0-9a-f]{32}$/);
    assert.ok(!existsSync(join(one.release.dir, 'node_modules')) && !existsSync(join(one.release.dir, '.git')));
    assert.equal(statSync(join(one.release.dir, 'app.js')).mode & 0o222, 0, 'files are read-only');
    const packed = join(dir({}), 'r.tgz');
    await create({ gzip: true, file: packed, cwd: dir(files), prefix: 'package' }, ['app.js', 'lib']);
    const again = await s.stage(packed);
    assert.deepEqual(again, { release: one.release, existed: true });
    const other = await s.stage(dir({ ...files, 'app.js': 'console.log(2)' }));
    assert.notEqual(other.release.id, one.release.id);
  });

  test('a release changed after staging, and one fetched under another id, are refused', async () => {
    const s = store();
    const { release } = await s.stage(dir({ 'app.js': 'a' }));
    chmodSync(join(release.dir, 'app.js'), 0o644);
    writeFileSync(join(release.dir, 'app.js'), 'b');
    assert.throws(() => s.verify(release.id), { code: 'GRAFT_RELEASE_TAMPERED' });
    await assert.rejects(s.stage(dir({ 'app.js': 'c' }), { expect: '0123456789abcdef0123456789abcdef' }), { code: 'GRAFT_RELEASE_TAMPERED', message: /fetched as release 0123456789abcdef0123456789abcdef digest to [0-9a-f]{32}: refused/ });
    assert.throws(() => s.resolve('ffff'), { code: 'GRAFT_RELEASE_UNKNOWN' });
    await assert.rejects(s.stage(dir({ 'server.js': 'x' })), { code: 'GRAFT_RELEASE_NO_ENTRY' });
  });

  test('--keep-releases counts good releases only; the newest failed ones are kept as many, the rest go', async () => {
    const s = store(2);
    const ids: string[] = [];
    for (const v of ['1', '2', '3']) {
      const { release } = await s.stage(dir({ 'app.js': v }));
      s.wentLive(release.id, { version: 1 });
      ids.push(release.id);
    }
    const failed: string[] = [];
    for (const v of ['f1', 'f2', 'f3']) {
      const { release } = await s.stage(dir({ 'app.js': v }));
      s.ended(release.id, 'failed', 'did not boot');
      failed.push(release.id);
    }
    const outcomes = Object.fromEntries(s.list().map((r) => [r.id, r.outcome]));
    assert.deepEqual(outcomes, { [ids[1]!]: 'previous', [ids[2]!]: 'live', [failed[1]!]: 'failed', [failed[2]!]: 'failed' });
    assert.ok(!s.has(ids[0]!) && !s.has(failed[0]!), 'what is pushed out leaves the disk too');
    assert.equal(s.previousGood(ids[2])?.id, ids[1]);
    // A new store on the same folder reads the same list (a restarted master).
    assert.deepEqual(new ReleaseStore(s.root, 'app.js', 2).live()?.id, ids[2]);
  });

  test('a link out of the release is refused; a node_modules added later is tampering; the same files deployed again repair it', async () => {
    const s = store();
    const outside = dir({ 'app.js': 'x' });
    const linked = dir({ 'app.js': 'a' });
    symlinkSync(join(outside, 'app.js'), join(linked, 'abs.js'));
    await assert.rejects(s.stage(linked), { code: 'GRAFT_RELEASE_SOURCE', message: /the link abs\.js points to .*, outside the release/ });
    const up = dir({ 'app.js': 'a' });
    symlinkSync('../elsewhere', join(up, 'up'));
    await assert.rejects(s.stage(up), { code: 'GRAFT_RELEASE_SOURCE', message: /the link up points to \.\.\/elsewhere/ });
    const inside = dir({ 'app.js': 'a', 'lib/x.js': 'x' });
    symlinkSync('lib/x.js', join(inside, 'x.js'));
    const { release } = await s.stage(inside);
    mkdirSync(join(release.dir, 'node_modules'));
    assert.throws(() => s.verify(release.id), { code: 'GRAFT_RELEASE_TAMPERED', message: /deploy the release's files again to put it right/ });
    const again = await s.stage(inside);
    assert.equal(again.release.id, release.id);
    assert.doesNotThrow(() => s.verify(release.id));
  });

  test('--keep-releases 1: the release a health gate would roll back to stays until the gate is over; a good release that fails to boot once stays good', async () => {
    const s = store(1);
    const one = (await s.stage(dir({ 'app.js': '1' }))).release.id;
    s.wentLive(one, {});
    const two = (await s.stage(dir({ 'app.js': '2' }))).release.id;
    s.wentLive(two, {}, [one]);
    assert.ok(s.has(one), 'kept while the gate runs');
    s.prune();
    assert.ok(!s.has(one), 'gone once the gate passed');
    const t = store(3);
    const a = (await t.stage(dir({ 'app.js': 'a' }))).release.id;
    t.wentLive(a, {});
    t.wentLive((await t.stage(dir({ 'app.js': 'b' }))).release.id, {});
    await t.stage(dir({ 'app.js': 'a' }));
    t.ended(a, 'failed', 'port in use');
    assert.equal(t.record(a)?.outcome, 'previous');
  });

  test('an entry outside the service directory has no releases', () => {
    assert.equal(entryInRelease('/srv/app', '/srv/app/dist/server.js'), 'dist/server.js');
    assert.equal(entryInRelease('/srv/app', '/srv/other/server.js'), undefined);
  });
});

describe('deploy and rollback orders', () => {
  const signed = (fields: Record<string, unknown>) => ({ service: 's', host: '*', id: 'x', at: Date.now(), alg: 'hmac-sha256', sig: 'c2ln', ...fields });
  test('name a release by its id only', () => {
    assert.equal(parseOrder(signed({ action: 'deploy', release: '0123456789abcdef0123456789abcdef' })).release, '0123456789abcdef0123456789abcdef');
    assert.equal(parseOrder(signed({ action: 'rollback', release: null })).release, null);
    for (const release of ['../evil', '/tmp/x', 'ABCDEF0123456789ABCDEF0123456789', '0123', undefined]) {
      assert.throws(() => parseOrder(signed({ action: 'deploy', release })), { code: 'GRAFT_ORDER_REFUSED', message: /names its release by id/ });
    }
    assert.throws(() => parseOrder(signed({ action: 'reload', release: '0123456789abcdef0123456789abcdef' })), { message: /only a deploy or rollback order names a release/ });
    assert.throws(() => parseOrder(signed({ action: 'rollback', release: '0123456789abcdef0123456789abcdef', healthyMs: 5 })), { message: /healthyMs/ });
  });
});
