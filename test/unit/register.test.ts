// Type-level test (checked by `npm run typecheck`): declaring Register types config.current everywhere.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Config } from '../../src/index.js';

declare module '../../src/index.js' {
  interface Register {
    config: { greeting: string; db: { pool: number } };
  }
}

test('Register types the global config', () => {
  const read = (c: Config): number => c.db.pool;
  // @ts-expect-error greeting is a string, not a number
  const wrong: number = ({ greeting: 'x', db: { pool: 1 } } as Config).greeting;
  assert.equal(read({ greeting: 'hi', db: { pool: 3 } }), 3);
  void wrong;
});
