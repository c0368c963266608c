import { renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * Replace a file that only this user may read (0600) all at once: written
 * beside it and renamed over it, so a reader (another master, the one after a
 * crash) sees the old text or the new one, never half of it. A failed write
 * leaves no temporary file behind and throws.
 */
export function replacePrivateFile(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
