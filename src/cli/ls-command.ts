import { errorFields } from '../core/errors.js';
import type { LogTarget } from '../logs/service-log.js';
import { sendControl } from '../control/client.js';
import type { MasterStatus } from '../master/master-status.js';
import { listServices, type ServiceRecord } from '../registry/service-registry.js';
import { parse } from './args.js';
import { duration } from './status-table.js';

/** How long `graft ls` waits for each master: a busy or hung one is listed as not answering, not waited for. */
const ANSWER_MS = 1000;

export interface ServiceListing {
  name: string;
  pid: number;
  entry: string;
  cwd: string;
  socket: string;
  startedAt: string;
  uptimeMs: number;
  logs: LogTarget;
  answering: boolean;
  /** From the master's answer (the port as it serves now), or from the registry record when it does not answer. */
  port: number;
  state?: string;
  generation?: number | undefined;
  workers?: { ready: number; desired: number };
  configVersion?: number | undefined;
  error?: string;
}

/** `graft ls [--json]`: every service of this user, each master asked for its status at once. */
export async function ls(argv: string[]): Promise<number> {
  const { values } = parse('ls', argv, { json: { type: 'boolean' } }, 0);
  const listings = await Promise.all(listServices().map(listing));
  if (values.json) {
    console.log(JSON.stringify(listings, null, 2));
    return 0;
  }
  if (listings.length === 0) {
    console.log('no graft service is running');
    return 0;
  }
  const rows = listings.map((l) => [
    l.name,
    String(l.pid),
    l.answering ? l.state! : 'NOT ANSWERING',
    l.workers ? `${l.workers.ready}/${l.workers.desired}` : '-',
    String(l.generation ?? '-'),
    l.configVersion ? `v${l.configVersion}` : '-',
    duration(l.uptimeMs),
    String(l.port),
  ]);
  console.log(table(['NAME', 'PID', 'STATE', 'WORKERS', 'GEN', 'CONFIG', 'UPTIME', 'PORT'], rows));
  return 0;
}

async function listing(record: ServiceRecord): Promise<ServiceListing> {
  const base = {
    name: record.name,
    pid: record.pid,
    entry: record.entry,
    cwd: record.cwd,
    socket: record.socket,
    startedAt: record.startedAt,
    uptimeMs: Date.now() - Date.parse(record.startedAt),
    logs: record.logs,
  };
  try {
    const { master, workers } = (await sendControl(record.socket, { cmd: 'status' }, 500, ANSWER_MS)) as MasterStatus;
    const ready = workers.filter((w) => w.state === 'ready' && w.generation === master.generation).length;
    return {
      ...base,
      pid: master.pid,
      answering: true,
      port: master.port,
      state: master.state,
      generation: master.generation,
      workers: { ready, desired: master.desired },
      configVersion: master.config?.version,
    };
  } catch (err) {
    return { ...base, answering: false, port: record.port, error: errorFields(err).error };
  }
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
