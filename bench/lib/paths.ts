import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, with a trailing slash. */
export const root = fileURLToPath(new URL('../../', import.meta.url));
/** tsx's loader, absolute, so a child finds it from any working directory. */
export const tsxImport = import.meta.resolve('tsx');
/** PM2's CLI, run by node. */
export const pm2Bin = join(root, 'node_modules/pm2/bin/pm2');
