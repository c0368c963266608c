// A job worker (the seeds' scheduler), not an HTTP server: every iteration
// runs on the current config snapshot; a change applies from the next one.
// Run: node bin/graft.js start examples/jobs/worker.ts -w 2 --config examples/jobs/jobs.yaml
import { z } from 'zod';
import { defineService, loop } from 'graftjs';

const schema = z.object({
  job: z
    .object({
      name: z.string().default('report'),
      everyMs: z.number().int().min(10).default(1000),
      /** 'abort' stops a running iteration as soon as the config changes. */
      onChange: z.enum(['finish', 'abort']).default('finish'),
      workMs: z.number().int().min(0).default(100),
    })
    .prefault({}),
});

export default defineService({
  config: schema,
  start: ({ config }) => {
    const { onChange, everyMs } = config.current.job;
    loop<z.infer<typeof schema>>(
      async ({ config: cfg, configVersion, signal, iteration }) => {
        console.error(`job ${cfg.job.name} iteration ${iteration} on config v${configVersion} (pid ${process.pid})`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, cfg.job.workMs);
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            console.error(`job ${cfg.job.name} iteration ${iteration} aborted`);
            resolve();
          });
        });
      },
      { intervalMs: everyMs, onChange, name: 'jobs' },
    );
  },
});
