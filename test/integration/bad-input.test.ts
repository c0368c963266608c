import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture, freePort, graftCli, isAlive, startGraft, tempDir } from '../helpers/graft.js';

/** One line naming the problem, with a stable code, and a non-zero exit. */
function assertOneLineError(r: { code: number | null; stderr: string }, code: string, pattern?: RegExp): void {
  assert.notEqual(r.code, 0, 'must exit non-zero');
  const first = r.stderr.split('\n').find((l) => l.startsWith('graft: '));
  assert.ok(first, `no "graft: CODE: ..." line in:\n${r.stderr}`);
  assert.ok(first.startsWith(`graft: ${code}: `), first);
  if (pattern) assert.match(first, pattern);
}

describe('bad input', () => {
  test('an unknown flag', async () => {
    assertOneLineError(await graftCli(['start', fixture('slow-app.ts'), '--wrokers', '2']), 'GRAFT_UNKNOWN_FLAG', /--wrokers/);
  });

  test('an unknown command', async () => {
    assertOneLineError(await graftCli(['relaod']), 'GRAFT_UNKNOWN_COMMAND', /relaod/);
  });

  test('a bad worker count', async () => {
    assertOneLineError(await graftCli(['start', fixture('slow-app.ts'), '-w', 'two']), 'GRAFT_BAD_ARGUMENT', /--workers/);
  });

  test('a missing entry', async () => {
    assertOneLineError(await graftCli(['start', 'no/such/app.ts']), 'GRAFT_ENTRY_NOT_FOUND', /no\/such\/app\.ts/);
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
    assertOneLineError(r, 'GRAFT_ENTRY_UNREADABLE', /app\.js/);
  });

  test('an entry that throws at boot', async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'throw');
    const g = await startGraft(fixture('mode-app.ts'), { env: { MODE_FILE: mode } });
    const exit = await g.exited;
    assert.equal(exit.code, 1);
    const line = g.output.find((l) => l.startsWith('graft: '));
    assert.match(line ?? '', /^graft: GRAFT_BOOT_FAILED: .*mode-app\.ts failed to boot: Error: boom/);
    assert.ok(g.output.some((l) => l.includes('mode-app.ts:')), 'the stack names the file and line');
  });

  test('a port in use', async () => {
    const busy = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => busy.listen(port, r));
    try {
      const mode = join(tempDir(), 'mode');
      writeFileSync(mode, 'in-use');
      const g = await startGraft(fixture('mode-app.ts'), { env: { MODE_FILE: mode, BUSY_PORT: String(port) }, args: ['--timeout', '10'] });
      const exit = await g.exited;
      assert.equal(exit.code, 1);
      const line = g.output.find((l) => l.startsWith('graft: '));
      assert.match(line ?? '', new RegExp(`^graft: GRAFT_PORT_IN_USE: port ${port} is already in use`));
      // The process that held the port is untouched.
      assert.equal(busy.listening, true);
    } finally {
      busy.close();
    }
  });

  test('an entry that never listens', async () => {
    const mode = join(tempDir(), 'mode');
    writeFileSync(mode, 'never');
    const g = await startGraft(fixture('mode-app.ts'), { env: { MODE_FILE: mode }, args: ['--timeout', '1'] });
    const exit = await g.exited;
    assert.equal(exit.code, 1);
    const line = g.output.find((l) => l.startsWith('graft: '));
    assert.match(line ?? '', /^graft: GRAFT_READY_TIMEOUT: .*never started listening/);
  });

  test('graft reload with no master running', async () => {
    const dir = tempDir();
    assertOneLineError(await graftCli(['reload'], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir } }), 'GRAFT_NO_MASTER');
    assertOneLineError(await graftCli(['reload', '--socket', join(dir, 'nothing.sock')]), 'GRAFT_NO_MASTER', /nothing\.sock/);
  });

  test('a second master for the same socket is refused and the first keeps running', async () => {
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1 });
    try {
      await g.waitRunning();
      const second = await graftCli(['start', fixture('slow-app.ts'), '-w', '1', '-p', String(await freePort()), '--socket', g.socket]);
      assertOneLineError(second, 'GRAFT_ALREADY_RUNNING');
      assert.equal(isAlive(g.pid), true);
      assert.equal((await fetch(g.url)).status, 200);
    } finally {
      await g.stop();
    }
  });

  test('control commands find the master from the working directory', async () => {
    const dir = tempDir();
    const g = await startGraft(fixture('slow-app.ts'), { workers: 1, env: { GRAFT_RUNTIME_DIR: dir }, cwd: dir });
    try {
      await g.waitRunning();
      // startGraft passes --socket; a second master with default paths shows the lookup.
      const port = await freePort();
      const { spawn } = await import('node:child_process');
      const { cliPath, tsxImport } = await import('../helpers/graft.js');
      const child = spawn(process.execPath, ['--import', tsxImport, cliPath, 'start', fixture('slow-app.ts'), '-w', '1', '-p', String(port)], {
        cwd: dir,
        env: { ...process.env, GRAFT_RUNTIME_DIR: dir, GRAFT_LOG_FORMAT: 'json' },
        stdio: 'ignore',
      });
      try {
        let status = await graftCli(['status', '--json'], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir } });
        for (let i = 0; i < 50 && status.code !== 0; i++) {
          await new Promise((r) => setTimeout(r, 200));
          status = await graftCli(['status', '--json'], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir } });
        }
        assert.equal(status.code, 0, status.stderr);
        assert.equal(JSON.parse(status.stdout).master.pid, child.pid);
        const reload = await graftCli(['reload'], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir } });
        assert.equal(reload.code, 0, reload.stderr);
        const stop = await graftCli(['stop'], { cwd: dir, env: { GRAFT_RUNTIME_DIR: dir } });
        assert.equal(stop.code, 0, stop.stderr);
      } finally {
        child.kill('SIGKILL');
      }
    } finally {
      await g.stop();
    }
  });
});
