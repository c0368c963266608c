import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fullGc } from '../../src/swap/leak-watch.js';
import { swappable, type Swappable } from '../../src/swap/swappable.js';
import type { LeakReport } from '../../src/swap/leak-watch.js';
import { deferred } from '../../src/core/deferred.js';
import { tempDir } from '../helpers/output.js';
import { within } from '../helpers/within.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface Mod {
  version: string;
  helperValue: number;
}

function project(files: Record<string, string>): string {
  const dir = tempDir('graft-swap-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const moduleText = (version: string, extra = '') => `
import { helper } from './helper.js';
export const version: string = ${JSON.stringify(version)};
export const helperValue = helper();
${extra}
`;

describe('swappable modules', () => {
  test('calls in flight finish on their generation while new calls reach the new one; local imports swap together', async () => {
    const dir = project({ 'mod.ts': moduleText('v1'), 'helper.ts': 'export const helper = () => 1;\n' });
    const h = swappable<Mod>(join(dir, 'mod.ts'));
    try {
      await h.ready;
      assert.equal(h.generation, 1);
      // A call that lasts until the test lets it end: in flight whatever the swap takes.
      const gate = deferred<void>();
      const inFlight = h.use(async (m) => {
        await gate.promise;
        return m.version;
      });
      writeFileSync(join(dir, 'mod.ts'), moduleText('v2'));
      writeFileSync(join(dir, 'helper.ts'), 'export const helper = () => 2;\n');
      const result = await h.swap();
      assert.deepEqual(result, { module: h.name, generation: 2, previous: 1 });
      assert.equal(await h.use((m) => m.version), 'v2');
      assert.equal(h.current.helperValue, 2, 'the local import is part of the generation');
      assert.equal(h.draining, 1, 'generation 1 still has a call in flight');
      gate.resolve();
      assert.equal(await inFlight, 'v1');
      await h.settled();
      assert.equal(h.draining, 0);
    } finally {
      await h.close();
    }
  });

  test('every file of a generation keeps its own location: import.meta.url, import.meta.dirname, __dirname, __filename', async () => {
    const dir = project({ 'mod.ts': "export { where } from './lib/where.js';\nexport const self = import.meta.url;\n" });
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'lib', 'where.ts'), 'export const where = { dirname: import.meta.dirname, filename: import.meta.filename, cjsDirname: __dirname, cjsFilename: __filename };\n');
    const h = swappable<{ self: string; where: Record<string, string> }>(join(dir, 'mod.ts'));
    try {
      await h.ready;
      assert.equal(h.current.self, pathToFileURL(join(dir, 'mod.ts')).href);
      const lib = join(dir, 'lib');
      assert.deepEqual(h.current.where, { dirname: lib, filename: join(lib, 'where.ts'), cjsDirname: lib, cjsFilename: join(lib, 'where.ts') });
    } finally {
      await h.close();
    }
  });

  for (const [name, text, code, where] of [
    ['a syntax error', 'export const version = ;\n', 'GRAFT_SWAP_LOAD', /mod\.ts:1:\d+: /],
    ['a throw at load', 'export const version = "v2";\nthrow new Error("load failed");\n', 'GRAFT_SWAP_LOAD', /mod\.ts:2:\d+: Error: load failed/],
    ['a failing verify', 'export const version = "v2";\nexport function verify() { throw new Error("self-check failed"); }\n', 'GRAFT_SWAP_VERIFY', /verify\(\) threw: self-check failed/],
    ['a verify that returns false', 'export const version = "v2";\nexport const verify = () => false;\n', 'GRAFT_SWAP_VERIFY', /verify\(\) returned false/],
    ['a failing migrate', 'export const version = "v2";\nexport function migrate(prev: unknown) { throw new Error("cannot migrate " + JSON.stringify(prev)); }\n', 'GRAFT_SWAP_MIGRATE', /migrate\(\) of generation 2 threw: cannot migrate \{"n":1\}/],
  ] as const) {
    test(`${name} keeps the old generation serving`, async () => {
      const dir = project({ 'mod.ts': 'export const version = "v1";\nexport const state = { n: 1 };\n' });
      const reports: LeakReport[] = [];
      const h = swappable<{ version: string }>(join(dir, 'mod.ts'), undefined, { onLeak: (r) => reports.push(r) });
      try {
        await h.ready;
        writeFileSync(join(dir, 'mod.ts'), text);
        await assert.rejects(h.swap(), (err: { code?: string; message: string }) => {
          assert.equal(err.code, code);
          assert.match(err.message, where);
          return true;
        });
        assert.equal(h.current.version, 'v1');
        assert.equal(h.generation, 1);
        assert.equal(await h.use((m) => m.version), 'v1');
      } finally {
        await h.close();
      }
    });
  }

  test('migrate carries state; dispose runs exactly once per generation, after its last lease', async () => {
    const g = globalThis as { disposed?: string[]; onDispose?: (v: string) => void };
    g.disposed = [];
    const waiting = new Map<string, () => void>();
    g.onDispose = (v) => waiting.get(v)?.();
    /** Resolves once generation `v` has been disposed. */
    const disposal = (v: string) => new Promise<void>((resolve) => (g.disposed!.includes(v) ? resolve() : waiting.set(v, resolve)));
    const text = (v: string) => `
export const state = { count: 0 };
export function migrate(prev: { count: number }) { state.count = prev.count; }
export function bump() { return ++state.count; }
export function dispose() { (globalThis as any).disposed.push(${JSON.stringify(v)}); (globalThis as any).onDispose(${JSON.stringify(v)}); }
`;
    const dir = project({ 'mod.ts': text('v1') });
    const h = swappable<{ bump: () => number }>(join(dir, 'mod.ts'));
    await h.ready;
    assert.equal(h.current.bump(), 1);
    assert.equal(h.current.bump(), 2);
    const held = h.lease();
    writeFileSync(join(dir, 'mod.ts'), text('v2'));
    await h.swap();
    assert.equal(h.current.bump(), 3, 'state migrated');
    writeFileSync(join(dir, 'mod.ts'), text('v3'));
    await h.swap();
    await disposal('v2');
    assert.deepEqual(g.disposed, ['v2'], 'v2 had no lease: disposed at once; v1 is still leased');
    held.release();
    held.release();
    await h.settled();
    assert.deepEqual(g.disposed, ['v2', 'v1'], 'v1 disposed once, after its last lease');
    await h.close();
    assert.deepEqual(g.disposed, ['v2', 'v1', 'v3']);
  });

  test('1000 swaps of a module holding 1 MB grow the heap by less than 20 MB', async () => {
    const dir = project({
      'big.ts': `
const data: number[] = new Array(131072).fill(0).map((_, i) => i + Math.random());
export function sum() { let s = 0; for (let i = 0; i < data.length; i += 4096) s += data[i]!; return s; }
`,
    });
    const h: Swappable<{ sum: () => number }> = swappable(join(dir, 'big.ts'));
    await h.ready;
    for (let i = 0; i < 20; i++) await h.swap(); // warm up esbuild and the JIT
    fullGc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1000; i++) {
      await h.swap();
      h.current.sum();
    }
    await h.settled();
    fullGc();
    const grownMb = (process.memoryUsage().heapUsed - before) / 1048576;
    await h.close();
    assert.ok(grownMb < 20, `heap grew ${grownMb.toFixed(1)} MB over 1000 swaps`);
  });

  test('a generation kept alive by a leftover timer is named in the warning', async () => {
    const dir = project({ 'leaky.ts': 'const big = new Array(1000).fill(1);\nexport const n = 1;\nsetInterval(() => big.length, 60_000).unref();\n' });
    const reports: LeakReport[] = [];
    const reported = deferred<void>();
    const h = swappable(join(dir, 'leaky.ts'), undefined, { onLeak: (r) => (reports.push(r), reported.resolve()), leakGraceMs: 300 });
    try {
      await h.ready;
      await h.swap();
      await within(reported.promise, 'a leak report');
      assert.equal(reports.length, 1);
      assert.equal(reports[0]!.generation, 1);
      assert.match(reports[0]!.module, /leaky\.ts$/);
      assert.match(reports[0]!.timers[0]!, /^setInterval .*leaky\.ts:3:1$/);
    } finally {
      await h.close();
    }
  });

  test('swaps asked for while one runs coalesce into one more, which loads the newest files', async () => {
    // Generation 2's migrate() says it began, and ends when the test lets it.
    const migrating = deferred<void>();
    const migrated = deferred<void>();
    (globalThis as { migrating?: () => Promise<void> }).migrating = () => (migrating.resolve(), migrated.promise);
    const dir = project({ 'mod.ts': 'export const version = "v1";\n' });
    const h = swappable<{ version: string }>(join(dir, 'mod.ts'));
    try {
      await h.ready;
      writeFileSync(join(dir, 'mod.ts'), 'export async function migrate() { await (globalThis as any).migrating(); }\nexport const version = "v2";\n');
      const first = h.swap();
      // Generation 2 is built from v2 and migrating: what is written now is for the next swap.
      await within(migrating.promise, 'generation 2 to migrate');
      writeFileSync(join(dir, 'mod.ts'), 'export const version = "v4";\n');
      const later = [h.swap(), h.swap(), h.swap()];
      migrated.resolve();
      assert.deepEqual(await first, { module: h.name, generation: 2, previous: 1 });
      const results = await Promise.all(later);
      assert.deepEqual(results, [0, 1, 2].map(() => ({ module: h.name, generation: 3, previous: 2 })), 'one more swap served all three');
      assert.equal(h.current.version, 'v4');
      assert.equal(h.generation, 3);
    } finally {
      await h.close();
    }
  });

  test('close refuses a swap still waiting, aborts the one in flight and keeps nothing', async () => {
    const dir = project({ 'mod.ts': 'export const version = "v1";\n' });
    const h = swappable<{ version: string }>(join(dir, 'mod.ts'));
    await h.ready;
    writeFileSync(join(dir, 'mod.ts'), 'export const version = "v2";\nexport async function migrate() { await new Promise((r) => setTimeout(r, 300)); }\n');
    const inFlight = h.swap();
    await sleep(0);
    const waiting = h.swap();
    await sleep(0);
    const stopped = (err: { code?: string }) => err.code === 'GRAFT_STOPPING';
    const outcomes = [assert.rejects(waiting, stopped), assert.rejects(inFlight, stopped)];
    await h.close();
    await Promise.all(outcomes);
    await assert.rejects(h.swap(), (err: { code?: string }) => err.code === 'GRAFT_STOPPING');
    assert.equal(h.generation, undefined);
  });

  test('a generation discarded after a failed verify is reported under its own number if it leaks', async () => {
    const dir = project({ 'mod.ts': 'export const n = 1;\n' });
    const reports: LeakReport[] = [];
    const reported = deferred<void>();
    const h = swappable(join(dir, 'mod.ts'), undefined, { onLeak: (r) => (reports.push(r), reported.resolve()), leakGraceMs: 300 });
    try {
      await h.ready;
      writeFileSync(join(dir, 'mod.ts'), 'const big = new Array(1000).fill(1);\nsetInterval(() => big.length, 60_000).unref();\nexport const verify = () => false;\n');
      await assert.rejects(h.swap(), (err: { code?: string }) => err.code === 'GRAFT_SWAP_VERIFY');
      await within(reported.promise, 'a leak report');
      assert.equal(reports.length, 1);
      assert.equal(reports[0]!.generation, 2);
    } finally {
      await h.close();
    }
  });
});
