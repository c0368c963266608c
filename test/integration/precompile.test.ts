import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getFresh } from '../../bench/lib/http.js';
import { builtPackage, fixture, onlyGeneration, root, startGraft, tempDir, waitFor, type GraftProcess } from '../helpers/graft.js';

/**
 * graft as a user installs it (the built package, no tsx in any process) runs
 * a TypeScript entry the master compiled: these tests look at what the app
 * sees from inside a worker, and at what a user sees when the code is broken.
 */

/** A package with a condition for each way it can be loaded: the app reports which file Node picked. */
function dualPackage(dir: string): void {
  const pkg = join(dir, 'node_modules', 'dual');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(
    join(pkg, 'package.json'),
    JSON.stringify({ name: 'dual', exports: { '.': { module: './bundler-only.mjs', import: './esm.mjs', require: './cjs.cjs' } } }),
  );
  writeFileSync(join(pkg, 'esm.mjs'), "export const via = 'import';\n");
  writeFileSync(join(pkg, 'cjs.cjs'), "exports.via = 'require';\n");
  writeFileSync(join(pkg, 'bundler-only.mjs'), "export const via = 'module (a bundler-only condition)';\n");
}

/** A project of its own with graft installed as a dependency (the built package). */
function project(type: 'module' | 'commonjs', files: Record<string, string>): string {
  const dir = tempDir('graft-precompile-');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', type }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'graftjs'), 'dir');
  dualPackage(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** On a new connection: a kept-alive one may still reach a generation that is draining. */
async function json(url: string): Promise<Record<string, unknown>> {
  const res = await getFresh(url);
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as Record<string, unknown>;
}

/** Where a master started with --socket DIR/control.sock compiles its entry. */
const buildDir = (g: GraftProcess) => join(dirname(g.socket), '.control.build');
const builds = (g: GraftProcess) => (existsSync(buildDir(g)) ? readdirSync(buildDir(g)) : []);

const esmApp = {
  'app.ts': `import { createServer } from 'node:http';
import { via } from 'dual';
import { config } from 'graftjs';
import { greet } from './lib/greet.ts';

interface Answer { greet: string; lazy: number; via: string; url: string; execArgv: string[]; config: number; resolved: string[] }
createServer(async (req, res) => {
  if (req.url === '/stack') return res.end(JSON.stringify({ stack: where() }));
  const lazy = await import('./lib/lazy.ts');
  const answer: Answer = { greet: greet(), lazy: lazy.value, via, url: import.meta.url, execArgv: process.execArgv, config: config.version, resolved: [import.meta.resolve('dual'), import.meta.resolve('./lib/data.txt'), import.meta.resolve('node:fs'), "text that says import.meta.resolve('dual')"] };
  res.end(JSON.stringify(answer));
}).listen(Number(process.env.PORT));

function where(): string | undefined {
  return new Error('here').stack;
}
`,
  'lib/greet.ts': `import { readFileSync } from 'node:fs';
import { join } from 'node:path';
export const greet = (): string => readFileSync(join(import.meta.dirname, 'data.txt'), 'utf8').trim() + ' ' + import.meta.filename;
`,
  'lib/data.txt': 'read beside its source\n',
  'lib/lazy.ts': 'export const value: number = 1;\n',
};

describe('a TypeScript entry under graft as installed', { timeout: 120_000 }, () => {
  let dir: string;
  let g: GraftProcess;
  before(async () => {
    builtPackage();
    dir = project('module', esmApp);
    g = await startGraft(join(dir, 'app.ts'), { built: true, workers: 2, cwd: dir });
    await g.waitRunning();
  });
  after(() => g?.stop());

  test('runs as plain JavaScript: no tsx in the workers, files found beside their sources, packages as Node resolves them (import.meta.resolve too)', async () => {
    const answer = await json(g.url);
    assert.deepEqual(answer.execArgv, ['--enable-source-maps'], 'the worker runs plain node');
    assert.equal(answer.greet, `read beside its source ${join(dir, 'lib/greet.ts')}`);
    assert.equal(answer.url, `file://${join(dir, 'app.ts')}`);
    assert.equal(answer.lazy, 1, 'a dynamic import of a local .ts file');
    assert.equal(answer.via, 'import', "the package's import condition, as Node picks it");
    assert.deepEqual(
      answer.resolved,
      [`file://${join(dir, 'node_modules/dual/esm.mjs')}`, `file://${join(dir, 'lib/data.txt')}`, 'node:fs', "text that says import.meta.resolve('dual')"],
      'import.meta.resolve() from the source file, not from the build directory; a string that mentions it untouched',
    );
    assert.equal(answer.config, 1, "the app's graft import is the worker's own instance");
  });

  test('a stack trace names the .ts file, line and column', async () => {
    const { stack } = (await json(`${g.url}/stack`)) as { stack: string };
    assert.match(stack.split('\n')[1]!, new RegExp(`at where \\(${join(dir, 'app.ts').replace(/[/.]/g, '\\$&')}:15:10\\)`));
  });

  test('a reload compiles the code as it is on disk now; a retired generation leaves no build behind', async () => {
    const before = (await g.status()).master.generation;
    writeFileSync(join(dir, 'lib/lazy.ts'), 'export const value: number = 2;\n');
    const r = await g.cli('reload');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await json(g.url)).lazy, 2);
    await onlyGeneration(g, before + 1);
    const master = await g.firstMaster();
    await waitFor(() => builds(g).join() === `${master}-${before + 1}`, 10_000, `only the build of generation ${before + 1}, not ${builds(g).join()}`);
  });

  test('code that does not compile refuses the reload, naming file:line:col; no worker starts and the live generation serves on', async () => {
    const before = await g.status();
    const logsBefore = g.logs.length;
    writeFileSync(join(dir, 'lib/lazy.ts'), 'export const value: number = ;\n');
    const r = await g.cli('reload');
    assert.notEqual(r.code, 0);
    const lazy = join(dir, 'lib/lazy.ts').replace(/[/.]/g, '\\$&');
    assert.match(r.stderr, new RegExp(`^graft: GRAFT_BOOT_FAILED: .*app\\.ts failed to boot: syntax error in ${lazy}:1:30: Unexpected ";"`));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(g.logs.slice(logsBefore).filter((l) => l.msg === 'worker started').length, 0, 'no worker was started for code that does not compile');
    const after = await g.status();
    assert.equal(after.master.generation, before.master.generation);
    assert.deepEqual(after.workers.map((w) => w.pid).sort(), before.workers.map((w) => w.pid).sort());
    assert.equal((await json(g.url)).lazy, 2);
    assert.deepEqual(builds(g), [`${before.master.pid}-${before.master.generation}`]);
    writeFileSync(join(dir, 'lib/lazy.ts'), 'export const value: number = 3;\n');
  });

  test("the code version is the running generation's, from its own build: a file changed on disk changes it only once a reload loads it", async () => {
    const lazy = join(dir, 'lib/lazy.ts');
    const code = async () => (await g.status()).master.code;
    writeFileSync(lazy, 'export const value: number = 5;\n');
    assert.equal((await g.cli('reload')).code, 0);
    const five = await code();
    assert.match(five ?? '', /^[0-9a-f]{12}$/);
    assert.match((await g.cli('status')).stdout, new RegExp(`code version ${five}`));
    // The file changes while a reload is under way, after the new generation's build: it runs what was compiled, and its version names that.
    const generation = (await g.status()).master.generation! + 1;
    const reload = g.cli('reload');
    await g.waitForLog((l) => l.msg === 'entry compiled' && l.generation === generation, 30_000);
    writeFileSync(lazy, 'export const value: number = 6;\n');
    assert.equal((await reload).code, 0);
    assert.equal((await json(g.url)).lazy, 5);
    assert.equal((await g.status()).master.generation, generation);
    assert.equal(await code(), five, 'the version of what the generation loaded, not of what is on disk now');
    // Without a reload, the version stays.
    assert.equal((await g.cli('scale', '2')).code, 0);
    assert.equal(await code(), five);
    // A reload loads the change, and the version says so; the same files again are the same version.
    assert.equal((await g.cli('reload')).code, 0);
    assert.equal((await json(g.url)).lazy, 6);
    const six = await code();
    assert.match(six ?? '', /^[0-9a-f]{12}$/);
    assert.notEqual(six, five);
    writeFileSync(lazy, 'export const value: number = 5;\n');
    assert.equal((await g.cli('reload')).code, 0);
    assert.equal(await code(), five);
  });

  test('a stopped master leaves no build behind', async () => {
    await g.stop();
    assert.equal(existsSync(buildDir(g)), false);
  });
});

