import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Fields, Level, Logger } from '../../src/core/log.js';
import { apolloAuthHeaders, apolloSignature } from '../../src/config/sources/apollo-sign.js';
import { ApolloSource } from '../../src/config/sources/apollo-source.js';
import { parseConfigArg } from '../../src/net/source-url.js';
import { GraftError } from '../../src/core/errors.js';
import { startApollo, type ApolloServer } from '../../bench/lib/apollo-server.js';

const store = (value: string, cwd = '/srv/app') => {
  const arg = parseConfigArg(value, cwd);
  assert.equal(arg.kind, 'store');
  return arg.kind === 'store' ? arg.address : undefined!;
};

describe('Apollo access keys', () => {
  test("Apollo's own test vector", () => {
    assert.equal(apolloSignature('1576478257344', '/configs/100004458/default/application?ip=10.0.0.1', 'df23df3f59884980844ff3dada30fa97'), 'EoKyziXvKqzHgwx+ijDJwgVTDgE=');
  });

  test('the two headers sign the path and query as sent, %-escapes included', () => {
    const url = new URL('http://config:8080/notifications/v2?appId=a&cluster=default&notifications=%5B%7B%7D%5D');
    const headers = apolloAuthHeaders('a', 's3', url, 1700000000000);
    assert.equal(headers.Timestamp, '1700000000000');
    const expected = createHmac('sha1', 's3').update('1700000000000\n/notifications/v2?appId=a&cluster=default&notifications=%5B%7B%7D%5D').digest('base64');
    assert.equal(headers.Authorization, `Apollo a:${expected}`);
  });
});

