#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('graft: GRAFT_NOT_BUILT: dist/ is missing; run `npm run build` in the graft package first\n');
  process.exit(1);
}
try {
  await import(cli.href);
} catch (err) {
  // A package installed from a folder is linked, and npm installs none of that folder's dependencies:
  // say so in one line rather than with Node's stack of a missing package.
  const root = fileURLToPath(new URL('..', import.meta.url));
  const missing = err?.code === 'ERR_MODULE_NOT_FOUND' && /Cannot find package '([^']+)' imported from (\S+)/.exec(String(err.message));
  const { dependencies = {} } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  if (!missing || !(missing[1] in dependencies) || !missing[2].startsWith(root)) throw err;
  process.stderr.write(`graft: GRAFT_NOT_INSTALLED: graft's dependency ${missing[1]} is not installed in ${root.slice(0, -1)}: run \`npm ci\` there (a folder installed with npm install <folder> is linked without its dependencies)\n`);
  process.exit(1);
}
