import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { hmacKey, loadOrderKey, orderKeyFor } from '../../src/bus/order-key.js';
import { orderFromFlags } from '../../src/cli/order-body.js';
import { newOrder, OrderGuard, signOrder, signOutcome, verdict } from '../../src/bus/order.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-order-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function refused(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (err: { code?: string; message: string }) => {
    assert.equal(err.code, 'GRAFT_ORDER_REFUSED');
    assert.match(err.message, why);
    return true;
  });
}

describe('signed orders', () => {
  const key = hmacKey('test', randomBytes(32));
  const guard = () => new OrderGuard({ service: 'api', host: 'h1', key });

  test('a signed order for this service and host is admitted once; its replay is refused', () => {
    const g = guard();
    const order = signOrder(newOrder({ service: 'api', host: 'h1', action: 'swap', module: 'routes' }), key);
    const admitted = g.admit(JSON.stringify(order));
    assert.equal(admitted.module, 'routes');
    assert.equal((admitted as unknown as { sig?: string }).sig, undefined);
    refused(() => g.admit(JSON.stringify(order)), /already carried out/);
    assert.equal(guard().admit(signOrder(newOrder({ service: 'api', host: '*', action: 'reload' }), key)).host, '*');
  });

  test('unsigned, forged, tampered, stale, misaddressed and malformed orders are refused', () => {
    const g = guard();
    const body = newOrder({ service: 'api', host: 'h1', action: 'reload' });
    refused(() => g.admit(body), /not signed/);
    refused(() => g.admit(signOrder(body, hmacKey('other', randomBytes(32)))), /signature does not match/);
    refused(() => g.admit({ ...signOrder(body, key), action: 'swap' }), /signature does not match/);
    refused(() => g.admit({ ...signOrder({ ...body, id: 'x' }, key), module: '../../etc/evil.js' }), /only a swap order names a module|signature/);
    refused(() => g.admit(signOrder({ ...body, at: Date.now() - 60_000 }, key)), /signed 60 s from this host's clock/);
    refused(() => g.admit(signOrder({ ...body, service: 'web' }, key)), /for service "web"/);
    refused(() => g.admit(signOrder({ ...body, host: 'h2' }, key)), /for host "h2"/);
    refused(() => g.admit('{nope'), /not JSON/);
    refused(() => g.admit(signOrder({ ...body, action: 'exec' as 'reload' }, key)), /action "exec"/);
    refused(() => g.admit({ ...signOrder(body, key), path: '/tmp/x.js' }), /field graft does not know \("path"\)/);
  });

  test('Ed25519: the private key signs, the public key checks, and an HMAC-signed order is refused', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(join(dir, 'private.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    const signer = loadOrderKey(join(dir, 'private.pem'));
    const checker = loadOrderKey(join(dir, 'public.pem'));
    assert.equal(checker.canSign, false);
    const g = new OrderGuard({ service: 'api', host: 'h1', key: checker });
    g.admit(signOrder(newOrder({ service: 'api', host: 'h1', action: 'reload' }), signer));
    refused(() => g.admit(signOrder(newOrder({ service: 'api', host: 'h1', action: 'reload' }), key)), /signed with hmac-sha256/);
    assert.throws(() => signOrder(newOrder({ service: 'api', host: 'h1', action: 'reload' }), checker), /GRAFT_BUS_KEY|cannot sign/);
  });

  test('a config order signed before one its sender already had carried out is refused; other senders and other actions are not compared', () => {
    const g = guard();
    const at = Date.now();
    const config = (from: string, signedAt: number, value: string) => signOrder({ ...newOrder({ service: 'api', host: 'h1', action: 'config', config: { set: [`limit=${value}`] } }, from), at: signedAt }, key);
    g.admit(config('ops@laptop', at, 'new'));
    refused(() => g.admit(config('ops@laptop', at - 1500, 'old')), /a config order from "ops@laptop" signed 1\.5 s after this one was already carried out; this older one would undo it/);
    assert.equal(g.admit(config('ci@runner', at - 1500, 'ci')).from, 'ci@runner', "another sender's clock is not compared");
    assert.equal(g.admit(signOrder({ ...newOrder({ service: 'api', host: 'h1', action: 'reload' }, 'ops@laptop'), at: at - 1500 }, key)).action, 'reload');
    assert.equal(g.admit(config('ops@laptop', at + 10, 'newer')).config?.set?.[0], 'limit=newer');
    assert.match(newOrder({ service: 'api', host: 'h1', action: 'reload' }).from!, /^.+@.+$/, 'an order names its sender by default');
  });

  test('the order memory is a file every later master reads: a replay and a delayed config order stay refused; a corrupt file starts empty', () => {
    const memoryFile = join(dir, 'orders.json');
    const first = new OrderGuard({ service: 'api', host: 'h1', key, memoryFile });
    assert.equal(first.memoryAtStart, 'none');
    const newer = signOrder(newOrder({ service: 'api', host: 'h1', action: 'config', config: { set: ['a=2'] } }, 'ops@laptop'), key);
    first.admit(newer);
    assert.equal(statSync(memoryFile).mode & 0o777, 0o600);
    const next = new OrderGuard({ service: 'api', host: 'h1', key, memoryFile });
    assert.equal(next.memoryAtStart, 'loaded');
    refused(() => next.admit(newer), /already carried out \(a replay\)/);
    refused(() => next.admit(signOrder({ ...newOrder({ service: 'api', host: 'h1', action: 'config', config: { set: ['a=1'] } }, 'ops@laptop'), at: newer.at - 500 }, key)), /would undo it/);
    // Two masters side by side (an upgrade): what one carried out, the other refuses.
    const reload = signOrder(newOrder({ service: 'api', host: 'h1', action: 'reload' }), key);
    next.admit(reload);
    refused(() => first.admit(reload), /a replay/);
    writeFileSync(memoryFile, '{ not json');
    const fresh = new OrderGuard({ service: 'api', host: 'h1', key, memoryFile });
    assert.equal(fresh.memoryAtStart, 'corrupt');
    fresh.admit(signOrder(newOrder({ service: 'api', host: 'h1', action: 'reload' }), key));
  });

  test("a master's answer is signed with its key; the sender believes a signed one, never a forged success, and marks a failure it cannot verify", () => {
    const outcome = { id: 'o1', service: 'api', host: 'h1', action: 'reload' as const, ok: true, value: { generation: 2 }, at: Date.now() };
    const signed = signOutcome(outcome, key);
    assert.equal(signed.alg, 'hmac-sha256');
    assert.deepEqual(verdict(signed, key), { is: 'believed' });
    assert.deepEqual(verdict(signOutcome({ ...outcome, ok: false }, key), key), { is: 'believed' });
    assert.deepEqual(verdict({ ...signOutcome({ ...outcome, ok: false }, key), ok: true }, key), { is: 'forged', why: 'its signature does not match the fleet key' });
    assert.deepEqual(verdict(signOutcome(outcome, hmacKey('other', randomBytes(32))), key), { is: 'forged', why: 'its signature does not match the fleet key' });
    assert.deepEqual(verdict(outcome, key), { is: 'forged', why: 'it is not signed, and every master of an HMAC fleet signs its answers' });
    // A master refusing an order signed with another key signs its refusal with its own: shown, marked, never retried on.
    assert.deepEqual(verdict({ ...outcome, ok: false }, key), { is: 'unverified', why: 'it is not signed' });
    assert.deepEqual(verdict(signOutcome({ ...outcome, ok: false }, hmacKey('other', randomBytes(32))), key), { is: 'unverified', why: 'its signature does not match the fleet key' });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(join(dir, 'answers.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'answers.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
    const sender = loadOrderKey(join(dir, 'answers.pem'));
    const master = loadOrderKey(join(dir, 'answers.pub'));
    assert.equal(signOutcome(outcome, master).sig, undefined, 'a master holding the public key cannot sign');
    assert.deepEqual(verdict(signOutcome(outcome, master), sender), { is: 'believed' });
    assert.equal(verdict({ ...outcome, alg: 'ed25519', sig: 'AAAA' }, sender).is, 'forged');
  });

  test('order memory: an order released by a master that was handing over may be taken by the next; entries from the future are dropped', () => {
    const memoryFile = join(dir, 'released.json');
    const old = new OrderGuard({ service: 'api', host: 'h1', key, memoryFile });
    const order = signOrder(newOrder({ service: 'api', host: 'h1', action: 'config', config: { set: ['a=1'] } }, 'ops@laptop'), key);
    old.release(old.admit(order));
    const successor = new OrderGuard({ service: 'api', host: 'h1', key, memoryFile });
    assert.equal(successor.admit(order).id, order.id);
    refused(() => successor.admit(order), /a replay/);
    writeFileSync(memoryFile, JSON.stringify({ seen: [['from-the-future', Date.now() + 3_600_000]], latest: [['ops@laptop', Date.now() + 3_600_000]] }));
    const next = new OrderGuard({ service: 'api', host: 'h1', key, memoryFile });
    next.admit(signOrder(newOrder({ service: 'api', host: 'h1', action: 'config', config: { set: ['a=2'] } }, 'ops@laptop'), key));
  });

  test('key files: too short a secret, a missing file and an RSA key are GRAFT_BUS_KEY', () => {
    writeFileSync(join(dir, 'short'), 'abc\n');
    assert.throws(() => loadOrderKey(join(dir, 'short')), /GRAFT_BUS_KEY|at least 32/);
    assert.throws(() => loadOrderKey(join(dir, 'missing')), (e: { code?: string }) => e.code === 'GRAFT_BUS_KEY');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    writeFileSync(join(dir, 'rsa.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    assert.throws(() => loadOrderKey(join(dir, 'rsa.pem')), /rsa key/);
    writeFileSync(join(dir, 'secret'), randomBytes(32).toString('hex'));
    assert.equal(loadOrderKey(join(dir, 'secret')).alg, 'hmac-sha256');
  });
});

describe('orders from the command line (graft order and graft fleet)', () => {
  const code = (c: string, why: RegExp) => (err: Error & { code?: string }) => err.code === c && why.test(err.message);

  test('a missing --bus-key is GRAFT_BUS_KEY whether the key checks or signs; a public key does not sign', () => {
    assert.throws(() => orderKeyFor('check', undefined, '--bus'), code('GRAFT_BUS_KEY', /^--bus needs --bus-key FILE: the key every order is checked with/));
    assert.throws(() => orderKeyFor('sign', undefined, 'graft fleet reload'), code('GRAFT_BUS_KEY', /^graft fleet reload needs --bus-key FILE: the key that signs orders/));
    const { publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(join(dir, 'only-public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    assert.equal(orderKeyFor('check', 'only-public.pem', '--bus', dir).canSign, false);
    assert.throws(() => orderKeyFor('sign', join(dir, 'only-public.pem'), 'graft order reload'), code('GRAFT_BUS_KEY', /is a public key: it checks orders but cannot sign them/));
  });

  test('one body for every command: the action, its module and its config changes', () => {
    writeFileSync(join(dir, 'fleet.key'), randomBytes(32).toString('hex'));
    const flags = { 'bus-key': join(dir, 'fleet.key') };
    const { key, order } = orderFromFlags('order swap', 'swap', 'routes', flags);
    assert.equal(key.canSign, true);
    assert.deepEqual(order, { action: 'swap', module: 'routes' });
    assert.deepEqual(orderFromFlags('fleet reload', 'reload', undefined, flags).order, { action: 'reload' });
    assert.deepEqual(orderFromFlags('fleet config apply', 'config', undefined, flags).order, { action: 'config' });
    assert.deepEqual(orderFromFlags('order config', 'config', undefined, { ...flags, set: ['db.pool=20'], unset: ['a.b'], reset: true }).order, {
      action: 'config',
      config: { set: ['db.pool=20'], unset: ['a.b'], reset: true },
    });
  });

  test('a bad --set or --unset, or config changes on another action, fail before anything is sent', () => {
    const flags = { 'bus-key': join(dir, 'fleet.key') };
    writeFileSync(flags['bus-key'], randomBytes(32).toString('hex'));
    for (const command of ['order config', 'fleet config apply']) {
      assert.throws(() => orderFromFlags(command, 'config', undefined, { ...flags, set: ['limit'] }), code('GRAFT_BAD_ARGUMENT', /--set needs key\.path=value, got "limit"/));
      assert.throws(() => orderFromFlags(command, 'config', undefined, { ...flags, set: ['a..b=1'] }), code('GRAFT_BAD_KEY_PATH', /"a\.\.b"/));
      assert.throws(() => orderFromFlags(command, 'config', undefined, { ...flags, unset: ['x.'] }), code('GRAFT_BAD_KEY_PATH', /"x\."/));
    }
    assert.throws(() => orderFromFlags('order reload', 'reload', undefined, { ...flags, set: ['a=1'] }), code('GRAFT_BAD_ARGUMENT', /--set, --unset and --reset go with a config order/));
  });
});
