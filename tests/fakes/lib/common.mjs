// Shared plumbing for the fake provider endpoints: HTTP(S) server on 127.0.0.1,
// control endpoints (/__scenario, /__requests, /__stats, /__reset), request
// recording, scenario resolution (control JSON, header, prompt directives),
// deterministic answer text and chunking, paced writing with abort detection,
// and the command-line wrapper.

import http from "node:http";
import https from "node:https";
import fs from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";

export const LOOPBACK = "127.0.0.1";

// ---------------------------------------------------------------------------
// Deterministic pseudo-random numbers (mulberry32) so that "random" padding,
// obfuscation and odd write boundaries are reproducible from a seed.
export function makeRng(seed) {
  let a = (Number(seed) >>> 0) || 0x9e3779b9;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)); // inclusive
  return next;
}

// ---------------------------------------------------------------------------
// Scenario directives.
//
// Grammar (prompt tokens `[[...]]` and the x-fake-scenario header):
//   items separated by whitespace or ';'; an item without '=' is the scenario
//   name; `key=value` sets an option. Values: integers/decimals -> numbers,
//   true/false -> booleans, anything else -> string; a value containing ','
//   becomes an array (e.g. padding=,,abcdefgh -> ["", "", "abcdefgh"]).
export function parseDirective(text) {
  const out = {};
  for (const item of String(text).split(/[\s;]+/)) {
    if (!item) continue;
    const eq = item.indexOf("=");
    if (eq < 0) {
      out.scenario = item;
      continue;
    }
    const key = item.slice(0, eq);
    const raw = item.slice(eq + 1);
    out[key] = raw.includes(",") ? raw.split(",").map(parseScalar) : parseScalar(raw);
  }
  return out;
}

function parseScalar(v) {
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === "true") return true;
  if (v === "false") return false;
  return v;
}

const DIRECTIVE_RE = /\[\[([^\]]*)\]\]/g;

// Returns { options, cleanPrompt } where cleanPrompt has every [[...]] token
// removed and whitespace runs collapsed to one space, trimmed.
export function extractPromptDirectives(prompt) {
  let options = {};
  const clean = String(prompt).replace(DIRECTIVE_RE, (_, body) => {
    options = { ...options, ...parseDirective(body) };
    return " ";
  });
  return { options, cleanPrompt: clean.replace(/\s+/g, " ").trim() };
}

// Parses the x-fake-scenario header: a JSON object or the directive grammar.
export function parseScenarioHeader(value) {
  if (value == null || value === "") return {};
  const v = String(value).trim();
  if (v.startsWith("{")) {
    try {
      return JSON.parse(v);
    } catch {
      return {};
    }
  }
  return parseDirective(v);
}

// ---------------------------------------------------------------------------
// Answer text and chunking (shared by both fakes so C++ tests can predict it).
//
//   text  (string)      explicit answer text (default "Echo: " + clean prompt)
//   long  (int K)       answer is "w0 w1 ... w{K-1}" (K word chunks)
//   chunks (string[])   explicit chunks (their concatenation is the answer)
//   chunks (int N)      split the text into N pieces of nearly equal length
//                       (by code point; the first pieces get the extra one)
//   chunkChars (int C)  split the text into pieces of C code points
//   default             word chunks: each chunk is one run of whitespace
//                       followed by non-whitespace (regex /\s*\S+/g); any
//                       trailing whitespace is appended to the last chunk
export function answerChunks(opts, cleanPrompt) {
  if (Array.isArray(opts.chunks)) return opts.chunks.map((c) => String(c));
  let text;
  if (typeof opts.text === "string") text = opts.text;
  else if (Number.isInteger(opts.long) && opts.long >= 0) {
    text = Array.from({ length: opts.long }, (_, i) => `w${i}`).join(" ");
  } else text = cleanPrompt === "" ? "Echo:" : `Echo: ${cleanPrompt}`;

  const cps = Array.from(text);
  if (Number.isInteger(opts.chunks) && opts.chunks > 0) {
    const n = Math.min(opts.chunks, Math.max(cps.length, 1));
    const base = Math.floor(cps.length / n);
    let extra = cps.length % n;
    const out = [];
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const len = base + (extra > 0 ? 1 : 0);
      if (extra > 0) extra--;
      out.push(cps.slice(pos, pos + len).join(""));
      pos += len;
    }
    return out;
  }
  if (Number.isInteger(opts.chunkChars) && opts.chunkChars > 0) {
    const out = [];
    for (let i = 0; i < cps.length; i += opts.chunkChars) out.push(cps.slice(i, i + opts.chunkChars).join(""));
    return out;
  }
  const words = text.match(/\s*\S+/g) || [];
  const tail = text.slice(words.join("").length);
  if (words.length === 0) return text === "" ? [] : [text];
  if (tail) words[words.length - 1] += tail;
  return words;
}

