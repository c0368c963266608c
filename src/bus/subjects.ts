/**
 * Where orders and outcomes travel. NATS: one subject for every master of a
 * service, one per host (what a fleet rollout addresses, by request and reply),
 * and one per host for outcomes. RabbitMQ: a fanout exchange per service, each
 * master binding an auto-delete queue of its own (seed 003's pattern), and a
 * fanout exchange for outcomes.
 */
export const subjects = {
  orders: (service: string) => `graft.${service}.orders`,
  hostOrders: (service: string, host: string) => `graft.${service}.orders.${host}`,
  outcomes: (service: string, host: string) => `graft.${service}.outcomes.${host}`,
  allOutcomes: (service: string) => `graft.${service}.outcomes.*`,
  ordersExchange: (service: string) => `graft.${service}.orders`,
  outcomesExchange: (service: string) => `graft.${service}.outcomes`,
};
