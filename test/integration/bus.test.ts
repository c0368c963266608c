import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseBusUrl } from '../../src/net/bus-url.js';
import { natsConnect } from '../../src/net/nats-connect.js';
import { newOrder, signOrder, type OrderBody, type OrderOutcome } from '../../src/bus/order.js';
import { hmacKey, loadOrderKey } from '../../src/bus/order-key.js';
import { subjects } from '../../src/bus/subjects.js';
import { sendOverAmqp } from '../../src/bus/amqp-send.js';
import { graftCli, isAlive, onlyGeneration, startGraft, tempDir, waitFor, type GraftProcess, oneLineError } from '../helpers/graft.js';
import { startRabbit } from '../helpers/stores.js';

const NATS = 'nats://127.0.0.1:4222';
const AMQP = 'amqp://guest:guest@127.0.0.1:5672';

/** A service name no other test (or test run) uses: orders of one test never reach another's masters. */
const serviceName = (what: string) => `t-${what}-${randomBytes(4).toString('hex')}`;

/** A swappable handler (graft start --swap) answering its version; `write` changes the version on disk. */
function handlerProject(version: string): { dir: string; write: (version: string) => void } {
  const dir = tempDir('bus-app-');
  const write = (v: string) => writeFileSync(join(dir, 'version.ts'), `export const version: string = ${JSON.stringify(v)};\n`);
  write(version);
  writeFileSync(
    join(dir, 'handler.ts'),
    `import type { IncomingMessage, ServerResponse } from 'node:http';
import { version } from './version.js';
export default function handle(_req: IncomingMessage, res: ServerResponse): void {
  res.end(version);
}
`,
  );
  return { dir, write };
}

function hmacFile(): string {
  const file = join(tempDir('bus-key-'), 'fleet.key');
  writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return file;
}

interface Host {
  g: GraftProcess;
  host: string;
}

/** A master standing for one host of the fleet, connected to its buses, its workers reporting their swappable module. */
async function startHost(app: { dir: string }, o: { service: string; host: string; buses: string[]; key: string; workers?: number }): Promise<Host> {
  const g = await startGraft(join(app.dir, 'handler.ts'), {
    workers: o.workers ?? 2,
    cwd: app.dir,
    args: ['--swap', ...o.buses.flatMap((b) => ['--bus', b]), '--bus-key', o.key, '--name', o.service, '--host-id', o.host],
  });
  await g.waitRunning();
  for (const b of o.buses) await g.waitForLog((l) => l.msg === 'bus connected' && l.transport === parseBusUrl(b).scheme);
  await waitFor(async () => {
    const s = (await g.status()) as unknown as { workers: Array<{ modules?: string[] }> };
    return s.workers.length === (o.workers ?? 2) && s.workers.every((w) => w.modules?.length);
  }, 15_000, 'the workers to report their swappable module');
  return { g, host: o.host };
}

/** What a client sees: several requests, every answer. */
async function answers(g: GraftProcess, n = 6): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await (await fetch(g.url)).text());
  return [...new Set(out)];
}

async function moduleGenerations(g: GraftProcess): Promise<string[]> {
  const s = (await g.status()) as unknown as { workers: Array<{ modules?: string[] }> };
  return s.workers.flatMap((w) => w.modules ?? []);
}

function orderCli(action: string[], o: { bus: string; key: string; service: string; host?: string; expect?: number; timeout?: number }) {
  return graftCli([
    'order',
    ...action,
    '--bus',
    o.bus,
    '--bus-key',
    o.key,
    '--name',
    o.service,
    ...(o.host ? ['--host', o.host] : []),
    ...(o.expect ? ['--expect', String(o.expect)] : []),
    '--timeout',
    String(o.timeout ?? 20),
  ]);
}

