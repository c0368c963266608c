/**
 * bench/fleet: three hosts (three graft masters on loopback ports, 2 workers
 * each) side by side with what a user would run instead, in one run.
 *
 * 1. A config put in the store → every worker of the 3 masters runs it: the
 *    time from the put to the last master's "config applied" (its workers
 *    all committed the version), for NATS JetStream KV, etcd, Redis and an
 *    Apollo config service (apollo-mock-server on a loopback port, a publish
 *    as the portal's). Against: seed 004's setup, an Apollo client in each
 *    cluster worker (ctrip-apollo under node:cluster, 3 hosts), timed until
 *    every worker printed the new value; the config file changed on each
 *    host and `pm2 reload` run on each (all three at once), timed until HTTP
 *    polling sees every host serve the new value; and the documented figure
 *    of a Kubernetes ConfigMap (not measured here).
 * 2. A rolling reload of the 3 hosts behind HAProxy under keep-alive load:
 *    `graft fleet reload` (one host at a time) against `pm2 reload` run host
 *    by host: failed requests and the time of a whole rollout.
 *
 *   node --import tsx bench/fleet/run.ts [--changes N] [--rollouts N] [--quick] ...
 *
 * Everything on 127.0.0.1 (NATS on 4222 and Redis on 6379 as the machine
 * runs them; etcd and HAProxy started here on free ports); every loop is
 * bounded in count and time; everything started is stopped on the way out.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { createClient } from 'redis';
import { startApollo, type ApolloServer } from '../lib/apollo-server.js';
import { onCleanup, runMain, tempDir } from '../lib/cleanup.js';
import { Cluster } from '../lib/cluster-driver.js';
import { Graft } from '../lib/graft-driver.js';
import { graftCli } from '../lib/graft.js';
import { startHaproxy } from '../lib/haproxy.js';
import { getFresh } from '../lib/http.js';
import { loadDuring, type LoadSummary } from '../lib/load.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { root, tsxImport } from '../lib/paths.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { runCommand } from '../lib/proc.js';
import { host, markdownTable, num, packageVersion, resultsHead, writeResults } from '../lib/report.js';
import { max, percentile, ratio } from '../lib/stats.js';
import { etcdEndpoint, startEtcd } from '../lib/stores.js';
import { sleep } from '../lib/wait.js';

const here = join(root, 'bench/fleet');
const HOSTS = ['h1', 'h2', 'h3'];
const NATS = 'nats://127.0.0.1:4222';
const REDIS = 'redis://127.0.0.1:6379';

const { values, resultsPath } = parseOptions('fleet', {
  changes: { default: 100, quick: 10, min: 1, help: 'config puts per store' },
  'pm2-changes': { default: 10, quick: 2, min: 1, help: 'PM2: file change + pm2 reload on every host' },
  rollouts: { default: 5, quick: 1, min: 1, help: 'rolling reloads of the 3 hosts under load, per supervisor' },
  connections: { default: 64, min: 1, help: 'keep-alive connections through HAProxy' },
  workers: { default: 2, min: 1, help: 'workers per host' },
  pause: { default: 100, min: 0, unit: 'MS', help: 'pause between two config changes' },
});

const CHANGE_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------- part 1: a put reaches every worker

interface Store {
  name: string;
  /** What `--config` takes. */
  url: string;
  put(value: number): Promise<void>;
  close(): Promise<void>;
}

async function natsStore(bucket: string): Promise<Store> {
  const nc = await connect({ servers: '127.0.0.1:4222' });
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  return {
    name: 'NATS JetStream KV',
    url: `${NATS}/${bucket}/app`,
    put: async (v) => void (await kv.put('app.limit', String(v))),
    close: async () => {
      await kv.destroy().catch(() => {});
      await nc.close();
    },
  };
}

async function etcdStore(endpoint: string, prefix: string): Promise<Store> {
  const client = new Etcd3({ hosts: endpoint });
  return {
    name: 'etcd',
    url: `etcd://${endpoint.replace(/^https?:\/\//, '')}/${prefix}`,
    put: async (v) => void (await client.put(`/${prefix}/limit`).value(String(v))),
    close: async () => {
      await client.delete().prefix(`/${prefix}`).catch(() => {});
      client.close();
    },
  };
}

async function redisStore(key: string): Promise<Store> {
  const client = createClient({ url: REDIS });
  await client.connect();
  return {
    name: 'Redis',
    url: `${REDIS}/${key}`,
    put: async (v) => {
      await client.hSet(key, 'limit', String(v));
      await client.publish(`${key}:changed`, '1');
    },
    close: async () => {
      await client.del(key);
      await client.quit();
    },
  };
}

