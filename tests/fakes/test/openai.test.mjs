// The fake OpenAI-compatible endpoint: SSE framing parsed with the
// independent eventsource-parser package (WHATWG rules) and, end to end, with
// the official `openai` npm client.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { createParser } from "eventsource-parser";
import { startFakeOpenAI, DEFAULT_API_KEY } from "../fake-openai.mjs";
import { request, getJson, postJson, waitFor } from "./helpers.mjs";

let fake;
before(async () => {
  fake = await startFakeOpenAI({});
});
after(() => fake.close());
beforeEach(() => fake.reset());

const PATH = "/v1/chat/completions";

function chatBody(content, extra = {}) {
  return JSON.stringify({ model: "gpt-fake", messages: [{ role: "system", content: "be brief" }, { role: "user", content }], stream: true, ...extra });
}

// Sends a chat request and parses the SSE body with eventsource-parser,
// decoding UTF-8 incrementally (the fake may split multi-byte characters).
async function chat(content, { extra, headers = {}, key = DEFAULT_API_KEY, ...opts } = {}) {
  const events = [];
  const comments = [];
  const errors = [];
  const parser = createParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onError: (e) => errors.push(e),
  });
  const dec = new TextDecoder("utf-8");
  let reads = 0;
  const r = await request(fake.url, {
    path: PATH,
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body: chatBody(content, extra),
    onData: (d) => {
      reads++;
      parser.feed(dec.decode(d, { stream: true }));
    },
    ...opts,
  });
  parser.feed(dec.decode());
  // EOF (spec 6.2: "flush any pending event at EOF"). eventsource-parser
  // 3.1.1 holds a trailing lone CR back (an LF might follow) and its
  // reset({consume:true}) mis-parses that CR as a field line, so end the
  // stream with one more line terminator instead: harmless for LF/CRLF
  // streams (an empty line with no data dispatches nothing).
  parser.feed("\n");
  const datas = events.map((e) => e.data);
  const doneAt = datas.indexOf("[DONE]");
  const chunks = datas.filter((d) => d !== "[DONE]").map((d) => JSON.parse(d));
  const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
  return { ...r, events, comments, errors, chunks, text, done: doneAt >= 0, doneLast: doneAt === datas.length - 1, reads };
}

test("happy stream: role chunk, content deltas, finish chunk, usage chunk, [DONE]", async () => {
  const r = await chat("Say hello", { extra: { stream_options: { include_usage: true } } });
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "text/event-stream; charset=utf-8");
  assert.equal(r.done && r.doneLast, true);
  assert.deepEqual(r.errors, []);
  assert.ok(r.events.every((e) => e.event === undefined), "data-only events");
  const [first, ...rest] = r.chunks;
  assert.deepEqual(first.choices[0].delta, { role: "assistant", content: "", refusal: null });
  assert.equal(first.object, "chat.completion.chunk");
  assert.equal(first.model, "gpt-fake");
  assert.match(first.id, /^chatcmpl-/);
  assert.deepEqual(rest.slice(0, 3).map((c) => c.choices[0].delta), [{ content: "Echo:" }, { content: " Say" }, { content: " hello" }]);
  const fin = rest[3];
  assert.deepEqual(fin.choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: "stop" });
  const usage = rest[4];
  assert.deepEqual(usage.choices, []);
  assert.deepEqual([usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens], [4, 3, 7]);
  assert.ok(r.chunks.slice(0, -1).every((c) => c.usage === null), "usage:null on all earlier chunks");
  assert.equal(r.text, "Echo: Say hello");
  assert.ok(r.chunks.every((c) => typeof c.obfuscation === "string"));
  // Exact wire text of one event.
  assert.match(r.body.toString(), /^data: \{"id":"chatcmpl-[^\n]*\}\n\ndata: /);
  assert.ok(r.body.toString().endsWith("data: [DONE]\n\n"));
});

test("without include_usage there is no usage chunk and no usage member", async () => {
  const r = await chat("hi", { extra: { stream_options: { include_obfuscation: false } } });
  assert.ok(r.chunks.every((c) => !("usage" in c) && !("obfuscation" in c)));
  assert.equal(r.chunks.length, 1 + 2 + 1);
});

