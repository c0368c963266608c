import { readFileSync } from 'node:fs';
import { tryLock } from '../core/lock-file.js';
import { replacePrivateFile } from '../core/private-file.js';

/**
 * What a host's masters remember of the orders they carried out, kept in a
 * file beside the control socket so that every master of the service shares
 * it, whatever came between: an upgrade's successor, the master the keeper
 * starts after a crash, one started by hand after a stop. Two things:
 *
 * - the ids carried out lately (with when), so a replayed order is refused;
 * - per sender, when its newest config order was signed, so a config order
 *   delayed on the way cannot undo a newer one from the same sender. Clocks of
 *   two senders are not compared.
 *
 * Entries older than `keepMs` are forgotten: by then the order's age refuses it.
 * Two masters run side by side during an upgrade: each order is checked and
 * recorded in one transaction (a lock file beside it, the file read again,
 * changed, and written atomically and 0600), so neither loses the other's.
 */
export class OrderMemory {
  private readonly seen = new Map<string, number>();
  private readonly latest = new Map<string, number>();

  constructor(
    private readonly keepMs: number,
    private readonly file?: string,
  ) {}

  /** Merge in what the file holds; a missing or unreadable file is an empty memory (said by the return value). */
  load(now = Date.now()): 'loaded' | 'none' | 'corrupt' {
    if (!this.file) return 'none';
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return 'none';
    }
    let saved: { seen?: unknown; latest?: unknown };
    try {
      saved = JSON.parse(text) as typeof saved;
    } catch {
      return 'corrupt';
    }
    for (const [id, at] of pairs(saved.seen)) if (!this.seen.has(id)) this.seen.set(id, at);
    for (const [sender, at] of pairs(saved.latest)) this.latest.set(sender, Math.max(at, this.latest.get(sender) ?? 0));
    this.forget(now);
    return 'loaded';
  }

  /** Load, run `change`, save, under the lock; a change that throws saves nothing. */
  transaction<T>(now: number, change: () => T): T {
    const unlock = this.lock();
    try {
      this.load(now);
      const result = change();
      this.save();
      return result;
    } finally {
      unlock();
    }
  }

  /** Forget an order that was not carried out after all (its master was handing over): the next master may take it. */
  release(id: string, config?: { sender: string; signedAt: number }): void {
    this.transaction(Date.now(), () => {
      this.seen.delete(id);
      if (config && this.latest.get(config.sender) === config.signedAt) this.latest.delete(config.sender);
    });
  }

  /** The lock file (tryLock: one whose master died holding it, or older than 2 s, is taken over). Never waits more than 1 s. */
  private lock(): () => void {
    if (!this.file) return () => {};
    const lock = `${this.file}.lock`;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + 1000;
    for (;;) {
      let release: (() => void) | undefined;
      try {
        release = tryLock(lock, 2000);
      } catch {
        return () => {}; // a read-only or full disk: go on without
      }
      if (release) return release;
      if (Date.now() > deadline) return () => {};
      Atomics.wait(pause, 0, 0, 5);
    }
  }

  save(): void {
    if (!this.file) return;
    try {
      replacePrivateFile(this.file, JSON.stringify({ seen: [...this.seen], latest: [...this.latest] }));
    } catch {
      // A full disk loses the memory across restarts, not the order: the age check still bounds a replay.
    }
  }

  carriedOut(id: string): boolean {
    return this.seen.has(id);
  }

  /** When `sender`'s newest config order carried out was signed (undefined: none remembered). */
  newestConfig(sender: string): number | undefined {
    return this.latest.get(sender);
  }

  remember(id: string, receivedAt: number, config?: { sender: string; signedAt: number }): void {
    this.seen.set(id, receivedAt);
    if (config) this.latest.set(config.sender, Math.max(config.signedAt, this.latest.get(config.sender) ?? 0));
  }

  forget(now: number): void {
    // An entry from the future (a clock set back, a hand-edited file) would hold for as long: it goes too.
    const stale = (at: number) => now - at > this.keepMs || at - now > this.keepMs;
    for (const [id, at] of this.seen) if (stale(at)) this.seen.delete(id);
    for (const [sender, at] of this.latest) if (stale(at)) this.latest.delete(sender);
  }
}

function pairs(value: unknown): Array<[string, number]> {
  if (!Array.isArray(value)) return [];
  return value.filter((p): p is [string, number] => Array.isArray(p) && typeof p[0] === 'string' && typeof p[1] === 'number' && Number.isFinite(p[1]));
}
