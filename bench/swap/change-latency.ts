/**
 * Part 1: from a file change to the new code serving in every worker.
 *
 * - graft --swap --watch: the write of version.ts → the master's
 *   "swap applied in every worker" log line (every worker answered that the
 *   new module generation is committed).
 * - graft --watch without --swap (its process-level reload of the same app):
 *   the write → the master's "reload: generation committed" (every new worker
 *   ready), then the old generation is left to retire before the next change.
 * - PM2 7, `pm2 reload` of the same app (-i N) after the write: the write → the
 *   last new process listening with the new version (the app records it), which
 *   is the earliest moment PM2 could be said to serve the new code everywhere,
 *   and the write → `pm2 reload` returned (when its user learns it is done).
 *
 * After each change, fresh-connection GETs check that every answer carries the
 * new version. Every wait is bounded; a change that does not complete in time
 * is recorded as failed and the run goes on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tempDir } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import { log } from '../lib/log.js';
import { tsxImport } from '../lib/paths.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { sleep, waitUntil } from '../lib/wait.js';
import { confirmVersion, makeProject, type Confirmation } from './project.js';

export interface ChangeOptions {
  workers: number;
  /** Changes measured. */
  changes: number;
  /** Changes made first and not measured. */
  warmup: number;
  /** Pause after a change is confirmed, before the next write. */
  gapMs: number;
  /** Longest wait for one change to apply. */
  timeoutMs: number;
}

export interface ChangeSeries {
  name: string;
  /** What "done" means for this series. */
  done: string;
  /** ms from the write to done, per measured change that completed. */
  samples: number[];
  /** Another end point of the same changes (PM2: its command returned; graft reload: last new process listening). */
  alt?: { done: string; samples: number[] };
  failures: string[];
  /** Fresh-connection GETs after done that did not carry the new version. */
  stale: number;
  requests: number;
  /** Fewest distinct workers seen answering with the new version after a change. */
  minPids: number;
  firstStale?: string;
  /** Worker processes started after the first generation (a swap should start none). */
  newProcesses?: number;
  /** Swaps or reloads beyond one per change (a change applied twice). */
  extra?: number;
}

function newSeries(name: string, done: string): ChangeSeries {
  return { name, done, samples: [], failures: [], stale: 0, requests: 0, minPids: Number.POSITIVE_INFINITY };
}

function account(series: ChangeSeries, c: Confirmation): void {
  series.stale += c.stale;
  series.requests += c.requests;
  series.minPids = Math.min(series.minPids, c.pids);
  if (c.firstStale && !series.firstStale) series.firstStale = c.firstStale;
}

const confirmRequests = (workers: number) => 2 * workers;

// ------------------------------------------------------------ graft --swap