test("parser stress options: CRLF, CR, comments, split writes with multi-byte UTF-8, multi-line data, no space", async () => {
  const prompt = "héllo wörld 你好 🎉 done";
  for (const opts of ["lineEnding=crlf", "lineEnding=cr", "comments=1", "split=true maxPiece=3", "multilineData=true", "noSpace=true", "split=true lineEnding=crlf comments=2 multilineData=true"]) {
    const r = await chat(`${prompt} [[${opts} delayMs=0]]`, { extra: { stream_options: { include_usage: true } } });
    assert.equal(r.text, `Echo: ${prompt}`, opts);
    assert.ok(r.done, opts);
    assert.deepEqual(r.errors, [], opts);
    if (opts.includes("comments")) assert.ok(r.comments.length >= 2 && r.comments.every((c) => c.trim() === "keep-alive"), opts);
    if (opts.includes("split")) assert.ok(r.reads > 20, `${opts}: ${r.reads} reads`);
    const raw = r.body.toString("utf8");
    if (opts.includes("crlf")) assert.ok(raw.includes("\r\n\r\n") && !/[^\r]\n/.test(raw), opts);
    if (opts === "lineEnding=cr") assert.ok(!raw.includes("\n"), opts);
  }
});

test("auth: missing and wrong key give 401 with the OpenAI error body", async () => {
  let r = await chat("x", { key: null });
  assert.equal(r.status, 401);
  let e = JSON.parse(r.body).error;
  assert.equal(e.type, "invalid_request_error");
  assert.match(e.message, /You didn't provide an API key/);
  r = await chat("x", { key: "sk-wrong-key-12345678" });
  assert.equal(r.status, 401);
  e = JSON.parse(r.body).error;
  assert.equal(e.code, "invalid_api_key");
  assert.deepEqual(Object.keys(e).sort(), ["code", "message", "param", "type"]);
  assert.equal(fake.requests().at(-1).headers.authorization, "Bearer <redacted>");
});

test("error scenarios: HTTP 4xx/5xx bodies, in-stream error object, llama.cpp error field", async () => {
  let r = await chat("x [[rate-limit]]");
  assert.equal(r.status, 429);
  assert.deepEqual(JSON.parse(r.body), { error: { message: "Rate limit reached for requests. Please try again in 1s.", type: "requests", param: null, code: "rate_limit_exceeded" } });
  r = await chat("x [[error status=503 message=busy]]");
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.body).error.message, "busy");
  r = await chat("x [[server]]");
  assert.equal(r.status, 500);

  r = await chat("a b c d [[error-mid-stream deltas=2]]");
  assert.equal(r.status, 200);
  assert.equal(r.text, "Echo: a");
  const errChunk = r.chunks.at(-1);
  assert.deepEqual(Object.keys(errChunk), ["error"]);
  assert.equal(errChunk.error.type, "server_error");
  assert.ok(r.done);
  r = await chat("a b c d [[error-mid-stream doneAfterError=false]]");
  assert.equal(r.done, false);

  r = await chat("a b c d [[llama-error deltas=1]]");
  assert.equal(r.text, "Echo:");
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0].type, "unknown-field");
  assert.equal(r.errors[0].field, "error");
  assert.equal(r.done, false);
});

test("missing-done, drop, truncation by max tokens", async () => {
  let r = await chat("one two three [[missing-done]]", { extra: { stream_options: { include_usage: true } } });
  assert.equal(r.complete, true);
  assert.equal(r.done, false);
  assert.equal(r.chunks.at(-1).choices.length, 0, "usage chunk still sent");
  assert.equal(r.text, "Echo: one two three");

  r = await chat("one two three four [[drop deltas=2]]");
  assert.ok(r.error);
  assert.equal(r.text, "Echo: one");
  assert.equal(r.done, false);
  assert.equal(fake.requests().at(-1).serverDropped, true);

  r = await chat("one two three four", { extra: { max_completion_tokens: 2 } });
  assert.equal(r.text, "Echo: one");
  assert.equal(r.chunks.at(-1).choices[0].finish_reason, "length");
  r = await chat("one two three four", { extra: { max_tokens: 3 } });
  assert.equal(r.chunks.at(-1).choices[0].finish_reason, "length");
});

