#!/usr/bin/env node
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('graft: GRAFT_NOT_BUILT: dist/ is missing; run `npm run build` in the graft package first\n');
  process.exit(1);
}
await import(cli.href);
