// Authorization beyond API keys, end to end: the real eventcast binary configured with every
// AppSync auth mode at once (Cognito user pool tokens from a JWKS file, OIDC tokens from a JWKS
// served over HTTPS with a private CA, AWS_IAM keys, a Lambda-style webhook), a per-user
// namespace, and rate limits.
//
// - The official aws-amplify client in userPool, oidc, iam and lambda modes (auth-client.mjs,
//   one child process per scenario) subscribes and publishes over WebSocket and HTTP.
// - Raw `ws` clients check what Amplify cannot send: tampered, expired, alg=none and wrong-key
//   tokens, and every way of naming another user's chat channel.
// Keys are generated here; nothing leaves 127.0.0.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createSign, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import WS from 'ws';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'eventcast-auth-'));
const POOL = 'us-east-1_Compat';
const COGNITO_ISS = `https://cognito-idp.us-east-1.amazonaws.com/${POOL}`;
const OIDC_ISS = 'https://idp.compat.test';
const now = () => Math.floor(Date.now() / 1000);

// ---- keys and tokens -----------------------------------------------------------------------
const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
function jwk(publicKey, kid, alg) {
    return { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
function signJwt(header, payload, privateKey) {
    const input = `${b64u(header)}.${b64u(payload)}`;
    const sig = header.alg === 'ES256'
        ? cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : createSign('RSA-SHA256').update(input).sign(privateKey);
    return `${input}.${sig.toString('base64url')}`;
}
const cognitoKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const oidcKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const oidcRotated = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const cognito = (claims, key = cognitoKey.privateKey, kid = 'cog-1') => signJwt(
    { alg: 'RS256', kid, typ: 'JWT' },
    { iss: COGNITO_ISS, token_use: 'access', client_id: 'compat-client', iat: now(), exp: now() + 3600, ...claims },
    key);
const oidc = (claims, key = oidcKey.privateKey, kid = 'oidc-1') => signJwt(
    { alg: 'ES256', kid, typ: 'JWT' },
    { iss: OIDC_ISS, aud: 'oidc-client', iat: now(), exp: now() + 3600, ...claims },
    key);

const fixture = {
    aliceSub: 'alice-sub',
    cognitoAccess: cognito({ sub: 'alice-sub', username: 'alice' }),
    cognitoId: cognito({ sub: 'alice-sub', token_use: 'id', client_id: undefined, aud: 'compat-client', 'cognito:username': 'alice' }),
    oidc: oidc({ sub: 'alice-sub' }),
    oidcRotated: oidc({ sub: 'alice-sub' }, oidcRotated.privateKey, 'oidc-2'),
    expired: cognito({ sub: 'alice-sub', iat: now() - 7200, exp: now() - 3600 }),
    iam: { accessKeyId: 'AKIDCOMPAT', secretAccessKey: 'compat-iam-secret', sessionToken: 'opaque-session' },
    iamPrincipal: 'iam-user',
};
const bobToken = cognito({ sub: 'bob-sub', username: 'bob' });

// ---- servers this test owns ----------------------------------------------------------------
let server, jwksServer, lambdaServer;
let jwksFetches = 0;
let lambdaCalls = [];
let servedOidcKeys = [jwk(oidcKey.publicKey, 'oidc-1', 'ES256')];

function listen(srv) {
    return new Promise((res) => srv.listen(0, '127.0.0.1', () => res(srv.address().port)));
}

before(async () => {
    // The OIDC provider's JWKS over HTTPS, with a certificate from a CA only eventcast is told of.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
        '-nodes', '-keyout', join(dir, 'jwks-key.pem'), '-out', join(dir, 'jwks-cert.pem'),
        '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' });
    jwksServer = https.createServer({
        key: readFileSync(join(dir, 'jwks-key.pem')),
        cert: readFileSync(join(dir, 'jwks-cert.pem')),
    }, (req, res) => {
        jwksFetches++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: servedOidcKeys }));
    });
    const jwksPort = await listen(jwksServer);

    // The Lambda authorizer, as a webhook: tokens starting with "allow-" pass.
    lambdaServer = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
            const q = JSON.parse(body);
            lambdaCalls.push(q);
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ isAuthorized: q.authorizationToken.startsWith('allow-'), ttlOverride: 60 }));
        });
    });
    const lambdaPort = await listen(lambdaServer);

    writeFileSync(join(dir, 'cognito-jwks.json'), JSON.stringify({ keys: [jwk(cognitoKey.publicKey, 'cog-1', 'RS256')] }));
    writeFileSync(join(dir, 'iam-keys'), 'AKIDCOMPAT compat-iam-secret iam-user\n');
    const all = 'API_KEY,AMAZON_COGNITO_USER_POOLS,OPENID_CONNECT,AWS_IAM,AWS_LAMBDA';
    server = await startServer({
        extraArgs: [
            '--auth-connect', all, '--auth-publish', all, '--auth-subscribe', all,
            '--cognito-user-pool-id', POOL, '--cognito-client-id', 'compat-client',
            '--cognito-jwks', join(dir, 'cognito-jwks.json'),
            '--oidc-issuer', OIDC_ISS, '--oidc-client-id', 'oidc-client',
            '--oidc-jwks', `https://127.0.0.1:${jwksPort}/jwks.json`,
            '--jwks-ca-file', join(dir, 'jwks-cert.pem'), '--jwks-min-refresh-s', '1',
            '--iam-keys-file', join(dir, 'iam-keys'),
            '--lambda-authorizer-url', `http://127.0.0.1:${lambdaPort}/authorize`,
            '--user-namespace', 'BedrockChat',
            '--chat-max-streams-per-user', '1', '--demo-pace-ms', '15',
        ],
    });
});

