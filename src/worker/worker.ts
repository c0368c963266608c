/**
 * A worker's life, once it knows who it is (main.ts): waits for its config
 * snapshot, loads the app, reports ready, sends heartbeats, answers the
 * master's requests, and drains when its master retires it, or when its
 * master is gone (it crashed: the keeper's new master serves on the same
 * sockets), then exits. Loading this module starts nothing: a warm worker
 * loads it while it waits, and runs it once taken.
 */
import type { Socket } from 'node:net';
import { deferred } from '../core/deferred.js';
import { isGraftMessage, type ConfigPayload, type MasterMessage } from '../core/ipc.js';
import { watchAppReady } from './app-ready.js';
import { boot, failBoot } from './boot.js';
import { abort, abortSwap, answer } from './requests.js';
import { retire, retireOnSignal, retireWhenOrphaned } from './retire.js';
import { exitFlushed } from './exit.js';
import { adoptConnection } from './sticky-connection.js';
import { identify, log, registry, runtime, send } from './runtime.js';

export function runWorker(): void {
  identify();

  process.on('uncaughtException', (err) => {
    if (!runtime.ready) return failBoot(err);
    log.error('uncaught exception; worker exits and the master replaces it', { err });
    // That line, and what the app printed before it, reach the master first.
    exitFlushed(1);
  });

  registry.install((failure) => {
    if (failure.unhandled || !runtime.ready) failBoot(failure.error);
  });

  // The terminal's Ctrl-C and hangup reach the whole process group; the master
  // decides what happens to workers, so they ignore these. TERM sent to a single
  // worker drains it, and the master replaces it.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  process.on('SIGQUIT', () => {});
  process.on('SIGTERM', retireOnSignal);
  retireWhenOrphaned();
  watchAppReady();

  const initialConfig = deferred<ConfigPayload>();

  process.on('message', (message: unknown, handle: unknown) => {
    if (!isGraftMessage<MasterMessage>(message)) return;
    switch (message.graft) {
      case 'drain':
        void retire(message);
        break;
      case 'exit':
        // Flush what is queued (the answers to late connection handoffs, the app's last lines) before exiting.
        send({ graft: 'bye' }, () => exitFlushed());
        break;
      case 'connection':
        adoptConnection(message.key, message.head, handle as Socket | undefined);
        break;
      case 'config-init':
        initialConfig.resolve(message.config);
        break;
      case 'config-abort':
        abort(message.version);
        break;
      case 'swap-abort':
        abortSwap(message.id);
        break;
      case 'warm-start':
        // Taken already (main.ts): a second one is a master's mistake, not a request.
        break;
      default:
        void answer(message);
    }
  });

  send({ graft: 'hello' });
  boot(initialConfig.promise).catch(failBoot);
}
