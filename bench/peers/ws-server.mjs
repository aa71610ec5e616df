// Peer for eventcast-bench: the AppSync Events subset of protocol.mjs on Node `ws`.
// node ws-server.mjs --port 0 --port-file F --api-key K   (plain ws:// on 127.0.0.1)
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { Broker, SUBPROTOCOL, parseArgs, parseProtocols, writePortFile } from './protocol.mjs';

const opts = parseArgs(process.argv);
const broker = new Broker({
  apiKey: opts.apiKey,
  send: (ws, text) => { if (ws.readyState === 1) ws.send(text); },
  cork: (ws, fn) => {
    // Node's socket cork: the frames written inside fn leave in one writev.
    const s = ws._socket;
    if (s) s.cork();
    try { fn(); } finally { if (s) s.uncork(); }
  },
  close: (ws, code) => { broker.closed(ws); ws.close(code); },
  buffered: (ws) => ws.bufferedAmount,
});

const server = http.createServer((req, res) => { res.writeHead(404).end(); });
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
