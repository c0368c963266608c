// A `ws` chat-style echo server on node:http, no graft import.
//   graft start examples/ws/server.ts -w 2
// On a reload the old generation reads no new message, finishes answering
// what it took, and closes each socket with 1001 "going away"; clients
// reconnect and land on the new generation.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const server = createServer((_req, res) => res.end(`generation ${process.env.GRAFT_GENERATION}\n`));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  ws.send(`hello from generation ${process.env.GRAFT_GENERATION}`);
  ws.on('message', (data) => ws.send(`echo ${String(data)}`));
});
server.listen(Number(process.env.PORT ?? 3000));
