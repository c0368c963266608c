import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { fixture, root, startGraft, tempDir } from '../helpers/graft.js';
import { underLoad } from '../helpers/load.js';
import { record } from '../helpers/output.js';

const run = promisify(execFile);

describe("the app's own arguments: graft start ENTRY [options] -- ARGS", () => {
  test('every worker of every generation sees [node, entry, ...ARGS], also after a reload and graft upgrade', async () => {
    const entry = fixture('argv-app.mjs');
    const g = await startGraft(entry, { workers: 2, args: ['--', '--greeting', 'hi there', '-w', '5'] });
    try {
      await g.waitRunning();
      const seen = async () => (await (await fetch(g.url, { headers: { connection: 'close' } })).json()) as { argv: string[]; generation: number };
      assert.deepEqual((await seen()).argv, [entry, '--greeting', 'hi there', '-w', '5'], 'ARGS reach the app, and graft took `-w 5` after `--` as the app\'s');
      assert.equal((await g.status()).workers.length, 2, 'graft kept its own -w 2');
      for (const command of ['reload', 'upgrade']) {
        const r = await g.cli(command);
        assert.equal(r.code, 0, r.stderr);
        const after = await seen();
        assert.deepEqual(after.argv, [entry, '--greeting', 'hi there', '-w', '5'], `after ${command}`);
      }
    } finally {
      await g.stop();
    }
  });

  test('a package bin as the entry: `graft start node_modules/.bin/next -- start` serves a Next.js app built here, through 3 reloads under load, none failed', async () => {
    const dir = tempDir('graft-next-');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'shop', private: true }));
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'app/layout.js'), 'export default function Layout({ children }) { return <html><body>{children}</body></html>; }\n');
    writeFileSync(join(dir, 'app/page.js'), "export const dynamic = 'force-dynamic';\nexport default function Page() { return <p>generation {process.env.GRAFT_GENERATION}</p>; }\n");
    writeFileSync(join(dir, 'next.config.mjs'), 'export default { eslint: { ignoreDuringBuilds: true } };\n');
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
    const build = await run(process.execPath, [join(dir, 'node_modules/.bin/next'), 'build'], { cwd: dir, env, maxBuffer: 16 * 1024 * 1024 });
    for (const line of `${build.stdout}${build.stderr}`.split('\n')) record('next build', line);

    const g = await startGraft('node_modules/.bin/next', { workers: 2, cwd: dir, env: { NEXT_TELEMETRY_DISABLED: '1' }, args: ['--', 'start'] });
    try {
      const running = await g.waitRunning();
      const page = await (await fetch(g.url)).text();
      assert.match(page, /generation (<!-- -->)?1/, 'the page rendered by generation 1');
      // The project's package.json names the service, not next's own.
      assert.match((await g.cli('status')).stdout, /service shop-next /);
      const last = Number(running.generation) + 3;
      const { failed, load } = await underLoad(g.url, async () => {
        for (let i = 0; i < 3; i++) {
          const r = await g.cli('reload');
          assert.equal(r.code, 0, r.stderr);
        }
      }, { connections: 8 });
      assert.equal(failed, 0, `failed requests: ${JSON.stringify(load)}`);
      assert.ok(load.answered > 50, `only ${load.answered} requests were answered`);
      assert.match(await (await fetch(g.url)).text(), new RegExp(`generation (<!-- -->)?${last}`), 'the last generation renders');
    } finally {
      await g.stop();
    }
  });
});
