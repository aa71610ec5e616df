// One official aws-amplify (6.22.1) `events` client bound to ONE eventcast node, for the cluster
// test (cluster.test.mjs). Amplify is a per-process singleton with one endpoint, and Node reads
// NODE_EXTRA_CA_CERTS (the node's self-signed certificate) only at start-up, so each node's
// client is its own process.
//
//   NODE_EXTRA_CA_CERTS=<cert.pem> COMPAT_PORT=<port> COMPAT_API_KEY=<key> \
//     node cluster-client.mjs subscribe <channel> <count>    prints "ready", then one
//                                                            "event <json>" line per event, "ok"
//     node cluster-client.mjs publish-ws <channel> <json>... channel.publish each, in order
//     node cluster-client.mjs post-http <channel> <json>...  events.post each, in order
import assert from 'node:assert/strict';
import dns from 'node:dns';
import { setTimeout as sleep } from 'node:timers/promises';
import WS from 'ws';

dns.setDefaultResultOrder('ipv4first');
globalThis.WebSocket = WS;  // Node 20 has no global WebSocket; Amplify uses it

const { Amplify } = await import('aws-amplify');
const { events } = await import('aws-amplify/data');

const port = Number(process.env.COMPAT_PORT);
assert.ok(port > 0, 'COMPAT_PORT is not set');
Amplify.configure({
    API: { Events: { endpoint: `https://localhost:${port}/event`, region: 'us-east-1',
                     defaultAuthMode: 'apiKey', apiKey: process.env.COMPAT_API_KEY } },
});

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

const [role, channelName, ...rest] = process.argv.slice(2);
const watchdog = setTimeout(() => { console.error(`${role} exceeded 25 s`); process.exit(3); }, 25000);
try {
    if (role === 'subscribe') {
        const count = Number(rest[0]);
        const channel = await withTimeout(events.connect(channelName), 10000, 'events.connect');
        let got = 0;
        let done;
        const finished = new Promise((res) => { done = res; });
        const sub = channel.subscribe({
            next: (msg) => {
                console.log(`event ${JSON.stringify(msg.event)}`);
                if (++got === count) done();
            },
            error: (err) => { console.error('subscription error', err); process.exit(1); },
        });
        await withTimeout(sub.ready, 5000, 'subscription.ready');
        console.log('ready');
        await withTimeout(finished, 20000, `${count} events`);
        // Anything more (a duplicate, a channel that should not match) shows up here.
        await sleep(300);
        assert.equal(got, count, `expected exactly ${count} events`);
        await channel.close();
    } else if (role === 'publish-ws') {
        const channel = await withTimeout(events.connect(channelName), 10000, 'events.connect');
        for (const text of rest)
            await withTimeout(channel.publish(JSON.parse(text)), 5000, 'channel.publish');
        await channel.close();
    } else if (role === 'post-http') {
        for (const text of rest)
            await withTimeout(events.post(channelName, JSON.parse(text)), 5000, 'events.post');
    } else {
        throw new Error(`unknown role '${role}'`);
    }
    clearTimeout(watchdog);
    console.log('ok');
    process.exit(0);
} catch (err) {
    console.error(err?.stack ?? err);
    process.exit(1);
}
