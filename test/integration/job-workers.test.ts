import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import amqp from 'amqplib';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { deferred } from '../../src/core/deferred.js';
import { failedStart, fixture, startGraft, tempDir } from '../helpers/graft.js';

const connection = { host: '127.0.0.1', port: 6379 };
const JOBS = 1000;
/** The fixture's BullMQ `concurrency`. */
const CONCURRENCY = 8;

describe('job workers: no server, no graft import', () => {
  const redis = new Redis(connection);
  after(() => redis.quit());

  test('a plain BullMQ worker is ready without a server; 1,000 jobs through 5 reloads and a scale-down: none lost, none run twice, none stalled, after its drain began a worker takes at most one job per concurrency slot (what BullMQ\'s close lets land)', async () => {
    const name = `graft-test-jobs-${process.pid}`;
    const queue = new Queue(name, { connection });
    const events = new QueueEvents(name, { connection });
    const g = await startGraft(fixture('bull-worker.mjs'), { workers: 2, env: { QUEUE: name } });
    try {
      await events.waitUntilReady();
      await g.waitRunning();
      const first = await g.status();
      assert.equal(first.workers.filter((w) => w.state === 'ready').length, 2);

      const finished = deferred<void>();
      let completed = 0;
      const failed: string[] = [];
      let stalled = 0;
      events.on('completed', () => {
        if (++completed === JOBS) finished.resolve();
      });
      events.on('failed', ({ jobId, failedReason }) => failed.push(`${jobId}: ${failedReason}`));
      events.on('stalled', () => stalled++);
      // A batch of jobs right before each action, so every generation holds jobs when its drain begins.
      const actions = [...Array.from({ length: 5 }, () => ['reload']), ['scale', '1']];
      let added = 0;
      for (const [i, action] of actions.entries()) {
        const count = i === actions.length - 1 ? JOBS - added : Math.floor(JOBS / actions.length);
        await queue.addBulk(Array.from({ length: count }, (_, j) => ({ name: 'job', data: { ms: 100 + (((added + j) * 37) % 201) } })));
        added += count;
        const r = await g.cli(...action);
        assert.equal(r.code, 0, r.stderr);
      }
      const bound = setTimeout(() => finished.reject(new Error(`only ${completed} of ${JOBS} jobs completed`)), 120_000);
      await finished.promise.finally(() => clearTimeout(bound));

      assert.deepEqual(failed, []);
      assert.equal(stalled, 0, 'no job stalled (a worker killed with jobs in hand)');
      const runs = await redis.hgetall(`${name}:runs`);
      assert.equal(Object.keys(runs).length, JOBS, 'every job ran');
      assert.deepEqual(Object.entries(runs).filter(([, n]) => n !== '1'), [], 'no job ran twice');
      const started = await redis.hgetall(`${name}:started`);
      const closing = await redis.hgetall(`${name}:closing`);
      const late = Object.entries(started).filter(([, v]) => {
        const [who, at] = v.split(' ');
        return closing[who!] !== undefined && Number(at) > Number(closing[who!]);
      });
      // BullMQ's close() lets a fetch already on its way land: a slot whose job was finishing as the signal came may take
      // one more (its moveToFinished fetches the next). Beyond that, a worker whose drain began takes nothing.
      const latePerWorker = new Map<string, number>();
      for (const [, v] of late) latePerWorker.set(v.split(' ')[0]!, (latePerWorker.get(v.split(' ')[0]!) ?? 0) + 1);
      for (const [who, n] of latePerWorker) assert.ok(n <= CONCURRENCY, `${who} took ${n} jobs after its drain began, more than its ${CONCURRENCY} slots had on their way`);
      const generations = new Set(Object.values(started).map((v) => v.split(' ')[0]!.split('@')[1]));
      assert.deepEqual([...generations].map(Number).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6], 'every generation ran jobs');
      const end = await g.status();
      assert.equal(end.master.generation, first.master.generation + 5);
      assert.deepEqual(end.workers.map((w) => [w.generation, w.state]), [[end.master.generation, 'ready']]);
    } finally {
      await g.stop();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
      await redis.del(`${name}:runs`, `${name}:started`, `${name}:closing`);
    }
  });

  test('a plain amqplib consumer (prefetch 5): 300 messages through 3 reloads, each handled once, none redelivered', async () => {
    const name = `graft-test-amqp-${process.pid}`;
    const MESSAGES = 300;
    const broker = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
    const channel = await broker.createChannel();
    await channel.assertQueue(name, { durable: false });
    const acks = new Redis(connection);
    const allAcked = deferred<void>();
    let acked = 0;
    acks.on('message', () => {
      if (++acked === MESSAGES) allAcked.resolve();
    });
    await acks.subscribe(`${name}:acked`);
    const g = await startGraft(fixture('amqp-consumer.mjs'), { workers: 2, env: { QUEUE: name } });
    try {
      await g.waitRunning();
      let sent = 0;
      for (let i = 0; i < 3; i++) {
        // A batch right before each reload: the draining generation holds messages when its drain begins.
        for (let j = 0; j < MESSAGES / 3; j++, sent++) channel.sendToQueue(name, Buffer.from(JSON.stringify({ id: sent, ms: 50 + ((sent * 37) % 101) })));
        const r = await g.cli('reload');
        assert.equal(r.code, 0, r.stderr);
      }
      const bound = setTimeout(() => allAcked.reject(new Error(`only ${acked} of ${MESSAGES} messages acked`)), 120_000);
      await allAcked.promise.finally(() => clearTimeout(bound));
      assert.equal((await channel.checkQueue(name)).messageCount, 0);
      const runs = await redis.hgetall(`${name}:runs`);
      assert.deepEqual(Object.entries(runs).filter(([, n]) => n !== '1'), [], 'no message handled twice');
      assert.deepEqual(await redis.smembers(`${name}:redelivered`), [], 'no message redelivered (none was in hand when a worker went)');
    } finally {
      await g.stop();
      await acks.quit();
      await channel.deleteQueue(name);
      await broker.close();
      await redis.del(`${name}:runs`, `${name}:redelivered`);
    }
  });

  test("--ready message: a worker is ready once the app calls process.send('ready'), not before", async () => {
    const file = join(tempDir(), 'go');
    const g = await startGraft(fixture('ready-message-app.mjs'), { workers: 1, env: { READY_AFTER_FILE: file }, args: ['--ready', 'message'] });
    try {
      // Forked and listening, yet not ready: the app has not said so.
      await g.waitForLog((r) => r.msg === 'worker started');
      const said = Date.now();
      writeFileSync(file, 'go');
      const running = await g.waitRunning();
      assert.ok(Date.parse(String(running.time)) >= said - 5, 'ready only after the app sent it');
      assert.equal((await (await fetch(g.url)).text()).trim(), 'ok 1');
    } finally {
      await g.stop();
    }
  });

  test("--ready message from an app that never sends it: one GRAFT_READY_TIMEOUT line naming the entry", async () => {
    const g = await startGraft(fixture('ready-message-app.mjs'), { workers: 1, args: ['--ready', 'message', '--timeout', '1'] });
    const line = await failedStart(g);
    assert.match(line, /^graft: GRAFT_READY_TIMEOUT: .*ready-message-app\.mjs never sent process\.send\('ready'\) \(--ready message\)/);
    assert.match(line, /within 1000 ms/);
  });

  test('a SIGTERM handler that throws is logged, and the drain goes on', async () => {
    const dir = tempDir();
    const entry = join(dir, 'throwing-hook.mjs');
    writeFileSync(entry, "setInterval(() => {}, 1000);\nprocess.on('SIGTERM', () => { throw new Error('hook boom'); });\n");
    const g = await startGraft(entry, { workers: 1, cwd: dir });
    try {
      await g.waitRunning();
      const before = await g.status();
      const r = await g.cli('reload');
      assert.equal(r.code, 0, r.stderr);
      await g.waitForLog((l) => /SIGTERM handler threw/.test(String(l.msg)) && /hook boom/.test(JSON.stringify(l)));
      const gone = await g.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === before.workers[0]!.pid);
      assert.notEqual(gone.signal, 'SIGKILL', 'drained, not killed at the graceful timeout');
    } finally {
      await g.stop();
    }
  });
});
