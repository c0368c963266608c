import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseBusUrl } from '../../src/net/bus-url.js';
import { parseFleetUrl } from '../../src/net/fleet-url.js';
import { hostId, sanitizeName, serviceName } from '../../src/bus/names.js';
import { looksLikePath, toCommand } from '../../src/bus/order-desk.js';
import { newOrder } from '../../src/bus/order.js';

describe('bus addresses and names', () => {
  test('nats:// and amqp:// with credentials; the password never shows', () => {
    const n = parseBusUrl('nats://u:p%40ss@10.0.0.1:4223');
    assert.deepEqual([n.scheme, n.server, n.user, n.password, n.display], ['nats', '10.0.0.1:4223', 'u', 'p@ss', 'nats://u:***@10.0.0.1:4223']);
    const a = parseBusUrl('amqp://guest:guest@rabbit/prod');
    assert.deepEqual([a.scheme, a.server, a.display], ['amqp', 'rabbit:5672', 'amqp://guest:***@rabbit/prod']);
    for (const bad of ['redis://x:6379', 'http://x', 'not a url', 'nats://']) {
      assert.throws(() => parseBusUrl(bad), (e: { code?: string }) => e.code === 'GRAFT_BUS_URL', bad);
    }
  });

  test('IPv6: the host in brackets, as URLs write it', () => {
    const n = parseBusUrl('nats://[::1]');
    assert.deepEqual([n.host, n.port, n.server, n.display], ['[::1]', 4222, '[::1]:4222', 'nats://[::1]']);
    const a = parseBusUrl('amqp://guest:guest@[fd00::5]:5673/prod');
    assert.deepEqual([a.host, a.server, a.display], ['[fd00::5]', '[fd00::5]:5673', 'amqp://guest:***@[fd00::5]:5673/prod']);
  });

  test('a bad --bus is reported without its password, whatever is wrong with it', () => {
    for (const bad of ['nats://u:secret@host:99999', 'redis://u:secret@host:6379', 'amqp://u:top@secret@[::1', 'http://u:secret@x']) {
      assert.throws(
        () => parseBusUrl(bad),
        (e: Error & { code?: string }) => e.code === 'GRAFT_BUS_URL' && e.message.startsWith('--bus "') && !e.message.includes('secret'),
        bad,
      );
    }
  });

  test('--fleet: a NATS server only, its own error code, never its password', () => {
    const f = parseFleetUrl('nats://u:secret@[::1]:4223');
    assert.deepEqual([f.scheme, f.server, f.user, f.password, f.display], ['nats', '[::1]:4223', 'u', 'secret', 'nats://u:***@[::1]:4223']);
    for (const [bad, why] of [
      ['redis://u:secret@127.0.0.1:6379', /graft keeps its fleet registry in NATS JetStream KV/],
      ['nats://u:top@secret@127.0.0.1:4222/bucket', /give the server only/],
      ['nats://u:secret@127.0.0.1:99999', /not a valid URL/],
      ['nats://', /no host/],
    ] as const) {
      assert.throws(() => parseFleetUrl(bad), (e: Error & { code?: string }) => e.code === 'GRAFT_FLEET_URL' && why.test(e.message) && !e.message.includes('secret'), bad);
    }
  });

  test('service and host names default to sanitized file and host names', () => {
    assert.equal(serviceName(undefined, '/srv/app/my.server.ts'), 'my-server');
    assert.equal(sanitizeName('web-01.eu.example.com'), 'web-01-eu-example-com');
    assert.match(hostId(undefined), /^[A-Za-z0-9_-]{1,64}$/);
    assert.throws(() => serviceName('a b', '/x.ts'), /--name/);
  });
});

describe('orders as commands', () => {
  test('a module name is not a path', () => {
    for (const name of ['handler.ts', 'src/rules.ts', 'lib/a-b_c.js']) assert.equal(looksLikePath(name), false, name);
    for (const name of ['/etc/x.js', '../x.ts', 'src/../../x.ts', './x.ts', '~/x.ts', 'C:/x.ts', 'a\\b.ts', 'file:///x.js', 'data:text/javascript,1', 'a//b.ts', 'a/']) {
      assert.equal(looksLikePath(name), true, name);
    }
  });

  test('each action is the command the control socket would send, carrying the order id', () => {
    const base = { service: 's', host: '*' };
    const command = (o: Parameters<typeof newOrder>[0]) => {
      const order = newOrder(o);
      return { order, command: toCommand(order) };
    };
    let c = command({ ...base, action: 'reload' });
    assert.deepEqual(c.command, { kind: 'reload', reason: 'bus', orders: [c.order.id] });
    c = command({ ...base, action: 'swap', module: 'h.ts' });
    assert.deepEqual(c.command, { kind: 'swap', order: { source: 'bus', module: 'h.ts' }, orders: [c.order.id] });
    c = command({ ...base, action: 'swap' });
    assert.deepEqual(c.command, { kind: 'swap', order: { source: 'bus' }, orders: [c.order.id] });
    c = command({ ...base, action: 'config' });
    assert.deepEqual(c.command, { kind: 'config', source: 'bus', orders: [c.order.id] });
    c = command({ ...base, action: 'config', config: { set: ['a=1'] } });
    assert.deepEqual(c.command, { kind: 'config', source: 'bus', orders: [c.order.id], overrides: { set: ['a=1'], unset: [], reset: false } });
    c = command({ ...base, action: 'config', config: { undo: 'abc' } });
    assert.deepEqual(c.command, { kind: 'config', source: 'bus (undo abc)', orders: [c.order.id], overrides: { set: [], unset: [], reset: false, undo: 'abc' } });
  });
});
