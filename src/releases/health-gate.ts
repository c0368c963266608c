import http from 'node:http';
import { GraftError, errorMessage } from '../core/errors.js';
import type { MasterEvent } from '../observe/observers.js';
import type { WorkerStatus } from '../pool/worker-process.js';

export interface HealthOptions {
  /** --min-healthy-time: how long a new generation must stay healthy after it went live (0: no gate). */
  minHealthyMs: number;
  /** --health-url PATH: asked during the gate through the service's port (a new connection each time, so each worker in turn). */
  url: string | undefined;
  /** --max-error-rate: above this share of 5xx responses, the generation is unhealthy. */
  maxErrorRate: number;
}

/** What the gate watches: the generation that just went live. */
export interface GateSubject {
  generation: number;
  port: number;
  /** Every worker the master knows (the gate counts the generation's). */
  workers(): WorkerStatus[];
  /** Subscribe to the master's events; returns the unsubscribe. */
  events(listener: (event: MasterEvent) => void): () => void;
  /** The master began stopping: the gate gives up. */
  signal: AbortSignal;
  /** Events of the master from before the gate began (while the reload that made the generation ran). */
  before?: MasterEvent[];
}

/** Fewer responses than this say nothing about an error rate before the gate's end. */
const EARLY_SAMPLE = 20;
const FINAL_SAMPLE = 5;

/**
 * The health gate after ready: a generation is healthy only once it served
 * for --min-healthy-time with no worker crashing or being replaced (a crash,
 * a blocked event loop, --max-memory), its 5xx share at or under
 * --max-error-rate, and every --health-url probe answered below 400.
 * Resolves when the time is up and all held; rejects with GRAFT_UNHEALTHY
 * and the first reason as soon as one does not.
 */
export function healthGate(options: HealthOptions, subject: GateSubject): Promise<{ served: number; serverErrors: number }> {
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    let ended = false;
    const timers: NodeJS.Timeout[] = [];
    const end = (reason?: string) => {
      if (ended) return;
      ended = true;
      for (const t of timers) clearTimeout(t), clearInterval(t);
      unsubscribe();
      subject.signal.removeEventListener('abort', onAbort);
      if (reason === undefined) resolve(counts());
      else {
        const within = `${Math.round((Date.now() - startedAt) / 100) / 10} s after it went live`;
        reject(new GraftError('GRAFT_UNHEALTHY', `generation ${subject.generation} turned unhealthy ${within} (--min-healthy-time ${options.minHealthyMs / 1000} s): ${reason}`));
      }
    };
    const counts = () => {
      let served = 0;
      let serverErrors = 0;
      for (const w of subject.workers()) {
        if (w.generation !== subject.generation) continue;
        served += w.served;
        serverErrors += w.serverErrors ?? 0;
      }
      return { served, serverErrors };
    };
    const errorRate = (least: number): string | undefined => {
      const { served, serverErrors } = counts();
      if (served < least || serverErrors / served <= options.maxErrorRate) return undefined;
      return `${serverErrors} of its ${served} responses were 5xx (${Math.round((serverErrors / served) * 100)}%, over --max-error-rate ${Math.round(options.maxErrorRate * 100)}%)`;
    };
    const onEvent = (event: MasterEvent) => {
      if ((event.type !== 'worker-restart' && event.type !== 'worker-over-memory') || event.generation !== subject.generation) return;
      if (event.type === 'worker-restart') end(`worker ${event.workerPid} was replaced (${event.reason === 'heartbeat' ? 'its event loop blocked' : event.reason === 'memory' ? 'over --max-memory' : 'it exited'})`);
      if (event.type === 'worker-over-memory') end(`worker ${event.workerPid} stayed over --max-memory`);
    };
    const unsubscribe = subject.events(onEvent);
    // The workers the generation went live with: one that goes away (even unreplaced: --max-restarts used up) is a failure.
    const started = new Set(subject.workers().filter((w) => w.generation === subject.generation).map((w) => w.pid));
    const vanished = (): string | undefined => {
      const now = new Map(subject.workers().map((w) => [w.pid, w]));
      for (const pid of started) {
        const w = now.get(pid);
        if (!w || (w.state !== 'ready' && w.state !== 'starting')) return `worker ${pid} ${w ? `is ${w.state}` : 'exited'}`;
      }
      return undefined;
    };
    const onAbort = () => {
      if (ended) return;
      ended = true;
      for (const t of timers) clearTimeout(t), clearInterval(t);
      unsubscribe();
      reject(new GraftError('GRAFT_STOPPING', `the master is stopping; the health gate of generation ${subject.generation} was given up`));
    };
    subject.signal.addEventListener('abort', onAbort, { once: true });
    if (subject.signal.aborted) return onAbort();
    for (const event of subject.before ?? []) onEvent(event);
    if (ended) return;
    const checkMs = Math.max(50, Math.min(250, options.minHealthyMs / 4));
    timers.push(
      setInterval(() => {
        const bad = vanished() ?? errorRate(EARLY_SAMPLE);
        if (bad) end(bad);
      }, checkMs),
    );
    if (options.url !== undefined) {
      const url = options.url;
      const probeMs = Math.max(100, Math.min(1000, options.minHealthyMs / 5));
      const probeOnce = () =>
        probe(subject.port, url).then(
          (failure) => {
            if (failure) end(failure);
          },
          () => {},
        );
      void probeOnce();
      timers.push(setInterval(() => void probeOnce(), probeMs));
    }
    timers.push(setTimeout(() => end(vanished() ?? errorRate(FINAL_SAMPLE)), options.minHealthyMs));
  });
}

/** One GET of the health URL on a connection of its own; what went wrong, or undefined. */
function probe(port: number, path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 2000, headers: { 'user-agent': 'graft-health-gate' } }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(status >= 400 ? `GET ${path} answered ${status}` : undefined);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', (err) => resolve(`GET ${path} failed: ${errorMessage(err)}`));
  });
}
