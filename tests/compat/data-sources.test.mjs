// Data sources of namespace handlers and AppSync's direct Lambda integration (issue #16 item 4),
// through the real binary: a fake Lambda (tests/fakes/fake-lambda.mjs) that verifies every
// request's SigV4 signature with the official @smithy/signature-v4, a small local HTTP server
// for the HTTP data source, and raw WebSocket subscribers and HTTP POST /event publishers.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startFakeBedrock } from '../fakes/fake-bedrock.mjs';
import { DEFAULT_CREDENTIALS, startFakeLambda } from '../fakes/fake-lambda.mjs';
import { startServer } from './server.mjs';

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

function serverEnv(home, extra = {}) {
    return {
        HOME: home, AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'), AWS_CONFIG_FILE: join(home, 'none'),
        AWS_EC2_METADATA_DISABLED: 'true', AWS_PROFILE: null, AWS_SESSION_TOKEN: null,
        AWS_REGION: null, AWS_DEFAULT_REGION: null, AWS_BEARER_TOKEN_BEDROCK: null,
        AWS_ACCESS_KEY_ID: DEFAULT_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: DEFAULT_CREDENTIALS.secretAccessKey,
        ...extra,
    };
}

async function publish(server, channel, events) {
    const res = await fetch(`http://127.0.0.1:${server.port}/event`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': server.apiKey },
        body: JSON.stringify({ channel, events: events.map((e) => JSON.stringify(e)) }),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* shown in the assertion */ }
    return { status: res.status, text, json };
}

/** A raw AppSync Events subscriber over plain ws. */
class Subscriber {
    static async connect(server) {
        const auth = { host: server.host, 'x-api-key': server.apiKey };
        const ws = new WebSocket(server.wsUrl, ['aws-appsync-event-ws', `header-${b64url(auth)}`]);
        const s = new Subscriber(ws, auth);
        await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
        ws.send(JSON.stringify({ type: 'connection_init' }));
        await s.next((m) => m.type === 'connection_ack');
        return s;
    }
    constructor(ws, auth) {
        this.ws = ws; this.auth = auth; this.messages = []; this.waiters = []; this.n = 0;
        ws.on('message', (d) => {
            this.messages.push(JSON.parse(d.toString()));
            for (const w of [...this.waiters]) w();
        });
    }
    next(pred, ms = 5000) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const i = this.messages.findIndex(pred);
                if (i < 0) return false;
                const [m] = this.messages.splice(i, 1);
                this.waiters = this.waiters.filter((w) => w !== check);
                clearTimeout(timer);
                resolve(m);
                return true;
            };
            const timer = setTimeout(() => {
                this.waiters = this.waiters.filter((w) => w !== check);
                reject(new Error(`no matching message in ${ms} ms; have ${JSON.stringify(this.messages)}`));
            }, ms);
            if (!check()) this.waiters.push(check);
        });
    }
    async subscribe(channel) {
        const id = `s${++this.n}`;
        this.ws.send(JSON.stringify({ type: 'subscribe', id, channel, authorization: this.auth }));
        const answer = await this.next((m) => m.id === id && m.type.startsWith('subscribe_'));
        return { id, answer };
    }
    events(id, count) {
        return Promise.all(Array.from({ length: count }, () =>
            this.next((m) => m.type === 'data' && m.id === id))).then((ms) => ms.map((m) => JSON.parse(m.event)));
    }
    close() { this.ws.close(); }
}

const metric = async (server, name) => {
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.split(' ')[1]) : NaN;
};

