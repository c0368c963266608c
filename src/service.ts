import type { Server } from 'node:net';

/** What graft hands a service's hooks. */
export interface ServiceContext {
  /** The port graft was started with (also in process.env.PORT). */
  port: number;
  /** The worker generation this process belongs to. */
  generation: number;
  /** Stable index of this worker within its generation (0-based). */
  workerIndex: number;
  /** Aborted when this worker starts draining. */
  signal: AbortSignal;
}

/** Anything with a Node server: an http.Server, or an object holding one (Fastify's `.server`). */
export type ServerLike = Server | { server: Server };

export interface ServiceDefinition {
  /**
   * Create the server. Return it listening, or not yet listening: graft then
   * listens on `ctx.port`.
   */
  start(ctx: ServiceContext): ServerLike | Promise<ServerLike>;
  /**
   * Resolves when the worker may take over from the previous generation
   * (a warmed cache, an open pool). Throwing or rejecting fails the boot,
   * and a reload that was waiting for it is rolled back.
   */
  ready?(ctx: ServiceContext): void | Promise<void>;
  /** Runs after the worker has drained its connections, before it exits. */
  stop?(ctx: ServiceContext): void | Promise<void>;
}

const kService = Symbol.for('graft.service');

export type Service = ServiceDefinition & { readonly [kService]: true };

/** Declare a service graft starts, readies and stops. Default-export the result. */
export function defineService(definition: ServiceDefinition): Service {
  if (typeof definition?.start !== 'function') {
    throw new TypeError('defineService() needs a start(ctx) function that returns the server');
  }
  return Object.freeze({ ...definition, [kService]: true as const });
}

export function isService(value: unknown): value is Service {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kService] === true;
}

export function serverOf(value: ServerLike): Server {
  if (value && typeof (value as { listen?: unknown }).listen === 'function' && typeof (value as Server).address === 'function') {
    return value as Server;
  }
  const inner = (value as { server?: Server } | undefined)?.server;
  if (inner && typeof inner.address === 'function') return inner;
  throw new TypeError('start() must return a net/http server or an object with a .server property');
}
