// Runs ONE Amplify scenario against a running eventcast, in its own Node process.
//
//   NODE_EXTRA_CA_CERTS=<cert.pem> COMPAT_PORT=<port> COMPAT_API_KEY=<key> \
//     node amplify-client.mjs <scenario>
//
// Why a child process: Amplify always opens wss:// and POSTs over https://, and Node reads
// NODE_EXTRA_CA_CERTS only at start-up, so the server's freshly generated self-signed certificate
// can only be trusted by a process started after the server. A fresh process per scenario also
// resets Amplify's singleton WebSocket provider, so scenarios cannot leak into each other.
//
// The scenario asserts with node:assert; on failure the process prints the error and the
// WebSocket frames it saw, and exits 1. amplify.test.mjs runs one scenario per test case.
import assert from 'node:assert/strict';
import dns from 'node:dns';
import { setTimeout as sleep } from 'node:timers/promises';
import WS from 'ws';

// Keep "localhost" on 127.0.0.1 (the server listens there only), whatever the resolver prefers.
dns.setDefaultResultOrder('ipv4first');

// ---- recording transport -------------------------------------------------------------------
// Every frame Amplify sends or receives is recorded, so scenarios can check the wire as well as
// the API results. Node 20 has no global WebSocket; Amplify uses globalThis.WebSocket.
const frames = []; // {dir: 'in'|'out', text, json}
const frameWaiters = new Set();
function record(dir, text) {
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    const f = { dir, text, json };
    frames.push(f);
    for (const w of frameWaiters) w(f);
}
class RecordingWebSocket extends WS {
    constructor(url, protocols, options) {
        super(url, protocols, options);
        this.addEventListener('message', (ev) => record('in', String(ev.data)));
    }
    send(data, ...rest) {
        record('out', String(data));
        return super.send(data, ...rest);
    }
}
globalThis.WebSocket = RecordingWebSocket;

/** Resolves with the first frame (already seen or future) matching pred. */
function waitFrame(pred, timeoutMs = 5000, what = 'frame') {
    const found = frames.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            frameWaiters.delete(check);
            reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const check = (f) => {
            if (!pred(f)) return;
            clearTimeout(timer);
            frameWaiters.delete(check);
            resolve(f);
        };
        frameWaiters.add(check);
    });
}
const inFrame = (type, extra = () => true) => (f) => f.dir === 'in' && f.json?.type === type && extra(f.json);
const outFrame = (type, extra = () => true) => (f) => f.dir === 'out' && f.json?.type === type && extra(f.json);

// HTTP requests are recorded too (Amplify calls the global fetch at request time).
const httpLog = []; // {method, url, status, headers}
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
    const res = await realFetch(input, init);
    httpLog.push({
        method: init.method ?? 'GET',
        url: String(input instanceof Request ? input.url : input),
        status: res.status,
        headers: Object.fromEntries(res.headers.entries()),
    });
    return res;
};

// ---- Amplify set-up ------------------------------------------------------------------------
const { Amplify } = await import('aws-amplify');
const { events } = await import('aws-amplify/data');

const port = Number(process.env.COMPAT_PORT);
const apiKey = process.env.COMPAT_API_KEY;
assert.ok(port > 0, 'COMPAT_PORT is not set');
assert.ok(apiKey, 'COMPAT_API_KEY is not set');
assert.ok(process.env.NODE_EXTRA_CA_CERTS, 'NODE_EXTRA_CA_CERTS is not set');
const endpoint = `https://localhost:${port}/event`;

function configure(key = apiKey) {
    Amplify.configure({
        API: { Events: { endpoint, region: 'us-east-1', defaultAuthMode: 'apiKey', apiKey: key } },
    });
}

/** Subscribes; returns {sub, next(timeout), none(ms), received[]} with the observer's events. */
async function subscribe(channel, readyTimeoutMs = 5000) {
    const received = [];
    const errors = [];
    const waiters = new Set();
    const sub = channel.subscribe({
        next: (msg) => {
            received.push(msg);
            for (const w of waiters) w();
        },
        error: (err) => {
            errors.push(err);
            for (const w of waiters) w();
        },
    });
    await withTimeout(sub.ready, readyTimeoutMs, 'subscription.ready');
    let cursor = 0;
    return {
        sub,
        received,
        errors,
        /** Next event delivered to this observer (in arrival order). */
        next(timeoutMs = 5000) {
            return new Promise((resolve, reject) => {
                const check = () => {
                    if (errors.length) {
                        waiters.delete(check);
                        clearTimeout(timer);
                        reject(new Error(`subscription error: ${errors[0]?.message ?? errors[0]}`));
                        return true;
                    }
                    if (cursor < received.length) {
                        waiters.delete(check);
                        clearTimeout(timer);
                        resolve(received[cursor++]);
                        return true;
                    }
                    return false;
                };
                const timer = setTimeout(() => {
                    waiters.delete(check);
                    reject(new Error(`no event within ${timeoutMs} ms (got ${received.length} so far)`));
                }, timeoutMs);
                if (!check()) waiters.add(check);
            });
        },
        async take(n, timeoutMs = 5000) {
            const out = [];
            for (let i = 0; i < n; i++) out.push(await this.next(timeoutMs));
            return out;
        },
    };
}

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

