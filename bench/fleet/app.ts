// The service of bench/fleet, part 1: it answers with the `limit` its config holds.
import { createServer } from 'node:http';
import { z } from 'zod';
import { config, defineService } from '../../src/index.js';

const schema = z.object({ limit: z.coerce.number().int().default(0) });

export default defineService({
  config: schema,
  start: () => createServer((_req, res) => res.end(JSON.stringify({ pid: process.pid, limit: (config.current as unknown as z.infer<typeof schema>).limit }))),
});
