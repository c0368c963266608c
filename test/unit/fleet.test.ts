import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { agreement, parseMaxUnavailable } from '../../src/cli/fleet-command.js';
import type { HostRecord } from '../../src/fleet/registration.js';

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
