// Adds 100 jobs to the example queue: node --import tsx examples/bullmq/add.ts
import { Queue } from 'bullmq';

const queue = new Queue('graft-example', { connection: { host: process.env.REDIS_HOST ?? '127.0.0.1', port: Number(process.env.REDIS_PORT ?? 6379) } });
await queue.addBulk(Array.from({ length: 100 }, (_, i) => ({ name: 'job', data: { i } })));
await queue.close();
