// eventcast demo web app. Plain ES module, no build step, no dependencies: it speaks the AWS
// AppSync Events protocol over the browser's own WebSocket to the page's origin, starts chat
// streams with fetch('/chat'), and renders their answers from the `data` frames it receives.
//
// The page is served by the eventcast binary under a Content-Security-Policy without inline
// scripts or styles, so everything here works through the DOM (textContent, classes, hidden).

const $ = (sel, root = document) => root.querySelector(sel);

// What /web-config.json tells us (defaults until it answers).
const config = { chatNamespace: 'BedrockChat', namespaces: [], chatProvider: '', apiKey: null };

const SEGMENT = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,48}[A-Za-z0-9])?$/;
const USER_NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

// ---------------------------------------------------------------------------------------------
// Small helpers

function base64url(text) {
    let bin = '';
    for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function clock(date = new Date()) {
    const p = (n, w = 2) => String(n).padStart(w, '0');
    return `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}.${p(date.getMilliseconds(), 3)}`;
}

function maskKey(key) {
    if (typeof key !== 'string' || key.length <= 8) return '••••';
    return `${key.slice(0, 4)}…${key.slice(-2)}`;
}

// A copy of a frame with API keys masked, for the protocol view and screenshots.
function masked(value) {
    if (Array.isArray(value)) return value.map(masked);
    if (value && typeof value === 'object') {
        const out = {};
        for (const [k, v] of Object.entries(value))
            out[k] = k.toLowerCase() === 'x-api-key' ? maskKey(v) : masked(v);
        return out;
    }
    return value;
}

function firstError(msg) {
    const errors = msg?.errors ?? msg?.payload?.errors;
    const e = Array.isArray(errors) && errors.length ? errors[0] : null;
    return {
        type: e?.errorType ?? msg?.errorType ?? 'Error',
        message: e?.message ?? msg?.message ?? '',
    };
}

function shortId(id) {
    return id.length > 7 ? `${id.slice(0, 6)}…` : id;
}

function ms(value) {
    if (value == null || !Number.isFinite(value)) return '–';
    if (value < 1000) return `${Math.round(value)} ms`;
    return value < 10000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value / 1000)} s`;
}

function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text != null) e.textContent = text;
    return e;
}

// ---------------------------------------------------------------------------------------------
// Protocol view: every frame sent and received, HTTP calls, and connection events.

const protocolLog = {
    list: null,
    count: 0,
    max: 3000,
    scheduled: false,

    init() {
        this.list = $('#frame-log');
        const filters = { 'show-ka': 'hide-ka', 'show-data': 'hide-data', 'show-http': 'hide-http' };
        for (const [id, cls] of Object.entries(filters)) {
            const box = $(`#${id}`);
            box.addEventListener('change', () => this.list.classList.toggle(cls, !box.checked));
        }
        $('#clear-log').addEventListener('click', () => {
            this.list.replaceChildren();
            this.count = 0;
            $('#frame-count').textContent = '0';
        });
    },

    // dir: 'out' (sent), 'in' (received) or 'info'; kind: the frame type, 'http' or a word.
    add(dir, kind, summary, body) {
        const li = el('li', 'entry');
        li.dataset.dir = dir;
        li.dataset.kind = kind;
        const arrow = dir === 'out' ? '→' : dir === 'in' ? '←' : '•';
        const label = dir === 'out' ? 'sent' : dir === 'in' ? 'received' : 'event';
        const head = [el('time', 'ts', clock()), el('span', 'dir', arrow), el('span', 'kind', kind),
                      el('span', 'sum', summary || '')];
        head[3].title = summary || '';
        head[1].setAttribute('aria-label', label);
        if (body !== undefined) {
            const details = el('details');
            const summaryEl = el('summary');
            summaryEl.append(...head);
            const pre = el('pre', 'frame',
                typeof body === 'string' ? body : JSON.stringify(body, null, 2));
            details.append(summaryEl, pre);
            li.append(details);
        } else {
            const line = el('div', 'line');
            line.append(...head);
            li.append(line);
        }
        this.list.append(li);
        this.count += 1;
        while (this.list.childElementCount > this.max) this.list.firstElementChild.remove();
        $('#frame-count').textContent = String(this.count);
        if (!this.scheduled && $('#follow-log').checked) {
            this.scheduled = true;
            requestAnimationFrame(() => {
                this.scheduled = false;
                this.list.scrollTop = this.list.scrollHeight;
            });
        }
    },
};

// ---------------------------------------------------------------------------------------------
// Connection: the AppSync Events WebSocket, with reconnect and backoff.

