import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { forwardedFor, sessionId } from '../../src/pool/sticky-router.js';

describe('--sticky reads a session and a client from a request head', () => {
  test('the Engine.IO session id is taken from the request line only', () => {
    assert.equal(sessionId('GET /socket.io/?EIO=4&transport=polling&sid=abc123 HTTP/1.1\r\nHost: x\r\n\r\n'), 'abc123');
    assert.equal(sessionId('GET /socket.io/?sid=first&t=1 HTTP/1.1\r\n\r\n'), 'first');
    assert.equal(sessionId('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nReferer: http://x/?sid=zzz\r\n\r\n'), undefined);
    assert.equal(sessionId('GET /?side=1 HTTP/1.1\r\n\r\n'), undefined);
  });

  test('the client is the first X-Forwarded-For address, in the headers only', () => {
    assert.equal(forwardedFor('GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 1.2.3.4\r\n\r\n'), '10.0.0.1');
    assert.equal(forwardedFor('GET / HTTP/1.1\r\nx-forwarded-for:10.0.0.2\r\n\r\n'), '10.0.0.2');
    assert.equal(forwardedFor('POST / HTTP/1.1\r\nHost: x\r\n\r\nX-Forwarded-For: 9.9.9.9\r\n'), undefined, 'a body is not a header');
    assert.equal(forwardedFor('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), undefined);
  });
});
