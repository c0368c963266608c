// A service that exports Prometheus metrics of its own: it counts requests
// with prom-client's default registry, as any app does. Started with
// `graft start examples/metrics/server.ts --metrics 9100`, graft serves every
// worker's counter at http://127.0.0.1:9100/metrics, labelled with the
// worker and its generation, beside graft's own metrics (and the live status
// page at http://127.0.0.1:9100/).
import { createServer } from 'node:http';
import client from 'prom-client';
import { z } from 'zod';
import { config, defineService } from 'graftjs';

const schema = z.object({
  greeting: z.string().default('hello'),
  db: z.object({ pool: z.number().int().min(1).default(5) }).default({ pool: 5 }),
});

const requests = new client.Counter({ name: 'app_requests_total', help: 'Requests answered, by path.', labelNames: ['path'] });
const latency = new client.Histogram({ name: 'app_request_duration_seconds', help: 'Time to answer a request.', buckets: [0.005, 0.01, 0.05, 0.1, 0.5] });

export default defineService({
  config: schema,
  start: () =>
    createServer((req, res) => {
      const done = latency.startTimer();
      const { greeting } = config.current as unknown as z.infer<typeof schema>;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ greeting, pid: process.pid, generation: process.env.GRAFT_GENERATION, config: config.version }) + '\n');
      requests.inc({ path: req.url === '/health' ? '/health' : '/' });
      done();
    }),
});
