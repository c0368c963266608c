import type { Command } from '../control/commands.js';

/**
 * Signals only submit a command; the master's arbiter carries it out (Gunicorn's
 * does the same), so a handler never runs in the middle of a reload.
 */
const SIGNAL_COMMANDS: Array<[NodeJS.Signals, Command]> = [
  ['SIGHUP', { kind: 'reload', reason: 'signal' }],
  ['SIGTERM', { kind: 'stop', fast: false }],
  ['SIGINT', { kind: 'stop', fast: false }],
  ['SIGQUIT', { kind: 'stop', fast: true }],
  ['SIGTTIN', { kind: 'scale', delta: 1 }],
  ['SIGTTOU', { kind: 'scale', delta: -1 }],
  ['SIGUSR2', { kind: 'upgrade' }],
];

export function installSignals(submit: (command: Command, signal: NodeJS.Signals) => void): () => void {
  const handlers = SIGNAL_COMMANDS.map(([signal, command]) => {
    const handler = () => submit(command, signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}
