// Seed 004's setup, in Node: every cluster worker runs its own Apollo client
// (ctrip-apollo, the community client apollo-mock-server was written for,
// with its long polling on), as an app does when each worker reads its
// config itself. Prints {"limit": N, "pid": P} when it first reads the limit
// and whenever it sees a new one; serves it over HTTP as bench/fleet/app.ts
// does. Run by bench/lib/cluster-primary.js, one per host.
import { createServer } from 'node:http';
import apollo from 'ctrip-apollo';

const namespace = apollo({ host: process.env.APOLLO_HOST, appId: process.env.APOLLO_APP }).cluster('default').namespace('application');
const report = () => process.stdout.write(`${JSON.stringify({ limit: Number(namespace.get('limit')), pid: process.pid })}\n`);
namespace.on('change', ({ key }) => key === 'limit' && report());
namespace.on('add', ({ key }) => key === 'limit' && report());
await namespace.ready();
report();
createServer((_req, res) => res.end(JSON.stringify({ pid: process.pid, limit: Number(namespace.get('limit')) }))).listen(Number(process.env.PORT));
