// Bare node:cluster: the baseline supervisor. A primary that forks WORKERS
// (default 2) workers running APP, and nothing else: no reloads, no drain, no
// heartbeats. Prints "cluster ready" once every worker listens; SIGTERM/SIGINT
// stop it. Plain JavaScript, run by bench/lib/cluster-driver.ts.
import cluster from 'node:cluster';

const workers = Number(process.env.WORKERS ?? 2);
if (!process.env.APP) throw new Error('APP must name the app to run');
cluster.setupPrimary({ exec: process.env.APP });

let stopping = false;
let listening = 0;
cluster.on('listening', () => {
  if (++listening === workers) process.stderr.write(`cluster ready: ${workers} workers\n`);
});
cluster.on('exit', (worker, code, signal) => {
  if (stopping) {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    return;
  }
  process.stderr.write(`cluster: worker ${worker.process.pid} died (code ${code}, signal ${signal}); exiting\n`);
  process.exit(1);
});

for (let i = 0; i < workers; i++) cluster.fork();

function stop() {
  if (stopping) return;
  stopping = true;
  for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
