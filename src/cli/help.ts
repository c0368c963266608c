/** The help of every command: `graft help`, `graft help <command>`, `graft <command> --help`. */

const locate = `Control commands find the master by --socket PATH, or by the entry, or as the
only master started from the current directory.`;

export const commandHelp: Record<string, string> = {
  start: `graft start <entry> [options]
  Run <entry> (.ts or .js) under a master with a pool of workers, in the foreground.

  -w, --workers N            worker processes (default: available cores)
  -p, --port P               port given to the app as PORT (default: $PORT or 3000)
      --socket PATH          control socket (default: derived from cwd and entry)
      --timeout S            boot readiness and heartbeat limit in seconds (default 30)
      --graceful-timeout S   how long a retired worker may drain (default 30)
      --watch                reload when the app's files change (with --swap: swap them in place)
      --swap                 serve the entry's default export (a handler, or an Express, Fastify,
                             Koa or Hono app) as swappable generations: code changes apply
                             in every worker without a new process
  -c, --config FILE|URL      config file (.json .yaml .toml .env) or store, repeatable, later wins
                             (default: graft.config.{yaml,yml,json,toml} in the working directory);
                             stores: nats://host:port/bucket[/prefix], etcd://host:port/prefix,
                             redis://host:port/key (user:pass@ for credentials)
      --config-cache DIR     where the last good snapshot of each store is cached
                             (default: beside the control socket)
      --set KEY=VALUE        override one config key, e.g. --set db.pool.max=20 (repeatable)`,
  reload: `graft reload [entry] [--socket PATH]
  Start a new generation of workers and retire the old one once it serves, with
  no connection refused or reset (same as SIGHUP). Answers once every new
  connection reaches the new generation; exits non-zero, with the old
  generation still serving, if the new one fails to boot.`,
  status: `graft status [entry] [--json] [--socket PATH]
  The master, its generation, what runs now and what is queued, the last
  reload, the config version, and every worker with its generation and state.`,
  scale: `graft scale [entry] N [--socket PATH]
  Change the worker count to N (SIGTTIN/SIGTTOU: one more/less). Waits behind a
  reload in flight; the generation that reload starts runs N.`,
  stop: `graft stop [entry] [--fast] [--socket PATH]
  Graceful stop (SIGTERM): workers finish their requests, then exit. --fast kills
  the workers at once (SIGQUIT). A stop during an upgrade stops both masters.`,
  upgrade: `graft upgrade [entry] [--socket PATH]
  Replace the master process itself (new graft or Node version), keeping the
  listening sockets open (SIGUSR2). The config version, its history and the
  overrides of \`graft config apply --set\` carry over.`,
  swap: `graft swap [module] [--json] [--socket PATH]
  Swap changed code in place in every worker (services started with --swap).
  Exits non-zero with the error when a worker rejects the new generation; a
  change a swap cannot take falls back to a reload.`,
  config: `graft config show [keypath]     what the workers run, with its version
graft config check FILE         validate FILE against the running service's schema; applies nothing
graft config apply [--set K=V] [--unset K] [--reset]
                                re-read the sources and move every worker to the result; --set
                                overrides stay on top (over file edits) until --unset K or --reset
graft config history [--json]   recent versions: time, source, changed keys, accepted or rejected`,
};

/** The first line of each control command's help, for the overview. */
const oneLine: Record<string, string> = {
  reload: 'new generation of workers, zero downtime (same as SIGHUP)',
  status: 'master, generations, workers, config version (--json)',
  scale: 'change the worker count (SIGTTIN/SIGTTOU: one more/less)',
  stop: 'graceful stop (SIGTERM); --fast kills workers (SIGQUIT)',
  upgrade: 'replace the master process, keeping the port open (SIGUSR2)',
  swap: 'swap changed code in place in every worker (with --swap)',
};

export function overview(version: string): string {
  const control = Object.entries(oneLine)
    .map(([name, line]) => `graft ${name.padEnd(9)} ${line}`)
    .join('\n');
  return `graft ${version}: change a running Node.js service without anyone noticing

${commandHelp.start}

${control}

${commandHelp.config}

graft help <command>, graft <command> --help: one command in full. graft --version.

${locate}`;
}

export function helpFor(command: string): string | undefined {
  const text = commandHelp[command];
  return text && (command === 'start' ? text : `${text}\n\n${locate}`);
}
