/**
 * Signals only enqueue an event; the master's loop acts on it (Gunicorn's
 * arbiter does the same), so a handler never runs in the middle of a reload.
 */
export type MasterEvent = 'reload' | 'stop' | 'fast-stop' | 'scale-up' | 'scale-down' | 'upgrade';

const SIGNAL_EVENTS: Array<[NodeJS.Signals, MasterEvent]> = [
  ['SIGHUP', 'reload'],
  ['SIGTERM', 'stop'],
  ['SIGINT', 'stop'],
  ['SIGQUIT', 'fast-stop'],
  ['SIGTTIN', 'scale-up'],
  ['SIGTTOU', 'scale-down'],
  ['SIGUSR2', 'upgrade'],
];

export function installSignals(enqueue: (event: MasterEvent, signal: NodeJS.Signals) => void): () => void {
  const handlers = SIGNAL_EVENTS.map(([signal, event]) => {
    const handler = () => enqueue(event, signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}