/** Asserts the promise rejects within ms and returns the rejection reason. */
async function rejectsWithin(promise, ms, what) {
    const outcome = await withTimeout(
        promise.then((v) => ({ ok: true, v }), (e) => ({ ok: false, e })), ms, what);
    assert.equal(outcome.ok, false, `${what} resolved (${JSON.stringify(outcome.v)}) but should reject`);
    return outcome.e;
}

/** Opens a raw ws subscriber on a second connection (trusting the CA through NODE_EXTRA_CA_CERTS). */
async function rawSubscriber(channel) {
    const header = Buffer.from(JSON.stringify({ host: `localhost:${port}`, 'x-api-key': apiKey }))
        .toString('base64url');
    const ws = new WS(`wss://localhost:${port}/event/realtime`, ['aws-appsync-event-ws', `header-${header}`]);
    const msgs = [];
    const waiters = new Set();
    ws.on('message', (d) => {
        msgs.push(JSON.parse(String(d)));
        for (const w of waiters) w();
    });
    await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 5000, 'raw open');
    const wait = (pred, timeoutMs = 5000) => new Promise((resolve, reject) => {
        const check = () => {
            const i = msgs.findIndex(pred);
            if (i < 0) return false;
            waiters.delete(check);
            clearTimeout(timer);
            resolve(msgs.splice(i, 1)[0]);
            return true;
        };
        const timer = setTimeout(() => { waiters.delete(check); reject(new Error('raw: timed out')); }, timeoutMs);
        if (!check()) waiters.add(check);
    });
    ws.send(JSON.stringify({ type: 'subscribe', id: 'raw-sub', channel, authorization: { 'x-api-key': apiKey } }));
    await wait((m) => m.type === 'subscribe_success' && m.id === 'raw-sub');
    return { ws, wait, msgs };
}

// Unique channel per scenario run, so nothing else can reach the observers.
const uniq = `c${process.pid}${Date.now().toString(36)}`;

