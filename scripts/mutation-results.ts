// test/mutation/RESULTS.md from StrykerJS's JSON report (reports/mutation/mutation.json):
// the score per file and every mutant the unit tests let live. `npm run test:mutation`
// runs Stryker and then this; the README's table is copied from the results file by
// `npm run docs:bench`, like the benchmarks' tables. Why each survivor lives is in
// test/mutation/explained.json; `--annotate` writes the last run again with them.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { graftRevision } from '../bench/lib/report.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

type Status = 'Killed' | 'Timeout' | 'Survived' | 'NoCoverage' | 'CompileError' | 'RuntimeError' | 'Ignored' | 'Pending';

interface Report {
  files: Record<string, { source: string; mutants: Array<{ mutatorName: string; status: Status; replacement?: string; location: { start: { line: number; column: number } } }> }>;
}

interface Row {
  file: string;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
}

/** Detected (killed or timed out) over every mutant that ran or that no test reached; errors and ignored ones do not count. */
export function score(r: Omit<Row, 'file'>): number {
  const valid = r.killed + r.timeout + r.survived + r.noCoverage;
  return valid === 0 ? 100 : (100 * (r.killed + r.timeout)) / valid;
}

/**
 * Why a surviving mutant cannot be killed (no behaviour tells it apart from the code), by
 * `file:line MutatorName`: test/mutation/explained.json, written by hand after a run.
 */
export type Explained = Record<string, string>;

export function results(report: Report, provenance: { date: string; revision: string; node: string }, explained: Explained = {}): string {
  const rows: Row[] = [];
  const survivors: string[] = [];
  const used = new Set<string>();
  let unexplained = 0;
  for (const [file, { source, mutants }] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
    const count = (s: Status) => mutants.filter((m) => m.status === s).length;
    rows.push({ file, killed: count('Killed'), timeout: count('Timeout'), survived: count('Survived'), noCoverage: count('NoCoverage') });
    const lines = source.split('\n');
    for (const m of mutants.filter((x) => x.status === 'Survived' || x.status === 'NoCoverage')) {
      const { line } = m.location.start;
      const code = (lines[line - 1] ?? '').trim().slice(0, 100);
      const replacement = (m.replacement ?? '').replace(/\s+/g, ' ').slice(0, 60);
      const key = `${file}:${line} ${m.mutatorName}`;
      const why = explained[key];
      if (why) used.add(key);
      else unexplained++;
      survivors.push(
        `- \`${file}:${line}\` ${m.mutatorName}${m.status === 'NoCoverage' ? ' (no test reaches it)' : ''}: \`${code.replace(/`/g, "'")}\` → \`${replacement.replace(/`/g, "'")}\`` +
          (why ? `. *Why it lives:* ${why}` : '. **Not explained.**'),
      );
    }
  }
  const total = rows.reduce((t, r) => ({ killed: t.killed + r.killed, timeout: t.timeout + r.timeout, survived: t.survived + r.survived, noCoverage: t.noCoverage + r.noCoverage }), { killed: 0, timeout: 0, survived: 0, noCoverage: 0 });
  const row = (name: string, r: Omit<Row, 'file'>) => `| ${name} | ${r.killed + r.timeout + r.survived + r.noCoverage} | ${r.killed} | ${r.timeout} | ${r.survived} | ${r.noCoverage} | ${score(r).toFixed(1)}% |`;
  return [
    '# Mutation testing results',
    '',
    '- command: `npm run test:mutation`   (= stryker run, then node --import tsx scripts/mutation-results.ts)',
    `- date: ${provenance.date}`,
    `- graft: ${provenance.revision}; node ${provenance.node}`,
    '- runner: StrykerJS with its tap runner: every unit test file (test/unit/*.test.ts) that covers a mutant runs against it; string literals are not mutated (stryker.config.mjs)',
    '- score: killed and timed-out mutants over every mutant that ran or that no test reached',
    '',
    '### Score',
    '',
    '| file | mutants | killed | timed out | survived | no coverage | score |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => row(`\`${r.file}\``, r)),
    row('**all**', total),
    '',
    '### Mutants the unit tests let live',
    '',
    `${survivors.length} mutants live: ${survivors.length - unexplained} explained (equivalent mutants no behaviour tells apart from the code, code no unit test can reach, or a bug said as one; the reasons are in test/mutation/explained.json), ${unexplained} not explained.`,
    '',
    ...(survivors.length ? survivors : ['None.']),
    '',
    ...(Object.keys(explained).some((k) => !used.has(k))
      ? ['Explanations that match no living mutant (the code moved or the mutant is killed now):', '', ...Object.keys(explained).filter((k) => !used.has(k)).map((k) => `- \`${k}\``), '']
      : []),
  ].join('\n');
}

/** The run a results file records: its date, graft revision and Node. */
function provenanceOf(text: string): { date: string; revision: string; node: string } {
  const date = /^- date: (.+)$/m.exec(text)?.[1];
  const graft = /^- graft: (.+); node (\S+)$/m.exec(text);
  if (!date || !graft) throw new Error('test/mutation/RESULTS.md names no run (date, graft, node) to annotate');
  return { date, revision: graft[1]!, node: graft[2]! };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = JSON.parse(readFileSync(join(root, 'reports/mutation/mutation.json'), 'utf8')) as Report;
  const out = join(root, 'test/mutation/RESULTS.md');
  mkdirSync(dirname(out), { recursive: true });
  const explained = JSON.parse(readFileSync(join(root, 'test/mutation/explained.json'), 'utf8')) as Explained;
  // --annotate: the same run written again with the explanations as they are now (its date, commit and Node kept from the results file).
  const provenance = process.argv.includes('--annotate') ? provenanceOf(readFileSync(out, 'utf8')) : { date: new Date().toISOString(), revision: graftRevision(), node: process.version };
  writeFileSync(out, results(report, provenance, explained));
  console.log(`wrote ${out}`);
}
