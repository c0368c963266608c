import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RELEASE_ID } from '../bus/order.js';
import type { Command } from '../control/commands.js';
import { GraftError, errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MasterEvent, Observe, RollbackReason } from '../observe/observers.js';
import type { PoolChange, Release, ReloadOutcome } from '../pool/worker-pool.js';
import type { WorkerStatus } from '../pool/worker-process.js';
import { healthGate, type HealthOptions } from './health-gate.js';
import type { ReleaseRecord, ReleaseStore } from './release-store.js';

export interface DeployOutcome {
  release: string;
  generation: number;
  /** The release that served before (undefined: the service's entry as it is on disk). */
  previous: string | undefined;
  /** The release was staged before (the same files): nothing was copied. */
  existed?: boolean;
  /** The host ran it already (a rerun of a rollout): nothing changed, nothing to undo. */
  already?: boolean;
  /** How the health gate ended: passed, or not run (no --min-healthy-time). */
  health: 'passed' | 'not gated';
  /** `--with-config`: the config version the rollback put back. */
  config?: number;
}

export interface DeploymentsOptions {
  store: ReleaseStore;
  health: HealthOptions;
  /** A zero-downtime reload of the worker pool (logged and observed as every reload is). */
  reload: (reason: string, change: PoolChange) => Promise<ReloadOutcome>;
  /** The release the live generation runs. */
  liveRelease: () => string | undefined;
  /** The live generation. */
  generation: () => number;
  /** The config the service serves with now: its version and the `config apply --set` layer. */
  config: () => { version: number; overrides: Record<string, unknown> };
  /** Put the `--set` layer back as it was and apply the config (`graft rollback --with-config`). */
  restoreConfig: (overrides: Record<string, unknown>) => Promise<unknown>;
  port: () => number;
  workers: () => WorkerStatus[];
  events: (listener: (event: MasterEvent) => void) => () => void;
  observe: Observe;
  /** Aborted when the master begins stopping. */
  stopping: AbortSignal;
  /** A release's tarball from the fleet's Object Store (a master started with --fleet), for one this host does not hold. */
  fetch?: ((id: string) => Promise<Uint8Array>) | undefined;
  log: Logger;
}

/**
 * Moves the service from release to release: `graft deploy` stages one and
 * reloads onto it, then holds it to the health gate and rolls it back by
 * itself if it turns unhealthy; `graft rollback` reloads onto a release that
 * served before, already verified and built. Each runs as one command of the
 * master's arbiter.
 */
export class Deployments {
  constructor(private readonly o: DeploymentsOptions) {}

  list(): { live: string | undefined; releases: ReleaseRecord[] } {
    return { live: this.o.liveRelease(), releases: this.o.store.list() };
  }

  /** `source`: files given to `graft deploy`; `release`: an id a fleet order named. */
  async deploy(request: { source?: string | undefined; release?: string | undefined; minHealthyMs?: number | undefined }): Promise<DeployOutcome> {
    const { store, log } = this.o;
    const previous = this.o.liveRelease();
    if (request.release !== undefined && request.release === previous) {
      // A rerun of a rollout: this host is done, and there is nothing of this order to undo.
      return { release: previous, generation: this.o.generation(), previous: undefined, already: true, health: 'not gated' };
    }
    const { release, existed } = request.release !== undefined ? await this.obtain(request.release) : await store.stage(request.source!);
    const from = request.source ?? 'the fleet';
    log.info('release staged', { release: release.id, from, existed });
    if (previous === release.id) throw new GraftError('GRAFT_BAD_ARGUMENT', `release ${release.id} (the files in ${from}) is live already; nothing to deploy`);
    const health = { ...this.o.health, ...(request.minHealthyMs !== undefined ? { minHealthyMs: request.minHealthyMs } : {}) };
    const gated = health.minHealthyMs > 0;
    // Crashes of the new generation between its commit and the gate's start count too.
    const early = gated ? recordEvents(this.o.events) : undefined;
    let outcome: ReloadOutcome;
    try {
      outcome = await this.o.reload(`deploy ${release.id}`, { release });
    } catch (err) {
      early?.stop();
      if (errorFields(err).code !== 'GRAFT_STOPPING') store.ended(release.id, 'failed', errorFields(err).error);
      throw err;
    }
    // Until the gate has passed, the release served before is kept whatever --keep-releases says: it is where a rollback goes.
    store.wentLive(release.id, this.o.config(), gated ? [previous] : []);
    log.info('release live', { release: release.id, generation: outcome.generation, previous: previous ?? 'entry on disk' });
    if (!gated) return { release: release.id, generation: outcome.generation, previous, ...(existed ? { existed } : {}), health: 'not gated' };
    try {
      await healthGate(health, { generation: outcome.generation, port: this.o.port(), workers: this.o.workers, events: this.o.events, signal: this.o.stopping, before: early!.stop() });
    } catch (err) {
      if (err instanceof GraftError && err.code === 'GRAFT_UNHEALTHY') throw await this.rollBackUnhealthy(release, outcome.generation, previous, err);
      // The master stops before the gate passed: the next master starts on the release that served before, not on this ungated one.
      this.recordBack(release.id, previous, 'the master stopped before its health gate passed');
      throw err;
    }
    store.prune();
    log.info('release healthy', { release: release.id, generation: outcome.generation, minHealthyMs: health.minHealthyMs });
    return { release: release.id, generation: outcome.generation, previous, ...(existed ? { existed } : {}), health: 'passed' };
  }

