// A plain Fastify 5 app: no graft import, no signal handling. graft gives it
// PORT, drains it on reload and replaces it when it crashes.
import Fastify from 'fastify';

const app = Fastify();

app.get('/', async () => ({ framework: 'fastify', pid: process.pid, generation: process.env.GRAFT_GENERATION }));

// Fastify listens on localhost only unless told otherwise.
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '0.0.0.0' });