export async function swapSeries(o: ChangeOptions): Promise<ChangeSeries> {
  const series = newSeries('graft --swap --watch', 'the master logs "swap applied in every worker"');
  const project = makeProject('bench-swap-watch-');
  const g = await Graft.start({ entry: project.handler, workers: o.workers, args: ['--swap', '--watch'], cwd: project.dir });
  const url = g.url;
  try {
    if (!(await g.waitFor((l) => l.record?.msg === 'watching for code changes', 0, 10_000))) throw new Error(`graft --watch did not start watching:\n${g.tail()}`);
    const workersAtStart = g.workersStarted;
    let generation = 1;
    let applied = 0;
    const total = o.warmup + o.changes;
    for (let i = 1; i <= total; i++) {
      const measured = i > o.warmup;
      const version = `s${i}`;
      const from = g.lines.length;
      const t0 = performance.now();
      project.writeVersion(version);
      const hit = await g.waitFor(
        (l) =>
          l.record?.role === 'master' &&
          (l.record.msg === 'swap applied in every worker' ||
            l.record.msg === 'swap rejected; the live generation keeps serving' ||
            l.record.msg === 'swap cannot apply in place; falling back to a worker reload'),
        from,
        o.timeoutMs,
      );
      if (!hit || hit.line.record?.msg !== 'swap applied in every worker') {
        const why = hit ? hit.line.text : `no answer within ${o.timeoutMs} ms`;
        if (measured) series.failures.push(`change ${i}: ${why}`);
        log(`swap change ${i}: FAILED ${why}`);
        continue;
      }
      applied++;
      const r = hit.line.record;
      const modules = Array.isArray(r.modules) ? (r.modules as string[]) : [];
      const files = Array.isArray(r.files) ? (r.files as string[]) : [];
      const m = /@(\d+)$/.exec(modules[0] ?? '');
      const gen = m ? Number(m[1]) : NaN;
      const ms = hit.line.at - t0;
      if (!files.includes(project.version) || gen !== generation + 1) {
        const why = `unexpected swap record (files ${JSON.stringify(files)}, modules ${JSON.stringify(modules)}, expected generation ${generation + 1})`;
        if (measured) series.failures.push(`change ${i}: ${why}`);
        log(`swap change ${i}: ${why}`);
      } else if (measured) series.samples.push(ms);
      if (Number.isFinite(gen)) generation = gen;
      const c = await confirmVersion(url, version, confirmRequests(o.workers));
      if (measured) account(series, c);
      if (i % 10 === 0 || i === 1 || c.stale > 0) {
        log(`swap change ${i}/${total}${measured ? '' : ' (warm-up)'}: ${ms.toFixed(0)} ms, generation ${gen}, ${c.pids} workers answer ${version}, stale ${c.stale}`);
      }
      await sleep(o.gapMs);
    }
    // Every "swap applied" line, the last change's late duplicates included.
    await sleep(500);
    const appliedLines = g.lines.filter((l) => l.record?.role === 'master' && l.record.msg === 'swap applied in every worker').length;
    series.extra = appliedLines - applied;
    series.newProcesses = g.workersStarted - workersAtStart;
  } finally {
    await g.stop();
  }
  return series;
}

// ------------------------------------------------------ boots file (peers)

interface Boot {
  at: number;
  pid: number;
  version: string;
}

function readBoots(file: string): Boot[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [at, pid, version] = line.split(' ');
      return { at: Number(at), pid: Number(pid), version: version ?? '' };
    });
}

/** Wall-clock ms when the `workers`-th process serving `version` started listening, once there are that many. */
async function allServing(file: string, version: string, workers: number, timeoutMs: number): Promise<number | undefined> {
  let at: number | undefined;
  await waitUntil(
    () => {
      const boots = readBoots(file).filter((b) => b.version === version);
      if (new Set(boots.map((b) => b.pid)).size < workers) return false;
      at = Math.max(...boots.map((b) => b.at));
      return true;
    },
    timeoutMs,
    20,
  );
  return at;
}

// --------------------------------------------- graft --watch (no --swap)

