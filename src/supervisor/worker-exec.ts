import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const workerMain = new URL(`../worker/main${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** TypeScript needs tsx in the worker: for a .ts entry, or when graft itself runs from source. */
function needsTsx(entry: string): boolean {
  return /\.[cm]?tsx?$/.test(entry) || /\.ts$/.test(fileURLToPath(workerMain));
}

/**
 * What node:cluster runs for a worker: graft's worker runtime, with the
 * master's Node flags minus the ones that must not be inherited (an inspector
 * port, a second tsx), plus tsx when TypeScript has to load.
 */
export function workerExec(entry: string): { exec: string; execArgv: string[] } {
  const tsx = import.meta.resolve('tsx');
  const inherited: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--inspect')) continue;
    if (arg === '--import' && (argv[i + 1] === 'tsx' || argv[i + 1] === tsx)) {
      i++;
      continue;
    }
    inherited.push(arg);
  }
  return { exec: fileURLToPath(workerMain), execArgv: [...inherited, '--enable-source-maps', ...(needsTsx(entry) ? ['--import', tsx] : [])] };
}
