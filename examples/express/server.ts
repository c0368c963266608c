// A plain Express 5 app: no graft import, no signal handling. graft gives it
// PORT, drains it on reload and replaces it when it crashes.
import express from 'express';

const app = express();

app.get('/', (_req, res) => {
  res.json({ framework: 'express', pid: process.pid, generation: process.env.GRAFT_GENERATION });
});

app.listen(Number(process.env.PORT ?? 3000));