const STATE_TITLES = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    connected: 'Connected',
    reconnecting: 'Connection lost: reconnecting',
    down: 'Server down',
    unauthorized: 'Wrong API key',
    error: 'Connection refused',
    disconnected: 'Disconnected',
};

const conn = {
    ws: null,
    key: '',
    want: false,        // the user wants to be connected (reconnect after a drop)
    state: 'idle',
    opened: false,      // the current socket reached 'open'
    fatal: null,        // a connection_error: do not retry
    attempt: 0,         // reconnect attempts since the last connection_ack
    retryTimer: null,
    kaTimer: null,
    timeoutMs: 0,
    kaCount: 0,
    lastKa: null,
    nextId: 1,
    why: '',            // why the last attempt failed, shown while retrying
};

function setState(state, detail = '') {
    const changed = state !== conn.state || detail !== $('#conn-detail').textContent;
    conn.state = state;
    const box = $('#conn-status');
    box.dataset.state = state;
    $('#conn-state').textContent = STATE_TITLES[state] ?? state;
    $('#conn-detail').textContent = detail;
    const active = ['connecting', 'connected', 'reconnecting', 'down'].includes(state) && conn.want;
    $('#connect').disabled = active;
    $('#disconnect').disabled = !active;
    if (state === 'unauthorized') $('#api-key').setAttribute('aria-invalid', 'true');
    if (changed) protocolLog.add('info', 'state', `${STATE_TITLES[state] ?? state}${detail ? `: ${detail}` : ''}`);
    updateSendButtons();
}

