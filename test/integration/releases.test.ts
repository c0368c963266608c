import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { create } from 'tar';
import { fixture, oneLineError, startGraft, tempDir, type GraftProcess } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

/** On a connection of its own: a kept-alive one may still reach the generation a deploy just retired (it answers once more, with Connection: close). */
function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** A service's directory, and release directories of it: each answers its version, read from a file relative to its working directory. */
function project() {
  const root = tempDir('releases-');
  const write = (dir: string, version: string, behaviour = '') => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'version.txt'), `${version}\n`);
    writeFileSync(
      join(dir, 'app.ts'),
      `import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
const version: string = readFileSync('./version.txt', 'utf8').trim();
let n = 0;
const server = createServer((req, res) => {
  n++;
  ${behaviour}
  res.end(version);
});
server.listen(Number(process.env.PORT));
`,
    );
    return dir;
  };
  const service = write(join(root, 'service'), 'disk');
  return { service, release: (version: string, behaviour?: string) => write(join(root, version), version, behaviour) };
}

async function releases(g: GraftProcess): Promise<{ live: string | undefined; releases: Array<{ id: string; outcome: string; reason?: string; configVersion?: number }> }> {
  const r = await g.cli('releases', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function deploy(g: GraftProcess, dir: string): Promise<{ release: string; generation: number; previous?: string; health: string }> {
  const r = await g.cli('deploy', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('graft deploy, releases, rollback on one host', () => {
  test('deploys and a rollback under keep-alive load fail no request; a rollback builds nothing; the next master starts on the live release', async () => {
    const p = project();
    const r1 = p.release('r1');
    const r2 = p.release('r2');
    const g = await startGraft('app.ts', { cwd: p.service });
    let restarted: GraftProcess | undefined;
    try {
      await g.waitRunning();
      assert.equal(await get(g.url), 'disk');
      const { value, failed, load } = await underLoad(g.url, async () => {
        const one = await deploy(g, r1);
        assert.equal(await get(g.url), 'r1', 'new connections reach release 1');
        const two = await deploy(g, r2);
        assert.equal(two.previous, one.release);
        assert.equal(await get(g.url), 'r2');
        const back = await g.cli('rollback', '--json');
        assert.equal(back.code, 0, back.stderr);
        return { one, two, back: JSON.parse(back.stdout) as { release: string; previous: string } };
      });
      assert.equal(failed, 0, `${failed} of ${load.answered} answered requests failed across two deploys and a rollback`);
      assert.equal(value.back.release, value.one.release);
      assert.equal(value.back.previous, value.two.release);
      assert.equal(await get(g.url), 'r1');
      // Release 1's build was kept: the rollback ran it without compiling.
      const compiled = g.logs.filter((l) => l.msg === 'release compiled').length;
      assert.equal(compiled, 2, 'one build per release');
      assert.ok(g.logs.some((l) => l.msg === 'release build reused' && l.release === value.one.release));
      const list = await releases(g);
      assert.equal(list.live, value.one.release);
      assert.deepEqual(
        Object.fromEntries(list.releases.map((r) => [r.id, r.outcome])),
        { [value.one.release]: 'live', [value.two.release]: 'rolled back' },
      );
      assert.equal(list.releases[0]!.configVersion, 1);
      // The same files are the same release: nothing new is staged.
      const again = await g.cli('deploy', r1);
      oneLineError(again, 'GRAFT_BAD_ARGUMENT', new RegExp(`release ${value.one.release} .* is live already`));
      const stopped = await g.cli('stop');
      assert.equal(stopped.code, 0, stopped.stderr);
      restarted = await startGraft('app.ts', { cwd: p.service });
      await restarted.waitRunning();
      assert.equal(await get(restarted.url), 'r1', 'a new master starts on the live release, not the files on disk');
      // Leaving releases: back to the entry as it is on disk.
      const disk = await restarted.cli('rollback', '--disk');
      assert.equal(disk.code, 0, disk.stderr);
      assert.match(disk.stdout, new RegExp(`^back on the entry on disk: generation \\d+ serves \\(was release ${value.one.release}\\)`));
      assert.equal(await get(restarted.url), 'disk');
    } finally {
      await g.stop();
      await restarted?.stop();
    }
  });

  test('a release edited by hand, an unknown id, bad sources, a rollback with nothing before and a deploy during a deploy: one error each, the live release serves on', async () => {
    const p = project();
    const g = await startGraft('app.ts', { cwd: p.service });
    try {
      await g.waitRunning();
      oneLineError(await g.cli('rollback'), 'GRAFT_NO_PREVIOUS_RELEASE', /no good release to roll back to/);
      const one = await deploy(g, p.release('r1'));
      await deploy(g, p.release('r2'));
      // Root ignores the read-only mode: the digest check is what refuses it.
      const file = join(p.service, '.graft', 'releases', 'app', one.release, 'version.txt');
      chmodSync(file, 0o644);
      writeFileSync(file, 'edited\n');
      oneLineError(await g.cli('rollback'), 'GRAFT_RELEASE_TAMPERED', new RegExp(`release ${one.release} in \\S+ was changed after it was staged .*deploy the release.s files again to put it right`));
      oneLineError(await g.cli('rollback', 'abcdef0123'), 'GRAFT_RELEASE_UNKNOWN', /no release abcdef0123/);
      oneLineError(await g.cli('deploy', join(p.service, 'nothing-here')), 'GRAFT_RELEASE_SOURCE', /does not exist/);
      const notTar = join(tempDir('not-tar-'), 'release.tgz');
      writeFileSync(notTar, 'not a tarball');
      oneLineError(await g.cli('deploy', notTar), 'GRAFT_RELEASE_SOURCE', /neither a directory nor a tarball that unpacks/);
      const empty = tempDir('no-entry-');
      oneLineError(await g.cli('deploy', empty), 'GRAFT_RELEASE_NO_ENTRY', /does not hold the service's entry app\.ts/);
      assert.equal(await get(g.url), 'r2', 'the live release serves on');
      assert.equal((await g.status()).master.generation, 3, 'nothing reloaded');
      // A deploy while another is under way (its workers boot until the test lets them) is refused; the first goes on.
      const slow = p.release('slow');
      writeFileSync(
        join(slow, 'app.ts'),
        `import { createServer } from 'node:http';\nimport { held } from ${JSON.stringify(fixture('held.ts'))};\nvoid held('boot').then(() => createServer((req, res) => res.end('slow')).listen(Number(process.env.PORT)));\n`,
      );
      const first = g.cli('deploy', slow);
      await g.held('boot', 2);
      oneLineError(await g.cli('deploy', p.release('r9')), 'GRAFT_DEPLOY_BUSY', new RegExp(`a deploy of ${slow} is under way on this service`));
      oneLineError(await g.cli('rollback'), 'GRAFT_DEPLOY_BUSY', /is under way/);
      g.release('boot');
      assert.equal((await first).code, 0);
      assert.equal(await get(g.url), 'slow');
    } finally {
      await g.stop();
    }
  });

  test('rollback --with-config puts back the --set layer the release last served with; without it the config stays', async () => {
    const p = project();
    const g = await startGraft('app.ts', { cwd: p.service });
    try {
      await g.waitRunning();
      const show = async () => ((await g.control({ cmd: 'config', action: 'show' })) as { master: { data: { limit?: string } } }).master.data.limit;
      const one = await deploy(g, p.release('r1'));
      assert.equal((await g.cli('config', 'apply', '--set', 'limit=10')).code, 0);
      await deploy(g, p.release('r2'));
      assert.equal((await g.cli('config', 'apply', '--set', 'limit=20')).code, 0);
      const paired = await g.cli('rollback', '--with-config');
      assert.equal(paired.code, 0, paired.stderr);
      assert.match(paired.stdout, new RegExp(`rolled back to release ${one.release}: .*, with its config \\(version \\d+\\)`));
      assert.equal(String(await show()), '10', 'r1 last served with limit=10');
      assert.equal(await get(g.url), 'r1');
      await deploy(g, p.release('r3'));
      assert.equal((await g.cli('config', 'apply', '--set', 'limit=30')).code, 0);
      const plain = await g.cli('rollback');
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(await get(g.url), 'r1');
      assert.equal(String(await show()), '30', 'a plain rollback moves the code only');
      const list = await releases(g);
      assert.equal(list.releases.find((r) => r.id === one.release)?.outcome, 'live');
    } finally {
      await g.stop();
    }
  });

  test("an npm pack tarball deploys; failed releases never push the last good ones out (--keep-releases 2)", async () => {
    const p = project();
    const g = await startGraft('app.ts', { cwd: p.service, args: ['--keep-releases', '2'] });
    try {
      await g.waitRunning();
      const tarball = join(tempDir('tarball-'), 'service-1.0.0.tgz');
      await create({ gzip: true, file: tarball, cwd: p.release('t1'), prefix: 'package' }, ['app.ts', 'version.txt']);
      const t1 = await deploy(g, tarball);
      assert.equal(await get(g.url), 't1');
      const r2 = await deploy(g, p.release('r2'));
      // Three releases that fail at boot (the module throws before it listens).
      for (const bad of ['f1', 'f2', 'f3']) {
        const dir = p.release(bad);
        writeFileSync(join(dir, 'app.ts'), `throw new Error('${bad} does not boot');\n`);
        oneLineError(await g.cli('deploy', dir), 'GRAFT_BOOT_FAILED', new RegExp(`${bad} does not boot`));
        assert.equal(await get(g.url), 'r2', 'a release that fails to boot never serves');
      }
      const list = await releases(g);
      assert.equal(list.live, r2.release);
      assert.equal(list.releases.find((r) => r.id === t1.release)?.outcome, 'previous', 'the last good release before the live one is kept');
      assert.equal(list.releases.filter((r) => r.outcome === 'failed').length, 2, 'of the failed releases, the newest 2 are kept for their record');
      const back = await g.cli('rollback');
      assert.equal(back.code, 0, back.stderr);
      assert.equal(await get(g.url), 't1');
    } finally {
      await g.stop();
    }
  });
});

describe('the health gate after ready (--min-healthy-time)', () => {
  test('a release that answers 500 on half its requests is rolled back by itself under load: only its own 500s fail', async () => {
    const p = project();
    const g = await startGraft('app.ts', { cwd: p.service, args: ['--min-healthy-time', '3'] });
    try {
      await g.waitRunning();
      const good = await deploy(g, p.release('good'));
      assert.equal(good.health, 'passed');
      const bad = p.release('bad', 'if (n % 2) { res.statusCode = 500; res.end("bad"); return; }');
      const { value, load } = await underLoad(g.url, () => g.cli('deploy', bad));
      const line = oneLineError(value, 'GRAFT_ROLLED_BACK', /turned unhealthy .*: \d+ of its \d+ responses were 5xx \(\d+%, over --max-error-rate 10%\); rolled back to release/);
      assert.match(line, new RegExp(`rolled back to release ${good.release}`));
      assert.equal(load.errors + load.unanswered, 0, 'no request failed but the bad release\'s own answers');
      assert.ok(load.non2xx > 0, 'the bad release did answer 500s before it was rolled back');
      assert.equal(await get(g.url), 'good');
      const list = await releases(g);
      assert.equal(list.live, good.release);
      assert.ok(list.releases.some((r) => r.outcome === 'rolled back' && /5xx/.test(r.reason ?? '')));
      assert.equal(g.logs.find((l) => l.msg === 'release rolled back')?.reason, 'errors');
    } finally {
      await g.stop();
    }
  });

  test('a release whose workers crash after ready, or whose --health-url fails, is rolled back', async () => {
    const p = project();
    const g = await startGraft('app.ts', { cwd: p.service, args: ['--min-healthy-time', '20', '--health-url', '/healthz'] });
    try {
      await g.waitRunning();
      // The gate of a good release ends at 20 s: exit the wait through a release that fails fast instead.
      const crashing = p.release('crashing');
      writeFileSync(join(crashing, 'app.ts'), `${"import { createServer } from 'node:http';"}\ncreateServer((req, res) => res.end('crashing')).listen(Number(process.env.PORT), () => setTimeout(() => process.exit(3), 1000));\n`);
      oneLineError(await g.cli('deploy', crashing), 'GRAFT_ROLLED_BACK', /worker \d+ was replaced \(it exited\); rolled back to the service's entry on disk/);
      assert.equal(await get(g.url), 'disk');
      const sick = p.release('sick', 'if (req.url === "/healthz") { res.statusCode = 503; res.end("sick"); return; }');
      oneLineError(await g.cli('deploy', sick), 'GRAFT_ROLLED_BACK', /GET \/healthz answered 503; rolled back to the service's entry on disk/);
      assert.equal(await get(g.url), 'disk');
      const reasons = g.logs.filter((l) => l.msg === 'release rolled back').map((l) => l.reason);
      assert.deepEqual(reasons, ['crash', 'health-url']);
    } finally {
      await g.stop();
    }
  });
});
