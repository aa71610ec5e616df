// Peer for eventcast-bench: the AppSync Events subset of protocol.mjs on uWebSockets.js, from the
// npm package `uwebsockets` (a republished build of uNetworking/uWebSockets.js; see
// bench/README.md). node uws-server.mjs --port 0 --port-file F --api-key K
//
// Fan-out the way uWS is at its best (bench/README.md, "The peers"):
// - it runs in setImmediate, outside the publisher's message handler: inside it uWS keeps the
//   publisher corked, no other socket can be corked, and every send would be its own syscall;
// - a group of two or more sockets under one (channel, subscription id) is a uWS topic, so its
//   identical frame is published once and uWS copies it into each subscriber's corked buffer;
// - a group of one socket (the usual case: ids are UUIDs) is queued per socket and written in one
//   ws.cork() per socket per loop turn;
// - a frame reaches C++ as one JS string, prefix + body (a cons string V8 flattens once, which
//   uWS copies into the corked buffer): measured faster than bytes from one scratch Buffer
//   (2.2-2.5 M/s against 1.6-1.8 M/s, unique ids, bench/README.md "The peers"), since each
//   Buffer frame costs a copy in JS and a new Uint8Array view;
// - node runs with --max-semi-space-size=64 (bench/compare), the usual tuning for a Node
//   server that allocates short-lived objects at this rate: fewer scavenges.
// Bodies are decoded from UTF-8 once per publish and uWS encodes them back, so the bytes it
// writes are the bodies' bytes.
import uWS from 'uwebsockets';
import { Broker, SUBPROTOCOL, parseArgs, parseProtocols, writePortFile } from './protocol.mjs';

const opts = parseArgs(process.argv);
const decoder = new TextDecoder();
const maxBackpressure = 8 * 1024 * 1024;

// uWS throws on a closed socket; the broker drops its state in close(), but a send inside the
// same tick may still reach one, so guard every call.
const alive = (ws) => ws.appsync && !ws.appsync.closed;

let pending = []; // groups, bodies, groups, bodies, ... of this loop turn's publishes
function fanout(groups, bodies) {
  pending.push(groups, bodies);
  if (pending.length === 2) setImmediate(flush);
}

function flush() {
  const list = pending;
  pending = [];
  const direct = new Map(); // ws -> [frame, frame, ...]
  for (let i = 0; i < list.length; i += 2) {
    const groups = list[i];
    const bodies = list[i + 1].map((b) => b.toString());
    for (const g of groups) {
      if (g.members.size === 0) continue;
      const prefix = (g.prefixText ??= g.prefix.toString());
      if (g.topic) {
        for (const b of bodies) app.publish(g.key, prefix + b, false, false);
        continue;
      }
      for (const ws of g.members) {
        let q = direct.get(ws);
        if (!q) direct.set(ws, (q = []));
        for (const b of bodies) q.push(prefix + b);
      }
    }
  }
  for (const [ws, q] of direct) {
    if (!alive(ws)) continue;
    if (ws.getBufferedAmount() > maxBackpressure) { broker.closed(ws); ws.end(1013); continue; }
    ws.cork(() => {
      for (let i = 0; i < q.length; i++) ws.send(q[i], false, false);
    });
  }
}

// Groups of two or more sockets are uWS topics (named by the group's key); a group of one is not.
function groupChanged(group, ws, joined) {
  if (joined) {
    if (group.topic) ws.subscribe(group.key);
    else if (group.members.size >= 2) {
      group.topic = true;
      for (const m of group.members) if (alive(m)) m.subscribe(group.key);
    }
    return;
  }
  if (!group.topic) return;
  if (alive(ws)) ws.unsubscribe(group.key); // a closed socket has left its topics already
  if (group.members.size < 2) {
    group.topic = false;
    for (const m of group.members) if (alive(m)) m.unsubscribe(group.key);
  }
}

const broker = new Broker({
  apiKey: opts.apiKey,
  send: (ws, text) => { if (alive(ws)) ws.send(text, false, false); },
  close: (ws, code) => { if (alive(ws)) { broker.closed(ws); ws.end(code); } },
  buffered: (ws) => (alive(ws) ? ws.getBufferedAmount() : 0),
  fanout,
  groupChanged,
});

const app = uWS.App()
  .ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 4 * 1024 * 1024,
    // Like eventcast's --max-outbox-bytes: a subscriber 8 MiB behind is closed, not skipped.
    maxBackpressure,
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
  .post('/event', (res, req) => {
    const key = req.getHeader('x-api-key');
    const chunks = [];
    res.onAborted(() => { res.aborted = true; });
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.from(new Uint8Array(chunk))); // uWS reuses chunk after this call
      if (!isLast) return;
      const answer = broker.httpPublish(key, Buffer.concat(chunks).toString());
      if (res.aborted) return;
      res.cork(() => {
        res.writeStatus(answer.status).writeHeader('content-type', 'application/json').end(answer.body);
      });
    });
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