function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/event/realtime`;
}

function authorization() {
    return { 'x-api-key': conn.key, host: location.host };
}

function connect() {
    const input = $('#api-key');
    const key = input.value.trim();
    if (!key) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        setState('error', 'Enter an API key first.');
        return;
    }
    input.removeAttribute('aria-invalid');
    conn.key = key;
    conn.want = true;
    conn.fatal = null;
    conn.attempt = 0;
    openSocket();
}

function disconnect() {
    conn.want = false;
    clearTimeout(conn.retryTimer);
    conn.retryTimer = null;
    if (conn.ws) {
        protocolLog.add('info', 'close', 'closing the WebSocket (1000)');
        conn.ws.close(1000, 'closed by the user');
    } else {
        setState('disconnected', 'Closed by you.');
    }
}

function openSocket() {
    clearTimeout(conn.retryTimer);
    conn.retryTimer = null;
    const url = wsUrl();
    const header = { host: location.host, 'x-api-key': conn.key };
    const protocols = ['aws-appsync-event-ws', `header-${base64url(JSON.stringify(header))}`];
    $('#endpoint').textContent = url;
    if (conn.attempt === 0) setState('connecting', url);
    else setState(conn.state, `${conn.why} Trying again (attempt ${conn.attempt})…`);
    protocolLog.add('info', 'connect', `new WebSocket ${url}`, {
        url,
        protocols: ['aws-appsync-event-ws', 'header-<base64url of the JSON below>'],
        header: masked(header),
    });
    let ws;
    try {
        ws = new WebSocket(url, protocols);
    } catch (e) {
        conn.fatal = { type: 'Error', message: String(e.message ?? e) };
        setState('error', conn.fatal.message);
        return;
    }
    conn.ws = ws;
    conn.opened = false;
    ws.onopen = () => {
        if (ws !== conn.ws) return;
        conn.opened = true;
        protocolLog.add('info', 'open', `open, subprotocol '${ws.protocol}'`);
        send({ type: 'connection_init' });
    };
    ws.onmessage = (ev) => {
        if (ws === conn.ws) onFrame(ev.data);
    };
    ws.onclose = (ev) => {
        if (ws === conn.ws) onClose(ev);
    };
}

function send(frame) {
    if (!conn.ws || conn.ws.readyState !== WebSocket.OPEN) return false;
    const text = JSON.stringify(frame);
    conn.ws.send(text);
    protocolLog.add('out', frame.type, frameSummary(frame), masked(frame));
    return true;
}

function frameSummary(frame) {
    switch (frame.type) {
    case 'subscribe': return `${frame.id} ${frame.channel}`;
    case 'unsubscribe': return frame.id;
    case 'connection_ack': return `connectionTimeoutMs ${frame.connectionTimeoutMs}`;
    case 'subscribe_success':
    case 'unsubscribe_success': {
        const sub = subByWireId(frame.id);
        return `${frame.id}${sub ? ` ${sub.channel}` : ''}`;
    }
    case 'subscribe_error':
    case 'unsubscribe_error':
    case 'connection_error':
    case 'publish_error':
    case 'error': {
        const e = firstError(frame);
        return `${frame.id ? `${frame.id} ` : ''}${e.type}: ${e.message}`;
    }
    default: return frame.id ?? '';
    }
}

function armKeepAliveWatchdog() {
    clearTimeout(conn.kaTimer);
    if (!conn.timeoutMs || !conn.ws) return;
    const ws = conn.ws;
    conn.kaTimer = setTimeout(() => {
        if (ws !== conn.ws) return;
        protocolLog.add('info', 'timeout', `nothing received for ${conn.timeoutMs} ms (connectionTimeoutMs): closing`);
        ws.close(4000, 'keep-alive timeout');
    }, conn.timeoutMs);
}

function renderKa() {
    $('#ka-info').textContent = conn.kaCount
        ? `${conn.kaCount} ka, last at ${clock(conn.lastKa)}; timeout ${ms(conn.timeoutMs)}`
        : conn.timeoutMs ? `timeout ${ms(conn.timeoutMs)}` : '–';
}

function onFrame(text) {
    let msg;
    try {
        msg = JSON.parse(text);
    } catch {
        protocolLog.add('in', 'invalid', String(text).slice(0, 80), String(text));
        return;
    }
    armKeepAliveWatchdog();
    if (msg.type === 'data') {
        onData(msg);
        return;
    }
    protocolLog.add('in', msg.type ?? '?', frameSummary(msg), msg.type === 'ka' ? undefined : msg);
    switch (msg.type) {
    case 'connection_ack':
        conn.timeoutMs = Number(msg.connectionTimeoutMs) || 0;
        conn.attempt = 0;
        setState('connected', `connection_ack, connectionTimeoutMs ${conn.timeoutMs}`);
        renderKa();
        armKeepAliveWatchdog();
        for (const sub of subs) if (sub.state !== 'error') subscribeOnWire(sub);
        break;
    case 'ka':
        conn.kaCount += 1;
        conn.lastKa = new Date();
        renderKa();
        break;
    case 'connection_error': {
        const e = firstError(msg);
        conn.fatal = e;
        conn.want = false;
        setState(e.type === 'UnauthorizedException' ? 'unauthorized' : 'error',
                 `${e.type}: ${e.message || 'the server refused the connection'}`);
        break;
    }
    case 'subscribe_success': {
        const sub = subByWireId(msg.id);
        if (sub) setSubState(sub, 'active');
        break;
    }
    case 'subscribe_error': {
        const sub = subByWireId(msg.id);
        if (sub) setSubState(sub, 'error', firstError(msg));
        break;
    }
    case 'unsubscribe_success': {
        const sub = subByWireId(msg.id);
        if (sub) removeSub(sub);
        break;
    }
    case 'unsubscribe_error': {
        const sub = subByWireId(msg.id);
        if (sub) setSubState(sub, 'active', firstError(msg));
        break;
    }
    default:
        break;
    }
}

function onClose(ev) {
    conn.ws = null;
    clearTimeout(conn.kaTimer);
    protocolLog.add('info', 'close', `closed: code ${ev.code}${ev.reason ? ` '${ev.reason}'` : ''}${ev.wasClean ? '' : ' (not clean)'}`);
    for (const sub of subs) {
        if (sub.state === 'unsubscribing') removeSub(sub);
        else if (sub.state !== 'error') setSubState(sub, 'waiting');
    }
    if (conn.fatal) {
        setState(conn.state, $('#conn-detail').textContent);
        return;
    }
    if (!conn.want) {
        setState('disconnected', 'Closed by you.');
        return;
    }
    scheduleRetry(conn.opened, ev);
}

async function scheduleRetry(wasOpen, ev) {
    conn.attempt += 1;
    const base = Math.min(30000, 1000 * 2 ** (conn.attempt - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const inS = `Retry ${conn.attempt} in ${(delay / 1000).toFixed(1)} s.`;
    let state = 'reconnecting';
    let why = wasOpen ? `Closed with code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}.`
                      : 'The WebSocket could not be opened.';
    if (!wasOpen) {
        // Tell a server that is gone from a WebSocket that fails for another reason.
        try {
            const r = await fetch('/healthz', { cache: 'no-store', signal: AbortSignal.timeout(3000) });
            if (r.status === 503) why = 'The server is shutting down.';
            else if (!r.ok) why = `The WebSocket could not be opened; /healthz answered ${r.status}.`;
        } catch {
            state = 'down';
            why = `Cannot reach ${location.host}.`;
        }
    }
    if (!conn.want || conn.ws) return;  // disconnected or reconnected meanwhile
    conn.why = why;
    setState(state, `${why} ${inS}`);
    clearTimeout(conn.retryTimer);
    conn.retryTimer = setTimeout(() => {
        if (conn.want && !conn.ws) openSocket();
    }, delay);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions. Each one keeps its channel across reconnects and is subscribed again (with a
// new id) after every connection_ack.

const subs = [];
let subKeys = 0;

function subByWireId(id) {
    return subs.find((s) => s.id === id);
}

function normalizeChannel(text) {
    return text.trim().replace(/^\/+/, '').replace(/\/+$/, '');
}

function covers(sub, channel) {
    if (sub.channel === channel) return true;
    return sub.channel.endsWith('/*') && channel.startsWith(sub.channel.slice(0, -1));
}

function addSubscription(channelText) {
    const channel = normalizeChannel(channelText);
    const existing = subs.find((s) => s.channel === channel && s.state !== 'error');
    if (existing) return existing;
    const sub = { key: ++subKeys, channel, id: null, state: 'waiting', error: null, count: 0,
                  waiters: [], el: null };
    subs.push(sub);
    renderSub(sub);
    if (conn.state === 'connected') subscribeOnWire(sub);
    return sub;
}

function subscribeOnWire(sub) {
    sub.id = `sub-${conn.nextId++}`;
    setSubState(sub, 'pending');
    send({ type: 'subscribe', id: sub.id, channel: `/${sub.channel}`, authorization: authorization() });
}

function unsubscribe(sub) {
    if (sub.state === 'active' && conn.state === 'connected' &&
        send({ type: 'unsubscribe', id: sub.id })) {
        setSubState(sub, 'unsubscribing');
    } else {
        removeSub(sub);
    }
}

function removeSub(sub) {
    const i = subs.indexOf(sub);
    if (i >= 0) subs.splice(i, 1);
    sub.el?.remove();
    for (const w of sub.waiters) w.reject(new Error('unsubscribed'));
    sub.waiters = [];
}

function setSubState(sub, state, error = null) {
    sub.state = state;
    sub.error = error;
    if (state === 'active' || state === 'error') {
        for (const w of sub.waiters) {
            if (state === 'active') w.resolve(sub);
            else w.reject(new Error(`${error.type}: ${error.message}`));
        }
        sub.waiters = [];
    }
    renderSub(sub);
}

function whenSubscribed(sub, timeoutMs) {
    if (sub.state === 'active') return Promise.resolve(sub);
    if (sub.state === 'error') return Promise.reject(new Error(`${sub.error.type}: ${sub.error.message}`));
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no subscribe_success within ${timeoutMs} ms`)), timeoutMs);
        sub.waiters.push({
            resolve: (v) => { clearTimeout(timer); resolve(v); },
            reject: (e) => { clearTimeout(timer); reject(e); },
        });
    });
}

