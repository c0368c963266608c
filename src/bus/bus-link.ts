import { errorFields, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Backoff } from '../core/backoff.js';
import type { BusUrl } from '../net/bus-url.js';
import { unreachable } from './order-send.js';

/** One open connection of a transport: resolves `closed` when it is lost for good. */
export interface BusSession {
  readonly closed: Promise<Error | undefined>;
  close(): Promise<void>;
}

/** What `graft status` shows of one bus connection. */
export interface BusStatus {
  transport: string;
  url: string;
  connected: boolean;
  /** When the current connection (or the current outage) began. */
  since: string;
  lastError?: string;
}

/**
 * A connection kept open forever: opened at once, and after a failure or a
 * loss opened again after a jittered backoff, logging each connect and
 * disconnect. The master starts even while the bus is down (a service must
 * not depend on its broker to serve): it warns with GRAFT_BUS_UNREACHABLE and
 * keeps trying. A transport that reconnects by itself (NATS) reports its own
 * drops and returns through `setConnected`.
 */
export class BusLink {
  private session: BusSession | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly backoff = new Backoff();
  private state: BusStatus;
  private loop: Promise<void> | undefined;
  /** Failed attempts since the last connection: the first is a warning, then every tenth. */
  private failures = 0;

  constructor(
    readonly bus: BusUrl,
    private readonly open: () => Promise<BusSession>,
    private readonly log: Logger,
  ) {
    this.state = { transport: bus.scheme, url: bus.display, connected: false, since: new Date().toISOString() };
  }

  start(): void {
    this.loop ??= this.run();
  }

  status(): BusStatus {
    return { ...this.state };
  }

  /** For a client that reconnects by itself: its drops and returns. */
  setConnected(connected: boolean, error?: unknown): void {
    if (connected === this.state.connected) return;
    this.state = { ...this.state, connected, since: new Date().toISOString(), ...(error ? { lastError: errorMessage(error) } : {}) };
    if (connected) this.log.info('bus connected', { transport: this.bus.scheme, url: this.bus.display });
    else this.log.warn('bus disconnected; reconnecting', { code: 'GRAFT_BUS_UNREACHABLE', transport: this.bus.scheme, url: this.bus.display, ...(error ? { error: errorMessage(error) } : {}) });
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const session = this.session;
    this.session = undefined;
    await session?.close().catch(() => {});
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const session = await this.open();
        if (this.stopped) {
          await session.close().catch(() => {});
          return;
        }
        this.session = session;
        this.backoff.reset();
        this.failures = 0;
        this.setConnected(true);
        const lost = await session.closed;
        this.session = undefined;
        if (this.stopped) return;
        this.setConnected(false, lost ?? new Error('the connection closed'));
      } catch (err) {
        if (this.stopped) return;
        const error = unreachable(this.bus, err);
        const auth = error.code === 'GRAFT_STORE_AUTH';
        this.state = { ...this.state, connected: false, lastError: error.message };
        this.failures++;
        const level = this.failures === 1 || this.failures % 10 === 0 ? 'warn' : 'debug';
        this.log[level](auth ? 'bus refused the credentials; retrying' : 'bus unreachable; retrying (the service serves meanwhile, without bus orders)', {
          transport: this.bus.scheme,
          url: this.bus.display,
          ...errorFields(error),
          attempts: this.failures,
        });
      }
      await this.pause(this.backoff.next());
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
