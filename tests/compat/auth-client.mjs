// Runs ONE auth scenario of the official aws-amplify `events` client against a running eventcast
// configured by auth.test.mjs, in its own Node process (NODE_EXTRA_CA_CERTS must be read at
// start-up; a fresh process also resets Amplify's singletons between auth modes).
//
//   NODE_EXTRA_CA_CERTS=<cert> COMPAT_PORT=<port> AUTH_FIXTURE=<json> node auth-client.mjs <name>
//
// Tokens and IAM keys come from AUTH_FIXTURE (made by the parent with keys it generated).
// Amplify gets them the way an app with its own sign-in would: a custom tokenProvider
// (userPool, oidc) or credentialsProvider (iam), or per-call authToken (lambda).
import assert from 'node:assert/strict';
import dns from 'node:dns';
import WS from 'ws';

dns.setDefaultResultOrder('ipv4first');
globalThis.WebSocket = WS;

const { Amplify } = await import('aws-amplify');
const { events } = await import('aws-amplify/data');
const { decodeJWT } = await import('@aws-amplify/core');

const port = Number(process.env.COMPAT_PORT);
const fx = JSON.parse(process.env.AUTH_FIXTURE);
const endpoint = `https://localhost:${port}/event`;
const uniq = `a${process.pid}${Date.now().toString(36)}`;

function configure(mode, { token, iam } = {}) {
    const libraryOptions = { Auth: {} };
    if (token)
        libraryOptions.Auth.tokenProvider = {
            getTokens: async () => ({ accessToken: decodeJWT(token), idToken: decodeJWT(token) }),
        };
    if (iam)
        libraryOptions.Auth.credentialsProvider = {
            getCredentialsAndIdentityId: async () => ({ credentials: iam, identityId: 'test' }),
            clearCredentialsAndIdentityId: () => {},
        };
    Amplify.configure({
        API: { Events: { endpoint, region: 'us-east-1', defaultAuthMode: mode } },
    }, libraryOptions);
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

async function rejects(promise, what) {
    const r = await withTimeout(promise.then((v) => ({ ok: true, v }), (e) => ({ ok: false, e })), 8000, what);
    assert.equal(r.ok, false, `${what} should have been refused`);
    return r.e;
}

/** Subscribes with Amplify; resolves once subscribe_success arrived. */
async function subscribe(channel, options) {
    const got = [];
    const errors = [];
    const sub = channel.subscribe({ next: (m) => got.push(m), error: (e) => errors.push(e) }, options);
    await withTimeout(sub.ready, 8000, 'subscription ready');
    return { sub, got, errors };
}

async function until(pred, ms, what) {
    const end = Date.now() + ms;
    while (!pred()) {
        if (Date.now() > end) throw new Error(`timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

// Subscribe on the caller's own channel, publish over WebSocket and over HTTP, receive both.
async function roundTrip(mode, options = {}, ownChannel = `/BedrockChat/${fx.aliceSub}`) {
    const ch = await events.connect(`/default/${uniq}`, options);
    const s = await subscribe(ch, options);
    await ch.publish({ via: 'ws', mode }, options);
    await events.post(`/default/${uniq}`, { via: 'http', mode }, options);
    await until(() => s.got.length >= 2, 8000, `2 events in ${mode} mode`);
    assert.deepEqual(s.got.map((m) => m.event.via).sort(), ['http', 'ws']);
    if (ownChannel) {
        const own = await events.connect(ownChannel, options);
        await subscribe(own, options);
        own.close();
    }
    ch.close();
}

// What a user must not be able to read: every way of naming another user's channel.
async function othersRefused(options) {
    for (const target of ['/BedrockChat/bob-sub', '/BedrockChat/*', `/BedrockChat/${fx.aliceSub.toUpperCase()}`]) {
        const ch = await events.connect(target, options);
        const sub = ch.subscribe({ next: () => {}, error: () => {} }, options);
        const e = await rejects(sub.ready, `subscribe ${target}`);
        assert.match(String(e?.message ?? JSON.stringify(e)), /Unauthorized|per-user/i, target);
        ch.close();
    }
    const ch = await events.connect('/BedrockChat/bob-sub', options);
    await rejects(ch.publish({ spoof: true }, options), 'publish into another user\'s channel');
    await rejects(events.post('/BedrockChat/bob-sub', { spoof: true }, options), 'HTTP publish into another user\'s channel');
    ch.close();
}

const scenarios = {
    async userpool() {
        configure('userPool', { token: fx.cognitoAccess });
        await roundTrip('userPool');
        await othersRefused({});
    },
    async 'userpool-id-token'() {
        configure('userPool', { token: fx.cognitoId });
        await roundTrip('userPool-id');
    },
    async oidc() {
        configure('oidc', { token: fx.oidc });
        await roundTrip('oidc');
        await othersRefused({});
    },
    async 'oidc-rotated-key'() {
        // Signed by a key the server has not seen: it fetches the JWKS URL again and accepts.
        configure('oidc', { token: fx.oidcRotated });
        await roundTrip('oidc-rotated');
    },
    async iam() {
        configure('iam', { iam: fx.iam });
        await roundTrip('iam', {}, `/BedrockChat/${fx.iamPrincipal}`);
    },
    async 'iam-wrong-secret'() {
        configure('iam', { iam: { ...fx.iam, secretAccessKey: 'not-the-secret' } });
        await rejects(events.connect(`/default/${uniq}`), 'connect with a wrong IAM secret');
    },
    async lambda() {
        configure('lambda');
        const options = { authMode: 'lambda', authToken: 'allow-lambda-user' };
        await roundTrip('lambda', options, null);
    },
    async 'lambda-denied'() {
        configure('lambda');
        await rejects(events.connect(`/default/${uniq}`, { authMode: 'lambda', authToken: 'deny-me' }),
            'connect with a token the webhook refuses');
    },
    async 'expired-token'() {
        configure('userPool', { token: fx.expired });
        await rejects(events.connect(`/default/${uniq}`), 'connect with an expired token');
    },
};

const name = process.argv[2];
try {
    await scenarios[name]();
    console.log(`ok ${name}`);
    process.exit(0);
} catch (e) {
    console.error(`FAIL ${name}: ${e?.stack ?? e}`);
    process.exit(1);
}
