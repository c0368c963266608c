import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getFresh } from '../../bench/lib/http.js';
import { fixture, freePort, graftCli, isAlive, onlyGeneration, startGraft, tempDir, waitFor, type GraftProcess } from '../helpers/graft.js';
import { scrape, select, total, type Sample } from '../helpers/prometheus.js';

/** The generations and worker places that samples of `name` come from, as `generation/worker`. */
function sources(samples: Sample[], name: string): string[] {
  return select(samples, name)
    .filter((s) => s.labels.worker !== undefined)
    .map((s) => `${s.labels.generation}/${s.labels.worker}`)
    .sort();
}

describe('--metrics', () => {
  let g: GraftProcess;
  let metricsUrl: string;
  let successor: number | undefined;

  before(async () => {
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    g = await startGraft(fixture('metrics-app.ts'), { workers: 2, args: ['--metrics', String(port)] });
    await g.waitRunning();
  });

  after(async () => {
    if (successor && isAlive(successor)) {
      await g.cli('stop');
      await waitFor(() => !isAlive(successor!), 15_000, 'the successor to stop');
    }
    await g.stop();
  });

  test('every worker reports prom-client default metrics, labelled with its place and generation; the master its own', async () => {
    const { status, contentType, samples } = await scrape(metricsUrl);
    assert.equal(status, 200);
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'process_start_time_seconds', 'nodejs_version_info']) {
      assert.deepEqual(sources(samples, name), ['1/0', '1/1'], name);
      assert.equal(select(samples, name, { role: 'master' }).length, 1, `${name} of the master`);
    }
    assert.deepEqual(sources(samples, 'nodejs_eventloop_lag_seconds'), ['1/0', '1/1']);
    assert.equal(total(samples, 'graft_workers', { state: 'ready' }), 2);
    assert.equal(total(samples, 'graft_generation'), 1);
    assert.equal(total(samples, 'graft_config_version'), 1);
    const [info] = select(samples, 'graft_build_info');
    assert.equal(info?.labels.version, '0.1.0');
    assert.equal(info?.labels.node, process.version);
  });

  test("the app's own counter shows per worker, and the workers' counts add up to the requests made", async () => {
    const made = 40;
    // A fresh connection each: node:cluster hands them to the workers in turn.
    for (let i = 0; i < made; i++) assert.equal((await getFresh(`${g.url}/`)).status, 200);
    const { samples } = await scrape(metricsUrl);
    const perWorker = select(samples, 'app_requests_total');
    assert.deepEqual(sources(samples, 'app_requests_total'), ['1/0', '1/1']);
    assert.ok(perWorker.every((s) => s.value > 0), `both workers served: ${JSON.stringify(perWorker)}`);
    assert.equal(total(samples, 'app_requests_total'), made);
    // A registry the app handed to graft's collectMetrics() is collected too.
    assert.deepEqual(sources(samples, 'app_own_registry_up'), ['1/0', '1/1']);
  });

  test('after graft reload the samples come from generation 2, and the reload is counted and timed', async () => {
    const r = await g.cli('reload');
    assert.equal(r.code, 0, r.stderr);
    await onlyGeneration(g, 2);
    const { samples } = await scrape(metricsUrl);
    assert.deepEqual(sources(samples, 'process_cpu_user_seconds_total'), ['2/0', '2/1']);
    assert.equal(total(samples, 'graft_generation'), 2);
    assert.equal(total(samples, 'graft_reloads_total', { trigger: 'control', outcome: 'ok' }), 1);
    assert.equal(total(samples, 'graft_reload_duration_seconds_count'), 1);
    assert.ok(total(samples, 'graft_reload_duration_seconds_sum') > 0);
    assert.equal(total(samples, 'graft_reload_duration_seconds_bucket', { le: '+Inf' }), 1);
  });

  test('a rejected config apply is counted; the config version stays', async () => {
    const r = await g.cli('config', 'apply', '--set', 'limit=0');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /GRAFT_CONFIG_INVALID/);
    let { samples } = await scrape(metricsUrl);
    assert.equal(total(samples, 'graft_config_rejections_total'), 1);
    assert.equal(total(samples, 'graft_config_version'), 1);
    const ok = await g.cli('config', 'apply', '--set', 'limit=3');
    assert.equal(ok.code, 0, ok.stderr);
    ({ samples } = await scrape(metricsUrl));
    assert.equal(total(samples, 'graft_config_rejections_total'), 1);
    assert.ok(total(samples, 'graft_config_version') > 1);
  });

  test('a killed worker is counted as a crash restart', async () => {
    const victim = (await g.status()).workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await g.waitForLog((l) => l.msg === 'worker died; replacing it' && l.workerPid === victim.pid);
    await waitFor(async () => {
      const s = await g.status();
      return s.workers.filter((w) => w.state === 'ready').length === 2 && !s.workers.some((w) => w.pid === victim.pid);
    }, 20_000, 'the replacement to be ready');
    const { samples } = await scrape(metricsUrl);
    assert.equal(total(samples, 'graft_worker_restarts_total', { reason: 'crash' }), 1);
    assert.equal(total(samples, 'graft_workers', { state: 'ready' }), 2);
    assert.deepEqual(sources(samples, 'process_cpu_user_seconds_total'), ['2/0', '2/1']);
  });

  test('graft upgrade: the successor serves metrics on the same port and its counters go on from the old master', async () => {
    const first = (await g.status()).master.pid;
    const r = await g.cli('upgrade');
    assert.equal(r.code, 0, r.stderr);
    successor = Number(/master (\d+) serves/.exec(r.stdout)?.[1]);
    await g.masterExit(first);
    const { status, samples } = await scrape(metricsUrl);
    assert.equal(status, 200);
    assert.equal((await g.status()).master.pid, successor);
    assert.equal(total(samples, 'graft_reloads_total', { trigger: 'control', outcome: 'ok' }), 1);
    assert.equal(total(samples, 'graft_reload_duration_seconds_count'), 1);
    assert.equal(total(samples, 'graft_config_rejections_total'), 1);
    assert.equal(total(samples, 'graft_worker_restarts_total', { reason: 'crash' }), 1);
    assert.deepEqual(sources(samples, 'process_cpu_user_seconds_total'), ['3/0', '3/1']);
  });
});

