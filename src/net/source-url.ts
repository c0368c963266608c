import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraftError } from '../core/errors.js';

/** What `--config` names: a file, or a config store. */
export type ConfigArg = { kind: 'file'; path: string } | { kind: 'store'; address: StoreAddress };

export type StoreScheme = 'nats' | 'etcd' | 'redis';

export interface StoreAddress {
  scheme: StoreScheme;
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  /** The address without credentials: the source's name in logs, status and history. */
  display: string;
  /** nats: the bucket. */
  bucket: string;
  /** nats: a dotted key prefix ('' for the whole bucket); etcd: the key prefix, no trailing `/`; redis: the key. */
  path: string;
  /** Query parameters (`?channel=…&reconcile=…&db=…` for redis). */
  params: URLSearchParams;
}

export const STORE_FORMS = 'nats://[user:pass@]host:port/bucket[/prefix], etcd://[user:pass@]host:port/prefix, redis://[user:pass@]host:port/key';

const DEFAULT_PORTS: Record<StoreScheme, number> = { nats: 4222, etcd: 2379, redis: 6379 };
const BUCKET = /^[-\w]+$/;
const NATS_KEY = /^[-/_=.a-zA-Z0-9]+$/;

/** A `--config` value: a URL with a scheme graft knows, `file://…`, or a file path (relative to cwd). */
export function parseConfigArg(value: string, cwd: string): ConfigArg {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'file', path: resolve(cwd, value) };
  if (scheme === 'file') return { kind: 'file', path: fileURLToPath(value) };
  return { kind: 'store', address: parseStoreUrl(value) };
}

export function parseStoreUrl(value: string): StoreAddress {
  const bad = (why: string) => new GraftError('GRAFT_STORE_URL', `--config ${redact(value)}: ${why}; graft knows ${STORE_FORMS} and file paths`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('not a valid URL');
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme !== 'nats' && scheme !== 'etcd' && scheme !== 'redis') throw bad(`unknown scheme ${scheme}://`);
  if (!url.hostname) throw bad('no host');
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[scheme];
  const segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  const display = `${scheme}://${url.hostname}:${port}${url.pathname.replace(/\/+$/, '')}`;
  const base = { scheme, host: url.hostname.replace(/^\[|\]$/g, ''), port, username, password, display, params: url.searchParams } as const;
  switch (scheme) {
    case 'nats': {
      const [bucket, ...rest] = segments;
      if (!bucket) throw bad('name the KV bucket: nats://host:port/bucket[/prefix]');
      if (!BUCKET.test(bucket)) throw bad(`bucket ${JSON.stringify(bucket)} may only hold letters, digits, - and _`);
      const prefix = rest.join('.');
      if (prefix && !NATS_KEY.test(prefix)) throw bad(`prefix ${JSON.stringify(prefix)} is not a valid NATS KV key`);
      return { ...base, bucket, path: prefix };
    }
    case 'etcd':
      if (segments.length === 0) throw bad('name the key prefix: etcd://host:port/prefix');
      return { ...base, bucket: '', path: `/${segments.join('/')}` };
    case 'redis': {
      if (segments.length !== 1) throw bad('name one key: redis://host:port/key (the database as ?db=N)');
      const db = url.searchParams.get('db');
      if (db !== null && !/^\d+$/.test(db)) throw bad(`?db=${db} is not a database number`);
      const reconcile = url.searchParams.get('reconcile');
      if (reconcile !== null && !(Number(reconcile) > 0)) throw bad(`?reconcile=${reconcile} is not a positive number of seconds`);
      const unknown = [...url.searchParams.keys()].find((k) => !['db', 'reconcile', 'channel'].includes(k));
      if (unknown) throw bad(`?${unknown}= is not a Redis option graft knows (db, channel, reconcile)`);
      // Another database is another source: its own name, so its own cache file.
      return { ...base, ...(db !== null && db !== '0' ? { display: `${display}?db=${db}` } : {}), bucket: '', path: segments[0]! };
    }
  }
}

/** The value with any password replaced, for messages. */
function redact(value: string): string {
  return value.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
}
