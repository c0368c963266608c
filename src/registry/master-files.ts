import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { GraftError, errorMessage } from '../core/errors.js';
import { sendControl } from '../control/client.js';
import type { ControlServer } from '../control/server.js';
import type { MasterPaths } from './paths.js';
import { claimName, releaseName, type ServiceRecord } from './service-registry.js';

/** Unix socket paths are limited by sockaddr_un (108 bytes with the final NUL on Linux). */
const MAX_SOCKET_PATH = 107;

/** What the service registry says about this master's service (the pid, socket and start time are added here). */
export type ServiceDescription = Omit<ServiceRecord, 'pid' | 'socket' | 'startedAt'>;

/**
 * What makes a master findable: its control socket and its service's name
 * in the registry (which names the socket and this master's pid). Taken at
 * start (refusing if another live master holds them), handed to a successor
 * on upgrade, released on stop.
 */
export class MasterFiles {
  private owned = false;

  constructor(
    private readonly paths: MasterPaths,
    private readonly control: ControlServer,
    private readonly service: () => ServiceDescription,
  ) {}

  /** Check that the control socket can be created, before anything starts. */
  static check(socket: string): void {
    const bytes = Buffer.byteLength(socket);
    if (bytes > MAX_SOCKET_PATH) {
      throw new GraftError(
        'GRAFT_SOCKET_UNUSABLE',
        `control socket path ${socket} is ${bytes} bytes; a Unix socket path may have at most ${MAX_SOCKET_PATH}: pass a shorter --socket or set GRAFT_RUNTIME_DIR to a shorter directory`,
      );
    }
  }

  /** GRAFT_ALREADY_RUNNING if a master other than `predecessor` answers on this control socket. */
  static async checkFree(socket: string, predecessor?: number): Promise<void> {
    if (!existsSync(socket)) return;
    const running = await sendControl(socket, { cmd: 'status' }, 0).then(
      (s) => s as { master: { pid: number; entry: string } },
      () => undefined,
    );
    if (running && running.master.pid !== predecessor) {
      throw new GraftError(
        'GRAFT_ALREADY_RUNNING',
        `a graft master (pid ${running.master.pid}) already runs ${running.master.entry} on ${socket}; use \`graft reload\` or stop it first (or give this one another --name or --socket)`,
      );
    }
  }

  /**
   * Listen on the control socket and take the service's name; `predecessor`
   * is a master handing over to this one (or, taking control back, the
   * successor that failed to), whose socket and name these may be.
   */
  async take(predecessor?: number): Promise<void> {
    const { socket } = this.paths;
    MasterFiles.check(socket);
    try {
      mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new GraftError('GRAFT_SOCKET_UNUSABLE', `cannot create ${dirname(socket)} for the control socket: ${errorMessage(err)}; pass --socket or set GRAFT_RUNTIME_DIR`, { cause: err });
    }
    if (existsSync(socket)) {
      await MasterFiles.checkFree(socket, predecessor);
      try {
        unlinkSync(socket); // the stale socket of a master that died, or the predecessor's
      } catch {
        // gone already
      }
    }
    try {
      await this.control.listen();
    } catch (err) {
      throw new GraftError('GRAFT_SOCKET_UNUSABLE', `cannot listen on the control socket ${socket}: ${errorMessage(err)}; pass another --socket`, { cause: err });
    }
    this.owned = true;
    claimName({ ...this.service(), pid: process.pid, socket }, predecessor);
  }

  /** A successor takes over: stop answering on the socket (the successor rewrites the name's record). */
  handOff(): void {
    this.closeSocket();
  }

  /** The successor did not take control after all (it is being killed): answer on the socket again. */
  async takeBack(successor: number): Promise<void> {
    await this.take(successor);
  }

  /** The name's record goes only while it still names this master: after a hand-over it is the successor's. */
  release(): void {
    this.closeSocket();
    releaseName(this.service().name);
  }

  private closeSocket(): void {
    if (!this.owned) return;
    this.owned = false;
    this.control.close();
  }
}
