import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { GraftError } from '../core/errors.js';
import { formatRecord, prettyFor, type Fields } from '../core/log.js';
import { defaultLogDir, logFile } from '../logs/log-dir.js';
import { follow, lastLines } from '../logs/log-tail.js';
import type { LogTarget } from '../logs/service-log.js';
import { sendControl } from '../control/client.js';
import type { MasterStatus } from '../master/master-status.js';
import { findService } from '../registry/service-registry.js';
import { integer, parse } from './args.js';
import { locateMaster, looksLikeName } from './locate.js';

const DEFAULT_LINES = 20;

/**
 * `graft logs [name|entry] [--follow] [--lines N]`: a service's log file (its
 * rotated files too), found through the service registry or the master's
 * status; `--log-dir DIR` reads a service's files without its master (one
 * that stopped). Lines print as stored (JSON), or as short human lines on a
 * terminal.
 */
export async function logs(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'logs',
    argv,
    {
      follow: { type: 'boolean', short: 'f' },
      lines: { type: 'string', short: 'n' },
      socket: { type: 'string' },
      name: { type: 'string' },
      'log-dir': { type: 'string' },
    },
    1,
  );
  const count = integer('--lines', values.lines, 0, 1_000_000) ?? DEFAULT_LINES;
  const file = await whereItLogs({ socket: values.socket, name: values.name, target: positionals[0], logDir: values['log-dir'] });
  const pretty = prettyFor(process.stdout);
  const print = (line: string) => process.stdout.write(pretty ? human(line) : `${line}\n`);
  const { lines, position } = await lastLines(file, count);
  for (const line of lines) print(line);
  if (!values.follow) return 0;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.stdout.on('error', onSignal); // the reader went away (`| head`)
  await follow(file, position, print, stop.signal);
  return 0;
}

async function whereItLogs(o: { socket?: string | undefined; name?: string | undefined; target?: string | undefined; logDir?: string | undefined }): Promise<string> {
  const name = o.name ?? o.target;
  if (o.logDir !== undefined) {
    if (name === undefined || !looksLikeName(name)) throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft logs --log-dir DIR needs the service name, e.g. `graft logs api --log-dir /var/log/graft`');
    return existing(logFile(resolve(o.logDir), name), name);
  }
  const record = name !== undefined && looksLikeName(name) && o.socket === undefined ? findService(name) : undefined;
  if (record) return fileOf(record.name, record.pid, record.logs);
  let socket: string;
  try {
    socket = locateMaster({ socket: o.socket, name: o.name, target: o.target }).socket;
  } catch (err) {
    // A service that stopped: its files stay where `graft start --daemon` puts them.
    if (name !== undefined && looksLikeName(name) && existsSync(logFile(defaultLogDir(), name))) return logFile(defaultLogDir(), name);
    throw err;
  }
  const { master } = (await sendControl(socket, { cmd: 'status' })) as MasterStatus;
  if (!master.logs) throw new GraftError('GRAFT_NO_LOG_FILES', `the master ${master.pid} is a graft without log files; its lines go to where it was started`);
  return fileOf(master.name, master.pid, master.logs);
}

function fileOf(name: string, pid: number, logs: LogTarget): string {
  if (logs.kind === 'file') return logs.file;
  throw new GraftError(
    'GRAFT_NO_LOG_FILES',
    `service ${name} (master ${pid}) writes no log files: its lines go to the stdout and stderr of its \`graft start\` (the terminal, journalctl or docker logs); start it with --log-dir DIR to keep rotated files`,
  );
}

function existing(file: string, name: string): string {
  if (!existsSync(file)) throw new GraftError('GRAFT_NO_SERVICE', `no log file of a service named ${name}: ${file} does not exist`);
  return file;
}

function human(line: string): string {
  try {
    return formatRecord(JSON.parse(line) as Fields, true);
  } catch {
    return `${line}\n`;
  }
}