describe('data sources and direct Lambda integrations against a signature-verifying fake Lambda', { timeout: 120000 }, () => {
    let lambda, http, server, sub, dir, home;
    const httpSeen = [];

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), 'eventcast-ds-'));
        home = mkdtempSync(join(tmpdir(), 'eventcast-ds-home-'));
        lambda = await startFakeLambda({
            functions: {
                // direct integration: transform, one per-event error, refuse one channel
                direct(event) {
                    if (event.info.operation === 'SUBSCRIBE')
                        return event.info.channel.path.endsWith('/secret') ? { error: 'no subscribing to secrets' } : null;
                    return {
                        events: event.events.filter((e) => !e.payload.drop).map((e) => e.payload.bad
                            ? { id: e.id, error: 'bad event refused by lambda' }
                            : { id: e.id, payload: { ...e.payload, viaLambda: true } }),
                    };
                },
                boom() { throw new TypeError('boom from the function'); },
                audit() { return { ignored: true }; },
                // data source for a request/response handler
                enrich(payload) {
                    return payload.events.map((e) => ({ id: e.id, payload: { ...e.payload, enriched: payload.channel } }));
                },
            },
        });
        http = createServer(async (req, res) => {
            const chunks = [];
            for await (const c of req) chunks.push(c);
            const body = Buffer.concat(chunks).toString();
            httpSeen.push({ method: req.method, url: req.url, headers: req.headers, body });
            res.writeHead(201, { 'content-type': 'application/json', 'x-checked': 'yes' });
            const events = body ? JSON.parse(body).events : [];
            res.end(JSON.stringify({ allowed: events.filter((e) => !e.payload.spam).map((e) => e.id) }));
        });
        await new Promise((r) => http.listen(0, '127.0.0.1', r));
        const code = (name, text) => { const f = join(dir, name); writeFileSync(f, text); return f; };
        const lambdaRR = code('lambda-rr.js', `
            export const onPublish = {
              request(ctx) {
                ctx.stash.count = ctx.events.length
                return { operation: 'Invoke', payload: { events: ctx.events, channel: ctx.info.channel.path } }
              },
              response(ctx) {
                return ctx.result.map((e) => ({ id: e.id, payload: { ...e.payload, count: ctx.stash.count } }))
              },
            }`);
        const lambdaEvent = code('lambda-event.js', `
            export const onPublish = {
              request(ctx) { return { operation: 'Invoke', invocationType: 'Event', payload: ctx.events } },
              response(ctx) { return ctx.events.map((e) => ({ id: e.id, payload: { ...e.payload, result: ctx.result } })) },
            }`);
        // ctx.error in response(), as AppSync sets it when the call fails: one handler written
        // as AWS's function references are (util.error with the error's message and type), one
        // that tolerates the failure and broadcasts anyway.
        const strict = code('strict.js', `
            import { util } from '@aws-appsync/utils'
            export const onPublish = {
              request(ctx) { return { operation: 'Invoke', payload: ctx.events } },
              response(ctx) {
                if (ctx.error) util.error(ctx.error.message, ctx.error.type)
                return ctx.events
              },
            }`);
        const tolerant = code('tolerant.js', `
            export const onPublish = {
              request(ctx) { return { operation: 'Invoke', payload: ctx.events } },
              response(ctx) {
                return ctx.events.map((e) => ({ id: e.id, payload: { ...e.payload, result: ctx.result,
                  errorType: ctx.error?.type ?? null, failed: (ctx.error?.message ?? '').includes('boom') } }))
              },
            }`);
        const httpCode = code('http.js', `
            import { util } from '@aws-appsync/utils'
            export const onPublish = {
              request(ctx) {
                return { method: 'POST', resourcePath: '/check',
                         params: { headers: { 'content-type': 'application/json', 'x-ns': 'web' },
                                   query: { channel: ctx.info.channel.path }, body: { events: ctx.events } } }
              },
              response(ctx) {
                if (ctx.result.statusCode !== 201) util.error('checker answered ' + ctx.result.statusCode)
                const allowed = JSON.parse(ctx.result.body).allowed
                return ctx.events.filter((e) => allowed.includes(e.id))
                  .map((e) => ({ id: e.id, payload: { ...e.payload, checked: ctx.result.headers['x-checked'] } }))
              },
            }
            export const onSubscribe = {
              request(ctx) { return { method: 'GET', resourcePath: '/check', params: { body: { events: [] } } } },
              response(ctx) { if (ctx.info.channel.path.endsWith('/closed')) util.unauthorized() },
            }`);
        server = await startServer({
            extraArgs: [
                '--namespace', 'direct', '--namespace', 'fire', '--namespace', 'failing',
                '--namespace', 'rr', '--namespace', 'ev', '--namespace', 'web',
                '--namespace-direct-lambda', 'direct:publish+subscribe:REQUEST_RESPONSE:direct',
                '--namespace-direct-lambda', 'fire:publish:EVENT:arn:aws:lambda:us-east-1:123456789012:function:audit',
                '--namespace-direct-lambda', 'failing:publish:REQUEST_RESPONSE:boom',
                '--namespace-code', `rr:${lambdaRR}`, '--namespace-data-source', 'rr:lambda:enrich',
                '--namespace-code', `ev:${lambdaEvent}`, '--namespace-data-source', 'ev:lambda:audit',
                '--namespace-code', `web:${httpCode}`,
                '--namespace', 'strict', '--namespace-code', `strict:${strict}`,
                '--namespace-data-source', 'strict:lambda:boom',
                '--namespace', 'tolerant', '--namespace-code', `tolerant:${tolerant}`,
                '--namespace-data-source', 'tolerant:lambda:boom',
                '--namespace-data-source', `web:http:http://127.0.0.1:${http.address().port}`,
                '--lambda-endpoint', lambda.url, '--bedrock-region', 'us-east-1',
            ],
            env: serverEnv(home),
        });
        sub = await Subscriber.connect(server);
    });

    after(async () => {
        sub?.close();
        await server?.stop();
        await lambda?.close();
        await new Promise((r) => (http ? http.close(r) : r()));
        for (const d of [dir, home]) if (d) rmSync(d, { recursive: true, force: true });
    });

    const explain = (e) => { e.message += `\n--- server output ---\n${server?.output().slice(-3000) ?? ''}`; throw e; };

    test('direct REQUEST_RESPONSE publish: the function gets AppSync\'s payload; its events go out, its per-event error reaches the publisher', async () => {
        try {
            const { id, answer } = await sub.subscribe('/direct/room');
            assert.equal(answer.type, 'subscribe_success', JSON.stringify(answer));
            const before = lambda.calls.length;
            const r = await publish(server, '/direct/room', [{ n: 1 }, { n: 2, bad: true }, { n: 3, drop: true }]);
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.successful.length, 2, r.text);
            assert.deepEqual(r.json.failed.map((f) => [f.index, f.message]), [[1, 'bad event refused by lambda']]);
            const [got] = await sub.events(id, 1);
            assert.deepEqual(got, { n: 1, viaLambda: true });
            const call = lambda.calls.slice(before).find((c) => c.name === 'direct' && c.event.info.operation === 'PUBLISH');
            assert.equal(call.invocationType, 'RequestResponse');
            const ev = call.event;
            assert.deepEqual(ev.info, { channel: { path: '/direct/room', segments: ['direct', 'room'] },
                channelNamespace: { name: 'direct' }, operation: 'PUBLISH' });
            assert.deepEqual(ev.events.map((e) => e.payload), [{ n: 1 }, { n: 2, bad: true }, { n: 3, drop: true }]);
            assert.deepEqual(r.json.successful.map((s) => s.identifier).sort(),
                ev.events.filter((e) => !e.payload.bad).map((e) => e.id).sort(),
                'the ids the function saw are the identifiers answered (a dropped event counts as successful)');
            assert.equal(r.json.failed[0].identifier, ev.events[1].id);
            assert.equal(ev.identity, null);
            assert.deepEqual(ev.stash, {});
            assert.deepEqual(ev.outErrors, []);
            assert.equal(ev.result, null);
            assert.equal(typeof ev.request.headers, 'object');
        } catch (e) { explain(e); }
    });

    test('direct REQUEST_RESPONSE subscribe: {error} refuses with its message, null accepts', async () => {
        try {
            const ok = await sub.subscribe('/direct/open');
            assert.equal(ok.answer.type, 'subscribe_success', JSON.stringify(ok.answer));
            const no = await sub.subscribe('/direct/secret');
            assert.equal(no.answer.type, 'subscribe_error', JSON.stringify(no.answer));
            assert.match(JSON.stringify(no.answer.errors), /no subscribing to secrets/);
            const call = lambda.calls.find((c) => c.name === 'direct' && c.event.info.operation === 'SUBSCRIBE' &&
                c.event.info.channel.path === '/direct/secret');
            assert.ok(call, `the function saw the subscribe: ${JSON.stringify(lambda.calls.map((c) => c.event?.info))}`);
            assert.equal(call.event.events, undefined, 'a subscribe carries no events');
        } catch (e) { explain(e); }
    });

    test('direct EVENT publish: events go out unchanged, the function is invoked asynchronously (by ARN)', async () => {
        try {
            const { id } = await sub.subscribe('/fire/x');
            const before = lambda.calls.filter((c) => c.name === 'audit').length;
            const r = await publish(server, '/fire/x', [{ a: 1 }, { b: 2 }]);
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.successful.length, 2, r.text);
            assert.deepEqual(await sub.events(id, 2), [{ a: 1 }, { b: 2 }]);
            await lambda.waitForCalls(lambda.calls.length + (lambda.calls.filter((c) => c.name === 'audit').length > before ? 0 : 1));
            const call = lambda.calls.filter((c) => c.name === 'audit').at(-1);
            assert.equal(call.invocationType, 'Event');
            assert.equal(call.rawName, 'arn:aws:lambda:us-east-1:123456789012:function:audit');
            assert.deepEqual(call.event.events.map((e) => e.payload), [{ a: 1 }, { b: 2 }]);
        } catch (e) { explain(e); }
    });

    test('a function error fails the publish with its type and message and counts a handler failure', async () => {
        try {
            const before = await metric(server, 'eventcast_handler_failures_total');
            const r = await publish(server, '/failing/x', [{ a: 1 }]);
            assert.notEqual(r.status, 200, r.text);
            assert.match(r.text, /lambda function 'boom' failed \(Unhandled\): TypeError: boom from the function/);
            assert.equal(await metric(server, 'eventcast_handler_failures_total'), before + 1);
        } catch (e) { explain(e); }
    });

    test('a failed data source call runs response() with ctx.error: util.error(message, type) fails the publish', async () => {
        try {
            const before = await metric(server, 'eventcast_handler_failures_total');
            const r = await publish(server, '/strict/x', [{ a: 1 }]);
            assert.notEqual(r.status, 200, r.text);
            assert.match(r.text, /lambda function 'boom' failed \(Unhandled\): TypeError: boom from the function/);
            assert.ok(await metric(server, 'eventcast_handler_failures_total') >= before + 1);
        } catch (e) { explain(e); }
    });

    test('a response() that tolerates ctx.error broadcasts; ctx.error.type is Lambda:Unhandled, ctx.result null', async () => {
        try {
            const { id } = await sub.subscribe('/tolerant/y');
            const r = await publish(server, '/tolerant/y', [{ b: 2 }]);
            assert.equal(r.status, 200, r.text);
            assert.deepEqual(await sub.events(id, 1),
                [{ b: 2, result: null, errorType: 'Lambda:Unhandled', failed: true }]);
        } catch (e) { explain(e); }
    });

    test('request/response handler with a Lambda data source (RequestResponse): ctx.result and ctx.stash reach response()', async () => {
        try {
            const { id } = await sub.subscribe('/rr/*');
            const r = await publish(server, '/rr/a', [{ m: 'x' }, { m: 'y' }]);
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.successful.length, 2, r.text);
            assert.deepEqual(await sub.events(id, 2), [
                { m: 'x', enriched: '/rr/a', count: 2 }, { m: 'y', enriched: '/rr/a', count: 2 }]);
            const call = lambda.calls.filter((c) => c.name === 'enrich').at(-1);
            assert.equal(call.invocationType, 'RequestResponse');
            assert.deepEqual(call.event.events.map((e) => e.payload), [{ m: 'x' }, { m: 'y' }]);
        } catch (e) { explain(e); }
    });

    test('request/response handler with a Lambda data source (Event): ctx.result is null, the function still runs', async () => {
        try {
            const { id } = await sub.subscribe('/ev/b');
            const n = lambda.calls.length;
            const r = await publish(server, '/ev/b', [{ q: 1 }]);
            assert.equal(r.status, 200, r.text);
            assert.deepEqual(await sub.events(id, 1), [{ q: 1, result: null }]);
            await lambda.waitForCalls(n + 1);
            const call = lambda.calls.slice(n).find((c) => c.name === 'audit');
            assert.equal(call.invocationType, 'Event');
            assert.deepEqual(call.event.map((e) => e.payload), [{ q: 1 }]);
        } catch (e) { explain(e); }
    });

    test('HTTP data source: method, resourcePath, query, headers and body go out; statusCode, headers and body come back', async () => {
        try {
            const { id } = await sub.subscribe('/web/c');
            const r = await publish(server, '/web/c', [{ t: 'ok' }, { t: 'no', spam: true }]);
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.successful.length, 2, r.text);  // the filtered one was dropped, not failed
            assert.deepEqual(await sub.events(id, 1), [{ t: 'ok', checked: 'yes' }]);
            const seen = httpSeen.find((s) => s.method === 'POST');
            assert.equal(seen.url, '/check?channel=%2Fweb%2Fc');
            assert.equal(seen.headers['x-ns'], 'web');
            assert.deepEqual(JSON.parse(seen.body).events.map((e) => e.payload), [{ t: 'ok' }, { t: 'no', spam: true }]);
            const closed = await sub.subscribe('/web/closed');
            assert.equal(closed.answer.type, 'subscribe_error', JSON.stringify(closed.answer));
            assert.match(JSON.stringify(closed.answer.errors), /Unauthorized/);
        } catch (e) { explain(e); }
    });
});

