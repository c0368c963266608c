import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { getFresh } from '../../bench/lib/http.js';
import { builtPackage, root, startGraft, tempDir } from '../helpers/graft.js';

/** On a new connection: a kept-alive one may still reach a generation that is draining. */
const getJson = async (url: string): Promise<unknown> => JSON.parse((await getFresh(url)).body);

/** A project of its own with `"type": "commonjs"` and graft installed as a dependency (the built package). */
function commonjsProject(): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'cjs-app', type: 'commonjs' }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'graftjs'), 'dir');
  return dir;
}

describe('graft from a CommonJS project', () => {
  // The project's graftjs is this checkout, as installed: its package.json points at dist/.
  before(() => builtPackage());

  test("require('graftjs') gives the API", () => {
    const dir = commonjsProject();
    const out = execFileSync(process.execPath, ['-e', "const g = require('graftjs'); console.log(JSON.stringify([typeof g.config.on, typeof g.swappable, typeof g.loop]))"], { cwd: dir, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), ['function', 'function', 'function']);
  });

  test('a .ts entry in a "type": "commonjs" package serves, reads config and reloads', async () => {
    const dir = commonjsProject();
    writeFileSync(
      join(dir, 'app.ts'),
      `import http from 'node:http';
import { config } from 'graftjs';
const { swappable } = require('graftjs');
http.createServer((_q, res) => res.end(JSON.stringify({ version: config.version, generation: process.env.GRAFT_GENERATION, swappable: typeof swappable, commonjs: typeof module }))).listen(Number(process.env.PORT));
`,
    );
    const g = await startGraft(join(dir, 'app.ts'), { workers: 1, cwd: dir, built: true });
    try {
      await g.waitRunning();
      assert.deepEqual(await getJson(g.url), { version: 1, generation: '1', swappable: 'function', commonjs: 'object' });
      const r = await g.cli('config', 'apply', '--set', 'greeting=hi');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await getJson(g.url), { version: 2, generation: '1', swappable: 'function', commonjs: 'object' });
      const reload = await g.cli('reload');
      assert.equal(reload.code, 0, reload.stderr);
      assert.deepEqual(await getJson(g.url), { version: 2, generation: '2', swappable: 'function', commonjs: 'object' }, 'the new generation serves, on the live config');
    } finally {
      await g.stop();
    }
  });

  test('a .ts entry in a "type": "commonjs" package whose default export is defineService() is started and served by graft', async () => {
    const dir = commonjsProject();
    writeFileSync(
      join(dir, 'service.ts'),
      `import http from 'node:http';
import { config, defineService } from 'graftjs';
export default defineService({
  start: () => http.createServer((_q, res) => res.end(JSON.stringify({ version: config.version, generation: process.env.GRAFT_GENERATION }))),
});
`,
    );
    const g = await startGraft(join(dir, 'service.ts'), { workers: 1, cwd: dir, built: true });
    try {
      await g.waitRunning();
      assert.deepEqual(await getJson(g.url), { version: 1, generation: '1' }, 'graft listened on the server start() returned');
    } finally {
      await g.stop();
    }
  });
});
