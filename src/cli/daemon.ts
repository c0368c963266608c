import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError, isErrorCode } from '../core/errors.js';
import type { ToKeeper } from '../succession/keeper-link.js';

/**
 * `graft start --daemon`: PM2's habit. The service runs as it would in the
 * foreground (a keeper, its master, the workers), but the keeper is detached
 * into its own session, and this process waits only until the master serves
 * (or fails to start), says where things are, and exits. With no terminal to
 * write to, logs go to files: --log-dir, or the per-user default.
 */
export async function startDaemon(argv: string[], appArgs: string[], options: { service: string; logDir: string; cwd: string }): Promise<number> {
  const args = argv.filter((a) => a !== '-d' && a !== '--daemon');
  const { logDir } = options;
  if (!args.some((a) => a === '--log-dir' || a.startsWith('--log-dir='))) args.push('--log-dir', logDir);
  // What the keeper itself prints (and a master's crash before its log file is open).
  const keeperLog = join(logDir, `${options.service}.keeper.log`);
  let out: number;
  try {
    out = openSync(keeperLog, 'a', 0o600);
  } catch (err) {
    throw new GraftError('GRAFT_LOG_DIR', `cannot write ${keeperLog}: ${(err as Error).message}; pass another --log-dir`, { cause: err });
  }
  const keeper = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'start', ...args, ...(appArgs.length ? ['--', ...appArgs] : [])], {
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
  });
  closeSync(out);
  const outcome = await new Promise<Extract<ToKeeper, { graft: 'master-running' | 'master-failed' }> | { graft: 'exit'; status: string }>((resolve) => {
    keeper.once('message', (m: Extract<ToKeeper, { graft: 'master-running' | 'master-failed' }>) => resolve(m));
    keeper.once('exit', (code, signal) => resolve({ graft: 'exit', status: signal ?? `code ${code}` }));
    keeper.once('error', (err) => resolve({ graft: 'exit', status: err.message }));
  });
  if (keeper.connected) keeper.disconnect();
  keeper.unref();
  if (outcome.graft === 'master-running') {
    console.log(`${options.service} runs in the background: keeper ${keeper.pid}, master ${outcome.pid}, port ${outcome.port}`);
    console.log(`  logs:   graft logs ${options.service} --follow   (${join(logDir, `${options.service}.log`)})`);
    console.log(`  stop:   graft stop ${options.service}`);
    return 0;
  }
  if (outcome.graft === 'master-failed') {
    throw new GraftError(isErrorCode(outcome.code) ? outcome.code : 'GRAFT_START_FAILED', outcome.message);
  }
  throw new GraftError('GRAFT_START_FAILED', `the service exited (${outcome.status}) before it served; see ${keeperLog}`);
}
