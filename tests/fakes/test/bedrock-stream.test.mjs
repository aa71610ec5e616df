// The fake's ConverseStream / InvokeModelWithResponseStream bodies, decoded
// with the official @smithy/eventstream-codec, and every scenario.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { startFakeBedrock } from "../fake-bedrock.mjs";
import { request, converse, decodeFrames, textOf, getJson, postJson, signBedrock, waitFor, MODEL } from "./helpers.mjs";

let fake;
before(async () => {
  fake = await startFakeBedrock({});
});
after(() => fake.close());
beforeEach(() => fake.reset());

const types = (frames) => frames.map((f) => f.headers[":event-type"] ?? `!${f.headers[":exception-type"] ?? f.headers[":error-code"]}`);

test("happy path: exact event sequence, headers and payloads (spec 2.5)", async () => {
  const r = await converse(fake, "Say hello to the world");
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "application/vnd.amazon.eventstream");
  assert.match(r.headers["x-amzn-requestid"], /^[0-9a-f-]{36}$/);
  assert.equal(r.headers["transfer-encoding"], "chunked");
  const frames = decodeFrames(r.body);
  assert.deepEqual(types(frames), ["messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]);
  for (const f of frames) {
    assert.deepEqual(Object.keys(f.headers).sort(), [":content-type", ":event-type", ":message-type"]);
    assert.equal(f.headers[":message-type"], "event");
    assert.equal(f.headers[":content-type"], "application/json");
    assert.match(f.json.p, /^[a-zA-Z0-9]+$/, "random padding field p on every event by default");
  }
  assert.equal(frames[0].json.role, "assistant");
  assert.deepEqual(frames.slice(1, 7).map((f) => f.json.delta.text), ["Echo:", " Say", " hello", " to", " the", " world"]);
  assert.ok(frames.slice(1, 8).every((f) => f.json.contentBlockIndex === 0));
  assert.equal(frames[8].json.stopReason, "end_turn");
  assert.deepEqual(frames[9].json.usage, { inputTokens: 5, outputTokens: 6, totalTokens: 11 });
  assert.equal(typeof frames[9].json.metrics.latencyMs, "number");
  assert.equal(textOf(frames), "Echo: Say hello to the world");
  const rec = fake.requests().at(-1);
  assert.equal(rec.expectedText, "Echo: Say hello to the world");
  assert.equal(rec.completed, true);
  assert.equal(rec.deltasSent, 6);
});

test("byte-exact match with the generated converse-stream-happy-path.bin", async () => {
  const expected = fs.readFileSync(new URL("./data/converse-stream-happy-path.bin", import.meta.url));
  await postJson(fake.url, "/__scenario", {
    scenario: "happy",
    chunks: ["Hello", ", world"],
    padding: [null, null, "abcdefgh"],
    inputTokens: 12,
    outputTokens: 4,
    latencyMs: 321,
  });
  const r = await converse(fake, "anything");
  assert.equal(r.status, 200);
  assert.equal(Buffer.compare(r.body, expected), 0, `got ${r.body.toString("hex")}`);
});

test("prompt directives: chunks=N, long=K, delayMs, padding=none, split writes", async () => {
  let r = await converse(fake, "abcdefghij [[chunks=3 padding=none]]");
  let frames = decodeFrames(r.body);
  assert.deepEqual(frames.filter((f) => f.headers[":event-type"] === "contentBlockDelta").map((f) => f.json.delta.text), ["Echo: ", "abcde", "fghij"]);
  assert.ok(frames.every((f) => !("p" in f.json)));

  r = await converse(fake, "[[long=500 delayMs=0]]", { extra: { inferenceConfig: { maxTokens: 4096 } } });
  frames = decodeFrames(r.body);
  assert.equal(frames.length, 504);
  assert.equal(textOf(frames), Array.from({ length: 500 }, (_, i) => `w${i}`).join(" "));

  let pieces = 0;
  r = await converse(fake, "split me into pieces [[split=true delayMs=0]]", { onData: () => pieces++ });
  frames = decodeFrames(r.body);
  assert.equal(textOf(frames), "Echo: split me into pieces");
  assert.ok(pieces > frames.length, `expected many small reads, got ${pieces}`);

  const t0 = Date.now();
  r = await converse(fake, "[[long=10 delayMs=30]]");
  assert.ok(Date.now() - t0 >= 250, "10 deltas paced at 30 ms");
});

test("maxTokens truncates the answer with stopReason max_tokens", async () => {
  const r = await converse(fake, "one two three four five", { extra: { inferenceConfig: { maxTokens: 2 } } });
  const frames = decodeFrames(r.body);
  assert.equal(textOf(frames), "Echo: one");
  assert.equal(frames.find((f) => f.headers[":event-type"] === "messageStop").json.stopReason, "max_tokens");
});

test("throttle and other pre-stream errors: status, x-amzn-ErrorType, JSON body", async () => {
  let r = await converse(fake, "hi [[throttle]]");
  assert.equal(r.status, 429);
  assert.equal(r.headers["content-type"], "application/json");
  assert.match(r.headers["x-amzn-errortype"], /^ThrottlingException:http:\/\/internal\.amazon\.com\/coral\/com\.amazon\.bedrock\/$/);
  assert.deepEqual(JSON.parse(r.body), { message: "Too many requests, please wait before trying again." });

  r = await converse(fake, "hi", { headers: { "x-fake-scenario": "error status=503 errorType=ServiceUnavailableException" } });
  assert.equal(r.status, 503);
  assert.equal(r.headers["x-amzn-errortype"].split(":")[0], "ServiceUnavailableException");

  for (const [name, st, type] of [["access-denied", 403, "AccessDeniedException"], ["not-found", 404, "ResourceNotFoundException"], ["model-timeout", 408, "ModelTimeoutException"], ["internal", 500, "InternalServerException"]]) {
    r = await converse(fake, `x [[${name}]]`);
    assert.deepEqual([r.status, r.headers["x-amzn-errortype"].split(":")[0]], [st, type]);
  }
});

test("exception-mid-stream: deltas then an exception frame, then end", async () => {
  let r = await converse(fake, "a b c d e [[exception-mid-stream deltas=2]]");
  assert.equal(r.status, 200);
  let frames = decodeFrames(r.body);
  assert.deepEqual(types(frames), ["messageStart", "contentBlockDelta", "contentBlockDelta", "!modelStreamErrorException"]);
  const ex = frames.at(-1);
  assert.equal(ex.headers[":message-type"], "exception");
  assert.equal(ex.headers[":content-type"], "application/json");
  assert.equal(ex.json.originalStatusCode, 529);
  assert.equal(typeof ex.json.message, "string");

  r = await converse(fake, "a b c [[exception-mid-stream exceptionType=throttlingException deltas=1]]");
  frames = decodeFrames(r.body);
  assert.equal(frames.at(-1).headers[":exception-type"], "throttlingException");
  assert.deepEqual(frames.at(-1).json, { message: "Too many requests, please wait before trying again." });

  r = await converse(fake, "a b c [[error-mid-stream deltas=1]]");
  frames = decodeFrames(r.body);
  assert.deepEqual(frames.at(-1).headers, { ":error-code": "InternalFailure", ":error-message": "An internal error occurred", ":message-type": "error" });
  assert.equal(frames.at(-1).raw.length, 112); // same as the generated error frame
});

test("drop: some deltas then the connection is destroyed mid-body", async () => {
  const r = await converse(fake, "a b c d e [[drop deltas=3]]");
  assert.equal(r.status, 200);
  assert.ok(r.error, "client sees a broken body");
  assert.equal(textOf(decodeFrames(r.body)), "Echo: a b");
  const rec = fake.requests().at(-1);
  assert.equal(rec.serverDropped, true);
  assert.equal(rec.clientAborted, false);

  const r2 = await converse(fake, "a b c d e [[drop deltas=1 partial=true]]");
  assert.ok(r2.error);
  assert.throws(() => decodeFrames(r2.body), /truncated frame/);
});

test("truncate and corrupt: clean end without messageStop; bad CRC", async () => {
  let r = await converse(fake, "a b c [[truncate deltas=2]]");
  assert.equal(r.complete, true);
  assert.deepEqual(types(decodeFrames(r.body)), ["messageStart", "contentBlockDelta", "contentBlockDelta"]);
  r = await converse(fake, "a b c [[corrupt deltas=1]]");
  assert.throws(() => decodeFrames(r.body), /checksum/i);
});

test("stall: connection held open until the client aborts; abort is recorded; open streams counted", async () => {
  const p = converse(fake, "a b c d [[stall deltas=2]]", { abortAfterMs: 300 });
  assert.ok(await waitFor(async () => (await getJson(fake.url, "/__stats")).openStreams === 1));
  const r = await p;
  assert.equal(r.error, "aborted-by-test");
  assert.equal(textOf(decodeFrames(r.body)), "Echo: a");
  assert.ok(await waitFor(async () => (await getJson(fake.url, "/__stats")).openStreams === 0));
  const rec = (await getJson(fake.url, "/__requests")).at(-1);
  assert.equal(rec.stalled, true);
  assert.equal(rec.clientAborted, true);
  assert.equal(rec.completed, false);
  assert.equal((await getJson(fake.url, "/__stats")).abortedStreams, 1);
});

test("client abort during a happy stream stops generation", async () => {
  const r = await converse(fake, "[[long=200 delayMs=10]]", { extra: { inferenceConfig: { maxTokens: 1000 } }, abortAfterMs: 100 });
  assert.equal(r.error, "aborted-by-test");
  await waitFor(() => fake.stats().openStreams === 0);
  const rec = fake.requests().at(-1);
  assert.equal(rec.clientAborted, true);
  const sent = rec.deltasSent;
  assert.ok(sent > 0 && sent < 200, `deltas sent before the abort: ${sent}`);
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(fake.requests().at(-1).deltasSent, sent, "nothing more is generated after the abort");
});

test("slow-start: nothing at all before firstByteDelayMs", async () => {
  const t0 = Date.now();
  const r = await converse(fake, "hi [[slow-start firstByteDelayMs=400]]");
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 >= 390);
  assert.equal(textOf(decodeFrames(r.body)), "Echo: hi");
});

