import { watch, type FSWatcher } from 'chokidar';
import { basename } from 'node:path';

const CODE = /\.(?:[cm]?[jt]sx?|json)$/;
const SKIP = new Set(['node_modules', '.git', 'dist', 'coverage']);

/**
 * `--watch`: a change to the app's source files asks for a reload. Several
 * events from one save (or a checkout touching many files) become one request
 * after a quiet period; the arbiter merges whatever still overlaps a reload.
 */
export class CodeWatcher {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private changed = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly onChange: (files: string[]) => void,
    private readonly quietMs = 100,
  ) {}

  async start(): Promise<void> {
    this.watcher = watch(this.root, {
      ignoreInitial: true,
      atomic: true,
      ignored: (path, stats) => {
        const name = basename(path);
        if (SKIP.has(name) || (name.startsWith('.') && path !== this.root)) return true;
        return stats?.isFile() === true && !CODE.test(name);
      },
    });
    this.watcher.on('all', (_event, path) => this.note(path));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.watcher?.close();
  }

  private note(path: string): void {
    if (!CODE.test(path)) return;
    this.changed.add(path);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const files = [...this.changed];
      this.changed.clear();
      this.onChange(files);
    }, this.quietMs);
  }
}
