// Test helpers: a raw HTTP client on 127.0.0.1 (full control over path, Host
// and headers, no normalisation), an event-stream splitter that hands whole
// messages to the official EventStreamCodec, and SigV4 signing with the
// official @smithy/signature-v4 exactly as the AWS SDK does for Bedrock.

import http from "node:http";
import https from "node:https";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { toUtf8, fromUtf8 } from "@smithy/util-utf8";

export const codec = new EventStreamCodec(toUtf8, fromUtf8);

export const TEST_CREDS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

// Sends one request; resolves { status, headers, body: Buffer, error } once
// the response ends or fails (error is set when the connection broke).
// opts.abortAfterMs aborts the request that long after the response headers.
export function request(baseUrl, { method = "POST", path, headers = {}, body = "", timeoutMs = 10000, abortAfterMs, onData, ca } = {}) {
  const u = new URL(baseUrl);
  const mod = u.protocol === "https:" ? https : http;
  return new Promise((resolve) => {
    const chunks = [];
    let settled = false;
    const done = (extra) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...extra, body: Buffer.concat(chunks) });
    };
    const req = mod.request(
      { host: u.hostname, port: u.port, method, path, headers: { ...headers }, agent: false, ca, setHost: !Object.keys(headers).some((h) => h.toLowerCase() === "host") },
      (res) => {
        const base = { status: res.statusCode, headers: res.headers };
        if (abortAfterMs !== undefined) setTimeout(() => { req.destroy(); done({ ...base, error: "aborted-by-test" }); }, abortAfterMs);
        res.on("data", (d) => {
          chunks.push(d);
          onData?.(d, chunks);
        });
        res.on("end", () => done({ ...base, complete: res.complete }));
        res.on("aborted", () => done({ ...base, error: "aborted" }));
        res.on("error", (e) => done({ ...base, error: e.code || e.message }));
        res.on("close", () => done({ ...base, complete: res.complete, error: res.complete ? undefined : "closed" }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done({ error: "test-timeout" });
    }, timeoutMs);
    req.on("error", (e) => done({ error: e.code || e.message }));
    req.end(body);
  });
}

export async function getJson(baseUrl, path) {
  const r = await request(baseUrl, { method: "GET", path });
  return JSON.parse(r.body.toString("utf8"));
}

export async function postJson(baseUrl, path, obj) {
  const r = await request(baseUrl, { method: "POST", path, headers: { "content-type": "application/json" }, body: JSON.stringify(obj) });
  return JSON.parse(r.body.toString("utf8"));
}

// Splits a complete event-stream body into messages (by the total-length
// prelude) and decodes each with the official codec (which checks both CRCs).
export function decodeFrames(buf) {
  const out = [];
  let pos = 0;
  while (pos + 4 <= buf.length) {
    const total = buf.readUInt32BE(pos);
    if (pos + total > buf.length) throw new Error(`truncated frame at ${pos}: need ${total}, have ${buf.length - pos}`);
    const msg = codec.decode(new Uint8Array(buf.subarray(pos, pos + total)));
    const headers = Object.fromEntries(Object.entries(msg.headers).map(([k, v]) => [k, v.value]));
    const text = toUtf8(msg.body);
    out.push({ headers, raw: buf.subarray(pos, pos + total), bodyText: text, json: text ? JSON.parse(text) : null });
    pos += total;
  }
  if (pos !== buf.length) throw new Error(`trailing ${buf.length - pos} bytes`);
  return out;
}

// Signs like the SDK: SignatureV4 for service "bedrock" with the wire path
// (model id already percent-encoded). Returns the headers to send.
export async function signBedrock({ url, path, body, credentials = TEST_CREDS, region = "us-east-1", service = "bedrock", signingDate, extraHeaders = {}, applyChecksum = false }) {
  const u = new URL(url);
  const signer = new SignatureV4({ credentials, region, service, sha256: Sha256, applyChecksum });
  const signed = await signer.sign(
    {
      method: "POST",
      protocol: u.protocol,
      hostname: u.hostname,
      port: Number(u.port),
      path,
      headers: { "content-type": "application/json", host: u.host, ...extraHeaders },
      body,
    },
    signingDate ? { signingDate } : {},
  );
  return signed.headers;
}

export const MODEL = "anthropic.claude-3-haiku-20240307-v1:0";
export const MODEL_PATH = `/model/${encodeURIComponent(MODEL)}/converse-stream`;

export function converseBody(text, extra = {}) {
  return JSON.stringify({ messages: [{ role: "user", content: [{ text }] }], inferenceConfig: { maxTokens: 256 }, ...extra });
}

// Signs and sends one ConverseStream request.
export async function converse(fake, text, { extra, headers = {}, path = MODEL_PATH, ...opts } = {}) {
  const body = typeof text === "string" ? converseBody(text, extra) : JSON.stringify(text);
  const signed = await signBedrock({ url: fake.url, path, body, extraHeaders: headers, credentials: opts.credentials });
  return request(fake.url, { path, headers: signed, body, ...opts });
}

export function textOf(frames) {
  return frames.filter((f) => f.headers[":event-type"] === "contentBlockDelta").map((f) => f.json.delta.text).join("");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, { timeoutMs = 3000, stepMs = 10 } = {}) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return true;
    await sleep(stepMs);
  }
  return false;
}
