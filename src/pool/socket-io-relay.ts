import cluster, { type Worker } from 'node:cluster';

/** What `@socket.io/cluster-adapter` marks its messages with. */
const SOURCE = '_sio_adapter';
/** Its answers to one worker's request (fetchSockets(), serverSideEmit() with an ack): only the asker gets them. */
const RESPONSES = new Set([8, 10]);

interface AdapterMessage {
  source: string;
  type: number;
  uid?: string;
  requesterUid?: string;
}

/**
 * The primary's part of Socket.IO's cluster adapter, built into the master
 * (the app cannot run code there): a worker that set `io.adapter(createAdapter())`
 * sends its broadcasts, room changes and requests to the primary, which passes
 * them to every other worker (of every generation, so a broadcast during a
 * drain reaches the clients still on the old one) and an answer to the worker
 * that asked. Messages without the adapter's mark are not touched.
 */
export function relaySocketIoAdapter(): void {
  const asked = new WeakMap<Worker, Set<string>>();
  cluster.on('message', (from: Worker, message: unknown) => {
    if (!isAdapterMessage(message)) return;
    if (message.uid) {
      const uids = asked.get(from) ?? new Set<string>();
      uids.add(message.uid);
      asked.set(from, uids);
    }
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w !== from && w.isConnected());
    const to = RESPONSES.has(message.type) ? workers.filter((w) => message.requesterUid !== undefined && asked.get(w)?.has(message.requesterUid)).slice(0, 1) : workers;
    for (const w of to) w.send(message, undefined, () => {});
  });
}

function isAdapterMessage(message: unknown): message is AdapterMessage {
  return typeof message === 'object' && message !== null && (message as { source?: unknown }).source === SOURCE && typeof (message as { type?: unknown }).type === 'number';
}
