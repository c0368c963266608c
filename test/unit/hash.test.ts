import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shortHash } from '../../src/core/hash.js';

test('shortHash is sha256 cut to 12 hex, and parts hash as their concatenation', () => {
  assert.equal(shortHash(''), 'e3b0c44298fc');
  assert.equal(shortHash('abc'), 'ba7816bf8f01');
  assert.equal(shortHash(['a', Buffer.from('b'), 'c']), shortHash('abc'));
  assert.equal(shortHash(Buffer.from('abc')), 'ba7816bf8f01');
});