const SUB_LABELS = { waiting: 'waiting for a connection', pending: 'subscribing…', active: 'active',
                     error: 'rejected', unsubscribing: 'unsubscribing…' };

function renderSub(sub) {
    if (!sub.el) {
        sub.el = el('li', 'sub');
        sub.el.dataset.testid = 'sub';
        const name = el('code', 'sub-channel');
        const state = el('span', 'sub-state');
        state.dataset.testid = 'sub-state';
        const count = el('span', 'sub-count');
        count.dataset.testid = 'sub-count';
        const err = el('p', 'sub-error');
        err.dataset.testid = 'sub-error';
        err.setAttribute('role', 'alert');
        const btn = el('button', 'ghost small');
        btn.type = 'button';
        btn.dataset.testid = 'unsubscribe';
        btn.addEventListener('click', () => unsubscribe(sub));
        sub.el.append(name, state, count, btn, err);
        $('#sub-list').append(sub.el);
    }
    const [name, state, count, btn, err] = sub.el.children;
    sub.el.dataset.state = sub.state;
    sub.el.dataset.channel = sub.channel;
    name.textContent = `/${sub.channel}`;
    state.textContent = `${SUB_LABELS[sub.state] ?? sub.state}${sub.id && sub.state !== 'waiting' ? ` (${sub.id})` : ''}`;
    count.textContent = sub.count ? `${sub.count} events` : '';
    btn.textContent = sub.state === 'error' ? 'Dismiss' : 'Unsubscribe';
    btn.setAttribute('aria-label', `${btn.textContent} /${sub.channel}`);
    btn.disabled = sub.state === 'unsubscribing';
    err.hidden = !sub.error;
    err.textContent = sub.error ? `${sub.error.type}: ${sub.error.message}` : '';
}

// ---------------------------------------------------------------------------------------------
// Chat streams. The server publishes a stream's `start` before it answers POST /chat, so events
// may arrive before we know which conversation they belong to: they wait in `unclaimed` until
// every POST in flight has answered, and streams nobody here started are shown as "observed".

