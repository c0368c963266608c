// Bare node:cluster: the baseline for steady throughput. A primary that forks
// WORKERS (default 2) workers running app.js, and nothing else: no reloads, no
// drain, no heartbeats. SIGTERM/SIGINT stop it.
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';

const workers = Number(process.env.WORKERS ?? 2);
cluster.setupPrimary({ exec: fileURLToPath(new URL('./app.js', import.meta.url)) });

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
