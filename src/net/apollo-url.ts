import { isAbsolute, resolve } from 'node:path';
import type { Address } from './address.js';

/** One Apollo namespace of a `--config apollo://…` URL, and how its content is read. */
export interface ApolloNamespace {
  /** As Apollo names it: a properties namespace without `.properties`, any other with its suffix (`datasources.json`). */
  name: string;
  /** properties: each key is a dotted key path; json and yaml: one whole document (Apollo's `content`). */
  format: 'properties' | 'json' | 'yaml';
}

/** What of an Apollo config service a `--config apollo://…` URL reads. */
export interface ApolloTarget {
  appId: string;
  cluster: string;
  /** In the order given: later namespaces win, as later `--config` values do. */
  namespaces: ApolloNamespace[];
  /** The file holding the app's access key secret (absolute), when the app has one. */
  secretFile: string | undefined;
  /** `http://host:port` or, for `apollos://`, `https://host:port`. */
  base: string;
}

export const APOLLO_FORM = 'apollo[s]://appId[:keyFile]@host:port/cluster/namespace[,namespace…]';

/** Apollo's own rule for app ids, clusters and namespaces. */
const NAME = /^[0-9a-zA-Z_.-]+$/;
const PARAMS = ['reconcile', 'ip'];

/**
 * The Apollo part of a store URL: the app id is the URL's user, the secret
 * file (if any) its password (resolved against cwd, `%2F` for `/`), the path
 * `cluster/namespace,namespace…`. Returns why it is not one, as text.
 */
export function parseApolloTarget(address: Address<'apollo' | 'apollos'>, cwd: string): ApolloTarget | string {
  const { user: appId, password, segments, params, scheme, server } = address;
  if (!appId) return `name the app id as the URL's user: ${APOLLO_FORM}`;
  if (!NAME.test(appId)) return `app id ${JSON.stringify(appId)} may only hold letters, digits, _, . and -`;
  if (segments.length !== 2) return `name the cluster and the namespaces: ${APOLLO_FORM} (e.g. /default/application)`;
  const [cluster, list] = segments as [string, string];
  if (!NAME.test(cluster)) return `cluster ${JSON.stringify(cluster)} may only hold letters, digits, _, . and -`;
  const namespaces: ApolloNamespace[] = [];
  for (const raw of list.split(',')) {
    const namespace = namespaceOf(raw);
    if (typeof namespace === 'string') return namespace;
    if (namespaces.some((n) => n.name === namespace.name)) return `namespace ${namespace.name} is named twice`;
    namespaces.push(namespace);
  }
  const unknown = [...params.keys()].find((k) => !PARAMS.includes(k));
  if (unknown) return `?${unknown}= is not an Apollo option graft knows (${PARAMS.join(', ')})`;
  const reconcile = params.get('reconcile');
  if (reconcile !== null && !(Number(reconcile) > 0)) return `?reconcile=${reconcile} is not a positive number of seconds`;
  return {
    appId,
    cluster,
    namespaces,
    secretFile: password === undefined ? undefined : isAbsolute(password) ? password : resolve(cwd, password),
    base: `${scheme === 'apollos' ? 'https' : 'http'}://${server}`,
  };
}

/** A namespace as written in the URL; its format by suffix, as Apollo's own clients decide it. */
function namespaceOf(raw: string): ApolloNamespace | string {
  if (!raw || !NAME.test(raw)) return `namespace ${JSON.stringify(raw)} may only hold letters, digits, _, . and -`;
  const suffix = /\.([a-zA-Z]+)$/.exec(raw)?.[1]?.toLowerCase();
  switch (suffix) {
    case 'properties':
      return { name: raw.slice(0, -'.properties'.length), format: 'properties' };
    case 'json':
      return { name: raw, format: 'json' };
    case 'yaml':
    case 'yml':
      return { name: raw, format: 'yaml' };
    case 'xml':
    case 'txt':
      return `namespace ${raw}: graft reads properties, json and yaml namespaces, not ${suffix}`;
    default:
      // Apollo treats any other dotted name (`FX.apollo`) as a properties namespace.
      return { name: raw, format: 'properties' };
  }
}
