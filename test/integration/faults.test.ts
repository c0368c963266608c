import http from 'node:http';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { pathsForSocket } from '../../src/registry/paths.js';
import { fixture, isAlive, startGraft, waitFor, type GraftProcess } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';
import { getFresh } from '../../bench/lib/http.js';

/** Kill the master in control with SIGKILL; resolves with the pid of the master the keeper starts instead, once it serves. */
async function crash(g: GraftProcess): Promise<{ dead: number; next: number }> {
  const dead = (await g.status()).master.pid;
  const from = g.logs.length;
  process.kill(dead, 'SIGKILL');
  const running = await g.waitForLog((l) => l.msg === 'master running' && l.pid !== dead, 60_000, from);
  return { dead, next: running.pid };
}

describe('a master crash is a restart, not an outage', () => {
  test('kill -9 of the master under keep-alive load: no request fails, the keeper starts a new master on the same sockets with the same config, overrides and generation line, and the old workers finish and exit', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, env: { DELAY_MS: '20' } });
    try {
      await g.waitRunning();
      const apply = await g.cli('config', 'apply', '--set', 'greeting=hi');
      assert.equal(apply.code, 0, apply.stderr);
      const before = await g.status();
      const oldWorkers = before.workers.map((w) => w.pid);
      // A standby that dies once it has loaded (the OOM killer, a stray kill) is replaced at once.
      const firstStandby = (await g.waitForLog((l) => l.msg === 'standby master started')).standby as number;
      await g.waitForLog((l) => l.msg === 'standby master ready' && l.standby === firstStandby);
      process.kill(firstStandby, 'SIGKILL');
      const died = await g.waitForLog((l) => l.msg === 'the standby master died' && l.standby === firstStandby);
      assert.equal(died.replaced, true);
      const secondStandby = (await g.waitForLog((l) => l.msg === 'standby master ready' && l.standby !== firstStandby)).standby as number;
      // It starts its warm workers a few seconds after it has loaded (none for a service stopped by then).
      await g.waitForLog((l) => l.msg === 'standby warm workers started' && l.pid === secondStandby, 30_000);
      // The state file is written before each command (the config apply above) is answered.
      const stateFile = pathsForSocket(g.socket).state;
      const { value, load, failed } = await underLoad(
        g.url,
        async () => {
          // The kill comes once the workers hold every connection of the load. A connection the master has
          // accepted (node:cluster's round-robin accepts in the master) and not yet passed to a worker dies
          // with it: a kill -9 in the load's opening burst of 32 connects reset up to 6 of them here.
          await waitFor(async () => (await g.status()).workers.reduce((n, w) => n + w.connections, 0) >= 32, 30_000, 'the workers to hold all 32 connections');
          const { dead, next } = await crash(g);
          // Load runs on until the dead master's workers have finished what they held and exited.
          for (const pid of oldWorkers) await waitFor(() => !isAlive(pid), 30_000, `old worker ${pid} exits`);
          return { dead, next };
        },
        { connections: 32 },
      );
      assert.ok(load.answered > 200, `only ${load.answered} requests were answered`);
      assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
      assert.ok(existsSync(stateFile), 'the master keeps a state file');
      const after = await g.status();
      assert.equal(after.master.pid, value.next);
      assert.notEqual(after.master.pid, value.dead);
      assert.equal(after.master.keeper, g.pid, 'the keeper stayed');
      assert.equal((after.master as { restarts?: number }).restarts, 1, 'status counts the restart');
      assert.equal(after.master.config?.version, before.master.config?.version, 'same config version');
      assert.equal(after.master.generation, before.master.generation + 1, 'the generation line goes on');
      assert.equal(after.master.masterGeneration, before.master.masterGeneration + 1);
      const shown = JSON.parse((await g.cli('config', 'show', 'greeting', '--json')).stdout) as { value: unknown };
      assert.equal(shown.value, 'hi', 'the config apply --set override survived');
      const said = g.logs.find((l) => l.role === 'keeper' && l.code === 'GRAFT_MASTER_RESTARTED' && l.master === value.dead);
      assert.equal(said?.msg, 'the master crashed; restarting it on its sockets');
      assert.equal(said?.by, 'standby');
      assert.equal(said?.standby, value.next);
      // The new master is the standby the keeper had started, loaded, before the crash; a new standby replaces it.
      const standbys = g.logs.filter((l) => l.role === 'keeper' && l.msg === 'standby master started').map((l) => l.standby as number);
      assert.equal(standbys[1], value.next, 'the standby that replaced the killed one took over');
      assert.ok(g.logs.some((l) => l.msg === 'the standby master takes over' && l.master === value.next));
      // Its first generation is the worker processes it had started while it waited (warm), not new ones.
      const taken = g.logs.filter((l) => l.msg === 'worker started' && l.pid === value.next);
      assert.equal(taken.length, 2);
      assert.ok(taken.every((l) => l.warm === true), `the standby's warm workers were taken: ${JSON.stringify(taken)}`);
      const standby = (await g.waitForLog((l) => l.msg === 'standby master started' && l.standby !== value.next && l.standby !== firstStandby, 30_000)).standby as number;
      assert.ok(isAlive(standby), 'a new standby waits');
      // The new master is fully in charge: it reloads, and a stop ends the service (no restart).
      const reload = await g.cli('reload');
      assert.equal(reload.code, 0, reload.stderr);
      g.child.kill('SIGTERM');
      assert.equal((await g.exited).code, 0);
      assert.equal(existsSync(stateFile), false, 'a stop leaves no state file behind');
      await waitFor(() => !isAlive(standby), 10_000, 'the standby ends with the service');
    } finally {
      await g.stop();
    }
  });

  test('--warm-workers 1 under 2 workers: the restart takes the warm worker and forks the other, and both serve', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, args: ['--warm-workers', '1'] });
    try {
      await g.waitRunning();
      await g.waitForLog((l) => l.msg === 'standby warm workers started', 30_000);
      const { next } = await crash(g);
      const started = g.logs.filter((l) => l.msg === 'worker started' && l.pid === next);
      assert.deepEqual(started.map((l) => l.warm === true).sort(), [false, true], JSON.stringify(started));
      const status = await g.status();
      assert.deepEqual(status.workers.map((w) => w.state), ['ready', 'ready']);
      assert.deepEqual(new Set(started.map((l) => l.workerPid)), new Set(status.workers.map((w) => w.pid)));
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });

  test('--no-standby, a corrupt state file: a new master process starts clean on the kept sockets and says so; a master that keeps crashing is not restarted in a loop', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1, args: ['--no-standby'] });
    try {
      await g.waitRunning();
      const stateFile = pathsForSocket(g.socket).state;
      await waitFor(() => existsSync(stateFile), 10_000, 'the state file');
      writeFileSync(stateFile, '{ not json');
      const first = await crash(g);
      const restarted = g.logs.find((l) => l.msg === 'master restarted after a crash: carrying on' && l.pid === first.next);
      assert.match(String(restarted?.cleanStart), /corrupt/);
      assert.equal((await fetch(g.url)).status, 200, 'it serves');
      const said = g.logs.find((l) => l.code === 'GRAFT_MASTER_RESTARTED' && l.master === first.dead);
      assert.equal(said?.msg, 'the master crashed; restarting it on its sockets');
      assert.equal(said?.by, 'new master');
      assert.ok(g.logs.some((l) => l.msg === 'new master started on the kept sockets' && l.master === first.next && l.for === first.dead));
      // Five restarts within a minute; the sixth crash ends the service with one error line.
      for (let i = 2; i <= 5; i++) await crash(g);
      const last = (await g.status()).master.pid;
      process.kill(last, 'SIGKILL');
      const exit = await g.exited;
      assert.notEqual(exit.code, 0);
      assert.ok(g.logs.some((l) => l.role === 'keeper' && l.code === 'GRAFT_MASTER_CRASH_LOOP'), 'the keeper says why it gave up');
      assert.ok(!g.logs.some((l) => l.msg === 'standby master started' || l.msg === 'the standby master takes over'), 'no standby with --no-standby');
    } finally {
      await g.stop();
    }
  });
});