describe('eventcast signs with its own credentials: the fake refuses a wrong secret', { timeout: 60000 }, () => {
    let lambda, server, home;
    before(async () => {
        home = mkdtempSync(join(tmpdir(), 'eventcast-ds-home-'));
        lambda = await startFakeLambda({ functions: { direct: () => ({ events: [] }) } });
        server = await startServer({
            extraArgs: ['--namespace', 'direct', '--namespace-direct-lambda', 'direct:publish:REQUEST_RESPONSE:direct',
                '--lambda-endpoint', lambda.url, '--bedrock-region', 'us-east-1'],
            env: serverEnv(home, { AWS_SECRET_ACCESS_KEY: 'not-the-secret-the-fake-knows' }),
        });
    });
    after(async () => {
        await server?.stop();
        await lambda?.close();
        if (home) rmSync(home, { recursive: true, force: true });
    });
    test('wrong secret: the publish fails with the fake\'s InvalidSignatureException message, no function runs', async () => {
        const r = await publish(server, '/direct/x', [{ a: 1 }]);
        assert.notEqual(r.status, 200, r.text);
        assert.match(r.text, /answered HTTP 403: The request signature we calculated does not match/);
        assert.equal(lambda.calls.length, 0);
        assert.equal(lambda.refused.length, 1);
    });
});

