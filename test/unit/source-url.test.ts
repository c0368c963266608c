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
    assert.deepEqual([a.scheme, a.host, a.port, a.username, a.password, a.bucket, a.path, a.display], ['nats', '10.0.0.5', 4223, 'graft', 's3cret', 'config', 'app.web', 'nats://10.0.0.5:4223/config/app/web']);
    assert.equal(store('nats://localhost/config').port, 4222);
    assert.equal(store('nats://localhost/config').path, '');
  });

  test('etcd: the path is the key prefix; Redis: one key, channel and reconcile as parameters', () => {
    const e = store('etcd://127.0.0.1:2379/services/app');
    assert.deepEqual([e.path, e.display], ['/services/app', 'etcd://127.0.0.1:2379/services/app']);
    const r = store('redis://:pw@127.0.0.1/app:config?channel=cfg&reconcile=5');
    assert.deepEqual([r.port, r.password, r.path, r.params.get('channel'), r.params.get('reconcile'), r.display], [6379, 'pw', 'app:config', 'cfg', '5', 'redis://127.0.0.1:6379/app:config']);
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
