import { errorFields } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { defaultConfigFiles } from './default-files.js';
import { ConfigLoader } from './loader.js';
import { issuesError, validateConfigSync } from './schema.js';
import { contentHash, mergeLayers } from './snapshot.js';
import { EnvSource } from './sources/env-source.js';
import { FileSource } from './sources/file-source.js';
import type { ConfigStore } from './store.js';
import { listenerFailureFields } from './subscriptions.js';

/**
 * A process with no graft master (`node app.js` importing graft) loads and
 * watches its own config on the first read of config.current: the files named
 * in GRAFT_CONFIG (comma-separated) or the default file, then CONFIG__* env.
 * A change that fails to parse or validate is logged and not applied.
 */
export function enableStandalone(store: ConfigStore<unknown>): void {
  store.setLoader(() => {
    store.setLoader(undefined);
    const files = process.env.GRAFT_CONFIG ? process.env.GRAFT_CONFIG.split(',').filter(Boolean) : defaultConfigFiles(process.cwd());
    const fileSources = files.map((f) => new FileSource(f));
    const env = new EnvSource();
    const data = mergeLayers([...fileSources.map((s) => s.loadSync()), env.loadSync()]);
    const first = validateConfigSync(store.declaredSchema, data);
    if ('issues' in first) throw issuesError(first.issues, files.join(', ') || 'the environment');
    store.adopt(first.value, { version: 1, hash: contentHash(data), source: files[0] ?? 'env' });
    watch(store, new ConfigLoader([...fileSources, env]));
  });
}

/** Changes go through the store's slot: one at a time, and a burst reads the newest files once. */
function watch(store: ConfigStore<unknown>, loader: ConfigLoader): void {
  const log = createLogger({ role: 'app' });
  loader.watch((sources) => {
    const before = store.version;
    store.apply({ source: sources.join(','), read: async () => (await loader.load()).data }).then(
      (failures) => {
        if (store.version === before) return;
        log.info('config applied', { configVersion: store.version, hash: store.hash, changed: store.snapshotInfo.changed, source: sources });
        for (const f of failures) log.error('config listener failed', listenerFailureFields(store.version, f));
      },
      (err: unknown) => log.error('config change rejected; the live config stays', { configVersion: store.version, source: sources, ...errorFields(err) }),
    );
  });
}