test("stall + client abort is recorded; open streams counted; slow-start", async () => {
  const p = chat("a b c [[stall deltas=1]]", { abortAfterMs: 300 });
  assert.ok(await waitFor(async () => (await getJson(fake.url, "/__stats")).openStreams === 1));
  const r = await p;
  assert.equal(r.error, "aborted-by-test");
  assert.equal(r.text, "Echo:");
  assert.ok(await waitFor(async () => (await getJson(fake.url, "/__stats")).openStreams === 0));
  const rec = (await getJson(fake.url, "/__requests")).at(-1);
  assert.deepEqual([rec.stalled, rec.clientAborted, rec.completed], [true, true, false]);

  const t0 = Date.now();
  const r2 = await chat("late [[slow-start firstByteDelayMs=300]]");
  assert.ok(Date.now() - t0 >= 290);
  assert.equal(r2.text, "Echo: late");
});

test("validation errors are 400 invalid_request_error with param", async () => {
  const cases = [
    ["not json", null],
    [JSON.stringify({ messages: [{ role: "user", content: "x" }], stream: true }), "model"],
    [JSON.stringify({ model: "m", messages: [], stream: true }), "messages"],
    [JSON.stringify({ model: "m", messages: [{ role: "robot", content: "x" }], stream: true }), "messages[0].role"],
    [JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }], stream_options: { include_usage: true } }), "stream_options"],
    [JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }], stream: true, temperature: 3 }), "temperature"],
  ];
  for (const [body, param] of cases) {
    const r = await request(fake.url, { path: PATH, headers: { "content-type": "application/json", authorization: `Bearer ${DEFAULT_API_KEY}` }, body });
    assert.equal(r.status, 400, body);
    const e = JSON.parse(r.body).error;
    assert.equal(e.type, "invalid_request_error");
    assert.equal(e.param, param, body);
  }
});

test("control endpoints: queue, default, header; /chat/completions alias; non-streaming answer", async () => {
  await postJson(fake.url, "/__scenario", { next: ["rate-limit", { scenario: "server" }] });
  assert.equal((await chat("q")).status, 429);
  assert.equal((await chat("q")).status, 500);
  assert.equal((await chat("q")).status, 200);
  assert.equal((await chat("q", { headers: { "x-fake-scenario": '{"scenario":"error","status":418}' } })).status, 418);
  const r = await request(fake.url, { path: "/chat/completions", headers: { authorization: `Bearer ${DEFAULT_API_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "plain" }] }) });
  assert.equal(r.status, 200);
  const j = JSON.parse(r.body);
  assert.equal(j.object, "chat.completion");
  assert.equal(j.choices[0].message.content, "Echo: plain");
  const reqs = await getJson(fake.url, "/__requests");
  assert.deepEqual(reqs.map((x) => x.status), [429, 500, 200, 418, 200]);
  assert.equal(reqs[2].bodyJson.model, "gpt-fake");
  assert.equal(reqs[2].expectedText, "Echo: q");
});

test("official openai client: streaming with usage, errors, mid-stream error", async () => {
  const client = new OpenAI({ apiKey: DEFAULT_API_KEY, baseURL: `${fake.url}/v1`, maxRetries: 0, timeout: 10000 });
  const stream = await client.chat.completions.create({
    model: "gpt-fake",
    messages: [{ role: "user", content: "Stream this please [[split=true lineEnding=crlf comments=1 multilineData=true delayMs=0]]" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage;
  let finish;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, "Echo: Stream this please");
  assert.equal(finish, "stop");
  assert.equal(usage.completion_tokens, 4);

  await assert.rejects(
    new OpenAI({ apiKey: "sk-bad-0000000000", baseURL: `${fake.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }], stream: true }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === "invalid_api_key",
  );
  await assert.rejects(
    client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x [[rate-limit]]" }], stream: true }),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429,
  );
  const s2 = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "a b c [[error-mid-stream deltas=1 message=kaboom]]" }], stream: true });
  await assert.rejects(
    (async () => {
      for await (const _ of s2);
    })(),
    (e) => e instanceof OpenAI.APIError && /kaboom/.test(e.message),
  );
  // The client retries 429 when allowed: queue one rate-limit, then success.
  fake.setScenario({ next: [{ scenario: "rate-limit", retryAfter: 0 }] });
  const retrying = new OpenAI({ apiKey: DEFAULT_API_KEY, baseURL: `${fake.url}/v1`, maxRetries: 2, timeout: 10000 });
  const s3 = await retrying.chat.completions.create({ model: "m", messages: [{ role: "user", content: "again" }], stream: true });
  let t3 = "";
  for await (const c of s3) t3 += c.choices[0]?.delta?.content ?? "";
  assert.equal(t3, "Echo: again");
  assert.deepEqual(fake.requests().slice(-2).map((x) => x.status), [429, 200]);
});
