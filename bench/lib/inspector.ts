/**
 * What another Node process retains: its memory right after a full garbage
 * collection, asked through its inspector. SIGUSR1 opens the inspector (Node's
 * own debugging signal; graft does not use it), HeapProfiler.collectGarbage
 * runs a full collection there, and process.memoryUsage() is read in the
 * process itself. A reading without it lands wherever the heap's sawtooth
 * is, and V8 grows its young generation under a high allocation rate and
 * keeps it: a peak can rise with nothing retained.
 */
import { once } from 'node:events';
import WebSocket from 'ws';
import { sleep, withTimeout } from './wait.js';

const MB = 1024 * 1024;

export interface Retained {
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
}

interface Reply {
  id?: number;
  result?: { result?: { value?: unknown } };
  error?: { message: string };
}

export class Inspected {
  private nextId = 0;
  private readonly pending = new Map<number, (reply: Reply) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const reply = JSON.parse(String(data)) as Reply;
      if (reply.id === undefined) return;
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
  }

  /** Opens `pid`'s inspector on 127.0.0.1:`port` (Node's default, 9229: nothing else may hold it) and checks it is that process's. */
  static async open(pid: number, port = 9229, timeoutMs = 10_000): Promise<Inspected> {
    process.kill(pid, 'SIGUSR1');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
        const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
        await withTimeout(once(ws, 'open'), 5000, 'the inspector to accept').catch((err: unknown) => {
          ws.terminate();
          throw err;
        });
        const inspected = new Inspected(ws);
        const answered = await inspected.evaluate('process.pid');
        if (answered !== pid) {
          inspected.close();
          throw new Error(`the inspector on port ${port} is process ${String(answered)}'s, not ${pid}'s`);
        }
        return inspected;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`process ${pid}'s inspector did not open on 127.0.0.1:${port}: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  }

  /** Two full collections (the second frees what the first's finalizers let go), then the process's memory. */
  async retained(): Promise<Retained> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const m = (await this.evaluate('process.memoryUsage()')) as NodeJS.MemoryUsage;
    return { rssMb: m.rss / MB, heapUsedMb: m.heapUsed / MB, heapTotalMb: m.heapTotal / MB, externalMb: m.external / MB };
  }

  close(): void {
    this.ws.close();
  }

  private async evaluate(expression: string): Promise<unknown> {
    const reply = await this.call('Runtime.evaluate', { expression, returnByValue: true });
    return reply.result?.result?.value;
  }

  private call(method: string, params: object = {}): Promise<Reply> {
    const id = ++this.nextId;
    const answered = new Promise<Reply>((resolve) => this.pending.set(id, resolve));
    this.ws.send(JSON.stringify({ id, method, params }));
    return withTimeout(answered, 60_000, `${method} in the inspected process`).then((reply) => {
      if (reply.error) throw new Error(`${method}: ${reply.error.message}`);
      return reply;
    });
  }
}