const streams = new Map();      // streamId -> stream
const unclaimed = new Map();    // streamId -> [event]
let postsInFlight = 0;

function onData(msg) {
    const sub = subByWireId(msg.id);
    let event = null;
    try {
        event = typeof msg.event === 'string' ? JSON.parse(msg.event) : msg.event;
    } catch { /* not JSON: shown as is */ }
    let summary = `${msg.id}`;
    if (event && typeof event === 'object' && event.type) {
        if (typeof event.streamId === 'string') summary += ` ${shortId(event.streamId)}`;
        summary += ` ${event.type} #${event.seq}`;
        if (event.type === 'delta') summary += ` ${JSON.stringify(String(event.data).slice(0, 40))}`;
        if (event.type === 'end') summary += ` ${event.stopReason}`;
        if (event.type === 'error') summary += ` ${event.errorType}`;
    }
    protocolLog.add('in', 'data', summary, { ...msg, event });
    if (sub) {
        sub.count += 1;
        renderSub(sub);
    }
    if (event && typeof event === 'object' && typeof event.streamId === 'string' &&
        Number.isInteger(event.seq))
        onChatEvent(event);
}

function onChatEvent(event) {
    const s = streams.get(event.streamId);
    if (s) {
        deliver(s, event);
        return;
    }
    if (!unclaimed.has(event.streamId)) unclaimed.set(event.streamId, []);
    unclaimed.get(event.streamId).push(event);
    if (postsInFlight === 0) adoptUnclaimed();
}

// Applies events in seq order; a repeated seq (two overlapping subscriptions) is dropped.
function deliver(s, event) {
    if (event.seq < s.nextSeq || s.buffer.has(event.seq)) {
        s.duplicates += 1;
        return;
    }
    s.buffer.set(event.seq, event);
    while (s.buffer.has(s.nextSeq)) {
        const e = s.buffer.get(s.nextSeq);
        s.buffer.delete(s.nextSeq);
        s.nextSeq += 1;
        apply(s, e);
    }
}

function apply(s, e) {
    const now = performance.now();
    const x = s.exchange;
    switch (e.type) {
    case 'start': {
        const parts = [e.provider, e.model].filter(Boolean);
        x.meta.textContent = `${parts.join(' · ')}${e.note ? ` (${e.note})` : ''}`;
        setExchangeStatus(x, 'streaming');
        break;
    }
    case 'delta':
        if (s.firstAt == null) s.firstAt = now;
        s.lastAt = now;
        s.deltas += 1;
        s.text += String(e.data ?? '');
        x.textNode.appendData(String(e.data ?? ''));
        setExchangeStatus(x, 'streaming');
        followLater(x.node.parentElement);
        break;
    case 'end': {
        s.status = e.stopReason === 'cancelled' ? 'cancelled' : 'done';
        const usage = e.usage
            ? ` · tokens in ${e.usage.inputTokens ?? '?'}, out ${e.usage.outputTokens ?? '?'}` : '';
        x.end.hidden = false;
        x.end.dataset.stopReason = e.stopReason ?? '';
        x.end.textContent = `${s.status === 'cancelled' ? 'Cancelled' : 'Done'}: stop reason ` +
            `${e.stopReason ?? '?'}${usage} · ${timing(s)}`;
        setExchangeStatus(x, s.status);
        finish(s);
        break;
    }
    case 'error':
        s.status = 'error';
        showError(x, e.errorType ?? 'Error', e.message ?? '');
        finish(s);
        break;
    default:
        break;
    }
    renderStreamRow(s);
}

function timing(s) {
    const first = s.firstAt != null ? s.firstAt - s.startedAt : null;
    return `first chunk ${ms(first)} · ${s.deltas} chunks${s.deltas > 1 ? `, ${rate(s)}/s` : ''}`;
}

function rate(s) {
    if (s.deltas < 2 || s.lastAt <= s.firstAt) return '–';
    return ((s.deltas - 1) / ((s.lastAt - s.firstAt) / 1000)).toFixed(1);
}

function finish(s) {
    s.exchange.answer.setAttribute('aria-busy', 'false');
    const convo = s.convo;
    if (convo && convo.active === s) {
        convo.active = null;
        if (s.status === 'done' || s.status === 'cancelled')
            convo.history.push({ role: 'user', content: s.prompt },
                               { role: 'assistant', content: s.text });
        convo.status.textContent = s.status === 'error' ? 'The answer failed.'
            : s.status === 'cancelled' ? 'Cancelled.' : 'Answer complete.';
        updateSendButtons();
    }
}

