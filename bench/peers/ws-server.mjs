// Peer for eventcast-bench: the AppSync Events subset of protocol.mjs on Node `ws`.
// node ws-server.mjs --port 0 --port-file F --api-key K   (plain ws:// on 127.0.0.1)
//
// Fan-out the way ws is at its best (bench/README.md, "The peers"): each frame is built once per
// (event, subscription-id group) as a Buffer and sent to every member, and every target socket
// is corked until process.nextTick, so the frames a tick owes it leave in one writev.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { Broker, SUBPROTOCOL, parseArgs, parseProtocols, writePortFile } from './protocol.mjs';

const opts = parseArgs(process.argv);
const maxBuffered = 8 * 1024 * 1024;

const corked = new Set();
function uncorkAll() {
  for (const s of corked) s.uncork();
  corked.clear();
}
function corkUntilTick(ws) {
  const s = ws._socket;
  if (!s || corked.has(s)) return;
  s.cork();
  corked.add(s);
  if (corked.size === 1) process.nextTick(uncorkAll);
}

function fanout(groups, bodies) {
  for (const g of groups) {
    for (const b of bodies) {
      const frame = Buffer.concat([g.prefix, b]);
      for (const ws of g.members) {
        if (ws.readyState !== 1) continue;
        if (ws.bufferedAmount > maxBuffered) { broker.closed(ws); ws.close(1013); continue; }
        corkUntilTick(ws);
        ws.send(frame, { binary: false });
      }
    }
  }
}

const broker = new Broker({
  apiKey: opts.apiKey,
  send: (ws, text) => { if (ws.readyState === 1) ws.send(text); },
  close: (ws, code) => { broker.closed(ws); ws.close(code); },
  buffered: (ws) => ws.bufferedAmount,
  fanout,
});

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/event') { res.writeHead(404).end(); return; }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const answer = broker.httpPublish(req.headers['x-api-key'], Buffer.concat(chunks).toString());
    const body = Buffer.from(answer.body);
    res.writeHead(Number(answer.status.slice(0, 3)), { 'content-type': 'application/json', 'content-length': body.length }).end(body);
  });
});
server.keepAliveTimeout = 0; // keep-alive connections stay open for the whole run
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: 4 * 1024 * 1024,
  handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
});

server.on('upgrade', (req, socket, head) => {
  const { ok, key } = parseProtocols(req.headers['sec-websocket-protocol']);
  if (!ok && req.headers['sec-websocket-protocol']) {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    socket.setNoDelay(true);
    if (!broker.open(ws, key)) return;
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      broker.message(ws, data.toString());
    });
    ws.on('close', () => broker.closed(ws));
    ws.on('error', () => broker.closed(ws));
  });
});

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  writePortFile(opts.portFile, port);
  console.log(`ws-server listening on ws://${opts.host}:${port}`);
});

const stop = () => { wss.clients.forEach((c) => c.terminate()); server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
