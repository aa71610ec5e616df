// Cluster mode with the official aws-amplify client: a real nats-server (JetStream on, store in
// a temporary directory) and two eventcast nodes started with --cluster. Amplify subscribed on
// node B receives what Amplify publishes on node A, over WebSocket and HTTP, and wildcards match
// across nodes exactly as on one node. Skipped only when nats-server is not installed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const clientScript = join(here, 'cluster-client.mjs');

function natsServerBinary() {
    const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'];
    for (const d of dirs.filter(Boolean)) {
        try {
            accessSync(join(d, 'nats-server'), constants.X_OK);
            return join(d, 'nats-server');
        } catch { /* next */ }
    }
    return null;
}

const natsBin = natsServerBinary();

async function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    });
}

async function startNats() {
    const dir = mkdtempSync(join(tmpdir(), 'eventcast-nats-'));
    const port = await freePort();
    const child = spawn(natsBin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'store')],
                        { stdio: ['ignore', 'ignore', 'pipe'] });
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const deadline = Date.now() + 15000;
    for (;;) {
        const up = await new Promise((res) => {
            const sock = net.connect(port, '127.0.0.1');
            sock.once('data', (d) => { sock.destroy(); res(String(d).startsWith('INFO ')); });
            sock.once('error', () => res(false));
        });
        if (up) break;
        if (Date.now() > deadline) throw new Error(`nats-server did not start on ${port}`);
        await sleep(50);
    }
    return {
        url: `nats://127.0.0.1:${port}`,
        stop: async () => {
            child.kill('SIGKILL');
            process.removeListener('exit', killOnExit);
            rmSync(dir, { recursive: true, force: true });
        },
    };
}

async function waitReady(server) {
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
        try {
            const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
            if (res.status === 200) return;
        } catch { /* not yet */ }
        await sleep(50);
    }
    throw new Error(`node on ${server.port} did not report ready (cluster connected)`);
}

/** Starts cluster-client.mjs against `server`; resolves {child, lines, ready, done}. */
function client(server, args) {
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: server.certPath,
                  COMPAT_PORT: String(server.port), COMPAT_API_KEY: server.apiKey };
    delete env.NODE_TLS_REJECT_UNAUTHORIZED;
    const child = spawn(process.execPath, [clientScript, ...args], { cwd: here, env,
                                                                     stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let readyResolve;
    const ready = new Promise((res) => { readyResolve = res; });
    child.stdout.on('data', (d) => {
        out += d;
        if (/^ready$/m.test(out)) readyResolve();
    });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    const done = new Promise((resolve, reject) => {
        child.once('exit', (code, signal) => {
            clearTimeout(timer);
            readyResolve();
            if (code === 0) return resolve(out);
            reject(new Error(`cluster-client ${args.join(' ')} failed (${code ?? signal}):\n${out}`));
        });
    });
    done.catch(() => {});  // awaited by the test; a test that failed first must not crash here
    return { ready, done, kill: () => child.kill('SIGKILL'), events: () => out.split('\n').filter((l) => l.startsWith('event '))
        .map((l) => JSON.parse(l.slice(6))) };
}

const uniq = `k${process.pid}${Date.now().toString(36)}`;

describe('cluster: aws-amplify on two nodes over one nats-server', { skip: natsBin ? false :
    'nats-server is not installed (apt-get install nats-server, or scripts/bootstrap)', timeout: 120000 }, () => {
    let nats, a, b;
    before(async () => {
        nats = await startNats();
        const extraArgs = ['--cluster', nats.url];
        a = await startServer({ extraArgs });
        b = await startServer({ extraArgs });
        await waitReady(a);
        await waitReady(b);
    });
    after(async () => {
        await a?.stop();
        await b?.stop();
        await nats?.stop();
    });

    test('amplify on node B receives channel.publish (WebSocket) and events.post (HTTP) from node A',
        { timeout: 40000 }, async () => {
            const channel = `default/${uniq}/room`;
            const sub = client(b, ['subscribe', channel, '3']);
            try {
                await sub.ready;
                await client(a, ['publish-ws', channel, '{"via":"ws","n":1}', '{"via":"ws","n":2}']).done;
                await client(a, ['post-http', channel, '{"via":"http","s":"é\\"<>"}']).done;
                await sub.done;
            } finally {
                sub.kill();
            }
            assert.deepEqual(sub.events(), [{ via: 'ws', n: 1 }, { via: 'ws', n: 2 },
                                            { via: 'http', s: 'é"<>' }]);
        });

    test('a wildcard subscription on node B matches the same channels published on node A',
        { timeout: 40000 }, async () => {
            const sub = client(b, ['subscribe', `default/${uniq}/w/*`, '3']);
            try {
                await sub.ready;
                // prefix itself, a sibling and another namespace must not arrive; any depth below
                // must (5 segments at most, namespace included)
                await client(a, ['post-http', `default/${uniq}/w`, '{"no":"prefix"}']).done;
                await client(a, ['publish-ws', `default/${uniq}/w/x`, '{"yes":1}']).done;
                await client(a, ['post-http', `default/${uniq}/wx/y`, '{"no":"sibling"}']).done;
                await client(a, ['post-http', `BedrockChat/${uniq}/w/x`, '{"no":"namespace"}']).done;
                await client(a, ['post-http', `default/${uniq}/w/x/y`, '{"yes":2}']).done;
                await client(a, ['publish-ws', `default/${uniq}/w/end`, '{"yes":3}']).done;
                await sub.done;
            } finally {
                sub.kill();
            }
            assert.deepEqual(sub.events(), [{ yes: 1 }, { yes: 2 }, { yes: 3 }]);
        });
});