function newStream(id, convo, exchange, startedAt, user, prompt) {
    const s = { id, convo, exchange, user, prompt, startedAt, firstAt: null, lastAt: null,
                deltas: 0, duplicates: 0, nextSeq: 0, buffer: new Map(), text: '',
                status: 'streaming', row: null };
    streams.set(id, s);
    exchange.box.dataset.streamId = id;
    const pending = unclaimed.get(id);
    unclaimed.delete(id);
    renderStreamRow(s);
    for (const e of pending ?? []) deliver(s, e);
    return s;
}

// Events of streams that no POST from this page started: another tab, `eventcast chat`, curl.
function adoptUnclaimed() {
    for (const [id, events] of [...unclaimed]) {
        unclaimed.delete(id);
        const convo = observedConversation();
        const x = newExchange(convo, 'Started by another client; timing counts from its first event here.');
        x.node.querySelector('.you').classList.add('foreign');
        const s = newStream(id, null, x, performance.now(), '–', '');
        for (const e of events) deliver(s, e);
    }
}

const STREAM_STATUS = { streaming: 'streaming', done: 'done', cancelled: 'cancelled', error: 'error' };

function renderStreamRow(s) {
    if (!s.row) {
        s.row = el('tr');
        s.row.dataset.testid = 'stream-row';
        for (let i = 0; i < 6; i += 1) s.row.append(el('td'));
        $('#no-streams')?.remove();
        $('#stream-rows').append(s.row);
        $('#stream-count').textContent = String(streams.size);
    }
    const c = s.row.children;
    s.row.dataset.streamId = s.id;
    s.row.dataset.status = s.status;
    c[0].textContent = shortId(s.id);
    c[0].title = s.id;
    c[1].textContent = s.user;
    c[2].textContent = STREAM_STATUS[s.status] ?? s.status;
    c[3].textContent = s.firstAt != null ? ms(s.firstAt - s.startedAt) : '–';
    c[3].dataset.testid = 'ttfc';
    c[4].textContent = String(s.deltas);
    c[5].textContent = rate(s);
    c[5].dataset.testid = 'rate';
}

// ---------------------------------------------------------------------------------------------
// Conversations

const conversations = [];
let convoNumbers = 0;
let observed = null;

function nextUserId() {
    const used = new Set(conversations.map((c) => c.userInput?.value));
    return USER_NAMES.find((n) => !used.has(n)) ?? `user-${convoNumbers + 1}`;
}

function addConversation(userId = nextUserId()) {
    const n = ++convoNumbers;
    const node = $('#conversation-template').content.firstElementChild.cloneNode(true);
    const convo = { n, el: node, history: [], active: null };
    node.dataset.n = String(n);
    const title = $('.convo-title', node);
    title.textContent = `Conversation ${n}`;
    title.id = `c${n}-title`;
    node.setAttribute('aria-labelledby', title.id);
    for (const [cls, label] of [['user-id', 'l-user'], ['max-tokens', 'l-tokens'], ['prompt', 'l-prompt']]) {
        const input = $(`.${cls}`, node);
        input.id = `c${n}-${cls}`;
        $(`.${label}`, node).htmlFor = input.id;
    }
    convo.userInput = $('.user-id', node);
    convo.userInput.value = userId;
    convo.maxTokens = $('.max-tokens', node);
    convo.prompt = $('.prompt', node);
    convo.prompt.placeholder = 'Ask something, e.g. What is AppSync Events?';
    convo.send = $('.send', node);
    convo.cancel = $('.cancel', node);
    convo.status = $('.convo-status', node);
    convo.transcript = $('.transcript', node);
    watchScroll(convo.transcript);
    const remove = $('.remove', node);
    remove.setAttribute('aria-label', `Remove conversation ${n}`);

    const form = $('.convo-form', node);
    form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        sendPrompt(convo);
    });
    convo.prompt.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey &&
            !ev.isComposing) {
            ev.preventDefault();
            form.requestSubmit();
        } else if (ev.key === 'Escape' && convo.active) {
            ev.preventDefault();
            cancelStream(convo);
        }
    });
    convo.userInput.addEventListener('input', () => {
        convo.userInput.removeAttribute('aria-invalid');
        convo.history = [];  // a new user is a new conversation
    });
    convo.cancel.addEventListener('click', () => cancelStream(convo));
    remove.addEventListener('click', () => {
        if (convo.active) cancelStream(convo);
        node.remove();
        conversations.splice(conversations.indexOf(convo), 1);
        (conversations.at(-1)?.prompt ?? $('#add-conversation')).focus();
    });
    conversations.push(convo);
    $('#conversations').append(node);
    updateSendButtons();
    return convo;
}

