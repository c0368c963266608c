import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Activity } from '../../src/observe/activity.js';
import { parseHttpAddress } from '../../src/observe/http-endpoint.js';
import { GraftMetrics } from '../../src/observe/metrics.js';
import { reloadTrigger, type MasterEvent } from '../../src/observe/observers.js';
import { createLogger } from '../../src/core/log.js';
import { parseMetrics, total } from '../helpers/prometheus.js';

const log = createLogger({ role: 'test' });
const noWorkers = { workers: () => [], configVersion: () => 4, generation: () => 2 };
const reload = (outcome: 'ok' | 'failed', durationMs: number): MasterEvent => ({ type: 'reload', trigger: 'control', reason: 'control', outcome, durationMs });

describe('--metrics and --dashboard addresses', () => {
  test('a port is on loopback; HOST:PORT and [IPv6]:PORT as given', () => {
    assert.deepEqual(parseHttpAddress('--metrics', '9100'), { host: '127.0.0.1', port: 9100, display: '127.0.0.1:9100' });
    assert.deepEqual(parseHttpAddress('--metrics', '0.0.0.0:9100'), { host: '0.0.0.0', port: 9100, display: '0.0.0.0:9100' });
    assert.deepEqual(parseHttpAddress('--metrics', 'localhost:80'), { host: 'localhost', port: 80, display: 'localhost:80' });
    assert.deepEqual(parseHttpAddress('--dashboard', '[::1]:8080'), { host: '::1', port: 8080, display: '[::1]:8080' });
  });

  test('anything else is GRAFT_BAD_ARGUMENT naming the flag and the value', () => {
    for (const value of ['', 'abc', '0', '65536', ':9100', 'host:', 'a b:1', 'http://x:1', '[zz]:1']) {
      assert.throws(() => parseHttpAddress('--metrics', value), (err: { code?: string; message?: string }) => err.code === 'GRAFT_BAD_ARGUMENT' && err.message!.startsWith(`--metrics ${JSON.stringify(value)}: `), value);
    }
  });
});

describe('reload triggers', () => {
  test('one word per asker; a coalesced reload is its first asker', () => {
    assert.equal(reloadTrigger('control'), 'control');
    assert.equal(reloadTrigger('signal,control'), 'signal');
    assert.equal(reloadTrigger('config v7'), 'config');
    assert.equal(reloadTrigger('swap: fallback'), 'swap');
    assert.equal(reloadTrigger('bus'), 'bus');
    assert.equal(reloadTrigger('something new'), 'other');
  });
});

describe('graft metrics in the master', () => {
  test('events become counters and a histogram; the gauges read the master', async () => {
    const metrics = new GraftMetrics(noWorkers, log);
    metrics.observe(reload('ok', 1500));
    metrics.observe(reload('failed', 40));
    metrics.observe({ type: 'worker-restart', reason: 'heartbeat', generation: 2, worker: 0, workerPid: 1 });
    metrics.observe({ type: 'config', version: 5, accepted: false, source: 'apply', changed: [] });
    metrics.observe({ type: 'config', version: 6, accepted: true, source: 'apply', changed: ['a'] });
    metrics.observe({ type: 'swap', outcome: 'ok', modules: ['handler@3', 'lib@2'], source: 'control', durationMs: 20 });
    metrics.observe({ type: 'swap', outcome: 'failed', modules: [], source: 'watch', durationMs: 20 });
    const samples = parseMetrics((await metrics.scrape()).text);
    assert.equal(total(samples, 'graft_reloads_total', { trigger: 'control', outcome: 'ok' }), 1);
    assert.equal(total(samples, 'graft_reloads_total', { trigger: 'control', outcome: 'failed' }), 1);
    assert.equal(total(samples, 'graft_reload_duration_seconds_count'), 2);
    assert.equal(total(samples, 'graft_reload_duration_seconds_bucket', { le: '1' }), 1);
    assert.equal(total(samples, 'graft_reload_duration_seconds_bucket', { le: '2' }), 2);
    assert.equal(total(samples, 'graft_worker_restarts_total', { reason: 'heartbeat' }), 1);
    assert.equal(total(samples, 'graft_config_rejections_total'), 1);
    assert.equal(total(samples, 'graft_swaps_total', { module: 'handler', outcome: 'ok' }), 1);
    assert.equal(total(samples, 'graft_swaps_total', { module: 'lib', outcome: 'ok' }), 1);
    assert.equal(total(samples, 'graft_swaps_total', { module: '*', outcome: 'failed' }), 1);
    assert.equal(total(samples, 'graft_config_version'), 4);
    assert.equal(total(samples, 'graft_generation'), 2);
    assert.equal(total(samples, 'graft_workers'), 0);
    assert.equal(total(samples, 'process_start_time_seconds', { role: 'master' }) > 0, true, 'kept, though prom-client would omit it when aggregating');
  });

  test("a successor's counters go on from what its predecessor carried over", async () => {
    const first = new GraftMetrics(noWorkers, log);
    first.observe(reload('ok', 500));
    first.observe({ type: 'worker-restart', reason: 'crash', generation: 2, worker: 1, workerPid: 1 });
    const second = new GraftMetrics(noWorkers, log, await first.carried());
    second.observe(reload('ok', 700));
    const third = new GraftMetrics(noWorkers, log, await second.carried());
    const samples = parseMetrics((await third.scrape()).text);
    assert.equal(total(samples, 'graft_reloads_total', { outcome: 'ok' }), 2);
    assert.equal(total(samples, 'graft_reload_duration_seconds_count'), 2);
    assert.ok(Math.abs(total(samples, 'graft_reload_duration_seconds_sum') - 1.2) < 1e-9);
    assert.equal(total(samples, 'graft_worker_restarts_total', { reason: 'crash' }), 1);
    assert.equal(select1(samples, 'graft_build_info'), 1, 'gauges are not carried: one build info');
  });
});

describe('recent activity', () => {
  test('newest first, bounded, carried whole to a successor', () => {
    const activity = new Activity();
    for (let i = 0; i < 30; i++) activity.observe(reload('ok', i));
    const recent = activity.snapshot();
    assert.equal(recent.reloads.length, 20);
    assert.equal(recent.reloads[0]!.durationMs, 29);
    assert.deepEqual(new Activity(recent).snapshot().reloads, recent.reloads);
  });
});

function select1(samples: ReturnType<typeof parseMetrics>, name: string): number {
  return samples.filter((s) => s.name === name).length;
}
