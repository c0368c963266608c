import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The folders of src/, lowest first: a folder imports only folders before it
 * (and itself). This is README's Layout, as an order; a new folder is added here.
 */
const LAYERS = ['core', 'net', 'config', 'jobs', 'swap', 'logs', 'observe', 'worker', 'control', 'registry', 'pool', 'bus', 'fleet', 'releases', 'succession', 'master', 'cli', '.'];

const src = fileURLToPath(new URL('../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The top folder of a file of src/ ('.' for src/index.ts). */
function folderOf(file: string): string {
  const parts = relative(src, file).split(sep);
  return parts.length > 1 ? parts[0]! : '.';
}

/** Every relative import and re-export of a file, static or dynamic, type-only included. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => resolve(dirname(file), m[1]!));
}

test('every folder of src/ is in the layer order', () => {
  const folders = new Set(sources(src).map(folderOf));
  assert.deepEqual([...folders].filter((f) => !LAYERS.includes(f)), []);
});

test('no folder imports one above it, so no import circle between folders', () => {
  const upward: string[] = [];
  for (const file of sources(src)) {
    const from = folderOf(file);
    for (const target of imports(file)) {
      const to = folderOf(target);
      if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) upward.push(`${relative(src, file)} -> ${relative(src, target)}`);
    }
  }
  assert.deepEqual(upward, []);
});