// A read-only panel for streams started elsewhere, created when the first one shows up.
function observedConversation() {
    if (observed) return observed;
    const node = el('article', 'convo observed');
    node.dataset.testid = 'observed';
    const head = el('header', 'convo-head');
    const h = el('h3', 'convo-title', 'Streams started elsewhere');
    h.id = 'observed-title';
    node.setAttribute('aria-labelledby', h.id);
    head.append(h);
    const p = el('p', 'hint', 'Answers on your subscriptions that this page did not ask for.');
    const transcript = el('ol', 'transcript');
    watchScroll(transcript);
    node.append(head, p, transcript);
    $('#conversations').append(node);
    observed = { el: node, transcript };
    return observed;
}

// Keeps a transcript scrolled to its end while the reader has not scrolled up. Layout is read
// once per animation frame, never per delta: four fast streams would otherwise force a layout
// for every frame received.
const toFollow = new Set();

function followLater(transcript) {
    if (!transcript || transcript.dataset.follow === 'no') return;
    if (!toFollow.size) {
        requestAnimationFrame(() => {
            for (const t of toFollow) t.scrollTop = t.scrollHeight;
            toFollow.clear();
        });
    }
    toFollow.add(transcript);
}

function watchScroll(transcript) {
    transcript.addEventListener('scroll', () => {
        const atEnd = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
        transcript.dataset.follow = atEnd ? 'yes' : 'no';
    }, { passive: true });
}

function newExchange(convo, prompt) {
    const node = $('#exchange-template').content.firstElementChild.cloneNode(true);
    const x = {
        node,
        box: $('.answer-box', node),
        meta: $('.meta', node),
        answer: $('.answer', node),
        end: $('.end', node),
        error: $('.error', node),
        textNode: document.createTextNode(''),
    };
    $('.you-text', node).textContent = prompt;
    x.answer.append(x.textNode);
    convo.transcript.append(node);
    node.scrollIntoView({ block: 'nearest' });
    return x;
}

function setExchangeStatus(x, status) {
    x.box.dataset.status = status;
}

function showError(x, type, message) {
    x.error.hidden = false;
    if (!x.textNode.length) x.answer.hidden = true;
    x.error.dataset.errorType = type;
    x.error.textContent = `${type}: ${message}`;
    x.answer.setAttribute('aria-busy', 'false');
    setExchangeStatus(x, 'error');
}

function updateSendButtons() {
    for (const c of conversations) {
        c.send.disabled = !!c.active;
        c.cancel.disabled = !(c.active && c.active.id) || !!c.active.cancelling;
        c.cancel.textContent = c.active?.cancelling ? 'Cancelling…' : 'Cancel';
    }
}

