import { setTimeout as sleep } from 'node:timers/promises';
import type { Backoff } from './backoff.js';
import { GraftError, errorFields } from './errors.js';
import type { Fields, Logger } from './log.js';

/** What `graft status` shows of every connection graft keeps open: a bus, a config store, the fleet's store. */
export interface ConnectionStatus {
  /** The address, without its password. */
  url: string;
  connected: boolean;
  /** When `connected` last changed (ISO time). */
  since: string;
  /** Failed attempts since the last connection (losing one is not an attempt). */
  attempts: number;
  /** The last failure, while it lasts: cleared once connected again. */
  lastError?: { code: string; error: string };
}

/** One connection of a ReconnectLoop, as its session sees it. */
export interface ReconnectSession {
  /** Aborted by close() (the session closes its connection and returns), and once the session is over. */
  readonly signal: AbortSignal;
  /** Resolves when `signal` aborts. */
  readonly ended: Promise<void>;
  /** Through: connected and doing its work. The failures so far are forgotten and the backoff starts over. */
  connected(fields?: Fields): void;
  /** A client that reconnects by itself (NATS) lost its connection; it retries, the session goes on. */
  lost(err: unknown): void;
  /** One more failed attempt of such a client's own reconnect. */
  failed(err?: unknown): void;
}

export interface ReconnectOptions {
  /** Names the connection in log lines: `bus`, `config store`, `fleet store`. */
  what: string;
  url: string;
  /** Logs with the fields that say which connection (the owner's child logger). */
  log: Logger;
  /** What every line about the connection carries as it is now (a config store's revision). */
  fields?: () => Fields;
  backoff: Backoff;
  /** One connection: connect, call `connected`, work; return or throw when it is lost for good or the signal aborts. */
  session(session: ReconnectSession): Promise<void>;
  /** A failure that is not a GraftError yet, with its stable code. */
  classify(err: unknown): GraftError;
  /** What goes on meanwhile, said with each warning (`the service serves meanwhile, …`). */
  meanwhile?: string;
  /** Told every failure (the first load of a config store gives up early on wrong credentials). */
  onFailure?(error: GraftError): void;
}

/** Every tenth failed attempt in a row warns again, so a long outage is not one line an hour ago. */
const REMIND_EVERY = 10;
/** How long close() waits for a session to end: a client stuck in a connect must not hold up a stop. */
const CLOSE_WAIT_MS = 3000;

/**
 * A connection kept open for as long as its owner lives: the one reconnect
 * loop of graft (bus links, config stores, fleet membership). A session
 * connects, says `connected`, and returns or throws when the connection is
 * lost; the loop then waits a jittered backoff and runs a new session, until
 * close(). A service never waits for it: it starts and serves while the
 * other side is down.
 *
 * Where the client reconnects by itself (NATS), the session does not end at
 * a drop: it reports the client's own `lost`, `failed` and `connected`, so
 * status and logs read the same, and the loop adds no second retry on top.
 *
 * One rule for the log: losing a connection warns; a failed attempt warns
 * when it fails differently from the last warning (the first failure always
 * does) and at every tenth attempt in a row, else it is a debug line;
 * connecting is an info line.
 */
export class ReconnectLoop {
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private current: ReconnectSession | undefined;
  private isConnected = false;
  private since = new Date().toISOString();
  private attempts = 0;
  private error: GraftError | undefined;
  /** The failure last logged as a warning (code and message), until the next connection. */
  private warned: string | undefined;

  constructor(private readonly options: ReconnectOptions) {}

  start(): void {
    if (!this.stop.signal.aborted) this.running ??= this.run();
  }

  status(): ConnectionStatus {
    return {
      url: this.options.url,
      connected: this.isConnected,
      since: this.since,
      attempts: this.attempts,
      ...(this.error ? { lastError: { code: this.error.code, error: this.error.message } } : {}),
    };
  }

  /** The last failure, while it lasts. */
  get lastError(): GraftError | undefined {
    return this.error;
  }

  /** Ends the session (its signal aborts) or the wait, and returns once the session has closed its connection. */
  async close(): Promise<void> {
    this.stop.abort();
    const running = this.running;
    if (!running) return;
    const ended = await Promise.race([running.then(() => true), sleep(CLOSE_WAIT_MS, false, { ref: false })]);
    if (!ended) this.options.log.warn(`${this.options.what} did not close within ${CLOSE_WAIT_MS / 1000} s; left behind`);
  }

  private async run(): Promise<void> {
    const stop = this.stop.signal;
    while (!stop.aborted) {
      const ending = new AbortController();
      const end = () => ending.abort();
      stop.addEventListener('abort', end, { once: true });
      const session = this.session(ending.signal, new Promise((resolve) => ending.signal.addEventListener('abort', () => resolve(), { once: true })));
      this.current = session;
      let failure: unknown;
      try {
        await this.options.session(session);
        failure = new Error('the connection closed');
      } catch (err) {
        failure = err;
      } finally {
        this.current = undefined;
        stop.removeEventListener('abort', end);
        ending.abort();
      }
      if (stop.aborted) break;
      const waitMs = this.options.backoff.next();
      this.failure(failure, { retryInMs: waitMs });
      await sleep(waitMs, undefined, { signal: stop }).catch(() => {});
    }
  }

  /** A session's handle: what it reports counts only while it is the current one. */
  private session(signal: AbortSignal, ended: Promise<void>): ReconnectSession {
    const live = (): boolean => this.current === session && !signal.aborted;
    const session: ReconnectSession = {
      signal,
      ended,
      connected: (fields) => live() && this.connected(fields),
      lost: (err) => live() && this.isConnected && this.failure(err, {}),
      failed: (err) => live() && !this.isConnected && this.failure(err ?? this.error ?? new Error('not connected'), {}),
    };
    return session;
  }

  private connected(fields: Fields = {}): void {
    this.options.backoff.reset();
    const after = this.attempts;
    this.attempts = 0;
    this.error = undefined;
    this.warned = undefined;
    if (!this.isConnected) {
      this.isConnected = true;
      this.since = new Date().toISOString();
    }
    this.options.log.info(`${this.options.what} connected`, { ...this.options.fields?.(), ...fields, ...(after ? { afterAttempts: after } : {}) });
  }

  private failure(err: unknown, fields: Fields): void {
    const error = err instanceof GraftError ? err : this.options.classify(err);
    const { what, meanwhile, log } = this.options;
    fields = { ...this.options.fields?.(), ...fields };
    this.error = error;
    const key = `${error.code} ${error.message}`;
    const also = meanwhile ? ` (${meanwhile})` : '';
    if (this.isConnected) {
      this.isConnected = false;
      this.since = new Date().toISOString();
      this.warned = key;
      log.warn(`${what} disconnected; reconnecting${also}`, { ...fields, ...errorFields(error) });
    } else {
      this.attempts++;
      const warn = key !== this.warned || this.attempts % REMIND_EVERY === 0;
      if (warn) this.warned = key;
      const message = error.code === 'GRAFT_STORE_AUTH' ? `${what} refused the credentials; retrying` : `${what} unreachable; retrying`;
      log[warn ? 'warn' : 'debug'](`${message}${also}`, { attempts: this.attempts, ...fields, ...errorFields(error) });
    }
    this.options.onFailure?.(error);
  }
}