describe('orders over NATS', () => {
  test('a swap order reaches every worker of every master; one addressed to a host only that host; a reload order makes a new generation', async () => {
    const app = handlerProject('v0');
    const key = hmacFile();
    const service = serviceName('nats');
    const hosts = await Promise.all(['h1', 'h2'].map((host) => startHost(app, { service, host, buses: [NATS], key })));
    const [h1, h2] = hosts.map((h) => h.g) as [GraftProcess, GraftProcess];
    try {
      const status = await h1.cli('status');
      assert.match(status.stdout, /^bus nats:\/\/127\.0\.0\.1:4222  connected since \S+$/m);
      const { bus } = (await h1.status()).master as unknown as { bus: Array<{ transport: string; url: string; connected: boolean; attempts: number }> };
      assert.deepEqual(bus.map((b) => [b.transport, b.url, b.connected, b.attempts]), [['nats', NATS, true, 0]]);

      app.write('v1');
      const all = await orderCli(['swap', 'handler.ts'], { bus: NATS, key, service, expect: 2 });
      assert.equal(all.code, 0, all.stderr);
      assert.match(all.stdout, /^h1: swapped in place: handler\.ts@2 in 2 worker\(s\)$/m);
      assert.match(all.stdout, /^h2: swapped in place: handler\.ts@2 in 2 worker\(s\)$/m);
      for (const g of [h1, h2]) {
        assert.deepEqual(await answers(g), ['v1']);
        assert.deepEqual(await moduleGenerations(g), ['handler.ts@2', 'handler.ts@2']);
        const done = await g.waitForLog((l) => l.msg === 'order carried out' && l.action === 'swap');
        assert.equal(done.transport, 'nats');
        assert.deepEqual(done.modules, ['handler.ts@2']);
      }

      // To one host, by request and reply (what `graft fleet` does).
      app.write('v2');
      const one = await orderCli(['swap', 'handler.ts'], { bus: NATS, key, service, host: 'h1' });
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stdout, /^h1: swapped in place: handler\.ts@3/m);
      assert.doesNotMatch(one.stdout, /h2/);
      assert.deepEqual(await answers(h1), ['v2']);
      assert.deepEqual(await answers(h2), ['v1'], 'the other host was not touched');
      assert.deepEqual(await moduleGenerations(h2), ['handler.ts@2', 'handler.ts@2']);

      const reload = await orderCli(['reload'], { bus: NATS, key, service, host: 'h2' });
      assert.equal(reload.code, 0, reload.stderr);
      assert.match(reload.stdout, /^h2: reloaded: generation 2 serves$/m);
      assert.equal((await h2.status()).master.generation, 2);
      assert.equal((await h1.status()).master.generation, 1);
      await onlyGeneration(h2, 2); // a keep-alive connection to the retiring generation may answer until it drains
      assert.deepEqual(await answers(h2), ['v2'], 'the new generation loaded the code on disk');
      const logged = await h2.waitForLog((l) => l.msg === 'order carried out' && l.action === 'reload');
      assert.equal(logged.generation, 2);

      const config = await orderCli(['config', '--set', 'feature.flag=on'], { bus: NATS, key, service, host: 'h1' });
      assert.equal(config.code, 0, config.stderr);
      assert.match(config.stdout, /^h1: config version 2 \(/m);
      assert.equal((await h1.status()).master.config?.version, 2);
      assert.equal((await h2.status()).master.config?.version, 1);
      assert.equal((await h1.waitForLog((l) => l.msg === 'order carried out' && l.action === 'config')).configVersion, 2);

      // Nobody listens for a host that does not exist.
      const nobody = await orderCli(['reload'], { bus: NATS, key, service, host: 'h9', timeout: 3 });
      assert.notEqual(nobody.code, 0);
      assert.match(nobody.stderr, /^graft: GRAFT_ORDER_TIMEOUT: no master of service .* on host h9 takes orders on nats:\/\/127\.0\.0\.1:4222/m);
    } finally {
      await Promise.all([h1.stop(), h2.stop()]);
    }
  });

  describe('refused orders', () => {
    const app = handlerProject('v0');
    const keyFile = hmacFile();
    const service = serviceName('refuse');
    let h: Host;
    let nc: NatsConnection;
    const outcomes: OrderOutcome[] = [];

    before(async () => {
      h = await startHost(app, { service, host: 'h1', buses: [NATS], key: keyFile, workers: 1 });
      nc = await natsConnect(parseBusUrl(NATS), 'bus test', false);
      nc.subscribe(subjects.allOutcomes(service), { callback: (_e, m) => void outcomes.push(JSON.parse(m.string()) as OrderOutcome) });
      await nc.flush();
      // Were any refused swap carried out, the service would serve v1.
      app.write('v1');
    });
    after(async () => {
      await nc?.close();
      await h?.g.stop();
    });

    const key = () => loadOrderKey(keyFile);
    const body = (fields: Partial<OrderBody> = {}): OrderBody => ({ ...newOrder({ service, host: '*', action: 'swap', module: 'handler.ts' }), ...fields });

    /** Publish a message, and wait for its refusal: published as an outcome and in the log. */
    async function refused(message: unknown, id: string, why: RegExp): Promise<void> {
      nc.publish(subjects.orders(service), typeof message === 'string' ? message : JSON.stringify(message));
      const outcome = await waitFor(() => outcomes.find((o) => o.id === id && !o.ok), 10_000, `the refusal of ${id}`);
      assert.equal(outcome.host, 'h1');
      assert.equal(outcome.error?.code, 'GRAFT_ORDER_REFUSED');
      assert.match(outcome.error!.message, why);
      const logged = await h.g.waitForLog((l) => l.msg === 'order refused' && l.id === id);
      assert.equal(logged.level, 'warn');
      assert.equal(logged.code, 'GRAFT_ORDER_REFUSED');
      assert.equal(logged.transport, 'nats');
      assert.match(String(logged.reason), why);
    }

    test('forged, unsigned and stale orders', async () => {
      const forged = body();
      await refused(signOrder(forged, hmacKey('other', randomBytes(32))), forged.id, /signature does not match/);
      const unsigned = body();
      await refused(unsigned, unsigned.id, /not signed/);
      const stale = body({ at: Date.now() - 120_000 });
      await refused(signOrder(stale, key()), stale.id, /signed -?1\d\d s from this host's clock/);
      const tampered = signOrder(body({ module: 'handler.ts' }), key());
      await refused({ ...tampered, action: 'reload', module: undefined }, tampered.id, /signature does not match/);
    });

    test('a module the service did not declare swappable, or a path, never reaches a worker', async () => {
      const unknown = body({ module: 'other.ts' });
      await refused(signOrder(unknown, key()), unknown.id, /"other\.ts" is not one this service declared swappable \("handler\.ts"\)/);
      for (const path of ['../../tmp/evil.ts', '/tmp/evil.ts', './handler.ts', 'file:///tmp/evil.js']) {
        const o = body({ module: path });
        await refused(signOrder(o, key()), o.id, /looks like a path; .*never makes a process load code from a path/);
      }
      assert.equal(h.g.logs.filter((l) => l.msg === 'order received').length, 0, 'no refused order was submitted');
    });

    test('a misaddressed order, and a replay of a carried-out one', async () => {
      const elsewhere = body({ host: 'h7' });
      await refused(signOrder(elsewhere, key()), elsewhere.id, /it is for host "h7", this is "h1"/);
      const other = body({ service: 'someone-else' });
      await refused(signOrder(other, key()), other.id, /it is for service "someone-else"/);
      // A config re-read changes nothing: a harmless order to replay.
      const signed = signOrder(newOrder({ service, host: '*', action: 'config' }), key());
      nc.publish(subjects.orders(service), JSON.stringify(signed));
      const first = await waitFor(() => outcomes.find((o) => o.id === signed.id), 10_000, 'the first outcome');
      assert.equal(first.ok, true, JSON.stringify(first));
      await refused(signed, signed.id, /already carried out \(a replay\)/);
    });

    test('after every refusal the service still serves the old code', async () => {
      assert.deepEqual(await answers(h.g), ['v0']);
      assert.equal((await h.g.status()).master.generation, 1);
    });
  });
});

describe('the order memory outlives every master', () => {
  test('a master started by hand after a stop refuses the replay of an order its predecessor carried out, and a delayed older config order from the same sender', async () => {
    const app = handlerProject('m0');
    const keyFile = hmacFile();
    const key = loadOrderKey(keyFile);
    const service = serviceName('memory');
    // One runtime directory for both starts: the same default control socket, as on a host.
    const runtime = tempDir('bus-rt-');
    const start = async () => {
      const g = await startGraft(join(app.dir, 'handler.ts'), {
        workers: 1,
        cwd: app.dir,
        defaultSocket: true,
        env: { GRAFT_RUNTIME_DIR: runtime },
        args: ['--swap', '--bus', NATS, '--bus-key', keyFile, '--name', service, '--host-id', 'h1'],
      });
      await g.waitRunning();
      await g.waitForLog((l) => l.msg === 'bus connected');
      return g;
    };
    const config = (from: string, value: string, at = Date.now()) => signOrder({ ...newOrder({ service, host: 'h1', action: 'config', config: { set: [`feature.flag=${value}`] } }, from), at }, key);
    const nc = await natsConnect(parseBusUrl(NATS), 'bus test', false);
    const send = async (order: object) => (await nc.request(subjects.hostOrders(service, 'h1'), JSON.stringify(order), { timeout: 20_000 })).json<OrderOutcome>();
    let g = await start();
    try {
      const signedAt = Date.now();
      const newer = config('ops@laptop', 'new', signedAt);
      const older = config('ops@laptop', 'old', signedAt - 2000);
      const carried = await send(newer);
      assert.equal(carried.ok, true, JSON.stringify(carried));
      g.child.kill('SIGTERM');
      assert.equal((await g.exited).code, 0);
      g = await start();
      const replay = await send(newer);
      assert.equal(replay.ok, false);
      assert.match(replay.error!.message, /already carried out \(a replay\)/);
      const delayed = await send(older);
      assert.equal(delayed.ok, false);
      assert.match(delayed.error!.message, /a config order from "ops@laptop" signed 2\.0 s after this one was already carried out; this older one would undo it/);
      const otherSender = await send(config('ci@runner', 'ci', signedAt - 2000));
      assert.equal(otherSender.ok, true, "another sender's clock is not compared");
      const show = await graftCli(['config', 'show', 'feature.flag', '--json', '--name', service], { env: { GRAFT_RUNTIME_DIR: runtime } });
      assert.equal(show.code, 0, show.stderr);
      const shown = JSON.parse(show.stdout) as { value: unknown };
      assert.equal(shown.value, 'ci', 'only the admitted order changed the config');
    } finally {
      await nc.close();
      await g.stop();
    }
  });
});

describe('bus orders across a master upgrade', () => {
  test('the successor opens its own connections and takes the orders; the old master closes its own', async () => {
    const app = handlerProject('u0');
    const key = hmacFile();
    const service = serviceName('upgrade');
    const { g } = await startHost(app, { service, host: 'h1', buses: [NATS, AMQP], key, workers: 1 });
    let successor: number | undefined;
    const nc = await natsConnect(parseBusUrl(NATS), 'bus test', false);
    try {
      // An order carried out before the upgrade: its replay to the successor must be refused too.
      const signed = JSON.stringify(signOrder(newOrder({ service, host: 'h1', action: 'config' }), loadOrderKey(key)));
      const first = (await nc.request(subjects.hostOrders(service, 'h1'), signed, { timeout: 10_000 })).json<OrderOutcome>();
      assert.equal(first.ok, true, JSON.stringify(first));
      const r = await g.cli('upgrade');
      assert.equal(r.code, 0, r.stderr);
      successor = Number(/master (\d+) serves/.exec(r.stdout)?.[1]);
      for (const transport of ['nats', 'amqp']) await g.waitForLog((l) => l.pid === successor && l.msg === 'bus connected' && l.transport === transport);
      assert.equal((await g.masterExit(await g.firstMaster())).code, 0, 'the old master retired');
      const replay = (await nc.request(subjects.hostOrders(service, 'h1'), signed, { timeout: 10_000 })).json<OrderOutcome>();
      assert.equal(replay.ok, false);
      assert.match(replay.error!.message, /already carried out \(a replay\)/);
      const reload = await orderCli(['reload'], { bus: NATS, key, service, host: 'h1' });
      assert.equal(reload.code, 0, reload.stderr);
      assert.match(reload.stdout, /^h1: reloaded: generation 3 serves$/m);
      const done = await g.waitForLog((l) => l.msg === 'order carried out' && l.action === 'reload');
      assert.equal(done.pid, successor, 'the successor carried it out');
      const fanout = await orderCli(['reload'], { bus: AMQP, key, service, expect: 1, timeout: 5 });
      assert.equal(fanout.code, 0, fanout.stderr);
      assert.match(fanout.stdout, /^h1: reloaded: generation 4 serves$/m);
      assert.doesNotMatch(fanout.stdout, /FAILED/, 'the retired master no longer listens');
    } finally {
      await nc.close();
      if (successor && isAlive(successor)) {
        process.kill(successor, 'SIGTERM');
        await waitFor(() => !isAlive(successor!), 20_000, 'the successor to stop');
      }
      await g.stop();
    }
  });

  test('the successor can undo a config order its predecessor carried out, still lists the orders it carried out, and shows the last reload', async () => {
    const app = handlerProject('s0');
    const keyFile = hmacFile();
    const key = loadOrderKey(keyFile);
    const service = serviceName('carry');
    const g = await startGraft(join(app.dir, 'handler.ts'), { workers: 1, cwd: app.dir, args: ['--swap', '--bus', NATS, '--bus-key', keyFile, '--name', service, '--host-id', 'h1'] });
    const nc = await natsConnect(parseBusUrl(NATS), 'bus test', false);
    try {
      await g.waitRunning();
      await g.waitForLog((l) => l.msg === 'bus connected');
      const send = async (body: Omit<OrderBody, 'id' | 'at' | 'service' | 'host'>): Promise<OrderOutcome> => {
        const signed = JSON.stringify(signOrder(newOrder({ service, host: 'h1', ...body }), key));
        return (await nc.request(subjects.hostOrders(service, 'h1'), signed, { timeout: 20_000 })).json<OrderOutcome>();
      };
      const config = await send({ action: 'config', config: { set: ['feature.flag=on'] } });
      assert.equal(config.ok, true, JSON.stringify(config));
      const reload = await send({ action: 'reload' });
      assert.equal(reload.ok, true, JSON.stringify(reload));
      const before = await g.status();
      assert.equal(before.master.lastReload?.generation, 2);

      const r = await g.cli('upgrade');
      assert.equal(r.code, 0, r.stderr);
      const successor = Number(/master (\d+) serves/.exec(r.stdout)?.[1]);
      await g.masterExit(before.master.pid);
      await g.waitForLog((l) => l.pid === successor && l.msg === 'bus connected');

      assert.match((await g.cli('config', 'show', 'feature.flag')).stdout, /"on"/);
      const undo = await send({ action: 'config', config: { undo: config.id } });
      assert.equal(undo.ok, true, JSON.stringify(undo));
      const undone = await g.cli('config', 'show', '--json');
      assert.equal((JSON.parse(undone.stdout) as { value: { feature?: unknown } }).value.feature, undefined, 'the override is gone');

      const after = await g.status();
      assert.equal(after.master.pid, successor);
      assert.equal(after.master.lastReload?.at, before.master.lastReload?.at);
      assert.equal(after.master.lastReload?.reason, before.master.lastReload?.reason);
      assert.equal(after.master.lastReload?.generation, 2);
      assert.deepEqual(after.master.orders, [config.id, reload.id, undo.id], 'the orders carried out before the upgrade stay its proof');
    } finally {
      await nc.close();
      await g.stop();
    }
  });
});

describe('orders over RabbitMQ', () => {
  test('a fanout swap reaches every master; one addressed to a host only that host; a forged order is refused by every master', async () => {
    const app = handlerProject('r0');
    const key = hmacFile();
    const service = serviceName('amqp');
    const hosts = await Promise.all(['h1', 'h2'].map((host) => startHost(app, { service, host, buses: [AMQP], key })));
    const [h1, h2] = hosts.map((h) => h.g) as [GraftProcess, GraftProcess];
    try {
      assert.match((await h1.cli('status')).stdout, /^bus amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672  connected since \S+$/m);
      app.write('r1');
      const all = await orderCli(['swap', 'handler.ts'], { bus: AMQP, key, service, expect: 2 });
      assert.equal(all.code, 0, all.stderr);
      assert.match(all.stdout, /^h1: swapped in place: handler\.ts@2 in 2 worker\(s\)$/m);
      assert.match(all.stdout, /^h2: swapped in place: handler\.ts@2 in 2 worker\(s\)$/m);
      for (const g of [h1, h2]) {
        assert.deepEqual(await answers(g), ['r1']);
        assert.deepEqual(await moduleGenerations(g), ['handler.ts@2', 'handler.ts@2']);
        assert.equal((await g.waitForLog((l) => l.msg === 'order carried out')).transport, 'amqp');
      }

      app.write('r2');
      const one = await orderCli(['swap', 'handler.ts'], { bus: AMQP, key, service, host: 'h2', expect: 1 });
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stdout, /^h2: swapped in place: handler\.ts@3/m);
      assert.deepEqual(await answers(h2), ['r2']);
      assert.deepEqual(await answers(h1), ['r1'], 'the fanout delivered it to h1 too, which skipped it');
      assert.equal(h1.logs.filter((l) => l.msg === 'order refused').length, 0, 'an order for another host is no refusal');

      // Their refusals are signed with the fleet key, which this sender does not hold: unverified, so it waits out its timeout for believed answers.
      const forged = await orderCli(['swap', 'handler.ts'], { bus: AMQP, key: hmacFile(), service, expect: 2, timeout: 4 });
      assert.equal(forged.code, 1);
      assert.match(forged.stdout, /^h1: FAILED swap: GRAFT_ORDER_REFUSED order refused: its signature does not match the fleet key \(unverified: its signature does not match the fleet key\)$/m);
      assert.match(forged.stderr, /^graft: GRAFT_ORDER_REFUSED: host h2: order refused: its signature does not match/m);
      for (const g of [h1, h2]) {
        const logged = await g.waitForLog((l) => l.msg === 'order refused');
        assert.equal(logged.transport, 'amqp');
        assert.equal(logged.code, 'GRAFT_ORDER_REFUSED');
      }
      assert.deepEqual(await answers(h2), ['r2']);
    } finally {
      await Promise.all([h1.stop(), h2.stop()]);
    }
  });
});

