import { GraftError } from '../core/errors.js';

/** Dotted key paths (`db.pool.max`) into plain config objects. */
export function splitPath(path: string): string[] {
  if (path === '') return [];
  const parts = path.split('.');
  if (parts.some((p) => p === '')) throw new GraftError('GRAFT_BAD_KEY_PATH', `key path ${JSON.stringify(path)} has an empty segment; write it like db.pool.max`);
  return parts;
}

export function getPath(value: unknown, path: string | string[]): unknown {
  let cur = value;
  for (const key of typeof path === 'string' ? splitPath(path) : path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

export function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = target;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      cur[key] = value;
      return;
    }
    const next = cur[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  });
}

/** True when a change at `changed` touches a subscriber of `watched` (same key, inside it, or a parent replaced). */
export function touches(watched: string, changed: string): boolean {
  if (watched === '' || watched === changed) return true;
  return changed.startsWith(watched + '.') || watched.startsWith(changed + '.');
}
