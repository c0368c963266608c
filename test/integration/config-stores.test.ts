import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Etcd3 } from 'etcd3';
import { createClient } from 'redis';
import { fixture, freePort, startGraft, tempDir, waitFor, type GraftProcess, type StatusJson } from '../helpers/graft.js';
import { startEtcd, startNats, startRedis, TcpGate, type StoreProcess } from '../helpers/stores.js';

const REJECTED = 'config change rejected; the live config stays';
/** Stores are retried quickly and given up on quickly at start, so that outages in tests are short. */
const FAST = { GRAFT_STORE_RETRY_MAX_MS: '300', GRAFT_STORE_START_TIMEOUT_MS: '1500' };
const unique = (what: string) => `graft_${what}_${randomBytes(4).toString('hex')}`;

interface Served {
  greeting: string;
  pool: number;
}

type StoreStatus = { url: string; connected: boolean; since: string; attempts: number; revision?: string; fromCache: boolean; lastError?: { code: string; error: string } };
const stores = (s: StatusJson) => (s.master.config as unknown as { stores: StoreStatus[] }).stores;

/** Every worker runs the live version and the app serves `expected` from it (several requests, so both workers answer). */
function serves(g: GraftProcess, expected: Partial<Served>, timeoutMs = 20_000): Promise<StatusJson> {
  return waitFor(
    async () => {
      const s = await g.status();
      const live = s.master.config?.version;
      if (s.workers.length === 0 || !s.workers.every((w) => w.state === 'ready' && w.configVersion === live)) return undefined;
      for (let i = 0; i < 4; i++) {
        const body = (await (await fetch(`${g.url}/config`)).json()) as Served & { version: number };
        if (body.version !== live) return undefined;
        for (const [k, v] of Object.entries(expected)) if (body[k as keyof Served] !== v) return undefined;
      }
      return s;
    },
    timeoutMs,
    `every worker of master ${g.pid} to serve ${JSON.stringify(expected)}`,
  );
}

/** A graft start that failed: its one `graft:` line, and no stack printed. */
async function failedStart(g: GraftProcess): Promise<string> {
  const exit = await g.exited;
  assert.equal(exit.code, 1);
  assert.equal(g.output.filter((l) => /^\s+at /.test(l)).length, 0, 'no stack trace printed');
  const lines = g.output.filter((l) => l.startsWith('graft: '));
  assert.equal(lines.length, 1, g.output.join('\n'));
  return lines[0]!;
}

async function natsBucket(servers = '127.0.0.1:4222', auth?: { user: string; pass: string }): Promise<{ nc: NatsConnection; kv: KV; bucket: string }> {
  const nc = await connect({ servers, ...auth });
  const bucket = unique('b');
  const kv = await new Kvm(nc).create(bucket);
  return { nc, kv, bucket };
}