describe('a worker that dies', () => {
  test('a worker killed mid-request under load loses only what it held; the log names it, and the worker is replaced', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 2, env: { DELAY_MS: '200' } });
    try {
      await g.waitRunning();
      const { value: died, load, failed } = await underLoad(
        g.url,
        async () => {
          // Once both workers hold connections (a heartbeat has counted them), one of them dies.
          const victim = await waitFor(async () => (await g.status()).workers.find((w) => (w as { connections?: number }).connections), 15_000, 'a worker holding connections');
          const from = g.logs.length;
          process.kill(victim.pid, 'SIGKILL');
          const record = await g.waitForLog((l) => l.msg === 'worker died; replacing it' && l.workerPid === victim.pid, 20_000, from);
          await g.waitForLog((l) => l.msg === 'worker ready' && l.worker === victim.index, 30_000, from);
          return record;
        },
        { connections: 16 },
      );
      assert.equal(typeof died.inFlight, 'number', 'the log names the requests it held');
      assert.ok(Number(died.openConnections) > 0, 'and its connections');
      assert.ok(failed <= Number(died.openConnections), `${failed} failed; the worker held ${String(died.openConnections)} connections (one request each at most)`);
      assert.ok(load.answered > 50, `only ${load.answered} answered`);
      assert.equal((await g.status()).workers.filter((w) => w.state === 'ready').length, 2);
    } finally {
      await g.stop();
    }
  });
});