/** An app's `application` namespace in an Apollo config service; a put is a release, as the portal's Publish makes one. */
function apolloStore(server: ApolloServer, appId: string): Store {
  return {
    name: 'Apollo',
    url: server.url(appId, 'application'),
    put: async (v) => server.publish(appId, 'application', { limit: String(v) }),
    close: async () => {},
  };
}

interface Propagation {
  /** The table's row. */
  label: string;
  /** graft's (the goal applies), or the peer's. */
  graft: boolean;
  store: string;
  ms: number[];
  lost: number;
  rejected: number;
}

/** Three masters on one store source; each put must show up as a "config applied" line on all three. */
async function propagation(store: Store, changes: number, pauseMs: number, workers: number): Promise<Propagation> {
  const masters = await Promise.all(HOSTS.map((id) => Graft.start({ entry: join(here, 'app.ts'), workers, args: ['--config', store.url, '--name', 'bench', '--host-id', id] })));
  const out: Propagation = { label: `graft, ${store.name}`, graft: true, store: store.name, ms: [], lost: 0, rejected: 0 };
  try {
    // Timed in the steady state: 6 warm workers booting on 2 cores, 5 s into the run, put outliers into the p99.
    await Promise.all(masters.map((m) => m.settled()));
    for (let i = 1; i <= changes; i++) {
      const from = masters.map((m) => m.lines.length);
      const t0 = performance.now();
      await store.put(100 + i);
      const seen = await Promise.all(
        masters.map((m, j) => m.waitFor((l) => (l.record?.msg === 'config applied' || l.record?.msg === 'config change rejected; the live config stays') && l.record?.role === 'master', from[j]!, CHANGE_TIMEOUT_MS)),
      );
      if (seen.some((s) => s === undefined)) out.lost++;
      else if (seen.some((s) => s!.line.record?.msg !== 'config applied')) out.rejected++;
      else out.ms.push(max(seen.map((s) => s!.line.at)) - t0);
      await sleep(pauseMs);
    }
  } finally {
    await Promise.all(masters.map((m) => m.stop()));
  }
  log(`${store.name}: ${out.ms.length} changes timed, p50 ${num(percentile(out.ms, 0.5), 1)} ms, p99 ${num(percentile(out.ms, 0.99), 1)} ms`);
  return out;
}

/**
 * Seed 004's setup: 3 hosts of node:cluster, each worker with its own Apollo
 * client (bench/fleet/apollo-worker.mjs: one long poll per worker, not per
 * host); a release is timed until every worker of every host printed it.
 */
async function apolloPerWorker(store: Store, server: ApolloServer, appId: string, changes: number, pauseMs: number, workers: number): Promise<Propagation> {
  const limitOf = (text: string): { limit: number; pid: number } | undefined => {
    try {
      const r = JSON.parse(text) as { limit?: unknown; pid?: unknown };
      return typeof r.limit === 'number' && typeof r.pid === 'number' ? { limit: r.limit, pid: r.pid } : undefined;
    } catch {
      return undefined;
    }
  };
  const hosts = await Promise.all(HOSTS.map(() => Cluster.start('bench/fleet/apollo-worker.mjs', workers, { APOLLO_HOST: `http://127.0.0.1:${server.port}`, APOLLO_APP: appId })));
  const out: Propagation = { label: 'Apollo client in each worker (seed 004: ctrip-apollo under node:cluster)', graft: false, store: store.name, ms: [], lost: 0, rejected: 0 };
  try {
    /** The line at which every worker of host h has printed `value`, from line `from` on. */
    const allOf = async (h: Cluster, value: number, from: number): Promise<number | undefined> => {
      const seen = new Map<number, number>();
      const hit = await h.waitFor(
        (l) => {
          const r = limitOf(l.text);
          if (r?.limit === value) seen.set(r.pid, l.at);
          return seen.size === workers;
        },
        from,
        CHANGE_TIMEOUT_MS,
      );
      return hit ? max([...seen.values()]) : undefined;
    };
    if ((await Promise.all(hosts.map((h) => allOf(h, 100, 0)))).some((at) => at === undefined)) throw new Error('the per-worker Apollo clients did not all read the first release');
    for (let i = 1; i <= changes; i++) {
      const from = hosts.map((h) => h.lines.length);
      const t0 = performance.now();
      await store.put(100 + i);
      const seen = await Promise.all(hosts.map((h, j) => allOf(h, 100 + i, from[j]!)));
      if (seen.some((at) => at === undefined)) out.lost++;
      else out.ms.push(max(seen as number[]) - t0);
      await sleep(pauseMs);
    }
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
  }
  log(`${out.label}: ${out.ms.length} changes timed, p50 ${num(percentile(out.ms, 0.5), 1)} ms, p99 ${num(percentile(out.ms, 0.99), 1)} ms`);
  return out;
}

