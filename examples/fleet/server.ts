// One host of the fleet demo: it answers with its host name, its generation and
// the greeting from the config store (NATS KV bucket graft_demo, key demo.greeting).
import { createServer } from 'node:http';
import { z } from 'zod';
import { config, defineService } from 'graftjs';

const schema = z.object({ greeting: z.string().min(1).default('hello') });

export default defineService({
  config: schema,
  start: () =>
    createServer((_req, res) => {
      const { greeting } = config.current as unknown as z.infer<typeof schema>;
      res.end(`${greeting} from ${process.env.HOST_ID} (generation ${process.env.GRAFT_GENERATION}, config v${config.version})\n`);
    }),
});
