import { createHmac } from 'node:crypto';

/**
 * Apollo's access key signature: Base64(HMAC-SHA1(secret, timestamp + "\n" +
 * pathWithQuery)), where pathWithQuery is the request's path and query as sent
 * (still %-escaped). The config service refuses a request of an app with an
 * access key unless it carries this, and a timestamp within a minute of its clock.
 */
export function apolloSignature(timestamp: string, pathWithQuery: string, secret: string): string {
  return createHmac('sha1', secret).update(`${timestamp}\n${pathWithQuery}`).digest('base64');
}

/** The two headers of a signed request to `url`: `Authorization: Apollo {appId}:{signature}` and `Timestamp`. */
export function apolloAuthHeaders(appId: string, secret: string, url: URL, now = Date.now()): Record<string, string> {
  const timestamp = String(now);
  return { Authorization: `Apollo ${appId}:${apolloSignature(timestamp, `${url.pathname}${url.search}`, secret)}`, Timestamp: timestamp };
}
