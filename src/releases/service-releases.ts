import { join } from 'node:path';
import { GraftError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { EntryBuilds, isTypeScript } from '../pool/entry-builds.js';
import type { ReleaseCode } from '../pool/worker-pool.js';
import type { FleetAddress } from '../net/fleet-url.js';
import { entryInRelease, ReleaseStore } from './release-store.js';

export interface ServiceReleases extends ReleaseCode {
  /** undefined when the entry lies outside the service's directory (nothing to release). */
  store: ReleaseStore | undefined;
}

/** How a master fetches a release it does not hold: from the fleet's Object Store, on a connection of its own for the while. */
export function fetchRelease(fleet: FleetAddress, service: string): (id: string) => Promise<Uint8Array> {
  return async (id) => {
    const { FleetStore } = await import('../fleet/fleet-store.js');
    const { ReleaseObjects } = await import('./release-objects.js');
    const store = await FleetStore.open(fleet, { name: `graft fetch ${service}` });
    try {
      return await (await ReleaseObjects.open(store.nc)).get(service, id);
    } finally {
      await store.close();
    }
  };
}

/**
 * A service's releases live in `<its directory>/.graft/releases/<service>`:
 * inside the directory, so a release resolves packages from its
 * node_modules; per service, since two services may share a directory.
 */
export function serviceReleases(o: { cwd: string; entry: string; service: string; keep: number; compiles: boolean; log: Logger }): ServiceReleases {
  const entry = entryInRelease(o.cwd, o.entry);
  const store = entry === undefined ? undefined : new ReleaseStore(join(o.cwd, '.graft', 'releases', o.service), entry, o.keep);
  const live = store?.live();
  if (live) o.log.info('starting on the live release', { release: live.id, liveAt: live.liveAt });
  return {
    store,
    first: live ? store!.release(live.id) : undefined,
    // Checked against its digest at every generation that runs it (the one check a release gets per use), then its kept build.
    async code(release) {
      if (!store) throw new GraftError('GRAFT_RELEASE_NO_ENTRY', `the service's entry ${o.entry} is outside its directory ${o.cwd}: it has no releases`);
      store.verify(release.id);
      if (!o.compiles || !isTypeScript(release.entry)) return { version: release.id };
      const built = await new EntryBuilds(release.entry, store.buildDir(release.id), o.log).buildKept();
      if (built.reused) o.log.info('release build reused', { release: release.id, codeVersion: built.version });
      return built;
    },
  };
}
