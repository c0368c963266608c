/**
 * bench/releases: a fleet deploy of 3 hosts and an automatic rollback of a
 * bad release, side by side with what a PM2 user does on the same hosts.
 *
 * Three hosts (three graft masters on loopback ports, 2 workers each) behind
 * HAProxy under keep-alive load. Each round deploys a good release to every
 * host (`graft fleet deploy`, each host held to its health gate), then a bad
 * one: it boots and reports ready, then answers 500 to every other request on
 * host h2. h2's gate rolls it back by itself, the rollout stops there, and h1
 * is sent back to the good release; h3 is never touched.
 *
 * Against: three PM2 daemons (cluster mode) behind the same HAProxy. A deploy
 * copies the release's files into each host's directory and runs `pm2
 * reload` there, host by host; the bad release goes to h1 and h2 (as far as
 * graft's rollout got), and its rollback copies the good files back and runs
 * `pm2 reload` on both (PM2 has no health gate; its users watch and revert).
 * `pm2 deploy revert` needs a git remote reached over SSH, which this machine
 * does not have.
 *
 *   node --import tsx bench/releases/run.ts [--rounds N] [--healthy S] [--quick] ...
 *
 * Everything on 127.0.0.1 (NATS on 4222 as the machine runs it; HAProxy
 * started here); every loop is bounded in count and time; everything started
 * is stopped on the way out.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runMain, tempDir } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import { graftCli } from '../lib/graft.js';
import { startHaproxy } from '../lib/haproxy.js';
import { loadDuring, type LoadSummary } from '../lib/load.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { root, tsxImport } from '../lib/paths.js';
import { Pm2 } from '../lib/pm2-driver.js';
import type { Line } from '../lib/proc.js';
import { runCommand } from '../lib/proc.js';
import { host, markdownTable, num, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { percentile, ratio } from '../lib/stats.js';

const here = join(root, 'bench/releases');
const HOSTS = ['h1', 'h2', 'h3'];
const NATS = 'nats://127.0.0.1:4222';

const { values, resultsPath } = parseOptions('releases', {
  rounds: { default: 3, quick: 1, min: 1, help: 'rounds of a good release everywhere, then a bad one rolled back' },
  healthy: { default: 2, min: 1, unit: 'S', help: 'graft: --min-healthy-time of each host' },
  connections: { default: 64, min: 1, help: 'keep-alive connections through HAProxy' },
  workers: { default: 2, min: 1, help: 'workers per host' },
});

/**
 * A release's files: the app and its version; `bad` adds the marker that makes
 * h2 fail. `entry`: graft runs the app as app.ts (the same code: graft compiles
 * each release once and keeps the build, which a rollback must reuse); PM2
 * cannot run TypeScript, so it gets app.js.
 */
function releaseDir(base: string, version: string, bad = false, entry = 'app.js'): string {
  const dir = join(base, version);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(here, 'app.js'), join(dir, entry));
  writeFileSync(join(dir, 'version.txt'), `${version}\n`);
  if (bad) writeFileSync(join(dir, 'BAD'), '');
  return dir;
}

interface Side {
  /** Per host, ms: a deploy (graft: the host's reload onto the release, from its log; PM2: copy + `pm2 reload`). */
  deployMs: number[];
  /** Per host, ms: putting the good release back (graft: the host's rollback reload, from its log). */
  rollbackMs: number[];
  /** graft: the whole host step of a deploy, health gate included. */
  hostStepMs: number[];
  /** Bad rounds the tool brought back to the good release everywhere. */
  recovered: number;
  load: LoadSummary;
  /** Rollbacks that compiled anything (graft: a "release compiled" line during a rollback). */
  rebuilt: number;
}

/** Keep-alive load through `url` from 1 s before `work` to 1 s after it. */
async function underLoad(url: string, connections: number, work: () => Promise<void>): Promise<LoadSummary> {
  return (await loadDuring({ url, connections, durationS: 1200, timeoutS: 10, settleMs: 1000, tailMs: 1000 }, work)).summary;
}

/** Each reload a graft master logged from line `from` on: its reason, how long it took (the master's clock), and how many compiles ran in it. */
function reloads(g: Graft, from: number): Array<{ reason: string; ms: number; compiles: number }> {
  const out: Array<{ reason: string; ms: number; compiles: number }> = [];
  let started: Line | undefined;
  let compiles = 0;
  for (const l of g.lines.slice(from)) {
    const r = l.record;
    if (r?.role !== 'master') continue;
    if (r.msg === 'reload requested') {
      started = l;
      compiles = 0;
    }
    if (r.msg === 'release compiled' || r.msg === 'entry compiled') compiles++;
    if (r.msg === 'reload done' && started) {
      out.push({ reason: String(started.record!.reason), ms: Date.parse(r.time as string) - Date.parse(started.record!.time as string), compiles });
      started = undefined;
    }
  }
  return out;
}