export async function graftReloadSeries(o: ChangeOptions): Promise<ChangeSeries> {
  const series = newSeries('graft --watch (worker reload)', 'the master logs "reload: generation committed" (every new worker ready)');
  series.alt = { done: 'the last new worker listens with the new version', samples: [] };
  const project = makeProject('bench-swap-reload-');
  const boots = join(tempDir('bench-swap-boots-'), 'boots.txt');
  const g = await Graft.start({ entry: project.server, workers: o.workers, args: ['--watch'], cwd: project.dir, env: { BOOTS_FILE: boots } });
  const url = g.url;
  try {
    if (!(await g.waitFor((l) => l.record?.msg === 'watching for code changes', 0, 10_000))) throw new Error(`graft --watch did not start watching:\n${g.tail()}`);
    let generation = 1;
    let completed = 0;
    const total = o.warmup + o.changes;
    for (let i = 1; i <= total; i++) {
      const measured = i > o.warmup;
      const version = `r${i}`;
      const from = g.lines.length;
      const t0 = performance.now();
      const wall0 = Date.now();
      project.writeVersion(version);
      const hit = await g.waitFor(
        (l) => l.record?.role === 'master' && l.record.msg === 'reload: generation committed' && typeof l.record.generation === 'number' && l.record.generation > generation,
        from,
        o.timeoutMs,
      );
      if (!hit) {
        if (measured) series.failures.push(`change ${i}: no committed generation within ${o.timeoutMs} ms`);
        log(`graft reload change ${i}: FAILED (no commit in time)\n${g.tail(10)}`);
        continue;
      }
      completed++;
      const previous = generation;
      generation = hit.line.record!.generation as number;
      const ms = hit.line.at - t0;
      const served = await allServing(boots, version, o.workers, 10_000);
      if (measured) {
        if (generation !== previous + 1) series.failures.push(`change ${i}: generation ${previous} → ${generation} (more than one reload)`);
        else series.samples.push(ms);
        if (served !== undefined) series.alt.samples.push(served - wall0);
      }
      const c = await confirmVersion(url, version, confirmRequests(o.workers));
      if (measured) account(series, c);
      log(`graft reload change ${i}/${total}${measured ? '' : ' (warm-up)'}: ${ms.toFixed(0)} ms, generation ${generation}, ${c.pids} workers answer ${version}, stale ${c.stale}`);
      // One reload at a time: the previous generation retires before the next change.
      const retired = await g.waitFor((l) => l.record?.msg === 'generation retired' && l.record.generation === previous, from, 60_000);
      if (!retired) log(`graft reload change ${i}: generation ${previous} did not retire within 60 s`);
      await sleep(o.gapMs);
    }
    await sleep(500);
    // The first commit is the boot.
    series.extra = g.lines.filter((l) => l.record?.role === 'master' && l.record.msg === 'reload: generation committed').length - 1 - completed;
  } finally {
    await g.stop();
  }
  return series;
}

// ----------------------------------------------------------------- PM2 7

export async function pm2Series(o: ChangeOptions): Promise<ChangeSeries> {
  const series = newSeries('PM2 `pm2 reload`', 'the last new process listens with the new version');
  series.alt = { done: '`pm2 reload` returned', samples: [] };
  const project = makeProject('bench-swap-pm2-app-');
  const boots = join(tempDir('bench-swap-boots-'), 'boots.txt');
  // PM2 would run a .ts file with bun; node with tsx, like graft's workers, is the same app.
  const pm2 = await Pm2.start({ app: 'bench-swap', script: project.server, workers: o.workers, nodeArgs: `--import ${tsxImport}`, env: { BOOTS_FILE: boots } });
  const url = pm2.url;
  try {
    if ((await allServing(boots, 'v0', o.workers, 30_000)) === undefined) throw new Error(`PM2's ${o.workers} workers did not come up:\n${readFileSync(boots, 'utf8')}`);
    const total = o.warmup + o.changes;
    for (let i = 1; i <= total; i++) {
      const measured = i > o.warmup;
      const version = `p${i}`;
      const t0 = performance.now();
      const wall0 = Date.now();
      project.writeVersion(version);
      const r = await pm2.command(['reload', pm2.app], o.timeoutMs);
      const served = await allServing(boots, version, o.workers, 15_000);
      if (r.code !== 0 || served === undefined) {
        const why = `pm2 reload exit ${r.code}${r.timedOut ? ' (timed out)' : ''}, ${served === undefined ? 'new version not served by every worker' : 'served'}: ${(r.stderr || r.stdout).trim().slice(-200)}`;
        if (measured) series.failures.push(`change ${i}: ${why}`);
        log(`PM2 change ${i}: FAILED ${why}`);
        continue;
      }
      const ms = served - wall0;
      if (measured) {
        series.samples.push(ms);
        series.alt.samples.push(r.endedAt - t0);
      }
      const c = await confirmVersion(url, version, confirmRequests(o.workers));
      if (measured) account(series, c);
      log(`PM2 change ${i}/${total}${measured ? '' : ' (warm-up)'}: all serving after ${ms.toFixed(0)} ms, command returned after ${(r.endedAt - t0).toFixed(0)} ms, ${c.pids} workers answer ${version}, stale ${c.stale}`);
      await sleep(o.gapMs);
    }
  } finally {
    // Every process that ever served, from the app's own records: none may be left.
    pm2.track(readBoots(boots).map((b) => b.pid));
    await pm2.stop();
  }
  return series;
}
