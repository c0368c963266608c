import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { before, describe, test } from 'node:test';
import { getFresh } from '../../bench/lib/http.js';
import { builtPackage, graftCli, root, startGraft, tempDir, type CliResult, type GraftProcess } from '../helpers/graft.js';
import { record } from '../helpers/output.js';

/**
 * graftjs as a user gets it: the tarball `npm pack` makes (what `npm publish` would upload), and the
 * package npm builds from a git URL, and a clone's folder, each installed with npm into a fresh project outside the
 * repository and run with `npx graft`, as the README's install section says.
 *
 * The projects see nothing of this repository: they live in the system's temporary folder (no
 * node_modules in any folder above them, checked), and this file's processes run without NODE_PATH,
 * NODE_OPTIONS, and the variables of the npm command that runs the tests (`npm test`, `npm exec`) that
 * name this repository, its package or that command (the prefixes, npm_package_*, INIT_CWD, the
 * command npm exec -c runs, which the projects' npx would run instead); npm's registry, cache and proxy
 * settings stay.
 */
const repositoryVariables = /^(NODE_PATH|NODE_OPTIONS|INIT_CWD|npm_package_.*|npm_lifecycle_.*|npm_command|npm_config_(local_|global_)?prefix|npm_config_call|npm_config_package)$/i;
for (const key of Object.keys(process.env)) {
  if (repositoryVariables.test(key)) delete process.env[key];
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
/**
 * `npx graft` as a user types it, but never fetching the registry's unrelated `graft` package when the bin is
 * missing (--no), and every argument for graft (--: `npx --no graft --version` prints npm's version).
 */
const npxGraft = ['npx', '--no', '--', 'graft'];

/** A command run to its end in `cwd`, its output recorded (shown if the test fails). */
function run(command: string, args: string[], cwd: string): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('exit', (code) => {
      record(`${command} ${args.slice(0, 2).join(' ')}`, `exit ${code}\n${stdout}${stderr}`);
      done({ code, stdout, stderr });
    });
  });
}

async function succeeds(command: string, args: string[], cwd: string): Promise<CliResult> {
  const r = await run(command, args, cwd);
  assert.equal(r.code, 0, `${command} ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r;
}

/** `npm install SPEC` as a user runs it (the registry's cache first, for graftjs's runtime dependencies). */
const npmInstall = (dir: string, spec: string) => succeeds('npm', ['install', spec, '--no-audit', '--no-fund', '--prefer-offline'], dir);

/** An empty project, `"type": "module"`, in the temporary folder: no node_modules above it, so it finds only what it installs. */
function project(): string {
  const dir = tempDir('graftjs-app-');
  assert.ok(relative(root, dir).startsWith('..'), `${dir} is outside the repository`);
  for (let d = dirname(dir); ; d = dirname(d)) {
    assert.equal(existsSync(join(d, 'node_modules')), false, `${join(d, 'node_modules')} would be visible to the project`);
    if (dirname(d) === d) break;
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  return dir;
}

/** The same service as a .js and as a .ts entry: it reports its generation, the config it sees, and where graft came from. */
const apps = {
  'app.js': `import { createServer } from 'node:http';
import { config } from 'graftjs';

// The app's process.argv is its own ([node, entry, ...args]): the worker runtime graft runs shows in the stack of a
// request, which reaches the app through graft's drain (worker/http-drain.js).
const runtimeOf = (stack) => /(?:file:\\/\\/)?(\\/[^\\s)]*)\\/(?:dist|src)\\/worker\\/http-drain\\.[jt]s/.exec(stack ?? '')?.[1];

createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    generation: process.env.GRAFT_GENERATION,
    greeting: config.current.greeting ?? null,
    version: config.version,
    graftjs: import.meta.resolve('graftjs'),
    runtime: runtimeOf(new Error().stack),
  }));
}).listen(Number(process.env.PORT));
`,
  // Compiled by the master into its build directory: import.meta.resolve would resolve from there, so it is left out.
  'app.ts': `import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { config } from 'graftjs';

const runtimeOf = (stack: string | undefined) => /(?:file:\\/\\/)?(\\/[^\\s)]*)\\/(?:dist|src)\\/worker\\/http-drain\\.[jt]s/.exec(stack ?? '')?.[1];

interface AppConfig { greeting?: string }
declare module 'graftjs' { interface Register { config: AppConfig } }

interface Answer { generation: string | undefined; greeting: string | null; version: number; runtime: string | undefined }

