import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraftError } from '../core/errors.js';
import { parseAddress, redact, type Address } from './address.js';
import { APOLLO_FORM, parseApolloTarget, type ApolloTarget } from './apollo-url.js';

/** What `--config` names: a file, or a config store. */
export type ConfigArg = { kind: 'file'; path: string } | { kind: 'store'; address: StoreAddress };

export type StoreScheme = 'nats' | 'etcd' | 'redis' | 'apollo' | 'apollos';

export interface StoreAddress extends Address<StoreScheme> {
  /**
   * The source's name in logs, status and history, and what its cache file is
   * named after: `scheme://host:port/path` with no credentials, so a new
   * password is still the same source.
   */
  name: string;
  /** nats: the bucket. */
  bucket: string;
  /** nats: a dotted key prefix ('' for the whole bucket); etcd: the key prefix, no trailing `/`; redis: the key; apollo: `cluster/namespaces`. */
  path: string;
  /** apollo, apollos: the app, cluster and namespaces. */
  apollo?: ApolloTarget;
}

export const STORE_FORMS = `nats://[user:pass@]host:port/bucket[/prefix], etcd://[user:pass@]host:port/prefix, redis://[user:pass@]host:port/key, ${APOLLO_FORM}`;

const BUCKET = /^[-\w]+$/;
const NATS_KEY = /^[-/_=.a-zA-Z0-9]+$/;

/** A `--config` value: a URL with a scheme graft knows, `file://…`, or a file path (relative to cwd). */
export function parseConfigArg(value: string, cwd: string): ConfigArg {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'file', path: resolve(cwd, value) };
  if (scheme === 'file') return { kind: 'file', path: fileURLToPath(value) };
  return { kind: 'store', address: parseStoreUrl(value, cwd) };
}

/** A store `--config` URL (an Apollo secret file named relative to cwd); anything else is GRAFT_STORE_URL. */
export function parseStoreUrl(value: string, cwd = process.cwd()): StoreAddress {
  const bad = (why: string) => new GraftError('GRAFT_STORE_URL', `--config ${redact(value)}: ${why}; graft knows ${STORE_FORMS} and file paths`);
  const address = parseAddress(value, ['nats', 'etcd', 'redis', 'apollo', 'apollos'], (fault) => bad(fault.why));
  const { scheme, segments, params } = address;
  const name = `${address.origin}${address.pathname}`;
  switch (scheme) {
    case 'nats': {
      const [bucket, ...rest] = segments;
      if (!bucket) throw bad('name the KV bucket: nats://host:port/bucket[/prefix]');
      if (!BUCKET.test(bucket)) throw bad(`bucket ${JSON.stringify(bucket)} may only hold letters, digits, - and _`);
      const prefix = rest.join('.');
      if (prefix && !NATS_KEY.test(prefix)) throw bad(`prefix ${JSON.stringify(prefix)} is not a valid NATS KV key`);
      const reconcile = params.get('reconcile');
      if (reconcile !== null && !(Number(reconcile) > 0)) throw bad(`?reconcile=${reconcile} is not a positive number of seconds`);
      const unknown = [...params.keys()].find((k) => k !== 'reconcile');
      if (unknown) throw bad(`?${unknown}= is not a NATS option graft knows (reconcile)`);
      return { ...address, name, bucket, path: prefix };
    }
    case 'etcd':
      if (segments.length === 0) throw bad('name the key prefix: etcd://host:port/prefix');
      return { ...address, name, bucket: '', path: `/${segments.join('/')}` };
    case 'redis': {
      if (segments.length !== 1) throw bad('name one key: redis://host:port/key (the database as ?db=N)');
      const db = params.get('db');
      if (db !== null && !/^\d+$/.test(db)) throw bad(`?db=${db} is not a database number`);
      const reconcile = params.get('reconcile');
      if (reconcile !== null && !(Number(reconcile) > 0)) throw bad(`?reconcile=${reconcile} is not a positive number of seconds`);
      const unknown = [...params.keys()].find((k) => !['db', 'reconcile', 'channel'].includes(k));
      if (unknown) throw bad(`?${unknown}= is not a Redis option graft knows (db, channel, reconcile)`);
      // Another database is another source: its own name, so its own cache file.
      return { ...address, name: db !== null && db !== '0' ? `${name}?db=${db}` : name, bucket: '', path: segments[0]! };
    }
    case 'apollo':
    case 'apollos': {
      const apollo = parseApolloTarget(address as Address<'apollo' | 'apollos'>, cwd);
      if (typeof apollo === 'string') throw bad(apollo);
      // The app is part of what is read (another app is another source and cache file); the secret file is not.
      const path = `${apollo.cluster}/${apollo.namespaces.map((n) => n.name).join(',')}`;
      return { ...address, name: `${scheme}://${apollo.appId}@${address.server}/${path}`, bucket: '', path, apollo };
    }
  }
}
