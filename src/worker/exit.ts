/** How long an exiting worker waits for its stdout and stderr to reach the master (one slowed by its disk reads them late). */
const FLUSH_MS = 10_000;

/**
 * process.exit once what the app printed has left the process. stdout and
 * stderr are pipes to the master, written asynchronously: when the master
 * reads behind (its log file's disk is slow, or the machine is busy), writes
 * wait in this process, and process.exit drops them, the end of what the
 * app printed just before its drain ended with it. A master that is gone
 * fails the writes at once; one that never reads is waited for FLUSH_MS.
 */
export function exitFlushed(code?: number): void {
  const pending = [process.stdout, process.stderr].filter((s) => !s.destroyed && s.writableLength > 0);
  if (pending.length === 0) {
    process.exit(code);
    return;
  }
  const timer = setTimeout(() => process.exit(code), FLUSH_MS);
  let left = pending.length;
  for (const stream of pending) {
    // Called once everything written before it has gone, or with the error that stopped it.
    stream.write('', () => {
      if (--left > 0) return;
      clearTimeout(timer);
      process.exit(code);
    });
  }
}