after(async () => {
    await server?.stop();
    jwksServer?.close();
    lambdaServer?.close();
    rmSync(dir, { recursive: true, force: true });
});

function runScenario(name, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
        const env = { ...process.env, NODE_EXTRA_CA_CERTS: server.certPath, COMPAT_PORT: String(server.port),
            AUTH_FIXTURE: JSON.stringify(fixture) };
        delete env.NODE_TLS_REJECT_UNAUTHORIZED;
        const child = spawn(process.execPath, [join(here, 'auth-client.mjs'), name],
            { cwd: here, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { out += d; });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.once('exit', (code) => {
            clearTimeout(timer);
            if (code === 0) return resolve(out);
            reject(new Error(`scenario '${name}' failed:\n${out}\n--- server ---\n${server.output().slice(-3000)}`));
        });
    });
}

// ---- raw WebSocket helpers -----------------------------------------------------------------
/** Opens wss with `auth` as the header- subprotocol; resolves {ws, next(pred)} after connection_ack,
 *  or rejects with the connection_error frame. */
function connect(auth) {
    const header = b64u({ host: server.host, ...auth });
    const ws = new WS(server.wssUrl, ['aws-appsync-event-ws', `header-${header}`], { ca: server.ca });
    const msgs = [];
    const waiters = new Set();
    ws.on('message', (d) => { msgs.push(JSON.parse(String(d))); for (const w of waiters) w(); });
    const next = (pred, ms = 5000) => new Promise((resolve, reject) => {
        const check = () => {
            const i = msgs.findIndex(pred);
            if (i < 0) return false;
            waiters.delete(check); clearTimeout(t); resolve(msgs.splice(i, 1)[0]); return true;
        };
        const t = setTimeout(() => { waiters.delete(check); reject(new Error(`timeout; saw ${JSON.stringify(msgs)}`)); }, ms);
        if (!check()) waiters.add(check);
    });
    return new Promise((resolve, reject) => {
        ws.once('error', reject);
        ws.once('open', async () => {
            ws.send(JSON.stringify({ type: 'connection_init' }));
            const first = await next((m) => m.type === 'connection_ack' || m.type === 'connection_error');
            if (first.type === 'connection_error') { ws.close(); reject(Object.assign(new Error('connection_error'), { frame: first })); }
            else resolve({ ws, next, msgs });
        });
    });
}

let seq = 0;
async function trySubscribe(c, channel, auth) {
    const id = `s${++seq}`;
    c.ws.send(JSON.stringify({ type: 'subscribe', id, channel, authorization: { host: server.host, ...auth } }));
    return c.next((m) => m.id === id && (m.type === 'subscribe_success' || m.type === 'subscribe_error'));
}

async function post(path, body, headers) {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
}

