// Command-line contract used by the C++ tests: --port 0 --port-file FILE,
// 127.0.0.1 only, a "listening" line on stdout, clean exit on SIGTERM; and
// optional HTTPS with a given certificate.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { request, getJson, decodeFrames, textOf, signBedrock, converseBody, MODEL_PATH, waitFor } from "./helpers.mjs";
import { startFakeBedrock } from "../fake-bedrock.mjs";
import { startFakeOpenAI } from "../fake-openai.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fakes-cli-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function launch(script, args) {
  const child = spawn(process.execPath, [path.join(here, "..", script), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const kill = setTimeout(() => child.kill("SIGKILL"), 20000); // hard bound
  exited.then(() => clearTimeout(kill));
  return { child, exited, out: () => out, err: () => err };
}

async function readPort(file) {
  assert.ok(await waitFor(() => fs.existsSync(file), { timeoutMs: 10000 }), "port file written");
  return Number(fs.readFileSync(file, "utf8").trim());
}

test("fake-bedrock CLI: port file, credentials, scenario, SIGTERM", async () => {
  const portFile = path.join(tmp, "bedrock.port");
  const p = launch("fake-bedrock.mjs", ["--port", "0", "--port-file", portFile, "--access-key", "AKIDCLI", "--secret-key", "cli-secret", "--session-token", "cli-token", "--region", "eu-west-3", "--scenario", "happy delayMs=0 padding=none"]);
  const port = await readPort(portFile);
  assert.ok(port > 0);
  const url = `http://127.0.0.1:${port}`;
  assert.ok(await waitFor(() => p.out().includes(`fake-bedrock listening on ${url} port ${port}`)));
  const body = converseBody("from the CLI");
  const headers = await signBedrock({ url, path: MODEL_PATH, body, region: "eu-west-3", credentials: { accessKeyId: "AKIDCLI", secretAccessKey: "cli-secret", sessionToken: "cli-token" } });
  const r = await request(url, { path: MODEL_PATH, headers, body });
  assert.equal(r.status, 200);
  const frames = decodeFrames(r.body);
  assert.equal(textOf(frames), "Echo: from the CLI");
  assert.ok(frames.every((f) => !("p" in f.json)));
  assert.equal((await getJson(url, "/__requests")).length, 1);
  p.child.kill("SIGTERM");
  const ex = await p.exited;
  assert.equal(ex.code, 0, p.err());
});

test("fake-openai CLI: port file, api key, SIGTERM while a stream is stalled", async () => {
  const portFile = path.join(tmp, "openai.port");
  const p = launch("fake-openai.mjs", ["--port-file", portFile, "--api-key", "cli-key"]);
  const port = await readPort(portFile);
  const url = `http://127.0.0.1:${port}`;
  const r = await request(url, { path: "/v1/chat/completions", headers: { authorization: "Bearer cli-key", "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }], stream: true }) });
  assert.equal(r.status, 200);
  assert.ok(r.body.toString().endsWith("data: [DONE]\n\n"));
  const stalled = request(url, { path: "/v1/chat/completions", headers: { authorization: "Bearer cli-key" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x y [[stall]]" }], stream: true }) });
  assert.ok(await waitFor(async () => (await getJson(url, "/__stats")).openStreams === 1));
  p.child.kill("SIGTERM");
  const ex = await p.exited;
  assert.equal(ex.code, 0, p.err());
  assert.ok((await stalled).error, "stalled stream is cut when the fake exits");
});

test("CLI rejects unknown options with exit code 2", async () => {
  const p = launch("fake-openai.mjs", ["--bogus"]);
  const ex = await p.exited;
  assert.equal(ex.code, 2);
  assert.match(p.err(), /unknown option --bogus/);
});

test("servers listen on 127.0.0.1 only", async () => {
  const b = await startFakeBedrock();
  const o = await startFakeOpenAI();
  try {
    assert.equal(b.server.address().address, "127.0.0.1");
    assert.equal(o.server.address().address, "127.0.0.1");
  } finally {
    await b.close();
    await o.close();
  }
});

let haveOpenssl = true;
try {
  execFileSync("openssl", ["version"], { stdio: "ignore" });
} catch {
  haveOpenssl = false;
}

test("HTTPS with a given certificate", { skip: !haveOpenssl && "openssl not installed" }, async () => {
  const cert = path.join(tmp, "cert.pem");
  const key = path.join(tmp, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const ca = fs.readFileSync(cert);
  const b = await startFakeBedrock({ tlsCert: cert, tlsKey: key });
  const o = await startFakeOpenAI({ tlsCert: cert, tlsKey: key, apiKey: null });
  try {
    assert.match(b.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const body = converseBody("secure");
    const headers = await signBedrock({ url: b.url, path: MODEL_PATH, body });
    const r = await request(b.url, { path: MODEL_PATH, headers, body, ca });
    assert.equal(r.status, 200);
    assert.equal(textOf(decodeFrames(r.body)), "Echo: secure");
    const r2 = await request(o.url, { path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "x" }], stream: true }), ca });
    assert.equal(r2.status, 200, "no key configured: any caller accepted");
  } finally {
    await b.close();
    await o.close();
  }
});