describe('Bedrock data source against the fake Bedrock (SigV4 verified there too)', { timeout: 60000 }, () => {
    let bedrock, server, sub, dir, home;
    before(async () => {
        dir = mkdtempSync(join(tmpdir(), 'eventcast-ds-'));
        home = mkdtempSync(join(tmpdir(), 'eventcast-ds-home-'));
        bedrock = await startFakeBedrock({});
        const converse = join(dir, 'converse.js');
        writeFileSync(converse, `
            export const onPublish = {
              request(ctx) {
                return { operation: 'Converse',
                         messages: [{ role: 'user', content: [{ text: ctx.events[0].payload.ask }] }],
                         inferenceConfig: { maxTokens: 50 } }
              },
              response(ctx) {
                return [{ id: ctx.events[0].id, payload: { answer: ctx.result.output.message.content[0].text,
                                                           stop: ctx.result.stopReason } }]
              },
            }`);
        const invoke = join(dir, 'invoke.js');
        writeFileSync(invoke, `
            export const onPublish = {
              request(ctx) {
                return { operation: 'InvokeModel', modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
                         body: { anthropic_version: 'bedrock-2023-05-31', max_tokens: 50,
                                 messages: [{ role: 'user', content: ctx.events[0].payload.ask }] } }
              },
              response(ctx) {
                return ctx.events.map((e) => ({ id: e.id, payload: { answer: ctx.result.content[0].text } }))
              },
            }`);
        server = await startServer({
            extraArgs: ['--namespace', 'ask', '--namespace', 'raw',
                '--namespace-code', `ask:${converse}`,
                '--namespace-data-source', 'ask:bedrock:anthropic.claude-3-haiku-20240307-v1:0',
                '--namespace-code', `raw:${invoke}`, '--namespace-data-source', 'raw:bedrock',
                '--bedrock-endpoint', bedrock.url, '--bedrock-region', 'us-east-1'],
            env: serverEnv(home),
        });
        sub = await Subscriber.connect(server);
    });
    after(async () => {
        sub?.close();
        await server?.stop();
        await bedrock?.close();
        for (const d of [dir, home]) if (d) rmSync(d, { recursive: true, force: true });
    });

    test('Converse: the model id from the data source, the answer in ctx.result', async () => {
        const { id } = await sub.subscribe('/ask/q');
        const r = await publish(server, '/ask/q', [{ ask: 'hello there' }]);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(await sub.events(id, 1), [{ answer: 'Echo: hello there', stop: 'end_turn' }]);
        const rec = bedrock.requests().find((q) => q.operation === 'Converse');
        assert.equal(rec.auth.verdict, 'ok', JSON.stringify(rec.auth));
        assert.equal(rec.modelId, 'anthropic.claude-3-haiku-20240307-v1:0');
        assert.equal(rec.bodyJson.operation, undefined, 'operation and modelId are not part of the body');
    });

    test('InvokeModel: the body as given, the model id from the request', async () => {
        const { id } = await sub.subscribe('/raw/q');
        const r = await publish(server, '/raw/q', [{ ask: 'raw call' }]);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(await sub.events(id, 1), [{ answer: 'Echo: raw call' }]);
        const rec = bedrock.requests().find((q) => q.operation === 'InvokeModel');
        assert.equal(rec.auth.verdict, 'ok', JSON.stringify(rec.auth));
        assert.equal(rec.bodyJson.anthropic_version, 'bedrock-2023-05-31');
    });
});
