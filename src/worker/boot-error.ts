import { GraftError, type SerializedError } from '../errors.js';

/** Turn whatever the app threw while booting into a message the master can show. */
export function serializeBootError(err: unknown, entry: string): SerializedError {
  const e = err as NodeJS.ErrnoException | undefined;
  const listening = e?.syscall === 'listen' || e?.syscall === 'bind';
  if (e && listening && e.code === 'EADDRINUSE') {
    const where = (e as { port?: number }).port ?? (e as { address?: string }).address ?? '';
    return { code: 'GRAFT_PORT_IN_USE', message: `port ${where} is already in use by another process; stop it or start graft with another --port` };
  }
  if (e && listening && e.code === 'EACCES') {
    const where = (e as { port?: number }).port ?? '';
    return { code: 'GRAFT_PORT_IN_USE', message: `permission denied listening on port ${where}; use a port above 1023 or grant the capability` };
  }
  if (err instanceof GraftError) return err.toJSON();
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const detail = err instanceof Error ? err.stack : undefined;
  return { code: 'GRAFT_BOOT_FAILED', message: `${entry} failed to boot: ${message}`, ...(detail ? { detail } : {}) };
}
