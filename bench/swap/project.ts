import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../lib/cleanup.js';
import { getFresh } from '../lib/http.js';

/**
 * The service every part measures: a handler module that imports a local
 * ./version.ts, whose content a "code change" rewrites. server.ts serves the
 * same handler as a plain node:http app for the process-level peers (graft
 * without --swap, PM2) and records when each process listens, with its version.
 */
export interface Project {
  dir: string;
  handler: string;
  server: string;
  version: string;
  writeVersion(v: string): void;
}

export function makeProject(prefix: string, initial = 'v0'): Project {
  const dir = tempDir(prefix);
  const version = join(dir, 'version.ts');
  const writeVersion = (v: string) => writeFileSync(version, `export const version: string = ${JSON.stringify(v)};\n`);
  writeVersion(initial);
  const handler = join(dir, 'handler.ts');
  writeFileSync(
    handler,
    `import type { IncomingMessage, ServerResponse } from 'node:http';
import { version } from './version.js';

const headers = { 'content-type': 'text/plain' };

export default function handle(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, headers);
  res.end(version + ' ' + process.pid + '\\n');
}
`,
  );
  const server = join(dir, 'server.ts');
  writeFileSync(
    server,
    `import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import handle from './handler.js';
import { version } from './version.js';

const server = createServer(handle);
server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  // When this process serves, and which version: the end point of a process-level reload.
  if (process.env.BOOTS_FILE) appendFileSync(process.env.BOOTS_FILE, Date.now() + ' ' + process.pid + ' ' + version + '\\n');
  // PM2's graceful start (--wait-ready) and stop (SIGINT), as its docs tell an app to do.
  if (process.env.pm_id !== undefined) {
    process.send?.('ready');
    process.on('SIGINT', () => server.close(() => process.exit(0)));
  }
});
`,
  );
  return { dir, handler, server, version, writeVersion };
}

// --------------------------------------------------------------- the checks

export interface Confirmation {
  /** Responses that carried another version than the expected one (or failed). */
  stale: number;
  /** Distinct worker pids seen answering with the expected version. */
  pids: number;
  requests: number;
  firstStale?: string;
}

/** `requests` fresh-connection GETs; every one must answer `expected <pid>`. */
export async function confirmVersion(url: string, expected: string, requests: number): Promise<Confirmation> {
  let stale = 0;
  let firstStale: string | undefined;
  const pids = new Set<string>();
  for (let i = 0; i < requests; i++) {
    try {
      const r = await getFresh(url);
      const [version, pid] = r.body.trim().split(' ');
      if (r.status === 200 && version === expected && pid) pids.add(pid);
      else {
        stale++;
        firstStale ??= `${r.status} ${JSON.stringify(r.body)}`;
      }
    } catch (err) {
      stale++;
      firstStale ??= String(err);
    }
  }
  return { stale, pids: pids.size, requests, ...(firstStale ? { firstStale } : {}) };
}
