import assert from 'node:assert/strict';
import { test } from 'node:test';
import { megabytes, milliseconds } from '../../src/cli/args.js';
import { CrashBackoff } from '../../src/pool/crash-backoff.js';
import { MemoryWatch } from '../../src/pool/memory-watch.js';
import { DEFAULT_POLICY, GenerationRecord, MEMORY_SETTLE_MS } from '../../src/pool/restart-policy.js';

const MB = 1048576;

test('--max-memory: a bare number is megabytes; K, M, G (with or without B)', () => {
  assert.equal(megabytes('--max-memory', '512'), 512 * MB);
  assert.equal(megabytes('--max-memory', '512M'), 512 * MB);
  assert.equal(megabytes('--max-memory', '512mb'), 512 * MB);
  assert.equal(megabytes('--max-memory', '1G'), 1024 * MB);
  assert.equal(megabytes('--max-memory', '1.5G'), 1536 * MB);
  assert.equal(megabytes('--max-memory', '2048K'), 2 * MB);
  assert.equal(megabytes('--max-memory', undefined), undefined);
  for (const bad of ['', 'lots', '-5', '512B', '0', '100K', '1T', '5 GB x']) {
    assert.throws(() => megabytes('--max-memory', bad), (e: Error & { code?: string }) => e.code === 'GRAFT_BAD_ARGUMENT' && e.message.includes(JSON.stringify(bad)), bad);
  }
});

test('--restart-delay / --min-uptime: a bare number is milliseconds; ms, s, m', () => {
  assert.equal(milliseconds('--restart-delay', '250'), 250);
  assert.equal(milliseconds('--restart-delay', '250ms'), 250);
  assert.equal(milliseconds('--restart-delay', '1.5s'), 1500);
  assert.equal(milliseconds('--restart-delay', '2m'), 120_000);
  assert.equal(milliseconds('--restart-delay', '0'), 0);
  assert.throws(() => milliseconds('--min-uptime', '0', 1), /at least 1/);
  for (const bad of ['', 'soon', '-1', '2h', '1e3', '2 days']) {
    assert.throws(() => milliseconds('--restart-delay', bad), (e: Error & { code?: string }) => e.code === 'GRAFT_BAD_ARGUMENT', bad);
  }
});

test('the restart delay is the least crash delay; the backoff takes over once longer', () => {
  const plain = new CrashBackoff();
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => plain.record(1000 + i).delayMs), [0, 100, 200, 400, 800]);
  const delayed = new CrashBackoff({ minDelayMs: 300 });
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => delayed.record(1000 + i).delayMs), [300, 300, 300, 400, 800, 1600]);
});

test('--max-restarts counts unstable crashes in a row; a stable run starts the count again', () => {
  const record = new GenerationRecord({ ...DEFAULT_POLICY, maxRestarts: 2, minUptimeMs: 1000 }, 4);
  assert.deepEqual(record.crashed(undefined), { unstable: true, replace: true, exhaustedNow: false });
  assert.deepEqual(record.crashed(999), { unstable: true, replace: true, exhaustedNow: false });
  assert.deepEqual(record.crashed(5000), { unstable: false, replace: true, exhaustedNow: false });
  assert.equal(record.crashed(10).replace, true);
  assert.equal(record.crashed(10).replace, true);
  assert.deepEqual(record.degraded(), []);
  const third = record.crashed(undefined, 'boom');
  assert.deepEqual(third, { unstable: true, replace: false, exhaustedNow: true });
  assert.equal(record.exhausted?.code, 'GRAFT_MAX_RESTARTS');
  assert.equal(record.exhausted?.generation, 4);
  assert.match(record.exhausted!.message, /crashed 3 times in a row.*last error: boom/);
  // Once used up, no crash of the generation is replaced, and it is said once.
  assert.deepEqual(record.crashed(60_000), { unstable: false, replace: false, exhaustedNow: false });
  assert.equal(record.degraded().length, 1);
});

test('without --max-restarts every crash is replaced', () => {
  const record = new GenerationRecord(DEFAULT_POLICY, 1);
  for (let i = 0; i < 100; i++) assert.equal(record.crashed(undefined).replace, true);
});

test('memory: one heartbeat over the limit is a spike; three in a row is a worker to replace', () => {
  const watch = new MemoryWatch(100);
  const w = {};
  const beats = [50, 150, 150, 90, 150, 150, 150, 150, 150, 150].map((rss) => watch.beat(w, rss));
  // Back under the limit, the count starts again; after a verdict, too.
  assert.deepEqual(beats, [false, false, false, false, false, false, true, false, false, true]);
});

test('memory: the first worker over the limit right away is replaced at once; fresh ones that keep going over back off', () => {
  const record = new GenerationRecord({ ...DEFAULT_POLICY, maxMemoryBytes: 100 * MB }, 2);
  assert.deepEqual(record.overMemory(MEMORY_SETTLE_MS, 150 * MB), { delayMs: 0, churnStarted: undefined });
  assert.deepEqual(record.overMemory(3000, 150 * MB), { delayMs: 0, churnStarted: undefined });
  assert.deepEqual(record.degraded(), []);
  const second = record.overMemory(3000, 150 * MB);
  assert.equal(second.churnStarted?.code, 'GRAFT_WORKER_MEMORY');
  assert.match(second.churnStarted!.message, /keep going over --max-memory 100 MB right away \(rss 150 MB within 3 s of starting\)/);
  const delays = [second.delayMs, ...[1, 2, 3, 4, 5, 6, 7].map(() => record.overMemory(3000, 150 * MB).delayMs)];
  assert.ok(delays[0]! >= 500 && delays[0]! <= 1000, String(delays));
  for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! >= delays[i - 1]! / 2 && delays[i]! <= 60_000, String(delays));
  assert.ok(delays.at(-1)! >= 30_000, String(delays));
  assert.equal(record.degraded().length, 1);
  // A worker that served a while before going over: the app is not over at once any more.
  assert.deepEqual(record.overMemory(MEMORY_SETTLE_MS + 1, 150 * MB), { delayMs: 0, churnStarted: undefined });
  assert.deepEqual(record.degraded(), []);
});
