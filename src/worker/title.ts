import { WorkerEnv } from '../core/ipc.js';

/** What `ps` shows for a worker: `graft worker <service> <what>` (its generation and place, or `warm`). */
export function setWorkerTitle(what: string): void {
  const service = process.env[WorkerEnv.service];
  process.title = `graft worker ${service ? `${service} ` : ''}${what}`;
}
