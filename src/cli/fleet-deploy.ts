import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create } from 'tar';
import { validName } from '../bus/names.js';
import { MAX_HEALTHY_MS } from '../bus/order.js';
import { GraftError } from '../core/errors.js';
import { FleetStore } from '../fleet/fleet-store.js';
import { listHosts } from '../fleet/registration.js';
import { parseFleetUrl } from '../net/fleet-url.js';
import { ReleaseObjects } from '../releases/release-objects.js';
import { prepareRelease } from '../releases/release-store.js';
import { integer, parse, seconds } from './args.js';
import { fleetRollout, rolling } from './fleet-command.js';

/**
 * `graft fleet deploy <dir|tarball>`: the release is named by the digest of
 * its files, uploaded once to the fleet's Object Store, then rolled out host
 * by host as a signed order naming only that id. Each host fetches it, checks
 * it, deploys it and passes its health gate before the next host starts; on
 * the first failure the hosts already moved go back to the release each ran
 * before. Afterwards the bucket keeps the releases a host runs and the newest
 * --keep-releases others.
 */
export async function fleetDeploy(argv: string[]): Promise<number> {
  const { values, positionals } = parse('fleet deploy', argv, { ...rolling, 'min-healthy-time': { type: 'string' }, 'keep-releases': { type: 'string' } }, 1);
  const source = positionals[0];
  if (source === undefined) throw new GraftError('GRAFT_BAD_ARGUMENT', "graft fleet deploy needs the release's files: a directory or a .tar.gz, e.g. `graft fleet deploy ./build --fleet nats://… --name api --bus-key fleet.key`");
  if (!values.fleet || !values.name) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft fleet deploy needs --fleet nats://host:port and --name SERVICE');
  const service = validName('--name', values.name);
  const healthyMs = values['min-healthy-time'] !== undefined ? seconds('--min-healthy-time', values['min-healthy-time']) : undefined;
  if (healthyMs !== undefined && healthyMs > MAX_HEALTHY_MS) throw new GraftError('GRAFT_BAD_ARGUMENT', `--min-healthy-time is at most a day (86400 seconds), got ${values['min-healthy-time']}`);
  const keep = integer('--keep-releases', values['keep-releases'], 1, 1000) ?? 5;
  const work = mkdtempSync(join(tmpdir(), 'graft-release-'));
  let id: string;
  try {
    const store = await FleetStore.open(parseFleetUrl(values.fleet));
    try {
      const hosts = await listHosts(await store.registry(), service);
      if (hosts.length === 0) throw new GraftError('GRAFT_FLEET_EMPTY', `no master of service ${service} is registered at ${store.address.display}`);
      const entries = [...new Set(hosts.map((h) => h.entry))];
      if (entries.length !== 1 || entries[0] === undefined) {
        throw new GraftError('GRAFT_BAD_ARGUMENT', `the hosts of ${service} do not agree on one entry inside their service directory (${entries.map((e) => e ?? 'outside').join(', ')}): a release cannot serve them all`);
      }
      const prepared = await prepareRelease(resolve(source), entries[0], join(work, 'files'));
      id = prepared.id;
      const tarball = join(work, 'release.tgz');
      await create({ gzip: true, file: tarball, cwd: prepared.root, portable: true }, readdirSync(prepared.root));
      const bytes = readFileSync(tarball);
      const { uploaded } = await (await ReleaseObjects.open(store.nc)).put(service, id, bytes);
      if (!values.json) process.stderr.write(`release ${id}: ${uploaded ? `uploaded (${bytes.length} bytes)` : 'already in the fleet'}\n`);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const rest = Object.entries(values).flatMap(([k, v]) => (k in rolling ? (v === true ? [`--${k}`] : typeof v === 'string' ? [`--${k}`, v] : []) : []));
  return fleetRollout('fleet deploy', 'deploy', rest, {
    order: { action: 'deploy', release: id, ...(healthyMs !== undefined ? { healthyMs } : {}) },
    after: async (_report, store) => {
      // Retention: what a host runs stays, and the newest others up to --keep-releases.
      const running = new Set((await listHosts(await store.registry(), service)).flatMap((h) => (h.release ? [h.release] : [])));
      const gone = await (await ReleaseObjects.open(store.nc)).prune(service, running, keep);
      if (gone.length && !values.json) process.stderr.write(`releases removed from the fleet's bucket: ${gone.join(', ')}\n`);
    },
  });
}
