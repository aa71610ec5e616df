// The AppSync Events subset both peers implement, independent of the WebSocket library:
// subprotocol selection and API-key check at upgrade, connection_init -> connection_ack + ka,
// subscribe (per-subscription id, exact channel match, no wildcards), unsubscribe, and publish ->
// one data frame per event per subscription + publish_success. Mirrors what eventcast does for
// these messages (docs/protocol.md) so the benchmark compares like with like.
import fs from 'node:fs';

export const SUBPROTOCOL = 'aws-appsync-event-ws';
const MAX_EVENTS = 5;
const MAX_SUBSCRIPTIONS = 200;
const ID_RE = /^[A-Za-z0-9_+-]{1,128}$/;
const SEGMENT_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?$/;

export function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, portFile: '', apiKey: '' };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--host') opts.host = v, i++;
    else if (a === '--port') opts.port = Number(v), i++;
    else if (a === '--port-file') opts.portFile = v, i++;
    else if (a === '--api-key') opts.apiKey = v, i++;
    else { console.error(`unknown option ${a}`); process.exit(2); }
  }
  if (!opts.apiKey) { console.error('--api-key is required'); process.exit(2); }
  return opts;
}

export function writePortFile(file, port) {
  if (!file) return;
  fs.writeFileSync(`${file}.tmp`, `${port}\n`);
  fs.renameSync(`${file}.tmp`, file);
}

/** Offered subprotocols -> { ok, key } (key from the header- entry's base64url JSON). */
export function parseProtocols(header) {
  const offered = (header || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!offered.includes(SUBPROTOCOL)) return { ok: false, key: null };
  let key = null;
  const h = offered.find((p) => p.startsWith('header-'));
  if (h) {
    try { key = JSON.parse(Buffer.from(h.slice(7), 'base64url').toString())['x-api-key'] ?? null; } catch { key = null; }
  }
  return { ok: true, key };
}

function normalizeChannel(c) {
  if (typeof c !== 'string') return null;
  let s = c.startsWith('/') ? c.slice(1) : c;
  if (s.endsWith('/')) s = s.slice(0, -1);
  const parts = s.split('/');
  if (parts.length < 1 || parts.length > 5 || !parts.every((p) => SEGMENT_RE.test(p))) return null;
  return '/' + parts.join('/');
}

const err = (type, id, errorType, message) =>
  JSON.stringify(id === undefined ? { type, errors: [{ errorType, message }] } : { type, id, errors: [{ errorType, message }] });

/**
 * The broker. `send(conn, text)` writes one text frame; `cork(conn, fn)` batches the frames
 * written inside fn into one socket write where the library can; `close(conn, code)` closes.
 * A conn is any object; the broker keeps its state in conn.appsync.
 */
export class Broker {
  constructor({ apiKey, send, cork, close, buffered, maxBuffered = 8 * 1024 * 1024 }) {
    this.apiKey = apiKey;
    this.send = send;
    this.cork = cork;
    this.close = close;
    this.buffered = buffered;
    this.maxBuffered = maxBuffered;
    this.channels = new Map(); // channel -> Set of subscription { conn, prefix }
    this.nextIdentifier = 0;
  }

  // Fan-out runs once per event-loop turn: the frames every publish of the turn owes one
  // subscriber leave in one corked write (uWS can cork only one socket at a time, so corking
  // subscribers from inside the publisher's message handler would do nothing).
  queue(subs, encoded) {
    this.pending ??= [];
    this.pending.push({ subs: [...subs], encoded });
    if (this.pending.length === 1) setImmediate(() => this.flush());
  }

  flush() {
    const pending = this.pending;
    this.pending = [];
    const bySub = new Map();
    for (const p of pending) {
      for (const sub of p.subs) {
        let list = bySub.get(sub);
        if (!list) bySub.set(sub, (list = []));
        list.push(p.encoded);
      }
    }
    for (const [sub, lists] of bySub) {
      const target = sub.conn;
      if (target.appsync.closed || target.appsync.subs.get(sub.id) !== sub) continue;
      if (this.buffered(target) > this.maxBuffered) { this.close(target, 1013); continue; }
      this.cork(target, () => {
        for (const encoded of lists) for (const e of encoded) this.send(target, sub.prefix + e);
      });
    }
  }

