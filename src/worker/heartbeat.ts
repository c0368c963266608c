import { swappables } from '../swap/swappable.js';
import { config, heartbeatMs, registry, runtime, send } from './runtime.js';

/** Report in-flight work, RSS, the config version and the code generations to the master. */
export function heartbeat(): void {
  if (!runtime.ready) return;
  const modules = swappables().map((h) => `${h.name}@${h.generation ?? '-'}`);
  send({ graft: 'heartbeat', ...registry.stats(), rss: process.memoryUsage.rss(), configVersion: config.loaded ? config.version : 0, ...(modules.length ? { modules } : {}) });
}

export function startHeartbeats(): void {
  heartbeat();
  setInterval(heartbeat, heartbeatMs).unref();
}
