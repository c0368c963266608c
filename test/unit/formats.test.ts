import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as v from 'valibot';
import { type } from 'arktype';
import { z } from 'zod';
import { coerce, envKeyPath, parseConfigText } from '../../src/config/formats.js';
import { touches } from '../../src/config/key-path.js';
import { validateConfig } from '../../src/config/schema.js';
import { changedPaths, contentHash, deepFreeze, mergeLayers } from '../../src/config/snapshot.js';

function parseFails(text: string, file: string, format: 'json' | 'yaml' | 'toml' | 'env', where: RegExp) {
  assert.throws(
    () => parseConfigText(text, file, format),
    (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'GRAFT_CONFIG_PARSE');
      assert.match(err.message, where);
      return true;
    },
  );
}

describe('config formats', () => {
  test('each format parses into the same object', () => {
    const want = { db: { host: 'x', pool: 5 }, tags: ['a', 'b'] };
    assert.deepEqual(parseConfigText('{"db":{"host":"x","pool":5},"tags":["a","b"]}', 'c.json', 'json'), want);
    assert.deepEqual(parseConfigText('db:\n  host: x\n  pool: 5\ntags: [a, b]\n', 'c.yaml', 'yaml'), want);
    assert.deepEqual(parseConfigText('tags = ["a", "b"]\n[db]\nhost = "x"\npool = 5\n', 'c.toml', 'toml'), want);
    assert.deepEqual(parseConfigText('DB__HOST=x\nDB__POOL=5\nTAGS=["a","b"]\n', '.env', 'env'), want);
  });

  test('a syntax error names the file and the line, in every format', () => {
    // The line of the fault, not where the parser noticed it: the missing value after "b", the quote left open on line 3.
    parseFails('{\n  "a": 1,\n  "b": \n}', '/etc/app.json', 'json', /^\/etc\/app\.json:3:7: invalid JSON/);
    parseFails('{\n  "a": 1\n  "b": 2\n}', '/etc/app.json', 'json', /^\/etc\/app\.json:2:9: invalid JSON \(CommaExpected\)/);
    parseFails('a: 1\nb: [1, 2\nc: 3\n', '/etc/app.yaml', 'yaml', /^\/etc\/app\.yaml:\d+:\d+: invalid YAML/);
    parseFails('a: 1\nb: 2\nc: "unclosed\nd: 4\n', '/etc/app.yaml', 'yaml', /^\/etc\/app\.yaml:3:4: invalid YAML \(Missing closing "quote\)/);
    parseFails('a = 1\nb = \n', '/etc/app.toml', 'toml', /^\/etc\/app\.toml:2:\d+: invalid TOML/);
    parseFails('A=1\nthis is not a pair\n', '/etc/app.env', 'env', /^\/etc\/app\.env:2:1: invalid \.env line/);
  });

  test('empty files, binary garbage and scalars are refused', () => {
    parseFails('  \n', 'c.yaml', 'yaml', /is empty/);
    parseFails('\u0000\u0001\u0002garbage', 'c.json', 'json', /binary data/);
    parseFails('just a string\n', 'c.yaml', 'yaml', /top level must be a mapping/);
    parseFails('[1,2]', 'c.json', 'json', /not a list|a list/);
  });

  test('env names nest with __ and become camelCase; values parse as JSON when they can', () => {
    assert.deepEqual(envKeyPath('DB__POOL_SIZE'), ['db', 'poolSize']);
    assert.equal(coerce('20'), 20);
    assert.equal(coerce('true'), true);
    assert.equal(coerce('hello world'), 'hello world');
    assert.equal(coerce('1.2.3'), '1.2.3');
  });
});

describe('snapshots', () => {
  test('changed key paths', () => {
    assert.deepEqual(changedPaths({ a: 1, db: { pool: 1, host: 'h' } }, { a: 1, db: { pool: 2, host: 'h' }, b: true }), ['b', 'db.pool']);
    assert.deepEqual(changedPaths({ l: [1, 2] }, { l: [1, 2] }), []);
    assert.deepEqual(changedPaths({ l: [1, 2] }, { l: [1] }), ['l']);
  });

  test('the hash ignores key order; layers merge deep, later wins', () => {
    assert.equal(contentHash({ a: 1, b: { c: 2, d: 3 } }), contentHash({ b: { d: 3, c: 2 }, a: 1 }));
    assert.match(contentHash({ a: 1 }), /^[0-9a-f]{12}$/);
    assert.notEqual(contentHash({ a: 1 }), contentHash({ a: 2 }), 'the values count, not only the keys');
    assert.notEqual(contentHash({ a: 1 }), contentHash(undefined));
    assert.deepEqual(mergeLayers([{ db: { host: 'a', pool: 1 }, l: [1] }, { db: { pool: 2 }, l: [2] }]), { db: { host: 'a', pool: 2 }, l: [2] });
  });

  test('snapshots are deeply frozen', () => {
    const s = deepFreeze({ db: { pool: 1 } });
    assert.throws(() => {
      (s.db as { pool: number }).pool = 2;
    }, TypeError);
  });

  test('deep freezing stops at what is frozen already (a cycle ends), and leaves nulls and functions as they are', () => {
    const cyclic: { name: string; self?: unknown; none: null; list: Array<{ n: number }> } = { name: 'c', none: null, list: [{ n: 1 }] };
    cyclic.self = cyclic;
    assert.equal(deepFreeze(cyclic), cyclic);
    assert.equal(Object.isFrozen(cyclic), true);
    assert.equal(Object.isFrozen(cyclic.list[0]), true);
    // Frozen already: not walked again, so what it holds is left alone.
    const inner = { n: 1 };
    deepFreeze(Object.freeze({ inner }));
    assert.equal(Object.isFrozen(inner), false);
    // Data is objects, lists and scalars: a function met on the way is not frozen.
    const handler = () => 1;
    deepFreeze({ handler });
    assert.equal(Object.isFrozen(handler), false);
  });

  test('changed key paths: nulls and lists are leaves, and a key that turns from an object into a scalar changes as one', () => {
    assert.deepEqual(changedPaths({ a: null, b: { c: 1 } }, { a: null, b: { c: 1 } }), []);
    assert.deepEqual(changedPaths({ a: null }, { a: { c: 1 } }), ['a']);
    assert.deepEqual(changedPaths({ l: [1, 2] }, { l: [1, 3] }), ['l']);
    assert.deepEqual(changedPaths({ db: { pool: 1, host: 'h' } }, { db: 'sqlite://x' }), ['db']);
    assert.deepEqual(changedPaths({ db: 'sqlite://x' }, { db: { pool: 1 } }), ['db']);
    assert.deepEqual(mergeLayers([{ a: { b: 1 }, l: [{ x: 1 }] }, { a: null, l: [{ y: 2 }] }]), { a: null, l: [{ y: 2 }] });
  });

  test('subscriptions match a key, its children and its parents', () => {
    assert.equal(touches('db.pool', 'db.pool.max'), true);
    assert.equal(touches('db.pool', 'db'), true);
    assert.equal(touches('db.pool', 'db.poolSize'), false);
    assert.equal(touches('', 'anything'), true);
  });
});

describe('Standard Schema validators', () => {
  const raw = { db: { pool: '5' } };
  test('zod 4, valibot and arktype all report the key path of a violation', async () => {
    const zod = z.object({ db: z.object({ pool: z.number() }) });
    const vali = v.object({ db: v.object({ pool: v.number() }) });
    const ark = type({ db: { pool: 'number' } });
    for (const schema of [zod, vali, ark]) {
      const result = await validateConfig(schema, raw);
      assert.ok('issues' in result);
      assert.equal(result.issues[0]!.path, 'db.pool');
    }
    const ok = await validateConfig(z.object({ db: z.object({ pool: z.coerce.number(), host: z.string().default('localhost') }) }), raw);
    assert.deepEqual(ok, { value: { db: { pool: 5, host: 'localhost' } } });
  });
});

describe('subscriptions', () => {
  test('once per change; async listeners awaited with a timeout; a throwing listener is reported, not fatal', async () => {
    const { Subscriptions } = await import('../../src/config/subscriptions.js');
    const subs = new Subscriptions();
    const calls: unknown[] = [];
    subs.add('db', (next, prev) => void calls.push([next, prev]));
    subs.add('db.pool', async () => {
      await new Promise((r) => setTimeout(r, 10));
      calls.push('async done');
    });
    subs.add('db', () => {
      throw new Error('listener broke');
    });
    subs.add('db', () => new Promise(() => {}));
    subs.add('other', () => void calls.push('not me'));
    const failures = await subs.notify(['db.pool', 'db.host'], { db: { pool: 2, host: 'b' } }, { db: { pool: 1, host: 'a' } }, 50);
    assert.deepEqual(calls, [[{ pool: 2, host: 'b' }, { pool: 1, host: 'a' }], 'async done']);
    assert.deepEqual(
      failures.map((f) => f.error),
      ['listener broke', 'listener did not finish within 50 ms'],
    );
  });
});
