// The job worker: a plain BullMQ worker as its docs write one, no server, no
// graft import, run unchanged by graft and by PM2, with BullMQ's documented
// graceful shutdown on SIGINT and SIGTERM (PM2 sends the first, graft the
// second). Each job sleeps job.data.ms and records in Redis who ran it: a
// count per job id, which process took it when (job.processedOn) and when it
// finished; the shutdown records when this process began closing, before it
// stops taking jobs.
import { Worker } from 'bullmq';
import IORedis from 'ioredis';

const queue = process.env.QUEUE;
const connection = { host: '127.0.0.1', port: 6379 };
const redis = new IORedis(connection);
const who = String(process.pid);

const worker = new Worker(
  queue,
  async (job) => {
    await redis.multi().hincrby(`${queue}:runs`, job.id, 1).hset(`${queue}:started`, `${job.id}`, `${who} ${job.processedOn}`).exec();
    await new Promise((resolve) => setTimeout(resolve, job.data.ms));
    await redis.hset(`${queue}:finished`, `${job.id}`, String(Date.now()));
    return who;
  },
  { connection, concurrency: 8 },
);

const gracefulShutdown = async (signal) => {
  const closingAt = Date.now();
  console.log(`Received ${signal}, closing worker...`);
  const closed = worker.close();
  await redis.hset(`${queue}:closing`, who, String(closingAt));
  await closed;
  await redis.quit();
  process.exit(0);
};
process.on('SIGINT', () => gracefulShutdown('SIGINT'));
process.on('SIGTERM', () => gracefulShutdown('SIGTERM'));

// Only under PM2, what its docs ask of an app started with --wait-ready: say
// when it is ready (here: connected to Redis). graft needs nothing.
if (process.env.pm_id !== undefined) worker.waitUntilReady().then(() => process.send?.('ready'));