describe('one order arriving on both buses', () => {
  test('is carried out once: the second arrival, over the other transport, is refused as a replay', async () => {
    const app = handlerProject('b0');
    const keyFile = hmacFile();
    const key = loadOrderKey(keyFile);
    const service = serviceName('both');
    const { g } = await startHost(app, { service, host: 'h1', buses: [NATS, AMQP], key: keyFile, workers: 1 });
    const nc = await natsConnect(parseBusUrl(NATS), 'bus test', false);
    try {
      const before = (await g.status()).master.generation;
      const signed = signOrder(newOrder({ service, host: 'h1', action: 'reload' }), key);
      const overNats = (await nc.request(subjects.hostOrders(service, 'h1'), JSON.stringify(signed), { timeout: 20_000 })).json<OrderOutcome>();
      assert.equal(overNats.ok, true, JSON.stringify(overNats));
      // The same signed message, as a sender that publishes to every bus would deliver it.
      const overAmqp = await sendOverAmqp(parseBusUrl(AMQP), signed, { key, timeoutMs: 10_000, expect: 1, onOutcome: () => {} });
      assert.equal(overAmqp.length, 1);
      assert.equal(overAmqp[0]!.ok, false);
      assert.match(overAmqp[0]!.error!.message, /already carried out \(a replay\)/);
      assert.equal((await g.status()).master.generation, before + 1, 'one reload');
      assert.deepEqual(
        g.logs.filter((l) => l.msg === 'order carried out' && l.id === signed.id).map((l) => l.transport),
        ['nats'],
      );
    } finally {
      await nc.close();
      await g.stop();
    }
  });
});

