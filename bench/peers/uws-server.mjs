// Peer for eventcast-bench: the AppSync Events subset of protocol.mjs on uWebSockets.js, from the
// npm package `uwebsockets` (a republished build of uNetworking/uWebSockets.js; see
// bench/README.md). node uws-server.mjs --port 0 --port-file F --api-key K
import uWS from 'uwebsockets';
import { Broker, SUBPROTOCOL, parseArgs, parseProtocols, writePortFile } from './protocol.mjs';

const opts = parseArgs(process.argv);
const decoder = new TextDecoder();

// uWS throws on a closed socket; the broker drops its state in close(), but a send inside the
// same tick may still reach one, so guard every call.
const alive = (ws) => ws.appsync && !ws.appsync.closed;
const broker = new Broker({
  apiKey: opts.apiKey,
  send: (ws, text) => { if (alive(ws)) ws.send(text, false, false); },
  cork: (ws, fn) => { if (alive(ws)) ws.cork(fn); },
  close: (ws, code) => { if (alive(ws)) { broker.closed(ws); ws.end(code); } },
  buffered: (ws) => (alive(ws) ? ws.getBufferedAmount() : 0),
});

uWS.App()
  .ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 4 * 1024 * 1024,
    // Like eventcast's --max-outbox-bytes: a subscriber 8 MiB behind is closed, not skipped.
    maxBackpressure: 8 * 1024 * 1024,
    closeOnBackpressureLimit: true,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      const offered = req.getHeader('sec-websocket-protocol');
      const { ok, key } = parseProtocols(offered);
      if (!ok && offered) {
        res.writeStatus('400 Bad Request').end('subprotocol aws-appsync-event-ws was not offered');
        return;
      }
      res.upgrade(
        { key },
        req.getHeader('sec-websocket-key'),
        ok ? SUBPROTOCOL : '',
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      // The socket is the broker's conn; it keeps its state in ws.appsync.
      broker.open(ws, ws.getUserData().key);
    },
    message: (ws, message, isBinary) => {
      if (isBinary) return;
      broker.message(ws, decoder.decode(message));
    },
    close: (ws) => broker.closed(ws),
  })
  .any('/*', (res) => { res.writeStatus('404 Not Found').end(); })
  .listen(opts.host, opts.port, (token) => {
    if (!token) { console.error(`uws-server: cannot listen on ${opts.host}:${opts.port}`); process.exit(1); }
    const port = uWS.us_socket_local_port(token);
    writePortFile(opts.portFile, port);
    console.log(`uws-server listening on ws://${opts.host}:${port}`);
  });

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