async function graftSide(rounds: number, healthyS: number, connections: number, workers: number): Promise<Side> {
  const base = tempDir('bench-releases-');
  const keyFile = join(base, 'fleet.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'));
  const service = `bench-rel-${randomBytes(3).toString('hex')}`;
  const masters: Graft[] = [];
  for (const id of HOSTS) {
    const dir = releaseDir(join(base, 'hosts', id), 'disk', false, 'app.ts');
    masters.push(
      await Graft.start({
        entry: 'app.ts',
        cwd: dir,
        workers,
        env: { HOST_ID: id },
        args: ['--name', service, '--host-id', id, '--fleet', NATS, '--bus', NATS, '--bus-key', keyFile, '--min-healthy-time', String(healthyS)],
      }),
    );
  }
  for (const m of masters) {
    if (!(await m.waitFor((l) => l.record?.msg === 'registered in the fleet', 0, 30_000))) throw new Error(`a master did not register:\n${m.tail()}`);
  }
  const fleet = (...args: string[]) =>
    runCommand(['--import', tsxImport, graftCli, 'fleet', ...args, '--fleet', NATS, '--name', service, '--bus-key', keyFile, '--json'], { timeoutMs: 300_000 });
  const out: Side = { deployMs: [], rollbackMs: [], hostStepMs: [], recovered: 0, load: undefined as never, rebuilt: 0 };
  const lb = await startHaproxy({ backends: masters.map((m, i) => ({ name: HOSTS[i]!, port: m.port })), dir: tempDir('bench-releases-lb-') });
  try {
    out.load = await underLoad(lb.url, connections, async () => {
      for (let round = 1; round <= rounds; round++) {
        const from = masters.map((m) => m.lines.length);
        const good = await fleet('deploy', releaseDir(base, `good-${round}`, false, 'app.ts'));
        if (good.code !== 0) throw new Error(`graft fleet deploy of a good release failed:\n${good.stderr}${good.stdout}`);
        for (const s of (JSON.parse(good.stdout) as { steps: Array<{ startedAt: string; endedAt: string }> }).steps) out.hostStepMs.push(Date.parse(s.endedAt) - Date.parse(s.startedAt));
        masters.forEach((m, i) => out.deployMs.push(...reloads(m, from[i]!).filter((r) => r.reason.startsWith('deploy')).map((r) => r.ms)));
        const before = masters.map((m) => m.lines.length);
        const bad = await fleet('deploy', releaseDir(base, `bad-${round}`, true, 'app.ts'));
        const report = JSON.parse(bad.stdout) as { stoppedAt?: string; rolledBack: Array<{ host: string; ok: boolean }> };
        if (bad.code === 0 || report.stoppedAt !== 'h2') throw new Error(`the bad release was not stopped at h2:\n${bad.stderr}${bad.stdout}`);
        for (const [i, m] of masters.entries()) {
          for (const r of reloads(m, before[i]!).filter((x) => x.reason.startsWith('rollback'))) {
            out.rollbackMs.push(r.ms);
            out.rebuilt += r.compiles;
          }
        }
        const statuses = (await Promise.all(masters.map((m) => m.control({ cmd: 'status' })))) as Array<{ master: { release?: string } }>;
        const goodId = (JSON.parse(good.stdout) as { steps: Array<{ outcome: { value: { release: string } } }> }).steps[0]!.outcome.value.release;
        if (statuses.every((s) => s.master.release === goodId) && report.rolledBack.every((r) => r.ok)) out.recovered++;
        log(`graft round ${round}: good release everywhere, bad one stopped at h2 and rolled back (${report.rolledBack.map((r) => r.host).join(', ')} by the rollout)`);
      }
    });
  } finally {
    await lb.stop();
    await Promise.all(masters.map((m) => m.stop()));
  }
  return out;
}

async function pm2Side(rounds: number, connections: number, workers: number): Promise<Side> {
  const base = tempDir('bench-releases-pm2-');
  const dirs = HOSTS.map((id) => releaseDir(join(base, 'hosts', id), 'disk'));
  const hosts = await Promise.all(HOSTS.map((id, i) => Pm2.start({ app: `rel-${id}`, script: join(dirs[i]!, 'app.js'), workers, env: { HOST_ID: id } })));
  const out: Side = { deployMs: [], rollbackMs: [], hostStepMs: [], recovered: 0, load: undefined as never, rebuilt: 0 };
  /** What a PM2 user scripts per host: copy the release's files over the host's, then `pm2 reload`; timed. */
  const put = async (i: number, release: string): Promise<{ ms: number; ok: boolean }> => {
    const t0 = performance.now();
    rmSync(join(dirs[i]!, 'BAD'), { force: true });
    for (const f of ['app.js', 'version.txt', 'BAD']) {
      try {
        copyFileSync(join(release, f), join(dirs[i]!, f));
      } catch {
        // a release without the marker
      }
    }
    const r = await hosts[i]!.reload();
    return { ms: performance.now() - t0, ok: r.ok };
  };
  const lb = await startHaproxy({ backends: hosts.map((h, i) => ({ name: HOSTS[i]!, port: h.port })), dir: tempDir('bench-releases-pm2-lb-') });
  try {
    out.load = await underLoad(lb.url, connections, async () => {
      for (let round = 1; round <= rounds; round++) {
        const good = releaseDir(base, `good-${round}`);
        for (let i = 0; i < hosts.length; i++) out.deployMs.push((await put(i, good)).ms);
        const bad = releaseDir(base, `bad-${round}`, true);
        // As far as graft's rollout got: h1, then h2, where it fails.
        for (const i of [0, 1]) await put(i, bad);
        let ok = true;
        for (const i of [1, 0]) {
          const back = await put(i, good);
          out.rollbackMs.push(back.ms);
          ok = ok && back.ok;
        }
        if (ok) out.recovered++;
        log(`PM2 round ${round}: good release everywhere, bad one on h1 and h2, copied back and reloaded`);
      }
    });
  } finally {
    await lb.stop();
    await Promise.all(hosts.map((h) => h.stop()));
  }
  return out;
}