  /** After a config change: the live release's record says which config it serves with. */
  configChanged(): void {
    const live = this.o.liveRelease();
    if (live) this.o.store.configChanged(live, this.o.config());
  }

  /** Back to `id`, the newest good release before the live one, or (toDisk) the entry on disk: one reload, nothing built again. */
  async rollback(id: string | undefined, toDisk = false, withConfig = false): Promise<DeployOutcome> {
    const { store, log } = this.o;
    const live = this.o.liveRelease();
    if (toDisk) {
      if (withConfig) throw new GraftError('GRAFT_BAD_ARGUMENT', 'the entry on disk has no recorded config: roll back to it without --with-config');
      if (live === undefined) return { release: 'entry on disk', generation: this.o.generation(), previous: undefined, already: true, health: 'not gated' };
      const outcome = await this.o.reload(`rollback from ${live} to the entry on disk`, { release: null });
      store.ended(live, 'rolled back', 'rolled back to the entry on disk');
      log.info('rolled back', { release: 'entry on disk', generation: outcome.generation, from: live });
      return { release: 'entry on disk', generation: outcome.generation, previous: live, health: 'not gated' };
    }
    const targetId = id ?? store.previousGood(live)?.id;
    if (targetId === undefined) {
      throw new GraftError('GRAFT_NO_PREVIOUS_RELEASE', `no good release ${live ? `before ${live} ` : ''}to roll back to; \`graft releases\` lists them`);
    }
    if (live !== undefined && live.startsWith(targetId)) {
      if (id !== undefined && RELEASE_ID.test(id)) return { release: live, generation: this.o.generation(), previous: undefined, already: true, health: 'not gated' }; // a fleet rollback's rerun
      throw new GraftError('GRAFT_BAD_ARGUMENT', `release ${live} is live already; nothing to roll back`);
    }
    // A release this host no longer holds (its directory deleted) comes back from the fleet's Object Store.
    const target = store.has(targetId) || !this.o.fetch || !RELEASE_ID.test(targetId) ? store.resolve(targetId) : (await this.obtain(targetId)).release;
    const paired = store.record(target.id)?.overrides;
    if (withConfig && paired === undefined) {
      throw new GraftError('GRAFT_BAD_ARGUMENT', `release ${target.id} has no recorded config (it never served): roll back to it without --with-config`);
    }
    const outcome = await this.o.reload(`rollback to ${target.id}`, { release: target });
    // Live first: the release now serving is never the one a prune removes.
    store.wentLive(target.id, withConfig ? {} : this.o.config());
    if (live) store.ended(live, 'rolled back', 'graft rollback');
    log.info('rolled back', { release: target.id, generation: outcome.generation, from: live });
    if (withConfig) {
      // Code first, then its config: the old code's schema is the one the old config was valid under.
      try {
        await this.o.restoreConfig(paired!);
      } catch (err) {
        throw new GraftError(
          errorFields(err).code === 'GRAFT_CONFIG_INVALID' ? 'GRAFT_CONFIG_INVALID' : 'GRAFT_CONFIG_APPLY_FAILED',
          `rolled back to release ${target.id} (generation ${outcome.generation} serves), but its config was not put back: ${errorFields(err).error}; the layer it served with: ${JSON.stringify(paired)}`,
          { cause: err },
        );
      }
      store.configChanged(target.id, this.o.config());
    }
    return { release: target.id, generation: outcome.generation, previous: live, health: 'not gated', ...(withConfig ? { config: this.o.config().version } : {}) };
  }

