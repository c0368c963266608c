#!/usr/bin/env node
import { GraftError } from '../core/errors.js';
import { graftVersion } from '../core/version.js';
import { reload, scale, status, stop, swap, upgrade } from './control-commands.js';
import { configCommand } from './config-command.js';
import { helpFor, overview } from './help.js';
import { keygen } from './keygen-command.js';
import { logs } from './logs-command.js';
import { ls } from './ls-command.js';
import { deploy, releases, rollback } from './release-commands.js';
import { start } from './start.js';
import { systemdCommand } from './systemd-command.js';

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  start,
  reload,
  status,
  scale,
  stop,
  upgrade,
  swap,
  deploy,
  rollback,
  releases,
  config: configCommand,
  ls,
  logs,
  // The bus clients load only for this command.
  order: async (argv) => (await import('./order-command.js')).order(argv),
  keygen,
  systemd: systemdCommand,
  // So does the fleet's NATS client.
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
