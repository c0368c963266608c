import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { GraftError, errorMessage } from '../errors.js';
import { sendControl } from './control-client.js';
import type { ControlServer } from './control-server.js';
import type { MasterPaths } from './paths.js';
import { removeMasterFiles, writeMasterFiles } from './pidfile.js';

/** Unix socket paths are limited by sockaddr_un (108 bytes with the final NUL on Linux). */
const MAX_SOCKET_PATH = 107;

/**
 * What makes a master findable: its control socket, its pidfile and the
 * lookup record. Taken at start (refusing if another live master holds them),
 * handed to a successor on upgrade, released on stop.
 */
export class MasterFiles {
  private owned = false;
  /** Set once a successor took over: the pidfile is the successor's now. */
  private handedOver = false;

  constructor(
    private readonly paths: MasterPaths,
    private readonly control: ControlServer,
    private readonly meta: { cwd: string; entry: string },
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

  /** Listen on the control socket and write the pidfile; `predecessor` is a master handing over to this one. */
  async take(predecessor?: number): Promise<void> {
    const { socket } = this.paths;
    MasterFiles.check(socket);
    try {
      mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new GraftError('GRAFT_SOCKET_UNUSABLE', `cannot create ${dirname(socket)} for the control socket: ${errorMessage(err)}; pass --socket or set GRAFT_RUNTIME_DIR`, { cause: err });
    }
    if (existsSync(socket)) {
      const running = await sendControl(socket, { cmd: 'status' }, 0).then(
        (s) => s as { master: { pid: number; entry: string } },
        () => undefined,
      );
      if (running && running.master.pid !== predecessor) {
        throw new GraftError(
          'GRAFT_ALREADY_RUNNING',
          `a graft master (pid ${running.master.pid}) already runs ${running.master.entry} on ${socket}; use \`graft reload\` or stop it first`,
        );
      }
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
    writeMasterFiles(this.paths, { ...this.meta, pid: process.pid, socket });
  }

  /** A successor takes over: stop answering on the socket, leave the pidfile to it. */
  handOff(): void {
    this.handedOver = true;
    this.closeSocket();
  }

  /** The successor did not take control after all: answer on the socket again. */
  async takeBack(): Promise<void> {
    this.handedOver = false;
    await this.take();
  }

  release(): void {
    this.closeSocket();
    if (!this.handedOver) removeMasterFiles(this.paths, process.pid);
  }

  private closeSocket(): void {
    if (!this.owned) return;
    this.owned = false;
    this.control.close();
  }
}