createServer((_req: IncomingMessage, res: ServerResponse) => {
  const answer: Answer = { generation: process.env.GRAFT_GENERATION, greeting: config.current.greeting ?? null, version: config.version, runtime: runtimeOf(new Error().stack) };
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(answer));
}).listen(Number(process.env.PORT));
`,
};

interface Answer {
  generation: string;
  greeting: string | null;
  version: number;
  graftjs?: string;
  runtime: string;
}

/** On a new connection: a kept-alive one may still reach a generation that is draining. */
async function answer(g: GraftProcess): Promise<Answer> {
  const res = await getFresh(g.url);
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as Answer;
}

/** `npx graft start ENTRY` in the project; stopped in any case once `body` is done. */
async function withGraft(dir: string, entry: string, workers: number, body: (g: GraftProcess, cli: (...args: string[]) => Promise<CliResult>) => Promise<void>): Promise<void> {
  const g = await startGraft(join(dir, entry), { command: npxGraft, cwd: dir, workers });
  const cli = (...args: string[]) => graftCli([...args, '--socket', g.socket], { cwd: dir, command: npxGraft });
  try {
    await g.waitRunning();
    await body(g, cli);
  } finally {
    // npx runs graft under a shell: stop it through its socket first, so that no keeper is left behind.
    if (g.child.exitCode === null && g.child.signalCode === null) await graftCli(['stop', '--socket', g.socket]);
    await g.stop();
  }
}

/** Start, answer, reload, config apply, stop: all with the project's own `npx graft`. */
async function quickStart(dir: string, entry: string): Promise<void> {
  const installed = join(dir, 'node_modules', pkg.name);
  await withGraft(dir, entry, 2, async (g, cli) => {
    const first = await answer(g);
    assert.equal(first.generation, '1');
    assert.equal(first.version, 1);
    assert.equal(first.greeting, null);
    assert.equal(first.runtime, installed, "the workers run the project's graftjs");
    if (entry.endsWith('.js')) assert.equal(first.graftjs, `file://${join(installed, 'dist/index.js')}`, "the app imports the project's graftjs");

    const reload = await cli('reload');
    assert.equal(reload.code, 0, reload.stderr);
    assert.match(reload.stdout, /generation 2 serves/);
    assert.equal((await answer(g)).generation, '2');

    const apply = await cli('config', 'apply', '--set', 'greeting=hej');
    assert.equal(apply.code, 0, apply.stderr);
    const applied = await answer(g);
    assert.deepEqual([applied.generation, applied.greeting, applied.version], ['2', 'hej', 2], 'the config change reached the app in place');

    const stop = await cli('stop');
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(await g.exited, { code: 0, signal: null });
  });
}

