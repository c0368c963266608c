import { readFileSync, renameSync, writeFileSync } from 'node:fs';

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
 * The file is read again before each order (two masters run side by side
 * during an upgrade) and written, atomically and 0600, after it.
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

  save(): void {
    if (!this.file) return;
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ seen: [...this.seen], latest: [...this.latest] }), { mode: 0o600 });
      renameSync(tmp, this.file);
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
    for (const [id, at] of this.seen) if (now - at > this.keepMs) this.seen.delete(id);
    for (const [sender, at] of this.latest) if (now - at > this.keepMs) this.latest.delete(sender);
  }
}

function pairs(value: unknown): Array<[string, number]> {
  if (!Array.isArray(value)) return [];
  return value.filter((p): p is [string, number] => Array.isArray(p) && typeof p[0] === 'string' && typeof p[1] === 'number' && Number.isFinite(p[1]));
}