describe('--metrics with --swap', () => {
  test('swaps are counted by module and outcome', async () => {
    const dir = tempDir('metrics-swap-');
    const write = (version: string) => writeFileSync(join(dir, 'version.ts'), version);
    write('export const version = "one";\n');
    writeFileSync(join(dir, 'handler.ts'), "import { version } from './version.js';\nexport default (_req: unknown, res: { end(s: string): void }) => res.end(version);\n");
    const port = await freePort();
    const g = await startGraft(join(dir, 'handler.ts'), { workers: 2, args: ['--swap', '--metrics', String(port)], cwd: dir });
    try {
      await g.waitRunning();
      write('export const version = "two";\n');
      assert.equal((await g.cli('swap')).code, 0);
      write('export const version = ;\n');
      assert.notEqual((await g.cli('swap')).code, 0);
      const [swapped] = ((await g.status()).workers[0] as { modules?: string[] }).modules ?? [];
      const module = swapped?.replace(/@[^@]*$/, '');
      assert.ok(module, 'the worker reports its swappable module');
      const { samples } = await scrape(`http://127.0.0.1:${port}/metrics`);
      assert.equal(total(samples, 'graft_swaps_total', { module, outcome: 'ok' }), 1);
      assert.equal(total(samples, 'graft_swaps_total', { module: '*', outcome: 'failed' }), 1);
      assert.equal(total(samples, 'graft_swaps_total'), 2);
    } finally {
      await g.stop();
    }
  });
});

describe('--metrics: bad input', () => {
  test('a metrics port in use: one line naming it, and no worker started', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      const g = await startGraft(fixture('metrics-app.ts'), { workers: 2, args: ['--metrics', String(port)] });
      const exit = await g.exited;
      assert.equal(exit.code, 1);
      const lines = g.output.filter((l) => l.startsWith('graft: '));
      assert.equal(lines.length, 1, g.output.join('\n'));
      assert.match(lines[0]!, new RegExp(`^graft: GRAFT_METRICS_PORT_IN_USE: --metrics 127\\.0\\.0\\.1:${port}: port ${port} is already in use`));
      assert.equal(g.logs.filter((l) => l.msg === 'worker started').length, 0, 'no worker was started');
    } finally {
      holder.close();
    }
  });

  test('a bad --metrics value, and the app port given again', async () => {
    for (const value of ['abc', '70000', 'host:', ':9100']) {
      const r = await graftCli(['start', fixture('metrics-app.ts'), '--metrics', value]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`^graft: GRAFT_BAD_ARGUMENT: --metrics "${value}": `), value);
    }
    const r = await graftCli(['start', fixture('metrics-app.ts'), '-p', '3456', '--metrics', '3456']);
    assert.match(r.stderr, /^graft: GRAFT_BAD_ARGUMENT: --metrics 127\.0\.0\.1:3456: port 3456 is the app's port/);
  });
});