describe('connections on their way to a worker that dies', () => {
  test('the only worker dies: its port stays open, and connections made before its replacement listens wait for it and are answered, none refused', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1, env: { DELAY_MS: '1' } });
    try {
      await g.waitRunning();
      const victim = (await g.status()).workers[0]!;
      const from = g.logs.length;
      let replaced = false;
      const cut: string[] = [];
      const failed: string[] = [];
      // Four clients, each a fresh connection after the other, until the replacement is ready (bounded in count).
      const probe = async () => {
        for (let i = 0; i < 5000 && !replaced; i++) {
          // Reaped: the dead worker holds nothing of what starts now.
          const dead = !isAlive(victim.pid);
          try {
            const res = await getFresh(g.url, 60_000);
            if (res.status !== 200) (dead ? failed : cut).push(`HTTP ${res.status}`);
          } catch (err) {
            (dead ? failed : cut).push((err as NodeJS.ErrnoException).code ?? String(err));
          }
        }
      };
      const probes = [probe(), probe(), probe(), probe()];
      process.kill(victim.pid, 'SIGKILL');
      await g.waitForLog((l) => l.msg === 'no worker listens on a port now; it stays open and what it accepts waits for the next worker', 20_000, from);
      const back = await g.waitForLog((l) => l.msg === 'a worker listens on the port again', 30_000, from);
      await g.waitForLog((l) => l.msg === 'worker ready' && l.workerPid !== victim.pid, 30_000, from);
      replaced = true;
      await Promise.all(probes);
      assert.deepEqual(failed, [], 'no connection made after the worker died was refused or failed');
      assert.ok(Number(back.waited) > 0, 'connections were made while no worker listened, and waited for the replacement');
      assert.ok(cut.length <= 4, `only what the worker held when it died is lost (one request per client): ${cut.join(', ')}`);
      assert.equal(g.logs.filter((l) => l.code === 'GRAFT_PORT_IN_USE').length, 0);
    } finally {
      await g.stop();
    }
  });

  test('a connection node:cluster handed a stuck worker goes to another worker when the watchdog kills it, instead of hanging', async () => {
    const g = await startGraft(fixture('spin-app.mjs'), { workers: 2, built: true, args: ['--timeout', '6'] });
    try {
      await g.waitRunning();
      const workers = (await g.status()).workers.map((w) => w.pid);
      const from = g.logs.length;
      // One worker takes /spin and blocks; node:cluster still counts it free (it took that connection), so
      // one of the next fresh connections is handed to it and never taken. The loop starts once it spins:
      // a connection it took before (its own /spin request still unread) would be one it held, reset by the kill.
      getFresh(`${g.url}/spin`, 120_000).catch(() => {});
      await g.waitForLog((l) => l.msg === 'spinning', 30_000, from);
      const answers: string[] = [];
      let rescued = false;
      void g.waitForLog((l) => l.msg === 'a connection a dead worker never took goes to another', 60_000, from).then(() => (rescued = true));
      for (let i = 0; i < 200 && !rescued; i++) answers.push((await getFresh(g.url, 60_000)).body);
      const killed = g.logs.slice(from).find((l) => l.code === 'GRAFT_WORKER_BLOCKED');
      assert.ok(killed, 'the watchdog killed the stuck worker');
      assert.ok(rescued, 'the connection handed to it was given to another worker');
      const stuck = Number(killed.workerPid);
      assert.ok(workers.includes(stuck));
      assert.ok(!answers.includes(String(stuck)), 'every request was answered, by the other worker or a new one');
    } finally {
      await g.stop();
    }
  });
});

describe('out of file descriptors', () => {
  test('a worker that runs out of file descriptors keeps serving the connections it holds and keeps its heartbeat; it recovers when they are freed', async () => {
    // One worker, its heartbeat every 500 ms (a quarter of --timeout), 512 descriptors for each process.
    const g = await startGraft(fixture('fd-app.mjs'), { workers: 1, built: true, args: ['--timeout', '2000'], prefix: ['sh', '-c', 'ulimit -n 512 && exec "$@"', 'sh'] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ pid: number; held: number; code?: string }>((resolve, reject) => {
        http.get(`${g.url}${path}`, { agent }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => resolve(JSON.parse(body) as { pid: number; held: number; code?: string }));
        }).on('error', reject);
      });
    try {
      await g.waitRunning();
      const worker = (await g.status()).workers[0]!.pid;
      const exhausted = await get('/exhaust');
      assert.equal(exhausted.code, 'EMFILE');
      assert.equal(exhausted.pid, worker);
      // The served count reaches the master in a heartbeat: these requests are counted only by one sent while out of descriptors.
      for (let i = 0; i < 5; i++) assert.equal((await get('/')).pid, worker, 'the connection it holds is served');
      await waitFor(async () => (await g.status()).workers.find((w) => w.pid === worker && w.served >= 6), 15_000, 'a heartbeat of the worker out of descriptors');
      assert.equal((await get('/release')).held, 0);
      assert.equal((await g.status()).workers[0]!.pid, worker, 'the same worker: it was not replaced');
      assert.equal((await fetch(g.url)).status, 200, 'a new connection is served again');
      assert.ok(!g.logs.some((l) => l.msg?.startsWith('uncaught exception') || l.msg === 'worker died; replacing it'), 'no worker crashed');
    } finally {
      agent.destroy();
      await g.stop();
    }
  });
});