// ---- scenarios -----------------------------------------------------------------------------
const scenarios = {
    // connect, subscribe to an exact channel, publish 1 event over WebSocket, receive it.
    async 'publish-ws-1'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        // Wire checks for the handshake Amplify performed.
        const ack = await waitFrame(inFrame('connection_ack'), 1000, 'connection_ack');
        assert.equal(ack.json.connectionTimeoutMs, 300000);
        const s = await subscribe(channel);
        const sent = { a: 1, s: '<b>&é/"\\', nested: { list: [1, 2.5, null, true] } };
        const result = await withTimeout(channel.publish(sent), 5000, 'channel.publish');
        assert.equal(result, undefined, 'channel.publish resolves to undefined on publish_success');
        const got = await s.next();
        assert.equal(got.type, 'data');
        assert.deepEqual(got.event, sent);
        const ok = await waitFrame(inFrame('publish_success'), 1000, 'publish_success');
        assert.equal(ok.json.successful.length, 1);
        assert.deepEqual(ok.json.failed, []);
        s.sub.unsubscribe();
        await channel.close();
    },

    // 5 events in one channel.publish: 5 data messages, in publish order.
    async 'publish-ws-5'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        const sent = [{ n: 0 }, 'one', 2, [3, 'three'], { n: 4, last: true }];
        await withTimeout(channel.publish(sent), 5000, 'channel.publish');
        const got = await s.take(5);
        assert.deepEqual(got.map((m) => m.event), sent);
        const ok = await waitFrame(inFrame('publish_success'), 1000, 'publish_success');
        assert.deepEqual(ok.json.successful.map((x) => x.index), [0, 1, 2, 3, 4]);
        await channel.close();
    },

    // default/* matches every depth below default/, and nothing in another namespace.
    async 'wildcard'() {
        configure();
        const wild = await withTimeout(events.connect('default/*'), 10000, 'events.connect');
        const s = await subscribe(wild);
        const exact = await subscribe(await events.connect(`default/${uniq}`));
        // Publish from separate channel objects (same socket) to several depths.
        const targets = [`default/${uniq}`, `default/${uniq}/b`, `default/${uniq}/b/c/d`];
        for (const [i, path] of targets.entries()) {
            const ch = await events.connect(path);
            await withTimeout(ch.publish({ path, i }), 5000, `publish to ${path}`);
        }
        // Another namespace must not reach default/*; HTTP publish from the same process.
        await withTimeout(events.post(`BedrockChat/${uniq}`, { other: true }), 5000, 'events.post');
        // Marker last: once it arrives, everything before it has been delivered (FIFO per connection).
        await withTimeout(events.post(`default/${uniq}/marker`, { marker: true }), 5000, 'events.post');
        const got = await s.take(4);
        assert.deepEqual(got.map((m) => m.event), [
            { path: targets[0], i: 0 }, { path: targets[1], i: 1 }, { path: targets[2], i: 2 },
            { marker: true },
        ]);
        await sleep(200);
        assert.equal(s.received.length, 4, 'default/* must not receive BedrockChat events');
        // The exact subscription only got the event for its own channel.
        assert.deepEqual(exact.received.map((m) => m.event), [{ path: targets[0], i: 0 }]);
    },

    // events.post (HTTP) with 1 event reaches a WebSocket subscriber.
    async 'post-http-1'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        const sent = { via: 'http', text: 'héllo <&> /' };
        const res = await withTimeout(events.post(`default/${uniq}`, sent), 5000, 'events.post');
        assert.equal(res, undefined, 'events.post resolves to undefined when nothing failed');
        const got = await s.next();
        assert.deepEqual(got.event, sent);
        const req = httpLog.find((r) => r.method === 'POST');
        assert.ok(req, 'events.post made an HTTP POST');
        assert.equal(new URL(req.url).pathname, '/event');
        assert.equal(req.status, 200);
        assert.match(req.headers['content-type'] ?? '', /^application\/json/);
    },

    // events.post with 5 events: all delivered, in order.
    async 'post-http-5'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        const sent = [1, 'two', { three: 3 }, [4], null];
        const res = await withTimeout(events.post(`default/${uniq}`, sent), 5000, 'events.post');
        assert.equal(res, undefined);
        const got = await s.take(5);
        assert.deepEqual(got.map((m) => m.event), sent);
    },

    // 6 events over WebSocket: publish_error InvalidInputError, channel.publish rejects.
    async 'publish-ws-6-rejected'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        const err = await rejectsWithin(channel.publish([1, 2, 3, 4, 5, 6]), 5000, 'channel.publish(6 events)');
        assert.match(String(err?.message ?? err), /InvalidInputError/);
        const frame = await waitFrame(inFrame('publish_error'), 1000, 'publish_error');
        const sentPublish = frames.find(outFrame('publish'));
        assert.equal(frame.json.id, sentPublish.json.id, 'publish_error carries the publish id');
        assert.equal(frame.json.errors[0].errorType, 'InvalidInputError');
        assert.equal(frame.json.errors[0].message, 'input exceeded 5 event limit');
        // Nothing was delivered, and the socket still works.
        await withTimeout(channel.publish({ after: true }), 5000, 'channel.publish after error');
        assert.deepEqual((await s.next()).event, { after: true });
        assert.equal(s.received.length, 1);
    },

    // 6 events over HTTP: 400 with x-amzn-ErrorType BadRequestException; Amplify rejects
    // (after retrying: it treats BadRequestException as a possible clock-skew error).
    async 'post-http-6-rejected'() {
        configure();
        const err = await rejectsWithin(events.post(`default/${uniq}`, [1, 2, 3, 4, 5, 6]), 15000,
            'events.post(6 events)');
        assert.equal(err.name, 'BadRequestException');
        const posts = httpLog.filter((r) => r.method === 'POST');
        assert.ok(posts.length >= 1 && posts.length <= 3, `expected 1-3 attempts, got ${posts.length}`);
        for (const p of posts) {
            assert.equal(p.status, 400);
            assert.equal(p.headers['x-amzn-errortype'], 'BadRequestException');
        }
        assert.equal(err.response?.statusCode, 400);
        const body = JSON.parse(err.response?.body ?? '{}');
        assert.equal(body.errors?.[0]?.errorType, 'BadRequestException');
        assert.match(body.errors?.[0]?.message ?? '', /exceeded 5 event limit/i);
    },

    // An event of 241 KB is rejected over WS and over HTTP; one of exactly 240 KB
    // (240*1024 bytes of JSON text) is accepted and delivered intact.
    async 'event-size-limit'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        const big = 'x'.repeat(241 * 1024);
        const wsErr = await rejectsWithin(channel.publish(big), 5000, 'channel.publish(241 KB)');
        assert.match(String(wsErr?.message ?? wsErr), /InvalidInputError/);
        const httpErr = await rejectsWithin(events.post(`default/${uniq}`, big), 15000, 'events.post(241 KB)');
        assert.equal(httpErr.name, 'BadRequestException');
        assert.equal(httpErr.response?.statusCode, 400);
        // JSON.stringify adds the two quotes: exactly 240*1024 bytes of event text.
        const limit = 'y'.repeat(240 * 1024 - 2);
        await withTimeout(channel.publish(limit), 5000, 'channel.publish(exactly 240 KB)');
        const got = await s.next();
        assert.equal(got.event, limit);
        assert.equal(s.received.length, 1, 'rejected events must not be delivered');
    },

    // Wrong API key: the server sends connection_error UnauthorizedException; events.connect rejects
    // without endless retries (UnauthorizedException is non-retryable for Amplify).
    async 'bad-api-key'() {
        configure('da2-this-key-is-wrong');
        const err = await rejectsWithin(events.connect(`default/${uniq}`), 10000, 'events.connect(bad key)');
        assert.match(String(err?.message ?? JSON.stringify(err)), /UnauthorizedException/);
        const ce = await waitFrame(inFrame('connection_error'), 1000, 'connection_error');
        assert.equal(ce.json.errors[0].errorType, 'UnauthorizedException');
        assert.equal(frames.filter(inFrame('connection_ack')).length, 0);
        // Non-retryable: one connection attempt only.
        await sleep(500);
        assert.equal(frames.filter(outFrame('connection_init')).length, 1);
    },

    // sub.unsubscribe(): unsubscribe goes out, unsubscribe_success comes back, no more data.
    async 'unsubscribe'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const keep = await subscribe(channel);
        const gone = await subscribe(await events.connect(`default/${uniq}`));
        await withTimeout(channel.publish({ n: 1 }), 5000, 'publish 1');
        assert.deepEqual((await gone.next()).event, { n: 1 });
        assert.deepEqual((await keep.next()).event, { n: 1 });
        const goneId = frames.filter(outFrame('subscribe')).map((f) => f.json.id)[1];
        gone.sub.unsubscribe();
        const unsub = await waitFrame(outFrame('unsubscribe'), 2000, 'unsubscribe sent');
        assert.equal(unsub.json.id, goneId);
        await waitFrame(inFrame('unsubscribe_success', (j) => j.id === goneId), 2000, 'unsubscribe_success');
        await withTimeout(channel.publish({ n: 2 }), 5000, 'publish 2');
        await withTimeout(events.post(`default/${uniq}`, { n: 3 }), 5000, 'post 3');
        assert.deepEqual((await keep.take(2)).map((m) => m.event), [{ n: 2 }, { n: 3 }]);
        await sleep(200);
        assert.equal(frames.filter(inFrame('data', (j) => j.id === goneId)).length, 1,
            'no data for the unsubscribed id after unsubscribe_success');
        assert.equal(gone.received.length, 1);
    },

    // channel.close(): its subscription is unsubscribed and receives nothing more.
    async 'channel-close'() {
        configure();
        const closing = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const a = await subscribe(closing);
        const staying = await events.connect(`default/${uniq}`);
        const b = await subscribe(staying);
        await closing.close();
        await waitFrame(inFrame('unsubscribe_success'), 2000, 'unsubscribe_success');
        await assert.rejects(closing.publish({ x: 1 }), /Channel is closed/);
        await withTimeout(staying.publish({ after: 'close' }), 5000, 'publish after close');
        assert.deepEqual((await b.next()).event, { after: 'close' });
        await sleep(200);
        assert.equal(a.received.length, 0, 'closed channel got an event');
    },

    // The publishing connection receives its own events, and so does another connection.
    async 'own-publish'() {
        configure();
        const channel = await withTimeout(events.connect(`default/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        const raw = await rawSubscriber(`/default/${uniq}`);
        try {
            await withTimeout(channel.publish({ mine: true }), 5000, 'channel.publish');
            assert.deepEqual((await s.next()).event, { mine: true });
            const d = await raw.wait((m) => m.type === 'data');
            assert.equal(d.event, JSON.stringify({ mine: true }));
        } finally {
            raw.ws.close();
        }
    },
};

// ---- namespace handlers (started with the files of tests/data/handlers, amplify.test.mjs) ----
Object.assign(scenarios, {
    // transform.js upper-cases the message and adds the channel and util.time; filter.js drops
    // spam. What Amplify's observer receives is the handler's output, over WebSocket and HTTP.
    async 'handler-transform'() {
        configure();
        const channel = await withTimeout(events.connect(`transform/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(channel);
        await withTimeout(channel.publish({ message: 'hello', keep: 1 }), 5000, 'channel.publish');
        const ws = (await s.next()).event;
        assert.equal(ws.message, 'HELLO');
        assert.equal(ws.keep, 1);
        assert.equal(ws.channel, `/transform/${uniq}`);
        assert.deepEqual(ws.segments, ['transform', uniq]);
        assert.match(ws.receivedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        await withTimeout(events.post(`transform/${uniq}`, { message: 'over http' }), 5000, 'events.post');
        assert.equal((await s.next()).event.message, 'OVER HTTP');

        const filtered = await withTimeout(events.connect(`filter/${uniq}`), 10000, 'events.connect');
        const f = await subscribe(filtered);
        await withTimeout(filtered.publish([{ n: 1 }, { n: 2, spam: true }, { n: 3 }]), 5000, 'channel.publish');
        assert.deepEqual((await f.take(2)).map((m) => m.event), [{ n: 1 }, { n: 3 }]);
        await sleep(300);
        assert.equal(f.received.length, 2, 'the spam event was broadcast');
        await channel.close();
        await filtered.close();
    },

    // validate.js: util.unauthorized() for identity-less callers on /validate/private/...,
    // util.error() on a closed channel, a per-event error in publish_success's failed.
    async 'handler-refusals'() {
        configure();
        const refused = await withTimeout(events.connect(`validate/private/${uniq}`), 10000, 'events.connect');
        const errors = [];
        refused.subscribe({ next: () => assert.fail('refused subscription got an event'),
                                         error: (e) => errors.push(e) });
        const frame = await waitFrame(inFrame('subscribe_error'), 5000, 'subscribe_error');
        assert.equal(frame.json.errors[0].errorType, 'UnauthorizedException');
        await sleep(200);
        assert.ok(errors.length >= 1, 'the observer saw no error for the refused subscription');

        const closed = await withTimeout(events.connect(`validate/closed/${uniq}`), 10000, 'events.connect');
        closed.subscribe({ next: () => {}, error: () => {} });
        const closedFrame = await waitFrame(
            inFrame('subscribe_error', (j) => j.errors?.[0]?.message?.includes('is closed')), 5000,
            'subscribe_error from util.error');
        assert.equal(closedFrame.json.errors[0].message, `channel /validate/closed/${uniq} is closed`);

        const ok = await withTimeout(events.connect(`validate/ok/${uniq}`), 10000, 'events.connect');
        const s = await subscribe(ok);
        await withTimeout(ok.publish([{ amount: 5 }, { amount: 'five' }]), 5000, 'channel.publish');
        const ack = await waitFrame(inFrame('publish_success', (j) => j.failed?.length === 1), 5000,
            'publish_success with a failed event');
        assert.equal(ack.json.failed[0].index, 1);
        assert.equal(ack.json.failed[0].message, 'amount must be a number');
        assert.deepEqual((await s.next()).event, { amount: 5 });
    },
});

// ---- main ----------------------------------------------------------------------------------
const name = process.argv[2];
const scenario = scenarios[name];
if (!scenario) {
    console.error(`unknown scenario '${name}'; known: ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
const watchdog = setTimeout(() => {
    console.error(`scenario '${name}' exceeded 25 s`);
    dumpFrames();
    process.exit(3);
}, 25000);

function dumpFrames() {
    console.error('--- WebSocket frames (out = client to server) ---');
    for (const f of frames) console.error(`${f.dir.padEnd(3)} ${f.text.length > 400 ? f.text.slice(0, 400) + '…' : f.text}`);
    console.error('--- HTTP ---');
    for (const r of httpLog) console.error(`${r.method} ${r.url} -> ${r.status} ${JSON.stringify(r.headers)}`);
}

try {
    await scenario();
    if (process.env.COMPAT_DUMP) dumpFrames();
    clearTimeout(watchdog);
    console.log(`ok ${name}`);
    process.exit(0);
} catch (err) {
    clearTimeout(watchdog);
    console.error(err?.stack ?? err);
    dumpFrames();
    process.exit(1);
}
