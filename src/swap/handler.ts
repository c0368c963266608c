import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { GraftError } from '../core/errors.js';

/**
 * Handler mode (`graft start app.ts --swap`): the module's default export is
 * what serves HTTP, and each generation of it is turned into a plain request
 * listener: a (req, res) function (node:http, Express), a Koa app, a Fastify
 * instance, or a Hono app.
 */
export async function toRequestListener(exports: Record<string, unknown>, module: string): Promise<RequestListener> {
  const app = (exports.default ?? exports.handler) as Record<string, unknown> | ((...a: unknown[]) => unknown) | undefined;
  if (app && typeof (app as { callback?: unknown }).callback === 'function' && typeof (app as { use?: unknown }).use === 'function') {
    return (app as { callback(): RequestListener }).callback(); // Koa
  }
  if (app && typeof (app as { ready?: unknown }).ready === 'function' && (app as { server?: unknown }).server) {
    const fastify = app as { ready(): Promise<unknown>; server: Server };
    await fastify.ready();
    return (req, res) => fastify.server.emit('request', req, res);
  }
  if (app && typeof (app as { fetch?: unknown }).fetch === 'function' && typeof app !== 'function') {
    const hono = app as { fetch: (request: Request) => Response | Promise<Response> };
    let nodeServer: { getRequestListener: (fetch: typeof hono.fetch) => RequestListener };
    try {
      nodeServer = (await import('@hono/node-server')) as unknown as typeof nodeServer;
    } catch {
      throw new GraftError('GRAFT_SWAP_LOAD', `${module} exports a fetch-style app; install @hono/node-server so graft can serve it`);
    }
    return nodeServer.getRequestListener(hono.fetch.bind(hono));
  }
  if (typeof app === 'function') return app as (req: IncomingMessage, res: ServerResponse) => void;
  throw new GraftError(
    'GRAFT_SWAP_LOAD',
    `${module} must default-export a request handler (req, res) or an Express, Fastify, Koa or Hono app for --swap; it exports ${Object.keys(exports).join(', ') || 'nothing'}`,
  );
}