async function main(): Promise<void> {
  const { rounds, healthy, connections, workers } = values;
  const graft = await graftSide(rounds, healthy, connections, workers);
  const pm2 = await pm2Side(rounds, connections, workers);
  const failed = (l: LoadSummary) => l.errors + l.unanswered;
  const p50 = (xs: number[]) => percentile(xs, 0.5);
  const row = (label: string, side: Side, vsPm2: string) => [
    label,
    `${side.recovered}/${rounds}`,
    String(failed(side.load)),
    String(side.load.non2xx),
    String(side.load.answered),
    num(p50(side.deployMs) / 1000, 2),
    num(p50(side.rollbackMs) / 1000, 2),
    times(ratio(p50(side.rollbackMs), p50(side.deployMs))),
    vsPm2,
  ];
  const table = markdownTable(
    ['3 hosts behind HAProxy', 'rounds recovered', 'failed requests', '5xx answered', 'answered', 'deploy per host p50 s', 'rollback per host p50 s', 'rollback ÷ deploy', 'rollback ÷ PM2'],
    [
      row(`graft fleet deploy (--min-healthy-time ${healthy}); the bad release rolled back by itself`, graft, times(ratio(p50(graft.rollbackMs), p50(pm2.rollbackMs)))),
      row('PM2: copy files + `pm2 reload` host by host; the bad release copied back by hand', pm2, '1'),
    ],
  );
  const detail = (l: LoadSummary) => `${l.errors} errors (${l.resets} resets, ${l.timeouts} timeouts), ${l.unanswered} unanswered`;
  const checks = [
    `goal: 0 failed requests: graft ${failed(graft.load) === 0 ? 'met' : 'missed'} (${detail(graft.load)}); PM2 ${detail(pm2.load)}`,
    `goal: a host's rollback under its deploy's reload time: ${p50(graft.rollbackMs) <= p50(graft.deployMs) ? 'met' : 'missed'} (${num(p50(graft.rollbackMs), 0)} ms against ${num(p50(graft.deployMs), 0)} ms, p50)`,
    `goal: a rollback never rebuilds: ${graft.rebuilt === 0 ? 'met' : 'missed'} (${graft.rebuilt} builds during rollbacks)`,
    `graft: the whole host step of a good deploy, health gate included: p50 ${num(p50(graft.hostStepMs) / 1000, 2)} s`,
    `5xx answered are the bad release's own (h2 answers 500 to every other request): graft's gate rolled it back by itself (${graft.load.non2xx} in ${rounds} rounds); under PM2 they run until someone reverts (here the script's next step: ${pm2.load.non2xx})`,
    'the rollback is a reload onto the release kept on the host (already verified, its build kept): the old generation has drained by the time the gate fails, so it cannot take the traffic back, and a rollback takes about as long as a deploy\'s reload',
  ];
  console.log(table);
  console.log('');
  for (const c of checks) console.log(`- ${c}`);
  if (resultsPath !== undefined) {
    const machine = host();
    writeResults(
      resultsPath,
      `${resultsHead('releases', [`PM2 ${packageVersion('pm2')}`, `@nats-io/obj ${packageVersion('@nats-io/obj')}`], [
        `machine: ${machine.cores} cores (${machine.model}), a shared 2-core box: absolute times are noise, read the ratios and counts`,
        `3 hosts = 3 graft masters (or 3 PM2 daemons, each its own PM2_HOME) on loopback ports, ${workers} workers each, behind HAProxy 2.6 (round robin, keep-alive, health checks, no retries); NATS 2.9 as the machine runs it (the fleet's registry, orders and Object Store)`,
        `bench/releases/app.js (5 ms per request); ${rounds} rounds of a good release to every host, then a bad one (ready, then 500 on every other request on h2); ${connections} keep-alive connections (autocannon) from 1 s before the first round to 1 s after the last`,
        'graft deploy per host: the host\'s reload onto the release (its log, "reload requested" to "reload done"); rollback per host: the same for its rollback reloads (h2 by its own gate, h1 by the rollout). PM2: copying the files and `pm2 reload`, timed by the script',
      ])}
## A release everywhere, and a bad one rolled back

${table}

## Checks

${checks.map((c) => `- ${c}`).join('\n')}
`,
    );
  }
}

await runMain(main);
