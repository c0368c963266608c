import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RecentActivity } from './activity.js';
import type { HistoryEntry } from '../config/history.js';
import { dashboardPage } from './dashboard-page.js';
import type { Route } from './http-endpoint.js';

/** Everything the live status page shows, as one JSON document; `status` is what `graft status --json` gives. */
export interface DashboardState<Status> {
  service: string;
  graft: { version: string; node: string };
  status: Status;
  /** Recent config versions, newest first, accepted and rejected. */
  history: HistoryEntry[];
  /** Recent reloads, swaps and worker replacements, newest first. */
  activity: RecentActivity;
  at: string;
}

/** How often an open page gets the state while nothing happens (memory, in-flight and uptime move on their own). */
const TICK_MS = 1000;
/** Events that come together (a reload's commit, its config, a replacement) make one push. */
const SETTLE_MS = 50;

/**
 * The live status page: one HTML document with its CSS and script inline,
 * the state as JSON, and a Server-Sent Events stream that pushes the state
 * every second and as soon as something happens. Read-only: nothing here
 * changes the service.
 */
export class Dashboard<Status> {
  private readonly streams = new Set<ServerResponse>();
  private tick: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private readonly page: string;

  constructor(
    private readonly state: () => DashboardState<Status>,
    service: string,
  ) {
    this.page = dashboardPage(service);
  }

  readonly routes: Record<string, Route> = {
    '/': (_req, res) => {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        // Nothing is loaded from anywhere: the page is one document talking to this server.
        'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
        'X-Frame-Options': 'DENY',
      });
      res.end(this.page);
    },
    '/api/status': (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(this.state()));
    },
    '/api/events': (req, res) => this.stream(req, res),
  };

  /** Something happened in the master: open pages get the new state now rather than at the next tick. */
  readonly changed = (): void => {
    if (this.streams.size === 0 || this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.push();
    }, SETTLE_MS);
    this.settle.unref();
  };

  /** End every open stream (the pages reconnect: to a successor master after an upgrade). */
  close(): void {
    clearInterval(this.tick);
    clearTimeout(this.settle);
    this.tick = this.settle = undefined;
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    // A page that lost its stream (an upgrade, a restart) tries again after a second.
    res.write(`retry: 1000\n\n`);
    this.streams.add(res);
    this.send(res, JSON.stringify(this.state()));
    req.once('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) {
        clearInterval(this.tick);
        this.tick = undefined;
      }
    });
    if (!this.tick) {
      this.tick = setInterval(() => this.push(), TICK_MS);
      this.tick.unref();
    }
  }

  private push(): void {
    if (this.streams.size === 0) return;
    const data = JSON.stringify(this.state());
    for (const res of this.streams) this.send(res, data);
  }

  private send(res: ServerResponse, data: string): void {
    res.write(`data: ${data}\n\n`);
  }
}
