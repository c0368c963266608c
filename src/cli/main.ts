#!/usr/bin/env node
import { GraftError, errorMessage } from '../errors.js';
import { reload, scale, status, stop, swap, upgrade } from './control-commands.js';
import { configCommand, configHelp } from './config-command.js';
import { start, startHelp } from './start.js';

const help = `graft — change a running Node.js service without anyone noticing

${startHelp}

graft reload [entry]        new generation of workers, zero downtime (same as SIGHUP)
graft status [entry] [--json]
graft scale [entry] N       change the worker count (SIGTTIN/SIGTTOU: one more/less)
graft stop [entry] [--fast] graceful stop (SIGTERM); --fast kills workers (SIGQUIT)
graft upgrade [entry]       replace the master process, keeping the port open (SIGUSR2)
graft swap [module]         swap changed code in place in every worker (with --swap); exits
                            non-zero with the error when a worker rejects the new generation

${configHelp}

Control commands find the master by --socket PATH, or by the entry, or as the
only master started from the current directory.`;

const commands: Record<string, (argv: string[]) => Promise<number>> = { start, reload, status, scale, stop, upgrade, swap, config: configCommand };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(help);
    return 0;
  }
  const run = commands[command];
  if (!run) throw new GraftError('GRAFT_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(command)}; expected one of ${Object.keys(commands).join(', ')}`);
  return run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof GraftError) {
      process.stderr.write(`graft: ${err.code}: ${err.message}\n`);
      if (err.detail) process.stderr.write(`${err.detail}\n`);
    } else {
      process.stderr.write(`graft: unexpected failure: ${errorMessage(err)}\n${(err as Error)?.stack ?? ''}\n`);
    }
    process.exit(1);
  },
);