/** PM2 on three hosts: write each host's file, `pm2 reload` all three at once, poll until every host serves the value. */
async function pm2Propagation(changes: number, workers: number): Promise<{ ms: number[]; lost: number; failedRequests: number }> {
  const dir = tempDir('bench-fleet-pm2-');
  const files = HOSTS.map((id) => join(dir, `${id}.json`));
  files.forEach((f) => writeFileSync(f, JSON.stringify({ limit: 100 })));
  const hosts = await Promise.all(HOSTS.map((id, i) => Pm2.start({ app: `fleet-${id}`, script: join(here, 'pm2-app.js'), workers, env: { APP_CONFIG: files[i]! } })));
  const out = { ms: [] as number[], lost: 0, failedRequests: 0 };
  try {
    for (let i = 1; i <= changes; i++) {
      const value = 1000 + i;
      const t0 = performance.now();
      files.forEach((f) => writeFileSync(f, JSON.stringify({ limit: value })));
      const reloads = Promise.all(hosts.map((h) => h.command(['reload', h.app], 60_000)));
      const deadline = t0 + 60_000;
      const done = new Set<number>();
      // Every host must answer with the value STREAK times in a row (new connections reach every worker).
      const streak = new Array<number>(hosts.length).fill(0);
      while (done.size < hosts.length && performance.now() < deadline) {
        await Promise.all(
          hosts.map(async (h, j) => {
            if (done.has(j)) return;
            try {
              const r = await getFresh(h.url, 2000);
              streak[j] = JSON.parse(r.body).limit === value ? streak[j]! + 1 : 0;
              if (streak[j]! >= 10 * workers) done.add(j);
            } catch {
              out.failedRequests++;
              streak[j] = 0;
            }
          }),
        );
      }
      if (done.size < hosts.length) out.lost++;
      else out.ms.push(performance.now() - t0);
      await reloads;
    }
  } finally {
    await Promise.all(hosts.map((h) => h.stop()));
  }
  log(`PM2: ${out.ms.length} changes timed, p50 ${num(percentile(out.ms, 0.5), 0)} ms`);
  return out;
}

// ---------------------------------------------------------------- part 2: rolling reload behind HAProxy

interface Rolling {
  rolloutsOk: number;
  rolloutMs: number[];
  load: LoadSummary;
  failed: number;
}

async function underLoad(url: string, connections: number, work: () => Promise<void>): Promise<{ load: LoadSummary; failed: number }> {
  const load = (await loadDuring({ url, connections, durationS: 900, timeoutS: 10, settleMs: 1000, tailMs: 1000 }, work)).summary;
  return { load, failed: load.errors + load.non2xx + load.unanswered };
}

/**
 * The 3 hosts behind HAProxy under keep-alive load, `rollouts` rollouts one
 * after the other (each `rollOnce` says whether it went through), then
 * everything stopped.
 */
async function rolling(who: string, hostPorts: number[], stopHosts: () => Promise<unknown>, rollouts: number, connections: number, rollOnce: () => Promise<boolean>): Promise<Rolling> {
  const lb = await startHaproxy({ backends: hostPorts.map((port, i) => ({ name: HOSTS[i]!, port })), dir: tempDir('bench-fleet-lb-') });
  const out: Rolling = { rolloutsOk: 0, rolloutMs: [], load: undefined as never, failed: 0 };
  try {
    const { load, failed } = await underLoad(lb.url, connections, async () => {
      for (let i = 0; i < rollouts; i++) {
        const t0 = performance.now();
        if (!(await rollOnce())) continue;
        out.rolloutsOk++;
        out.rolloutMs.push(performance.now() - t0);
      }
    });
    out.load = load;
    out.failed = failed;
  } finally {
    await lb.stop();
    await stopHosts();
  }
  log(`${who}: ${out.rolloutsOk} rollouts, ${out.failed} failed requests of ${out.load.answered + out.failed}`);
  return out;
}