  open(conn, key) {
    conn.appsync = { subs: new Map(), closed: false };
    if (key !== this.apiKey) {
      this.send(conn, err('connection_error', undefined, 'UnauthorizedException', 'You are not authorized to make this call.'));
      this.close(conn, 1000);
      return false;
    }
    return true;
  }

  closed(conn) {
    const st = conn.appsync;
    if (!st || st.closed) return;
    st.closed = true;
    for (const [, sub] of st.subs) this.channels.get(sub.channel)?.delete(sub);
    st.subs.clear();
  }

  authorized(msg) {
    return msg.authorization && typeof msg.authorization === 'object' && msg.authorization['x-api-key'] === this.apiKey;
  }

  message(conn, text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return this.send(conn, err('error', undefined, 'InvalidInputError', 'message is not valid JSON')); }
    if (!msg || typeof msg !== 'object') return this.send(conn, err('error', undefined, 'InvalidInputError', 'message is not an object'));
    const st = conn.appsync;
    switch (msg.type) {
      case 'connection_init':
        this.send(conn, '{"type":"connection_ack","connectionTimeoutMs":300000}');
        this.send(conn, '{"type":"ka"}');
        return;
      case 'subscribe': {
        const id = msg.id;
        if (typeof id !== 'string' || !ID_RE.test(id)) return this.send(conn, err('error', undefined, 'InvalidInputError', 'bad id'));
        if (!this.authorized(msg)) return this.send(conn, err('subscribe_error', id, 'UnauthorizedException', 'You are not authorized to make this call.'));
        const channel = normalizeChannel(msg.channel);
        if (!channel) return this.send(conn, err('subscribe_error', id, 'InvalidInputError', 'invalid channel'));
        if (st.subs.has(id)) return this.send(conn, err('subscribe_error', id, 'DuplicatedOperationError', 'duplicate id'));
        if (st.subs.size >= MAX_SUBSCRIPTIONS) return this.send(conn, err('subscribe_error', id, 'MaxSubscriptionsReachedError', 'too many subscriptions'));
        const sub = { conn, id, channel, prefix: `{"type":"data","id":${JSON.stringify(id)},"event":` };
        st.subs.set(id, sub);
        let set = this.channels.get(channel);
        if (!set) this.channels.set(channel, (set = new Set()));
        set.add(sub);
        this.send(conn, `{"type":"subscribe_success","id":${JSON.stringify(id)}}`);
        return;
      }
      case 'unsubscribe': {
        const id = msg.id;
        const sub = typeof id === 'string' ? st.subs.get(id) : undefined;
        if (!sub) return this.send(conn, err('unsubscribe_error', typeof id === 'string' ? id : undefined, 'UnknownOperationError', 'unknown id'));
        st.subs.delete(id);
        this.channels.get(sub.channel)?.delete(sub);
        this.send(conn, `{"type":"unsubscribe_success","id":${JSON.stringify(id)}}`);
        return;
      }
      case 'publish': {
        const id = msg.id;
        if (typeof id !== 'string' || !ID_RE.test(id)) return this.send(conn, err('error', undefined, 'InvalidInputError', 'bad id'));
        if (!this.authorized(msg)) return this.send(conn, err('publish_error', id, 'UnauthorizedException', 'You are not authorized to make this call.'));
        const channel = normalizeChannel(msg.channel);
        if (!channel) return this.send(conn, err('publish_error', id, 'InvalidInputError', 'invalid channel'));
        const events = msg.events;
        if (!Array.isArray(events) || events.length === 0 || events.length > MAX_EVENTS || !events.every((e) => typeof e === 'string'))
          return this.send(conn, err('publish_error', id, 'InvalidInputError', `input exceeded ${MAX_EVENTS} event limit`));
        // Encode each event once; a frame differs per subscription only in its prefix.
        const encoded = events.map((e) => JSON.stringify(e) + '}');
        const subs = this.channels.get(channel);
        if (subs && subs.size) this.queue(subs, encoded);
        const successful = events.map((_, index) => ({ identifier: `e${++this.nextIdentifier}`, index }));
        this.send(conn, JSON.stringify({ type: 'publish_success', id, successful, failed: [] }));
        return;
      }
      default:
        return this.send(conn, err('error', typeof msg.id === 'string' ? msg.id : undefined, 'UnsupportedOperation', `unknown type ${msg.type}`));
    }
  }
}