describe('config from a store: NATS KV, etcd and Redis layered, two masters', { timeout: 120_000 }, () => {
  let etcdServer: StoreProcess;
  let nats: { nc: NatsConnection; kv: KV; bucket: string };
  let etcd: Etcd3;
  let redis: ReturnType<typeof createClient>;
  const redisKey = unique('k');
  const masters: GraftProcess[] = [];
  let urls: string[];

  before(async () => {
    etcdServer = await startEtcd();
    nats = await natsBucket();
    etcd = new Etcd3({ hosts: `http://127.0.0.1:${etcdServer.port}` });
    redis = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
    await redis.connect();
    await nats.kv.put('app.greeting', 'from nats');
    await etcd.put('/app/db/pool').value('3');
    urls = [`nats://127.0.0.1:4222/${nats.bucket}/app`, `etcd://127.0.0.1:${etcdServer.port}/app`, `redis://127.0.0.1:6379/${redisKey}`];
    for (let i = 0; i < 2; i++) {
      const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: urls.flatMap((u) => ['--config', u]), env: FAST });
      masters.push(g);
    }
    await Promise.all(masters.map((g) => g.waitRunning()));
  });

  after(async () => {
    // graft start (the keeper) stops whichever master is in control.
    await Promise.all(masters.map((g) => g.stop()));
    await nats?.kv.destroy();
    await nats?.nc.close();
    await redis?.del(redisKey);
    redis?.destroy();
    await etcd?.close();
    await etcdServer?.stop();
  });

  test('the first read of every store is what both masters start with; status shows each store connected with its revision', async () => {
    for (const g of masters) {
      const s = await serves(g, { greeting: 'from nats', pool: 3 });
      assert.deepEqual(stores(s).map((x) => [x.url, x.connected, x.fromCache, x.attempts]), urls.map((u) => [u, true, false, 0]));
      assert.ok(stores(s).every((x) => typeof x.revision === 'string' && x.revision !== ''), JSON.stringify(stores(s)));
      const table = await g.cli('status');
      assert.match(table.stdout, new RegExp(`store nats://127\\.0\\.0\\.1:4222/${nats.bucket}/app  connected since \\S+  revision \\d+`));
    }
  });

  test('a put in each store reaches every worker of both masters', async () => {
    await nats.kv.put('app.greeting', 'nats put');
    for (const g of masters) await serves(g, { greeting: 'nats put', pool: 3 });
    await etcd.put('/app/db/pool').value('7');
    for (const g of masters) await serves(g, { greeting: 'nats put', pool: 7 });
    // Redis is the top layer: its hash field wins over NATS; the channel message is the hint.
    await redis.hSet(redisKey, 'greeting', 'redis put');
    await redis.publish(`${redisKey}:changed`, '1');
    for (const g of masters) await serves(g, { greeting: 'redis put', pool: 7 });
    // A whole document in the key of the prefix, below the single keys.
    await nats.kv.put('app', 'db:\n  pool: 11\n');
    await etcd.delete().key('/app/db/pool');
    for (const g of masters) await serves(g, { greeting: 'redis put', pool: 11 });
    const history = JSON.parse((await masters[0]!.cli('config', 'history', '--json')).stdout) as Array<{ source: string; accepted: boolean }>;
    assert.ok(history.some((h) => h.accepted && h.source === urls[2]), JSON.stringify(history));
  });

  test('an invalid value is rejected naming the source and key path; the old one keeps serving', async () => {
    const g = masters[0]!;
    const live = await serves(g, { pool: 11 });
    const from = g.logs.length;
    await nats.kv.put('app.db.pool', '0');
    const record = await g.waitForLog((l) => l.msg === REJECTED, 15_000, from);
    assert.equal(record.code, 'GRAFT_CONFIG_INVALID');
    assert.match(String(record.error), /db\.pool/);
    assert.equal(record.source, urls[0]);
    let s = await serves(g, { pool: 11 });
    assert.equal(s.master.config!.version, live.master.config!.version);
    assert.match(s.master.config!.lastRejected!.error!, /db\.pool/);

    // A document that does not parse: GRAFT_CONFIG_PARSE naming the store and key.
    await nats.kv.delete('app.db.pool');
    await serves(g, { pool: 11 });
    const from2 = g.logs.length;
    await redis.del(redisKey);
    await redis.set(redisKey, 'greeting: [oops\n');
    await redis.publish(`${redisKey}:changed`, '1');
    const parse = await g.waitForLog((l) => l.msg === REJECTED, 15_000, from2);
    assert.equal(parse.code, 'GRAFT_CONFIG_PARSE');
    assert.match(String(parse.error), new RegExp(`redis://127\\.0\\.0\\.1:6379/${redisKey}.*invalid YAML`));
    s = await g.status();
    assert.ok(s.workers.every((w) => w.configVersion === s.master.config!.version));
    await redis.set(redisKey, '{"greeting": "fixed"}');
    await redis.publish(`${redisKey}:changed`, '1');
    for (const m of masters) await serves(m, { greeting: 'fixed', pool: 11 });
  });

  test('graft upgrade: the successor opens its own connections and follows the stores', async () => {
    const g = masters[1]!;
    const up = await g.cli('upgrade');
    assert.equal(up.code, 0, up.stderr);
    const first = await g.firstMaster();
    const s = await waitFor(async () => {
      const st = await g.status();
      return st.master.pid !== first && stores(st).every((x) => x.connected) ? st : undefined;
    }, 20_000, 'the successor connected to every store');
    assert.equal(stores(s).length, 3);
    await etcd.put('/app/db/pool').value('21');
    await serves(g, { greeting: 'fixed', pool: 21 });
    // The old master closed its connections and exited.
    const exit = await g.masterExit(first);
    assert.equal(exit.code, 0);
  });
});

