import { resolve } from 'node:path';
import { sendControl } from '../control/client.js';
import { GraftError } from '../core/errors.js';
import type { DeployOutcome } from '../releases/deployments.js';
import type { ReleaseRecord } from '../releases/release-store.js';
import { parse } from './args.js';
import { locateMaster } from './locate.js';

/** `graft deploy`, `graft rollback` and `graft releases`: the service's code as releases (src/releases). */
const common = { socket: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } } as const;

/** A release id (hex, as `graft releases` prints it, or a prefix of one) is told apart from a service name. */
const RELEASE_ID = /^[0-9a-f]{4,32}$/;

export async function deploy(argv: string[]): Promise<number> {
  const { values, positionals } = parse('deploy', argv, common, 2);
  const [source, service] = positionals;
  if (source === undefined) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', "graft deploy needs the release's files: a directory or a .tar.gz, e.g. `graft deploy ./build`");
  }
  const socket = locateMaster({ socket: values.socket, name: values.name, target: service }).socket;
  const result = (await sendControl(socket, { cmd: 'deploy', source: resolve(source) })) as DeployOutcome;
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    const from = result.previous ? `release ${result.previous}` : "the service's entry on disk";
    console.log(`deployed release ${result.release}: generation ${result.generation} serves (was ${from})${result.health === 'passed' ? '; healthy' : ''}`);
  }
  return 0;
}

export async function rollback(argv: string[]): Promise<number> {
  const { values, positionals } = parse('rollback', argv, { ...common, 'with-config': { type: 'boolean' }, disk: { type: 'boolean' } }, 2);
  // `graft rollback [name] [id]`: one positional is an id when it looks like one.
  const [service, id] = positionals.length === 2 ? positionals : positionals[0] !== undefined && RELEASE_ID.test(positionals[0]) ? [undefined, positionals[0]] : [positionals[0], undefined];
  const socket = locateMaster({ socket: values.socket, name: values.name, target: service }).socket;
  if (values.disk && id) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft rollback takes a release id or --disk (the entry on disk), not both');
  const result = (await sendControl(socket, { cmd: 'rollback', ...(id ? { id } : {}), ...(values['with-config'] ? { withConfig: true } : {}), ...(values.disk ? { toDisk: true } : {}) })) as DeployOutcome;
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else if (result.release === 'entry on disk') console.log(`back on the entry on disk: generation ${result.generation} serves${result.previous ? ` (was release ${result.previous})` : ''}`);
  else console.log(`rolled back to release ${result.release}: generation ${result.generation} serves${result.previous ? ` (was release ${result.previous})` : ''}${result.config !== undefined ? `, with its config (version ${result.config})` : ''}`);
  return 0;
}

export async function releases(argv: string[]): Promise<number> {
  const { values, positionals } = parse('releases', argv, common, 1);
  const socket = locateMaster({ socket: values.socket, name: values.name, target: positionals[0] }).socket;
  const result = (await sendControl(socket, { cmd: 'releases' })) as { live: string | undefined; releases: ReleaseRecord[] };
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  if (result.releases.length === 0) {
    console.log('no releases yet: `graft deploy DIR` stages one');
    return 0;
  }
  // Newest first, as the master lists them.
  const rows = result.releases.map((r) => [r.id, lastEvent(r), r.by, r.configVersion === undefined ? '-' : `v${r.configVersion}`, r.outcome, r.reason ?? '']);
  const head = ['RELEASE', 'WHEN', 'BY', 'CONFIG', 'OUTCOME', 'REASON'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [head, ...rows]) console.log(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  return 0;
}

/** When a release's newest event happened (the list's order): it ended, went live or was staged. */
function lastEvent(r: ReleaseRecord): string {
  if (r.outcome === 'failed' || r.outcome === 'rolled back') return r.endedAt ?? r.liveAt ?? r.stagedAt;
  if (r.outcome === 'staged') return r.stagedAt;
  return r.liveAt ?? r.stagedAt;
}
