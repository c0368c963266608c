import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { regenerate, stale, tableOf } from '../../scripts/bench-tables.js';

const results = `# bench/x results

- command: \`npm run bench:x\`
- date: 2026-12-06T04:28:14.695Z
- graft: commit 89e16d7, working tree clean; node v24.22.3, linux/x64; PM2 7.0.4
- machine: 2 cores

| first | table |
|---|---|
| a | 1 |

### Second part: 64 connections

| second | table |
|---|---|
| b | 2 |

after it
`;

describe("the README's benchmark tables", () => {
  test('are the tables of the results files, as they are now (run `npm run docs:bench` after a bench)', () => {
    assert.deepEqual(stale(readFileSync(new URL('../../README.md', import.meta.url), 'utf8')), []);
  });

  test('a marker takes the first table under the heading it names (or the first of the file), and the commit, Node and date it was measured at', () => {
    assert.equal(tableOf(results, 'bench/x/RESULTS.md', 'Second part'), '| second | table |\n|---|---|\n| b | 2 |\n\n<sub>From [bench/x/RESULTS.md](bench/x/RESULTS.md): commit 89e16d7, Node v24.22.3, 2026-12-06.</sub>');
    assert.match(tableOf(results, 'bench/x/RESULTS.md', undefined), /^\| first \| table \|\n\|---\|---\|\n\| a \| 1 \|\n\n<sub>/);
  });

  test('a results file that recorded no commit says so; one that says it is not publishable, or lacks the heading, is refused naming the file', () => {
    assert.match(tableOf(results.replace(/^- graft: .*$/m, '- node v20'), 'bench/x/RESULTS.md', undefined), /2026-12-06, no commit recorded \(rerun it\)/);
    assert.match(tableOf(results.replace('working tree clean', 'with uncommitted changes in src/; NOT a clean tree, uncommitted: src/a.ts'), 'bench/x/RESULTS.md', undefined), /commit 89e16d7 with uncommitted changes in src\/, Node v24\.22\.3, 2026-12-06/);
    assert.throws(() => tableOf(results.replace('working tree clean', 'working tree clean (at the start; the tree changed during the run: NOT publishable)'), 'bench/x/RESULTS.md', undefined), /bench\/x\/RESULTS\.md says it is NOT publishable/);
    assert.throws(() => tableOf(results, 'bench/x/RESULTS.md', 'Third'), /bench\/x\/RESULTS\.md has no heading starting "Third"/);
    assert.throws(() => tableOf(results.replace('| first | table |\n|---|---|\n| a | 1 |\n', '').replace('# bench/x results', '# bench/x results\n\n### Empty part'), 'bench/x/RESULTS.md', 'Empty part'), /has no table under "Empty part"/);
    assert.throws(() => regenerate('<!--results bench/x/RESULTS.md -->\n<!-- /results -->\n', () => results), /1 results markers, 0 of them in the form/);
  });

  test('only what lies between the markers is rewritten, and a table typed by hand there is found stale', () => {
    const readme = `# app\n\nprose 1.5×\n\n<!-- results bench/x/RESULTS.md "Second" -->\n| second | table |\n|---|---|\n| b | 3 |\n<!-- /results -->\n\nmore prose\n`;
    const read = () => results;
    assert.deepEqual(stale(readme, read), ['<!-- results bench/x/RESULTS.md "Second" -->']);
    const fresh = regenerate(readme, read);
    assert.equal(fresh, `# app\n\nprose 1.5×\n\n<!-- results bench/x/RESULTS.md "Second" -->\n${tableOf(results, 'bench/x/RESULTS.md', 'Second')}\n<!-- /results -->\n\nmore prose\n`);
    assert.deepEqual(stale(fresh, read), []);
  });
});
