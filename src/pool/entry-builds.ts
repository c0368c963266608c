import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraftError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Bundler } from '../swap/bundle.js';
import { moduleType } from '../swap/module-type.js';
import { masterAlive } from '../registry/paths.js';
import { codeVersion } from './code-version.js';
import { shortHash } from '../core/hash.js';

const here = fileURLToPath(import.meta.url);
const graftRoot = join(dirname(here), '..', '..');
const srcDir = join(graftRoot, 'src') + sep;
const distDir = join(graftRoot, 'dist') + sep;

/**
 * graft's own modules, which an app must share with the worker runtime, never
 * load twice: a file of graft's dist/ as it is, and one of its src/ (an app
 * in graft's checkout imports it) as this process runs graft: from source,
 * or the dist/ file tsc compiled from it.
 */
function graftModule(file: string): string | undefined {
  if (file.startsWith(distDir)) return file;
  if (!file.startsWith(srcDir)) return undefined;
  if (here.endsWith('.ts')) return file;
  return join(distDir, relative(srcDir, file)).replace(/\.([cm]?)tsx?$/, '.$1js');
}

/** A TypeScript entry, which workers cannot load without a TypeScript loader of their own. */
/** `--tsx`: tsx loads a TypeScript entry in every worker (warm ones included) instead of the master compiling it. */
export function tsxInWorkers(entry: string, tsx: boolean): boolean {
  return tsx && isTypeScript(entry);
}

export function isTypeScript(entry: string): boolean {
  return /\.[cm]?tsx?$/.test(entry);
}

/**
 * A TypeScript entry compiled by the master, once per worker generation, into
 * one JavaScript module with its source map: the workers run plain Node (tsx
 * in every worker costs tens of MB and a slower boot each). The entry and its
 * local imports are bundled; packages are imported from where the source
 * would find them; import.meta.url, __dirname and friends keep naming the
 * source files; a stack trace names the .ts file, line and column.
 *
 * The build is the first step of a generation's build: new code on disk is a
 * new build, and a file that does not compile refuses the generation before
 * any worker starts (GRAFT_BOOT_FAILED naming file:line:col), the live one
 * untouched. Each generation's output lives in its own directory under `dir`
 * (beside the control socket), removed once no worker of that generation is
 * left; directories of masters that are gone are swept at the first build.
 */
export class EntryBuilds {
  private readonly bundler: Bundler;
  private readonly format: 'esm' | 'cjs';
  private swept = false;

  constructor(
    private readonly entry: string,
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    // Node's rule for the entry decides the bundle's format, as it decides how tsx would load it.
    this.format = moduleType(entry) === 'module' ? 'esm' : 'cjs';
    this.bundler = new Bundler(entry, {
      format: this.format,
      outside: graftModule,
      failure: (where, text) =>
        new GraftError('GRAFT_BOOT_FAILED', `${entry} failed to boot: ${/^Could not resolve/.test(text) ? '' : 'syntax error in '}${where}: ${text}`),
    });
  }

  /** Compile the entry as it is on disk now for `generation`; resolves with the file a worker imports and the code version of what it compiled. */
  async build(generation: number): Promise<{ file: string; version: string }> {
    const startedAt = Date.now();
    const bundle = await this.bundler.build();
    const version = codeVersion(bundle.inputs, dirname(this.entry));
    if (!this.swept) this.sweep();
    const out = this.generationDir(generation);
    mkdirSync(out, { recursive: true, mode: 0o700 });
    const file = this.outFile(out);
    this.write(file, bundle);
    this.log.info('entry compiled', { generation, file, inputs: bundle.inputs.length, codeVersion: version, buildMs: Date.now() - startedAt });
    return { file, version };
  }

  /**
   * A release's entry: compiled once into `dir` itself and kept there with
   * the release, whose files never change; every later generation of it (a
   * reload, a rollback) runs that build without compiling again.
   */
  async buildKept(): Promise<{ file: string; version: string; reused: boolean }> {
    const file = this.outFile(this.dir);
    const versionFile = join(this.dir, 'version');
    // `version` holds the code version and the hash of the build as written: a build changed since is compiled again.
    if (existsSync(versionFile) && existsSync(file)) {
      const [version, written] = readFileSync(versionFile, 'utf8').split('\n');
      if (version && existsSync(`${file}.map`) && written === shortHash([readFileSync(file, 'utf8'), readFileSync(`${file}.map`, 'utf8')])) return { file, version, reused: true };
      this.log.warn('a kept release build was changed on disk; compiling it again', { file });
    }
    const startedAt = Date.now();
    const bundle = await this.bundler.build();
    await this.bundler.close();
    const version = codeVersion(bundle.inputs, dirname(this.entry));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const written = this.write(file, bundle);
    writeFileSync(versionFile, `${version}\n${shortHash(written)}`); // last: a build cut short is built again
    this.log.info('release compiled', { file, inputs: bundle.inputs.length, codeVersion: version, buildMs: Date.now() - startedAt });
    return { file, version, reused: false };
  }

  /** Where a build of the entry goes in `dir`: a module Node loads as the entry's format says. */
  private outFile(dir: string): string {
    return join(dir, `${basename(this.entry, extname(this.entry))}.${this.format === 'esm' ? 'mjs' : 'cjs'}`);
  }

  /** The module and its source map, written; returns the two texts as written (what a kept build is checked against). */
  private write(file: string, bundle: { code: string; map: string }): [string, string] {
    const code = `${bundle.code}//# sourceMappingURL=${basename(file)}.map\n`;
    writeFileSync(`${file}.map`, bundle.map);
    writeFileSync(file, code);
    return [code, bundle.map];
  }

  /** No worker of `generation` is left: its output goes. */
  remove(generation: number): void {
    rmSync(this.generationDir(generation), { recursive: true, force: true });
  }

  /** The master stops: every build of this master goes (a successor's stay). */
  async close(): Promise<void> {
    await this.bundler.close();
    for (const name of this.list()) if (name.startsWith(`${process.pid}-`)) rmSync(join(this.dir, name), { recursive: true, force: true });
    try {
      rmdirSync(this.dir); // only if empty: a successor's builds may live here
    } catch {
      // not empty, or gone
    }
  }

  private generationDir(generation: number): string {
    // By pid too: a master and its successor (graft upgrade) build beside each other.
    return join(this.dir, `${process.pid}-${generation}`);
  }

  /** Builds left by masters that died without cleaning up. */
  private sweep(): void {
    this.swept = true;
    for (const name of this.list()) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && !masterAlive(pid)) rmSync(join(this.dir, name), { recursive: true, force: true });
    }
  }

  private list(): string[] {
    try {
      return readdirSync(this.dir);
    } catch {
      return [];
    }
  }
}
