import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type ModuleType = 'module' | 'commonjs';

/**
 * Whether Node (and tsx) treats a source file as an ES module or as CommonJS:
 * `.mts`/`.mjs` and `.cts`/`.cjs` say it themselves; otherwise the nearest
 * package.json's `"type"` decides, CommonJS when it says nothing.
 */
export function moduleType(file: string): ModuleType {
  if (/\.m[jt]sx?$/.test(file)) return 'module';
  if (/\.c[jt]sx?$/.test(file)) return 'commonjs';
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      // no package.json here: look further up
    }
    if (text !== undefined) {
      try {
        return (JSON.parse(text) as { type?: unknown }).type === 'module' ? 'module' : 'commonjs';
      } catch {
        return 'commonjs'; // Node fails on it anyway, and says where
      }
    }
    if (dirname(dir) === dir) return 'commonjs';
  }
}
