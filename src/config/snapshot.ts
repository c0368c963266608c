import { shortHash } from '../core/hash.js';

/**
 * An immutable, versioned view of the whole configuration. Reads on the hot
 * path are plain property reads on a deep-frozen object.
 */
export interface Snapshot<T = Record<string, unknown>> {
  /** Monotonic: every accepted change gets the next number. */
  readonly version: number;
  /** Content hash of the merged sources (12 hex digits). */
  readonly hash: string;
  readonly data: T;
  /** Key paths that differ from the previous version. */
  readonly changed: readonly string[];
  /** What produced it: a file, `apply`, `env`… */
  readonly source: string;
  readonly at: string;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** JSON with sorted keys, so equal content hashes equally whatever the key order. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]));
    }
    return v;
  });
}

export function contentHash(value: unknown): string {
  return shortHash(stableStringify(value) ?? '');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Leaf key paths whose value differs (lists compare as one value at their path). */
export function changedPaths(previous: unknown, next: unknown, prefix = ''): string[] {
  if (isPlainObject(previous) && isPlainObject(next)) {
    const keys = new Set([...Object.keys(previous), ...Object.keys(next)]);
    const out: string[] = [];
    for (const key of [...keys].sort()) {
      out.push(...changedPaths(previous[key], next[key], prefix ? `${prefix}.${key}` : key));
    }
    return out;
  }
  if (stableStringify(previous) === stableStringify(next)) return [];
  return [prefix];
}

/** Later layers win; objects merge key by key, everything else is replaced whole. */
export function mergeLayers(layers: Array<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) mergeInto(out, layer);
  return out;
}

function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isPlainObject(existing) && isPlainObject(value)) mergeInto(existing, value);
    else target[key] = isPlainObject(value) ? mergeLayers([value]) : value;
  }
}
