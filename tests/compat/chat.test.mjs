// Chat streaming end to end: the real eventcast binary streams completions from the fake model
// providers (tests/fakes) into BedrockChat/<userId>, and the official aws-amplify (6.22.1)
// `events` client, subscribed to BedrockChat/* over wss:// with certificate checks on, receives
// them.
//
//   this process:  fake Bedrock + fake OpenAI (in process, 127.0.0.1), eventcast (child process),
//                  POST /chat, GET /chat/<id>, POST /chat/<id>/cancel over https (trusting the
//                  server's generated certificate)
//   child process: chat-subscriber.mjs, Amplify subscribed to BedrockChat/* (and one exact
//                  channel); it reports every event it gets over IPC
//
// What each stream must look like (seq gapless from 0): start, delta..., then one end or error.
// Every check compares with what the fake recorded (expectedText, auth verdict, wire path...).
// Each test has a time limit of seconds; everything is stopped in after().
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer } from './server.mjs';
import { DEFAULT_CREDENTIALS, startFakeBedrock } from '../fakes/fake-bedrock.mjs';
import { DEFAULT_API_KEY as OPENAI_KEY, startFakeOpenAI } from '../fakes/fake-openai.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const subscriberScript = join(here, 'chat-subscriber.mjs');
const DEFAULT_MODEL = 'anthropic.claude-3-haiku-20240307-v1:0';
const WILDCARD = 'BedrockChat/*';

const uniq = (prefix) => `${prefix}-${randomBytes(4).toString('hex')}`;

// ---- helpers -----------------------------------------------------------------------------------

/** A temporary HOME (no ~/.aws files) and an environment without stray AWS_* or OpenAI keys. */
function serverEnv(home, extra = {}) {
    const env = { HOME: home, OPENAI_API_KEY: null, AWS_EC2_METADATA_DISABLED: 'true' };
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_') && !(k in env)) env[k] = null;
    return { ...env, ...extra };
}

const agent = new https.Agent({ keepAlive: true, maxSockets: 256 });
after(() => agent.destroy());

/** One HTTPS request to the server; resolves {status, headers, text, json}. */
function call(server, method, path, body, { timeoutMs = 10000, apiKey = server.apiKey } = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        const headers = { 'x-api-key': apiKey };
        if (data) {
            headers['content-type'] = 'application/json';
            headers['content-length'] = String(data.length);
        }
        const req = https.request(
            { host: 'localhost', family: 4, port: server.port, method, path, headers, ca: server.ca, agent },
            (res) => {
                const parts = [];
                res.on('data', (d) => parts.push(d));
                res.on('end', () => {
                    clearTimeout(timer);
                    const text = Buffer.concat(parts).toString('utf8');
                    let json;
                    try {
                        json = JSON.parse(text);
                    } catch {
                        json = undefined;
                    }
                    resolve({ status: res.statusCode, headers: res.headers, text, json });
                });
                res.on('error', reject);
            });
        const timer = setTimeout(
            () => req.destroy(new Error(`${method} ${path}: no complete answer within ${timeoutMs} ms`)),
            timeoutMs);
        req.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
        req.end(data);
    });
}

