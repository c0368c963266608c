import { resolve } from 'node:path';
import { getPath } from '../config/key-path.js';
import type { Snapshot } from '../config/snapshot.js';
import { GraftError } from '../core/errors.js';
import type { ConfigPayload } from '../core/ipc.js';
import type { ApplyOutcome, HistoryEntry } from '../config/history.js';
import { sendControl } from '../control/client.js';
import { parse } from './args.js';
import { findService } from '../registry/service-registry.js';
import { locateMaster, looksLikeName } from './locate.js';

const ACTIONS = ['show', 'check', 'apply', 'history'] as const;

export async function configCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  // A wrong action is named before any master is looked for.
  if (!ACTIONS.includes(action as never)) throw new GraftError('GRAFT_UNKNOWN_COMMAND', `unknown config action ${JSON.stringify(action ?? '')}; expected show, check, apply or history`);
  const takesArgument = action === 'show' || action === 'check';
  const { values, positionals } = parse(`config ${action ?? ''}`.trim(), rest, { socket: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' }, set: { type: 'string', multiple: true }, unset: { type: 'string', multiple: true }, reset: { type: 'boolean' } }, takesArgument ? 2 : 1);
  // `graft config ACTION [SERVICE] [KEY|FILE]`, as `graft reload [SERVICE]`: a lone positional of
  // show/check is the service when a running service bears that name, else the key or the file.
  let service: string | undefined;
  let argument: string | undefined;
  if (positionals.length === 2 || !takesArgument) [service, argument] = positionals;
  else if (positionals[0] !== undefined && looksLikeName(positionals[0]) && findService(positionals[0])) service = positionals[0];
  else argument = positionals[0];
  if (service !== undefined && values.name !== undefined && service !== values.name) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `graft config ${action}: service ${JSON.stringify(service)} and --name ${JSON.stringify(values.name)} disagree; give one of them`);
  }
  const socket = locateMaster({ socket: values.socket, name: values.name, target: service }).socket;
  switch (action) {
    case 'show': {
      const result = (await sendControl(socket, { cmd: 'config', action: 'show' })) as { master: ConfigPayload; effective?: Snapshot };
      const snapshot = result.effective ?? { version: result.master.version, hash: result.master.hash, data: result.master.data };
      const keyPath = argument;
      const value = keyPath ? getPath(snapshot.data, keyPath) : snapshot.data;
      if (keyPath && value === undefined) throw new GraftError('GRAFT_BAD_KEY_PATH', `config version ${snapshot.version} has no key ${keyPath}`);
      if (values.json) console.log(JSON.stringify({ version: snapshot.version, hash: snapshot.hash, ...(keyPath ? { key: keyPath } : {}), value }, null, 2));
      else console.log(`# config version ${snapshot.version} (${snapshot.hash})${keyPath ? ` ${keyPath}` : ''}\n${JSON.stringify(value, null, 2)}`);
      return 0;
    }
    case 'check': {
      const file = argument;
      if (!file) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft config check needs a file, e.g. `graft config check config.yaml`');
      await sendControl(socket, { cmd: 'config', action: 'check', file: resolve(file) });
      console.log(`${file}: valid for the running service (nothing applied)`);
      return 0;
    }
    case 'apply': {
      const outcome = (await sendControl(socket, { cmd: 'config', action: 'apply', set: values.set ?? [], unset: values.unset ?? [], reset: values.reset === true })) as ApplyOutcome;
      if (values.json) console.log(JSON.stringify(outcome, null, 2));
      else if (outcome.mode === 'unchanged') console.log(`config unchanged: every worker runs version ${outcome.version}`);
      else {
        console.log(`config version ${outcome.version} applied (${outcome.mode}); changed: ${outcome.changed.join(', ') || '-'}`);
        for (const w of outcome.workers) console.log(`  worker ${w.pid} (generation ${w.generation}) runs version ${w.configVersion}`);
      }
      if (outcome.replaced.length > 0) {
        for (const r of outcome.replaced) console.error(`graft: GRAFT_CONFIG_APPLY_FAILED: worker ${r.pid} failed to apply version ${outcome.version} and was replaced: ${r.error}`);
        return 1;
      }
      return 0;
    }
    case 'history': {
      const history = (await sendControl(socket, { cmd: 'config', action: 'history' })) as HistoryEntry[];
      if (values.json) console.log(JSON.stringify(history, null, 2));
      else {
        for (const h of history) {
          console.log(`${h.at}  v${h.version}  ${h.accepted ? 'accepted' : 'REJECTED'}  ${h.source}  ${h.changed.join(',') || '-'}${h.error ? `  ${h.code ?? ''} ${h.error}` : ''}`);
        }
      }
      return 0;
    }
    default:
      throw new GraftError('GRAFT_UNKNOWN_COMMAND', `unknown config action ${JSON.stringify(action ?? '')}; expected show, check, apply or history`);
  }
}
