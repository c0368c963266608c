import type { HistoryEntry } from '../config/history.js';
import type { Logger } from '../core/log.js';
import { graftVersion } from '../core/version.js';
import type { ListenerRegistry } from '../net/listeners.js';
import type { RecentActivity } from '../observe/activity.js';
import { Dashboard } from '../observe/dashboard.js';
import { HttpEndpoint, type HttpAddress, type Route } from '../observe/http-endpoint.js';
import type { GraftMetrics, MetricSet, MetricsView } from '../observe/metrics.js';
import type { Observers } from '../observe/observers.js';
import type { MasterStatus } from './master-status.js';

/** What the master's HTTP endpoints read from it. */
export interface MasterHttpOptions {
  service: string;
  /** --metrics: Prometheus at /metrics, and the status page at / unless --dashboard puts it elsewhere. */
  metrics: HttpAddress | undefined;
  /** --dashboard: the live status page. */
  dashboard: HttpAddress | undefined;
  view: MetricsView;
  status(): MasterStatus;
  history(): HistoryEntry[];
  activity(): RecentActivity;
  observers: Observers;
  log: Logger;
}

/**
 * The master's own HTTP servers, --metrics and --dashboard: one server per
 * address. prom-client loads only for a master started with --metrics. A
 * predecessor's sockets and metric counters carry on in its successor.
 */
export class MasterHttp {
  private metrics: GraftMetrics | undefined;
  private dashboard: Dashboard<MasterStatus> | undefined;
  private readonly endpoints: HttpEndpoint[] = [];

  constructor(private readonly options: MasterHttpOptions) {}

  /** Listen (on the predecessor's sockets where it held them); a taken port fails with one line. */
  async open(listeners: ListenerRegistry, carried: MetricSet | undefined): Promise<void> {
    const { metrics, dashboard, observers, log } = this.options;
    if (!metrics && !dashboard) return;
    const servers = new Map<string, { address: HttpAddress; flags: string[]; routes: Record<string, Route> }>();
    const serve = (address: HttpAddress, flag: string, routes: Record<string, Route>) => {
      const server = servers.get(address.display) ?? { address, flags: [], routes: {} };
      server.flags.push(flag);
      Object.assign(server.routes, routes);
      servers.set(address.display, server);
    };
    if (metrics) {
      const { GraftMetrics } = await import('../observe/metrics.js');
      const graftMetrics = new GraftMetrics(this.options.view, log, carried);
      this.metrics = graftMetrics;
      observers.add(graftMetrics.observe);
      serve(metrics, '--metrics', {
        '/metrics': async (_req, res) => {
          const { contentType, text } = await graftMetrics.scrape();
          res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
          res.end(text);
        },
      });
    }
    this.dashboard = new Dashboard(
      () => ({
        service: this.options.service,
        graft: { version: graftVersion(), node: process.version },
        status: this.options.status(),
        history: this.options.history().slice(-20).reverse(),
        activity: this.options.activity(),
        at: new Date().toISOString(),
      }),
      this.options.service,
    );
    observers.add(this.dashboard.changed);
    if (dashboard) serve(dashboard, '--dashboard', this.dashboard.routes);
    else serve(metrics!, '--metrics', this.dashboard.routes);
    for (const { address, flags, routes } of servers.values()) {
      const endpoint = new HttpEndpoint(address, [...new Set(flags)].join(' and '), routes, log);
      await endpoint.listen(listeners);
      this.endpoints.push(endpoint);
      log.info(`serving ${Object.keys(routes).includes('/metrics') ? 'metrics' : 'the status page'}`, { address: address.display, paths: Object.keys(routes) });
    }
  }

  /** The metric counters a successor carries on from. */
  carried(): Promise<MetricSet> | undefined {
    return this.metrics?.carried();
  }

  /** Where Prometheus scrapes and where the status page is, once served. */
  urls(): { metrics?: string; dashboard: string } | undefined {
    if (!this.endpoints.length) return undefined;
    const { metrics, dashboard } = this.options;
    const url = (a: HttpAddress, path: string) => `http://${a.display}${path}`;
    return { ...(metrics ? { metrics: url(metrics, '/metrics') } : {}), dashboard: url((dashboard ?? metrics)!, '/') };
  }

  close(): void {
    this.dashboard?.close();
    for (const endpoint of this.endpoints.splice(0)) endpoint.close();
  }
}
