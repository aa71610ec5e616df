// The official aws-amplify (6.22.1) `events` client against the real eventcast binary, over TLS.
//
// Each test runs one scenario of amplify-client.mjs in a child Node process whose
// NODE_EXTRA_CA_CERTS names the server's self-signed certificate (Node reads that variable only
// at start-up, and Amplify always uses wss:// and https://). See amplify-client.mjs for what
// each scenario does and asserts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const clientScript = join(here, 'amplify-client.mjs');

let server;

before(async () => {
    server = await startServer();
});

after(async () => {
    await server?.stop();
});

/** Runs one scenario in a fresh Node process; rejects with its output if it fails. */
function runScenario(name, timeoutMs = 30000, target = server) {
    return new Promise((resolve, reject) => {
        const env = {
            ...process.env,
            NODE_EXTRA_CA_CERTS: target.certPath,
            COMPAT_PORT: String(target.port),
            COMPAT_API_KEY: target.apiKey,
        };
        // Never let a caller's setting switch certificate checks off for the child.
        delete env.NODE_TLS_REJECT_UNAUTHORIZED;
        const child = spawn(process.execPath, [clientScript, name], {
            cwd: here,
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { out += d; });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.once('error', (e) => { clearTimeout(timer); reject(e); });
        child.once('exit', (code, signal) => {
            clearTimeout(timer);
            if (code === 0) return resolve(out);
            reject(new Error(`scenario '${name}' failed (exit ${code ?? signal}):\n${out}` +
                `\n--- server output ---\n${target.output().slice(-4000)}`));
        });
    });
}

describe('aws-amplify events client (wss/https)', { timeout: 120000 }, () => {
    const cases = [
        ['connect, subscribe, channel.publish 1 event over WebSocket and receive it', 'publish-ws-1'],
        ['channel.publish 5 events over WebSocket, received in order', 'publish-ws-5'],
        ['wildcard subscription default/* receives every depth below default/', 'wildcard'],
        ['events.post over HTTP with 1 event reaches a subscriber', 'post-http-1'],
        ['events.post over HTTP with 5 events, received in order', 'post-http-5'],
        ['6 events over WebSocket: publish rejects with InvalidInputError', 'publish-ws-6-rejected'],
        ['6 events over HTTP: rejects, x-amzn-ErrorType BadRequestException', 'post-http-6-rejected'],
        ['event over 240 KB rejected over WebSocket and HTTP; exactly 240 KB accepted', 'event-size-limit'],
        ['bad API key: connection_error UnauthorizedException, events.connect rejects', 'bad-api-key'],
        ['subscription.unsubscribe() stops delivery', 'unsubscribe'],
        ['channel.close() stops delivery to that channel', 'channel-close'],
        ['a client receives its own publishes (and so does another connection)', 'own-publish'],
    ];
    for (const [title, scenario] of cases) {
        test(title, { timeout: 35000 }, async () => {
            const out = await runScenario(scenario);
            assert.match(out, new RegExp(`^ok ${scenario}$`, 'm'));
        });
    }
});

// Namespace handlers (issue 16): a second server whose namespaces run the handler files of
// tests/data/handlers, written as AWS's "Writing event handlers" examples are.
describe('aws-amplify events client and namespace handlers', { timeout: 120000 }, () => {
    let handled;
    const data = join(here, '..', 'data', 'handlers');
    before(async () => {
        handled = await startServer({
            extraArgs: ['--namespace', 'transform', '--namespace', 'filter', '--namespace', 'validate',
                '--namespace-code', `transform:${join(data, 'transform.js')}`,
                '--namespace-code', `filter:${join(data, 'filter.js')}`,
                '--namespace-code', `validate:${join(data, 'validate.js')}`],
        });
    });
    after(async () => {
        await handled?.stop();
    });
    const cases = [
        ['the observer receives what onPublish returned (transform, filter), over WebSocket and HTTP', 'handler-transform'],
        ['onSubscribe refuses (util.unauthorized, util.error); a per-event error reaches failed', 'handler-refusals'],
    ];
    for (const [title, scenario] of cases) {
        test(title, { timeout: 35000 }, async () => {
            const out = await runScenario(scenario, 30000, handled);
            assert.match(out, new RegExp(`^ok ${scenario}$`, 'm'));
        });
    }
});
