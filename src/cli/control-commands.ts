import { GraftError } from '../core/errors.js';
import { sendControl } from '../control/client.js';
import type { SwapOutcome } from '../master/code-swapper.js';
import type { MasterStatus } from '../master/master-status.js';
import { integer, parse } from './args.js';
import { locateMaster, looksLikeName } from './locate.js';
import { formatStatus } from './status-table.js';

/**
 * The commands that talk to a running master. Each waits for the outcome and
 * exits non-zero when the master reports a failure. Each finds its master by
 * --socket, by --name, by a service name or entry given as its first
 * argument, or as the only master started from the current directory.
 */
const common = { socket: { type: 'string' }, name: { type: 'string' } } as const;

function target(values: { socket?: string | undefined; name?: string | undefined }, service: string | undefined) {
  return locateMaster({ socket: values.socket, name: values.name, target: service });
}

export async function reload(argv: string[]): Promise<number> {
  const { values, positionals } = parse('reload', argv, common, 1);
  const result = (await sendControl(target(values, positionals[0]).socket, { cmd: 'reload' })) as { generation: number; previous?: number };
  console.log(`reloaded: generation ${result.generation} serves${result.previous ? ` (generation ${result.previous} draining)` : ''}`);
  return 0;
}

export async function stop(argv: string[]): Promise<number> {
  const { values, positionals } = parse('stop', argv, { ...common, fast: { type: 'boolean' } }, 1);
  const result = (await sendControl(target(values, positionals[0]).socket, { cmd: 'stop', fast: values.fast === true })) as { pid: number };
  console.log(`stopped master ${result.pid}`);
  return 0;
}

export async function scale(argv: string[]): Promise<number> {
  const { values, positionals } = parse('scale', argv, common, 2);
  // `graft scale N` or `graft scale <name|entry> N`
  const countArg = positionals.length === 2 ? positionals[1] : positionals[0];
  const entry = positionals.length === 2 ? positionals[0] : undefined;
  if (countArg === undefined) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft scale needs a worker count, e.g. `graft scale 4`');
  const workers = integer('worker count', countArg, 1, 1024)!;
  const result = (await sendControl(target(values, entry).socket, { cmd: 'scale', workers })) as { from: number; to: number };
  console.log(`scaled from ${result.from} to ${result.to} workers`);
  return 0;
}

export async function upgrade(argv: string[]): Promise<number> {
  const { values, positionals } = parse('upgrade', argv, common, 1);
  const result = (await sendControl(target(values, positionals[0]).socket, { cmd: 'upgrade' }, 1500)) as { pid: number };
  console.log(`upgraded: master ${result.pid} serves; the previous master is draining`);
  return 0;
}

export async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parse('status', argv, { ...common, json: { type: 'boolean' } }, 1);
  const result = (await sendControl(target(values, positionals[0]).socket, { cmd: 'status' })) as MasterStatus;
  console.log(values.json ? JSON.stringify(result, null, 2) : formatStatus(result));
  return 0;
}

export async function swap(argv: string[]): Promise<number> {
  const { values, positionals } = parse('swap', argv, { ...common, json: { type: 'boolean' } }, 2);
  // `graft swap [name] [module]`: a module is named as `graft status` shows it (`handler.ts`), a service has no dot or slash.
  const [service, module] = positionals.length === 2 ? positionals : positionals[0] !== undefined && looksLikeName(positionals[0]) ? [positionals[0], undefined] : [undefined, positionals[0]];
  const result = (await sendControl(target(values, service).socket, { cmd: 'swap', ...(module ? { module } : {}) })) as SwapOutcome;
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  if (result.mode === 'reload') console.log(`swap could not apply in place (${result.reason}); workers reloaded: generation ${result.generation} serves`);
  else if (result.mode === 'unchanged') console.log('nothing to swap: every worker already runs the current code');
  else console.log('swapped in place:');
  for (const w of result.workers) {
    const modules = w.modules.map((m) => `${m.module} generation ${m.generation}${m.unchanged ? ' (unchanged)' : ''}`).join(', ');
    if (modules) console.log(`  worker ${w.pid} (worker generation ${w.generation}): ${modules}`);
  }
  return 0;
}
