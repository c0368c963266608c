import { contentHash, mergeLayers } from './snapshot.js';
import type { ConfigSource } from './sources/source.js';

export interface Loaded {
  data: Record<string, unknown>;
  hash: string;
  /** Each source's layer as it was read, lowest first: what `committed` hands back to its source. */
  layers: Array<Record<string, unknown>>;
}

/**
 * Reads every source and merges them, lowest layer first. Watching coalesces
 * a burst of events (one editor save is often three) into one callback after
 * a quiet period.
 */
export class ConfigLoader {
  constructor(
    readonly sources: ConfigSource[],
    private readonly quietMs = 50,
  ) {}

  /** Throws the first source's error; nothing is merged from a broken layer. */
  async load(): Promise<Loaded> {
    const layers: Array<Record<string, unknown>> = [];
    for (const source of this.sources) layers.push(await source.load());
    const data = mergeLayers(layers);
    return { data, hash: contentHash(data), layers };
  }

  /** What this load read is live: sources that keep a last good copy keep this one, not whatever was read since. */
  committed(loaded: Loaded): void {
    this.sources.forEach((source, i) => {
      const layer = loaded.layers[i];
      if (layer) source.committed?.(layer);
    });
  }

  /** Release every source's connections (store sources); the loader is not used again. */
  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close?.()));
  }

  watch(onChange: (sources: string[]) => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    const touched = new Set<string>();
    const note = (name: string, quietMs: number) => {
      touched.add(name);
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        const names = [...touched];
        touched.clear();
        onChange(names);
      }, quietMs);
    };
    const stops = this.sources.map((s) => s.watch?.((name) => note(name, s.quietMs ?? this.quietMs)) ?? (() => {}));
    return () => {
      if (timer) clearTimeout(timer);
      for (const stop of stops) stop();
    };
  }
}
