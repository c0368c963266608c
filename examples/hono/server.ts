// A plain Hono app on @hono/node-server: no graft import, no signal handling.
// graft gives it PORT, drains it on reload and replaces it when it crashes.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const app = new Hono();

app.get('/', (c) => c.json({ framework: 'hono', pid: process.pid, generation: process.env.GRAFT_GENERATION }));

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000) });