describe('orders over a RabbitMQ that restarts (a node of its own)', () => {
  test('the master reconnects by itself; orders keep arriving after the restart, each carried out once', async () => {
    const rabbit = await startRabbit();
    const bus = `amqp://guest:guest@127.0.0.1:${rabbit.port}`;
    const app = handlerProject('q0');
    const key = hmacFile();
    const service = serviceName('rmq');
    const { g } = await startHost(app, { service, host: 'h1', buses: [bus], key, workers: 1 });
    try {
      app.write('q1');
      const first = await orderCli(['swap', 'handler.ts'], { bus, key, service, expect: 1 });
      assert.equal(first.code, 0, first.stderr);
      assert.deepEqual(await answers(g), ['q1']);

      const from = g.logs.length;
      await rabbit.restart();
      await g.waitForLog((l) => l.msg.startsWith('bus disconnected; reconnecting') && l.transport === 'amqp', 30_000, from);
      await g.waitForLog((l) => l.msg === 'bus connected' && l.transport === 'amqp', 60_000, from);

      app.write('q2');
      const second = await orderCli(['swap', 'handler.ts'], { bus, key, service, expect: 1 });
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(await answers(g), ['q2']);
      const carried = g.logs.filter((l) => l.msg === 'order carried out').map((l) => l.id);
      assert.equal(carried.length, 2, 'two orders, two carried out');
      assert.equal(new Set(carried).size, 2, 'none twice');
      assert.deepEqual(await moduleGenerations(g), ['handler.ts@3'], 'two swaps, no more');
    } finally {
      await g.stop();
      await rabbit.stop();
    }
  });
});