/** Every file of the installed package under dir, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

describe('the npm pack tarball, installed into a fresh project', { timeout: 300_000 }, () => {
  let dir: string;
  let packed: { filename: string; files: Array<{ path: string }> };
  before(async () => {
    // dist/ as the other test files use it (built once, under their lock); --ignore-scripts: `prepare` would rebuild it under them.
    builtPackage();
    const out = tempDir('graftjs-pack-');
    const r = await succeeds('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], root);
    [packed] = JSON.parse(r.stdout) as [typeof packed];
    dir = project();
    await npmInstall(dir, join(out, packed.filename));
  });

  test('holds the built package and nothing else: bin, dist/ with types and source maps, the sources the maps name, LICENSE, README', () => {
    const files = packed.files.map((f) => f.path).sort();
    const top = [...new Set(files.map((f) => (/^(dist|src)\//.test(f) ? f.split('/')[0]! : f)))].sort();
    assert.deepEqual(top, ['LICENSE', 'README.md', 'bin/graft.js', 'dist', 'package.json', 'scripts/build.mjs', 'src']);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/worker/main.js']) assert.ok(files.includes(f), f);
    // dist/ is exactly the output of src/: no output of a source deleted since, no test or bench compiled into it.
    const compiled = files.filter((f) => f.startsWith('dist/') && f.endsWith('.js')).map((f) => f.slice('dist/'.length, -'.js'.length)).sort();
    const sources = files.filter((f) => f.startsWith('src/')).map((f) => f.slice('src/'.length, -'.ts'.length)).sort();
    assert.deepEqual(compiled, sources, 'dist/ is the output of src/ (an output without a source is left from an older build: npm run build)');
    for (const f of compiled) assert.ok(files.includes(`dist/${f}.d.ts`) && files.includes(`dist/${f}.js.map`), `types and map of dist/${f}.js`);
  });

  test("installs as a real folder, with its bin, and every source map's sources are there", () => {
    const installed = join(dir, 'node_modules', pkg.name);
    assert.ok(lstatSync(installed).isDirectory(), 'not a link to the repository');
    assert.equal(realpathSync(join(dir, 'node_modules/.bin/graft')), realpathSync(join(installed, 'bin/graft.js')));
    const maps = filesUnder(installed).filter((f) => f.endsWith('.map'));
    assert.ok(maps.length > 100);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as { sources: string[] };
      for (const source of sources) assert.ok(existsSync(resolve(dirname(join(installed, map)), source)), `${map} names ${source}`);
    }
  });

  test("a TypeScript app type-checks against the package's types (its config typed through Register)", async () => {
    writeFileSync(join(dir, 'app.ts'), apps['app.ts']);
    // The project has no TypeScript of its own: the repository's compiler, and Node's types from the repository; graftjs and its dependencies from the project.
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const options = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--typeRoots', join(root, 'node_modules/@types'), '--types', 'node'];
    await succeeds(process.execPath, [tsc, ...options, 'app.ts'], dir);
    writeFileSync(join(dir, 'wrong.ts'), "import { config } from 'graftjs';\nexport const n: number = config.current.greeting;\n");
    const wrong = await run(process.execPath, [tsc, ...options, 'app.ts', 'wrong.ts'], dir);
    assert.match(wrong.stdout, /wrong\.ts\(2,14\): error TS2322: Type 'string \| undefined' is not assignable to type 'number'/);
    rmSync(join(dir, 'wrong.ts'));
  });

  for (const entry of ['app.js', 'app.ts'] as const) {
    test(`npx graft start ${entry}: it answers, reloads, takes graft config apply --set, and stops`, async () => {
      writeFileSync(join(dir, entry), apps[entry]);
      await quickStart(dir, entry);
    });
  }
});

describe('a clean clone of this commit, installed by git URL and as a folder', { timeout: 400_000 }, () => {
  let clone: string;
  let head: string;
  before(async () => {
    head = (await succeeds('git', ['rev-parse', 'HEAD'], root)).stdout.trim();
    clone = join(tempDir('graftjs-clone-'), 'graft');
    await succeeds('git', ['clone', '--quiet', '--no-checkout', root, clone], tempDir());
    await succeeds('git', ['checkout', '--quiet', '--detach', head], clone);
  });

  test('git+file://…#HEAD: npm installs its devDependencies, prepare builds dist/, and the project runs it', async () => {
    const dir = project();
    await npmInstall(dir, `git+file://${clone}#${head}`);
    const installed = join(dir, 'node_modules', pkg.name);
    assert.ok(lstatSync(installed).isDirectory());
    assert.ok(existsSync(join(installed, 'dist/cli/main.js')), 'dist/ built by prepare');
    const [npx, ...args] = npxGraft;
    assert.equal((await succeeds(npx!, [...args, '--version'], dir)).stdout.trim(), pkg.version);
    writeFileSync(join(dir, 'app.js'), apps['app.js']);
    await withGraft(dir, 'app.js', 1, async (g, cli) => {
      const first = await answer(g);
      assert.equal(first.runtime, installed);
      assert.equal(first.graftjs, `file://${join(installed, 'dist/index.js')}`);
      assert.equal((await cli('stop')).code, 0);
      assert.deepEqual(await g.exited, { code: 0, signal: null });
    });
  });

  test("a folder that was never installed: npm links it without its dependencies, and prepare says what to do instead of 'tsc: not found'", async () => {
    const dir = project();
    const r = await run('npm', ['install', clone, '--no-audit', '--no-fund', '--prefer-offline'], dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /graftjs: GRAFT_NOT_BUILT: cannot build dist\/ in \S+: TypeScript, a devDependency, is not installed there/);
    assert.match(r.stderr, new RegExp(`run \`npm ci\` in ${clone.replace(/[/.]/g, '\\$&')} first`));
    assert.doesNotMatch(r.stderr, /tsc: not found/);
  });

  test('the same folder after `npm ci` in it (which builds dist/): npm links it, and the project runs it', async () => {
    await succeeds('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], clone);
    const dir = project();
    await succeeds('npm', ['install', clone, '--no-audit', '--no-fund', '--prefer-offline'], dir);
    const installed = join(dir, 'node_modules', pkg.name);
    assert.equal(realpathSync(installed), realpathSync(clone), 'a link to the folder');
    writeFileSync(join(dir, 'app.js'), apps['app.js']);
    await withGraft(dir, 'app.js', 1, async (g, cli) => {
      const first = await answer(g);
      // Node resolves a linked package by its real path: graft runs from the folder, with the folder's dependencies.
      assert.equal(first.runtime, realpathSync(clone));
      assert.equal((await cli('stop')).code, 0);
      assert.deepEqual(await g.exited, { code: 0, signal: null });
    });
  });
});