// Word count used for the fake input-token figure; [[...]] directives are not counted.
export function countWords(s) {
  return (String(s).replace(DIRECTIVE_RE, " ").match(/\S+/g) || []).length;
}

// ---------------------------------------------------------------------------
// Pacing helpers. A `Stream` wraps one streamed response: it tracks whether
// the client went away, waits with cancellation, honours back-pressure and can
// split writes at odd byte boundaries.
export class StreamCtl {
  constructor(req, res, record, stats) {
    this.req = req;
    this.res = res;
    this.record = record;
    this.stats = stats;
    this.aborted = false;
    this.ended = false;
    this.timers = new Set();
    this.waiters = new Set();
    stats.openStreams++;
    stats.totalStreams++;
    record.streamed = true;
    const onClose = () => {
      if (this._closed) return;
      this._closed = true;
      stats.openStreams--;
      if (!this.ended) {
        this.aborted = true;
        if (!record.serverDropped) {
          record.clientAborted = true;
          stats.abortedStreams++;
        }
      } else stats.completedStreams++;
      record.closedAt = Date.now();
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      for (const w of this.waiters) w();
      this.waiters.clear();
    };
    res.on("close", onClose);
  }

  sleep(ms) {
    if (this.aborted) return Promise.resolve(false);
    if (!(ms > 0)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok) => {
        clearTimeout(t);
        this.timers.delete(t);
        this.waiters.delete(wake);
        resolve(ok);
      };
      const wake = () => done(false);
      const t = setTimeout(() => done(!this.aborted), ms);
      this.timers.add(t);
      this.waiters.add(wake);
    });
  }

  async writeRaw(buf) {
    if (this.aborted) return false;
    const ok = this.res.write(buf);
    this.record.bytesSent += buf.length;
    if (!ok && !this.aborted) {
      await new Promise((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          this.res.off("drain", wake);
          resolve();
        };
        this.waiters.add(wake);
        this.res.once("drain", wake);
      });
    }
    return !this.aborted;
  }

  // mode: "whole" (one write), "split" (random pieces of 1..maxPiece bytes,
  // each flushed separately with a tiny pause so they arrive in separate TCP
  // segments / curl callbacks).
  // pieceDelayMs 0 (default) yields to the event loop between pieces (each
  // piece is its own TCP segment: the server socket has Nagle disabled);
  // a positive value sleeps that long between pieces.
  async write(buf, { split = false, rng = Math.random, maxPiece = 7, pieceDelayMs = 0 } = {}) {
    if (!split) return this.writeRaw(buf);
    let pos = 0;
    while (pos < buf.length) {
      const n = Math.min(buf.length - pos, 1 + Math.floor(rng() * maxPiece));
      if (!(await this.writeRaw(buf.subarray(pos, pos + n)))) return false;
      pos += n;
      if (pos < buf.length) {
        if (pieceDelayMs > 0) {
          if (!(await this.sleep(pieceDelayMs))) return false;
        } else {
          await new Promise((r) => setImmediate(r));
          if (this.aborted) return false;
        }
      }
    }
    return true;
  }

  end() {
    if (this.aborted) return;
    this.ended = true;
    this.record.completed = true;
    this.res.end();
  }

  // Destroy the TCP connection without finishing the chunked body.
  drop() {
    this.record.serverDropped = true;
    this.res.socket?.destroy();
    this.res.destroy();
  }

  // Hold the connection open, sending nothing, until the client gives up or
  // maxMs elapses (then the connection is destroyed).
  async stall(maxMs) {
    this.record.stalled = true;
    const ok = await this.sleep(maxMs);
    if (ok) this.drop();
  }
}