describe('graft keygen and Ed25519 keys', () => {
  test('masters holding only the public key carry out orders signed with the private key', async () => {
    const file = join(tempDir('bus-ed-'), 'fleet.pem');
    const made = await graftCli(['keygen', '--ed25519', file]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(existsSync(`${file}.pub`));
    assert.match(readFileSync(`${file}.pub`, 'utf8'), /BEGIN PUBLIC KEY/);
    const again = await graftCli(['keygen', '--ed25519', file]);
    assert.match(again.stderr, /^graft: GRAFT_BAD_ARGUMENT: .*fleet\.pem exists; graft keygen never overwrites a key/m);

    const hmac = join(tempDir('bus-hm-'), 'fleet.key');
    assert.equal((await graftCli(['keygen', '--hmac', hmac])).code, 0);
    assert.equal(statSync(hmac).mode & 0o777, 0o600);
    assert.equal(loadOrderKey(hmac).alg, 'hmac-sha256');

    const app = handlerProject('e0');
    const service = serviceName('ed');
    const { g } = await startHost(app, { service, host: 'h1', buses: [NATS], key: `${file}.pub`, workers: 1 });
    try {
      await g.waitForLog((l) => l.msg === 'listening for bus orders' && l.keyAlg === 'ed25519');
      const r = await orderCli(['reload'], { bus: NATS, key: file, service, host: 'h1' });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^h1: reloaded: generation 2 serves$/m);
      const withPublic = await orderCli(['reload'], { bus: NATS, key: `${file}.pub`, service, host: 'h1' });
      assert.match(withPublic.stderr, /^graft: GRAFT_BUS_KEY: .*is a public key/m);
      const withHmac = await orderCli(['reload'], { bus: NATS, key: hmac, service, host: 'h1' });
      assert.equal(withHmac.code, 1);
      assert.match(withHmac.stderr, /^graft: GRAFT_ORDER_REFUSED: host h1: order refused: it is signed with hmac-sha256; this master checks ed25519 signatures \(unverified: it is not signed\)$/m);
      assert.equal((await g.status()).master.generation, 2);
    } finally {
      await g.stop();
    }
  });
});