async function api(method, path, body) {
    protocolLog.add('out', 'http', `${method} ${path}`, body === undefined ? undefined : body);
    let res;
    let json = null;
    try {
        res = await fetch(path, {
            method,
            cache: 'no-store',
            headers: { 'content-type': 'application/json', 'x-api-key': conn.key },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    } catch (e) {
        protocolLog.add('in', 'http', `${method} ${path} failed: ${e.message}`);
        return { ok: false, status: 0, error: { type: 'NetworkError', message: `cannot reach ${location.host}` } };
    }
    const text = await res.text().catch(() => '');
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    protocolLog.add('in', 'http', `${res.status} ${method} ${path}`, json ?? '');
    if (res.ok) return { ok: true, status: res.status, json };
    const e = firstError(json);
    return { ok: false, status: res.status, json,
             error: { type: res.headers.get('x-amzn-ErrorType') || e.type || `HTTP ${res.status}`,
                      message: e.message || `HTTP ${res.status}` } };
}

async function sendPrompt(convo) {
    if (convo.active) return;
    const user = convo.userInput.value.trim();
    if (!SEGMENT.test(user)) {
        convo.userInput.setAttribute('aria-invalid', 'true');
        convo.status.textContent = "User id: 1 to 50 of A-Z a-z 0-9 and '-', starting and ending with a letter or digit.";
        convo.userInput.focus();
        return;
    }
    const prompt = convo.prompt.value.trim();
    if (!prompt) {
        convo.status.textContent = 'Type a prompt first.';
        convo.prompt.focus();
        return;
    }
    const maxTokensText = convo.maxTokens.value.trim();
    const maxTokens = maxTokensText ? Number(maxTokensText) : null;
    if (maxTokensText && (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 1000000)) {
        convo.maxTokens.setAttribute('aria-invalid', 'true');
        convo.status.textContent = 'Max tokens: a whole number from 1 to 1000000, or empty.';
        convo.maxTokens.focus();
        return;
    }
    convo.maxTokens.removeAttribute('aria-invalid');
    if (conn.state !== 'connected') {
        convo.status.textContent = 'Connect first: the answer arrives over the WebSocket.';
        $('#connect').disabled ? $('#disconnect').focus() : $('#connect').focus();
        return;
    }
    const channel = `${config.chatNamespace}/${user}`;
    convo.active = { id: null };
    updateSendButtons();
    const sub = subs.find((s) => s.state === 'active' && covers(s, channel)) ??
                subs.find((s) => s.state === 'pending' && covers(s, channel)) ??
                addSubscription(channel);
    if (sub.state !== 'active') {
        convo.status.textContent = `Subscribing to /${sub.channel}…`;
        try {
            await whenSubscribed(sub, 5000);
        } catch (e) {
            convo.active = null;
            convo.status.textContent = `Cannot subscribe to /${channel}: ${e.message}`;
            updateSendButtons();
            return;
        }
    }
    const x = newExchange(convo, prompt);
    convo.prompt.value = '';
    convo.status.textContent = 'Streaming…';
    const body = { userId: user, prompt };
    if (convo.history.length) body.messages = convo.history.slice(-20);
    if (maxTokens) body.maxTokens = maxTokens;
    const startedAt = performance.now();
    postsInFlight += 1;
    let r;
    try {
        r = await api('POST', '/chat', body);
    } finally {
        postsInFlight -= 1;
    }
    if (!r.ok) {
        showError(x, r.error.type, r.error.message);
        convo.active = null;
        convo.status.textContent = 'The server refused the prompt.';
        updateSendButtons();
    } else {
        x.meta.textContent ||= [r.json.provider, r.json.model].filter(Boolean).join(' · ');
        const s = newStream(r.json.streamId, convo, x, startedAt, user, prompt);
        if (s.status === 'streaming') convo.active = s;
        updateSendButtons();
    }
    if (postsInFlight === 0) adoptUnclaimed();
}

async function cancelStream(convo) {
    const s = convo.active;
    if (!s || !s.id || s.cancelling) return;
    s.cancelling = true;
    updateSendButtons();
    const r = await api('POST', `/chat/${encodeURIComponent(s.id)}/cancel`);
    if (!r.ok) {
        s.cancelling = false;
        convo.status.textContent = `Cancel failed: ${r.error.type}: ${r.error.message}`;
        updateSendButtons();
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up

async function loadConfig() {
    const hint = $('#api-key-hint');
    try {
        const r = await fetch('/web-config.json', { cache: 'no-store' });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        Object.assign(config, await r.json());
    } catch (e) {
        hint.textContent = 'Enter the API key that eventcast printed at start-up.';
        setState('down', `Cannot load /web-config.json from ${location.host} (${e.message}).`);
        return;
    }
    const key = $('#api-key');
    if (config.apiKey && !key.value) {
        key.value = config.apiKey;
        hint.textContent = 'Filled in by the server: it listens on loopback, so it offers its first key to this page.';
    } else {
        hint.textContent = 'Enter the API key that eventcast printed at start-up (--api-key).';
    }
    const ns = config.chatNamespace || 'BedrockChat';
    $('#sub-channel').value = `${ns}/*`;
    const list = $('#channel-suggestions');
    for (const n of new Set([ns, ...(config.namespaces ?? [])])) {
        const o = el('option');
        o.value = `${n}/*`;
        list.append(o);
    }
    const provider = config.chatProvider;
    $('#provider-info').textContent = provider
        ? `provider: ${provider}${provider === 'demo' ? ' (offline demo model)' : ''}` : 'chat disabled';
    $('#provider-info').dataset.provider = provider ?? '';
}

function init() {
    protocolLog.init();
    $('#endpoint').textContent = wsUrl();
    $('#conn-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        connect();
    });
    $('#disconnect').addEventListener('click', disconnect);
    $('#show-key').addEventListener('click', () => {
        const input = $('#api-key');
        const show = input.type === 'password';
        input.type = show ? 'text' : 'password';
        $('#show-key').setAttribute('aria-pressed', String(show));
        $('#show-key').textContent = show ? 'Hide' : 'Show';
    });
    $('#api-key').addEventListener('input', () => $('#api-key').removeAttribute('aria-invalid'));
    $('#sub-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        const input = $('#sub-channel');
        const channel = normalizeChannel(input.value);
        if (!channel) {
            input.focus();
            return;
        }
        addSubscription(channel);
    });
    $('#add-conversation').addEventListener('click', () => {
        const c = addConversation();
        c.userInput.focus();
    });
    $('#sub-channel').value = 'BedrockChat/*';
    addConversation('alice');
    loadConfig();
}

init();