describe('a TypeScript entry of a "type": "commonjs" project under graft as installed', () => {
  test('runs as CommonJS: "use strict" kept, __dirname and __filename of each file, require() of a computed name found from the source', async () => {
    builtPackage();
    const dir = project('commonjs', {
      'app.ts': `'use strict';
import http from 'node:http';
import { config } from 'graftjs';
import { here } from './lib/here';
const name = ['du', 'al'].join('');
const strict = (function (this: unknown) { return this === undefined; })();
http.createServer((_q, res) => res.end(JSON.stringify({ strict, here: here(), dirname: __dirname, via: require(name).via, module: typeof module, config: config.version, execArgv: process.execArgv }))).listen(Number(process.env.PORT));
`,
      'lib/here.ts': 'export const here = (): string => __filename;\n',
    });
    const g = await startGraft(join(dir, 'app.ts'), { built: true, workers: 1, cwd: dir });
    try {
      await g.waitRunning();
      assert.deepEqual(await json(g.url), {
        strict: true,
        here: join(dir, 'lib/here.ts'),
        dirname: dir,
        via: 'require',
        module: 'object',
        config: 1,
        execArgv: ['--enable-source-maps'],
      });
    } finally {
      await g.stop();
    }
  });
});

describe("an app in graft's own checkout that imports graft's source", () => {
  test('under graft as installed, gets the compiled twin: the one graft instance its worker runs', async () => {
    builtPackage();
    const g = await startGraft(fixture('config-app.ts'), { built: true, workers: 1, args: ['--set', 'greeting=hi'] });
    try {
      await g.waitRunning();
      assert.deepEqual(await json(`${g.url}/config`), { version: 1, greeting: 'hi', pool: 2 });
    } finally {
      await g.stop();
    }
  });
});

describe('--tsx', () => {
  test('keeps TypeScript to tsx in every worker, and compiles nothing', async () => {
    builtPackage();
    const dir = project('module', esmApp);
    const g = await startGraft(join(dir, 'app.ts'), { built: true, workers: 1, cwd: dir, args: ['--tsx'] });
    try {
      await g.waitRunning();
      const answer = await json(g.url);
      assert.ok((answer.execArgv as string[]).some((a) => a.includes('tsx')), JSON.stringify(answer.execArgv));
      assert.equal(answer.greet, `read beside its source ${join(dir, 'lib/greet.ts')}`);
      assert.deepEqual(builds(g), []);
    } finally {
      await g.stop();
    }
  });
});
