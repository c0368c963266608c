import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../core/errors.js';
import type { ReconnectSession } from '../core/reconnect.js';
import { followReconnects, natsConnect } from '../net/nats-connect.js';
import { LinkedTrigger, type BusSession } from './order-trigger.js';
import { subjects } from './subjects.js';

/**
 * Orders over NATS: every master of a service listens on
 * `graft.<service>.orders` (all hosts) and `graft.<service>.orders.<host>`
 * (this host; what `graft fleet` and `graft order --host` send by request and
 * reply). A request is answered with the OrderOutcome; every outcome is also
 * published on `graft.<service>.outcomes.<host>`. Both subscriptions are in a
 * queue group per host, so during an upgrade only one of the two masters of a
 * host takes an order.
 */
export class NatsTrigger extends LinkedTrigger {
  readonly name = 'nats';

  protected async open(session: ReconnectSession): Promise<BusSession> {
    const { service, host } = this.names;
    const nc = await natsConnect(this.bus, `graft ${service}@${host} (pid ${process.pid})`, true);
    const queue = `graft.${service}.${host}`;
    for (const subject of [subjects.orders(service), subjects.hostOrders(service, host)]) {
      nc.subscribe(subject, { queue, callback: (err, msg) => (err ? this.log.warn('bus subscription failed', { transport: 'nats', subject, error: errorMessage(err) }) : void this.take(nc, msg)) });
    }
    // The server has the subscriptions before the link says connected: an order sent from then on is heard.
    await nc.flush();
    void followReconnects(nc, session);
    return {
      closed: nc.closed().then((err) => err || undefined),
      close: () => nc.drain().catch(() => nc.close()),
    };
  }

  private async take(nc: NatsConnection, msg: Msg): Promise<void> {
    const outcome = await this.desk.receive(msg.data, { transport: 'nats', fanout: false });
    if (!outcome) return;
    const payload = JSON.stringify(outcome);
    try {
      if (msg.reply) msg.respond(payload);
      nc.publish(subjects.outcomes(this.names.service, this.names.host), payload);
    } catch (err) {
      this.log.warn('order outcome not published', { transport: 'nats', id: outcome.id, error: errorMessage(err) });
    }
  }
}
