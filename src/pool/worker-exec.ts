import type { ClusterSettings } from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const workerMain = new URL(`../worker/main${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** graft itself runs from its TypeScript source (its tests do): its worker runtime needs tsx. */
const fromSource = /\.ts$/.test(fileURLToPath(workerMain));

/**
 * What node:cluster runs for a worker: graft's worker runtime, with the
 * master's Node flags minus the ones that must not be inherited (an inspector
 * port, a second tsx), plus tsx only when TypeScript has to load in the
 * worker: graft's own source, or an app started with --tsx. A TypeScript
 * entry is otherwise compiled by the master (EntryBuilds), and a --swap
 * handler is bundled by the worker itself: neither needs tsx.
 */
export function workerExec(options: { tsx: boolean }): { exec: string; execArgv: string[] } {
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
  const loader = options.tsx || fromSource ? ['--import', tsx] : [];
  return { exec: fileURLToPath(workerMain), execArgv: [...inherited, '--enable-source-maps', ...loader] };
}

/** node:cluster's settings for graft's workers, forked or warm: the command above, the app's own arguments, stdout and stderr as pipes to the master. */
export function primarySettings(options: { tsx: boolean; args: string[] }): ClusterSettings {
  // args: the app's own, so its process.argv does not carry graft's flags; the master writes each line of the pipes whole and tagged (src/logs/service-log.ts).
  return { ...workerExec({ tsx: options.tsx }), args: options.args, stdio: ['inherit', 'pipe', 'pipe', 'ipc'] };
}

/** In every worker's environment: the master parses the worker's own log records from its stderr, and formats them for where they go. */
export const WORKER_LOG_ENV = { GRAFT_LOG_FORMAT: 'json' } as const;