describe('config from a store: outages, gaps and the cache file', { timeout: 180_000 }, () => {
  test('a restart of each store in the middle of a series of changes loses none: the last value wins on every worker', { timeout: 90_000 }, async () => {
    const [natsServer, etcdServer, redisServer] = await Promise.all([startNats(), startEtcd(), startRedis()]);
    const nats = await natsBucket(`127.0.0.1:${natsServer.port}`);
    const etcd = new Etcd3({ hosts: `http://127.0.0.1:${etcdServer.port}` });
    const redis = createClient({ socket: { host: '127.0.0.1', port: redisServer.port, reconnectStrategy: 100 } });
    redis.on('error', () => {});
    await redis.connect();
    const key = unique('k');
    const g = await startGraft(fixture('config-app.ts'), {
      workers: 2,
      args: [`nats://127.0.0.1:${natsServer.port}/${nats.bucket}`, `etcd://127.0.0.1:${etcdServer.port}/app`, `redis://127.0.0.1:${redisServer.port}/${key}?reconcile=2`].flatMap((u) => ['--config', u]),
      env: FAST,
    });
    try {
      await g.waitRunning();
      // Layers, lowest first: NATS, etcd, Redis; each phase sets greeting in one store, so the last phase's value shows.
      const phases: Array<[string, StoreProcess, (v: string) => Promise<unknown>]> = [
        ['nats', natsServer, (v) => nats.kv.put('greeting', v)],
        ['etcd', etcdServer, (v) => etcd.put('/app/greeting').value(v).exec()],
        ['redis', redisServer, async (v) => { await redis.hSet(key, 'greeting', v); await redis.publish(`${key}:changed`, '1'); }],
      ];
      for (const [name, server, put] of phases) {
        for (let i = 1; i <= 3; i++) await put(`${name}-${i}`);
        await serves(g, { greeting: `${name}-3` });
        const from = g.logs.length;
        await server.restart();
        if (name === 'nats') {
          // This test's own client: a new connection rather than its reconnect timing.
          await nats.nc.close();
          nats.nc = await connect({ servers: `127.0.0.1:${natsServer.port}` });
          nats.kv = await new Kvm(nats.nc).open(nats.bucket);
        }
        // Redis comes back empty (no persistence): the series goes on there.
        for (let i = 4; i <= 6; i++) await put(`${name}-${i}`);
        await g.waitForLog((l) => l.msg === 'config store connected' && String(l.source).startsWith(`${name}://`), 20_000, from);
        const s = await serves(g, { greeting: `${name}-6` });
        assert.ok(stores(s).every((x) => x.connected), JSON.stringify(stores(s)));
      }
      assert.ok(g.logs.some((l) => l.msg === 'config store disconnected; reconnecting' && l.code === 'GRAFT_STORE_UNREACHABLE'));
    } finally {
      await g.stop();
      await nats.nc.close().catch(() => {});
      redis.destroy();
      await etcd.close();
      await Promise.all([natsServer.stop(), etcdServer.stop(), redisServer.stop()]);
    }
  });

  test('an etcd compaction past the watched revision is survived: the change made meanwhile arrives', async () => {
    const server = await startEtcd();
    const gate = await new TcpGate(server.port).open();
    const etcd = new Etcd3({ hosts: `http://127.0.0.1:${server.port}` });
    await etcd.put('/app/greeting').value('before');
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', `etcd://127.0.0.1:${gate.port}/app`], env: FAST });
    try {
      await g.waitRunning();
      await serves(g, { greeting: 'before' });
      await gate.cut();
      await waitFor(async () => stores(await g.status()).every((x) => !x.connected), 15_000, 'the master to see etcd gone');
      await etcd.put('/app/greeting').value('meanwhile');
      await etcd.put('/app/other').value('1');
      const latest = await etcd.delete().key('/app/other').exec();
      await etcd.kv.compact({ revision: latest.header.revision });
      const from = g.logs.length;
      await gate.open();
      const gap = await g.waitForLog((l) => l.msg === 'config store re-read after a gap', 20_000, from);
      assert.match(String(gap.reason), /compacted/);
      const s = await serves(g, { greeting: 'meanwhile' });
      assert.equal(stores(s)[0]!.connected, true);
      assert.ok(Number(stores(s)[0]!.revision) >= Number(latest.header.revision));
    } finally {
      await g.stop();
      await etcd.close();
      await gate.cut();
      await server.stop();
    }
  });

  test('a master starts from its cache file while the store is down, and picks up the store when it comes up', async () => {
    const server = await startRedis();
    const redis = createClient({ socket: { host: '127.0.0.1', port: server.port, reconnectStrategy: 100 } });
    redis.on('error', () => {});
    await redis.connect();
    const key = unique('k');
    await redis.set(key, 'greeting: cached\ndb:\n  pool: 4\n');
    const cache = tempDir();
    const url = `redis://127.0.0.1:${server.port}/${key}`;
    const first = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', url, '--config-cache', cache], env: FAST });
    await first.waitRunning();
    await serves(first, { greeting: 'cached', pool: 4 });
    // A content the workers reject is never the cached "last good" one.
    await redis.set(key, 'greeting: rejected\ndb:\n  pool: 0\n');
    await redis.publish(`${key}:changed`, '1');
    await first.waitForLog((l) => l.msg === 'config change rejected; the live config stays');
    await first.stop();
    assert.equal(readdirSync(cache).filter((f) => f.endsWith('.json')).length, 1, 'one cache file');
    await server.stop();
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', url, '--config-cache', cache], env: FAST });
    try {
      const warning = await g.waitForLog((l) => l.msg === 'config store unreachable; starting from its cached snapshot');
      assert.equal(warning.level, 'warn');
      assert.equal(warning.source, url);
      assert.match(String(warning.revision), /^[0-9a-f]{12}$/);
      assert.equal(warning.file, join(cache, readdirSync(cache).find((f) => f.endsWith('.json'))!));
      await g.waitRunning();
      let s = await serves(g, { greeting: 'cached', pool: 4 });
      assert.deepEqual(stores(s).map((x) => [x.connected, x.fromCache]), [[false, true]]);
      assert.match((await g.cli('status')).stdout, /DISCONNECTED .*\(from the cache file\)/);
      // The store comes back empty (no persistence); what it holds then is the truth.
      await server.start();
      await redis.set(key, 'greeting: live\n');
      await redis.publish(`${key}:changed`, '1');
      s = await serves(g, { greeting: 'live', pool: 2 });
      assert.deepEqual(stores(s).map((x) => [x.connected, x.fromCache]), [[true, false]]);
      assert.ok(s.master.config!.version > 1);
    } finally {
      await g.stop();
      redis.destroy();
      await server.stop();
    }
  });
});

