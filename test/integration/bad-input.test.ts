import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { failedStart, fixture, freePort, graftCli, isAlive, oneLineError, root, startGraft, tempDir } from '../helpers/graft.js';

describe('bad input', () => {
  test('an unknown flag', async () => {
    oneLineError(await graftCli(['start', fixture('slow-app.ts'), '--wrokers', '2']), 'GRAFT_UNKNOWN_FLAG', /--wrokers' \(did you mean --workers\?\)/);
  });

  test('an unknown command', async () => {
    oneLineError(await graftCli(['relaod']), 'GRAFT_UNKNOWN_COMMAND', /relaod/);
  });

  test('a bad worker count', async () => {
    oneLineError(await graftCli(['start', fixture('slow-app.ts'), '-w', 'two']), 'GRAFT_BAD_ARGUMENT', /--workers/);
  });

  test('a missing entry', async () => {
    oneLineError(await graftCli(['start', 'no/such/app.ts']), 'GRAFT_ENTRY_NOT_FOUND', /no\/such\/app\.ts/);
  });

  test('an unreadable entry', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const file = join(dir, 'app.js');
    writeFileSync(file, 'export {}');
    chmodSync(file, 0);
    // root reads every file, so as root the check runs as nobody.
    const asRoot = process.getuid?.() === 0;
    const r = await graftCli(['start', file], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir }, ...(asRoot ? { uid: 65534 } : {}) });
    oneLineError(r, 'GRAFT_ENTRY_UNREADABLE', /app\.js/);
  });

  test('an entry that throws at boot', async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'throw');
    const g = await startGraft(fixture('mode-app.ts'), { env: { MODE_FILE: mode } });
    const line = await failedStart(g);
    assert.match(line, /^graft: GRAFT_BOOT_FAILED: .*mode-app\.ts failed to boot: Error: boom.* \(at .*mode-app\.ts:\d+:\d+\)$/);
    assert.doesNotMatch(line, /keeps serving/, 'nothing was live to keep serving');
    const rejected = g.logs.find((l) => l.msg === 'reload: generation rejected');
    assert.match(String(rejected?.detail), /mode-app\.ts:\d+/, 'the log keeps the stack');
  });

  test('a syntax error in a file the entry imports names that file and line', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'app.ts'), "import { port } from './settings.ts';\nimport http from 'node:http';\nhttp.createServer((_q, s) => s.end('ok')).listen(port);\n");
    writeFileSync(join(dir, 'settings.ts'), 'export const port = Number(process.env.PORT);\nexport const broken = {;\n');
    const line = await failedStart(await startGraft(join(dir, 'app.ts'), { workers: 1 }));
    assert.match(line, /^graft: GRAFT_BOOT_FAILED: .*app\.ts failed to boot: syntax error in .*settings\.ts:2:\d+: /);
  });

  test('a negative worker count, a warm worker count that is no number, a socket path too long', async () => {
    oneLineError(await graftCli(['start', fixture('slow-app.ts'), '-w', '-1']), 'GRAFT_BAD_ARGUMENT', /--workers .*"-1"/);
    oneLineError(await graftCli(['start', fixture('slow-app.ts'), '--warm-workers', 'some']), 'GRAFT_BAD_ARGUMENT', /--warm-workers .*"some"/);
    const long = join(tempDir(), `${'x'.repeat(120)}.sock`);
    oneLineError(await graftCli(['start', fixture('slow-app.ts'), '--socket', long]), 'GRAFT_SOCKET_UNUSABLE', /at most 107/);
  });

  test('--version, graft help <command>, graft <command> --help', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const v = await graftCli(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout.trim(), version);
    for (const args of [['help', 'reload'], ['reload', '--help'], ['reload', '-h']]) {
      const r = await graftCli(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^graft reload \[name\|entry\]/);
    }
    oneLineError(await graftCli(['help', 'relaod']), 'GRAFT_UNKNOWN_COMMAND', /relaod/);
  });

  test('a port in use', async () => {
    const busy = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => busy.listen(port, r));
    try {
      const mode = join(tempDir(), 'mode');
      writeFileSync(mode, 'in-use');
      const g = await startGraft(fixture('mode-app.ts'), { env: { MODE_FILE: mode, BUSY_PORT: String(port) }, args: ['--timeout', '10'] });
      const line = await failedStart(g);
      assert.match(line, new RegExp(`^graft: GRAFT_PORT_IN_USE: port ${port} is already in use`));
      // The process that held the port is untouched.
      assert.equal(busy.listening, true);
    } finally {
      busy.close();
    }
  });

  test('an entry that never listens, with --ready listen', async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'never');
    const g = await startGraft(fixture('mode-app.ts'), { env: { MODE_FILE: mode }, args: ['--timeout', '1', '--ready', 'listen'] });
    const line = await failedStart(g);
    assert.match(line, /^graft: GRAFT_READY_TIMEOUT: .*never started listening \(--ready listen\)/);
  });

  test('--ready takes listen, load, message or auto', async () => {
    oneLineError(await graftCli(['start', fixture('slow-app.ts'), '--ready', 'soon']), 'GRAFT_BAD_ARGUMENT', /--ready must be one of auto, listen, load, message, got "soon"/);
  });

  test('graft reload with no master running', async () => {
    const dir = tempDir();
    oneLineError(await graftCli(['reload'], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir } }), 'GRAFT_NO_MASTER');
    // The socket was passed: the hint does not ask for it again.
    const noMaster = oneLineError(await graftCli(['reload', '--socket', join(dir, 'nothing.sock')]), 'GRAFT_NO_MASTER', /nothing\.sock/);
    assert.doesNotMatch(noMaster, /pass --socket/);
  });

  test('a second master for the same socket is refused and the first keeps running', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      const second = await graftCli(['start', fixture('slow-app.ts'), '-w', '1', '-p', String(await freePort()), '--socket', g.socket]);
      oneLineError(second, 'GRAFT_ALREADY_RUNNING');
      assert.equal(isAlive(g.pid), true);
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });

  test('control commands find the master from the working directory', async () => {
    const dir = tempDir();
    const env = { GRAFT_RUNTIME_DIR: dir };
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1, env, cwd: dir, defaultSocket: true });
    try {
      await g.waitRunning();
      const status = await graftCli(['status', '--json'], { cwd: dir, env });
      assert.equal(status.code, 0, status.stderr);
      assert.equal(JSON.parse(status.stdout).master.pid, await g.firstMaster());
      const reload = await graftCli(['reload'], { cwd: dir, env });
      assert.equal(reload.code, 0, reload.stderr);
      const stop = await graftCli(['stop'], { cwd: dir, env });
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal((await g.exited).code, 0);
    } finally {
      await g.stop();
    }
  });
});