describe('answers that are not believed', () => {
  test("graft order ignores a forged answer to a fanout and refuses a forged answer to a host request; the master's signed answer counts", async () => {
    const app = handlerProject('f0');
    const key = hmacFile();
    const service = serviceName('forged');
    const { g } = await startHost(app, { service, host: 'h1', buses: [NATS], key, workers: 1 });
    const nc = await natsConnect(parseBusUrl(NATS), 'bus test', false);
    try {
      // Someone else on the bus answers every order at once: unsigned for a fanout, with a made-up signature for host h9.
      const fake = (raw: string, extra: object = {}) => {
        const o = JSON.parse(raw) as OrderBody;
        return JSON.stringify({ id: o.id, service, host: 'h9', action: o.action, ok: true, value: { generation: 99 }, at: Date.now(), ...extra });
      };
      nc.subscribe(subjects.orders(service), { callback: (_err, msg) => nc.publish(subjects.outcomes(service, 'h9'), fake(msg.string())) });
      nc.subscribe(subjects.hostOrders(service, 'h9'), { callback: (_err, msg) => void msg.respond(fake(msg.string(), { alg: 'hmac-sha256', sig: Buffer.from('forged').toString('base64') })) });
      await nc.flush();
      const fanout = await orderCli(['reload'], { bus: NATS, key, service, expect: 1 });
      assert.equal(fanout.code, 0, fanout.stderr);
      assert.match(fanout.stdout, /^h1: reloaded: generation 2 serves$/m);
      assert.doesNotMatch(fanout.stdout, /h9/);
      assert.match(fanout.stderr, /^graft: GRAFT_ORDER_FORGED: an answer naming host "h9" to order \S+ is not believed \(it is not signed, and every master of an HMAC fleet signs its answers\); ignored$/m);
      const toH9 = await orderCli(['reload'], { bus: NATS, key, service, host: 'h9', timeout: 5 });
      assert.equal(toH9.code, 1);
      assert.match(toH9.stderr, /^graft: GRAFT_ORDER_FORGED: the answer on graft\.\S+\.orders\.h9 to order \S+ is not believed: its signature does not match the fleet key; something other than a graft master answers there$/m);
      assert.equal((await g.status()).master.generation, 2);
    } finally {
      await nc.close();
      await g.stop();
    }
  });
});

