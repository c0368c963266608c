import assert from 'node:assert/strict';
import { chmodSync, chownSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, startGraft, tempDir, waitFor, type GraftProcess, startWithConfigFile } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';

const REJECTED = 'config change rejected; the live config stays';
const get = async (url: string) => (await fetch(url)).text();

/** Write something bad; the change is rejected, reported, and the old config keeps serving. */
async function expectRejected(g: GraftProcess, breakIt: () => void, restore: () => void, expected: RegExp): Promise<void> {
  const before = await g.status();
  const liveVersion = before.master.config!.version;
  const from = g.logs.length;
  breakIt();
  const record = await g.waitForLog((l) => l.msg === REJECTED, 10_000, from);
  assert.match(String(record.error), expected);
  assert.equal(record.level, 'error');
  const status = await g.status();
  assert.equal(status.master.config!.version, liveVersion, 'the live version did not change');
  assert.match(status.master.config!.lastRejected!.error!, expected);
  assert.ok(status.workers.every((w) => w.configVersion === liveVersion));
  assert.match(await get(`${g.url}/`), new RegExp(`^${liveVersion} `));
  restore();
  const apply = await g.cli('config', 'apply');
  assert.equal(apply.code, 0, apply.stderr);
}

describe('live configuration: bad changes keep the last good config serving', () => {
  let g: GraftProcess;
  let dir: string;
  const files: Record<string, [string, string]> = {};
  before(async () => {
    dir = tempDir();
    // One layer per format, lowest first; each good file sets something.
    files.json = [join(dir, 'base.json'), '{ "db": { "pool": 3 } }\n'];
    files.yaml = [join(dir, 'app.yaml'), 'greeting: hi\n'];
    files.toml = [join(dir, 'extra.toml'), '[extra]\nenabled = true\n'];
    files.env = [join(dir, 'local.env'), 'LOCAL__NAME=dev\n'];
    for (const [file, text] of Object.values(files)) writeFileSync(file, text);
    g = await startGraft(fixture('config-app.ts'), { workers: 2, args: Object.values(files).flatMap(([f]) => ['--config', f]) });
    await g.waitRunning();
    assert.equal(await get(`${g.url}/`), '1 hi\n');
  });
  after(() => g.stop());

  const restoreAll = () => {
    for (const [file, text] of Object.values(files)) {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
      writeFileSync(file, text);
    }
  };

  test('a syntax error in JSON, YAML, TOML and .env names the file and line', async () => {
    await expectRejected(g, () => writeFileSync(files.json![0], '{ "db": { "pool": 3 }\n'), restoreAll, /base\.json:\d+:\d+: invalid JSON/);
    await expectRejected(g, () => writeFileSync(files.yaml![0], 'greeting: [oops\n'), restoreAll, /app\.yaml:\d+:\d+: invalid YAML/);
    await expectRejected(g, () => writeFileSync(files.toml![0], '[extra\nenabled = true\n'), restoreAll, /extra\.toml:1:\d+: invalid TOML/);
    await expectRejected(g, () => writeFileSync(files.env![0], 'LOCAL__NAME=dev\nnot a pair\n'), restoreAll, /local\.env:2:1: invalid \.env line/);
  });

  test('a schema violation names the key path', async () => {
    await expectRejected(g, () => writeFileSync(files.yaml![0], 'greeting: hi\ndb:\n  pool: 0\n'), restoreAll, /GRAFT_CONFIG_INVALID|db\.pool: /);
    const history = await g.cli('config', 'history', '--json');
    const rejected = (JSON.parse(history.stdout) as Array<{ accepted: boolean; error?: string; code?: string }>).filter((h) => !h.accepted);
    assert.equal(rejected.at(-1)?.code, 'GRAFT_CONFIG_INVALID');
    assert.match(rejected.at(-1)!.error!, /db\.pool/);
  });

  test('an empty file, a deleted file, a 10 MB file, binary garbage, a symlink to nowhere', async () => {
    const yaml = files.yaml![0];
    await expectRejected(g, () => writeFileSync(yaml, ''), restoreAll, /app\.yaml: is empty/);
    await expectRejected(g, () => unlinkSync(yaml), restoreAll, /app\.yaml does not exist/);
    // The size is what graft read: a watcher may see the 10 MB file while it is still being written.
    await expectRejected(g, () => writeFileSync(yaml, `greeting: ${'x'.repeat(10 * 1024 * 1024)}\n`), restoreAll, /app\.yaml is \d+\.\d MB; config files are limited to 1\.0 MB/);
    await expectRejected(g, () => writeFileSync(yaml, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x00, 0x42])), restoreAll, /app\.yaml: contains binary data/);
    await expectRejected(
      g,
      () => {
        unlinkSync(yaml);
        symlinkSync(join(dir, 'nowhere', 'app.yaml'), yaml);
      },
      restoreAll,
      /app\.yaml is a symlink to .*nowhere\/app\.yaml, which does not exist/,
    );
  });

  test('the next good change applies to every worker', async () => {
    const previous = (await g.status()).master.config!.version;
    writeFileSync(files.yaml![0], 'greeting: good again\n');
    const s = await waitFor(async () => {
      const st = await g.status();
      const live = st.master.config!.version;
      return live > previous && st.workers.every((w) => w.configVersion === live) ? st : undefined;
    }, 10_000, 'the new version everywhere');
    // Rejected attempts used version numbers too: versions are monotonic, not dense.
    for (let i = 0; i < 6; i++) assert.equal(await get(`${g.url}/`), `${s.master.config!.version} good again\n`);
    const history = JSON.parse((await g.cli('config', 'history', '--json')).stdout) as Array<{ accepted: boolean }>;
    assert.ok(history.filter((h) => !h.accepted).length >= 9);
  });
});

