/** The help of every command: `graft help`, `graft help <command>`, `graft <command> --help`. */

const locate = `Control commands find the master, from any directory, by the service's name
(\`graft reload api\`, or --name api), by its entry (\`graft reload /srv/app/server.js\`), by
--socket PATH, or as the only master started from the current directory.`;

export const commandHelp: Record<string, string> = {
  start: `graft start <entry> [options] [-- app arguments]
  Run <entry> (.ts or .js) under a master with a pool of workers, in the foreground:
  this process (the keeper) stays for the service's whole life, across \`graft upgrade\`
  too; signals sent to it reach the master, and it exits with the service.
  A .ts entry is compiled by the master (esbuild, with source maps) for each
  generation; the workers run plain JavaScript. What follows \`--\` is the app's
  process.argv; an entry may be a package's bin (\`node_modules/.bin/next -- start\`).

  -w, --workers N            worker processes (default: available cores)
  -p, --port P               port given to the app as PORT (default: $PORT or 3000)
      --socket PATH          control socket (default: derived from cwd, entry and --name)
      --timeout S            boot readiness and heartbeat limit in seconds (default 30)
      --graceful-timeout S   how long a retired worker may drain (default 30)
      --ready MODE           when a worker that is not a defineService is ready: listen (its
                             servers listen), load (its entry evaluated), message (it calls
                             process.send('ready')), auto (default: the first of those; an entry
                             that has not called listen() 1 s after it evaluated is a job worker)
      --sticky               keep each client on one worker (by Socket.IO session id, then by
                             client address) instead of round-robin: Socket.IO's long polling
                             needs it; a reload moves clients as their sessions end
      --no-standby           keep no standby master (about 80 MB, and its warm workers): a master
                             that crashes is then restarted by starting a new process, which takes longer
      --warm-workers N       worker processes the standby keeps started, graft loaded and no app
                             (about 65 MB each; started 5 s after the standby), for a crash
                             restart to take instead of forking
                             (default: --workers; 0: none)
      --watch                reload when the app's files change (with --swap: swap them in place)
      --swap                 serve the entry's default export (a handler, or an Express, Fastify,
                             Koa or Hono app) as swappable generations: code changes apply
                             in every worker without a new process
      --tsx                  load a .ts entry with tsx in every worker instead of compiling it
                             in the master (for code that imports .ts files by computed paths
                             or starts worker threads from .ts files; costs memory per worker)
  -c, --config FILE|URL      config file (.json .yaml .toml .env) or store, repeatable, later wins
                             (default: graft.config.{yaml,yml,json,toml} in the working directory);
                             stores: nats://host:port/bucket[/prefix], etcd://host:port/prefix,
                             redis://host:port/key (user:pass@ for credentials),
                             apollo://appId[:keyFile]@host:port/cluster/namespace[,namespace…]
      --config-cache DIR     where the last good snapshot of each store is cached
                             (default: beside the control socket)
      --set KEY=VALUE        override one config key, e.g. --set db.pool.max=20 (repeatable)
      --bus URL              take signed orders from nats://[user:pass@]host:4222 or
                             amqp://user:pass@host:5672[/vhost] (repeatable; see graft help order)
      --bus-key FILE         the key orders are checked with (an HMAC secret, or an Ed25519
                             public key): required with --bus
      --name NAME            the service's name: \`graft ls\`, \`graft reload NAME\` from any directory,
                             its log file, the bus (default: the entry's file name); one running
                             master per name and user
      --log-dir DIR          write graft's and the app's lines to DIR/NAME.log, rotated by size
                             (default: to stdout and stderr, as JSON lines when not a terminal)
      --log-max-size SIZE    rotate the log file at SIZE, e.g. 10M, 512K, 1G (default 10M)
      --log-max-files N      keep at most N log files, the live one included (default 5)
  -d, --daemon               run in the background (PM2's habit): returns once the master
                             serves, printing the keeper's and master's pids; logs go to
                             --log-dir, by default $XDG_STATE_HOME/graft/logs
      --host-id NAME         this master's name in the fleet (default: the host name)
      --fleet nats://H:P     register in the fleet registry there (NATS JetStream KV), so that
                             \`graft fleet\` sees this master and can roll changes out to it
                             (with --bus on the same server and --bus-key)
      --metrics [HOST:]PORT  serve Prometheus metrics at /metrics: every worker's prom-client
                             registry (the app's own metrics too), labelled worker and generation,
                             and graft's own; the live status page at / unless --dashboard is given
                             (HOST defaults to 127.0.0.1)
      --dashboard [HOST:]PORT  serve the live status page (read-only) on this port

  Releases (graft deploy):
      --keep-releases N      keep the last N good releases (default 5); failed and rolled-back
                             ones never push a good one out
      --min-healthy-time S   a deployed release is healthy only once it served S seconds with no
                             worker crashing or replaced, its 5xx share at most --max-error-rate
                             and every --health-url probe answered below 400; otherwise it is
                             rolled back by itself (GRAFT_ROLLED_BACK). Default: no gate
      --health-url PATH      asked during the gate through the service's port, up to once a second
      --max-error-rate R     the 5xx share a release may answer during the gate: 0.1 or 10%
                             (default 10%)

  Restart policies (none by default):
      --max-memory SIZE      a worker whose RSS stays over SIZE (three heartbeats in a row) is
                             replaced by a fresh one of its generation, then drained; a bare
                             number is MB, or 512M, 1G. Fresh workers that keep going over
                             right away are replaced with a backoff (GRAFT_WORKER_MEMORY)
      --restart-delay D      least wait before a crashed worker is replaced; the crash backoff
                             takes over when longer (a bare number is ms, or 500ms, 2s, 1m)
      --max-restarts N       after N unstable restarts in a row, stop replacing the crashed
                             workers of that generation (GRAFT_MAX_RESTARTS); the master keeps
                             serving with the workers it has, graft status shows DEGRADED,
                             and a successful reload starts afresh
      --min-uptime D         a worker that crashes before serving this long crashed unstable
                             (default 1s; only with --max-restarts)`,
  reload: `graft reload [name|entry] [--socket PATH]
  Start a new generation of workers and retire the old one once it serves, with
  no connection refused or reset (same as SIGHUP). Answers once every new
  connection reaches the new generation; exits non-zero, with the old
  generation still serving, if the new one fails to boot.`,
  status: `graft status [name|entry] [--json] [--socket PATH]
  The master, its generation, what runs now and what is queued, the last
  reload, the config version, the restart policy and whether the service is
  DEGRADED (and why), and every worker with its generation and state.`,
  scale: `graft scale [name|entry] N [--socket PATH]
  Change the worker count to N (SIGTTIN/SIGTTOU: one more/less). Waits behind a
  reload in flight; the generation that reload starts runs N.`,
  stop: `graft stop [name|entry] [--fast] [--socket PATH]
  Graceful stop (SIGTERM): workers finish their requests, then exit. --fast kills
  the workers at once (SIGQUIT). A stop during an upgrade stops both masters.`,
  upgrade: `graft upgrade [name|entry] [--socket PATH]
  Replace the master process itself (new graft or Node version), keeping the
  listening sockets open (SIGUSR2). The config version, its history and the
  overrides of \`graft config apply --set\` carry over.`,
  systemd: `graft systemd [name|entry] [--env NAME]... [--user USER] [--socket PATH]
  Print a systemd unit for a running service, from how it was started: the main
  pid is graft start (stable across upgrades), KillMode=mixed so that a stop
  drains, TimeoutStopSec from --graceful-timeout, ExecReload running graft reload.
  It carries GRAFT_*, NODE_ENV, NODE_OPTIONS and PORT as the service started with
  them; --env NAME adds another of its variables.`,
  fleet: `graft fleet status|reload|swap [module]|config apply [--set K=V]|deploy <dir|tarball>|rollback <release>
            --fleet nats://H:P --name SERVICE
  Every master of a service that registered with --fleet, on any host.
  status                     each host's generation, release, code version, config version and
                             readiness, and whether every host runs one config and one code version
  reload, swap, config apply roll the change out host by host: each host gets a signed order,
                             carries it out, and must be ready again before the next starts
  deploy <dir|tarball>       name the files by their digest, upload them once to the fleet's NATS
                             Object Store (bucket graft_releases), and roll the release out: each
                             host fetches it, checks it, deploys it and passes its health gate
                             (--min-healthy-time S for this rollout) before the next host starts;
                             on a failure the hosts already moved go back to the release each ran
                             before. The bucket then keeps what a host runs and the newest
                             --keep-releases N (default 5) others
  rollback <release>         every host back to that release (by its full id), fetched from the
                             Object Store by a host that no longer holds it
      --bus-key FILE         the key that signs orders (the masters check it with theirs)
      --max-unavailable N|N% hosts changing at once (default 1); held as slots in the store,
                             so two operators rolling out together stay within it
      --no-rollback          on a failure, leave the hosts already changed as they are
                             (default: config overrides and deployed releases are put back;
                             a reload or swap of the files on disk cannot be)
      --timeout S            how long one host may take (default 120)
      --slot-timeout S       how long to wait for a free slot (default 600)
      --json                 the report as JSON`,
  ls: `graft ls [--json]
  Every running service of this user, from any directory: name, master pid, state,
  workers ready of those wanted, generation, config version, uptime (since the
  service started, across upgrades) and port. Each master is asked over its
  control socket; one that does not answer within a second is listed as NOT ANSWERING.`,
  logs: `graft logs [name|entry] [--follow] [--lines N] [--log-dir DIR]
  The last N lines (default 20) of a service started with --log-dir, across its
  rotated files, oldest first; --follow (-f) keeps printing new lines, across
  rotations, until interrupted. JSON lines as stored, or short lines on a terminal.
  --log-dir DIR reads DIR/NAME.log without a running master.`,
  deploy: `graft deploy <dir|tarball> [name] [--json] [--socket PATH]
  Stage the service's files (a directory, or a .tar.gz such as npm pack's) as a
  release: an immutable, read-only copy under .graft/releases/ in the service's
  directory, named by the digest of its files (node_modules stays shared, from the
  service's directory). Then move every worker onto it with a zero-downtime reload,
  its workers running in the release's directory; with --min-healthy-time, hold it
  to the health gate and roll it back by itself if it turns unhealthy (exits
  non-zero with GRAFT_ROLLED_BACK and the reason). A release is checked against its
  digest before every generation that runs it: one edited by hand is refused.`,
  rollback: `graft rollback [name] [id] [--with-config] [--disk] [--json] [--socket PATH]
  Move back to the newest good release before the live one, or to release <id> (a
  prefix will do), in one zero-downtime reload: the release is already verified, and
  a TypeScript entry's build was kept, so nothing is compiled again. --with-config
  then puts back the \`graft config apply --set\` layer that release last served with
  (files and stores hold their own history: graft does not rewrite them). --disk
  leaves releases: back to the service's entry as it is on disk (while a release is
  live, graft reload and --watch reload that release).`,
  releases: `graft releases [name] [--json] [--socket PATH]
  The service's releases, newest first: id, when it went live (or was staged), who
  deployed it, the config version it went live with, and its outcome: live,
  previous, failed (never served), rolled back (and why).`,
  swap: `graft swap [name] [module] [--json] [--socket PATH]
  Swap changed code in place in every worker (services started with --swap).
  Exits non-zero with the error when a worker rejects the new generation; a
  change a swap cannot take falls back to a reload.`,
  order: `graft order reload|swap [module]|config [--set K=V] [--unset K] [--reset]
            --bus URL --bus-key FILE --name SERVICE [--host HOST|*] [--timeout S] [--expect N] [--json]
  Sign an order and send it to the masters of SERVICE started with --bus: a reload,
  a swap of a module they declared swappable (by the name graft status shows), or a
  config change. --host sends to one master (over NATS it waits for its answer);
  * (default) to all, printing each host's outcome as it arrives until --timeout
  (default 15) or until --expect N hosts answered. Exits non-zero if any host
  refused or failed the order, or none answered.`,
  keygen: `graft keygen --hmac FILE | --ed25519 FILE
  Write a new order key (mode 0600; never overwrites). --hmac: a shared secret for
  masters and senders alike. --ed25519: a private key for senders (FILE) and its
  public key for the masters (FILE.pub), which check orders but can't sign one.`,
  config: `graft config show [SERVICE] [keypath]   what the workers run, with its version
graft config check [SERVICE] FILE       validate FILE against the running service's schema; applies nothing
graft config apply [SERVICE] [--set K=V] [--unset K] [--reset]
                                        re-read the sources and move every worker (and its worker
                                        threads) to the result; --set overrides stay on top (over
                                        file edits) until --unset K or --reset
graft config history [SERVICE] [--json] recent versions: time, source, changed keys, accepted or rejected
  SERVICE is the service's name (or --name NAME), as for graft reload; without it, the only
  service started from this directory`,
};

/** The first line of each control command's help, for the overview. */
const oneLine: Record<string, string> = {
  reload: 'new generation of workers, zero downtime (same as SIGHUP)',
  status: 'master, generations, workers, config version (--json)',
  scale: 'change the worker count (SIGTTIN/SIGTTOU: one more/less)',
  stop: 'graceful stop (SIGTERM); --fast kills workers (SIGQUIT)',
  upgrade: 'replace the master process, keeping the port open (SIGUSR2)',
  swap: 'swap changed code in place in every worker (with --swap)',
  deploy: 'stage a release and move the service onto it; health gate, rollback',
  rollback: 'back to the previous good release (or a named one)',
  releases: 'the releases kept, with their outcome',
  systemd: 'print a systemd unit for a running service',
  ls: 'every running service of this user (--json)',
  logs: 'the last lines of a service\'s log file; --follow',
  fleet: 'every host of a service: status, rolling reload, swap, config apply, deploy, rollback',
  order: 'send a signed reload, swap or config order over a bus (--bus)',
  keygen: 'write a key to sign and check bus orders',
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
  return text && (['start', 'order', 'keygen', 'fleet', 'ls'].includes(command) ? text : `${text}\n\n${locate}`);
}
