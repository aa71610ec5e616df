// The AWS sample's demo app, as a page that behaves like it (sample-page/index.html), in Debian's
// Chromium against the real eventcast binary. The page is served from another origin than
// eventcast (a static server on another 127.0.0.1 port), as the sample's Vite dev server is, so
// the fetch to //chat goes through a CORS preflight asking for access-control-allow-* headers.
//
//   EVENTCAST_BIN=build/ci/src/eventcast node --test sample.test.mjs
//
// With --chat-event-format sample the rows must be the whole answer and none may be empty; with
// the typed default the same page shows empty rows (start and end carry no data), which is what
// the option is for. A page from an origin outside --cors-origin gets neither the WebSocket
// (403) nor the answer to its fetch.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.EVENTCAST_CHROMIUM || '/usr/bin/chromium';
const PAGE = readFileSync(join(here, 'sample-page', 'index.html'));
const PROMPT = 'What is the capital of France?';

/** A static server for the page on 127.0.0.1, a port of its own: another origin. */
async function startPageServer() {
    const server = http.createServer((req, res) => {
        if (!req.url.startsWith('/?') && req.url !== '/') {
            res.writeHead(404).end();
            return;
        }
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

let browser;
const pages = [];
const servers = [];

before(async () => {
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync'],
    });
});

after(async () => {
    await browser?.close();
    for (const p of pages) p.close();
    for (const s of servers) await s.stop();
});

/** Opens the page from `origin` pointed at `server`; returns the page and its context. */
async function openSamplePage(origin, server, user) {
    const host = `localhost:${server.port}`;
    const query = new URLSearchParams({
        realtime: host, http: host, chat: `https://${host}`, key: server.apiKey,
        channel: 'BedrockChat', user, prompt: PROMPT,
    });
    // The self-signed certificate: a user trusts it once in the browser (docs/MIGRATING.md);
    // the test context ignores certificate errors instead, for https and wss alike.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${origin}/?${query}`);
    return { page, context, problems };
}

/** Waits for the stream to end (GET /chat/<id> from the page) and returns the rows and text. */
async function finishedRows(page) {
    await page.locator('#chat-status[data-status="200"]').waitFor({ state: 'attached' });
    return page.evaluate(async () => {
        const q = new URLSearchParams(location.search);
        const id = window.chatAnswer.streamId;
        const deadline = Date.now() + 15000;
        let status;
        while (Date.now() < deadline) {
            const res = await fetch(`${new URL(q.get('chat')).toString()}/chat/${id}`,
                                    { headers: { 'x-api-key': q.get('key') } });
            status = await res.json();
            if (status.status !== 'streaming' && status.status !== 'starting') break;
            await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, 300));  // the last frames after the end
        return { text: status.text, status: status.status,
                 rows: [...document.querySelectorAll('#messages .row')].map((d) => d.textContent) };
    });
}

describe('a page like the AWS sample\'s demo app, from another origin', () => {
    let pageServer;
    let otherPageServer;
    let sampleServer;
    let typedServer;

    before(async () => {
        pageServer = await startPageServer();
        otherPageServer = await startPageServer();
        pages.push(pageServer, otherPageServer);
        sampleServer = await startServer({
            extraArgs: ['--chat-event-format', 'sample', '--cors-origin', pageServer.origin],
        });
        typedServer = await startServer();  // typed events, --cors-origin * (the defaults)
        servers.push(sampleServer, typedServer);
    });

    test('sample format: the answer appears whole, with no empty rows', async () => {
        const { page, context, problems } = await openSamplePage(pageServer.origin, sampleServer,
                                                                 'web-sample');
        const { rows, text, status } = await finishedRows(page);
        assert.equal(status, 'completed');
        assert.ok(text.length > 0);
        assert.ok(rows.length > 1, `expected one row per delta, got ${JSON.stringify(rows)}`);
        assert.deepEqual(rows.filter((r) => r === ''), [], `empty rows in ${JSON.stringify(rows)}`);
        assert.equal(rows.join(''), text);
        assert.deepEqual(problems, []);
        await context.close();
    });

    test('typed format (the default): the same page shows empty rows around the answer', async () => {
        const { page, context } = await openSamplePage(pageServer.origin, typedServer, 'web-typed');
        const { rows, text } = await finishedRows(page);
        assert.equal(rows.join(''), text);
        assert.equal(rows[0], '', 'the start event has no data');
        assert.equal(rows.at(-1), '', 'the end event has no data');
        await context.close();
    });

    test('an origin outside --cors-origin gets no WebSocket and no answer', async () => {
        const { page, context } = await openSamplePage(otherPageServer.origin, sampleServer,
                                                       'web-other');
        await page.locator('#state[data-state="error"], #state[data-state="closed"]').waitFor();
        const messages = await page.locator('#events div').allTextContents();
        assert.ok(!messages.includes('connection_ack'), JSON.stringify(messages));
        // The fetch, tried directly: the preflight's answer has no CORS headers, so it fails.
        const outcome = await page.evaluate(async () => {
            const q = new URLSearchParams(location.search);
            try {
                await fetch(new URL(q.get('chat')).toString() + '/chat', {
                    method: 'POST',
                    headers: { 'Content-Type': 'application/json', 'x-api-key': q.get('key') },
                    body: JSON.stringify({ prompt: 'hi', userId: 'web-other' }),
                });
                return 'answered';
            } catch (e) {
                return 'blocked';
            }
        });
        assert.equal(outcome, 'blocked');
        const res = await fetch(`http://127.0.0.1:${sampleServer.port}/metrics`);
        assert.match(await res.text(), /eventcast_ws_origin_refused_total [1-9]/);
        await context.close();
    });
});