describe('live configuration under load and at scale', () => {
  test('permission denied is reported and the old config keeps serving', async () => {
    const dir = tempDir();
    chownSync(dir, 65534, 65534);
    chmodSync(dir, 0o755);
    const file = join(dir, 'app.yaml');
    writeFileSync(file, 'greeting: hi\n');
    chownSync(file, 65534, 65534);
    // root reads everything, so graft runs as nobody here.
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', file], cwd: dir, uid: process.getuid?.() === 0 ? 65534 : undefined!, env: { GRAFT_RUNTIME_DIR: dir } });
    try {
      await g.waitRunning();
      await expectRejected(g, () => chmodSync(file, 0), () => chmodSync(file, 0o644), /app\.yaml: permission denied/);
    } finally {
      await g.stop();
    }
  });

  test('500 rapid writes end with every worker on the last version, none stale', async () => {
    const { g, file } = await startWithConfigFile(fixture('config-app.ts'), 'greeting: w0\n', { workers: 2 });
    try {
      await g.waitRunning();
      for (let i = 1; i <= 500; i++) {
        writeFileSync(file, `greeting: w${i}\n`);
        if (i % 10 === 0) await new Promise((r) => setImmediate(r));
      }
      // A worker answers with the last write; then the status (read after it) shows that version live on every worker.
      const version = await waitFor(async () => {
        const body = JSON.parse(await get(`${g.url}/config`)) as { version: number; greeting: string };
        if (body.greeting !== 'w500') return undefined;
        const s = await g.status();
        return s.master.config!.version === body.version && s.workers.length === 2 && s.workers.every((w) => w.configVersion === body.version) ? body.version : undefined;
      }, 15_000, 'every worker on the last version');
      for (let i = 0; i < 10; i++) {
        const body = JSON.parse(await get(`${g.url}/config`)) as { version: number; greeting: string };
        assert.deepEqual(body, { version, greeting: 'w500', pool: 2 });
      }
    } finally {
      await g.stop();
    }
  });

  test('a config change under HTTP load fails no request', async () => {
    const { g } = await startWithConfigFile(fixture('config-app.ts'), 'greeting: a0\n', { workers: 2 });
    try {
      await g.waitRunning();
      const { load, failed } = await underLoad(g.url, async () => {
        for (let i = 1; i <= 10; i++) {
          const r = await g.cli('config', 'apply', '--set', `greeting=b${i}`);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, new RegExp(`config version ${i + 1} applied \\(in-place\\)`));
        }
      });
      assert.ok(load.answered > 100, `only ${load.answered} requests were answered`);
      assert.equal(failed, 0, JSON.stringify(load));
      assert.equal(await get(`${g.url}/`), '11 b10\n');
    } finally {
      await g.stop();
    }
  });

  test('a resource in use by a slow request is not disposed until that request ends', async () => {
    const g = await startGraft(fixture('config-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      const first = JSON.parse(await get(`${g.url}/db`)) as { id: number; pool: number };
      assert.deepEqual(first, { id: 1, pool: 2 });
      const slow = get(`${g.url}/db-held`);
      await g.held('db');
      const r = await g.cli('config', 'apply', '--set', 'db.pool=7');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(await get(`${g.url}/db`)), { id: 2, pool: 7 }, 'new leases get the new instance');
      assert.ok(!g.output.some((l) => l.includes('disposed db instance 1')), 'disposed while a request held it');
      g.release('db');
      assert.deepEqual(JSON.parse(await slow), { id: 1, pool: 2, disposedWhileInUse: false });
      await waitFor(() => g.output.some((l) => l.includes('disposed db instance 1')), 5000, 'the old instance to be disposed after its last lease');
    } finally {
      await g.stop();
    }
  });

  test('sources layer as documented: file < CONFIG__ environment < --set; environment values read as JSON', async () => {
    const { g } = await startWithConfigFile(fixture('config-app.ts'), 'greeting: from-file\ndb:\n  pool: 3\n', {
      workers: 1,
      env: { CONFIG__GREETING: 'from-env', CONFIG__DB__POOL: '9' },
    });
    try {
      await g.waitRunning();
      const shown = async () => {
        const { greeting, pool } = JSON.parse(await get(`${g.url}/config`)) as { greeting: string; pool: number };
        return { greeting, pool };
      };
      // db.pool is a number in the schema: "9" from the environment passes only as JSON.
      assert.deepEqual(await shown(), { greeting: 'from-env', pool: 9 });
      const r = await g.cli('config', 'apply', '--set', 'greeting=from-cli');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await shown(), { greeting: 'from-cli', pool: 9 });
    } finally {
      await g.stop();
    }
  });

  test('keys that need new processes reload the workers; later workers start on the current snapshot', async () => {
    const { g, file } = await startWithConfigFile(fixture('config-app.ts'), 'greeting: one\ngraft:\n  workers: 1\n', { workers: 0 });
    try {
      await g.waitRunning();
      let s = await g.status();
      assert.equal(s.master.generation, 1);
      assert.equal(s.workers.length, 1);
      const r1 = await (async () => {
        writeFileSync(file, 'greeting: two\ngraft:\n  workers: 2\n');
        return g.waitForLog((l) => l.msg === 'config applied' && l.role === 'master' && l.mode === 'reload');
      })();
      assert.deepEqual(r1.changed, ['graft.workers', 'greeting']);
      s = await waitFor(async () => {
        const st = await g.status();
        return st.workers.length === 2 && st.workers.every((w) => w.generation === 2 && w.state === 'ready') ? st : undefined;
      }, 15_000, 'generation 2 with two workers');
      assert.ok(s.workers.every((w) => w.configVersion === 2));
      // restartOn declared by the service
      const r2 = await g.cli('config', 'apply', '--set', 'restartMe=1');
      assert.match(r2.stdout, /applied \(reload\)/);
      // a worker started later starts on the current snapshot
      const scaled = await g.cli('scale', '3');
      assert.equal(scaled.code, 0, scaled.stderr);
      s = await g.status();
      const live = s.master.config!.version;
      assert.ok(s.workers.filter((w) => w.state === 'ready').every((w) => w.configVersion === live));
    } finally {
      await g.stop();
    }
  });

  test('a worker of a config reload that dies right after ready is replaced on that config, not the previous one', async () => {
    const { g, dir } = await startWithConfigFile(fixture('ready-hooks-app.ts'), 'dieOnce: none\n', { workers: 1 });
    try {
      await g.waitForLog((l) => l.msg === 'master running', 60_000);
      assert.match(await get(`${g.url}/`), /^1 1 /);
      const marker = join(dir, 'die-once');
      writeFileSync(marker, '');
      const from = g.logs.length;
      // dieOnce is in the service's restartOn: version 2 needs new processes, and the first one dies once it is ready.
      const r = await g.cli('config', 'apply', '--set', `dieOnce=${marker}`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /config version 2 applied \(reload\)/);
      const died = await g.waitForLog((l) => l.msg === 'worker died; replacing it' && l.generation === 2, 20_000, from);
      const s = await waitFor(async () => {
        const st = await g.status();
        const replacement = st.workers.find((w) => w.generation === 2 && w.pid !== died.workerPid && w.state === 'ready');
        return replacement && st.workers.length === 1 ? st : undefined;
      }, 20_000, 'the replacement worker of generation 2');
      assert.equal(s.master.config!.version, 2);
      assert.equal(s.workers[0]!.configVersion, 2, 'the replacement runs the config its generation was built for');
      assert.match(await get(`${g.url}/`), new RegExp(`^2 2 ${s.workers[0]!.pid}\n$`));
      // A version applied in place moves the set: a worker replaced after it starts on it.
      const inPlace = await g.cli('config', 'apply', '--set', 'note=three');
      assert.match(inPlace.stdout, /config version 3 applied \(in-place\)/);
      const from3 = g.logs.length;
      process.kill(s.workers[0]!.pid, 'SIGKILL');
      await g.waitForLog((l) => l.msg === 'worker died; replacing it' && l.workerPid === s.workers[0]!.pid, 20_000, from3);
      const s3 = await waitFor(async () => {
        const st = await g.status();
        return st.workers.length === 1 && st.workers[0]!.pid !== s.workers[0]!.pid && st.workers[0]!.state === 'ready' ? st : undefined;
      }, 20_000, 'the replacement after the in-place change');
      assert.equal(s3.workers[0]!.configVersion, 3);
      assert.match(await get(`${g.url}/`), new RegExp(`^3 2 ${s3.workers[0]!.pid}\n$`));
    } finally {
      await g.stop();
    }
  });

  test('graft config show, check and history', async () => {
    const { g, dir, file } = await startWithConfigFile(fixture('config-app.ts'), 'greeting: shown\n', { workers: 1 });
    try {
      await g.waitRunning();
      const show = await g.cli('config', 'show', 'db', '--json');
      assert.equal(show.code, 0, show.stderr);
      assert.deepEqual(JSON.parse(show.stdout).value, { pool: 2 }, 'shows the schema default the workers run');
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'db:\n  pool: -1\n');
      const check = await g.cli('config', 'check', bad);
      assert.notEqual(check.code, 0);
      assert.match(check.stderr, /^graft: GRAFT_CONFIG_INVALID: .*db\.pool/m);
      const good = join(dir, 'good.yaml');
      writeFileSync(good, 'db:\n  pool: 9\n');
      const ok = await g.cli('config', 'check', good);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(JSON.parse((await g.cli('config', 'show', '--json')).stdout).value.db.pool, 2, 'check applied nothing');
      const broken = join(dir, 'broken.toml');
      writeFileSync(broken, 'a = \n');
      const parse = await g.cli('config', 'check', broken);
      assert.match(parse.stderr, /^graft: GRAFT_CONFIG_PARSE: .*broken\.toml:1:\d+/m);
      const history = await g.cli('config', 'history');
      assert.match(history.stdout, /v1\s+accepted/);
      // --set stays on top of file edits until it is unset
      assert.equal((await g.cli('config', 'apply', '--set', 'greeting=pinned')).code, 0);
      // The edit also changes a key no override pins: once that is live, the edit has been read.
      writeFileSync(file, 'greeting: from-file\ndb:\n  pool: 3\n');
      await waitFor(async () => (JSON.parse(await get(`${g.url}/db`)) as { pool: number }).pool === 3, 10_000, 'the edit to be read');
      assert.match(await get(`${g.url}/`), / pinned\n$/);
      const unset = await g.cli('config', 'apply', '--unset', 'greeting');
      assert.equal(unset.code, 0, unset.stderr);
      assert.match(await get(`${g.url}/`), / from-file\n$/);
      // a rejected --set does not stay behind in the override layer
      const rejected = await g.cli('config', 'apply', '--set', 'db.pool=0');
      assert.notEqual(rejected.code, 0);
      assert.match(rejected.stderr, /^graft: GRAFT_CONFIG_INVALID: .*db\.pool/m);
      writeFileSync(file, 'greeting: after-rejection\n');
      await waitFor(async () => (await get(`${g.url}/`)).endsWith(' after-rejection\n'), 10_000, 'a file edit after a rejected --set to apply');
    } finally {
      await g.stop();
    }
  });
});
