import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, startGraft, tempDir, type GraftProcess } from '../helpers/graft.js';

/** A raw keep-alive HTTP/1.1 client that records exactly what the server does to the connection. */
class RawClient {
  readonly socket: net.Socket;
  data = '';
  ended = false;
  error: NodeJS.ErrnoException | undefined;
  readonly closed: Promise<void>;
  private onData: (() => void) | undefined;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.data += chunk;
      this.onData?.();
    });
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', (err) => (this.error = err));
    this.closed = new Promise((r) => this.socket.once('close', () => r()));
  }

  request(path: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  }

  /** Resolves once n complete responses have arrived. */
  responses(n: number): Promise<string[]> {
    return new Promise((resolve) => {
      const check = () => {
        const parts = this.data.split('HTTP/1.1 ').slice(1);
        const complete = parts.filter((p) => /\r\n\r\n[^\n]*\n/.test(p));
        if (complete.length >= n) {
          this.onData = undefined;
          resolve(complete);
        }
      };
      this.onData = check;
      check();
    });
  }
}

describe('a draining worker closes keep-alive connections without resetting them', () => {
  let g: GraftProcess;
  before(async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'ok');
    g = await startGraft(fixture('mode-app.ts'), { workers: 1, env: { MODE_FILE: mode } });
    await g.waitRunning();
  });
  after(() => g.stop());

  test('an idle keep-alive connection gets a clean FIN after the reload', async () => {
    const client = new RawClient(g.port);
    client.request('/');
    const [first] = await client.responses(1);
    assert.match(first!, /Connection: keep-alive/i);
    const r = await g.cli('reload');
    assert.equal(r.code, 0, r.stderr);
    await client.closed;
    assert.equal(client.ended, true, 'the server ended the connection');
    assert.equal(client.error, undefined, `the client saw ${client.error?.code}`);
  });

  test('a request sent right after a Connection: close response is not answered with a reset', async () => {
    const client = new RawClient(g.port);
    client.request('/held/racing');
    await g.held('racing');
    // The reload answers once the old generation stopped accepting: from then on its responses close their connection.
    const reload = await g.cli('reload');
    assert.equal(reload.code, 0, reload.stderr);
    g.release('racing');
    const [response] = await client.responses(1);
    assert.match(response!, /Connection: close/i);
    // Like a load generator that ignores Connection: close, send the next request at once.
    client.request('/');
    await client.closed;
    assert.equal(client.error, undefined, `the client saw ${client.error?.code}`);
    assert.equal(client.ended, true);
  });

  test('a request in flight when the reload starts finishes on the old generation', async () => {
    const status = await g.status();
    const client = new RawClient(g.port);
    client.request('/held/in-flight');
    await g.held('in-flight');
    const r = await g.cli('reload');
    assert.equal(r.code, 0);
    g.release('in-flight');
    const [response] = await client.responses(1);
    assert.match(response!, new RegExp(`\\r\\n\\r\\n${status.master.generation} `));
    await client.closed;
    assert.equal(client.error, undefined);
  });
});
