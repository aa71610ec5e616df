// Browser tests of the demo web app (web/, embedded in the binary): Debian's Chromium, driven by
// playwright-core, against the real eventcast binary on 127.0.0.1.
//
//   EVENTCAST_BIN=build/release/src/eventcast node --test web.test.mjs
//
// Every state the page shows is saved as a screenshot in screenshots/ (git-ignored). With
// EVENTCAST_WEB_DOCS_SHOT=1 the mid-stream one is also copied to docs/images/web-mid-stream.png.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { repoRoot, startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(here, 'screenshots');
const CHROMIUM = process.env.EVENTCAST_CHROMIUM || '/usr/bin/chromium';
const WIDE = { width: 1440, height: 900 };

mkdirSync(SHOTS, { recursive: true });

let browser;
let server;

before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
    // Two streams per user at most, so the test of a refused prompt needs only three.
    server = await startServer({ extraArgs: ['--chat-max-streams-per-user', '2'] });
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
    });
});

after(async () => {
    await browser?.close();
    await server?.stop();
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** A fresh browser context and page on `url`, recording page errors and console errors. */
async function openPage(url, { viewport = WIDE, ignoreHTTPSErrors = false } = {}) {
    const context = await browser.newContext({ viewport, ignoreHTTPSErrors });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const problems = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(url);
    await page.getByTestId('api-key-hint').filter({ hasNotText: 'Loading' }).waitFor();
    return { page, context, problems, close: () => context.close() };
}

async function shot(page, name) {
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
}

function stateLocator(page, ...states) {
    return page.locator(states.map((s) => `[data-testid=conn-status][data-state="${s}"]`).join(', '));
}

async function waitState(page, state, timeout = 15000) {
    await stateLocator(page, state).waitFor({ timeout });
}

async function connect(page) {
    await page.getByTestId('connect').click();
    await waitState(page, 'connected');
}

async function subscribe(page, channel, expect = 'active') {
    await page.getByTestId('sub-channel').fill(channel);
    await page.getByTestId('subscribe').click();
    const sub = page.locator(`[data-testid=sub][data-channel="${channel}"][data-state="${expect}"]`);
    await sub.waitFor();
    return sub;
}

/** Types a prompt in conversation `n` (0-based) and sends it with Enter. */
async function ask(page, n, prompt, { user, maxTokens } = {}) {
    const convo = page.getByTestId('conversation').nth(n);
    if (user) await convo.getByTestId('user-id').fill(user);
    if (maxTokens) await convo.getByTestId('max-tokens').fill(String(maxTokens));
    await convo.getByTestId('prompt').fill(prompt);
    await convo.getByTestId('prompt').press('Enter');
    return convo;
}

/** The last answer of a conversation once its status is one of `statuses`. */
async function answerWhen(convo, statuses, timeout = 20000) {
    const box = convo.getByTestId('answer-box').last();
    await convo.page().waitForFunction(
        ([el, wanted]) => wanted.includes(el.dataset.status),
        [await box.elementHandle(), statuses], { timeout });
    return box;
}

async function serverStream(id, srv = server) {
    const r = await fetch(`http://127.0.0.1:${srv.port}/chat/${id}`,
                          { headers: { 'x-api-key': srv.apiKey } });
    assert.equal(r.status, 200, `GET /chat/${id}`);
    return r.json();
}

async function words(box) {
    const text = await box.getByTestId('answer').textContent();
    return text.trim() ? text.trim().split(/\s+/).length : 0;
}

function noProblems(problems) {
    assert.deepEqual(problems, [], 'no page errors, console errors or CSP violations');
}

// ---------------------------------------------------------------------------------------------

describe('demo web app over http (ws://)', () => {
    test('GET / serves the page with its files and a CSP', { timeout: 15000 }, async () => {
        const r = await fetch(server.httpUrl);
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type'), /text\/html/);
        assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
        const html = await r.text();
        assert.match(html, /<script type="module" src="app\.js">/);
        for (const [file, type] of [['app.js', /javascript/], ['style.css', /text\/css/]]) {
            const f = await fetch(new URL(file, server.httpUrl));
            assert.equal(f.status, 200, file);
            assert.match(f.headers.get('content-type'), type, file);
        }
    });

    test('loads with the key prefilled, connects and subscribes', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl);
        try {
            assert.equal(await page.getByTestId('api-key').inputValue(), server.apiKey);
            assert.equal(await page.getByTestId('api-key').getAttribute('type'), 'password');
            assert.equal(await page.getByTestId('sub-channel').inputValue(), 'BedrockChat/*');
            assert.match(await page.getByTestId('provider-info').textContent(), /demo/);
            await shot(page, '01-loaded');
            await connect(page);
            assert.equal(await page.getByTestId('endpoint').textContent(),
                         `ws://127.0.0.1:${server.port}/event/realtime`);
            assert.match(await page.getByTestId('conn-detail').textContent(), /connectionTimeoutMs \d+/);
            const sub = await subscribe(page, 'BedrockChat/*');
            assert.match(await sub.getByTestId('sub-state').textContent(), /active \(sub-\d+\)/);
            const log = page.getByTestId('frame-log');
            for (const kind of ['connection_init', 'connection_ack', 'ka', 'subscribe', 'subscribe_success'])
                await log.locator(`.entry[data-kind="${kind}"]`).first().waitFor();
            // The key is masked in the protocol view.
            assert.doesNotMatch(await log.textContent(), new RegExp(server.apiKey));
            await shot(page, '02-connected-subscribed');
            noProblems(problems);
        } finally {
            await close();
        }
    });

    test('a prompt streams in, in order, and matches GET /chat/<id>', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl);
        try {
            await connect(page);
            await subscribe(page, 'BedrockChat/*');
            const prompt = 'What is AppSync Events?';
            const convo = await ask(page, 0, prompt);
            const box = await answerWhen(convo, ['done', 'error', 'cancelled']);
            assert.equal(await box.getAttribute('data-status'), 'done');
            const id = await box.getAttribute('data-stream-id');
            assert.match(id, /^s-/);
            const text = await box.getByTestId('answer').textContent();
            const s = await serverStream(id);
            assert.equal(s.status, 'completed');
            assert.equal(text, s.text, 'the page shows the server\'s text, in order');
            assert.ok(text.startsWith(`[demo model] You said: ${prompt}`), text);
            assert.equal(await convo.getByTestId('you-text').last().textContent(), prompt);
            assert.match(await box.getByTestId('answer-meta').textContent(), /demo · eventcast-demo-1 \(offline demo model/);
            const end = await box.getByTestId('answer-end').textContent();
            assert.match(end, /stop reason end_turn/);
            assert.match(end, /tokens in 4, out 48/);
            assert.match(end, /first chunk \d+ ms · \d+ chunks, [\d.]+\/s/);
            assert.equal(await box.getByTestId('answer').getAttribute('aria-busy'), 'false');
            // The protocol view lists every data frame of the stream, seq 0..n without gaps.
            const row = page.locator(`[data-testid=stream-row][data-stream-id="${id}"]`);
            assert.equal(await row.getAttribute('data-status'), 'done');
            assert.match(await row.getByTestId('ttfc').textContent(), /^\d+ ms$/);
            assert.match(await row.getByTestId('rate').textContent(), /^[\d.]+$/);
            const sums = await page.locator('[data-testid=frame-log] .entry[data-kind="data"] .sum').allTextContents();
            const seqs = sums.map((t) => Number(/#(\d+)/.exec(t)?.[1]));
            assert.deepEqual(seqs, seqs.map((_, i) => i), 'data frames in seq order');
            assert.equal(seqs.length, s.seq + 1);
            assert.match(sums.at(-1), / end #\d+ end_turn/);
            // Frames expand to their JSON.
            const last = page.locator('[data-testid=frame-log] .entry[data-kind="data"]').last();
            await last.locator('summary').click();
            assert.match(await last.locator('pre').textContent(), /"stopReason": "end_turn"/);
            assert.equal(await page.getByTestId('cancel').first().isDisabled(), true);
            await shot(page, '03-answer-complete');
            noProblems(problems);
        } finally {
            await close();
        }
    });

    test('a long answer is cancelled', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl);
        try {
            await connect(page);
            // No subscription yet: sending subscribes to the user's own channel.
            const convo = await ask(page, 0, 'Tell me everything', { user: 'dora', maxTokens: 100000 });
            await page.locator('[data-testid=sub][data-channel="BedrockChat/dora"][data-state=active]').waitFor();
            const box = await answerWhen(convo, ['streaming']);
            const cancel = convo.getByTestId('cancel');
            await page.waitForFunction((el) => !el.disabled, await cancel.elementHandle());
            await page.waitForFunction(
                (el) => el.textContent.split(/\s+/).length >= 12,
                await box.getByTestId('answer').elementHandle());
            await shot(page, '04-streaming');
            await cancel.click();
            await answerWhen(convo, ['cancelled', 'done', 'error']);
            assert.equal(await box.getAttribute('data-status'), 'cancelled');
            const end = box.getByTestId('answer-end');
            assert.equal(await end.getAttribute('data-stop-reason'), 'cancelled');
            assert.match(await end.textContent(), /^Cancelled: stop reason cancelled/);
            const s = await serverStream(await box.getAttribute('data-stream-id'));
            assert.equal(s.status, 'cancelled');
            assert.equal(await box.getByTestId('answer').textContent(), s.text);
            assert.ok((await words(box)) < 1000, 'it stopped long before maxTokens');
            assert.match(await convo.getByTestId('convo-status').textContent(), /Cancelled/);
            assert.equal(await convo.getByTestId('send').isDisabled(), false);
            await shot(page, '05-cancelled');
            noProblems(problems);
        } finally {
            await close();
        }
    });

    test('two conversations stream side by side', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl);
        try {
            await connect(page);
            await subscribe(page, 'BedrockChat/*');
            await page.getByTestId('add-conversation').click();
            const second = page.getByTestId('conversation').nth(1);
            assert.equal(await second.getByTestId('user-id').inputValue(), 'bob');
            // The new conversation's user id field has focus.
            assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'user-id');
            const a = await ask(page, 0, 'How do channels work?', { maxTokens: 200 });
            const b = await ask(page, 1, 'And wildcards?', { maxTokens: 200 });
            const boxA = await answerWhen(a, ['streaming']);
            const boxB = await answerWhen(b, ['streaming']);
            await page.waitForFunction(([x, y]) => x.textContent.length > 120 && y.textContent.length > 120,
                [await boxA.getByTestId('answer').elementHandle(), await boxB.getByTestId('answer').elementHandle()]);
            const mid = await shot(page, '06-two-conversations-mid-stream');
            if (process.env.EVENTCAST_WEB_DOCS_SHOT)
                copyFileSync(mid, join(repoRoot, 'docs', 'images', 'web-mid-stream.png'));
            // Side by side on a wide screen.
            const ra = await a.boundingBox();
            const rb = await b.boundingBox();
            assert.ok(rb.x > ra.x + ra.width - 1 && Math.abs(rb.y - ra.y) < 2, 'side by side');
            for (const [convo, box, prompt] of [[a, boxA, 'How do channels work?'], [b, boxB, 'And wildcards?']]) {
                await answerWhen(convo, ['done', 'error', 'cancelled'], 30000);
                assert.equal(await box.getAttribute('data-status'), 'done');
                const s = await serverStream(await box.getAttribute('data-stream-id'));
                const text = await box.getByTestId('answer').textContent();
                assert.equal(text, s.text);
                assert.ok(text.startsWith(`[demo model] You said: ${prompt}`), text);
            }
            assert.equal(await page.getByTestId('stream-row').count(), 2);
            await shot(page, '07-two-conversations-done');
            noProblems(problems);
        } finally {
            await close();
        }
    });

    test('streams started by another client are shown too', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl);
        try {
            await connect(page);
            await subscribe(page, 'BedrockChat/*');
            const r = await fetch(`http://127.0.0.1:${server.port}/chat`, {
                method: 'POST',
                headers: { 'x-api-key': server.apiKey, 'content-type': 'application/json' },
                body: JSON.stringify({ userId: 'zoe', prompt: 'Hello from curl' }),
            });
            assert.equal(r.status, 200);
            const { streamId } = await r.json();
            const box = page.getByTestId('observed')
                .locator(`[data-testid=answer-box][data-stream-id="${streamId}"][data-status=done]`);
            await box.waitFor({ timeout: 20000 });
            const s = await serverStream(streamId);
            assert.equal(await box.getByTestId('answer').textContent(), s.text);
            assert.match(await box.getByTestId('answer-end').textContent(), /stop reason end_turn/);
            await shot(page, '07b-observed-stream');
            noProblems(problems);
        } finally {
            await close();
        }
    });

    test('a refused subscription and a refused prompt are shown as errors', { timeout: 60000 }, async () => {
        const { page, close } = await openPage(server.httpUrl);
        try {
            await connect(page);
            const bad = await subscribe(page, 'nope/room', 'error');
            assert.match(await bad.getByTestId('sub-error').textContent(), /^UnauthorizedException: /);
            const invalid = await subscribe(page, 'BedrockChat/a_b', 'error');
            assert.match(await invalid.getByTestId('sub-error').textContent(), /^InvalidInputError: .*a_b/);
            // A user id that is not a channel segment is caught before sending.
            const first = page.getByTestId('conversation').first();
            await first.getByTestId('user-id').fill('no spaces');
            await first.getByTestId('prompt').fill('hi');
            await first.getByTestId('prompt').press('Enter');
            assert.equal(await first.getByTestId('user-id').getAttribute('aria-invalid'), 'true');
            assert.match(await first.getByTestId('convo-status').textContent(), /User id/);
            // This server allows 2 streams per user: a third is refused with 429.
            await subscribe(page, 'BedrockChat/*');
            for (let i = 0; i < 2; i += 1) await page.getByTestId('add-conversation').click();
            for (let i = 0; i < 3; i += 1) {
                const convo = await ask(page, i, `long answer ${i}`, { user: 'erin', maxTokens: 100000 });
                await answerWhen(convo, i < 2 ? ['streaming'] : ['error']);
            }
            const third = page.getByTestId('conversation').nth(2);
            const err = third.getByTestId('answer-error');
            assert.equal(await err.getAttribute('data-error-type'), 'LimitExceededException');
            assert.equal(await err.textContent(),
                         "LimitExceededException: user 'erin' has 2 streams running; the limit is 2");
            assert.equal(await third.getByTestId('answer').isHidden(), true);
            assert.equal(await third.getByTestId('send').isDisabled(), false);
            await shot(page, '08-errors');
            for (let i = 0; i < 2; i += 1) {
                const convo = page.getByTestId('conversation').nth(i);
                await convo.getByTestId('cancel').click();
                await answerWhen(convo, ['cancelled']);
            }
        } finally {
            await close();
        }
    });

    test('a wrong API key is refused with the server\'s message', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl);
        try {
            await page.getByTestId('api-key').fill('da2-not-the-right-key');
            await page.getByTestId('connect').click();
            await waitState(page, 'unauthorized');
            assert.equal(await page.getByTestId('conn-state').textContent(), 'Wrong API key');
            assert.equal(await page.getByTestId('conn-detail').textContent(),
                         'UnauthorizedException: You are not authorized to make this call.');
            await page.locator('[data-testid=frame-log] .entry[data-kind="connection_error"]').waitFor();
            // No retry after a refused key; the connect button is usable again.
            await page.waitForTimeout(1500);
            assert.equal(await page.locator('[data-testid=frame-log] .entry[data-kind="connect"]').count(), 1);
            assert.equal(await page.getByTestId('connect').isDisabled(), false);
            await shot(page, '09-wrong-key');
            await page.getByTestId('api-key').fill(server.apiKey);
            await page.getByTestId('connect').click();
            await waitState(page, 'connected');
            noProblems(problems);
        } finally {
            await close();
        }
    });

    test('accessible and keyboard usable; one column on a narrow screen', { timeout: 60000 }, async () => {
        const { page, problems, close } = await openPage(server.httpUrl, { viewport: { width: 390, height: 844 } });
        try {
            const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, textarea, button')]
                .filter((e) => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim()))
                .map((e) => e.outerHTML));
            assert.deepEqual(unlabeled, [], 'every control has a label');
            assert.equal(await page.getByTestId('conn-status').getAttribute('aria-live'), 'polite');
            // Keyboard: from the key field, Tab reaches Show and Connect; Enter connects.
            await page.getByTestId('api-key').focus();
            await page.keyboard.press('Tab');
            assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'show-key');
            await page.keyboard.press('Tab');
            assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'connect');
            const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
            assert.equal(outline, 'solid', 'visible focus');
            await page.keyboard.press('Enter');
            await waitState(page, 'connected');
            // Single column: the three panels are stacked at the same x.
            const boxes = await Promise.all(['connection-panel', 'chat-panel', 'protocol-panel']
                .map((id) => page.getByTestId(id).boundingBox()));
            assert.ok(boxes.every((b) => Math.abs(b.x - boxes[0].x) < 1 && b.x + b.width <= 390), JSON.stringify(boxes));
            assert.ok(boxes[0].y < boxes[1].y && boxes[1].y < boxes[2].y);
            const convo = await ask(page, 0, 'Small screens too?');
            const box = await answerWhen(convo, ['done']);
            assert.equal(await box.getByTestId('answer').getAttribute('aria-live'), 'polite');
            const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
            assert.ok(scrollWidth <= 390, `no horizontal scrolling (${scrollWidth})`);
            await shot(page, '10-narrow');
            noProblems(problems);
        } finally {
            await close();
        }
    });
});