describe('auth modes with the official aws-amplify client', { timeout: 180000 }, () => {
    for (const [title, name] of [
        ['userPool mode (Cognito access token): subscribe, WS publish, HTTP post; others\' channels refused', 'userpool'],
        ['userPool mode with a Cognito ID token', 'userpool-id-token'],
        ['oidc mode (ES256 token, JWKS over HTTPS with a private CA); others\' channels refused', 'oidc'],
        ['iam mode: SigV4 on connect, subscribe, WS publish and HTTP post', 'iam'],
        ['iam mode with a wrong secret is refused', 'iam-wrong-secret'],
        ['lambda mode: the webhook allows', 'lambda'],
        ['lambda mode: the webhook denies', 'lambda-denied'],
        ['an expired Cognito token is refused', 'expired-token'],
    ]) {
        test(title, { timeout: 40000 }, async () => {
            assert.match(await runScenario(name), new RegExp(`^ok ${name}$`, 'm'));
        });
    }

    test('a token signed by a rotated OIDC key is accepted after one JWKS refetch', { timeout: 40000 }, async () => {
        servedOidcKeys = [jwk(oidcKey.publicKey, 'oidc-1', 'ES256'), jwk(oidcRotated.publicKey, 'oidc-2', 'ES256')];
        await new Promise((r) => setTimeout(r, 1100)); // past --jwks-min-refresh-s since start-up
        const before = jwksFetches;
        assert.match(await runScenario('oidc-rotated-key'), /^ok oidc-rotated-key$/m);
        assert.ok(jwksFetches > before, 'the server fetched the JWKS again');
    });

    test('the Lambda webhook got the AppSync authorizer request shape, and answers are cached', async () => {
        const sub = lambdaCalls.find((q) => q.requestContext.operation === 'EVENT_SUBSCRIBE');
        assert.ok(sub, `calls: ${JSON.stringify(lambdaCalls.map((q) => q.requestContext.operation))}`);
        assert.equal(sub.authorizationToken, 'allow-lambda-user');
        assert.equal(sub.requestContext.channelNamespaceName, 'default');
        assert.ok(lambdaCalls.some((q) => q.requestContext.operation === 'EVENT_CONNECT'));
        const n = lambdaCalls.length;
        const c = await connect({ Authorization: 'allow-lambda-user' });
        c.ws.close();
        assert.equal(lambdaCalls.length, n, 'the connect answer came from the cache (ttlOverride 60)');
    });
});

describe('IAM signatures made by the official AWS SDK signer', { timeout: 60000 }, () => {
    // @smithy/signature-v4 is the AWS SDK for JavaScript v3's signer (@aws-sdk/signature-v4
    // re-exports it); tests/fakes declares it and @aws-crypto/sha256-js.
    const fakes = createRequire(join(here, '..', 'fakes', 'package.json'));
    const { SignatureV4 } = fakes('@smithy/signature-v4');
    const { Sha256 } = fakes('@aws-crypto/sha256-js');
    const signer = new SignatureV4({
        service: 'appsync', region: 'us-east-1', sha256: Sha256,
        credentials: { accessKeyId: fixture.iam.accessKeyId, secretAccessKey: fixture.iam.secretAccessKey,
            sessionToken: fixture.iam.sessionToken },
    });
    const sign = async (host, body, headers = {}) => (await signer.sign({
        method: 'POST', protocol: 'https:', hostname: host.split(':')[0], port: Number(host.split(':')[1]),
        path: '/event', headers: { host, ...headers }, body,
    })).headers;

    test('WebSocket connect, subscribe and publish, and HTTP publish, signed by the SDK', async () => {
        const wsHeaders = { accept: 'application/json, text/javascript', 'content-encoding': 'amz-1.0',
            'content-type': 'application/json; charset=UTF-8' };
        const c = await connect(await sign(server.host, '{}', wsHeaders));
        const channel = `/default/sdk${Date.now().toString(36)}`;
        const subAuth = await sign(server.host, JSON.stringify({ channel }), wsHeaders);
        c.ws.send(JSON.stringify({ type: 'subscribe', id: 'sdk-sub', channel, authorization: subAuth }));
        assert.equal((await c.next((m) => m.id === 'sdk-sub')).type, 'subscribe_success');
        const events = [JSON.stringify({ via: 'ws', text: '<b>&</b>' })];
        const pubAuth = await sign(server.host, JSON.stringify({ channel, events }), wsHeaders);
        c.ws.send(JSON.stringify({ type: 'publish', id: 'sdk-pub', channel, events, authorization: pubAuth }));
        assert.equal((await c.next((m) => m.id === 'sdk-pub')).type, 'publish_success');
        assert.equal(JSON.parse((await c.next((m) => m.type === 'data')).event).via, 'ws');

        const httpHost = `127.0.0.1:${server.port}`;
        const body = JSON.stringify({ channel, events: [JSON.stringify({ via: 'http' })] });
        const headers = await sign(httpHost, body, { 'content-type': 'application/json' });
        const res = await fetch(`http://${httpHost}/event`, { method: 'POST', headers, body });
        assert.equal(res.status, 200, await res.text());
        assert.equal(JSON.parse((await c.next((m) => m.type === 'data')).event).via, 'http');

        // The same signature over another body is refused.
        const forged = await fetch(`http://${httpHost}/event`, { method: 'POST', headers,
            body: body.replace('http', 'evil') });
        assert.equal(forged.status, 401);
        c.ws.close();
    });
});

