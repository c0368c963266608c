import type { ConnectionStatus } from '../core/reconnect.js';
import type { MasterStatus } from '../master/master-status.js';
import { formatBytes } from './args.js';

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function megabytes(bytes: number): string {
  return bytes > 0 ? `${(bytes / 1048576).toFixed(1)} MB` : '-';
}

/** The flags a master runs with, as a user would write them; empty for the defaults. */
function describePolicy(policy: MasterStatus['master']['policy'] | undefined): string {
  if (!policy) return ''; // a master of an older graft
  const parts: string[] = [];
  if (policy.maxMemoryBytes !== undefined) parts.push(`--max-memory ${megabytes(policy.maxMemoryBytes)}`);
  if (policy.restartDelayMs > 0) parts.push(`--restart-delay ${policy.restartDelayMs}ms`);
  if (policy.maxRestarts !== undefined) parts.push(`--max-restarts ${policy.maxRestarts} --min-uptime ${policy.minUptimeMs}ms`);
  return parts.join(' ');
}

/** One line for every connection a master keeps (a store, a bus, the fleet's store): one shape for all. */
function connectionLine(kind: string, c: ConnectionStatus, detail = ''): string {
  const state = c.connected ? 'connected' : 'DISCONNECTED';
  const attempts = c.attempts ? `  ${c.attempts} failed attempt${c.attempts === 1 ? '' : 's'}` : '';
  const error = c.lastError ? `: ${c.lastError.code} ${c.lastError.error}` : '';
  return `${kind} ${c.url}  ${state} since ${c.since}${detail ? `  ${detail}` : ''}${attempts}${error}`;
}

export function formatStatus(status: MasterStatus): string {
  const m = status.master;
  const lines = [
    `master ${m.pid}${m.keeper ? ` (keeper ${m.keeper})` : ''}  ${m.state}${m.degraded?.length ? ' DEGRADED' : ''}  up ${duration(m.uptimeMs)}  generation ${m.generation ?? '-'}  workers ${m.actual === m.desired ? m.desired : `${m.actual} of ${m.desired}`}  port ${m.port}`,
    `entry ${m.entry}${m.release ? `  release ${m.release}` : ''}${m.code ? `  code version ${m.code}` : ''}`,
  ];
  // A master of an older graft answers without these.
  if (m.name) lines.push(`service ${m.name}  logs ${m.logs?.kind === 'file' ? `${m.logs.file} (rotated at ${formatBytes(m.logs.maxBytes)}, ${m.logs.maxFiles} files)` : 'to stdout and stderr'}`);
  // A master from before this field (mid-upgrade) has none.
  if (m.memory) lines.push(`memory rss ${megabytes(m.memory.rss)}  heap ${megabytes(m.memory.heapUsed)} of ${megabytes(m.memory.heapTotal)}`);
  if (m.config) lines.push(`config version ${m.config.version} (${m.config.hash}) from ${m.config.source}`);
  for (const store of m.config?.stores ?? []) lines.push(connectionLine('store', store, `revision ${store.revision ?? '-'}${store.fromCache ? ' (from the cache file)' : ''}`));
  if (m.config?.lastRejected) {
    const r = m.config.lastRejected;
    lines.push(`last rejected config ${r.at} (attempt v${r.version}, ${r.source}): ${r.code ?? ''} ${r.error ?? ''}`);
  }
  for (const bus of m.bus ?? []) lines.push(connectionLine('bus', bus));
  if (m.http) lines.push(`${m.http.metrics ? `metrics ${m.http.metrics}  ` : ''}status page ${m.http.dashboard}`);
  if (m.fleet) lines.push(connectionLine('fleet', m.fleet, `${m.fleet.registered ? 'registered' : 'NOT REGISTERED (yet)'} as ${m.fleet.key}`));
  if (m.busy) lines.push(`running: ${m.busy}${m.queued ? `, ${m.queued} queued behind it` : ''}`);
  const policy = describePolicy(m.policy);
  if (policy) lines.push(`restart policy: ${policy}`);
  for (const d of m.degraded ?? []) lines.push(`DEGRADED since ${d.since} (${d.code}): ${d.message}`);
  if (m.crashLoop) lines.push('WARNING: workers are crash-looping (GRAFT_CRASH_LOOP); see the master log');
  if (m.lastReload) {
    lines.push(
      m.lastReload.outcome === 'ok'
        ? `last reload ${m.lastReload.at} (${m.lastReload.reason}): ok, generation ${m.lastReload.generation}`
        : `last reload ${m.lastReload.at} (${m.lastReload.reason}): ${m.lastReload.outcome === 'abandoned' ? 'ABANDONED' : 'FAILED'} ${m.lastReload.code ?? ''} ${m.lastReload.error ?? ''}`,
    );
  }
  const header = ['PID', 'GEN', 'WORKER', 'STATE', 'UPTIME', 'RSS', 'OPEN', 'IN-FLIGHT', 'SERVED', 'RESTARTS', 'CONFIG'];
  const rows = status.workers.map((w) => [
    String(w.pid),
    String(w.generation),
    String(w.index),
    w.state,
    duration(w.uptimeMs),
    megabytes(w.rss),
    String(w.connections),
    String(w.inFlight),
    String(w.served),
    String(w.restarts),
    w.configVersion ? `v${w.configVersion}` : '-',
  ]);
  if (status.workers.some((w) => w.modules?.length)) {
    header.push('CODE');
    status.workers.forEach((w, i) => rows[i]!.push(w.modules?.join(',') ?? '-'));
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  lines.push('', fmt(header), ...rows.map(fmt));
  return lines.join('\n');
}
