import type { KV } from '@nats-io/kv';
import { errorFields } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/** What a master tells the fleet about itself: enough to see whether every host runs the same thing. */
export interface HostRecord {
  service: string;
  host: string;
  pid: number;
  port: number;
  state: string;
  /** Every wanted worker runs and answers, and no command is half done. */
  ready: boolean;
  workers: { desired: number; ready: number };
  generation: number | undefined;
  /** codeVersion(): comparable across hosts. */
  code: string | undefined;
  /** The release the live generation runs (`graft deploy`), if any. */
  release?: string | undefined;
  /** The entry, relative to the service's directory: where `graft fleet deploy` finds the top of a release's files. */
  entry?: string | undefined;
  config: { version: number; hash: string } | undefined;
  /** The command the master carries out now. */
  busy: string | undefined;
  masterGeneration: number | undefined;
  /** It takes orders (--bus) on the fleet's NATS server: `graft fleet` can roll out to it. */
  takesOrders: boolean;
  /** Ids of the bus orders this master carried out lately, newest last. */
  orders: string[];
  startedAt: string;
  at: string;
}

export function registryKey(service: string, host: string): string {
  return `${service}.${host}`;
}

/**
 * A master's entry in the fleet registry: written at start, after every
 * command, and as a heartbeat (the bucket's TTL removes a master that
 * stopped heartbeating). Writes never overlap and never fail the master: a
 * store that is down is retried at the next beat.
 */
export class Registration {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private failing = false;
  /** The last write went through. */
  written = false;

  constructor(
    private readonly kv: KV,
    private readonly snapshot: () => HostRecord,
    private readonly log: Logger,
    private readonly beatMs: number,
  ) {}

  start(): Promise<void> {
    this.timer = setInterval(() => void this.update(), this.beatMs);
    this.timer.unref();
    return this.update();
  }

  /** Write the master's state now (coalesced with a write in flight). */
  update(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.writing) {
      this.again = true;
      return this.writing;
    }
    this.writing = (async () => {
      do {
        this.again = false;
        const record = this.snapshot();
        try {
          await this.kv.put(registryKey(record.service, record.host), JSON.stringify(record));
          if (this.failing) this.log.info('fleet registration written again', { host: record.host });
          this.failing = false;
          this.written = true;
        } catch (err) {
          if (!this.failing) this.log.warn('fleet registration failed; retrying at the next heartbeat', { host: record.host, ...errorFields(err) });
          this.failing = true;
          this.written = false;
        }
      } while (this.again && !this.closed);
    })().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  /** Stop heartbeating; `deregister` removes the entry (not after a handover: the successor owns it now). */
  async close(deregister: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true; // no write starts after this; the one in flight finishes before the delete
    await this.writing;
    if (deregister) {
      const record = this.snapshot();
      await this.kv.delete(registryKey(record.service, record.host)).catch(() => {});
    }
  }
}

/** Every registered master of a service, by host name. */
export async function listHosts(kv: KV, service: string): Promise<HostRecord[]> {
  // A key written while the listing runs (a heartbeat, the entry after a command) can be listed twice.
  const keys = new Set<string>();
  for await (const key of await kv.keys(`${service}.*`)) keys.add(key);
  const records: HostRecord[] = [];
  for (const key of [...keys].sort()) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT') continue;
    try {
      records.push(entry.json<HostRecord>());
    } catch {
      // an entry another tool wrote: not a graft master
    }
  }
  return records;
}
