// The AppSync Events subset both peers implement, independent of the WebSocket library:
// subprotocol selection and API-key check at upgrade, connection_init -> connection_ack + ka,
// subscribe (per-subscription id, exact channel match, no wildcards), unsubscribe, publish ->
// one data frame per event per subscription + publish_success, and HTTP `POST /event`. Mirrors
// what eventcast does for these messages (docs/protocol.md) so the benchmark compares like with
// like. The fan-out itself is each peer's, written the way that library's best users write it.
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
 * The broker: connections, subscriptions and validation; the peers do the fan-out their way.
 * Subscriptions are kept in groups: one group per (channel, subscription id), holding every
 * connection subscribed under that id, and the frame prefix they share
 * (`{"type":"data","id":"<id>","event":`) as bytes. A publish encodes each event once into a
 * body Buffer (`"<event as JSON string>"}`) and hands the channel's groups and the bodies to
 * `fanout(groups, bodies)`; every member of a group gets prefix + body for every body.
 *
 * `send(conn, text)` writes one text frame; `close(conn, code)` closes; `buffered(conn)` is what
 * the library still holds for it. `groupChanged(group, conn, joined)` (optional) hears every
 * join and leave, for peers that map groups of several members onto library topics.
 * A conn is any object; the broker keeps its state in conn.appsync.
 */
export class Broker {
  constructor({ apiKey, send, close, buffered, fanout, groupChanged = () => {}, maxBuffered = 8 * 1024 * 1024 }) {
    this.apiKey = apiKey;
    this.send = send;
    this.close = close;
    this.buffered = buffered;
    this.fanout = fanout;
    this.groupChanged = groupChanged;
    this.maxBuffered = maxBuffered;
    this.channels = new Map(); // channel -> Map of id -> group { channel, id, key, prefix, members }
    this.nextIdentifier = 0;
  }

  open(conn, key) {
    conn.appsync = { subs: new Map(), closed: false }; // id -> group
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
    for (const [, group] of st.subs) this.leave(group, conn);
    st.subs.clear();
  }

  join(channel, id, conn) {
    let groups = this.channels.get(channel);
    if (!groups) this.channels.set(channel, (groups = new Map()));
    let group = groups.get(id);
    if (!group) {
      const prefix = Buffer.from(`{"type":"data","id":${JSON.stringify(id)},"event":`);
      groups.set(id, (group = { channel, id, key: `${channel} ${id}`, prefix, members: new Set() }));
    }
    group.members.add(conn);
    this.groupChanged(group, conn, true);
    return group;
  }

  leave(group, conn) {
    if (!group.members.delete(conn)) return;
    this.groupChanged(group, conn, false);
    if (group.members.size === 0) {
      const groups = this.channels.get(group.channel);
      groups?.delete(group.id);
      if (groups && groups.size === 0) this.channels.delete(group.channel);
    }
  }

  authorized(msg) {
    return msg.authorization && typeof msg.authorization === 'object' && msg.authorization['x-api-key'] === this.apiKey;
  }

  /** Validates and fans out a publish; returns the `successful` list, or a string saying why not. */
  publish(channelText, events) {
    const channel = normalizeChannel(channelText);
    if (!channel) return 'invalid channel';
    if (!Array.isArray(events) || events.length === 0 || events.length > MAX_EVENTS || !events.every((e) => typeof e === 'string'))
      return `input exceeded ${MAX_EVENTS} event limit`;
    const groups = this.channels.get(channel);
    // Encode each event once; a frame differs per subscription id only in its prefix.
    if (groups && groups.size) this.fanout([...groups.values()], events.map((e) => Buffer.from(JSON.stringify(e) + '}')));
    return events.map((_, index) => ({ identifier: `e${++this.nextIdentifier}`, index }));
  }

  /** HTTP `POST /event`: (x-api-key header, body text) -> { status, body }. */
  httpPublish(key, text) {
    if (key !== this.apiKey)
      return { status: '401 Unauthorized', body: JSON.stringify({ errors: [{ errorType: 'UnauthorizedException', message: 'You are not authorized to make this call.' }] }) };
    let msg;
    try { msg = JSON.parse(text); } catch { msg = null; }
    if (!msg || typeof msg !== 'object')
      return { status: '400 Bad Request', body: JSON.stringify({ errors: [{ errorType: 'BadRequestException', message: 'body is not a JSON object' }] }) };
    const successful = this.publish(msg.channel, msg.events);
    if (typeof successful === 'string')
      return { status: '400 Bad Request', body: JSON.stringify({ errors: [{ errorType: 'BadRequestException', message: successful }] }) };
    return { status: '200 OK', body: JSON.stringify({ failed: [], successful }) };
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
        st.subs.set(id, this.join(channel, id, conn));
        this.send(conn, `{"type":"subscribe_success","id":${JSON.stringify(id)}}`);
        return;
      }
      case 'unsubscribe': {
        const id = msg.id;
        const group = typeof id === 'string' ? st.subs.get(id) : undefined;
        if (!group) return this.send(conn, err('unsubscribe_error', typeof id === 'string' ? id : undefined, 'UnknownOperationError', 'unknown id'));
        st.subs.delete(id);
        this.leave(group, conn);
        this.send(conn, `{"type":"unsubscribe_success","id":${JSON.stringify(id)}}`);
        return;
      }
      case 'publish': {
        const id = msg.id;
        if (typeof id !== 'string' || !ID_RE.test(id)) return this.send(conn, err('error', undefined, 'InvalidInputError', 'bad id'));
        if (!this.authorized(msg)) return this.send(conn, err('publish_error', id, 'UnauthorizedException', 'You are not authorized to make this call.'));
        const successful = this.publish(msg.channel, msg.events);
        if (typeof successful === 'string') return this.send(conn, err('publish_error', id, 'InvalidInputError', successful));
        this.send(conn, JSON.stringify({ type: 'publish_success', id, successful, failed: [] }));
        return;
      }
      default:
        return this.send(conn, err('error', typeof msg.id === 'string' ? msg.id : undefined, 'UnsupportedOperation', `unknown type ${msg.type}`));
    }
  }
}
