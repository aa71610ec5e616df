// Does what the AWS sample's jest test (appsync-events-bedrock-cdk) does, in a process of its
// own started with NODE_EXTRA_CA_CERTS=<the server's certificate>, which is how a migrating
// user makes Node trust eventcast's self-signed certificate (docs/MIGRATING.md). Written from
// the behaviour of the sample's helpers, not copied from them:
//   1. POST https://<EventsApiHttp>/event with Content-Type and x-api-key, body
//      {"channel": ChannelName, "events": [JSON.stringify({data: "sample data"})]};
//      the sample's helper pins the port to 443, here it is the server's port (argv).
//   2. fetch(new URL(ChatApiUrl).toString() + '/chat') (so "https://host:port//chat") with the
//      sample's headers: Content-Type, x-api-key and Access-Control-Allow-* as request headers.
// Prints one JSON line: {publish: {status, body}, chat: {status, body, url}}.
import https from 'node:https';

const [eventsApiHttp, port, chatApiUrl, apiKey, channel] = process.argv.slice(2);

function publish() {
    const body = JSON.stringify({ channel, events: [{ data: 'sample data' }].map((e) => JSON.stringify(e)) });
    return new Promise((resolve, reject) => {
        const req = https.request({
            hostname: eventsApiHttp, port: Number(port), path: '/event', method: 'POST',
            headers: { 'Content-Type': 'application/json', 'x-api-key': apiKey },
        }, (res) => {
            let text = '';
            res.on('data', (c) => { text += c; });
            res.on('end', () => resolve({ status: res.statusCode, requestId: res.headers['x-amzn-requestid'],
                                          body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.write(body);
        req.end();
    });
}

async function chat() {
    const url = `${new URL(chatApiUrl).toString()}/chat`;
    const res = await fetch(url, {
        method: 'POST',
        headers: {
            'Content-Type': 'application/json',
            'x-api-key': apiKey,
            'Access-Control-Allow-Origin': '*',
            'Access-Control-Allow-Methods': 'POST',
            'Access-Control-Allow-Headers': 'Content-Type, x-api-key',
        },
        body: JSON.stringify({ userId: 'test-user', prompt: 'What is the capital of France?' }),
    });
    return { status: res.status, body: await res.json(), url };
}

try {
    console.log(JSON.stringify({ publish: await publish(), chat: await chat() }));
} catch (e) {
    console.log(JSON.stringify({ error: String(e?.cause ?? e) }));
    process.exitCode = 1;
}
