import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { GraftError } from '../core/errors.js';
import { sendControl } from '../control/client.js';
import type { MasterStatus } from '../master/master-status.js';
import { parse } from './args.js';
import { locateMaster } from './locate.js';

/**
 * `graft systemd [name|entry]`: a systemd unit for a running service, written from
 * how it was started, so that what runs under systemd is what was tried by hand.
 *
 * - Type=simple and no PIDFile: the main pid is `graft start` itself (the
 *   keeper), which stays across `graft upgrade`, so systemd never sees the
 *   service die when the master is replaced.
 * - KillMode=mixed: SIGTERM goes to the keeper only, which passes it to the
 *   master; the master drains its workers. The default (control-group) would
 *   TERM every worker at once, mid-request. Whatever is left when
 *   TimeoutStopSec runs out gets SIGKILL, so it is the drain timeout plus a margin.
 * - ExecReload runs `graft reload`, which waits for the new generation and
 *   exits non-zero if it failed, so `systemctl reload` reports the outcome
 *   (a `kill -HUP $MAINPID` would report success before anything happened).
 */
export async function systemdCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse('systemd', argv, { socket: { type: 'string' }, name: { type: 'string' }, user: { type: 'string' }, env: { type: 'string', multiple: true } }, 1);
  const target = locateMaster({ socket: values.socket, name: values.name, target: positionals[0] });
  const status = (await sendControl(target.socket, { cmd: 'status' })) as MasterStatus;
  const env = launchEnv(status.master.pid, values.env ?? []);
  process.stdout.write(systemdUnit(status, { socket: target.socket, user: values.user ?? userInfo().username, env }));
  return 0;
}

/** Always carried into the unit: graft's own settings and Node's. */
const CARRIED = /^(GRAFT_(?!KEEPER$|UPGRADE$)|NODE_ENV$|NODE_OPTIONS$|PORT$)/;

/**
 * The environment the master started with (/proc/<pid>/environ, readable by
 * its user): graft's and Node's variables, plus those named with --env. The
 * rest of a shell's environment (HOME, TERM, SSH_*) has no place in a unit.
 */
function launchEnv(pid: number, names: string[]): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch (err) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', `cannot read the environment of master ${pid} (${(err as Error).message}); run graft systemd as the service's user, on its host`);
  }
  const all = new Map(text.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const));
  const missing = names.filter((n) => !all.has(n));
  if (missing.length) throw new GraftError('GRAFT_BAD_ARGUMENT', `--env ${missing.join(', ')}: the service was not started with ${missing.length > 1 ? 'these variables' : 'this variable'}`);
  return Object.fromEntries([...all].filter(([k]) => CARRIED.test(k) || names.includes(k)));
}

/** Margin over the drain timeout for the master's own shutdown before systemd kills what is left. */
const STOP_MARGIN_S = 15;

export function systemdUnit(status: MasterStatus, options: { socket: string; user: string; env: Record<string, string> }): string {
  const { launch, entry } = status.master;
  const graft = launch.args.slice(0, launch.args.indexOf('start'));
  const lines = [
    `# graft: the service ${launch.service}, as started by hand. Save it as`,
    `#   /etc/systemd/system/${unitName(launch.service)}.service`,
    `# then: systemctl daemon-reload && systemctl enable --now ${unitName(launch.service)}`,
    '# It sets the environment graft and Node read; add what the app needs with graft systemd --env NAME.',
    '[Unit]',
    `Description=${launch.service} under graft (${entry})`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `WorkingDirectory=${escapeValue(launch.cwd)}`,
    ...(options.user !== 'root' ? [`User=${options.user}`] : []),
    ...Object.entries(options.env).map(([k, v]) => `Environment=${commandLine([`${k}=${v}`])}`),
    `ExecStart=${commandLine([launch.node, ...launch.args])}`,
    `ExecReload=${commandLine([launch.node, ...graft, 'reload', '--socket', options.socket])}`,
    'KillMode=mixed',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${Math.ceil(launch.drainTimeoutMs / 1000) + STOP_MARGIN_S}`,
    'Restart=on-failure',
    'RestartSec=2',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

function unitName(service: string): string {
  return service.replace(/[^A-Za-z0-9:_.\\-]/g, '-');
}

/** systemd's own quoting: words in double quotes when they hold spaces or quotes; `%` and `$` escaped. */
function commandLine(words: string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? escapeValue(w) : `"${escapeValue(w).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)).join(' ');
}

function escapeValue(value: string): string {
  return value.replace(/%/g, '%%').replace(/\$/g, '$$$$');
}