describe('refused tokens (raw WebSocket connect)', { timeout: 60000 }, () => {
    const [h, p] = fixture.cognitoAccess.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url'));
    const cases = [
        ['expired', fixture.expired, /expired/],
        ['not yet valid', cognito({ sub: 'a', nbf: now() + 3600 }), /not valid yet/],
        ['wrong audience (client_id)', cognito({ sub: 'a', client_id: 'other-client' }), /audience or client id/],
        ['wrong key, same kid', cognito({ sub: 'a' }, otherRsa.privateKey), /signature/],
        ['unknown kid', cognito({ sub: 'a' }, otherRsa.privateKey, 'cog-unknown'), /key id/],
        ['alg none', `${b64u({ alg: 'none', kid: 'cog-1' })}.${p}.`, /algorithm|not a well-formed/],
        ['HS256 with the public key as secret', (() => {
            const input = `${b64u({ alg: 'HS256', kid: 'cog-1' })}.${p}`;
            return input; // no valid HS256 signature can be made acceptable: alg is refused first
        })() + '.AAAA', /algorithm|not a well-formed/],
        ['tampered payload', `${h}.${b64u({ ...payload, sub: 'bob-sub' })}.${fixture.cognitoAccess.split('.')[2]}`, /signature/],
        ['wrong issuer (goes to the Lambda authorizer, which denies)', signJwt({ alg: 'RS256', kid: 'cog-1' },
            { iss: 'https://evil.example', sub: 'a', exp: now() + 60 }, cognitoKey.privateKey), /AWS_LAMBDA/],
        // The issuer is matched exactly (OIDC Core 3.1.3.7, issue #14 item 7): a trailing slash
        // makes it another issuer, so the token is not OIDC's and the Lambda authorizer denies it.
        ['OIDC iss with a trailing slash', oidc({ sub: 'a', iss: `${OIDC_ISS}/` }), /AWS_LAMBDA/],
        ['Bearer prefix is accepted', `Bearer ${fixture.cognitoAccess}`, null],
    ];
    for (const [title, token, why] of cases) {
        test(title, async () => {
            if (!why) {
                const c = await connect({ Authorization: token });
                c.ws.close();
                return;
            }
            const e = await connect({ Authorization: token }).then(() => null, (err) => err);
            assert.ok(e?.frame, `${title}: connected, but should be refused`);
            assert.equal(e.frame.errors[0].errorType, 'UnauthorizedException');
            assert.match(e.frame.errors[0].message, why);
        });
    }
});