test("control endpoint: default scenario, one-shot queue, header; precedence", async () => {
  await postJson(fake.url, "/__scenario", { next: [{ scenario: "throttle" }, "exception-mid-stream deltas=1"] });
  assert.equal((await converse(fake, "q")).status, 429);
  assert.equal(decodeFrames((await converse(fake, "q")).body).at(-1).headers[":message-type"], "exception");
  assert.equal((await converse(fake, "q")).status, 200);
  await postJson(fake.url, "/__scenario", { scenario: "throttle" });
  assert.equal((await converse(fake, "q")).status, 429);
  assert.equal((await converse(fake, "q [[happy]]")).status, 200, "prompt directive beats the default");
  assert.equal((await converse(fake, "q", { headers: { "x-fake-scenario": "happy" } })).status, 200, "header beats the default");
  const st = await getJson(fake.url, "/__scenario");
  assert.equal(st.default.scenario, "throttle");
  const reqs = await getJson(fake.url, "/__requests");
  assert.equal(reqs.length, 6);
  assert.deepEqual(reqs.map((x) => x.status), [429, 200, 200, 429, 200, 200]);
  const since = await getJson(fake.url, `/__requests?since=${reqs[3].id}`);
  assert.equal(since.length, 2);
  await request(fake.url, { method: "DELETE", path: "/__requests" });
  assert.equal((await getJson(fake.url, "/__requests")).length, 0);
});

