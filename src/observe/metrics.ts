/**
 * The master's Prometheus metrics (`--metrics`). This module, and prom-client
 * with it, is imported only by a master started with --metrics.
 *
 * A scrape asks every worker over the IPC channel for its registry as JSON,
 * labels each sample with the worker's place and generation, and merges that
 * with the master's own registry: graft's metrics and the master's process
 * metrics (labelled role="master").
 */
import client from 'prom-client';
import { errorFields, GraftError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { moduleName } from '../core/ipc.js';
import { graftVersion } from '../core/version.js';
import type { MasterEvent } from './observers.js';
import type { WorkerRequestBody, WorkerReply } from '../core/ipc.js';

/** A registry's metrics as plain data (what getMetricsAsJSON gives and what crosses IPC). */
export type MetricSet = Awaited<ReturnType<client.Registry['getMetricsAsJSON']>>;

/** A worker as a scrape sees it: where it stands, and the IPC channel that asks it for its registry. */
export interface ScrapedWorker {
  readonly state: string;
  readonly index: number;
  readonly generation: number;
  readonly pid: number | undefined;
  request(message: WorkerRequestBody, timeoutMs: number): Promise<WorkerReply>;
}

/** What the master's metrics read from the master when scraped. */
export interface MetricsView {
  /** Every worker the master knows, in any state. */
  workers(): ScrapedWorker[];
  configVersion(): number | undefined;
  generation(): number | undefined;
  /** Masters the keeper restarted after a crash. */
  masterRestarts?(): number;
}

/** How long a worker may take to hand over its metrics before a scrape goes on without it. */
const WORKER_SCRAPE_TIMEOUT_MS = 2000;

const WORKER_STATES = ['starting', 'ready', 'draining'] as const;

export class GraftMetrics {
  readonly registry = new client.Registry();
  private readonly reloads: client.Counter<'trigger' | 'outcome'>;
  private readonly reloadSeconds: client.Histogram;
  private readonly restarts: client.Counter<'reason'>;
  private readonly rollbacks: client.Counter<'reason'>;
  private readonly rejections: client.Counter;
  private readonly swaps: client.Counter<'module' | 'outcome'>;
  private readonly skipped: client.Counter;

  /**
   * @param inherited graft's counters and histograms as a predecessor master
   *   counted them (`graft upgrade`): added to this master's own, so they go on.
   */
  constructor(
    private readonly view: MetricsView,
    private readonly log: Logger,
    private readonly inherited: MetricSet = [],
  ) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, labels: { role: 'master' } });
    this.reloads = new client.Counter({ name: 'graft_reloads_total', help: 'Worker reloads, by who asked (the first asker of a coalesced reload) and outcome (ok, failed, abandoned).', labelNames: ['trigger', 'outcome'], registers });
    this.reloadSeconds = new client.Histogram({
      name: 'graft_reload_duration_seconds',
      help: 'From a reload starting to its answer (new generation serving and the old one out of the round-robin, or the failure); every reload.',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers,
    });
    this.rollbacks = new client.Counter({ name: 'graft_rollbacks_total', help: 'New generations rolled back by the health gate, by reason (crash, errors, health-url).', labelNames: ['reason'], registers });
    this.restarts = new client.Counter({ name: 'graft_worker_restarts_total', help: 'Workers replaced by a fresh one, by reason (crash, heartbeat, config, memory).', labelNames: ['reason'], registers });
    this.rejections = new client.Counter({ name: 'graft_config_rejections_total', help: 'Config versions rejected (a source that does not parse, a schema a worker refused, a failed reload); the live config stayed.', registers });
    this.swaps = new client.Counter({
      name: 'graft_swaps_total',
      help: 'In-place code swaps, by module (the one swapped or named; * for a change to files) and outcome (ok, failed, reload, unchanged).',
      labelNames: ['module', 'outcome'],
      registers,
    });
    this.skipped = new client.Counter({ name: 'graft_metrics_skipped_workers_total', help: 'Workers left out of a scrape because they did not answer in time.', registers });
    new client.Gauge({
      name: 'graft_workers',
      help: 'Worker processes the master knows, by state.',
      labelNames: ['state'],
      registers,
      collect(this: client.Gauge<'state'>) {
        const workers = view.workers();
        for (const state of WORKER_STATES) this.set({ state }, workers.filter((w) => w.state === state).length);
      },
    });
    new client.Counter({
      name: 'graft_master_restarts_total',
      help: 'Masters the keeper started after the one in control crashed (the service kept its sockets).',
      registers,
      collect(this: client.Counter) {
        this.reset();
        this.inc(view.masterRestarts?.() ?? 0);
      },
    });
    valueGauge(registers, 'graft_config_version', 'The config version the workers run.', () => view.configVersion());
    valueGauge(registers, 'graft_generation', 'The worker generation that serves.', () => view.generation());
    new client.Gauge({ name: 'graft_build_info', help: 'The graft and Node versions of the master (always 1).', labelNames: ['version', 'node'], registers }).set({ version: graftVersion(), node: process.version }, 1);
  }

  /** An observer of master events: counts what happened. */
  readonly observe = (event: MasterEvent): void => {
    switch (event.type) {
      case 'reload':
        this.reloads.inc({ trigger: event.trigger, outcome: event.outcome });
        this.reloadSeconds.observe(event.durationMs / 1000);
        break;
      case 'worker-restart':
        this.restarts.inc({ reason: event.reason });
        break;
      case 'rollback':
        this.rollbacks.inc({ reason: event.reason });
        break;
      case 'config':
        if (!event.accepted) this.rejections.inc();
        break;
      case 'swap': {
        // A swap counts once per module it moved to a new generation.
        const modules = event.outcome === 'ok' && event.modules.length > 0 ? event.modules.map(moduleName) : [event.modules[0] ?? '*'];
        for (const module of modules) this.swaps.inc({ module, outcome: event.outcome });
        break;
      }
    }
  };

  /** The whole service in Prometheus text format: the master's registry and every worker's that answered. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    const workers = this.view.workers().filter((w) => w.state === 'ready' || w.state === 'draining');
    const sets = await Promise.all(workers.map((w) => this.fromWorker(w)));
    const answered = sets.filter((s): s is MetricSet => s !== undefined);
    if (answered.length < sets.length) this.skipped.inc(sets.length - answered.length);
    const merged = merge([await this.registry.getMetricsAsJSON(), this.inherited, ...answered]);
    return { contentType: merged.contentType, text: await merged.metrics() };
  }

  /** graft's own counters and histograms, inherited ones included: what a successor master carries on. */
  async carried(): Promise<MetricSet> {
    // The restart count is the master's own (it carries it on itself), not one to add up.
    const own = (await this.registry.getMetricsAsJSON()).filter((m) => m.name.startsWith('graft_') && m.name !== 'graft_master_restarts_total' && ['counter', 'histogram'].includes(String(m.type)));
    return merge([own, this.inherited]).getMetricsAsJSON();
  }

  private async fromWorker(w: ScrapedWorker): Promise<MetricSet | undefined> {
    try {
      const reply = await w.request({ graft: 'metrics' }, WORKER_SCRAPE_TIMEOUT_MS);
      if (!reply.ok) throw GraftError.from(reply.error);
      const labels = { worker: String(w.index), generation: String(w.generation) };
      return (reply.value as MetricSet).map((metric) => ({ ...metric, values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, ...labels } })) }));
    } catch (err) {
      this.log.warn('metrics: a worker left out of the scrape', { generation: w.generation, worker: w.index, workerPid: w.pid, ...errorFields(err) });
      return undefined;
    }
  }
}

/**
 * Sets of metrics as one registry. The samples of different processes carry
 * different labels, so nothing is summed across processes; samples with the
 * same name and labels (a counter and its inherited count) add up. Every
 * metric is summed, whatever its own aggregator says: prom-client's cluster
 * defaults would drop process_start_time_seconds or keep one worker's version.
 */
function merge(sets: MetricSet[]): client.Registry {
  return client.AggregatorRegistry.aggregate(sets.map((set) => set.map((m) => ({ ...m, aggregator: 'sum' }))));
}

/** A gauge read at each scrape; absent until the value is known. */
function valueGauge(registers: client.Registry[], name: string, help: string, read: () => number | undefined): void {
  new client.Gauge({
    name,
    help,
    registers,
    collect(this: client.Gauge) {
      const value = read();
      if (value !== undefined) this.set(value);
    },
  });
}
