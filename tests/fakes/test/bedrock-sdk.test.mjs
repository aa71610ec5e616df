// The strongest faithfulness check: the official AWS SDK for JavaScript v3
// (@aws-sdk/client-bedrock-runtime) talks to the fake end to end: it signs,
// the fake verifies; the fake streams, the SDK's own event-stream
// deserializer parses it; the SDK's retry logic reads the throttle error.
//
// The SDK's default handler for Bedrock Runtime is HTTP/2; the fake speaks
// HTTP/1.1 (what eventcast's libcurl client uses), so the tests pass the
// official NodeHttpHandler from @smithy/node-http-handler.

import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { BedrockRuntimeClient, ConverseStreamCommand, InvokeModelWithResponseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { startFakeBedrock } from "../fake-bedrock.mjs";
import { TEST_CREDS, MODEL } from "./helpers.mjs";

// Node 20 is what the project has; the SDK only warns about future releases.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

let fake;
before(async () => {
  fake = await startFakeBedrock({ sessionToken: "FAKESESSIONTOKEN", bearerToken: "ABSKbedrockapikey" });
});
after(() => fake.close());
beforeEach(() => fake.reset());

const client = (extra = {}) =>
  new BedrockRuntimeClient({
    region: "us-east-1",
    endpoint: fake.url,
    credentials: { ...TEST_CREDS, sessionToken: "FAKESESSIONTOKEN" },
    requestHandler: new NodeHttpHandler({ requestTimeout: 10000 }),
    maxAttempts: 1,
    ...extra,
  });

async function collect(stream) {
  const events = [];
  for await (const ev of stream) events.push(ev);
  return events;
}

test("ConverseStream through the official SDK: events, text, stop reason, usage", async () => {
  const c = client();
  const out = await c.send(new ConverseStreamCommand({
    modelId: MODEL,
    system: [{ text: "You are terse." }],
    messages: [{ role: "user", content: [{ text: "Say hello" }] }],
    inferenceConfig: { maxTokens: 64, temperature: 0.2 },
  }));
  const events = await collect(out.stream);
  assert.deepEqual(events.map((e) => Object.keys(e)[0]), ["messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]);
  assert.equal(events.filter((e) => e.contentBlockDelta).map((e) => e.contentBlockDelta.delta.text).join(""), "Echo: Say hello");
  assert.equal(events.find((e) => e.messageStop).messageStop.stopReason, "end_turn");
  assert.deepEqual(events.at(-1).metadata.usage, { inputTokens: 5, outputTokens: 3, totalTokens: 8 });
  const rec = fake.requests().at(-1);
  assert.equal(rec.auth.verdict, "ok");
  assert.equal(rec.auth.tokenSigned, true);
  assert.equal(rec.path, `/model/${encodeURIComponent(MODEL)}/converse-stream`);
  assert.deepEqual(rec.bodyJson.inferenceConfig, { maxTokens: 64, temperature: 0.2 });
  c.destroy();
});

test("SDK retries a 429 ThrottlingException and then succeeds", async () => {
  fake.setScenario({ next: [{ scenario: "throttle" }] });
  const c = client({ maxAttempts: 3 });
  const out = await c.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "retry me" }] }] }));
  const events = await collect(out.stream);
  assert.equal(events.filter((e) => e.contentBlockDelta).map((e) => e.contentBlockDelta.delta.text).join(""), "Echo: retry me");
  assert.deepEqual(fake.requests().map((r) => r.status), [429, 200]);
  assert.equal(fake.requests()[1].headers["amz-sdk-request"], "attempt=2; max=3");
  c.destroy();
});

