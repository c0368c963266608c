import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { hmacKey, loadOrderKey } from '../../src/bus/order-key.js';
import { newOrder, OrderGuard, signOrder } from '../../src/bus/order.js';

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
