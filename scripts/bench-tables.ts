// The README's benchmark tables, copied from the results files the benches
// write, so no figure in the README is typed by hand. Each table sits
// between two markers:
//
//   <!-- results bench/fleet/RESULTS.md "A put reaches every worker" -->
//   ...generated: the first table under the heading that starts with the
//   quoted text (no text: the file's first table), and the line naming the
//   commit, Node and date it was measured at...
//   <!-- /results -->
//
//   npm run docs:bench             rewrite the README's tables
//   npm run docs:bench -- --check  exit 1, naming each table, where the
//                                  README and the results differ
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readResults = (file: string) => readFileSync(join(root, file), 'utf8');
const MARKER = /<!-- results (\S+)(?: "([^"]*)")? -->\n[\s\S]*?<!-- \/results -->/g;

/** The table a marker names, and its provenance, from a results file's text. */
export function tableOf(results: string, file: string, heading: string | undefined): string {
  const lines = results.split('\n');
  let from = 0;
  if (heading) {
    from = lines.findIndex((l) => /^#+\s/.test(l) && l.replace(/^#+\s+/, '').startsWith(heading));
    if (from < 0) throw new Error(`${file} has no heading starting "${heading}"`);
  }
  const start = lines.findIndex((l, i) => i > from && l.startsWith('|'));
  const nextHeading = heading ? lines.findIndex((l, i) => i > from && /^#+\s/.test(l)) : -1;
  if (start < 0 || (nextHeading >= 0 && nextHeading < start)) throw new Error(`${file} has no table${heading ? ` under "${heading}"` : ''}`);
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  if (/NOT publishable/.test(results)) throw new Error(`${file} says it is NOT publishable (the tree changed while it ran): rerun the bench from a clean tree`);
  const provenance = /^- graft: (.*)$/m.exec(results)?.[1] ?? '';
  const commit = /\bcommit (\w+)/.exec(provenance)?.[1];
  const node = /\bnode (v[\d.]+)/.exec(results)?.[1];
  const date = /^- date: (\d{4}-\d\d-\d\d)/m.exec(results)?.[1] ?? 'an unrecorded date';
  const at = commit ? `commit ${commit}${/uncommitted changes in src\//.test(provenance) ? ' with uncommitted changes in src/' : ''}, Node ${node ?? '?'}, ${date}` : `${date}, no commit recorded (rerun it)`;
  return `${lines.slice(start, end).join('\n')}\n\n<sub>From [${file}](${file}): ${at}.</sub>`;
}

/** The README with every marked table regenerated; a marker written some other way is an error, not a table left unchecked. */
export function regenerate(readme: string, read: (file: string) => string = readResults): string {
  const written = readme.match(/<!--\s*results\b/g)?.length ?? 0;
  const understood = [...readme.matchAll(MARKER)].length;
  if (written !== understood) throw new Error(`README.md has ${written} results markers, ${understood} of them in the form <!-- results FILE "heading" --> … <!-- /results -->`);
  return readme.replace(MARKER, (_all, file: string, heading: string | undefined) => `<!-- results ${file}${heading ? ` "${heading}"` : ''} -->\n${tableOf(read(file), file, heading)}\n<!-- /results -->`);
}

/** The markers whose table differs from its results file. */
export function stale(readme: string, read: (file: string) => string = readResults): string[] {
  const fresh = regenerate(readme, read);
  const blocks = (text: string) => [...text.matchAll(MARKER)].map((m) => m[0]);
  const now = blocks(readme);
  return blocks(fresh).flatMap((block, i) => (block === now[i] ? [] : [block.slice(0, block.indexOf('\n'))]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = join(root, 'README.md');
  const readme = readFileSync(path, 'utf8');
  if (process.argv.includes('--check')) {
    const differ = stale(readme);
    for (const m of differ) console.error(`README.md: ${m} differs from its results file; run npm run docs:bench`);
    process.exit(differ.length ? 1 : 0);
  }
  writeFileSync(path, regenerate(readme));
}
