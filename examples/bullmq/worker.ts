// A BullMQ worker as BullMQ's docs write one: no server, no graft import.
//   graft start examples/bullmq/worker.ts -w 2
// graft counts it ready once its entry has evaluated (it starts no server),
// and a reload or a scale-down sends it SIGTERM: its graceful shutdown stops
// taking jobs, finishes the ones it holds, and exits; the next generation
// takes the queue over. Add jobs with: node examples/bullmq/add.ts
import { Worker } from 'bullmq';

const connection = { host: process.env.REDIS_HOST ?? '127.0.0.1', port: Number(process.env.REDIS_PORT ?? 6379) };

const worker = new Worker(
  'graft-example',
  async (job) => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return `done by ${process.pid} (generation ${process.env.GRAFT_GENERATION})`;
  },
  { connection, concurrency: 4 },
);
worker.on('completed', (job, result: string) => console.log(`job ${job.id} ${result}`));

const shutdown = async (signal: string) => {
  console.log(`${signal}: finishing the jobs in hand`);
  await worker.close();
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
