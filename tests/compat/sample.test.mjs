// The AWS sample's own integration test (serverless-patterns/appsync-events-bedrock-cdk, jest)
// against eventcast: its HTTP publish to channel BedrockChat answers failed: [], and its POST to
// new URL(ChatApiUrl).toString() + '/chat' ("//chat") answers 200. The client runs in a child
// process with NODE_EXTRA_CA_CERTS (sample-client.mjs), as docs/MIGRATING.md tells users to run
// it. The access log (--log-level info) must show one line per request, with the path as sent
// and never the key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function runSampleClient(server, { chatApiUrl = `https://localhost:${server.port}` } = {}) {
    // The values cdk-outputs.json would hold, as docs/MIGRATING.md maps them.
    const args = [join(here, 'sample-client.mjs'), 'localhost', String(server.port), chatApiUrl,
                  server.apiKey, 'BedrockChat'];
    return new Promise((resolve, reject) => {
        execFile(process.execPath, args, {
            env: { ...process.env, NODE_EXTRA_CA_CERTS: server.certPath },
            timeout: 20000,
        }, (err, stdout, stderr) => {
            const line = stdout.trim().split('\n').pop() || '';
            try {
                resolve(JSON.parse(line));
            } catch {
                reject(new Error(`sample client: ${err?.message ?? ''}\n${stdout}\n${stderr}`));
            }
        });
    });
}

describe('the AWS sample\'s integration test', () => {
    let server;
    before(async () => {
        server = await startServer({
            logLevel: 'info',
            extraArgs: ['--chat-event-format', 'sample', '--demo-pace-ms', '1'],
        });
    });
    after(async () => { await server?.stop(); });

    test('publishes to BedrockChat with failed: [] and posts //chat with 200', async () => {
        const r = await runSampleClient(server);
        assert.equal(r.error, undefined, r.error);
        assert.equal(r.publish.status, 200);
        assert.deepEqual(r.publish.body.failed, []);
        assert.equal(r.publish.body.successful.length, 1);
        assert.equal(r.publish.body.successful[0].index, 0);
        assert.match(r.publish.requestId, /^[0-9a-f-]{36}$/);
        assert.equal(r.chat.url, `https://localhost:${server.port}//chat`);
        assert.equal(r.chat.status, 200, JSON.stringify(r.chat.body));
        assert.equal(r.chat.body.channel, '/BedrockChat/test-user');
        assert.equal(r.chat.body.eventFormat, 'sample');
        // The access log has one line per request, with the path as the client sent it.
        assert.match(server.output(), /http POST \/event 200 bytes=\d+ ms=[\d.]+ rid=[0-9a-f-]{36}/);
        assert.match(server.output(), /http POST \/\/chat 200 /);
        assert.doesNotMatch(server.output(), new RegExp(server.apiKey));
    });
});