describe('apollo:// URLs', () => {
  test('app id as the user, cluster and namespaces as the path; formats by suffix; the name has the app but no key file', () => {
    const a = store('apollo://100004458:keys%2Fapollo.key@10.0.0.5:8080/default/application.properties,datasources.json,FX.apollo,web.yml?reconcile=30');
    assert.equal(a.name, 'apollo://100004458@10.0.0.5:8080/default/application,datasources.json,FX.apollo,web.yml');
    assert.equal(a.display, 'apollo://100004458:***@10.0.0.5:8080/default/application.properties,datasources.json,FX.apollo,web.yml?reconcile=30');
    assert.deepEqual(a.apollo, {
      appId: '100004458',
      cluster: 'default',
      namespaces: [
        { name: 'application', format: 'properties' },
        { name: 'datasources.json', format: 'json' },
        { name: 'FX.apollo', format: 'properties' },
        { name: 'web.yml', format: 'yaml' },
      ],
      secretFile: '/srv/app/keys/apollo.key',
      base: 'http://10.0.0.5:8080',
    });
    const s = store('apollos://app@config.example.com/prod/application');
    assert.deepEqual([s.port, s.apollo?.base, s.apollo?.secretFile, s.name], [443, 'https://config.example.com:443', undefined, 'apollos://app@config.example.com:443/prod/application']);
    assert.equal(store('apollo://app@h/default/application').port, 8080);
  });

  test('what graft cannot read is GRAFT_STORE_URL naming the fault and the forms', () => {
    for (const [value, why] of [
      ['apollo://127.0.0.1:8080/default/application', /name the app id as the URL's user/],
      ['apollo://app@127.0.0.1:8080/application', /name the cluster and the namespaces/],
      ['apollo://app@127.0.0.1:8080/default/a/b', /name the cluster and the namespaces/],
      ['apollo://app@127.0.0.1:8080/default/rules.xml', /graft reads properties, json and yaml namespaces, not xml/],
      ['apollo://app@127.0.0.1:8080/default/a,,b', /namespace ""/],
      ['apollo://app@127.0.0.1:8080/default/a,a.properties', /namespace a is named twice/],
      ['apollo://app@127.0.0.1:8080/default/a?reconcile=0', /\?reconcile=0 is not a positive number/],
      ['apollo://app@127.0.0.1:8080/default/a?label=x', /\?label= is not an Apollo option graft knows/],
    ] as const) {
      assert.throws(
        () => parseConfigArg(value, '/'),
        (err: unknown) => err instanceof GraftError && err.code === 'GRAFT_STORE_URL' && why.test(err.message) && err.message.includes('apollo[s]://appId[:keyFile]@host:port/cluster/namespace'),
        value,
      );
    }
  });
});

interface Line {
  level: Level;
  msg: string;
  fields: Fields;
}

function capture(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const line = (level: Level) => (msg: string, fields: Fields = {}) => void lines.push({ level, msg, fields });
  const log: Logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error'), child: () => log };
  return { log, lines };
}

/** Resolves when `check` holds, checked after each event of the source and at most every 50 ms. */
async function until<T>(check: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the Apollo source against apollo-mock-server: the long poll, its gaps and its drops', { timeout: 60_000 }, () => {
  const dirs: string[] = [];
  const sources: ApolloSource[] = [];
  let server: ApolloServer;
  after(async () => {
    await Promise.all(sources.map((s) => s.close()));
    await server?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A source for `namespaces` of `appId`, loaded and watched: `layer()` is what it holds now, `changes` who changed it. */
  async function follow(appId: string, namespaces: string, query?: string) {
    const dir = mkdtempSync(join(tmpdir(), 'graft-apollo-unit-'));
    dirs.push(dir);
    const { log, lines } = capture();
    const source = new ApolloSource(store(server.url(appId, namespaces, query ? { query } : {})), { log, cacheDir: dir, startTimeoutMs: 3000, retryMaxMs: 300 });
    sources.push(source);
    const changes: string[] = [];
    let layer = await source.load();
    source.watch((by) => {
      changes.push(by);
      void source.load().then((l) => (layer = l));
    });
    return { source, lines, changes, layer: () => layer };
  }

  test('properties keys become key paths, a json namespace a document, later namespaces win; a publish arrives through the long poll', async () => {
    server = await startApollo(5000);
    server.publish('unit-a', 'application', { greeting: 'hi', 'db.pool': '3', 'db.host': 'h1' });
    server.publish('unit-a', 'datasources.json', '{"db": {"pool": 7}}');
    const s = await follow('unit-a', 'application,datasources.json');
    assert.deepEqual(s.layer(), { greeting: 'hi', db: { pool: 7, host: 'h1' } });
    server.publish('unit-a', 'application', { greeting: 'hey', 'db.pool': '3', 'db.host': 'h1' });
    await until(() => (s.layer().greeting === 'hey' ? true : undefined), 'the publish');
    assert.equal(s.changes.at(-1), `apollo://unit-a@127.0.0.1:${server.port}/default/application`, 'the change names its namespace');
    assert.match(s.source.status().revision!, /^application=\S+#\d+ datasources\.json=\S+#\d+$/);
  });

  test('a notification id that goes backwards makes the source read everything again', async () => {
    server.publish('unit-b', 'application', { greeting: 'one' });
    const s = await follow('unit-b', 'application');
    await until(() => (/#1$/.test(s.source.status().revision ?? '') ? true : undefined), 'the first poll to bring the id');
    server.publish('unit-b', 'application', { greeting: 'two' });
    await until(() => (s.layer().greeting === 'two' ? true : undefined), 'the publish');
    server.setNotificationId('unit-b', 'application', 1);
    const gap = await until(() => s.lines.find((l) => l.msg === 'config store re-read after a gap'), 'the gap');
    assert.match(String(gap.fields.reason), /notification id of namespace application went back from 2 to 1/);
    await until(() => (/#1$/.test(s.source.status().revision ?? '') ? true : undefined), 'the ids started over');
    assert.equal(s.layer().greeting, 'two');
  });

  test('a releaseKey that changed without a notification is found by the reconcile read', async () => {
    server.publish('unit-c', 'application', { greeting: 'one' });
    const s = await follow('unit-c', 'application', 'reconcile=1');
    await until(() => (/#1$/.test(s.source.status().revision ?? '') ? true : undefined), 'the first poll to bring the id');
    server.releaseSilently('unit-c', 'application', { greeting: 'silent' });
    await until(() => (s.layer().greeting === 'silent' ? true : undefined), 'the reconcile read');
    const gap = s.lines.find((l) => l.msg === 'config store re-read after a gap');
    assert.match(String(gap?.fields.reason), /releaseKey of namespace application changed without a notification/);
  });

  test('a long poll cut after holding is reissued: no disconnection, and the next publish arrives', async () => {
    server.publish('unit-d', 'application', { greeting: 'one' });
    const s = await follow('unit-d', 'application');
    await until(() => (server.heldMs('unit-d') > 1500 ? true : undefined), 'a poll held 1.5 s');
    server.cutPolls('unit-d');
    await until(() => s.lines.find((l) => l.msg === 'apollo long poll dropped; reissued'), 'the reissue');
    server.publish('unit-d', 'application', { greeting: 'after the cut' });
    await until(() => (s.layer().greeting === 'after the cut' ? true : undefined), 'the publish');
    assert.deepEqual(s.lines.filter((l) => l.level === 'warn').map((l) => l.msg), []);
    assert.deepEqual([s.source.status().connected, s.source.status().attempts], [true, 0]);
  });
});
