/**
 * Addresses of the servers graft connects to (`--bus`, `--fleet`, a store
 * `--config`), parsed one way: the scheme, one host and port, credentials, the
 * path and the query. Each flag's parser (bus-url, fleet-url, source-url) says
 * which schemes it takes, what the path means and how a bad value is reported.
 * An IPv6 host is written as URLs write it, in brackets: `[::1]`, `[::1]:4222`.
 */

export type Scheme = 'nats' | 'amqp' | 'etcd' | 'redis' | 'apollo' | 'apollos';

/** The port a server listens on when the address names none. */
export const DEFAULT_PORTS: Readonly<Record<Scheme, number>> = { nats: 4222, amqp: 5672, etcd: 2379, redis: 6379, apollo: 8080, apollos: 443 };

export interface Address<S extends Scheme = Scheme> {
  scheme: S;
  /** The host, an IPv6 address in brackets (`[::1]`). */
  host: string;
  port: number;
  /** `host:port` (`[::1]:4222`): what the NATS client takes. */
  server: string;
  /** `scheme://host:port`: where, without credentials or path. */
  origin: string;
  user: string | undefined;
  password: string | undefined;
  /** The path as written (still %-escaped), without trailing `/` ('' for none). */
  pathname: string;
  /** The path's segments, decoded, empty ones dropped. */
  segments: string[];
  params: URLSearchParams;
  /** As given, with credentials: what a client that takes a URL connects with. */
  url: string;
  /** The address with its password masked, for logs, messages and `graft status`. */
  display: string;
}

/** Why a value is not an address of one of the schemes asked for; `scheme` is set when the scheme is what is wrong. */
export interface AddressFault {
  why: string;
  scheme?: string;
}

/**
 * `scheme://[user[:password]@]host[:port][/path][?query]` with a scheme from
 * `schemes`; anything else is thrown as `fail(fault)` (each flag has its own
 * error code and names its own forms).
 */
export function parseAddress<S extends Scheme>(text: string, schemes: readonly S[], fail: (fault: AddressFault) => Error): Address<S> {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw fail({ why: 'not a valid URL' });
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (!(schemes as readonly string[]).includes(scheme)) throw fail({ why: `unknown scheme ${scheme}://`, scheme });
  if (!url.hostname) throw fail({ why: 'no host' });
  let user: string | undefined;
  let password: string | undefined;
  let segments: string[];
  try {
    user = url.username ? decodeURIComponent(url.username) : undefined;
    password = url.password ? decodeURIComponent(url.password) : undefined;
    segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    throw fail({ why: 'a malformed %-escape' });
  }
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[scheme as S];
  const server = `${url.hostname}:${port}`;
  return {
    scheme: scheme as S,
    host: url.hostname,
    port,
    server,
    origin: `${scheme}://${server}`,
    user,
    password,
    pathname: url.pathname.replace(/\/+$/, ''),
    segments,
    params: url.searchParams,
    url: text.trim(),
    display: redact(url.href).replace(/\/$/, ''),
  };
}

/**
 * Any text with the password of every URL in it masked (`nats://u:***@host`):
 * for a value that did not parse as well as one that did. The user stays, so a
 * message still says whose credentials were refused.
 */
export function redact(text: string): string {
  // The user part runs to the last `@` before the host's end (`/`, `?`, `#`), as a URL parser reads it.
  return text.replace(/([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/?#\s]*)@/g, (_match, head: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${head}${colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`}@`;
  });
}

/** The host without IPv6 brackets, for socket APIs (`net.connect`, the Redis client) that take a bare address. */
export function bareHost(host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1');
}
