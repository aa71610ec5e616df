// Hand-written WebSocket (npm `ws`) and HTTPS clients that follow the AWS AppSync Events docs,
// against the real eventcast binary. TLS is trusted through the `ca` option (the server's
// generated self-signed certificate); certificate checks stay on.
//
// Spec references are to shared/spec/appsync-events.md.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startServer } from './server.mjs';

const SUBPROTOCOL = 'aws-appsync-event-ws';
let server;
const open = new Set(); // every client, closed in after()

before(async () => {
    server = await startServer();
});

after(async () => {
    for (const c of open) c.terminate();
    await server?.stop();
});

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const auth = () => ({ host: server.host, 'x-api-key': server.apiKey });
let seq = 0;
const uid = (p) => `${p}-${process.pid}-${++seq}`;

/**
 * A ws client that queues every received text frame (raw text and parsed JSON).
 * next(pred) takes the first queued frame matching pred (waiting up to timeoutMs).
 */
class Client {
    static async connect({
        url = server.wssUrl,
        protocols = [SUBPROTOCOL, `header-${b64url(auth())}`],
        headers = {},
        timeoutMs = 5000,
    } = {}) {
        const ws = new WebSocket(url, protocols, { ca: server.ca, headers, handshakeTimeout: timeoutMs });
        const c = new Client(ws);
        open.add(c);
        await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('open timed out')), timeoutMs);
            ws.once('open', () => { clearTimeout(timer); resolve(); });
            ws.once('error', (e) => { clearTimeout(timer); reject(e); });
            ws.once('unexpected-response', (_req, res) => {
                clearTimeout(timer);
                reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
            });
        });
        return c;
    }

    constructor(ws) {
        this.ws = ws;
        this.queue = [];
        this.waiters = new Set();
        this.closed = null;
        ws.on('message', (data, isBinary) => {
            const text = data.toString('utf8');
            let json;
            try { json = JSON.parse(text); } catch { json = undefined; }
            this.queue.push({ text, json, isBinary });
            this.wake();
        });
        ws.on('close', (code, reason) => {
            this.closed = { code, reason: reason.toString() };
            this.wake();
        });
        ws.on('error', () => {}); // surfaced through close / timeouts
    }

    wake() { for (const w of [...this.waiters]) w(); }

    send(msg) { this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg)); }

    /** Resolves with {text, json} of the first queued frame matching pred (removed from the queue). */
    next(pred = () => true, timeoutMs = 3000, what = 'a frame') {
        return new Promise((resolve, reject) => {
            const check = () => {
                const i = this.queue.findIndex((f) => f.json && pred(f.json));
                if (i >= 0) {
                    this.waiters.delete(check);
                    clearTimeout(timer);
                    resolve(this.queue.splice(i, 1)[0]);
                    return true;
                }
                if (this.closed) {
                    this.waiters.delete(check);
                    clearTimeout(timer);
                    reject(new Error(`socket closed (${JSON.stringify(this.closed)}) while waiting for ${what}; ` +
                        `queued: ${this.queue.map((f) => f.text).join(' | ')}`));
                    return true;
                }
                return false;
            };
            const timer = setTimeout(() => {
                this.waiters.delete(check);
                reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ` +
                    `queued: ${this.queue.map((f) => f.text.slice(0, 300)).join(' | ')}`));
            }, timeoutMs);
            if (!check()) this.waiters.add(check);
        });
    }

    type(type, id, timeoutMs) {
        return this.next((m) => m.type === type && (id === undefined || m.id === id), timeoutMs,
            `${type}${id ? ` id=${id}` : ''}`);
    }

    /** All currently queued frames matching pred (not removed). */
    queued(pred) { return this.queue.filter((f) => f.json && pred(f.json)); }

    async init() {
        this.send({ type: 'connection_init' });
        return (await this.type('connection_ack')).json;
    }

    async subscribe(channel, id = uid('sub'), authorization = auth()) {
        this.send({ type: 'subscribe', id, channel, authorization });
        const reply = await this.next((m) => m.id === id, 3000, `reply to subscribe ${id}`);
        assert.equal(reply.json.type, 'subscribe_success', `subscribe ${channel}: ${reply.text}`);
        return id;
    }

    publish(channel, events, id = uid('pub'), authorization = auth()) {
        this.send({ type: 'publish', id, channel, events, authorization });
        return id;
    }

    async close() {
        if (!this.closed && this.ws.readyState === WebSocket.OPEN) {
            this.ws.close(1000);
            await Promise.race([new Promise((r) => this.ws.once('close', r)), sleep(1000)]);
        }
        this.ws.terminate();
        open.delete(this);
    }
}

/** POST /event over HTTPS (Node https, trusting the server's CA). */
function httpPost(body, headers = {}) {
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
        const req = https.request({
            host: '127.0.0.1', servername: 'localhost', port: server.port, path: '/event', method: 'POST',
            ca: server.ca, timeout: 5000,
            headers: { 'content-type': 'application/json', 'x-api-key': server.apiKey, ...headers },
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { text += d; });
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text, json: JSON.parse(text) }));
        });
        req.on('timeout', () => req.destroy(new Error('HTTP request timed out')));
        req.on('error', reject);
        req.end(data);
    });
}

// Event texts with content a re-serializing server would change: whitespace, key order, number
// spelling, escapes and non-ASCII. The server must pass each through byte for byte (§5.3).
const TRICKY_EVENTS = [
    '{ "b" : 2, "a":1.50 , "s":"<b>&é/\\u00e9 \\"q\\" \\\\ \\n" }',
    '"plain string"',
    '[1e3, -0, 1.0, true, null]',
    '42',
    '{"emoji":"\u{1F600}","ctrl":"\\u0001\\t","slash":"\\/"}',
];

describe('raw ws clients following the AWS docs (wss)', { timeout: 60000 }, () => {
    test('handshake: server selects exactly aws-appsync-event-ws; connection_ack has top-level connectionTimeoutMs 300000', async () => {
        const c = await Client.connect();
        try {
            assert.equal(c.ws.protocol, SUBPROTOCOL, 'selected subprotocol (spec §2.1)');
            const ack = await c.init();
            assert.deepEqual(Object.keys(ack).sort(), ['connectionTimeoutMs', 'type']);
            assert.equal(ack.connectionTimeoutMs, 300000, 'connectionTimeoutMs at the top level (spec §4.1)');
        } finally {
            await c.close();
        }
    });

    test('handshake with the header- subprotocol offered first (docs wscat order) also selects aws-appsync-event-ws', async () => {
        const c = await Client.connect({ protocols: [`header-${b64url(auth())}`, SUBPROTOCOL] });
        try {
            assert.equal(c.ws.protocol, SUBPROTOCOL);
            await c.init();
        } finally {
            await c.close();
        }
    });

    test('subscribe -> subscribe_success; publish -> data frames (event is the JSON string, byte for byte) then publish_success', async () => {
        const c = await Client.connect();
        try {
            await c.init();
            const channel = `/default/${uid('ch')}`;
            const subId = uid('sub');
            c.send({ type: 'subscribe', id: subId, channel, authorization: auth() });
            const ok = await c.type('subscribe_success', subId);
            assert.deepEqual(ok.json, { type: 'subscribe_success', id: subId });

            const pubId = c.publish(channel, TRICKY_EVENTS);
            const reply = await c.type('publish_success', pubId);
            // The data frames were queued before publish_success on this connection (spec §16).
            const data = c.queued((m) => m.type === 'data');
            assert.equal(data.length, TRICKY_EVENTS.length, `data frames before publish_success: ${data.length}`);
            data.forEach((f, i) => {
                assert.equal(f.json.id, subId);
                assert.equal(typeof f.json.event, 'string', 'event is a JSON string, not an array/object (spec §5.3)');
                assert.equal(f.json.event, TRICKY_EVENTS[i], `event ${i} byte for byte`);
                // `position` is eventcast's extension (docs/protocol.md, "History and resume").
                assert.deepEqual(Object.keys(f.json).sort(), ['event', 'id', 'position', 'type']);
                assert.match(f.json.position, /^[0-9a-f]{8}-[1-9][0-9]*$/);
            });
            assert.equal(reply.json.id, pubId);
            assert.deepEqual(reply.json.failed, []);
            assert.equal(reply.json.successful.length, TRICKY_EVENTS.length);
            reply.json.successful.forEach((s, i) => {
                assert.equal(s.index, i);
                assert.equal(typeof s.identifier, 'string');
                assert.ok(s.identifier.length > 0);
            });
            assert.equal(new Set(reply.json.successful.map((s) => s.identifier)).size, TRICKY_EVENTS.length,
                'identifiers are unique');
        } finally {
            await c.close();
        }
    });

    test('a publish from another connection reaches the subscriber, in order', async () => {
        const sub = await Client.connect();
        const pub = await Client.connect();
        try {
            await sub.init();
            await pub.init();
            const channel = `default/${uid('ch')}`; // no leading slash, as Amplify sends it (§5.1)
            const subId = await sub.subscribe(channel);
            const pubId = pub.publish(`/${channel}`, ['1', '2', '3']);
            await pub.type('publish_success', pubId);
            for (const expected of ['1', '2', '3']) {
                const d = await sub.type('data', subId);
                assert.equal(d.json.event, expected);
            }
            assert.equal(pub.queued((m) => m.type === 'data').length, 0, 'publisher is not subscribed');
        } finally {
            await sub.close();
            await pub.close();
        }
    });

    test('wildcard /default/* receives every depth below, not other namespaces', async () => {
        const c = await Client.connect();
        try {
            const base = uid('w');
            const subId = await c.subscribe('/default/*');
            for (const [i, path] of [`/default/${base}`, `/default/${base}/a/b`, `/BedrockChat/${base}`, `/default/${base}/end`].entries()) {
                await c.type('publish_success', c.publish(path, [JSON.stringify({ i })]));
            }
            const events = c.queued((m) => m.type === 'data' && m.id === subId).map((f) => f.json.event);
            assert.deepEqual(events, ['{"i":0}', '{"i":1}', '{"i":3}']);
        } finally {
            await c.close();
        }
    });

    test('unsubscribe -> unsubscribe_success and no more data for that id', async () => {
        const c = await Client.connect();
        try {
            await c.init();
            const channel = `/default/${uid('ch')}`;
            const gone = await c.subscribe(channel);
            const stays = await c.subscribe(channel);
            await c.type('publish_success', c.publish(channel, ['"before"']));
            assert.equal((await c.type('data', gone)).json.event, '"before"');
            assert.equal((await c.type('data', stays)).json.event, '"before"');

            c.send({ type: 'unsubscribe', id: gone });
            assert.deepEqual((await c.type('unsubscribe_success', gone)).json, { type: 'unsubscribe_success', id: gone });

            await c.type('publish_success', c.publish(channel, ['"after"']));
            const r = await httpPost({ channel, events: ['"after-http"'] });
            assert.equal(r.status, 200);
            assert.equal((await c.type('data', stays)).json.event, '"after"');
            assert.equal((await c.type('data', stays)).json.event, '"after-http"');
            await sleep(200);
            assert.deepEqual(c.queued((m) => m.type === 'data' && m.id === gone), [], 'data after unsubscribe_success');

            // Unsubscribing again: unsubscribe_error UnknownOperationError (spec §5.5).
            c.send({ type: 'unsubscribe', id: gone });
            const err = await c.type('unsubscribe_error', gone);
            assert.equal(err.json.errors[0].errorType, 'UnknownOperationError');
        } finally {
            await c.close();
        }
    });

    test('subscribe and publish without connection_init work (Swift SDK style)', async () => {
        const c = await Client.connect();
        try {
            const channel = `/default/${uid('ch')}`;
            const subId = await c.subscribe(channel);
            const pubId = c.publish(channel, ['{"swift":true}']);
            assert.equal((await c.type('data', subId)).json.event, '{"swift":true}');
            await c.type('publish_success', pubId);
            assert.equal(c.queued((m) => m.type === 'connection_error' || m.type === 'error').length, 0);
        } finally {
            await c.close();
        }
    });

    test('connect auth in a plain x-api-key upgrade header, only aws-appsync-event-ws offered (Swift/Android style)', async () => {
        const c = await Client.connect({ protocols: [SUBPROTOCOL], headers: { 'x-api-key': server.apiKey } });
        try {
            assert.equal(c.ws.protocol, SUBPROTOCOL);
            await c.init();
            const channel = `/default/${uid('ch')}`;
            const subId = await c.subscribe(channel);
            c.publish(channel, ['"hdr"']);
            assert.equal((await c.type('data', subId)).json.event, '"hdr"');
        } finally {
            await c.close();
        }
    });

    test('bad API key at connect: connection_error UnauthorizedException, then the server closes', async () => {
        const c = await Client.connect({
            protocols: [SUBPROTOCOL, `header-${b64url({ host: server.host, 'x-api-key': 'da2-wrong' })}`],
        });
        try {
            assert.equal(c.ws.protocol, SUBPROTOCOL, 'upgrade completes with the subprotocol (spec §2.2)');
            c.send({ type: 'connection_init' });
            const ce = await c.type('connection_error');
            assert.equal(ce.json.errors[0].errorType, 'UnauthorizedException');
            assert.equal(c.queued((m) => m.type === 'connection_ack').length, 0);
            await Promise.race([new Promise((r) => (c.closed ? r() : c.ws.once('close', r))), sleep(3000)]);
            assert.ok(c.closed, 'server closes the socket after connection_error');
            assert.equal(c.closed.code, 1000);
        } finally {
            await c.close();
        }
    });

    test('unknown message type -> error UnsupportedOperation, connection stays open', async () => {
        const c = await Client.connect();
        try {
            await c.init();
            c.send({ type: 'bogus_op', id: 'x1' });
            const err = await c.type('error');
            assert.equal(err.json.errors[0].errorType, 'UnsupportedOperation');
            assert.ok(Array.isArray(err.json.errors));
            // Still usable.
            assert.equal(c.closed, null);
            const channel = `/default/${uid('ch')}`;
            const subId = await c.subscribe(channel);
            c.publish(channel, ['"still open"']);
            assert.equal((await c.type('data', subId)).json.event, '"still open"');
        } finally {
            await c.close();
        }
    });

    test('publish to an undefined namespace -> publish_error with the publish id, UnauthorizedException', async () => {
        const c = await Client.connect();
        try {
            await c.init();
            const pubId = c.publish('/nosuchnamespace/chan', ['"x"']);
            const err = await c.next((m) => m.id === pubId, 3000, `reply to ${pubId}`);
            assert.equal(err.json.type, 'publish_error');
            assert.equal(err.json.id, pubId);
            assert.equal(err.json.errors[0].errorType, 'UnauthorizedException');
        } finally {
            await c.close();
        }
    });

    test('6 events -> publish_error InvalidInputError "input exceeded 5 event limit"', async () => {
        const c = await Client.connect();
        try {
            await c.init();
            const channel = `/default/${uid('ch')}`;
            const subId = await c.subscribe(channel);
            const pubId = c.publish(channel, ['1', '2', '3', '4', '5', '6']);
            const err = await c.next((m) => m.id === pubId, 3000, `reply to ${pubId}`);
            assert.equal(err.json.type, 'publish_error');
            assert.deepEqual(err.json.errors, [{ errorType: 'InvalidInputError', message: 'input exceeded 5 event limit' }]);
            await sleep(100);
            assert.equal(c.queued((m) => m.type === 'data' && m.id === subId).length, 0, 'nothing delivered');
        } finally {
            await c.close();
        }
    });

    test('HTTP POST /event: 200 {successful, failed}; 6 events -> 400 BadRequestException', async () => {
        const c = await Client.connect();
        try {
            const channel = `default/${uid('ch')}`;
            const subId = await c.subscribe(channel);
            const ok = await httpPost({ channel: `/${channel}`, events: ['{"h":1}', '"two"'] });
            assert.equal(ok.status, 200);
            assert.deepEqual(ok.json.failed, []);
            assert.deepEqual(ok.json.successful.map((s) => s.index), [0, 1]);
            assert.equal((await c.type('data', subId)).json.event, '{"h":1}');
            assert.equal((await c.type('data', subId)).json.event, '"two"');

            const bad = await httpPost({ channel: `/${channel}`, events: ['1', '2', '3', '4', '5', '6'] });
            assert.equal(bad.status, 400);
            assert.equal(bad.headers['x-amzn-errortype'], 'BadRequestException');
            assert.equal(bad.json.errors[0].errorType, 'BadRequestException');
            assert.match(bad.json.errors[0].message, /exceeded 5 event limit/i);
        } finally {
            await c.close();
        }
    });
});

describe('plain ws:// (no TLS) on the same port', { timeout: 30000 }, () => {
    test('ws:// handshake, subscribe, publish and data work without TLS', async () => {
        const c = await Client.connect({ url: server.wsUrl });
        try {
            assert.equal(c.ws.protocol, SUBPROTOCOL);
            const ack = await c.init();
            assert.equal(ack.connectionTimeoutMs, 300000);
            const channel = `/default/${uid('ch')}`;
            const subId = await c.subscribe(channel);
            const pubId = c.publish(channel, ['{"tls":false}']);
            assert.equal((await c.type('data', subId)).json.event, '{"tls":false}');
            await c.type('publish_success', pubId);
        } finally {
            await c.close();
        }
    });
});