describe('per-user chat channels', { timeout: 60000 }, () => {
    test('alice cannot receive bob\'s chat events by any subscribe or publish', async () => {
        const alice = await connect({ Authorization: fixture.cognitoAccess });
        const auth = { Authorization: fixture.cognitoAccess };
        for (const channel of ['/BedrockChat/bob-sub', '/BedrockChat/*', 'BedrockChat/*', '/BedrockChat/Bob-sub',
            '/BedrockChat/bob-sub/*', '/bedrockchat/bob-sub', '//BedrockChat//bob-sub', '/BedrockChat/bob-sub/',
            '/BedrockChat/alice-sub/../bob-sub', '/BedrockChat/alice-sub%2Fbob-sub']) {
            const r = await trySubscribe(alice, channel, auth);
            assert.equal(r.type, 'subscribe_error', `${channel} must be refused, got ${JSON.stringify(r)}`);
        }
        assert.equal((await trySubscribe(alice, '/BedrockChat/alice-sub', auth)).type, 'subscribe_success');
        alice.ws.send(JSON.stringify({ type: 'publish', id: 'p1', channel: '/BedrockChat/bob-sub', events: ['"spoof"'], authorization: auth }));
        assert.equal((await alice.next((m) => m.id === 'p1')).type, 'publish_error');

        // bob chats: his token names him; the body's userId is not needed.
        const bob = await connect({ Authorization: bobToken });
        assert.equal((await trySubscribe(bob, '/BedrockChat/bob-sub', { Authorization: bobToken })).type, 'subscribe_success');
        const started = await post('/chat', { prompt: 'hello' }, { authorization: bobToken });
        assert.equal(started.status, 200, JSON.stringify(started.body));
        assert.equal(started.body.channel, '/BedrockChat/bob-sub');
        // a second concurrent stream for bob is over --chat-max-streams-per-user 1
        const second = await post('/chat', { prompt: 'again' }, { authorization: bobToken });
        assert.equal(second.status, 429, JSON.stringify(second.body));
        const end = await bob.next((m) => m.type === 'data' && JSON.parse(m.event).type === 'end', 15000);
        assert.ok(end);
        // alice saw none of it; she cannot start a chat in bob's name or read his stream.
        assert.ok(!alice.msgs.some((m) => m.type === 'data'), JSON.stringify(alice.msgs));
        const spoof = await post('/chat', { userId: 'bob-sub', prompt: 'x' }, { authorization: fixture.cognitoAccess });
        assert.equal(spoof.status, 403);
        const status = await fetch(`http://127.0.0.1:${server.port}/chat/${started.body.streamId}`,
            { headers: { authorization: fixture.cognitoAccess } });
        assert.equal(status.status, 404);
        const own = await fetch(`http://127.0.0.1:${server.port}/chat/${started.body.streamId}`,
            { headers: { authorization: bobToken } });
        assert.equal(own.status, 200);
        // an API key carries no identity, so the per-user namespace refuses it
        const keyed = await trySubscribe(bob, '/BedrockChat/bob-sub', { 'x-api-key': server.apiKey });
        assert.equal(keyed.type, 'subscribe_error');
        alice.ws.close();
        bob.ws.close();
    });
});

describe('rate limits', { timeout: 60000 }, () => {
    let limited;
    before(async () => {
        limited = await startServer({ extraArgs: ['--max-connections-per-ip', '3', '--max-ops-per-second', '5'] });
    });
    after(async () => { await limited?.stop(); });

    test('connections per address and operations per second are limited, answered and counted', async () => {
        const open = (ok = true) => new Promise((resolve, reject) => {
            const header = b64u({ host: limited.host, 'x-api-key': limited.apiKey });
            const ws = new WS(limited.wsUrl, ['aws-appsync-event-ws', `header-${header}`]);
            ws.once('open', () => resolve({ ws }));
            ws.once('unexpected-response', (req, res) => resolve({ status: res.statusCode }));
            ws.once('error', reject);
        });
        const conns = [await open(), await open(), await open()];
        assert.ok(conns.every((c) => c.ws));
        const fourth = await open();
        assert.equal(fourth.status, 429);
        conns[2].ws.close();
        await new Promise((r) => setTimeout(r, 200));
        const again = await open();
        assert.ok(again.ws, 'a slot frees up when a connection closes');

        const ws = conns[0].ws;
        const replies = [];
        ws.on('message', (d) => replies.push(JSON.parse(String(d))));
        for (let i = 0; i < 20; i++)
            ws.send(JSON.stringify({ type: 'subscribe', id: `r${i}`, channel: `/default/r${i}`, authorization: { 'x-api-key': limited.apiKey } }));
        await new Promise((r) => setTimeout(r, 500));
        const errs = replies.filter((m) => m.type === 'subscribe_error');
        const oks = replies.filter((m) => m.type === 'subscribe_success');
        assert.ok(oks.length >= 5 && oks.length < 20, `successes ${oks.length}`);
        assert.equal(errs.length + oks.length, 20);
        assert.equal(errs[0].errors[0].errorType, 'LimitExceededError');
        const metrics = await (await fetch(`http://127.0.0.1:${limited.port}/metrics`)).text();
        assert.match(metrics, /eventcast_rate_limited_total\{limit="connections_per_ip"\} 1/);
        assert.match(metrics, new RegExp(`eventcast_rate_limited_total\\{limit="ops_per_second"\\} ${errs.length}`));
        for (const c of [conns[0], conns[1], again]) c.ws.close();
    });
});
