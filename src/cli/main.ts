#!/usr/bin/env node
import { GraftError } from '../core/errors.js';
import { graftVersion } from '../core/version.js';
import { helpFor, overview } from './help.js';

/**
 * Each command's module loads when it runs: `graft start` stays as the keeper
 * for the service's whole life, and holds only what the keeper needs.
 */
const commands: Record<string, (argv: string[]) => Promise<number>> = {
  start: async (argv) => (await import('./start.js')).start(argv),
  reload: async (argv) => (await import('./control-commands.js')).reload(argv),
  status: async (argv) => (await import('./control-commands.js')).status(argv),
  scale: async (argv) => (await import('./control-commands.js')).scale(argv),
  stop: async (argv) => (await import('./control-commands.js')).stop(argv),
  upgrade: async (argv) => (await import('./control-commands.js')).upgrade(argv),
  swap: async (argv) => (await import('./control-commands.js')).swap(argv),
  deploy: async (argv) => (await import('./release-commands.js')).deploy(argv),
  rollback: async (argv) => (await import('./release-commands.js')).rollback(argv),
  releases: async (argv) => (await import('./release-commands.js')).releases(argv),
  config: async (argv) => (await import('./config-command.js')).configCommand(argv),
  ls: async (argv) => (await import('./ls-command.js')).ls(argv),
  logs: async (argv) => (await import('./logs-command.js')).logs(argv),
  order: async (argv) => (await import('./order-command.js')).order(argv),
  keygen: async (argv) => (await import('./keygen-command.js')).keygen(argv),
  systemd: async (argv) => (await import('./systemd-command.js')).systemdCommand(argv),
  fleet: async (argv) => (await import('./fleet-command.js')).fleetCommand(argv),
};

function unknownCommand(command: string): GraftError {
  return new GraftError('GRAFT_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(command)}; expected one of ${Object.keys(commands).join(', ')} (see \`graft help\`)`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(graftVersion());
    return 0;
  }
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (!topic) {
      console.log(overview(graftVersion()));
      return 0;
    }
    const text = helpFor(topic);
    if (!text) throw unknownCommand(topic);
    console.log(text);
    return 0;
  }
  const run = commands[command];
  if (!run) throw unknownCommand(command);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(helpFor(command));
    return 0;
  }
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // One line a user can act on; the stack only with GRAFT_DEBUG=1 (the master's log has it too).
    const error = GraftError.wrap(err, 'graft failed');
    process.stderr.write(`graft: ${error.code}: ${error.message}\n`);
    const detail = error.detail ?? (error.code === 'GRAFT_INTERNAL' ? (error.cause as Error)?.stack : undefined);
    if (detail && process.env.GRAFT_DEBUG) process.stderr.write(`${detail}\n`);
    process.exit(1);
  },
);