  /** A release by id: this host's copy, checked; else fetched from the fleet's Object Store and staged, its files checked against the id. */
  private async obtain(id: string): Promise<{ release: Release; existed: boolean }> {
    const { store, log } = this.o;
    if (store.has(id)) return { release: store.resolve(id), existed: true };
    if (!this.o.fetch) throw new GraftError('GRAFT_RELEASE_UNKNOWN', `release ${id} is not on this host, and this master has no fleet to fetch it from (--fleet)`);
    const tarball = await this.o.fetch(id);
    const file = join(store.root, `.fetched-${process.pid}-${id}.tgz`);
    mkdirSync(store.root, { recursive: true });
    writeFileSync(file, tarball);
    try {
      const staged = await store.stage(file, { expect: id, from: "the fleet's Object Store" });
      log.info('release fetched from the fleet', { release: id, bytes: tarball.length });
      return staged;
    } finally {
      rmSync(file, { force: true });
    }
  }

  /** The records say `release` ended and the one before serves (the next master starts there). */
  private recordBack(release: string, previous: string | undefined, why: string): void {
    const { store } = this.o;
    if (previous !== undefined && store.has(previous)) store.wentLive(previous, {});
    store.ended(release, 'rolled back', why);
  }

  /** The generation of `release` turned unhealthy: back to what served before (a release, or the entry on disk), and the error that says so. */
  private async rollBackUnhealthy(release: Release, generation: number, previous: string | undefined, unhealthy: GraftError): Promise<GraftError> {
    const { store, log } = this.o;
    const reason = rollbackReason(unhealthy.message);
    log.error('release unhealthy; rolling it back', { code: 'GRAFT_UNHEALTHY', release: release.id, generation, to: previous ?? 'entry on disk', error: unhealthy.message });
    let outcome: ReloadOutcome;
    try {
      const back = previous !== undefined ? store.resolve(previous) : null;
      // Recorded first: if the master stops during the rollback, the next one starts on the release that served before.
      this.recordBack(release.id, previous, unhealthy.message);
      outcome = await this.o.reload(`rollback: release ${release.id} unhealthy`, { release: back });
    } catch (err) {
      if (errorFields(err).code !== 'GRAFT_STOPPING') {
        // The unhealthy generation serves on: the records say so again, and so does the log; it is the operator's now.
        store.wentLive(release.id, {}, [previous]);
        log.error('the rollback failed; the unhealthy release keeps serving', { code: 'GRAFT_UNHEALTHY', release: release.id, generation, ...errorFields(err) });
      }
      return new GraftError('GRAFT_UNHEALTHY', `${unhealthy.message}; the rollback failed (${errorFields(err).error}), so release ${release.id} keeps serving`, { cause: err });
    }
    this.o.observe({ type: 'rollback', reason, generation, release: release.id, ...(previous ? { to: previous } : {}) });
    log.warn('release rolled back', { release: release.id, reason, generation: outcome.generation, to: previous ?? 'entry on disk' });
    return new GraftError(
      'GRAFT_ROLLED_BACK',
      `release ${release.id}: ${unhealthy.message}; rolled back to ${previous ? `release ${previous}` : "the service's entry on disk"} (generation ${outcome.generation} serves)`,
      { cause: unhealthy },
    );
  }
}

/**
 * One release change at a time: a deploy or rollback asked for while another
 * runs or waits would move the service from under the first's health gate.
 * The error to refuse `command` with, or undefined.
 */
export function releaseChangeUnderWay(command: Command, entries: Command[]): GraftError | undefined {
  if (command.kind !== 'deploy' && command.kind !== 'rollback') return undefined;
  const other = entries.find((c) => c.kind === 'deploy' || c.kind === 'rollback');
  if (!other) return undefined;
  const what = other.kind === 'deploy' ? `a deploy${other.source ? ` of ${other.source}` : other.release ? ` of release ${other.release}` : ''}` : 'a rollback';
  return new GraftError('GRAFT_DEPLOY_BUSY', `${what} is under way on this service; wait for its outcome, then deploy or roll back`);
}

/** Master events from now until stop(), which returns them: what happened while a reload ran, for the gate that follows it. */
function recordEvents(subscribe: DeploymentsOptions['events']): { stop(): MasterEvent[] } {
  const seen: MasterEvent[] = [];
  const off = subscribe((e) => seen.push(e));
  return {
    stop() {
      off();
      return seen;
    },
  };
}

function rollbackReason(message: string): RollbackReason {
  if (message.includes('5xx')) return 'errors';
  if (message.includes('GET ')) return 'health-url';
  return 'crash';
}