/** Starts chat-subscriber.mjs (Amplify) subscribed to `channels`; resolves once it is ready. */
async function startSubscriber(server, channels, readyTimeoutMs = 20000) {
    const env = {
        ...process.env,
        NODE_EXTRA_CA_CERTS: server.certPath,
        COMPAT_PORT: String(server.port),
        COMPAT_API_KEY: server.apiKey,
    };
    delete env.NODE_TLS_REJECT_UNAUTHORIZED; // certificate checks stay on
    const child = fork(subscriberScript, channels, { cwd: here, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const received = []; // {sub, event, at}
    const errors = [];
    const waiters = new Set();
    let exited = null;
    // A waiter is called with the new record, or with nothing on an error or exit.
    const wake = (rec) => { for (const w of [...waiters]) w(rec); };
    let onReady;
    const ready = new Promise((resolve, reject) => { onReady = { resolve, reject }; });
    child.on('message', (m) => {
        if (m?.type === 'event') {
            const rec = { sub: m.sub, event: m.event, at: Date.now() };
            received.push(rec);
            return wake(rec);
        }
        if (m?.type === 'error') errors.push(m);
        else if (m?.type === 'ready') onReady.resolve();
        else if (m?.type === 'fatal') onReady.reject(new Error(`subscriber failed: ${m.message}`));
        wake();
    });
    const exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => {
        exited = { code, signal };
        onReady.reject(new Error(`subscriber exited (${code ?? signal}) before it was ready:\n${output}`));
        wake();
        resolve();
    }));
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const stop = async () => {
        process.removeListener('exit', killOnExit);
        if (exited) return;
        if (child.connected) child.send('close');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitPromise;
        clearTimeout(timer);
    };
    const readyTimer = setTimeout(
        () => onReady.reject(new Error(`subscriber not ready within ${readyTimeoutMs} ms:\n${output}`)),
        readyTimeoutMs);
    try {
        await ready;
    } catch (e) {
        await stop();
        throw e;
    } finally {
        clearTimeout(readyTimer);
    }

    const self = {
        received,
        errors,
        output: () => output,
        stop,
        /** Resolves with the first received record matching pred (past or future). */
        waitFor(pred, timeoutMs, what) {
            return new Promise((resolve, reject) => {
                // Scans what came before once; after that, each new record only.
                const check = (rec) => {
                    const found = rec === undefined ? received.find(pred) : (pred(rec) ? rec : undefined);
                    if (found) {
                        done();
                        resolve(found);
                    } else if (errors.length || exited) {
                        done();
                        reject(new Error(`subscriber ${exited ? 'exited' : 'error'} while waiting for ${what}: ` +
                            `${JSON.stringify(errors)}\n${output}`));
                    }
                };
                const timer = setTimeout(() => {
                    done();
                    reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ` +
                        `${received.length} events received`));
                }, timeoutMs);
                const done = () => {
                    clearTimeout(timer);
                    waiters.delete(check);
                };
                waiters.add(check);
                check(undefined);
            });
        },
        /** The events of one stream that reached subscription `sub`, in arrival order. */
        stream(streamId, sub = WILDCARD) {
            return received.filter((r) => r.sub === sub && r.event?.streamId === streamId).map((r) => r.event);
        },
        /** Waits for the stream's end or error event; returns all its events. */
        async done(streamId, timeoutMs = 10000) {
            await self.waitFor((r) => r.sub === WILDCARD && r.event?.streamId === streamId &&
                (r.event.type === 'end' || r.event.type === 'error'), timeoutMs, `the end of stream ${streamId}`);
            return self.stream(streamId);
        },
    };
    return self;
}

/**
 * Checks the event sequence of one stream: seq 0..n-1 without gaps, start first, deltas with
 * non-empty text, exactly one end or error, last. Returns its parts and the concatenated text.
 */
function checkStream(evs, streamId) {
    const dump = () => JSON.stringify(evs, null, 1).slice(0, 4000);
    assert.ok(evs.length >= 2, `stream ${streamId}: only ${evs.length} events: ${dump()}`);
    assert.deepEqual(evs.map((e) => e.seq), evs.map((_, i) => i), `seq must be gapless from 0: ${dump()}`);
    for (const e of evs) assert.equal(e.streamId, streamId);
    assert.equal(evs[0].type, 'start', dump());
    const last = evs[evs.length - 1];
    assert.ok(last.type === 'end' || last.type === 'error', `last event is ${last.type}: ${dump()}`);
    const deltas = evs.slice(1, -1);
    for (const d of deltas) {
        assert.equal(d.type, 'delta', `between start and the end only deltas: ${dump()}`);
        assert.equal(typeof d.data, 'string');
        assert.ok(d.data.length > 0, 'a delta carries text');
    }
    return { start: evs[0], deltas, last, text: deltas.map((d) => d.data).join('') };
}

/** The fake's record of the request whose body contains `tag`, once the fake has closed it. */
async function record(fake, tag, { timeoutMs = 5000, closed = true } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const r = fake.requests().find((x) => typeof x.body === 'string' && x.body.includes(tag));
        if (r && r.status !== null && (!closed || !r.streamed || r.closedAt !== null)) return r;
        if (Date.now() > deadline)
            throw new Error(`the fake has no ${closed ? 'closed ' : ''}request containing ${tag} ` +
                `after ${timeoutMs} ms: ${JSON.stringify(r ?? null).slice(0, 2000)}`);
        await sleep(20);
    }
}

/** The chunks the fakes send by default: one per word, with the whitespace before it. */
const wordChunks = (text) => text.match(/\s*\S+/g);

/** Starts a stream that must be accepted; returns the 200 body. */
async function startChat(server, body) {
    const res = await call(server, 'POST', '/chat', body);
    assert.equal(res.status, 200, `POST /chat ${JSON.stringify(body)} -> ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.streamId, 'string', res.text);
    return res.json;
}

/**
 * Asserts that since `index` the subscriber got events of `streamId` only, i.e. a refused
 * POST /chat made before that stream published nothing. Call it after that stream has ended:
 * the broker delivers a channel's events in publish order.
 */
function assertOnlyStreamSince(sub, index, streamId, what) {
    const foreign = sub.received.slice(index).filter((r) => r.event?.streamId !== streamId);
    assert.deepEqual(foreign, [], `${what}: no events may come from a refused request`);
}

// ---- 1, 3, 4, 5, 6: one server with Bedrock (SigV4, static keys), OpenAI-compatible and demo ---

describe('chat over the official Amplify client: Bedrock (SigV4) and OpenAI-compatible fakes', { timeout: 180000 }, () => {
    let bedrock;
    let openai;
    let server;
    let sub;
    let home;

    before(async () => {
        home = mkdtempSync(join(tmpdir(), 'eventcast-chat-home-'));
        bedrock = await startFakeBedrock({});
        openai = await startFakeOpenAI({});
        server = await startServer({
            extraArgs: [
                '--chat-provider', 'bedrock',
                '--bedrock-endpoint', bedrock.url,
                '--bedrock-region', 'us-east-1',
                '--openai-base-url', openai.url,
                '--openai-model', 'gpt-fake-1',
                '--chat-idle-timeout-ms', '1500',
                '--chat-connect-timeout-ms', '3000',
                // every provider chunk becomes its own delta, so deltas can be compared one by one
                '--chat-coalesce-ms', '0',
            ],
            env: serverEnv(home, {
                AWS_ACCESS_KEY_ID: DEFAULT_CREDENTIALS.accessKeyId,
                AWS_SECRET_ACCESS_KEY: DEFAULT_CREDENTIALS.secretAccessKey,
                EVENTCAST_OPENAI_API_KEY: OPENAI_KEY,
            }),
        });
        sub = await startSubscriber(server, [WILDCARD, 'BedrockChat/alice']);
    });

    after(async () => {
        await sub?.stop();
        await server?.stop();
        await bedrock?.close();
        await openai?.close();
        if (home) rmSync(home, { recursive: true, force: true });
    });

    const failWith = (e) => {
        // Attach what the server said: the assertion alone rarely explains a server-side failure.
        e.message += `\n--- server output ---\n${server?.output().slice(-3000) ?? ''}`;
        throw e;
    };

    test('1. Bedrock: start, every delta and end reach BedrockChat/*; text, seq, usage and SigV4 match the fake', { timeout: 20000 }, async () => {
        try {
            const tag = uniq('t1');
            const prompt = `[[happy inputTokens=21 outputTokens=8]] Hello from Amplify ${tag}: héllo wörld ✓ 🎉 done`;
            const ok = await startChat(server, { userId: 'alice', prompt, maxTokens: 100 });
            assert.equal(ok.channel, '/BedrockChat/alice');
            assert.equal(ok.provider, 'bedrock');
            assert.equal(ok.model, DEFAULT_MODEL);
            const evs = await sub.done(ok.streamId);
            const s = checkStream(evs, ok.streamId);
            const rec = await record(bedrock, tag);

            assert.equal(rec.expectedText, `Echo: Hello from Amplify ${tag}: héllo wörld ✓ 🎉 done`);
            assert.equal(s.text, rec.expectedText, 'concatenated deltas = the fake\'s text, byte for byte');
            assert.deepEqual(s.deltas.map((d) => d.data), wordChunks(rec.expectedText),
                'one delta per contentBlockDelta (--chat-coalesce-ms 0)');
            assert.equal(s.deltas.length, rec.deltasSent);
            assert.deepEqual(s.start, { type: 'start', streamId: ok.streamId, seq: 0, model: DEFAULT_MODEL, provider: 'bedrock' });
            assert.deepEqual(s.last, {
                type: 'end', streamId: ok.streamId, seq: evs.length - 1, stopReason: 'end_turn',
                usage: { inputTokens: 21, outputTokens: 8 },
            });
            // The exact subscription got the same events as the wildcard one (each subscription
            // has its own data frames, so its end may come a moment later).
            await sub.waitFor((r) => r.sub === 'BedrockChat/alice' && r.event?.streamId === ok.streamId &&
                r.event.type === 'end', 5000, 'the end on BedrockChat/alice');
            assert.deepEqual(sub.stream(ok.streamId, 'BedrockChat/alice'), evs);

            // What the fake received: a valid SigV4 signature for service bedrock, %3A in the path.
            assert.equal(rec.status, 200);
            assert.equal(rec.completed, true);
            assert.equal(rec.operation, 'ConverseStream');
            assert.equal(rec.modelId, DEFAULT_MODEL);
            assert.equal(rec.path, '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream');
            assert.equal(rec.auth.scheme, 'sigv4');
            assert.equal(rec.auth.verdict, 'ok', rec.auth.message);
            assert.equal(rec.auth.accessKeyId, DEFAULT_CREDENTIALS.accessKeyId);
            assert.match(rec.auth.credentialScope, /^\d{8}\/us-east-1\/bedrock\/aws4_request$/);
            assert.equal(rec.auth.authorizationExact, true, 'Authorization equals what @smithy/signature-v4 produces');
            assert.equal(rec.auth.tokenPresent, false);
            assert.ok(rec.auth.canonicalRequest.startsWith(
                'POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse-stream\n'), rec.auth.canonicalRequest);
            assert.deepEqual(rec.bodyJson.inferenceConfig, { maxTokens: 100 });
            assert.deepEqual(rec.bodyJson.messages, [{ role: 'user', content: [{ text: prompt }] }]);

            const st = await call(server, 'GET', `/chat/${ok.streamId}`);
            assert.equal(st.status, 200, st.text);
            assert.equal(st.json.status, 'completed');
            assert.equal(st.json.text, rec.expectedText);
            assert.equal(st.json.stopReason, 'end_turn');
            assert.equal(st.json.seq, evs.length - 1);
        } catch (e) { failWith(e); }
    });

    test('1b. Bedrock: an inference-profile ARN is one percent-encoded path label (%3A, %2F) and signs', { timeout: 20000 }, async () => {
        try {
            const tag = uniq('t1b');
            const model = 'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0';
            const ok = await startChat(server, { userId: 'bob', prompt: `ARN model ${tag}`, model });
            assert.equal(ok.model, model);
            const s = checkStream(await sub.done(ok.streamId), ok.streamId);
            const rec = await record(bedrock, tag);
            assert.equal(rec.path, '/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F' +
                'us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream');
            assert.equal(rec.modelId, model);
            assert.equal(rec.auth.verdict, 'ok', rec.auth.message);
            assert.equal(s.start.model, model);
            assert.equal(s.text, rec.expectedText);
            assert.equal(s.last.type, 'end');
            assert.equal(s.last.stopReason, 'end_turn');
        } catch (e) { failWith(e); }
    });

    test('1c. Bedrock: maxTokens below the answer length ends with stopReason max_tokens', { timeout: 20000 }, async () => {
        try {
            const tag = uniq('t1c');
            const ok = await startChat(server, { userId: 'bob', prompt: `one two three four five ${tag}`, maxTokens: 3 });
            const s = checkStream(await sub.done(ok.streamId), ok.streamId);
            const rec = await record(bedrock, tag);
            assert.equal(rec.expectedText, 'Echo: one two');
            assert.equal(s.text, rec.expectedText);
            assert.equal(s.last.type, 'end');
            assert.equal(s.last.stopReason, 'max_tokens');
            assert.equal(s.last.usage.outputTokens, 3);
        } catch (e) { failWith(e); }
    });

    test('3a. Bedrock throttling before the stream: POST /chat answers 429 and publishes nothing; other refusals 502/400', { timeout: 20000 }, async () => {
        try {
            const from = sub.received.length;
            const tag = uniq('t3a');
            const res = await call(server, 'POST', '/chat', { userId: 'carol', prompt: `[[throttle]] ${tag}` });
            assert.equal(res.status, 429, res.text);
            assert.equal(res.headers['x-amzn-errortype'], 'ThrottlingException');
            assert.equal(res.json.errors[0].errorType, 'ThrottlingException');
            assert.match(res.json.errors[0].message, /Too many requests/);
            assert.equal((await record(bedrock, tag)).status, 429);

            const denied = await call(server, 'POST', '/chat', { userId: 'carol', prompt: `[[access-denied]] ${uniq('t3a')}` });
            assert.equal(denied.status, 502, denied.text);
            assert.equal(denied.json.errors[0].errorType, 'AccessDeniedException');
            const invalid = await call(server, 'POST', '/chat', { userId: 'carol', prompt: `[[validation]] ${uniq('t3a')}` });
            assert.equal(invalid.status, 400, invalid.text);
            assert.equal(invalid.json.errors[0].errorType, 'ValidationException');

            // A stream started afterwards is the only thing the subscriber sees.
            const marker = await startChat(server, { userId: 'carol', prompt: `marker ${uniq('t3a')}` });
            checkStream(await sub.done(marker.streamId), marker.streamId);
            assertOnlyStreamSince(sub, from, marker.streamId, 'refused Bedrock requests');
        } catch (e) { failWith(e); }
    });

    test('3b. Bedrock exception mid-stream: deltas, then an error event with the exception type', { timeout: 20000 }, async () => {
        try {
            for (const [directive, type, message] of [
                ['exception-mid-stream deltas=3', 'ModelStreamErrorException', 'The model stream encountered an error.'],
                ['exception-mid-stream deltas=2 exceptionType=throttlingException', 'ThrottlingException',
                    'Too many requests, please wait before trying again.'],
            ]) {
                const tag = uniq('t3b');
                const ok = await startChat(server, { userId: 'dave', prompt: `[[${directive}]] a b c d e f ${tag}` });
                const s = checkStream(await sub.done(ok.streamId), ok.streamId);
                const rec = await record(bedrock, tag);
                const sent = wordChunks(rec.expectedText).slice(0, rec.deltasSent);
                assert.ok(rec.deltasSent >= 2);
                assert.deepEqual(s.deltas.map((d) => d.data), sent, 'the deltas sent before the exception');
                assert.deepEqual(s.last, {
                    type: 'error', streamId: ok.streamId, seq: s.deltas.length + 1, errorType: type, message,
                });
                const st = await call(server, 'GET', `/chat/${ok.streamId}`);
                assert.equal(st.json.status, 'failed');
                assert.equal(st.json.error.errorType, type);
                assert.equal(st.json.text, sent.join(''));
            }
        } catch (e) { failWith(e); }
    });

    test('3c. Bedrock connection dropped mid-stream (also inside a frame): an error event after the deltas', { timeout: 20000 }, async () => {
        try {
            for (const directive of ['drop deltas=2', 'drop deltas=3 partial=true']) {
                const tag = uniq('t3c');
                const t0 = Date.now();
                const ok = await startChat(server, { userId: 'erin', prompt: `[[${directive}]] a b c d e f ${tag}` });
                const s = checkStream(await sub.done(ok.streamId, 8000), ok.streamId);
                const rec = await record(bedrock, tag);
                assert.equal(rec.serverDropped, true);
                assert.equal(s.text, wordChunks(rec.expectedText).slice(0, rec.deltasSent).join(''));
                assert.equal(s.last.type, 'error', JSON.stringify(s.last));
                assert.ok(s.last.errorType, 'the error event has an errorType');
                assert.ok(s.last.message, 'the error event has a message');
                assert.ok(Date.now() - t0 < 5000, 'a dropped connection is noticed at once, not by a timeout');
            }
        } catch (e) { failWith(e); }
    });

    test('3d. Bedrock body ending without messageStop, and a frame with a bad CRC: error events', { timeout: 20000 }, async () => {
        try {
            for (const [directive, errorType] of [['truncate deltas=2', 'TruncatedStream'], ['corrupt deltas=2', 'ProviderProtocolError']]) {
                const tag = uniq('t3d');
                const ok = await startChat(server, { userId: 'erin', prompt: `[[${directive}]] a b c d ${tag}` });
                const s = checkStream(await sub.done(ok.streamId), ok.streamId);
                const rec = await record(bedrock, tag);
                assert.equal(s.text, wordChunks(rec.expectedText).slice(0, 2).join(''), directive);
                assert.equal(s.last.type, 'error', `${directive}: ${JSON.stringify(s.last)}`);
                assert.equal(s.last.errorType, errorType, `${directive}: ${JSON.stringify(s.last)}`);
            }
        } catch (e) { failWith(e); }
    });

    test('3e. Bedrock stall: an error event once --chat-idle-timeout-ms (1500) passes; the fake sees the abort', { timeout: 20000 }, async () => {
        try {
            const tag = uniq('t3e');
            const ok = await startChat(server, { userId: 'frank', prompt: `[[stall deltas=2]] a b c d ${tag}` });
            const evs = await sub.done(ok.streamId, 12000);
            const s = checkStream(evs, ok.streamId);
            const lastDeltaAt = sub.received.filter((r) => r.event?.streamId === ok.streamId && r.event.type === 'delta').at(-1)?.at;
            const errorAt = sub.received.find((r) => r.event?.streamId === ok.streamId && r.event.type === 'error')?.at;
            assert.equal(s.deltas.length, 2);
            assert.equal(s.last.type, 'error');
            assert.ok(s.last.errorType, JSON.stringify(s.last));
            const idle = errorAt - lastDeltaAt;
            // Measured at the subscriber: both events took the same path, so the gap is the
            // server's idle time give or take scheduling.
            assert.ok(idle >= 1300 && idle <= 3500, `error ${idle} ms after the last delta; idle timeout is 1500 ms`);
            assert.equal(s.last.errorType, 'Timeout');
            const rec = await record(bedrock, tag);
            assert.equal(rec.stalled, true);
            assert.equal(rec.clientAborted, true, 'eventcast closed the stalled connection');
            console.log(`# stall: ${s.last.errorType} "${s.last.message}" ${idle} ms after the last delta`);
        } catch (e) { failWith(e); }
    });

    test('4. cancel stops a long stream: end with stopReason cancelled; the fake records the aborted transfer', { timeout: 20000 }, async () => {
        try {
            const tag = uniq('t4');
            const ok = await startChat(server, { userId: 'gina', prompt: `[[happy long=400 delayMs=20]] ${tag}` });
            await sub.waitFor((r) => r.event?.streamId === ok.streamId && r.event.type === 'delta' && r.event.seq >= 5,
                5000, 'five deltas');
            const c = await call(server, 'POST', `/chat/${ok.streamId}/cancel`);
            assert.equal(c.status, 202, c.text);
            assert.equal(c.json.streamId, ok.streamId);
            const t0 = Date.now();
            const s = checkStream(await sub.done(ok.streamId, 5000), ok.streamId);
            assert.ok(Date.now() - t0 < 3000, 'the end follows the cancel promptly');
            assert.equal(s.last.type, 'end');
            assert.equal(s.last.stopReason, 'cancelled');
            const rec = await record(bedrock, tag);
            assert.ok(rec.expectedText.startsWith(s.text), 'what was streamed is a prefix of the answer');
            assert.ok(s.text.length < rec.expectedText.length, 'the stream was cut short');
            assert.equal(rec.clientAborted, true, 'the fake saw eventcast abort the transfer');
            assert.equal(rec.completed, false);
            assert.ok(rec.deltasSent < 400);
            const st = await call(server, 'GET', `/chat/${ok.streamId}`);
            assert.equal(st.json.status, 'cancelled');
            assert.equal(st.json.stopReason, 'cancelled');
            assert.equal(st.json.text, s.text);
            // Nothing follows the end, and an unknown stream cannot be cancelled.
            await sleep(200);
            assert.equal(sub.stream(ok.streamId).length, s.deltas.length + 2, 'no events after the end');
            const unknown = await call(server, 'POST', '/chat/s-doesnotexist/cancel');
            assert.equal(unknown.status, 404, unknown.text);
        } catch (e) { failWith(e); }
    });

    test('5a. OpenAI-compatible: odd byte splits and CRLF; text equals expectedText; the fake saw the Bearer key', { timeout: 20000 }, async () => {
        try {
            const tag = uniq('t5a');
            const prompt = `[[happy split=true lineEnding=crlf inputTokens=11 outputTokens=7]] Ünïcødé split ✓ 🎉 at odd bytes ${tag}`;
            const ok = await startChat(server, { userId: 'hank', prompt, provider: 'openai', maxTokens: 50 });
            assert.equal(ok.provider, 'openai');
            assert.equal(ok.model, 'gpt-fake-1');
            const s = checkStream(await sub.done(ok.streamId), ok.streamId);
            const rec = await record(openai, tag);
            assert.equal(rec.scenario.split, true);
            assert.equal(rec.scenario.lineEnding, 'crlf');
            assert.equal(rec.expectedText, `Echo: Ünïcødé split ✓ 🎉 at odd bytes ${tag}`);
            assert.equal(s.text, rec.expectedText);
            assert.deepEqual(s.deltas.map((d) => d.data), wordChunks(rec.expectedText));
            assert.deepEqual(s.start, { type: 'start', streamId: ok.streamId, seq: 0, model: 'gpt-fake-1', provider: 'openai' });
            assert.deepEqual(s.last, {
                type: 'end', streamId: ok.streamId, seq: s.deltas.length + 1, stopReason: 'stop',
                usage: { inputTokens: 11, outputTokens: 7 },
            });
            assert.equal(rec.completed, true);
            assert.equal(rec.path, '/v1/chat/completions');
            assert.deepEqual(rec.auth, { scheme: 'bearer', verdict: 'ok' });
            assert.equal(rec.headers.authorization, 'Bearer <redacted>');
            assert.equal(rec.model, 'gpt-fake-1');
            assert.equal(rec.bodyJson.stream, true);
            assert.equal(rec.bodyJson.max_tokens, 50);
        } catch (e) { failWith(e); }
    });

    test('5b. OpenAI-compatible HTTP errors before the stream: 429 -> 429, 500 -> 502, nothing published', { timeout: 20000 }, async () => {
        try {
            const from = sub.received.length;
            const limited = await call(server, 'POST', '/chat', { userId: 'ivy', provider: 'openai', prompt: `[[rate-limit]] ${uniq('t5b')}` });
            assert.equal(limited.status, 429, limited.text);
            assert.equal(limited.json.errors[0].errorType, 'ThrottlingException');
            const broken = await call(server, 'POST', '/chat', { userId: 'ivy', provider: 'openai', prompt: `[[server]] ${uniq('t5b')}` });
            assert.equal(broken.status, 502, broken.text);
            assert.ok(broken.json.errors[0].errorType);
            const marker = await startChat(server, { userId: 'ivy', provider: 'openai', prompt: `marker ${uniq('t5b')}` });
            checkStream(await sub.done(marker.streamId), marker.streamId);
            assertOnlyStreamSince(sub, from, marker.streamId, 'refused OpenAI requests');
        } catch (e) { failWith(e); }
    });

    test('5c. OpenAI-compatible failures mid-stream: error chunk, llama.cpp error field, dropped connection -> error events', { timeout: 20000 }, async () => {
        try {
            for (const [directive, errorType] of [
                ['error-mid-stream deltas=2', 'server_error'],
                ['llama-error deltas=2', null],
                ['drop deltas=2', null],
            ]) {
                const tag = uniq('t5c');
                const ok = await startChat(server, { userId: 'jack', provider: 'openai', prompt: `[[${directive}]] a b c d ${tag}` });
                const s = checkStream(await sub.done(ok.streamId), ok.streamId);
                const rec = await record(openai, tag);
                assert.equal(s.text, wordChunks(rec.expectedText).slice(0, 2).join(''), directive);
                assert.equal(s.last.type, 'error', `${directive}: ${JSON.stringify(s.last)}`);
                assert.ok(s.last.errorType && s.last.message, `${directive}: ${JSON.stringify(s.last)}`);
                if (errorType) assert.equal(s.last.errorType, errorType);
                if (directive.startsWith('error-mid-stream') || directive.startsWith('llama-error'))
                    assert.match(s.last.message, /The server had an error while processing your request/);
            }
        } catch (e) { failWith(e); }
    });

    test('5d. OpenAI-compatible body that ends after finish_reason and usage but without data: [DONE] is complete (spec 6.2)', { timeout: 20000 }, async () => {
        try {
            // spec/model-providers.md 6.2: only EOF without [DONE] *and* without a finish_reason
            // is a truncated stream. missing-done sends the finish chunk and the usage chunk.
            const tag = uniq('t5d');
            const ok = await startChat(server, { userId: 'jack', provider: 'openai', prompt: `[[missing-done]] a b c ${tag}` });
            const s = checkStream(await sub.done(ok.streamId), ok.streamId);
            const rec = await record(openai, tag);
            assert.equal(rec.completed, true, 'the fake ended the body (without [DONE])');
            assert.equal(s.text, rec.expectedText);
            assert.equal(s.last.type, 'end', JSON.stringify(s.last));
            assert.equal(s.last.stopReason, 'stop');
            assert.deepEqual(s.last.usage, { inputTokens: 4, outputTokens: wordChunks(rec.expectedText).length });
        } catch (e) { failWith(e); }
    });

    test('6. 200 concurrent streams (200 users, all open at once): every text complete, seq gapless, all end', { timeout: 60000 }, async () => {
        try {
            const N = 200;
            const tag = uniq('t6');
            const from = bedrock.requests().length ? bedrock.requests().at(-1).id : 0;
            // 7 chunks 150 ms apart: each stream lasts about 1 s, longer than it takes to start
            // all 200, so they really run at the same time (checked below).
            const bodies = Array.from({ length: N }, (_, i) => ({
                userId: `load-${i}`,
                prompt: `[[happy delayMs=150]] stream ${i} of ${tag} alpha beta gamma`,
            }));
            const t0 = Date.now();
            const answers = await Promise.all(bodies.map((b) => call(server, 'POST', '/chat', b, { timeoutMs: 20000 })));
            const postsMs = Date.now() - t0;
            const refused = answers.filter((a) => a.status !== 200);
            assert.deepEqual(refused.map((a) => `${a.status} ${a.text}`), [], 'every POST /chat is accepted');
            const ids = answers.map((a) => a.json.streamId);
            assert.equal(new Set(ids).size, N, 'distinct stream ids');
            await Promise.all(ids.map((id) => sub.done(id, 40000)));
            const elapsed = Date.now() - t0;

            const recs = bedrock.requests().filter((r) => r.id > from && r.body?.includes(tag));
            assert.equal(recs.length, N);
            const byPrompt = new Map(recs.map((r) => [r.prompt, r]));
            for (let i = 0; i < N; i++) {
                assert.equal(answers[i].json.channel, `/BedrockChat/load-${i}`);
                const s = checkStream(sub.stream(ids[i]), ids[i]);
                const rec = byPrompt.get(`stream ${i} of ${tag} alpha beta gamma`);
                assert.ok(rec, `the fake got stream ${i}`);
                assert.equal(rec.auth.verdict, 'ok');
                assert.equal(s.text, rec.expectedText, `stream ${i}`);
                assert.equal(s.last.type, 'end', `stream ${i}: ${JSON.stringify(s.last)}`);
                assert.equal(s.last.stopReason, 'end_turn');
                assert.equal(s.last.usage.outputTokens, wordChunks(rec.expectedText).length);
            }
            // They ran at the same time: the most provider streams the fake had open at once.
            const marks = recs.flatMap((r) => [[Date.parse(r.time), 1], [r.closedAt, -1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
            let open = 0;
            let peak = 0;
            for (const [, d] of marks) peak = Math.max(peak, (open += d));
            const arrivals = recs.map((r) => Date.parse(r.time));
            const durs = recs.map((r) => r.closedAt - Date.parse(r.time)).sort((a, b) => a - b);
            console.log(`# 200 streams: at most ${peak} provider streams open at once; POSTs answered in ${postsMs} ms; ` +
                `arrivals spread ${Math.max(...arrivals) - Math.min(...arrivals)} ms; fake stream time median ${durs[100]} max ${durs[199]} ms`);
            assert.ok(peak >= 100, `only ${peak} provider streams were open at once`);
            const total = ids.reduce((n, id) => n + sub.stream(id).length, 0);
            console.log(`# 200 streams: ${total} events to the Amplify subscriber in ${elapsed} ms`);
        } catch (e) { failWith(e); }
    });

    test('nothing hangs: no stream left running, no provider connection left open', { timeout: 15000 }, async () => {
        try {
            const deadline = Date.now() + 5000;
            while ((bedrock.stats().openStreams || openai.stats().openStreams) && Date.now() < deadline) await sleep(50);
            assert.equal(bedrock.stats().openStreams, 0, JSON.stringify(bedrock.stats()));
            assert.equal(openai.stats().openStreams, 0, JSON.stringify(openai.stats()));
            assert.deepEqual(sub.errors, []);
            const m = await call(server, 'GET', '/metrics');
            if (m.status === 200) assert.match(m.text, /^eventcast_chat_streams_active 0$/m);
        } catch (e) { failWith(e); }
    });
});

// ---- 2: Bedrock with a session token, and with a bearer token ----------------------------------

describe('chat over the official Amplify client: Bedrock session token and bearer token', { timeout: 120000 }, () => {
    const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLE/session+token=with/odd+chars==';
    const BEARER = 'ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLXRlc3QtdG9rZW4=';
    let bedrock;
    const stacks = [];
    let home;

    before(async () => {
        home = mkdtempSync(join(tmpdir(), 'eventcast-chat-home-'));
        bedrock = await startFakeBedrock({ sessionToken: SESSION_TOKEN, bearerToken: BEARER });
    });

    after(async () => {
        for (const s of stacks) {
            await s.sub?.stop();
            await s.server?.stop();
        }
        await bedrock?.close();
        if (home) rmSync(home, { recursive: true, force: true });
    });

    const bedrockArgs = () => ['--chat-provider', 'bedrock', '--bedrock-endpoint', bedrock.url,
        '--bedrock-region', 'us-east-1', '--chat-idle-timeout-ms', '5000'];

    /** Starts a server with `env` and a subscriber; streams one answer; returns it and the record. */
    async function oneStream(env, label) {
        const stack = {};
        stacks.push(stack);
        stack.server = await startServer({ extraArgs: bedrockArgs(), env: serverEnv(home, env) });
        try {
            stack.sub = await startSubscriber(stack.server, [WILDCARD]);
            const tag = uniq(label);
            const ok = await startChat(stack.server, { userId: 'kim', prompt: `[[happy delayMs=5]] token test ${tag} x y z` });
            const s = checkStream(await stack.sub.done(ok.streamId), ok.streamId);
            const rec = await record(bedrock, tag);
            assert.equal(s.text, rec.expectedText);
            assert.equal(s.last.type, 'end', JSON.stringify(s.last));
            assert.equal(s.last.stopReason, 'end_turn');
            return { s, rec };
        } catch (e) {
            e.message += `\n--- server output ---\n${stack.server.output().slice(-3000)}`;
            throw e;
        }
    }

    test('2a. AWS_SESSION_TOKEN: X-Amz-Security-Token sent and signed; the fake accepts the signature', { timeout: 30000 }, async () => {
        const { rec } = await oneStream({
            AWS_ACCESS_KEY_ID: DEFAULT_CREDENTIALS.accessKeyId,
            AWS_SECRET_ACCESS_KEY: DEFAULT_CREDENTIALS.secretAccessKey,
            AWS_SESSION_TOKEN: SESSION_TOKEN,
        }, 't2a');
        assert.equal(rec.auth.scheme, 'sigv4');
        assert.equal(rec.auth.verdict, 'ok', rec.auth.message);
        assert.equal(rec.auth.tokenPresent, true);
        assert.equal(rec.auth.tokenSigned, true);
        assert.equal(rec.auth.authorizationExact, true);
        assert.equal(rec.headers['x-amz-security-token'], '<redacted>');
    });

    test('2b. AWS_BEARER_TOKEN_BEDROCK: Authorization: Bearer; the fake accepts it', { timeout: 30000 }, async () => {
        const { rec } = await oneStream({ AWS_BEARER_TOKEN_BEDROCK: BEARER }, 't2b');
        assert.equal(rec.auth.scheme, 'bearer');
        assert.equal(rec.auth.verdict, 'ok', rec.auth.message);
        assert.equal(rec.headers.authorization, 'Bearer <redacted>');
        assert.equal(rec.headers['x-amz-security-token'], undefined);
    });

    test('2c. a wrong session token is refused by the fake: POST /chat answers 502, nothing streams', { timeout: 30000 }, async () => {
        const stack = {};
        stacks.push(stack);
        stack.server = await startServer({
            extraArgs: bedrockArgs(),
            env: serverEnv(home, {
                AWS_ACCESS_KEY_ID: DEFAULT_CREDENTIALS.accessKeyId,
                AWS_SECRET_ACCESS_KEY: DEFAULT_CREDENTIALS.secretAccessKey,
                AWS_SESSION_TOKEN: 'not-the-token',
            }),
        });
        const tag = uniq('t2c');
        const res = await call(stack.server, 'POST', '/chat', { userId: 'kim', prompt: `refused ${tag}` });
        assert.equal(res.status, 502, res.text);
        assert.equal(res.json.errors[0].errorType, 'UnrecognizedClientException');
        const rec = await record(bedrock, tag);
        assert.equal(rec.auth.verdict, 'UnrecognizedClientException');
        assert.equal(rec.status, 403);
    });
});

// ---- 7: resume (docs/protocol.md, "History and resume") ------------------------------------------
//
// Amplify cannot send the `resume` extension (it builds `subscribe` from a fixed set of fields)
// nor see a data frame's `position` (it reads only id, type and event), so the live part runs on
// Amplify and the resume on a raw `ws` client, as a browser app would do it after a reconnect.

/** A raw wss client for BedrockChat/<user>: queues every data frame (position and parsed event). */
async function rawSubscribe(server, channel, resumeAfter) {
    const { default: WS } = await import('ws');
    const auth = { host: `localhost:${server.port}`, 'x-api-key': server.apiKey };
    const header = Buffer.from(JSON.stringify(auth)).toString('base64url');
    const ws = new WS(server.wssUrl, ['aws-appsync-event-ws', `header-${header}`], { ca: server.ca });
    const frames = [];
    const waiters = new Set();
    ws.on('message', (data) => {
        frames.push(JSON.parse(data.toString('utf8')));
        for (const w of [...waiters]) w();
    });
    ws.on('error', () => {});
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const msg = { type: 'subscribe', id: 'r1', channel, authorization: { 'x-api-key': server.apiKey } };
    if (resumeAfter !== undefined) msg.resume = { after: resumeAfter };
    ws.send(JSON.stringify(msg));
    const self = {
        ws,
        frames,
        data: () => frames.filter((f) => f.type === 'data').map((f) => ({ position: f.position, event: JSON.parse(f.event) })),
        waitFor(pred, timeoutMs, what) {
            return new Promise((resolve, reject) => {
                const check = () => {
                    const found = frames.find(pred);
                    if (!found) return;
                    done();
                    resolve(found);
                };
                const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(frames).slice(0, 2000)}`)); }, timeoutMs);
                const done = () => { clearTimeout(timer); waiters.delete(check); };
                waiters.add(check);
                check();
            });
        },
    };
    await self.waitFor((f) => f.type === 'subscribe_success' || f.type === 'subscribe_error', 5000, 'the subscribe answer');
    return self;
}

const seqOf = (position) => BigInt(position.split('-')[1]);

describe('chat resume: a client that drops mid-answer resubscribes with resume and recovers every delta', { timeout: 60000 }, () => {
    let server;
    let sub;
    let home;

    before(async () => {
        home = mkdtempSync(join(tmpdir(), 'eventcast-chat-home-'));
        // The demo model at 20 ms a word, 100 words: the answer takes about 2 s.
        server = await startServer({
            extraArgs: ['--chat-provider', 'demo', '--demo-pace-ms', '20', '--chat-coalesce-ms', '0'],
            env: serverEnv(home),
        });
        sub = await startSubscriber(server, [WILDCARD]);
    });

    after(async () => {
        await sub?.stop();
        await server?.stop();
        if (home) rmSync(home, { recursive: true, force: true });
    });

    test('7a. Amplify drops mid-answer; a resume after resumeAfter gives the rest: seq gapless, text complete', { timeout: 30000 }, async () => {
        const user = uniq('rena');
        const started = await startChat(server, { userId: user, prompt: 'tell me how resume works', maxTokens: 100 });
        assert.match(started.resumeAfter, /^[0-9a-f]{8}-\d+$/, JSON.stringify(started));
        // The live part on Amplify: the start and a few deltas, then the client goes away.
        await sub.waitFor((r) => r.event?.streamId === started.streamId && r.event.seq >= 3, 10000, 'a few deltas');
        await sub.stop();
        const live = sub.stream(started.streamId);
        const mid = await call(server, 'GET', `/chat/${started.streamId}`);
        assert.equal(mid.json.status, 'streaming', 'the client left mid-answer');
        assert.equal(mid.json.resumeAfter, started.resumeAfter);
        assert.equal(seqOf(mid.json.startPosition), seqOf(started.resumeAfter) + 1n);

        // Reconnect: resume after the position before the stream's start, skip what was seen.
        const again = await rawSubscribe(server, `BedrockChat/${user}`, started.resumeAfter);
        assert.equal(again.frames[0].type, 'subscribe_success', JSON.stringify(again.frames[0]));
        await again.waitFor((f) => f.type === 'data' && ['end', 'error'].includes(JSON.parse(f.event).type), 15000, 'the end of the stream');
        again.ws.terminate();
        const lastSeen = live[live.length - 1].seq;
        const resumed = again.data().map((d) => d.event).filter((e) => e.streamId === started.streamId);
        assert.deepEqual(resumed.slice(0, live.length), live, 'the replay starts with what Amplify saw, identical');
        const { text, last } = checkStream([...live, ...resumed.filter((e) => e.seq > lastSeen)], started.streamId);
        assert.equal(last.type, 'end');
        const final = await call(server, 'GET', `/chat/${started.streamId}`);
        assert.equal(final.json.status, 'completed');
        assert.equal(text, final.json.text);
    });

    test('7b. a raw client drops mid-answer and resumes after the last position it saw: nothing missing, nothing twice', { timeout: 30000 }, async () => {
        const user = uniq('ravi');
        const first = await rawSubscribe(server, `BedrockChat/${user}`);
        const started = await startChat(server, { userId: user, prompt: 'and with positions?', maxTokens: 100 });
        await first.waitFor((f) => f.type === 'data' && JSON.parse(f.event).seq >= 4, 10000, 'a few deltas');
        first.ws.terminate(); // the connection is lost, no close handshake
        const seen = first.data();
        const lastPosition = seen[seen.length - 1].position;
        await sleep(300); // events keep coming meanwhile
        const again = await rawSubscribe(server, `BedrockChat/${user}`, lastPosition);
        assert.equal(again.frames[0].type, 'subscribe_success', JSON.stringify(again.frames[0]));
        await again.waitFor((f) => f.type === 'data' && JSON.parse(f.event).type === 'end', 15000, 'the end of the stream');
        again.ws.terminate();
        const all = [...seen, ...again.data()];
        for (let i = 1; i < all.length; i++)
            assert.equal(seqOf(all[i].position), seqOf(all[i - 1].position) + 1n, `positions consecutive at ${i}`);
        const { text } = checkStream(all.map((d) => d.event), started.streamId);
        const final = await call(server, 'GET', `/chat/${started.streamId}`);
        assert.equal(text, final.json.text);
    });

    test('7c. a position from another server run gets ResumeWindowExceeded, a malformed one InvalidInputError; the connection stays', { timeout: 30000 }, async () => {
        const user = uniq('rolf');
        const r = await rawSubscribe(server, `BedrockChat/${user}`);
        const started = await startChat(server, { userId: user, prompt: 'short', maxTokens: 3, wait: true });
        assert.equal(started.status, 'completed');
        const epoch = started.resumeAfter.split('-')[0];
        const other = epoch === '00000001' ? '00000002' : '00000001';
        r.ws.send(JSON.stringify({ type: 'subscribe', id: 'old', channel: `BedrockChat/${user}`,
            authorization: { 'x-api-key': server.apiKey }, resume: { after: `${other}-1` } }));
        const err = await r.waitFor((f) => f.id === 'old', 5000, 'the answer to the stale resume');
        assert.equal(err.type, 'subscribe_error');
        assert.equal(err.errors[0].errorType, 'ResumeWindowExceeded');
        assert.match(err.errors[0].message, /another run of the server/);
        r.ws.send(JSON.stringify({ type: 'subscribe', id: 'junk', channel: `BedrockChat/${user}`,
            authorization: { 'x-api-key': server.apiKey }, resume: { after: 'yesterday' } }));
        const junk = await r.waitFor((f) => f.id === 'junk', 5000, 'the answer to the malformed resume');
        assert.equal(junk.type, 'subscribe_error');
        assert.equal(junk.errors[0].errorType, 'InvalidInputError');
        r.ws.terminate();
    });
});
