/**
 * The fleet demo: three graft masters (h1, h2, h3 on ports 3001-3003) standing
 * for three hosts, each taking its config from a NATS KV bucket and signed
 * orders from NATS, and registered in the fleet registry there. Uses the NATS
 * server at $NATS_URL (default nats://127.0.0.1:4222, with JetStream).
 *
 *   npm run example:fleet                 start the three hosts (Ctrl-C stops them)
 *   npm run example:fleet -- put greeting hola    put a key in the config bucket
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nats = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const bucket = 'graft_demo';
const keyFile = join(root, '.graft/fleet-demo.key');

async function put(key: string, value: string): Promise<void> {
  const nc = await connect({ servers: nats.replace(/^nats:\/\//, '') });
  const kv = await new Kvm(nc).create(bucket, { history: 5 });
  await kv.put(`demo.${key}`, value);
  console.log(`put demo.${key} = ${value} in ${nats}/${bucket}`);
  await nc.close();
}

async function hosts(): Promise<void> {
  // The bucket must exist before the masters read it.
  const nc = await connect({ servers: nats.replace(/^nats:\/\//, '') }).catch((err: Error) => {
    console.error(`fleet demo: cannot reach NATS at ${nats} (${err.message}); start nats-server -js, or set NATS_URL`);
    process.exit(1);
  });
  await new Kvm(nc).create(bucket, { history: 5 });
  await nc.close();
  mkdirSync(join(root, '.graft'), { recursive: true });
  if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const children: ChildProcess[] = ['h1', 'h2', 'h3'].map((id, i) =>
    spawn(
      process.execPath,
      [join(root, 'bin/graft.js'), 'start', join(root, 'examples/fleet/server.ts'), '-w', '2', '-p', String(3001 + i), '--socket', join(root, `.graft/fleet-${id}.sock`),
        '--name', 'demo', '--host-id', id, '--config', `${nats}/${bucket}/demo`, '--fleet', nats, '--bus', nats, '--bus-key', keyFile],
      // Each stand-in host has its own runtime directory, as a real host does: one service name per host and user.
      { cwd: root, stdio: 'inherit', env: { ...process.env, HOST_ID: id, GRAFT_RUNTIME_DIR: join(root, `.graft/host-${id}`) } },
    ),
  );
  console.log(`fleet demo: h1, h2, h3 on ports 3001-3003; in another terminal:
  curl localhost:3001/ localhost:3002/ localhost:3003/
  node bin/graft.js fleet status --fleet ${nats} --name demo
  node bin/graft.js fleet reload --fleet ${nats} --name demo --bus-key .graft/fleet-demo.key
  npm run example:fleet -- put greeting hola
  node bin/graft.js fleet config apply --set greeting=hej --fleet ${nats} --name demo --bus-key .graft/fleet-demo.key`);
  const stop = () => children.forEach((c) => c.kill('SIGTERM'));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
}

const [command, ...args] = process.argv.slice(2);
if (command === 'put' && args.length === 2) await put(args[0]!, args[1]!);
else if (command === undefined) await hosts();
else {
  console.error('usage: npm run example:fleet [-- put KEY VALUE]');
  process.exit(1);
}
