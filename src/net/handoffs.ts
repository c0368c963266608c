import type { ChildProcess } from 'node:child_process';

/** A connection node:cluster sent a worker and the worker has not yet said it took. */
interface Handoff {
  client: unknown;
}

interface ClusterMessage {
  cmd?: unknown;
  act?: unknown;
  seq?: unknown;
  ack?: unknown;
}

/**
 * node:cluster's round-robin keeps each connection it hands a worker open in
 * the master until the worker answers that it took it (or that it is shutting
 * down, and the connection goes to another). A worker that dies before it
 * answers (kill -9, a crash while its message is in the channel) never does,
 * and the connection is left open in the master for good: its client hangs
 * without an answer or a reset. This watches one worker's handoffs and, once
 * its channel has closed (every answer it sent has been read), gives each
 * connection it never took to `giveBack`.
 */
export function watchHandoffs(child: ChildProcess, giveBack: (client: unknown) => void): void {
  const open = new Map<number, Handoff>();
  const send = child.send.bind(child) as (...args: unknown[]) => boolean;
  // node:cluster sends through the child's send(): { cmd: 'NODE_CLUSTER', act: 'newconn', seq } with the connection.
  child.send = ((...args: unknown[]) => {
    const [message, client] = args as [ClusterMessage, unknown];
    if (client && message?.cmd === 'NODE_CLUSTER' && message.act === 'newconn' && typeof message.seq === 'number') open.set(message.seq, { client });
    return send(...args);
  }) as ChildProcess['send'];
  child.on('internalMessage', (message: ClusterMessage) => {
    if (message?.cmd === 'NODE_CLUSTER' && typeof message.ack === 'number') open.delete(message.ack);
  });
  // Once every answer the worker sent has been read: at the channel's end. A connection sent and not
  // yet taken holds back the 'disconnect' event for good (child_process waits for the handle's
  // acknowledgement first), so 'close' (the process gone and its channel and stdio read to the end)
  // stands in for it. Both come after node:cluster took the worker out of its round-robin.
  let done = false;
  const settle = () => {
    if (done) return;
    done = true;
    for (const { client } of open.values()) giveBack(client);
    open.clear();
  };
  child.once('disconnect', settle);
  child.once('close', settle);
}
