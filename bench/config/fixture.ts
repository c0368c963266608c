/**
 * The config every part of bench/config uses: a realistic service config
 * (~2 KB as compact JSON) whose values depend on a change number, so each
 * change makes a new, distinct snapshot.
 */
import { z } from 'zod';

export function realisticConfig(n: number): AppConfig {
  return {
    greeting: `change ${n}`,
    service: { name: 'orders-api', env: 'production', region: 'eu-west-1', release: `2026.11.${n}` },
    http: {
      keepAliveTimeoutMs: 5000,
      bodyLimitBytes: 1048576,
      trustProxy: true,
      cors: { origins: ['https://shop.example.com', 'https://admin.example.com', 'https://partners.example.com'], credentials: true, maxAgeSeconds: 600 },
    },
    db: {
      host: 'db-primary.orders.internal',
      port: 5432,
      name: 'orders',
      user: 'orders_rw',
      pool: 10 + (n % 20),
      idleTimeoutMs: 30000,
      statementTimeoutMs: 5000,
      ssl: { enabled: true, rejectUnauthorized: true },
      replicas: ['db-replica-1.orders.internal', 'db-replica-2.orders.internal'],
    },
    cache: { url: 'redis://cache.orders.internal:6379/0', ttlSeconds: 300 + (n % 7), prefix: 'orders:', maxItems: 50000 },
    queue: {
      url: 'amqp://mq.orders.internal:5672/orders',
      prefetch: 32,
      exchanges: { events: 'orders.events', deadLetter: 'orders.dlq', retry: 'orders.retry' },
      retryDelaysMs: [1000, 5000, 30000, 120000],
    },
    auth: {
      issuer: 'https://login.example.com/',
      audience: 'orders-api',
      jwksUrl: 'https://login.example.com/.well-known/jwks.json',
      clockSkewSeconds: 30,
    },
    features: {
      newCheckout: n % 2 === 0,
      fraudScoring: true,
      splitShipments: false,
      giftWrap: n % 3 === 0,
      loyaltyPoints: true,
      expressDelivery: true,
      invoicePdfV2: false,
      addressAutocomplete: true,
    },
    rateLimits: [
      { route: '/orders', perMinute: 600, burst: 50 },
      { route: '/orders/:id', perMinute: 1200, burst: 100 },
      { route: '/checkout', perMinute: 120, burst: 10 },
      { route: '/search', perMinute: 300 + n, burst: 30 },
    ],
    logging: { level: 'info', redact: ['req.headers.authorization', 'req.headers.cookie', 'body.password', 'body.card.number'] },
    upstreams: {
      payments: { url: 'https://payments.internal/v2', timeoutMs: 3000, retries: 2 },
      inventory: { url: 'https://inventory.internal/v1', timeoutMs: 1500, retries: 3 },
      shipping: { url: 'https://shipping.internal/v3', timeoutMs: 2500, retries: 1 },
    },
    tracing: { endpoint: 'http://otel-collector.observability:4318/v1/traces', sampleRate: 0.05, tags: { team: 'checkout', tier: 'critical' } },
  };
}

const url = z.string().min(1);

/** The service's declared schema (zod 4), as a real service would write it. */
export const schema = z.object({
  greeting: z.string(),
  service: z.object({ name: z.string(), env: z.enum(['development', 'staging', 'production']), region: z.string(), release: z.string() }),
  http: z.object({
    keepAliveTimeoutMs: z.number().int().positive(),
    bodyLimitBytes: z.number().int().positive(),
    trustProxy: z.boolean(),
    cors: z.object({ origins: z.array(url), credentials: z.boolean(), maxAgeSeconds: z.number().int().nonnegative() }),
  }),
  db: z.object({
    host: z.string(),
    port: z.number().int().min(1).max(65535),
    name: z.string(),
    user: z.string(),
    pool: z.number().int().min(1),
    idleTimeoutMs: z.number().int().positive(),
    statementTimeoutMs: z.number().int().positive(),
    ssl: z.object({ enabled: z.boolean(), rejectUnauthorized: z.boolean() }),
    replicas: z.array(z.string()),
  }),
  cache: z.object({ url, ttlSeconds: z.number().int().positive(), prefix: z.string(), maxItems: z.number().int().positive() }),
  queue: z.object({
    url,
    prefetch: z.number().int().positive(),
    exchanges: z.object({ events: z.string(), deadLetter: z.string(), retry: z.string() }),
    retryDelaysMs: z.array(z.number().int().positive()),
  }),
  auth: z.object({ issuer: url, audience: z.string(), jwksUrl: url, clockSkewSeconds: z.number().int().nonnegative() }),
  features: z.record(z.string(), z.boolean()),
  rateLimits: z.array(z.object({ route: z.string(), perMinute: z.number().int().positive(), burst: z.number().int().positive() })),
  logging: z.object({ level: z.enum(['debug', 'info', 'warn', 'error']), redact: z.array(z.string()) }),
  upstreams: z.record(z.string(), z.object({ url, timeoutMs: z.number().int().positive(), retries: z.number().int().nonnegative() })),
  tracing: z.object({ endpoint: url, sampleRate: z.number().min(0).max(1), tags: z.record(z.string(), z.string()) }),
});

export type AppConfig = z.infer<typeof schema>;
