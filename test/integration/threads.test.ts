import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { fixture, root, sharedGraft, startGraft, tempDir, tsxImport, waitFor, type GraftProcess } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';
import { record } from '../helpers/output.js';

/** What a request served by a thread answered, and when the client sent it and saw the answer. */
interface Probe {
  pid: number;
  via: 'plain' | 'piscina' | 'spawn';
  thread: number;
  version: number;
  greeting: string;
  sentAt: number;
  receivedAt: number;
}

interface Heard {
  pid: number;
  threads: Array<{ thread: number; role: string; heard: Array<{ version: number; greeting: string }>; looped?: { version: number; greeting: string } }>;
}

/** GET on a fresh connection, so node:cluster hands successive requests to the workers in turn. */
function getJson<T>(url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    // A request no thread answers fails the test with its URL instead of hanging it.
    const req = httpGet(url, { agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 10 s`)));
    req.on('error', reject);
  });
}

async function probe(url: string): Promise<Probe> {
  const sentAt = performance.now();
  const answer = await getJson<Omit<Probe, 'sentAt' | 'receivedAt'>>(url);
  return { ...answer, sentAt, receivedAt: performance.now() };
}

/** What every worker's threads heard: asks until each of the `workers` pids has answered (bounded). */
async function heardEverywhere(g: GraftProcess, workers: number): Promise<Map<number, Heard>> {
  const byPid = new Map<number, Heard>();
  for (let i = 0; i < 40 && byPid.size < workers; i++) {
    const h = await getJson<Heard>(`${g.url}/heard`);
    byPid.set(h.pid, h);
  }
  assert.equal(byPid.size, workers, 'every worker answered /heard');
  return byPid;
}

/** Per worker: a response never shows an older version than one the client had already received from that worker. */
function assertNoStepBack(probes: Probe[]): void {
  const byPid = new Map<number, Probe[]>();
  for (const p of probes) {
    const list = byPid.get(p.pid) ?? [];
    list.push(p);
    byPid.set(p.pid, list);
  }
  for (const [pid, list] of byPid) {
    const received = [...list].sort((a, b) => a.receivedAt - b.receivedAt);
    const newest: number[] = [];
    received.forEach((p, i) => newest.push(Math.max(p.version, i > 0 ? newest[i - 1]! : 0)));
    for (const p of list) {
      // The newest version among this worker's responses received before p was sent.
      let lo = 0;
      let hi = received.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (received[mid]!.receivedAt < p.sentAt) lo = mid + 1;
        else hi = mid;
      }
      const seen = lo > 0 ? newest[lo - 1]! : 0;
      assert.ok(p.version >= seen, `worker ${pid}: a ${p.via} thread (${p.thread}) answered version ${p.version} after the client had seen version ${seen} from that worker`);
    }
  }
}

describe('config in worker threads', () => {
  /** Two workers for the tests that need no process of their own (the first counts every change the threads heard: it runs first). */
  const twoWorkers = sharedGraft(fixture('threads-app.ts'), { workers: 2 });

  test('under HTTP load, every thread of every worker (plain and piscina) moves with `graft config apply`; none steps back', async (t) => {
    const g = await twoWorkers();
    const probes: Probe[] = [];
    let stopProbing = false;
    const probeLoop = async () => {
      // Bounded: the load around it is bounded, and it stops when the actions end.
      for (let i = 0; i < 100_000 && !stopProbing; i++) probes.push(await probe(`${g.url}/`));
    };
    const moreProbes = (n: number) => {
      const target = probes.length + n;
      return waitFor(() => probes.length >= target, 20_000, `${n} more responses`);
    };
    const { value: applied, failed, load } = await underLoad(g.url, async () => {
      const loops = [probeLoop(), probeLoop(), probeLoop(), probeLoop()];
      const done: Array<{ version: number; greeting: string; returnedAt: number }> = [];
      try {
        for (let i = 2; i <= 5; i++) {
          await moreProbes(20);
          const r = await g.cli('config', 'apply', '--set', `greeting=v${i}`);
          assert.equal(r.code, 0, r.stderr);
          done.push({ version: Number(/config version (\d+) applied/.exec(r.stdout)![1]), greeting: `v${i}`, returnedAt: performance.now() });
        }
        await moreProbes(40);
      } finally {
        stopProbing = true;
        await Promise.all(loops);
      }
      return done;
    });
    t.diagnostic(`${probes.length} probed responses, ${load.answered} under load, ${applied.length} changes`);
    assert.equal(failed, 0, JSON.stringify(load));
    assert.ok(load.answered > 100, `only ${load.answered} requests were answered under load`);

    const greetingOf = new Map(applied.map((a) => [a.version, a.greeting]));
    const workers = new Set(probes.map((p) => p.pid));
    assert.equal(workers.size, 2, 'probes reached both workers');
    for (const pid of workers) {
      for (const via of ['plain', 'piscina'] as const) assert.ok(probes.some((p) => p.pid === pid && p.via === via), `worker ${pid} answered from a ${via} thread`);
    }
    for (const p of probes) if (greetingOf.has(p.version)) assert.equal(p.greeting, greetingOf.get(p.version), 'a thread reads one snapshot: version and data agree');
    // Once the command returned, every later response, from any thread of any worker, shows that version or a newer one.
    for (const a of applied) {
      const later = probes.filter((p) => p.sentAt > a.returnedAt);
      assert.ok(later.length > 0);
      const stale = later.filter((p) => p.version < a.version);
      assert.deepEqual(stale, [], `responses sent after version ${a.version} was applied`);
    }
    assertNoStepBack(probes);

    // Every thread's subscriber heard every change, in order; the loop runs on the last one.
    const last = applied.at(-1)!;
    for (const [pid, h] of await heardEverywhere(g, 2)) {
      assert.deepEqual(
        h.threads.map((t) => t.role).sort(),
        ['loop', 'serve'],
        `worker ${pid}'s long-lived threads`,
      );
      for (const t of h.threads) {
        assert.deepEqual(t.heard, applied.map(({ version, greeting }) => ({ version, greeting })), `worker ${pid} thread ${t.thread} (${t.role})`);
      }
    }
    await waitFor(async () => {
      const h = await heardEverywhere(g, 2);
      return [...h.values()].every((w) => w.threads.find((t) => t.role === 'loop')!.looped?.version === last.version);
    }, 10_000, 'the loop in each worker to run on the last version');

    // A thread started after the change reads it as it starts (and ends: graft keeps no thread alive).
    for (let i = 0; i < 4; i++) {
      const fresh = await getJson<Probe & { exited: boolean }>(`${g.url}/spawn`);
      assert.deepEqual([fresh.version, fresh.greeting, fresh.exited], [last.version, last.greeting, true]);
    }
  });

  test('a thread whose subscriber throws is reported with its thread, and the change applies (as for the main thread)', async () => {
    const g = await twoWorkers();
    const from = g.logs.length;
    const r = await g.cli('config', 'apply', '--set', 'explode=1');
    assert.equal(r.code, 0, r.stderr);
    const version = Number(/config version (\d+) applied/.exec(r.stdout)![1]);
    const failures = () => g.logs.slice(from).filter((l) => l.msg === 'config listener failed' && l.path === 'explode');
    // Two long-lived threads with that subscriber in each of the two workers.
    await g.waitForLog(() => failures().length >= 4);
    for (const f of failures()) {
      assert.equal(f.level, 'error');
      assert.equal(f.configVersion, version);
      assert.equal(typeof f.thread, 'number');
      assert.equal(f.error, `thread ${f.thread} refuses explode`);
    }
    for (let i = 0; i < 4; i++) assert.equal((await probe(`${g.url}/`)).version, version);
  });

  test('a busy thread holds the change until it is free; a thread that exits mid-change stops counting', async () => {
    const g = await startGraft(fixture('threads-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      const { thread: busy } = await getJson<{ thread: number }>(`${g.url}/spin`);
      let returned = false;
      const apply = g.cli('config', 'apply', '--set', 'greeting=b1').then((r) => {
        returned = true;
        return r;
      });
      // The worker switched (its main thread and, through the board, its threads read b1)...
      await waitFor(async () => (await getJson<{ greeting: string }>(`${g.url}/main`)).greeting === 'b1', 20_000, 'the worker to switch to b1');
      assert.equal((await probe(`${g.url}/plain`)).greeting, 'b1');
      assert.equal((await probe(`${g.url}/piscina`)).greeting, 'b1');
      // ...but the busy thread has not run its subscriber: the command waits for it.
      assert.equal(returned, false, 'graft config apply returned while a thread with subscribers was busy');
      await getJson(`${g.url}/release`);
      const r = await apply;
      assert.equal(r.code, 0, r.stderr);
      const h = await getJson<Heard>(`${g.url}/heard`);
      assert.deepEqual(h.threads.find((t) => t.thread === busy)?.heard.map((x) => x.greeting), ['b1']);

      // Spinning forever: the main thread's own subscriber terminates it in the middle of the change.
      const from = g.logs.length;
      await getJson(`${g.url}/doomed`);
      const r2 = await g.cli('config', 'apply', '--set', 'greeting=b2');
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual(
        g.logs.slice(from).filter((l) => l.code === 'GRAFT_THREAD_BUSY'),
        [],
        'the exited thread was not waited for',
      );
      const fresh = await getJson<Probe>(`${g.url}/spawn`);
      assert.equal(fresh.greeting, 'b2');
    } finally {
      await g.stop();
    }
  });

  test('without a master, a thread reads the process config at once (loading it) and hears changes', async () => {
    const dir = tempDir();
    const file = join(dir, 'app.json');
    writeFileSync(file, '{"greeting":"one"}');
    const child = spawn(process.execPath, ['--import', tsxImport, fixture('threads/standalone-threads.mts')], {
      cwd: root,
      env: { ...process.env, GRAFT_CONFIG: file, GRAFT_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: Array<Record<string, unknown>> = [];
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      for (const line of c.split('\n').filter(Boolean)) {
        record('standalone', line);
        events.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => record('standalone', c));
    try {
      await waitFor(() => events.length > 0, 15_000, 'the thread to start');
      assert.deepEqual(events[0], { event: 'start', current: { greeting: 'one', extra: 'from the schema' }, version: 1 });
      writeFileSync(file, '{"greeting":"two"}');
      await waitFor(() => events.some((e) => e.event === 'greeting'), 15_000, 'the thread subscriber');
      assert.deepEqual(events[1], { event: 'greeting', next: 'two', prev: 'one', version: 2, read: 'two' });
    } finally {
      child.kill();
    }
  });
});