describe('config from a store: a NATS bucket deleted and made again', { timeout: 60_000 }, () => {
  test('its revisions start over: graft reads it whole again and every worker runs what it holds', async () => {
    const { nc, kv, bucket } = await natsBucket();
    await kv.put('app.greeting', 'first');
    await kv.put('app.db.pool', '5');
    // Its status checked every second (5 by default).
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', `nats://127.0.0.1:4222/${bucket}/app?reconcile=1`], env: FAST });
    try {
      await g.waitRunning();
      await serves(g, { greeting: 'first', pool: 5 });
      const from = g.logs.length;
      await kv.destroy();
      // The same name, a new bucket: its first revision is below the one graft last saw.
      const again = await new Kvm(nc).create(bucket);
      await again.put('app.greeting', 'recreated');
      const s = await serves(g, { greeting: 'recreated', pool: 2 });
      const gap = g.logs.slice(from).find((l) => l.msg === 'config store re-read after a gap');
      assert.match(String(gap?.reason), /the bucket was recreated/);
      assert.equal(stores(s)[0]!.connected, true);
      await again.destroy();
    } finally {
      await g.stop();
      await nc.close();
    }
  });
});

describe('config from a store: graft config check only reads', { timeout: 180_000 }, () => {
  test('a check while a change is in flight leaves the cache file to what went live, not what the check read', async () => {
    const redis = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
    await redis.connect();
    const key = unique('k');
    const dir = tempDir();
    const cache = tempDir();
    const gate = join(dir, 'gate');
    const put = async (text: string) => {
      await redis.set(key, text);
      await redis.publish(`${key}:changed`, '1');
    };
    const cached = () => {
      const files = readdirSync(cache).filter((f) => f.endsWith('.json'));
      assert.equal(files.length, 1, 'one cache file');
      return Object.values((JSON.parse(readFileSync(join(cache, files[0]!), 'utf8')) as { entries: Record<string, string> }).entries);
    };
    await redis.set(key, 'note: one\n');
    const g = await startGraft(fixture('ready-hooks-app.ts'), { workers: 1, args: ['--config', `redis://127.0.0.1:6379/${key}`, '--config-cache', cache], env: FAST });
    try {
      await g.waitForLog((l) => l.msg === 'master running', 60_000);
      assert.deepEqual(cached(), ['note: one\n']);
      // Version 2 needs a new worker (gate is in the service's restartOn), which holds the change in flight until the gate opens.
      const live = `note: two\ngate: ${gate}\n`;
      await put(live);
      await g.waitForLog((l) => l.msg === 'worker started' && l.generation === 2);
      // Meanwhile the store moves on to a content the workers refuse; the change that reads it waits its turn.
      const before = stores(await g.status())[0]!.revision;
      await put(`${live}level: -1\n`);
      await waitFor(async () => stores(await g.status())[0]!.revision !== before, 10_000, 'the source to hold the newer content');
      const file = join(dir, 'check.yaml');
      writeFileSync(file, 'note: checked\n');
      const check = await g.cli('config', 'check', file);
      assert.notEqual(check.code, 0);
      assert.match(check.stderr, /^graft: GRAFT_CONFIG_INVALID: .*level/m);
      writeFileSync(gate, '');
      await g.waitForLog((l) => l.msg === 'config applied' && l.configVersion === 2);
      const rejected = await g.waitForLog((l) => l.msg === REJECTED);
      assert.equal(rejected.attempted, 3);
      assert.equal((await g.status()).master.config!.version, 2);
      assert.deepEqual(cached(), [live], 'the cache file holds the content that went live');
    } finally {
      await g.stop();
      await redis.del(key);
      redis.destroy();
    }
  });
});

