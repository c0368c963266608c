import { deferred } from '../core/deferred.js';

/**
 * An app's own word that it is ready: `process.send('ready')`, as PM2's
 * `wait_ready` apps already write. node:cluster would deliver the string to
 * the master as an app message; the worker sees it on its way out instead.
 */
const said = deferred<void>();
export const appSaidReady: Promise<void> = said.promise;

export function watchAppReady(): void {
  const send = process.send;
  if (!send) return;
  process.send = function (this: NodeJS.Process, message: unknown, ...rest: unknown[]): boolean {
    if (message === 'ready') said.resolve();
    return (send as (...args: unknown[]) => boolean).call(this, message, ...rest);
  } as typeof process.send;
}
