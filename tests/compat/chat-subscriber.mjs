// The official aws-amplify (6.22.1) `events` client as a chat subscriber, in its own Node process.
//
//   fork('chat-subscriber.mjs', ['BedrockChat/*', 'BedrockChat/alice', ...], {env: {
//       NODE_EXTRA_CA_CERTS: <server cert.pem>, COMPAT_PORT: <port>, COMPAT_API_KEY: <key>}})
//
// It connects over wss:// (certificate checks on), subscribes to every channel named on the
// command line, and reports over the IPC channel:
//   {type: 'ready'}                              once every subscription is ready;
//   {type: 'event', sub, event}                  for each event the observer of `sub` receives
//                                                (Amplify has already parsed the event JSON);
//   {type: 'error', sub, message}                for a subscription error;
//   {type: 'fatal', message}                     when set-up fails (then it exits 1).
// The parent sends 'close' to end it; it also ends when the parent goes away, or after 5 min.
// chat.test.mjs drives it; see the comment there.
import dns from 'node:dns';
import WS from 'ws';

dns.setDefaultResultOrder('ipv4first'); // "localhost" is 127.0.0.1, where the server listens
globalThis.WebSocket = WS; // Node 20 has no global WebSocket; Amplify uses globalThis.WebSocket

const send = (msg) => {
    if (process.connected) process.send(msg);
};
const watchdog = setTimeout(() => process.exit(3), 5 * 60 * 1000);
watchdog.unref();
process.on('disconnect', () => process.exit(0));

const channels = process.argv.slice(2);
const port = Number(process.env.COMPAT_PORT);
const apiKey = process.env.COMPAT_API_KEY;

try {
    if (!process.send) throw new Error('chat-subscriber.mjs must be started with an IPC channel (fork)');
    if (!(port > 0) || !apiKey || !process.env.NODE_EXTRA_CA_CERTS)
        throw new Error('COMPAT_PORT, COMPAT_API_KEY and NODE_EXTRA_CA_CERTS must be set');
    if (channels.length === 0) throw new Error('no channel to subscribe to');
    const { Amplify } = await import('aws-amplify');
    const { events } = await import('aws-amplify/data');
    Amplify.configure({
        API: {
            Events: {
                endpoint: `https://localhost:${port}/event`,
                region: 'us-east-1',
                defaultAuthMode: 'apiKey',
                apiKey,
            },
        },
    });
    const subs = [];
    for (const name of channels) {
        const channel = await events.connect(name);
        const sub = channel.subscribe({
            next: (msg) => send({ type: 'event', sub: name, event: msg?.event }),
            error: (err) => send({ type: 'error', sub: name, message: String(err?.message ?? err) }),
        });
        await sub.ready;
        subs.push({ channel, sub });
    }
    process.on('message', async (m) => {
        if (m !== 'close') return;
        for (const { channel } of subs) {
            try {
                await channel.close();
            } catch {
                // closing is best effort; the process ends anyway
            }
        }
        process.exit(0);
    });
    send({ type: 'ready' });
} catch (err) {
    send({ type: 'fatal', message: String(err?.stack ?? err) });
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100);
}