describe('config from a store: bad input at start is one GRAFT_ line', { timeout: 60_000 }, () => {
  test('an unknown scheme', async () => {
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', 'consul://127.0.0.1:8500/app'] });
    const line = await failedStart(g);
    assert.match(line, /^graft: GRAFT_STORE_URL: --config consul:\/\/127\.0\.0\.1:8500\/app: unknown scheme consul:\/\/; graft knows nats:\/\/.*etcd:\/\/.*redis:\/\//);
  });

  test('a NATS bucket that does not exist', async () => {
    const bucket = unique('missing');
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `nats://127.0.0.1:4222/${bucket}`], env: FAST });
    const line = await failedStart(g);
    assert.match(line, new RegExp(`^graft: GRAFT_STORE_NOT_FOUND: nats://127\\.0\\.0\\.1:4222/${bucket}: the KV bucket ${bucket} does not exist`));
  });

  test('wrong credentials for NATS and for Redis', async () => {
    const [natsServer, redisServer] = await Promise.all([startNats({ user: 'graft', pass: 'right' }), startRedis({ pass: 'right' })]);
    try {
      const nats = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `nats://graft:wrong@127.0.0.1:${natsServer.port}/b`], env: FAST });
      assert.match(await failedStart(nats), new RegExp(`^graft: GRAFT_STORE_AUTH: nats://127\\.0\\.0\\.1:${natsServer.port}/b: the NATS server refused the credentials`));
      const redis = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `redis://:wrong@127.0.0.1:${redisServer.port}/k`], env: FAST });
      const line = await failedStart(redis);
      assert.match(line, new RegExp(`^graft: GRAFT_STORE_AUTH: redis://127\\.0\\.0\\.1:${redisServer.port}/k: Redis refused the credentials`));
      assert.doesNotMatch(line, /wrong/, 'the password is not printed');
    } finally {
      await Promise.all([natsServer.stop(), redisServer.stop()]);
    }
  });

  test('wrong credentials fail the start even with a cache file of that store: an outage is not a wrong password', async () => {
    const server = await startRedis({ pass: 'right' });
    const key = unique('auth');
    const redis = createClient({ socket: { host: '127.0.0.1', port: server.port }, password: 'right' });
    await redis.connect();
    await redis.set(key, 'greeting: cached\n');
    const cache = tempDir();
    try {
      const first = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `redis://:right@127.0.0.1:${server.port}/${key}`, '--config-cache', cache], env: FAST });
      await first.waitRunning();
      await serves(first, { greeting: 'cached' });
      await first.stop();
      assert.equal(readdirSync(cache).filter((f) => f.endsWith('.json')).length, 1, 'a cache file of that store');
      const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `redis://:wrong@127.0.0.1:${server.port}/${key}`, '--config-cache', cache], env: FAST });
      const line = await failedStart(g);
      assert.match(line, new RegExp(`^graft: GRAFT_STORE_AUTH: redis://127\\.0\\.0\\.1:${server.port}/${key}: Redis refused the credentials`));
      assert.ok(!g.logs.some((l) => l.msg === 'config store unreachable; starting from its cached snapshot'), 'the cache is not used');
    } finally {
      redis.destroy();
      await server.stop();
    }
  });

  test('a store that cannot be reached and has no cache', async () => {
    const port = await freePort();
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `etcd://127.0.0.1:${port}/app`, '--config-cache', tempDir()], env: FAST });
    const line = await failedStart(g);
    assert.match(line, new RegExp(`^graft: GRAFT_STORE_UNREACHABLE: etcd://127\\.0\\.0\\.1:${port}/app could not be reached within 1\\.5 s .* no snapshot of it is cached`));
  });
});