describe('bus: bad input', () => {
  const app = handlerProject('b0');
  const entry = join(app.dir, 'handler.ts');

  test('an unknown scheme, --bus without --bus-key, a key file that cannot be read or is too short', async () => {
    oneLineError(await graftCli(['start', entry, '--swap', '--bus', 'redis://127.0.0.1:6379', '--bus-key', hmacFile()], { cwd: app.dir }), 'GRAFT_BUS_URL', /nats:\/\/ or amqp:\/\/ .*not redis:\/\//);
    oneLineError(await graftCli(['start', entry, '--swap', '--bus', NATS], { cwd: app.dir }), 'GRAFT_BUS_KEY', /--bus needs --bus-key FILE/);
    oneLineError(await graftCli(['start', entry, '--swap', '--bus', NATS, '--bus-key', join(app.dir, 'missing.key')], { cwd: app.dir }), 'GRAFT_BUS_KEY', /missing\.key cannot be read \(ENOENT\)/);
    const short = join(tempDir(), 'short.key');
    writeFileSync(short, 'secret');
    oneLineError(await graftCli(['start', entry, '--swap', '--bus', NATS, '--bus-key', short], { cwd: app.dir }), 'GRAFT_BUS_KEY', /holds 6 bytes; an HMAC secret needs at least 32/);
    oneLineError(await graftCli(['start', entry, '--swap', '--bus', NATS, '--bus-key', hmacFile(), '--name', 'a.b'], { cwd: app.dir }), 'GRAFT_BAD_ARGUMENT', /--name "a\.b"/);
    oneLineError(await graftCli(['order', 'reload', '--bus', 'nats://127.0.0.1:1', '--bus-key', hmacFile(), '--name', 'x', '--timeout', '2']), 'GRAFT_BUS_UNREACHABLE', /nats:\/\/127\.0\.0\.1:1/);
    // Checked before anything is sent: with the bus down, sending would fail as GRAFT_BUS_UNREACHABLE instead.
    const down = ['--bus', 'nats://127.0.0.1:1', '--name', 'x', '--timeout', '2'];
    oneLineError(await graftCli(['order', 'config', '--set', 'limit', ...down, '--bus-key', hmacFile()]), 'GRAFT_BAD_ARGUMENT', /--set needs key\.path=value, got "limit"/);
    oneLineError(await graftCli(['order', 'config', '--unset', 'a..b', ...down, '--bus-key', hmacFile()]), 'GRAFT_BAD_KEY_PATH', /"a\.\.b"/);
    oneLineError(await graftCli(['order', 'reload', ...down]), 'GRAFT_BUS_KEY', /graft order reload needs --bus-key FILE/);
    oneLineError(await graftCli(['order', 'reload', '--bus', 'nats://u:secret@127.0.0.1:99999', '--bus-key', hmacFile(), '--name', 'x']), 'GRAFT_BUS_URL', /--bus "nats:\/\/u:\*\*\*@127\.0\.0\.1:99999": not a valid URL/);
  });

  test('a bus down at start: the service starts and serves, warns, and shows the bus disconnected', async () => {
    const g = await startGraft(entry, { workers: 1, cwd: app.dir, args: ['--swap', '--bus', 'nats://127.0.0.1:1', '--bus-key', hmacFile(), '--name', serviceName('down')] });
    try {
      await g.waitRunning();
      const warned = await g.waitForLog((l) => l.msg.startsWith('bus unreachable; retrying'));
      assert.equal(warned.code, 'GRAFT_BUS_UNREACHABLE');
      assert.equal(await (await fetch(g.url)).text(), 'b0');
      assert.match((await g.cli('status')).stdout, /^bus nats:\/\/127\.0\.0\.1:1  DISCONNECTED since \S+  \d+ failed attempts?: GRAFT_BUS_UNREACHABLE nats:\/\/127\.0\.0\.1:1: /m);
    } finally {
      await g.stop();
    }
  });
});
