// A plain Koa 3 app: no graft import, no signal handling. graft gives it
// PORT, drains it on reload and replaces it when it crashes.
import Koa from 'koa';

const app = new Koa();

app.use((ctx) => {
  if (ctx.method !== 'GET' || ctx.path !== '/') return; // Koa answers 404
  ctx.body = { framework: 'koa', pid: process.pid, generation: process.env.GRAFT_GENERATION };
});

app.listen(Number(process.env.PORT ?? 3000));