// ---------------------------------------------------------------------------
// Generic fake server: routing of control endpoints, recording, scenario store.
const SECRET_HEADERS = new Set(["x-amz-security-token", "x-api-key", "api-key", "cookie"]);

export function redactHeaders(rawHeaders) {
  const out = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    let value = rawHeaders[i + 1];
    if (SECRET_HEADERS.has(name)) value = "<redacted>";
    else if (name === "authorization" && /^bearer\s/i.test(value)) value = "Bearer <redacted>";
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

export function readBody(req, limit = 32 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let size = 0;
    req.on("data", (d) => {
      size += d.length;
      if (size > limit) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      parts.push(d);
    });
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

export function sendJson(res, status, obj, headers = {}) {
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": body.length, ...headers });
  res.end(body);
}

// handler(req, res, ctx) handles non-control requests; ctx = { record, body,
// scenarioFor(promptOptions) , stats, config }.
export async function startFakeServer({ name, handler, opts = {}, defaultScenario = { scenario: "happy" } }) {
  const state = {
    requests: [],
    defaultScenario: { ...defaultScenario, ...(opts.scenario || {}) },
    queue: [],
    nextId: 1,
  };
  const stats = {
    totalRequests: 0,
    modelRequests: 0,
    openStreams: 0,
    totalStreams: 0,
    completedStreams: 0,
    abortedStreams: 0,
    openConnections: 0,
  };
  const sockets = new Set();

  const takeScenario = () => (state.queue.length ? { ...state.defaultScenario, ...state.queue.shift() } : { ...state.defaultScenario });

  const control = async (req, res, url) => {
    const p = url.pathname;
    if (p === "/__requests" && req.method === "GET") {
      const since = Number(url.searchParams.get("since") || 0);
      return sendJson(res, 200, state.requests.filter((r) => r.id > since));
    }
    if (p === "/__requests" && req.method === "DELETE") {
      state.requests = [];
      return sendJson(res, 200, { ok: true });
    }
    if (p === "/__stats" && req.method === "GET") return sendJson(res, 200, { ...stats, queued: state.queue.length });
    if (p === "/__scenario" && req.method === "GET") return sendJson(res, 200, { default: state.defaultScenario, next: state.queue });
    if (p === "/__scenario" && req.method === "POST") {
      let body;
      try {
        body = JSON.parse((await readBody(req)).toString("utf8") || "{}");
      } catch (e) {
        return sendJson(res, 400, { error: `bad JSON: ${e.message}` });
      }
      applyScenarioControl(state, body, defaultScenario);
      return sendJson(res, 200, { default: state.defaultScenario, next: state.queue });
    }
    if (p === "/__reset" && req.method === "POST") {
      state.requests = [];
      state.queue = [];
      state.defaultScenario = { ...defaultScenario, ...(opts.scenario || {}) };
      return sendJson(res, 200, { ok: true });
    }
    return sendJson(res, 404, { error: `unknown control endpoint ${req.method} ${p}` });
  };

  const onRequest = async (req, res) => {
    stats.totalRequests++;
    let url;
    try {
      url = new URL(req.url, "http://x");
    } catch {
      return sendJson(res, 400, { message: "bad request target" });
    }
    if (url.pathname.startsWith("/__")) return control(req, res, url);
    stats.modelRequests++;
    const record = {
      id: state.nextId++,
      time: new Date().toISOString(),
      method: req.method,
      path: req.url.split("?")[0],
      rawUrl: req.url,
      headers: redactHeaders(req.rawHeaders),
      body: null,
      bodyJson: null,
      status: null,
      scenario: null,
      streamed: false,
      bytesSent: 0,
      framesSent: 0,
      deltasSent: 0,
      completed: false,
      clientAborted: false,
      serverDropped: false,
      stalled: false,
      closedAt: null,
    };
    state.requests.push(record);
    if (state.requests.length > (opts.maxRecorded || 1000)) state.requests.shift();
    let body;
    try {
      body = await readBody(req);
    } catch {
      return;
    }
    record.body = body.toString("utf8");
    try {
      record.bodyJson = JSON.parse(record.body);
    } catch {
      record.bodyJson = null;
    }
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = (status, ...rest) => {
      record.status = status;
      return origWriteHead(status, ...rest);
    };
    try {
      await handler(req, res, { record, body, url, stats, takeScenario, opts });
    } catch (e) {
      record.handlerError = String(e && e.stack ? e.stack : e);
      if (!res.headersSent) sendJson(res, 500, { message: `fake ${name} internal error: ${e.message}` });
      else res.destroy();
    }
  };

  const server = opts.tlsCert
    ? https.createServer({ cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey), noDelay: true }, onRequest)
    : http.createServer({ noDelay: true }, onRequest);
  server.keepAliveTimeout = 5000;
  server.on("connection", (s) => {
    sockets.add(s);
    stats.openConnections++;
    s.on("close", () => {
      sockets.delete(s);
      stats.openConnections--;
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port || 0, LOOPBACK, resolve);
  });
  const port = server.address().port;
  const scheme = opts.tlsCert ? "https" : "http";
  let closed = false;
  return {
    port,
    url: `${scheme}://${LOOPBACK}:${port}`,
    server,
    requests: () => state.requests.map((r) => ({ ...r })),
    clearRequests: () => {
      state.requests = [];
    },
    stats: () => ({ ...stats, queued: state.queue.length }),
    setScenario: (s) => applyScenarioControl(state, s, defaultScenario),
    reset: () => {
      state.requests = [];
      state.queue = [];
      state.defaultScenario = { ...defaultScenario, ...(opts.scenario || {}) };
    },
    close: () =>
      new Promise((resolve) => {
        if (closed) return resolve();
        closed = true;
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

// POST /__scenario body:
//   { "scenario": "drop", ...options }        replace the default scenario
//   { "next": [ {...}, {...} ] }               queue one-shot scenarios
//   { "default": {...}, "next": [...] }        both at once
//   { "reset": true }                          default back to happy, queue cleared
function applyScenarioControl(state, body, baseDefault) {
  if (typeof body === "string") body = parseDirective(body);
  if (!body || typeof body !== "object") return;
  if (body.reset) {
    state.defaultScenario = { ...baseDefault };
    state.queue = [];
  }
  if (body.default && typeof body.default === "object") state.defaultScenario = { ...baseDefault, ...body.default };
  if (Array.isArray(body.next)) state.queue.push(...body.next.map((x) => (typeof x === "string" ? parseDirective(x) : x)));
  const rest = { ...body };
  delete rest.default;
  delete rest.next;
  delete rest.reset;
  if (Object.keys(rest).length) {
    state.defaultScenario = { ...baseDefault, ...rest };
    state.queue = [];
  }
}

// ---------------------------------------------------------------------------
// Command line.
export function parseArgs(argv, spec) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (!(key in spec)) throw new Error(`unknown option --${key}`);
    if (spec[key] === "flag") {
      out[key] = true;
      continue;
    }
    const val = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (val === undefined) throw new Error(`option --${key} needs a value`);
    out[key] = val;
  }
  return out;
}

export function writePortFile(file, port) {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, file);
}

export async function runCli(name, usage, spec, start, argv = process.argv.slice(2)) {
  let args;
  try {
    args = parseArgs(argv, spec);
  } catch (e) {
    process.stderr.write(`${name}: ${e.message}\n${usage}`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  let fake;
  try {
    fake = await start(args);
  } catch (e) {
    process.stderr.write(`${name}: cannot start: ${e.message}\n`);
    process.exit(1);
  }
  if (args["port-file"]) writePortFile(args["port-file"], fake.port);
  process.stdout.write(`${name} listening on ${fake.url} port ${fake.port}\n`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await fake.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return fake;
}

export function scenarioFromCli(value) {
  if (!value) return undefined;
  const v = value.trim();
  return v.startsWith("{") ? JSON.parse(v) : parseDirective(v);
}

export function requestId() {
  return randomUUID();
}
