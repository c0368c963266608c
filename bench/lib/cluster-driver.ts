/**
 * A service under bare node:cluster (cluster-primary.js), on a free loopback
 * port: the baseline with no supervisor features. Waits for the primary's
 * "cluster ready" line; stopped at cleanup.
 */
import { join } from 'node:path';
import { freePort } from './http.js';
import { root } from './paths.js';
import { Proc } from './proc.js';

const primary = join(root, 'bench/lib/cluster-primary.js');

export class Cluster extends Proc {
  readonly url: string;

  private constructor(
    readonly port: number,
    app: string,
    workers: number,
    env: NodeJS.ProcessEnv,
  ) {
    super([primary], { env: { ...process.env, ...env, APP: join(root, app), PORT: String(port), WORKERS: String(workers) } });
    this.url = `http://127.0.0.1:${port}/`;
  }

  /** `app`: relative to the repository root; `env`: more of the workers' environment. */
  static async start(app: string, workers: number, env: NodeJS.ProcessEnv = {}): Promise<Cluster> {
    const c = new Cluster(await freePort(), app, workers, env);
    if (!(await c.waitFor((l) => l.text.startsWith('cluster ready'), 0, 20_000))) {
      await c.stop();
      throw new Error(`node:cluster did not start:\n${c.tail()}`);
    }
    return c;
  }
}