async function graftRolling(rollouts: number, connections: number, workers: number): Promise<Rolling> {
  const keyFile = join(tempDir('bench-fleet-key-'), 'fleet.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'));
  const service = `bench-${randomBytes(3).toString('hex')}`;
  const masters = await Promise.all(
    HOSTS.map((id) => Graft.start({ entry: join(root, 'bench/reload/app.js'), workers, args: ['--name', service, '--host-id', id, '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile] })),
  );
  for (const m of masters) {
    if (!(await m.waitFor((l) => l.record?.msg === 'registered in the fleet', 0, 30_000))) throw new Error(`a master did not register:\n${m.tail()}`);
  }
  await Promise.all(masters.map((m) => m.settled()));
  return rolling('graft', masters.map((m) => m.port), () => Promise.all(masters.map((m) => m.stop())), rollouts, connections, async () => {
    const r = await runCommand(['--import', tsxImport, graftCli, 'fleet', 'reload', '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--max-unavailable', '1'], { timeoutMs: 300_000 });
    if (r.code !== 0) log(`graft fleet reload failed: ${r.stderr}${r.stdout}`);
    return r.code === 0;
  });
}

async function pm2Rolling(rollouts: number, connections: number, workers: number): Promise<Rolling> {
  const hosts = await Promise.all(HOSTS.map((id) => Pm2.start({ app: `roll-${id}`, script: join(root, 'bench/reload/app.js'), workers })));
  return rolling('PM2', hosts.map((h) => h.port), () => Promise.all(hosts.map((h) => h.stop())), rollouts, connections, async () => {
    let ok = true;
    // What a PM2 user scripts: one host after the other, each `pm2 reload` waited for.
    for (const h of hosts) ok = (await h.reload()).ok && ok;
    return ok;
  });
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const changes = values.changes;
  const workers = values.workers;
  const suffix = randomBytes(3).toString('hex');
  const etcd = await startEtcd({ dir: tempDir('bench-fleet-etcd-') });
  onCleanup(() => etcd.stop());
  const stores = [await natsStore(`bench_fleet_${suffix}`), await etcdStore(etcdEndpoint(etcd), `bench-${suffix}`), await redisStore(`bench:fleet:${suffix}`)];
  const propagations: Propagation[] = [];
  for (const store of stores) {
    await store.put(100);
    propagations.push(await propagation(store, changes, values.pause, workers));
    await store.close();
  }
  await etcd.stop();
  // Apollo holds a long poll 60 s; apollo-mock-server answers every held poll at a release.
  const apollo = await startApollo(60_000);
  onCleanup(() => apollo.stop());
  const apolloApp = `bench-fleet-${suffix}`;
  const apolloSource = apolloStore(apollo, apolloApp);
  await apolloSource.put(100);
  propagations.push(await propagation(apolloSource, changes, values.pause, workers));
  await apolloSource.put(100);
  propagations.push(await apolloPerWorker(apolloSource, apollo, apolloApp, changes, values.pause, workers));
  await apollo.stop();
  const pm2 = await pm2Propagation(values['pm2-changes'], workers);
  const graftRoll = await graftRolling(values.rollouts, values.connections, workers);
  const pm2Roll = await pm2Rolling(values.rollouts, values.connections, workers);

  const pm2p50 = percentile(pm2.ms, 0.5);
  const graftPropagations = propagations.filter((p) => p.graft);
  const table1 = markdownTable(
    ['put → every worker of 3 hosts runs it', 'p50 ms', 'p99 ms', 'max ms', 'changes', 'lost', 'p50 ÷ PM2'],
    [
      ...propagations.map((p) => [p.label, num(percentile(p.ms, 0.5), 1), num(percentile(p.ms, 0.99), 1), num(max(p.ms), 1), String(p.ms.length), String(p.lost + p.rejected), num(ratio(percentile(p.ms, 0.5), pm2p50), 3)]),
      ['PM2: file on each host + `pm2 reload` on each (at once), HTTP-polled', num(pm2p50, 0), num(percentile(pm2.ms, 0.99), 0), num(max(pm2.ms), 0), String(pm2.ms.length), String(pm2.lost), '1'],
      ['Kubernetes ConfigMap volume (documented, not measured)', '60000+', '', '', '', '', ''],
    ],
  );
  const table2 = markdownTable(
    ['rolling reload of 3 hosts behind HAProxy', 'rollouts', 'failed requests', 'answered', 'rollout p50 s', 'rollout ÷ PM2'],
    [
      ['graft fleet reload --max-unavailable 1', `${graftRoll.rolloutsOk}/${values.rollouts}`, String(graftRoll.failed), String(graftRoll.load.answered), num(percentile(graftRoll.rolloutMs, 0.5) / 1000, 2), num(ratio(percentile(graftRoll.rolloutMs, 0.5), percentile(pm2Roll.rolloutMs, 0.5)), 2)],
      ['PM2: `pm2 reload` host by host', `${pm2Roll.rolloutsOk}/${values.rollouts}`, String(pm2Roll.failed), String(pm2Roll.load.answered), num(percentile(pm2Roll.rolloutMs, 0.5) / 1000, 2), '1'],
    ],
  );
  const failures = (l: LoadSummary) => `${l.errors} errors (${l.resets} resets, ${l.timeouts} timeouts), ${l.non2xx} non-2xx, ${l.unanswered} unanswered`;
  const checks = [
    `goal: p99 under 50 ms from put to every worker: ${graftPropagations.map((p) => `${p.store} ${percentile(p.ms, 0.99) < 50 ? 'met' : 'missed'} (${num(percentile(p.ms, 0.99), 1)} ms)`).join(', ')}`,
    `goal: 0 failed requests in a rolling reload: graft ${graftRoll.failed} (${failures(graftRoll.load)}); PM2 ${pm2Roll.failed} (${failures(pm2Roll.load)})`,
    `PM2 propagation: ${pm2.failedRequests} polling requests failed while the hosts reloaded`,
  ];
  console.log(table1);
  console.log('');
  console.log(table2);
  console.log('');
  for (const c of checks) console.log(`- ${c}`);
  if (resultsPath !== undefined) {
    const machine = host();
    writeResults(
      resultsPath,
      `${resultsHead('fleet', [`PM2 ${packageVersion('pm2')}`, `etcd3 ${packageVersion('etcd3')}`, `@nats-io/kv ${packageVersion('@nats-io/kv')}`, `redis ${packageVersion('redis')}`, `apollo-mock-server ${packageVersion('apollo-mock-server')}`, `ctrip-apollo ${packageVersion('ctrip-apollo')}`], [
        `machine: ${machine.cores} cores (${machine.model}), a shared 2-core box: absolute times are noise, read the ratios and counts`,
        `3 hosts = 3 masters (or 3 PM2 daemons, each its own PM2_HOME) on loopback ports, ${workers} workers each; NATS 2.9 and Redis 7 as the machine runs them, etcd 3.4 and apollo-mock-server started here`,
        `part 1: bench/fleet/app.ts reads \`limit\` from the store; a change is timed from the put to the last master's "config applied" (every worker of that master committed it); ${values.pause} ms between changes; the first once every master has settled (its standby's warm workers started, 5 s after it loaded: until then they boot beside the measurement)`,
        `part 2: bench/reload/app.js (5 ms per request) behind HAProxy 2.6 (round robin, keep-alive, health checks, no retries), ${values.connections} keep-alive connections (autocannon) from 1 s before the first rollout to 1 s after the last`,
      ])}
## A put reaches every worker

${table1}

## Rolling reload under load

${table2}

## Checks

${checks.map((c) => `- ${c}`).join('\n')}

## Notes

- Apollo is apollo-mock-server ${packageVersion('apollo-mock-server')} (the server the ctrip-apollo client is tested against) on a loopback port, holding each long poll 60 s as Apollo does; a put is a release. graft reads it once per host (3 long polls); seed 004's setup, an Apollo client in each worker (ctrip-apollo ${packageVersion('ctrip-apollo')} under bare node:cluster), holds ${HOSTS.length} × ${workers} long polls and each worker applies the release on its own, unvalidated, at its own moment. Apollo documents about 1 s from a release to its clients on a real deployment (its config service scans for releases once a second); the mock notifies at once, so these rows compare the two client setups, not Apollo's server.
- A ConfigMap mounted as a volume is refreshed by the kubelet's sync loop, 60 s by default plus its cache TTL (Kubernetes docs); it does not validate the content before the app sees it.
- PM2 cannot push config into running workers, so its users change the file on each host and run \`pm2 reload\` there; here all three at once, the fastest a script can go (and the least available).
- Part 2's "answered" counts are not a throughput comparison: the load runs from 1 s before the first rollout to 1 s after the last, and graft's ${values.rollouts} rollouts took ${num(graftRoll.rolloutMs.reduce((a, b) => a + b, 0) / 1000, 0)} s in all (new workers booting back to back on two cores next to the load generator and HAProxy) while PM2's took ${num(pm2Roll.rolloutMs.reduce((a, b) => a + b, 0) / 1000, 0)} s, most of it waiting for its kill timeout with no new process booting. Steady throughput is bench/reload's business.
`,
    );
  }
}

await runMain(main);