test("garbage bodies are answered 400 ValidationException", async () => {
  const bad = [
    "not json",
    { messages: [] },
    { messages: [{ role: "assistant", content: [{ text: "x" }] }] },
    { messages: [{ role: "user", content: [{ text: "a" }] }, { role: "user", content: [{ text: "b" }] }] },
    { messages: [{ role: "user", content: "plain string" }] },
    { messages: [{ role: "user", content: [{ text: "a" }] }], inferenceConfig: { maxTokens: 0 } },
    { messages: [{ role: "user", content: [{ text: "a" }] }], inferenceConfig: { temperature: 1.5 } },
    { messages: [{ role: "user", content: [{ text: "a" }] }], inference_config: {} },
    { model: "x", messages: [{ role: "user", content: [{ text: "a" }] }] },
  ];
  for (const b of bad) {
    const body = typeof b === "string" ? b : JSON.stringify(b);
    const headers = await signBedrock({ url: fake.url, path: `/model/${encodeURIComponent(MODEL)}/converse-stream`, body });
    const r = await request(fake.url, { path: `/model/${encodeURIComponent(MODEL)}/converse-stream`, headers, body });
    assert.equal(r.status, 400, body);
    assert.equal(r.headers["x-amzn-errortype"].split(":")[0], "ValidationException");
    assert.equal(typeof JSON.parse(r.body).message, "string");
  }
});

test("invoke-with-response-stream: chunk events carrying Anthropic stream events", async () => {
  const path = `/model/${encodeURIComponent(MODEL)}/invoke-with-response-stream`;
  const body = JSON.stringify({ anthropic_version: "bedrock-2023-05-31", max_tokens: 100, messages: [{ role: "user", content: "Say hi" }] });
  const headers = await signBedrock({ url: fake.url, path, body });
  const r = await request(fake.url, { path, headers, body });
  assert.equal(r.status, 200);
  assert.equal(r.headers["x-amzn-bedrock-content-type"], "application/json");
  const frames = decodeFrames(r.body);
  assert.ok(frames.every((f) => f.headers[":event-type"] === "chunk"));
  const events = frames.map((f) => JSON.parse(Buffer.from(f.json.bytes, "base64").toString()));
  assert.deepEqual(events.map((e) => e.type), ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]);
  assert.equal(events.filter((e) => e.type === "content_block_delta").map((e) => e.delta.text).join(""), "Echo: Say hi");
  assert.equal(events.at(-1)["amazon-bedrock-invocationMetrics"].outputTokenCount, 3);

  const bad = JSON.stringify({ max_tokens: 5, messages: [{ role: "user", content: "x" }] });
  const h2 = await signBedrock({ url: fake.url, path, body: bad });
  const r2 = await request(fake.url, { path, headers: h2, body: bad });
  assert.equal(r2.status, 400);
  assert.match(JSON.parse(r2.body).message, /anthropic_version/);
});

test("an ARN model id with %2F-encoded slashes is one path label", async () => {
  const arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
  const path = `/model/${encodeURIComponent(arn)}/converse-stream`;
  const r = await converse(fake, "arn", { path });
  assert.equal(r.status, 200);
  assert.equal(fake.requests().at(-1).modelId, arn);
  // Unencoded '/' splits the label: no such operation.
  const raw = `/model/${arn}/converse-stream`;
  const r2 = await converse(fake, "arn", { path: raw });
  assert.equal(r2.status, 404);
});