test("SDK surfaces pre-stream errors by their x-amzn-ErrorType name", async () => {
  const c = client();
  for (const [scenario, name, status] of [["throttle", "ThrottlingException", 429], ["validation", "ValidationException", 400], ["access-denied", "AccessDeniedException", 403]]) {
    await assert.rejects(
      c.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: `x [[${scenario}]]` }] }] })),
      (e) => e.name === name && e.$metadata.httpStatusCode === status && typeof e.message === "string",
    );
  }
  // A bad secret: the SDK gets the service's InvalidSignatureException.
  const bad = client({ credentials: { ...TEST_CREDS, secretAccessKey: "nope", sessionToken: "FAKESESSIONTOKEN" } });
  await assert.rejects(bad.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "x" }] }] })), (e) => e.name === "InvalidSignatureException" && e.$metadata.httpStatusCode === 403);
  c.destroy();
  bad.destroy();
});

test("SDK raises the modeled exception from an exception frame mid-stream", async () => {
  const c = client();
  for (const [et, name] of [["modelStreamErrorException", "ModelStreamErrorException"], ["throttlingException", "ThrottlingException"]]) {
    const out = await c.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: `a b c d [[exception-mid-stream exceptionType=${et} deltas=2]]` }] }] }));
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const ev of out.stream) seen.push(ev);
      })(),
      (e) => e.name === name,
    );
    assert.equal(seen.filter((e) => e.contentBlockDelta).length, 2);
  }
  c.destroy();
});

test("SDK treats the padding field p and random write boundaries as the real service's", async () => {
  const c = client();
  const out = await c.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "[[long=300 delayMs=0 split=true maxPiece=13]]" }] }], inferenceConfig: { maxTokens: 1000 } }));
  const events = await collect(out.stream);
  assert.equal(events.filter((e) => e.contentBlockDelta).length, 300);
  assert.equal(events.at(-1).metadata.usage.outputTokens, 300);
  c.destroy();
});

test("InvokeModelWithResponseStream through the SDK yields Anthropic events in chunk.bytes", async () => {
  const c = client();
  const body = JSON.stringify({ anthropic_version: "bedrock-2023-05-31", max_tokens: 50, messages: [{ role: "user", content: [{ type: "text", text: "Hi there" }] }] });
  const out = await c.send(new InvokeModelWithResponseStreamCommand({ modelId: MODEL, body, contentType: "application/json" }));
  const evs = [];
  for await (const ev of out.body) evs.push(JSON.parse(Buffer.from(ev.chunk.bytes).toString()));
  assert.equal(evs.filter((e) => e.type === "content_block_delta").map((e) => e.delta.text).join(""), "Echo: Hi there");
  assert.equal(evs.at(-1).type, "message_stop");
  c.destroy();
});

test("SDK with a Bedrock API key (bearer token) is accepted", async () => {
  const c = new BedrockRuntimeClient({
    region: "us-east-1",
    endpoint: fake.url,
    token: { token: "ABSKbedrockapikey" },
    authSchemePreference: ["httpBearerAuth"],
    requestHandler: new NodeHttpHandler({ requestTimeout: 10000 }),
    maxAttempts: 1,
  });
  const out = await c.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "bearer" }] }] }));
  await collect(out.stream);
  const rec = fake.requests().at(-1);
  assert.equal(rec.auth.scheme, "bearer");
  assert.equal(rec.auth.verdict, "ok");
  c.destroy();
});

test("SDK abort mid-stream is recorded as a client abort", async () => {
  const c = client();
  const ac = new AbortController();
  const out = await c.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: "user", content: [{ text: "[[long=500 delayMs=10]]" }] }], inferenceConfig: { maxTokens: 1000 } }), { abortSignal: ac.signal });
  let n = 0;
  await assert.rejects(async () => {
    for await (const ev of out.stream) {
      if (ev.contentBlockDelta && ++n === 5) ac.abort();
    }
  });
  const ok = await new Promise((resolve) => {
    const t0 = Date.now();
    const iv = setInterval(() => {
      if (fake.requests().at(-1).clientAborted || Date.now() - t0 > 3000) {
        clearInterval(iv);
        resolve(fake.requests().at(-1).clientAborted);
      }
    }, 10);
  });
  assert.equal(ok, true);
  assert.ok(fake.requests().at(-1).deltasSent < 500);
  c.destroy();
});
