import type { Server } from 'node:net';
import type { ConfigSchema } from '../config/schema.js';
import { config as store, type Config, type ConfigStore } from '../config/store.js';

/** What graft hands a service's hooks. */
export interface ServiceContext<C = Config> {
  /** The port graft was started with (also in process.env.PORT). */
  port: number;
  /** The worker generation this process belongs to. */
  generation: number;
  /** Stable index of this worker within its generation (0-based). */
  workerIndex: number;
  /** Aborted when this worker starts draining. */
  signal: AbortSignal;
  /** The live config (typed by the service's schema). */
  config: ConfigStore<C>;
}

/** Anything with a Node server: an http.Server, or an object holding one (Fastify's `.server`). */
export type ServerLike = Server | { server: Server };

export interface ServiceDefinition<C = Config> {
  /** A Standard Schema validator (zod, valibot, arktype) for the config. */
  config?: ConfigSchema<C>;
  /** Key paths whose change needs new processes: a zero-downtime reload instead of an in-place apply. */
  restartOn?: string[];
  /**
   * Create the server. Return it listening, or not yet listening: graft then
   * listens on `ctx.port`. A job worker returns nothing (see `loop()`).
   */
  start(ctx: ServiceContext<C>): ServerLike | void | Promise<ServerLike | void>;
  /**
   * Resolves when the worker may take over from the previous generation
   * (a warmed cache, an open pool). Throwing or rejecting fails the boot,
   * and a reload that was waiting for it is rolled back.
   */
  ready?(ctx: ServiceContext<C>): void | Promise<void>;
  /** Runs after the worker has drained its connections, before it exits. */
  stop?(ctx: ServiceContext<C>): void | Promise<void>;
}

const kService = Symbol.for('graft.service');

export type Service<C = Config> = ServiceDefinition<C> & { readonly [kService]: true };

/** Declare a service graft starts, readies and stops. Default-export the result. */
export function defineService<C = Config>(definition: ServiceDefinition<C>): Service<C> {
  if (typeof definition?.start !== 'function') {
    throw new TypeError('defineService() needs a start(ctx) function that returns the server');
  }
  if (definition.config) (store as unknown as ConfigStore<C>).declareSchema(definition.config);
  return Object.freeze({ ...definition, [kService]: true as const });
}

export function isService(value: unknown): value is Service<unknown> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kService] === true;
}

export function serverOf(value: ServerLike | void): Server | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof (value as { listen?: unknown }).listen === 'function' && typeof (value as Server).address === 'function') {
    return value as Server;
  }
  const inner = (value as { server?: Server }).server;
  if (inner && typeof inner.address === 'function') return inner;
  throw new TypeError('start() must return a net/http server, an object with a .server property, or nothing (a job worker)');
}
