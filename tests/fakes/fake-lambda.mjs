#!/usr/bin/env node
// Fake AWS Lambda endpoint speaking the Invoke API, for eventcast's data sources and direct
// Lambda integrations:
//
//   POST /2015-03-31/functions/{FunctionName}/invocations
//        X-Amz-Invocation-Type: RequestResponse (200 + the function's answer) | Event (202, the
//        function runs after the answer) | DryRun (204)
//
// Every request's SigV4 signature (service "lambda") is verified by re-signing it with the
// official @smithy/signature-v4 signer; a mismatch is answered 403 InvalidSignatureException, as
// Lambda does. Each function is a JS function (event, meta) => answer given by the test; one that
// throws is answered 200 with X-Amz-Function-Error: Unhandled and {errorMessage, errorType}.

import { createServer } from "node:http";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";

export const DEFAULT_CREDENTIALS = Object.freeze({
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
});

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || "");
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : null;
}

function headerValues(rawHeaders, lname) {
  const vals = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === lname) vals.push(rawHeaders[i + 1]);
  return vals;
}

/** Returns null when the signature is right, else the message Lambda would answer with. */
export async function verifySignature(req, body, cfg) {
  const authz = req.headers.authorization || "";
  if (!authz.startsWith("AWS4-HMAC-SHA256 ")) return "Missing Authentication Token";
  const params = {};
  for (const part of authz.slice("AWS4-HMAC-SHA256 ".length).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  if (!params.Credential || !params.Signature || !params.SignedHeaders) return "Authorization header is incomplete";
  const [akid, scopeDate, region, service, terminator] = params.Credential.split("/");
  if (akid !== cfg.accessKeyId) return "The security token included in the request is invalid.";
  if (service !== "lambda" || region !== cfg.region || terminator !== "aws4_request")
    return `Credential should be scoped to region '${cfg.region}', service 'lambda': '${params.Credential}'`;
  const signingDate = parseAmzDate(req.headers["x-amz-date"]);
  if (!signingDate || scopeDate !== req.headers["x-amz-date"].slice(0, 8)) return "X-Amz-Date is missing or does not match the credential scope";
  if (Math.abs(Date.now() - signingDate.getTime()) > 900_000) return "Signature expired";
  const signedList = params.SignedHeaders.split(";");
  if (!signedList.includes("host")) return "'Host' must be a 'SignedHeader' in the AWS Authorization.";
  const headers = {};
  for (const h of signedList) {
    const vals = headerValues(req.rawHeaders, h);
    if (!vals.length) return `'${h}' is named as a SignedHeader, but it does not exist in the HTTP request.`;
    headers[h] = vals.map((v) => v.trim()).join(",");
  }
  const token = req.headers["x-amz-security-token"];
  if ((cfg.sessionToken || "") !== (token || "")) return "The security token included in the request is invalid.";
  const [wirePath, rawQuery = ""] = req.url.split("?");
  const query = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) query[k] = k in query ? [].concat(query[k], v) : v;
  const signer = new SignatureV4({
    credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey, sessionToken: token },
    region: cfg.region,
    service: "lambda",
    sha256: Sha256,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    { method: req.method, protocol: "http:", hostname: (req.headers.host || "").split(":")[0], path: wirePath, query, headers, body },
    { signingDate, signableHeaders: new Set(signedList) },
  );
  const expected = /Signature=([0-9a-f]+)/.exec(signed.headers.authorization)[1];
  if (expected !== params.Signature)
    return "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
  return null;
}

function send(res, status, obj, headers = {}) {
  const text = obj === undefined ? "" : JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "x-amzn-requestid": crypto.randomUUID(), ...headers });
  res.end(text);
}

function awsError(res, status, type, message) {
  send(res, status, { Type: status >= 500 ? "Service" : "User", message }, { "x-amzn-ErrorType": type });
}

// "name", "123456789012:function:name", "arn:aws:lambda:REGION:ACCOUNT:function:name[:alias]"
function functionName(raw) {
  const parts = raw.split(":");
  const at = parts.indexOf("function");
  return at >= 0 && at + 1 < parts.length ? parts[at + 1] : raw;
}

/**
 * Starts the fake on 127.0.0.1 (port 0 unless given).
 * opts: { functions: { name: async (event, meta) => answer }, accessKeyId, secretAccessKey,
 *         sessionToken, region (default us-east-1), port }
 * Returns { url, port, calls, waitForCalls(n, ms), close() }; `calls` holds every invocation
 * that passed the signature check: { name, rawName, invocationType, event, signatureOk }.
 */
export async function startFakeLambda(opts = {}) {
  const cfg = {
    region: opts.region || "us-east-1",
    accessKeyId: opts.accessKeyId || DEFAULT_CREDENTIALS.accessKeyId,
    secretAccessKey: opts.secretAccessKey || DEFAULT_CREDENTIALS.secretAccessKey,
    sessionToken: opts.sessionToken,
  };
  const functions = opts.functions || {};
  const calls = [];
  const refused = [];
  const waiters = [];
  const settle = () => {
    for (const w of [...waiters]) if (calls.length >= w.n) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString("utf8");
    const m = /^\/2015-03-31\/functions\/([^/?]+)\/invocations(\?.*)?$/.exec(req.url);
    if (req.method !== "POST" || !m) return awsError(res, 404, "UnknownOperationException", `no route for ${req.method} ${req.url}`);
    const why = await verifySignature(req, body, cfg);
    if (why) {
      refused.push({ url: req.url, why });
      return awsError(res, 403, "InvalidSignatureException", why);
    }
    const rawName = decodeURIComponent(m[1]);
    const name = functionName(rawName);
    const fn = functions[name];
    if (!fn) return awsError(res, 404, "ResourceNotFoundException", `Function not found: ${rawName}`);
    const invocationType = req.headers["x-amz-invocation-type"] || "RequestResponse";
    let event;
    try {
      event = body === "" ? null : JSON.parse(body);
    } catch {
      return awsError(res, 400, "InvalidRequestContentException", "Could not parse request body into json");
    }
    const call = { name, rawName, invocationType, event };
    const run = async () => fn(event, { name, invocationType });
    if (invocationType === "DryRun") return send(res, 204, undefined);
    if (invocationType === "Event") {
      send(res, 202, undefined);
      try { call.answer = await run(); } catch (e) { call.error = String(e); }
      calls.push(call);
      return settle();
    }
    if (invocationType !== "RequestResponse")
      return awsError(res, 400, "InvalidParameterValueException", `invalid InvocationType ${invocationType}`);
    calls.push(call);
    settle();
    try {
      const answer = await run();
      send(res, 200, answer === undefined ? null : answer, { "x-amz-executed-version": "$LATEST" });
    } catch (e) {
      send(res, 200, { errorMessage: e?.message ?? String(e), errorType: e?.name ?? "Error", trace: [] },
        { "x-amz-function-error": "Unhandled" });
    }
  });
  await new Promise((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const port = server.address().port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    calls,
    refused,
    waitForCalls(n, ms = 5000) {
      if (calls.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const w = { n, resolve };
        waiters.push(w);
        setTimeout(() => reject(new Error(`fake-lambda: ${calls.length} of ${n} calls after ${ms} ms`)), ms).unref();
      });
    },
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}
