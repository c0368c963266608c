import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfigArg } from '../../src/net/source-url.js';
import { GraftError } from '../../src/core/errors.js';

const store = (value: string) => {
  const arg = parseConfigArg(value, '/srv/app');
  assert.equal(arg.kind, 'store');
  return arg.kind === 'store' ? arg.address : undefined!;
};

describe('--config values: files and store URLs', () => {
  test('paths and file:// URLs are files', () => {
    assert.deepEqual(parseConfigArg('conf/app.yaml', '/srv/app'), { kind: 'file', path: '/srv/app/conf/app.yaml' });
    assert.deepEqual(parseConfigArg('file:///etc/app.toml', '/srv/app'), { kind: 'file', path: '/etc/app.toml' });
  });

  test('NATS: bucket and dotted prefix; credentials never in the name', () => {
    const a = store('nats://graft:s3cret@10.0.0.5:4223/config/app/web');
    assert.deepEqual([a.scheme, a.host, a.port, a.user, a.password, a.bucket, a.path, a.name], ['nats', '10.0.0.5', 4223, 'graft', 's3cret', 'config', 'app.web', 'nats://10.0.0.5:4223/config/app/web']);
    assert.equal(a.display, 'nats://graft:***@10.0.0.5:4223/config/app/web');
    assert.equal(store('nats://localhost/config').port, 4222);
    assert.equal(store('nats://localhost/config').path, '');
    // How often the bucket's status is checked; the cache file's name does not change with it.
    assert.deepEqual([store('nats://localhost/config/app?reconcile=2').params.get('reconcile'), store('nats://localhost/config/app?reconcile=2').name], ['2', 'nats://localhost:4222/config/app']);
    assert.throws(() => store('nats://localhost/config?reconcile=0'), { code: 'GRAFT_STORE_URL', message: /\?reconcile=0 is not a positive number of seconds/ });
    assert.throws(() => store('nats://localhost/config?ttl=5'), { code: 'GRAFT_STORE_URL', message: /\?ttl= is not a NATS option graft knows \(reconcile\)/ });
  });

  test('etcd: the path is the key prefix; Redis: one key, channel and reconcile as parameters', () => {
    const e = store('etcd://127.0.0.1:2379/services/app');
    assert.deepEqual([e.path, e.name], ['/services/app', 'etcd://127.0.0.1:2379/services/app']);
    const r = store('redis://:pw@127.0.0.1/app:config?channel=cfg&reconcile=5');
    assert.deepEqual([r.port, r.password, r.path, r.params.get('channel'), r.params.get('reconcile'), r.name], [6379, 'pw', 'app:config', 'cfg', '5', 'redis://127.0.0.1:6379/app:config']);
    assert.equal(store('redis://127.0.0.1/k?db=2').name, 'redis://127.0.0.1:6379/k?db=2');
  });

  test('IPv6: the host in brackets, as URLs write it, in the server and the name', () => {
    const n = store('nats://[::1]/config');
    assert.deepEqual([n.host, n.port, n.server, n.name], ['[::1]', 4222, '[::1]:4222', 'nats://[::1]:4222/config']);
    const e = store('etcd://u:pw@[fd00::1]:2380/app');
    assert.deepEqual([e.host, e.server, e.name, e.display], ['[fd00::1]', '[fd00::1]:2380', 'etcd://[fd00::1]:2380/app', 'etcd://u:***@[fd00::1]:2380/app']);
    assert.deepEqual([store('redis://[::1]/k').server, store('redis://[::1]/k').name], ['[::1]:6379', 'redis://[::1]:6379/k']);
  });

  test('every store scheme: the password never in the name, the display or a message', () => {
    for (const scheme of ['nats', 'etcd', 'redis']) {
      const a = store(`${scheme}://u:top%40secret@127.0.0.1/a`);
      assert.equal(a.password, 'top@secret');
      assert.ok(!a.name.includes('u:') && !a.name.includes('secret'), a.name);
      assert.equal(a.display, `${scheme}://u:***@127.0.0.1/a`);
      for (const bad of [`${scheme}://u:top@secret@127.0.0.1`, `${scheme}://u:secret@127.0.0.1:99999/a`, `${scheme}://u:secret@/a`]) {
        assert.throws(() => parseConfigArg(bad, '/'), (err: Error & { code?: string }) => err.code === 'GRAFT_STORE_URL' && err.message.includes('u:***@') && !err.message.includes('secret'), bad);
      }
    }
  });

  test('an unknown scheme or a URL missing its bucket, prefix or key is GRAFT_STORE_URL naming the value and the forms', () => {
    for (const [value, why] of [
      ['consul://127.0.0.1:8500/app', /unknown scheme consul:\/\//],
      ['nats://127.0.0.1:4222', /name the KV bucket/],
      ['nats://127.0.0.1:4222/bad.bucket', /bucket "bad\.bucket"/],
      ['etcd://127.0.0.1:2379', /name the key prefix/],
      ['redis://127.0.0.1:6379/a/b', /name one key/],
    ] as const) {
      assert.throws(
        () => parseConfigArg(value, '/'),
        (err: unknown) => err instanceof GraftError && err.code === 'GRAFT_STORE_URL' && why.test(err.message) && err.message.includes('graft knows nats://'),
        value,
      );
    }
    assert.throws(() => parseConfigArg('redis://u:topsecret@h:1/k/x', '/'), (err: Error) => !err.message.includes('topsecret'));
  });
});
