import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, freePort, startGraft, tempDir, waitFor, type GraftProcess, type StatusJson } from '../helpers/graft.js';
import { startApollo, type ApolloServer } from '../../bench/lib/apollo-server.js';

const REJECTED = 'config change rejected; the live config stays';
/** Stores are retried quickly and given up on quickly at start, so that outages in tests are short. */
const FAST = { GRAFT_STORE_RETRY_MAX_MS: '300', GRAFT_STORE_START_TIMEOUT_MS: '1500' };
/** The reconcile read is out of the way: what arrives, arrives through the long poll. */
const NO_RECONCILE = 'reconcile=3600';
const unique = (what: string) => `graft-${what}-${randomBytes(4).toString('hex')}`;

interface Served {
  greeting: string;
  pool: number;
}

type StoreStatus = { url: string; connected: boolean; attempts: number; revision?: string; fromCache: boolean; lastError?: { code: string; error: string } };
const stores = (s: StatusJson) => (s.master.config as unknown as { stores: StoreStatus[] }).stores;

/** Every worker runs the live version and the app serves `expected` from it (several requests, so every worker answers). */
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

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('config from Apollo: two masters, one long poll each, a properties and a json namespace over a file', { timeout: 180_000 }, () => {
  let server: ApolloServer;
  const app = unique('app');
  const masters: GraftProcess[] = [];
  let url: string;

  before(async () => {
    server = await startApollo();
    server.publish(app, 'application', { greeting: 'from apollo', 'db.pool': '3' });
    server.publish(app, 'datasources.json', '{"db": {"pool": 4}}');
    const dir = tempDir();
    const file = join(dir, 'base.yaml');
    writeFileSync(file, 'greeting: from the file\ndb:\n  pool: 2\n');
    url = server.url(app, 'application,datasources.json', { query: NO_RECONCILE });
    for (let i = 0; i < 2; i++) masters.push(await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', file, '--config', url], env: FAST }));
    await Promise.all(masters.map((g) => g.waitRunning()));
  });

  after(async () => {
    await Promise.all(masters.map((g) => g.stop()));
    await server?.stop();
  });

  test('the first read is what every worker of both masters starts with; status shows each namespace with its releaseKey and notification id', async () => {
    for (const g of masters) {
      // The file is lowest; application's greeting is above it; datasources.json, named later, wins db.pool.
      const s = await serves(g, { greeting: 'from apollo', pool: 4 });
      const name = `apollo://${app}@127.0.0.1:${server.port}/default/application,datasources.json`;
      assert.deepEqual(stores(s).map((x) => [x.url, x.connected, x.fromCache, x.attempts]), [[name, true, false, 0]]);
      assert.equal(s.master.config!.version, 1, 'the first read, not a later change');
      const table = await g.cli('status');
      assert.match(table.stdout, new RegExp(`store ${escape(name)}  connected since \\S+  revision application=\\S+#\\d+ datasources\\.json=\\S+#\\d+`));
    }
  });

  test('a publish reaches every worker of both masters through the long poll', async () => {
    const from = masters.map((g) => g.logs.length);
    const polls = server.requests.length;
    server.publish(app, 'application', { greeting: 'published', 'db.pool': '3' });
    for (const g of masters) await serves(g, { greeting: 'published', pool: 4 });
    // A property below the json namespace's db.pool changes nothing that is served…
    server.publish(app, 'application', { greeting: 'published', 'db.pool': '5' });
    // …and the json namespace's own does.
    server.publish(app, 'datasources.json', '{"db": {"pool": 9}}');
    for (const g of masters) await serves(g, { greeting: 'published', pool: 9 });
    masters.forEach((g, i) => {
      assert.deepEqual(g.logs.slice(from[i]).filter((l) => /config store (disconnected|connected)/.test(String(l.msg))), [], 'no reconnect: each master kept its long poll');
      const applied = g.logs.slice(from[i]).filter((l) => l.msg === 'config applied');
      // A change names the namespaces it came from (both, when one long poll answer named both).
      assert.ok(applied.some((l) => new RegExp(`^apollo://${app}@127\\.0\\.0\\.1:${server.port}/default/(application,)?datasources\\.json$`).test(String(l.source))), JSON.stringify(applied));
    });
    // Re-reads followed long-poll answers; the reconcile (an hour) played no part.
    assert.ok(server.requests.slice(polls).some((r) => r.path === '/notifications/v2'));
    const history = JSON.parse((await masters[0]!.cli('config', 'history', '--json')).stdout) as Array<{ source: string; accepted: boolean }>;
    assert.ok(history.some((h) => h.accepted && h.source === `apollo://${app}@127.0.0.1:${server.port}/default/application`), JSON.stringify(history));
  });

  test('a value failing the schema is rejected naming the namespace and key path; the old one keeps serving on both masters', async () => {
    const live = await Promise.all(masters.map((g) => serves(g, { pool: 9 })));
    const from = masters.map((g) => g.logs.length);
    server.publish(app, 'datasources.json', '{"db": {"pool": 0}}');
    for (const [i, g] of masters.entries()) {
      const record = await g.waitForLog((l) => l.msg === REJECTED, 15_000, from[i]);
      assert.equal(record.code, 'GRAFT_CONFIG_INVALID');
      assert.equal(record.source, `apollo://${app}@127.0.0.1:${server.port}/default/datasources.json`);
      assert.match(String(record.error), new RegExp(`config from ${escape(String(record.source))} fails the schema: db\\.pool: `));
      const s = await serves(g, { greeting: 'published', pool: 9 });
      assert.equal(s.master.config!.version, live[i]!.master.config!.version);
    }
    // A json namespace that does not parse: GRAFT_CONFIG_PARSE naming it.
    const from2 = masters[0]!.logs.length;
    server.publish(app, 'datasources.json', '{"db": {"pool": ');
    const parse = await masters[0]!.waitForLog((l) => l.msg === REJECTED, 15_000, from2);
    assert.equal(parse.code, 'GRAFT_CONFIG_PARSE');
    assert.match(String(parse.error), /datasources\.json/);
    server.publish(app, 'datasources.json', '{"db": {"pool": 12}}');
    for (const g of masters) await serves(g, { greeting: 'published', pool: 12 });
  });
});

describe('config from Apollo: outages and the cache file', { timeout: 180_000 }, () => {
  test('the server stopped and restarted in the middle of a series of publishes: no change is lost', async () => {
    const server = await startApollo();
    const app = unique('restart');
    server.publish(app, 'application', { greeting: 'v0' });
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', server.url(app, 'application', { query: NO_RECONCILE })], env: FAST });
    try {
      await g.waitRunning();
      for (let i = 1; i <= 3; i++) server.publish(app, 'application', { greeting: `v${i}` });
      await serves(g, { greeting: 'v3' });
      await server.stop();
      await waitFor(async () => stores(await g.status()).every((x) => !x.connected), 15_000, 'the master to see the server gone');
      // Published meanwhile (the portal writes to the database; the config service is down).
      for (let i = 4; i <= 6; i++) server.publish(app, 'application', { greeting: `v${i}` });
      const from = g.logs.length;
      await server.start();
      await g.waitForLog((l) => l.msg === 'config store connected', 20_000, from);
      // The reconnect's read brings what was published meanwhile, the last of it on every worker…
      await serves(g, { greeting: 'v6' });
      // …and the long poll goes on from there.
      server.publish(app, 'application', { greeting: 'v7' });
      const s = await serves(g, { greeting: 'v7' });
      assert.ok(stores(s).every((x) => x.connected && x.attempts === 0), JSON.stringify(stores(s)));
      const applied = g.logs.filter((l) => l.msg === 'config applied').map((l) => l.changed);
      assert.ok(applied.length >= 2, JSON.stringify(applied));
      assert.ok(g.logs.some((l) => l.msg === 'config store disconnected; reconnecting' && l.code === 'GRAFT_STORE_UNREACHABLE'));
    } finally {
      await g.stop();
      await server.stop();
    }
  });

  test('a master starts from its cache file while the server is down, and follows the server once it is back', async () => {
    const server = await startApollo();
    const app = unique('cache');
    server.publish(app, 'application', { greeting: 'cached', 'db.pool': '4' });
    const cache = tempDir();
    const url = server.url(app, 'application');
    const first = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', url, '--config-cache', cache], env: FAST });
    await first.waitRunning();
    await serves(first, { greeting: 'cached', pool: 4 });
    await first.stop();
    assert.equal(readdirSync(cache).filter((f) => f.endsWith('.json')).length, 1, 'one cache file');
    await server.stop();
    const g = await startGraft(fixture('config-app.ts'), { workers: 2, args: ['--config', url, '--config-cache', cache], env: FAST });
    try {
      const warning = await g.waitForLog((l) => l.msg === 'config store unreachable; starting from its cached snapshot');
      assert.equal(warning.source, `apollo://${app}@127.0.0.1:${server.port}/default/application`);
      assert.match(String(warning.revision), /^application=\S+#-?\d+$/);
      await g.waitRunning();
      let s = await serves(g, { greeting: 'cached', pool: 4 });
      assert.deepEqual(stores(s).map((x) => [x.connected, x.fromCache]), [[false, true]]);
      server.publish(app, 'application', { greeting: 'live', 'db.pool': '4' });
      await server.start();
      s = await serves(g, { greeting: 'live', pool: 4 });
      assert.deepEqual(stores(s).map((x) => [x.connected, x.fromCache]), [[true, false]]);
    } finally {
      await g.stop();
      await server.stop();
    }
  });
});

describe('config from Apollo: access keys', { timeout: 120_000 }, () => {
  test('with a key file every request carries Authorization and Timestamp, signed as Apollo checks them; a wrong or missing key fails the start', async () => {
    const server = await startApollo();
    const app = unique('keyed');
    const secret = randomBytes(16).toString('hex');
    server.publish(app, 'application', { greeting: 'signed' });
    server.requireKey(app, secret);
    const dir = tempDir();
    writeFileSync(join(dir, 'apollo.key'), `${secret}\n`);
    writeFileSync(join(dir, 'wrong.key'), 'not-the-secret\n');
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', server.url(app, 'application', { keyFile: join(dir, 'apollo.key') })], env: FAST });
    try {
      await g.waitRunning();
      const from = server.requests.length;
      server.publish(app, 'application', { greeting: 'signed again' });
      await serves(g, { greeting: 'signed again' });
      const mine = server.requests.filter((r) => (r.path.startsWith('/configs/') ? r.path.split('/')[2] : r.query.get('appId')) === app);
      assert.ok(mine.length >= 3 && server.requests.slice(from).some((r) => r.path === '/notifications/v2'));
      for (const r of mine) {
        const timestamp = String(r.headers.timestamp);
        assert.match(timestamp, /^\d{13}$/);
        assert.equal(r.headers.authorization, `Apollo ${app}:${createHmac('sha1', secret).update(`${timestamp}\n${r.url}`).digest('base64')}`);
      }
      const wrong = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', server.url(app, 'application', { keyFile: join(dir, 'wrong.key') })], env: FAST });
      assert.match(await failedStart(wrong), new RegExp(`^graft: GRAFT_STORE_AUTH: apollo://${app}@127\\.0\\.0\\.1:${server.port}/default/application: the config service refused the request \\(HTTP 401\\); the secret in .*wrong\\.key is not`));
      const none = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', server.url(app, 'application')], env: FAST });
      assert.match(await failedStart(none), new RegExp(`^graft: GRAFT_STORE_AUTH: .*HTTP 401\\); app ${app} has an access key`));
    } finally {
      await g.stop();
      await server.stop();
    }
  });
});

describe('config from Apollo: bad input at start is one GRAFT_ line', { timeout: 120_000 }, () => {
  let server: ApolloServer;
  before(async () => {
    server = await startApollo();
  });
  after(() => server?.stop());

  test('an unknown app, and an unknown namespace of a known app', async () => {
    const app = unique('known');
    server.publish(app, 'application', { greeting: 'x' });
    const unknownApp = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', server.url('no-such-app', 'application')], env: FAST });
    assert.match(await failedStart(unknownApp), new RegExp(`^graft: GRAFT_STORE_NOT_FOUND: apollo://no-such-app@127\\.0\\.0\\.1:${server.port}/default/application: the config service has no release of namespace application for app no-such-app in cluster default \\(HTTP 404\\)`));
    const unknownNamespace = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', server.url(app, 'application,nosuch.json')], env: FAST });
    assert.match(await failedStart(unknownNamespace), new RegExp(`^graft: GRAFT_STORE_NOT_FOUND: .*no release of namespace nosuch\\.json for app ${app}`));
  });

  test('a server that cannot be reached, with no cache file', async () => {
    const port = await freePort();
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', `apollo://app@127.0.0.1:${port}/default/application`, '--config-cache', tempDir()], env: FAST });
    assert.match(await failedStart(g), new RegExp(`^graft: GRAFT_STORE_UNREACHABLE: apollo://app@127\\.0\\.0\\.1:${port}/default/application could not be reached within 1\\.5 s \\(.*ECONNREFUSED.*\\) and no snapshot of it is cached`));
  });

  test('a URL graft cannot parse', async () => {
    const g = await startGraft(fixture('config-app.ts'), { workers: 1, args: ['--config', 'apollo://127.0.0.1:8080/default/application'] });
    assert.match(await failedStart(g), /^graft: GRAFT_STORE_URL: --config apollo:\/\/127\.0\.0\.1:8080\/default\/application: name the app id as the URL's user: apollo\[s\]:\/\/appId\[:keyFile\]@host:port\/cluster\/namespace/);
  });
});