describe('demo web app over https (wss://)', () => {
    test('the page over TLS connects with wss and streams', { timeout: 60000 }, async () => {
        const url = `https://127.0.0.1:${server.port}/`;
        const { page, problems, close } = await openPage(url, { ignoreHTTPSErrors: true });
        try {
            assert.equal(await page.evaluate(() => location.protocol), 'https:');
            assert.equal(await page.getByTestId('api-key').inputValue(), server.apiKey);
            await connect(page);
            assert.equal(await page.getByTestId('endpoint').textContent(),
                         `wss://127.0.0.1:${server.port}/event/realtime`);
            await subscribe(page, 'BedrockChat/*');
            const convo = await ask(page, 0, 'Over TLS?');
            const box = await answerWhen(convo, ['done', 'error', 'cancelled']);
            assert.equal(await box.getAttribute('data-status'), 'done');
            const s = await serverStream(await box.getAttribute('data-stream-id'));
            assert.equal(await box.getByTestId('answer').textContent(), s.text);
            await shot(page, '11-https');
            noProblems(problems);
        } finally {
            await close();
        }
    });
});

describe('server down', () => {
    test('reconnects with backoff after the server goes away and comes back', { timeout: 90000 }, async () => {
        let own = await startServer();
        const port = own.port;
        const { page, close } = await openPage(own.httpUrl);
        try {
            await connect(page);
            await subscribe(page, 'BedrockChat/*');
            await own.stop();
            await stateLocator(page, 'reconnecting', 'down').waitFor({ timeout: 10000 });
            await shot(page, '12-connection-lost');
            await waitState(page, 'down', 20000);
            assert.equal(await page.getByTestId('conn-state').textContent(), 'Server down');
            assert.match(await page.getByTestId('conn-detail').textContent(),
                         new RegExp(`Cannot reach 127\\.0\\.0\\.1:${port}\\. (Retry \\d+ in [\\d.]+ s|Trying again)`));
            assert.equal(await page.locator('[data-testid=sub][data-channel="BedrockChat/*"]').getAttribute('data-state'), 'waiting');
            await shot(page, '13-server-down');
            // The same port again: the page reconnects and subscribes again by itself.
            own = await startServer({ port });
            await waitState(page, 'connected', 40000);
            await page.locator('[data-testid=sub][data-channel="BedrockChat/*"][data-state=active]').waitFor();
            const convo = await ask(page, 0, 'Back again?');
            const box = await answerWhen(convo, ['done', 'error', 'cancelled']);
            assert.equal(await box.getAttribute('data-status'), 'done');
            await shot(page, '14-reconnected');
        } finally {
            await close();
            await own.stop();
        }
    });
});
