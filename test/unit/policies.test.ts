import assert from 'node:assert/strict';
import { test } from 'node:test';
import { megabytes, milliseconds } from '../../src/cli/args.js';
import { CrashBackoff, DEFAULT_POLICY, GenerationRecord, MEMORY_SETTLE_MS, MemoryWatch, Restarts } from '../../src/pool/restart-policy.js';

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

test('memory: a worker over the limit is asked for once until settled; after a failed replacement, not before the wait', () => {
  const record = new Restarts({ ...DEFAULT_POLICY, maxMemoryBytes: 100 }).generation(3);
  const w = {};
  const beat = (now: number) => record.memoryBeat(w, 150, MEMORY_SETTLE_MS, now);
  assert.deepEqual([beat(0), beat(1), beat(2)], [undefined, undefined, { delayMs: 0, churnStarted: undefined }]);
  // Asked for: the heartbeats that follow ask nothing more until the ask settles.
  assert.deepEqual([beat(3), beat(4), beat(5)], [undefined, undefined, undefined]);
  record.memorySettled(w);
  const retryInMs = record.memoryReplacementFailed(w, 10);
  assert.ok(retryInMs >= 500 && retryInMs <= 1000, String(retryInMs));
  for (const now of [11, 12, 13, 9 + retryInMs]) assert.equal(beat(now), undefined);
  assert.equal(beat(10 + retryInMs), undefined);
  assert.equal(beat(11 + retryInMs), undefined);
  assert.deepEqual(beat(12 + retryInMs), { delayMs: 0, churnStarted: undefined });
  // Failures in a row wait longer: one backoff for the generation's memory replacements.
  record.memorySettled(w);
  const again = [record.memoryReplacementFailed(w, 20), record.memoryReplacementFailed(w, 30)];
  assert.ok(again[0]! <= 1000 && again[1]! >= 1000, String(again));
  // Without --max-memory nothing is watched.
  const unwatched = new Restarts(DEFAULT_POLICY);
  assert.equal(unwatched.watchesMemory, false);
  assert.equal(unwatched.generation(1).memoryBeat(w, 1e12, 0), undefined);
});

test('crashes: the pool paces replacements across generations; a generation that used up --max-restarts is not replaced and not paced', () => {
  const restarts = new Restarts({ ...DEFAULT_POLICY, maxRestarts: 1 });
  const first = restarts.generation(1);
  assert.deepEqual(restarts.crashed(first, undefined, 'boom', 1000), { unstable: true, replace: true, exhaustedNow: false, delayMs: 0, loopStarted: false, recent: 1 });
  const used = restarts.crashed(first, undefined, 'boom', 1001);
  assert.equal(used.replace, false);
  assert.equal(used.exhaustedNow, true);
  // A reload's generation starts clean, but the pace goes on from the crashes before it.
  const second = restarts.generation(2);
  assert.deepEqual(restarts.crashed(second, 5000, 'boom', 1002), { unstable: false, replace: true, exhaustedNow: false, delayMs: 100, loopStarted: false, recent: 2 });
  for (const now of [1003, 1004]) restarts.crashed(second, 5000, 'boom', now);
  assert.equal(restarts.inCrashLoop(1005), false);
  assert.equal(restarts.crashed(second, 5000, 'boom', 1005).loopStarted, true);
  assert.equal(restarts.inCrashLoop(1006), true);
  assert.equal(restarts.inCrashLoop(1006 + 60_000), false);
});
