import { FileSource } from '../config/sources/file-source.js';
import type { Command } from './commands.js';
import type { HistoryEntry } from '../config/history.js';
import type { ConfigSource } from '../config/sources/source.js';
import type { ConfigPayload } from '../core/ipc.js';
import type { ControlRequest } from './protocol.js';

/** What the control socket may ask of a master. */
export interface Controlled {
  status(): unknown;
  /** The service's releases (`graft releases`). */
  releases(): { list(): unknown };
  /** Changes go to the arbiter; the answer is their outcome. */
  submit(command: Command): Promise<unknown>;
  readonly config: ConfigReads;
}

/** The master's config as the control socket reads it; changes go through `submit`. */
export interface ConfigReads {
  readonly current: ConfigPayload;
  effective(): Promise<unknown>;
  recent(): HistoryEntry[];
  check(file: ConfigSource): Promise<unknown>;
}

/**
 * Turns each control request into what the master does: reads are answered
 * from the master's state at once; every change is a command for the arbiter,
 * answered with its outcome once carried out.
 */
export function controlHandler(master: Controlled): (request: ControlRequest) => Promise<unknown> {
  return async (request) => {
    switch (request.cmd) {
      case 'status':
        return master.status();
      case 'reload':
        return master.submit({ kind: 'reload', reason: 'control' });
      case 'stop':
        await master.submit({ kind: 'stop', fast: request.fast === true });
        return { stopped: true, pid: process.pid };
      case 'scale':
        return master.submit({ kind: 'scale', ...(request.workers !== undefined ? { workers: request.workers } : {}), ...(request.delta !== undefined ? { delta: request.delta } : {}) });
      case 'upgrade':
        return master.submit({ kind: 'upgrade' });
      case 'deploy':
        return master.submit({ kind: 'deploy', source: request.source });
      case 'rollback':
        return master.submit({ kind: 'rollback', ...(request.id ? { id: request.id } : {}), ...(request.withConfig ? { withConfig: true } : {}), ...(request.toDisk ? { toDisk: true } : {}) });
      case 'releases':
        return master.releases().list();
      case 'swap':
        return master.submit({ kind: 'swap', order: { source: 'control', ...(request.module ? { module: request.module } : {}) } });
      case 'config':
        switch (request.action) {
          case 'show':
            return { master: master.config.current, effective: await master.config.effective().catch(() => undefined) };
          case 'history':
            return master.config.recent();
          case 'check':
            return master.config.check(new FileSource(request.file));
          case 'apply': {
            const overrides = request.set?.length || request.unset?.length || request.reset;
            return master.submit({
              kind: 'config',
              source: overrides ? 'apply (overrides)' : 'apply',
              ...(overrides ? { overrides: { set: request.set ?? [], unset: request.unset ?? [], reset: request.reset === true } } : {}),
            });
          }
        }
    }
  };
}
