#!/usr/bin/env node
// Fake Amazon Bedrock Runtime endpoint for eventcast's Bedrock client tests.
//
//   POST /model/{modelId}/converse-stream              (ConverseStream)
//   POST /model/{modelId}/invoke-with-response-stream  (InvokeModelWithResponseStream,
//                                                       Anthropic messages body)
//   POST /model/{modelId}/converse, /model/{modelId}/invoke  (the same answers, not streamed:
//                                                       for namespace handlers' data sources)
//
// SigV4 is verified by re-signing the received request with the official
// @smithy/signature-v4 signer; responses are framed with the official
// @smithy/eventstream-codec. See README.md for the scenario contract.

import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { toUtf8, fromUtf8 } from "@smithy/util-utf8";
import {
  StreamCtl,
  answerChunks,
  countWords,
  extractPromptDirectives,
  makeRng,
  parseScenarioHeader,
  requestId,
  runCli,
  scenarioFromCli,
  sendJson,
  startFakeServer,
} from "./lib/common.mjs";

export const DEFAULT_CREDENTIALS = Object.freeze({
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
});

const codec = new EventStreamCodec(toUtf8, fromUtf8);
const PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

// ---------------------------------------------------------------------------
// Errors before the stream (spec 2.7): x-amzn-ErrorType + {"message": ...}.
const CORAL_BEDROCK = "http://internal.amazon.com/coral/com.amazon.bedrock/";
const CORAL_SERVICE = "http://internal.amazon.com/coral/com.amazon.coral.service/";
const AUTH_LAYER_ERRORS = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "IncompleteSignatureException",
  "MissingAuthenticationTokenException",
  "ExpiredTokenException",
]);

function sendAwsError(res, status, errorType, message, { suffix = true } = {}) {
  const typeHeader = suffix ? `${errorType}:${AUTH_LAYER_ERRORS.has(errorType) ? CORAL_SERVICE : CORAL_BEDROCK}` : errorType;
  sendJson(res, status, { message }, { "x-amzn-ErrorType": typeHeader, "x-amzn-RequestId": requestId() });
}

// Named pre-stream error scenarios.
export const HTTP_ERROR_PRESETS = {
  throttle: [429, "ThrottlingException", "Too many requests, please wait before trying again."],
  validation: [400, "ValidationException", "The provided request is not valid."],
  "quota-exceeded": [400, "ServiceQuotaExceededException", "Your request exceeds the service quota for your account."],
  "access-denied": [403, "AccessDeniedException", "You don't have access to the model with the specified model ID."],
  "expired-token": [403, "ExpiredTokenException", "The security token included in the request is expired"],
  "not-found": [404, "ResourceNotFoundException", "The provided model identifier is invalid."],
  "model-timeout": [408, "ModelTimeoutException", "Model has timed out in processing the request."],
  "model-error": [424, "ModelErrorException", "The model returned an error."],
  "model-not-ready": [429, "ModelNotReadyException", "Model is not ready to serve inference requests."],
  internal: [500, "InternalServerException", "The server encountered an internal error."],
  unavailable: [503, "ServiceUnavailableException", "The service is temporarily unavailable."],
};

// Exception frames inside the stream (spec 2.6).
const EXCEPTION_MESSAGES = {
  modelStreamErrorException: "The model stream encountered an error.",
  throttlingException: "Too many requests, please wait before trying again.",
  internalServerException: "The server encountered an internal error.",
  validationException: "The provided request is not valid.",
  serviceUnavailableException: "The service is temporarily unavailable.",
  modelTimeoutException: "Model has timed out in processing the request.",
};

// ---------------------------------------------------------------------------
// SigV4 verification by re-signing with the official signer.
class CapturingSigner extends SignatureV4 {
  createCanonicalRequest(...args) {
    this.canonicalRequest = super.createCanonicalRequest(...args);
    return this.canonicalRequest;
  }
  async createStringToSign(...args) {
    this.stringToSign = await super.createStringToSign(...args);
    return this.stringToSign;
  }
}

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || "");
  if (!m) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

function headerValues(rawHeaders, lname) {
  const vals = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === lname) vals.push(rawHeaders[i + 1]);
  return vals;
}

// Returns { ok, scheme, status?, errorType?, message?, ... } (never throws).
export async function verifyAuth(req, body, cfg) {
  const authz = req.headers.authorization;
  const out = { ok: false, scheme: "none" };
  const fail = (status, errorType, message, extra = {}) => Object.assign(out, { ok: false, status, errorType, message }, extra);
  if (!authz) return fail(403, "MissingAuthenticationTokenException", "Missing Authentication Token");

  const bearer = /^Bearer\s+(.+)$/i.exec(authz);
  if (bearer) {
    out.scheme = "bearer";
    if (cfg.bearerToken && bearer[1].trim() === cfg.bearerToken) return Object.assign(out, { ok: true });
    return fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
  }
  if (!authz.startsWith("AWS4-HMAC-SHA256 ")) {
    return fail(403, "IncompleteSignatureException", `Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=${authz.split(" ")[0]}`);
  }
  out.scheme = "sigv4";
  const params = {};
  for (const part of authz.slice("AWS4-HMAC-SHA256 ".length).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  const missing = ["Credential", "Signature", "SignedHeaders"].filter((k) => !params[k]);
  if (missing.length) return fail(403, "IncompleteSignatureException", missing.map((k) => `Authorization header requires '${k}' parameter.`).join(" "));

  const [akid, scopeDate, scopeRegion, scopeService, terminator, ...extra] = params.Credential.split("/");
  Object.assign(out, { accessKeyId: akid, credentialScope: params.Credential.split("/").slice(1).join("/"), signedHeaders: params.SignedHeaders });
  if (akid !== cfg.accessKeyId) return fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
  if (extra.length || !terminator) return fail(403, "IncompleteSignatureException", `Credential should be scoped to a valid region, service and terminator: '${params.Credential}'.`);

  const amzDate = req.headers["x-amz-date"];
  const signingDate = parseAmzDate(amzDate);
  if (!signingDate) return fail(403, "IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  if (scopeDate !== amzDate.slice(0, 8)) return fail(403, "InvalidSignatureException", `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`);
  if (terminator !== "aws4_request") return fail(403, "InvalidSignatureException", `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'.`);
  if (scopeService !== "bedrock") return fail(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'. ");
  if (scopeRegion !== cfg.region) return fail(403, "InvalidSignatureException", "Credential should be scoped to a valid region. ");
  if (cfg.maxSkewSeconds > 0) {
    const now = Date.now();
    if (Math.abs(now - signingDate.getTime()) > cfg.maxSkewSeconds * 1000) {
      return fail(403, "InvalidSignatureException", `Signature expired: ${amzDate} is now earlier/later than the allowed window around ${new Date(now).toISOString()} (${cfg.maxSkewSeconds} s).`);
    }
  }

  const signedList = params.SignedHeaders.split(";");
  if (!signedList.includes("host")) return fail(403, "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  for (const h of signedList) {
    if (headerValues(req.rawHeaders, h).length === 0) return fail(403, "InvalidSignatureException", `'${h}' is named as a SignedHeader, but it does not exist in the HTTP request.`);
  }
  const token = req.headers["x-amz-security-token"];
  out.tokenPresent = token !== undefined;
  out.tokenSigned = signedList.includes("x-amz-security-token");
  if ((cfg.sessionToken || "") !== (token || "")) return fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.");

  const bodyHash = createHash("sha256").update(body).digest("hex");
  const declared = req.headers["x-amz-content-sha256"];
  if (declared !== undefined && declared !== bodyHash) return fail(400, "InvalidSignatureException", `The provided 'x-amz-content-sha256' header does not match what was computed: ${declared} != ${bodyHash}`);

  // Re-sign exactly the signed headers (values as received; repeated headers
  // joined with ',' after trimming) over the wire path and raw body.
  const headers = {};
  for (const h of signedList) headers[h] = headerValues(req.rawHeaders, h).map((v) => v.trim()).join(",");
  const [wirePath, rawQuery = ""] = req.url.split("?");
  const query = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) query[k] = k in query ? [].concat(query[k], v) : v;
  const signer = new CapturingSigner({
    credentials: {
      accessKeyId: cfg.accessKeyId,
      secretAccessKey: cfg.secretAccessKey,
      sessionToken: out.tokenSigned ? token : undefined,
    },
    region: cfg.region,
    service: "bedrock",
    sha256: Sha256,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    { method: req.method, protocol: "http:", hostname: (req.headers.host || "").split(":")[0], path: wirePath, query, headers, body },
    { signingDate, signableHeaders: new Set(signedList) },
  );
  const expected = signed.headers.authorization;
  const expSig = /Signature=([0-9a-f]+)/.exec(expected)[1];
  const expSigned = /SignedHeaders=([^,]+)/.exec(expected)[1];
  out.expectedAuthorization = expected;
  out.authorizationExact = expected === authz;
  out.canonicalRequest = signer.canonicalRequest;
  out.stringToSign = signer.stringToSign;
  if (expSig !== params.Signature || expSigned !== params.SignedHeaders) {
    return fail(
      403,
      "InvalidSignatureException",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n" +
        `The Canonical String for this request should have been\n'${signer.canonicalRequest}'\n\n` +
        `The String-to-Sign should have been\n'${signer.stringToSign}'\n`,
    );
  }
  return Object.assign(out, { ok: true });
}

// ---------------------------------------------------------------------------
// Body validation (ValidationException on garbage).
const CONVERSE_MEMBERS = new Set([
  "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
  "additionalModelResponseFieldPaths", "promptVariables", "requestMetadata", "performanceConfig", "serviceTier", "outputConfig",
]);
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const constraint = (value, path, what) => `1 validation error detected: Value ${JSON.stringify(value)} at '${path}' failed to satisfy constraint: ${what}`;

export function validateConverse(b) {
  if (!isObj(b)) return "Malformed input request: the request body must be a JSON object, please reformat your input and try again.";
  for (const k of Object.keys(b)) if (!CONVERSE_MEMBERS.has(k)) return `Malformed input request: extraneous key [${k}] is not permitted, please reformat your input and try again.`;
  if (b.messages === undefined) return constraint(null, "messages", "Member must not be null");
  if (!Array.isArray(b.messages)) return constraint(b.messages, "messages", "Member must be a list");
  if (b.messages.length === 0) return "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
  for (let i = 0; i < b.messages.length; i++) {
    const m = b.messages[i];
    const p = `messages.${i + 1}.member`;
    if (!isObj(m)) return constraint(m, p, "Member must be a structure");
    if (m.role !== "user" && m.role !== "assistant") return constraint(m.role ?? null, `${p}.role`, "Member must satisfy enum value set: [user, assistant]");
    if (!Array.isArray(m.content)) return constraint(m.content ?? null, `${p}.content`, "Member must not be null and must be a list");
    if (m.content.length === 0) return "The content field in the Message object is empty. Add a ContentBlock object to the content field and try again.";
    for (let j = 0; j < m.content.length; j++) {
      const c = m.content[j];
      if (!isObj(c) || Object.keys(c).length !== 1) return constraint(c, `${p}.content.${j + 1}.member`, "Member must be a union with exactly one member set");
      if ("text" in c && typeof c.text !== "string") return constraint(c.text, `${p}.content.${j + 1}.member.text`, "Member must be a string");
    }
  }
  if (b.messages[0].role !== "user") return "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
  for (let i = 1; i < b.messages.length; i++) {
    if (b.messages[i].role === b.messages[i - 1].role) return "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.";
  }
  if (b.system !== undefined) {
    if (!Array.isArray(b.system)) return constraint(b.system, "system", "Member must be a list");
    for (let i = 0; i < b.system.length; i++) {
      const s = b.system[i];
      if (!isObj(s) || Object.keys(s).length !== 1) return constraint(s, `system.${i + 1}.member`, "Member must be a union with exactly one member set");
      if ("text" in s && typeof s.text !== "string") return constraint(s.text, `system.${i + 1}.member.text`, "Member must be a string");
    }
  }
  const ic = b.inferenceConfig;
  if (ic !== undefined) {
    if (!isObj(ic)) return constraint(ic, "inferenceConfig", "Member must be a structure");
    for (const k of Object.keys(ic)) if (!["maxTokens", "temperature", "topP", "stopSequences"].includes(k)) return `Malformed input request: extraneous key [inferenceConfig.${k}] is not permitted, please reformat your input and try again.`;
    if (ic.maxTokens !== undefined && (!Number.isInteger(ic.maxTokens) || ic.maxTokens < 1)) return constraint(ic.maxTokens, "inferenceConfig.maxTokens", "Member must have value greater than or equal to 1");
    for (const k of ["temperature", "topP"]) {
      if (ic[k] !== undefined && (typeof ic[k] !== "number" || ic[k] < 0 || ic[k] > 1)) return constraint(ic[k], `inferenceConfig.${k}`, "Member must have value less than or equal to 1 and greater than or equal to 0");
    }
    if (ic.stopSequences !== undefined) {
      if (!Array.isArray(ic.stopSequences) || ic.stopSequences.length > 4) return constraint(ic.stopSequences, "inferenceConfig.stopSequences", "Member must have length less than or equal to 4");
      if (ic.stopSequences.some((s) => typeof s !== "string" || s.length === 0)) return constraint(ic.stopSequences, "inferenceConfig.stopSequences", "Member must satisfy constraint: [Member must have length greater than or equal to 1]");
    }
  }
  if (b.additionalModelRequestFields !== undefined && !isObj(b.additionalModelRequestFields)) return constraint(b.additionalModelRequestFields, "additionalModelRequestFields", "Member must be a document object");
  return null;
}

export function validateAnthropicInvoke(b) {
  if (!isObj(b)) return "Malformed input request: the request body must be a JSON object, please reformat your input and try again.";
  if (b.anthropic_version === undefined) return "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again.";
  if (b.anthropic_version !== "bedrock-2023-05-31") return `Invalid API version: ${b.anthropic_version}`;
  if (!Number.isInteger(b.max_tokens) || b.max_tokens < 1) return "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again.";
  if (!Array.isArray(b.messages) || b.messages.length === 0) return "Malformed input request: #: required key [messages] not found, please reformat your input and try again.";
  for (const k of ["model", "stream"]) if (k in b) return `Malformed input request: #: extraneous key [${k}] is not permitted, please reformat your input and try again.`;
  for (const m of b.messages) {
    if (!isObj(m) || (m.role !== "user" && m.role !== "assistant")) return "messages: roles must be user or assistant";
    if (typeof m.content !== "string" && !Array.isArray(m.content)) return "messages: content must be a string or a list of content blocks";
  }
  return null;
}

function blocksText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.filter((c) => c && typeof c.text === "string").map((c) => c.text).join("");
}

// ---------------------------------------------------------------------------
// Framing.
const eventHeaders = (eventType) => ({
  ":event-type": { type: "string", value: eventType },
  ":content-type": { type: "string", value: "application/json" },
  ":message-type": { type: "string", value: "event" },
});

export function encodeEvent(eventType, payloadObj) {
  return codec.encode({ headers: eventHeaders(eventType), body: fromUtf8(JSON.stringify(payloadObj)) });
}

export function encodeException(exceptionType, payloadObj) {
  return codec.encode({
    headers: {
      ":exception-type": { type: "string", value: exceptionType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: "exception" },
    },
    body: fromUtf8(JSON.stringify(payloadObj)),
  });
}

export function encodeErrorFrame(code, message) {
  return codec.encode({
    headers: {
      ":error-code": { type: "string", value: code },
      ":error-message": { type: "string", value: message },
      ":message-type": { type: "string", value: "error" },
    },
    body: new Uint8Array(0),
  });
}

function padFor(s, index, rng) {
  const p = s.padding ?? "random";
  if (p === "none" || p === false) return null;
  if (Array.isArray(p)) return p[index] ? String(p[index]) : null;
  if (typeof p === "string" && p !== "random") return p; // a fixed padding string on every event
  return PAD_ALPHABET.slice(0, rng.int(1, PAD_ALPHABET.length));
}

// ---------------------------------------------------------------------------
const STREAM_SCENARIOS = new Set(["happy", "slow-start", "exception-mid-stream", "error-mid-stream", "drop", "stall", "truncate", "corrupt"]);

async function handleModelRequest(req, res, ctx, cfg) {
  const { record, body, url } = ctx;
  const m = /^\/model\/([^/]+)\/(converse-stream|invoke-with-response-stream|converse|invoke)$/.exec(url.pathname);
  if (!m) return sendAwsError(res, 404, "UnknownOperationException", `No operation matches ${req.method} ${record.path}`, { suffix: false });
  if (req.method !== "POST") return sendAwsError(res, 405, "UnknownOperationException", `Method ${req.method} not allowed`, { suffix: false });
  let modelId;
  try {
    modelId = decodeURIComponent(m[1]);
  } catch {
    return sendAwsError(res, 400, "ValidationException", "The model identifier is not a valid URI label.");
  }
  const operation = { "converse-stream": "ConverseStream", "invoke-with-response-stream": "InvokeModelWithResponseStream", converse: "Converse", invoke: "InvokeModel" }[m[2]];
  Object.assign(record, { modelId, operation });

  const auth = cfg.verifyAuth === false ? { ok: true, scheme: "unchecked" } : await verifyAuth(req, body, cfg);
  record.auth = {
    scheme: auth.scheme,
    verdict: auth.ok ? "ok" : auth.errorType,
    message: auth.message,
    accessKeyId: auth.accessKeyId,
    credentialScope: auth.credentialScope,
    signedHeaders: auth.signedHeaders,
    tokenPresent: auth.tokenPresent,
    tokenSigned: auth.tokenSigned,
    authorizationExact: auth.authorizationExact,
    canonicalRequest: auth.canonicalRequest,
  };
  if (cfg.sessionToken) {
    // The recorded copy never shows the session token (the error message sent
    // to the client does, like the real service's).
    const hide = (v) => (typeof v === "string" ? v.split(cfg.sessionToken).join("<redacted>") : v);
    record.auth.canonicalRequest = hide(record.auth.canonicalRequest);
    record.auth.message = hide(record.auth.message);
  }
  if (!auth.ok) return sendAwsError(res, auth.status, auth.errorType, auth.message);

  if (record.bodyJson === null) return sendAwsError(res, 400, "ValidationException", "Malformed input request, please reformat your input and try again.");
  const conversing = operation === "ConverseStream" || operation === "Converse";
  const invalid = conversing ? validateConverse(record.bodyJson) : validateAnthropicInvoke(record.bodyJson);
  if (invalid) return sendAwsError(res, 400, "ValidationException", invalid);

  // Prompt = text of the last user message; input tokens = words in all text.
  const b = record.bodyJson;
  const users = b.messages.filter((x) => x.role === "user");
  const prompt = blocksText(users[users.length - 1]?.content);
  const allText = [...(Array.isArray(b.system) ? b.system.map((s) => s.text || "") : [typeof b.system === "string" ? b.system : blocksText(b.system)]), ...b.messages.map((x) => blocksText(x.content))].join(" ");
  const { options: promptOpts, cleanPrompt } = extractPromptDirectives(prompt);
  const s = { ...ctx.takeScenario(), ...parseScenarioHeader(req.headers["x-fake-scenario"]), ...promptOpts };
  record.scenario = s;
  record.prompt = cleanPrompt;

  const name = s.scenario || "happy";
  if (name === "error" || HTTP_ERROR_PRESETS[name]) {
    const [st, type, msg] = HTTP_ERROR_PRESETS[name] || [500, "InternalServerException", "The server encountered an internal error."];
    return sendAwsError(res, s.status ?? st, s.errorType ?? type, s.message ?? msg);
  }
  if (!STREAM_SCENARIOS.has(name)) return sendAwsError(res, 400, "ValidationException", `fake-bedrock: unknown scenario '${name}'`);

  const maxTokens = conversing ? b.inferenceConfig?.maxTokens : b.max_tokens;
  let chunks = answerChunks(s, cleanPrompt);
  let stopReason = s.stopReason ?? "end_turn";
  if (Number.isInteger(maxTokens) && chunks.length > maxTokens && s.ignoreMaxTokens !== true) {
    chunks = chunks.slice(0, maxTokens);
    stopReason = "max_tokens";
  }
  const inputTokens = s.inputTokens ?? Math.max(1, countWords(allText));
  const outputTokens = s.outputTokens ?? chunks.length;
  record.expectedText = chunks.join("");

  // The non-streaming operations answer the same text in one JSON body: Converse's
  // {output:{message}, stopReason, usage, metrics}, InvokeModel's Anthropic messages answer.
  if (operation === "Converse") {
    return sendJson(res, 200, {
      output: { message: { role: "assistant", content: [{ text: record.expectedText }] } },
      stopReason,
      usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
      metrics: { latencyMs: 1 },
    }, { "x-amzn-RequestId": requestId() });
  }
  if (operation === "InvokeModel") {
    return sendJson(res, 200, {
      id: `msg_fake_${record.id}`, type: "message", role: "assistant", model: modelId,
      content: [{ type: "text", text: record.expectedText }],
      stop_reason: stopReason, stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: outputTokens },
    }, { "x-amzn-RequestId": requestId() });
  }
  const ctl = new StreamCtl(req, res, record, ctx.stats);
  const rng = makeRng(s.seed ?? record.id);
  const started = Date.now();
  if (name === "slow-start") {
    if (!(await ctl.sleep(s.firstByteDelayMs ?? 2000))) return;
  } else if (s.firstByteDelayMs && !(await ctl.sleep(s.firstByteDelayMs))) return;

  res.writeHead(200, {
    "Content-Type": "application/vnd.amazon.eventstream",
    "x-amzn-RequestId": requestId(),
    ...(operation === "InvokeModelWithResponseStream" ? { "X-Amzn-Bedrock-Content-Type": "application/json" } : {}),
  });
  res.flushHeaders();

  const delayMs = s.delayMs ?? 10;
  const faultAfter = Math.min(s.deltas ?? 2, chunks.length);
  const faulty = ["exception-mid-stream", "error-mid-stream", "drop", "stall", "truncate", "corrupt"].includes(name);
  let frameIndex = 0;
  const pending = []; // for coalesce mode
  const writeOpts = { split: s.split === true, rng, maxPiece: s.maxPiece ?? 7, pieceDelayMs: s.pieceDelayMs ?? 0 };
  const emit = async (bytes, kind = "event") => {
    frameIndex++;
    record.framesSent++;
    if (kind === "delta") record.deltasSent++;
    if (s.coalesce) {
      pending.push(bytes);
      return true;
    }
    return ctl.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), writeOpts);
  };
  const flush = async () => {
    if (!pending.length) return true;
    const all = Buffer.concat(pending.map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)));
    pending.length = 0;
    return ctl.write(all, writeOpts);
  };
  const withPad = (obj) => {
    const p = padFor(s, frameIndex, rng);
    return p === null ? obj : { ...obj, p };
  };

  // Event payload builders per operation.
  const isConverse = operation === "ConverseStream";
  const msgId = `msg_bdrk_${requestId().replace(/-/g, "").slice(0, 24)}`;
  const chunkEvent = (anthropicEvent) => encodeEvent("chunk", withPad({ bytes: Buffer.from(JSON.stringify(anthropicEvent)).toString("base64") }));
  const startFrames = isConverse
    ? [() => encodeEvent("messageStart", withPad({ role: "assistant" }))]
    : [
        () => chunkEvent({ type: "message_start", message: { id: msgId, type: "message", role: "assistant", model: modelId, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: inputTokens, output_tokens: 1 } } }),
        () => chunkEvent({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
      ];
  const deltaFrame = (text) =>
    isConverse
      ? encodeEvent("contentBlockDelta", withPad({ contentBlockIndex: 0, delta: { text } }))
      : chunkEvent({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } });

  // messageStart (and for invoke the block start). Frames are built one at a
  // time, right before they are written, so padding indices follow the order.
  for (const build of startFrames) if (!(await emit(build()))) return;
  if (s.unknownEvent) {
    if (!(await emit(encodeEvent(typeof s.unknownEvent === "string" ? s.unknownEvent : "futureEventType", withPad({ note: "unknown event types must be skipped" }))))) return;
  }
  const nDeltas = faulty ? faultAfter : chunks.length;
  for (let i = 0; i < nDeltas; i++) {
    if (!s.coalesce && !(await ctl.sleep(delayMs))) return;
    if (!(await emit(deltaFrame(chunks[i]), "delta"))) return;
  }

  if (faulty) {
    if (!(await flush())) return;
    if (name === "exception-mid-stream") {
      const et = s.exceptionType ?? "modelStreamErrorException";
      const payload = { message: s.message ?? EXCEPTION_MESSAGES[et] ?? "The stream failed." };
      if (et === "modelStreamErrorException") Object.assign(payload, { originalStatusCode: s.originalStatusCode ?? 529, originalMessage: s.originalMessage ?? "Overloaded" });
      await emit(encodeException(et, payload), "exception");
      ctl.end();
    } else if (name === "error-mid-stream") {
      await emit(encodeErrorFrame(s.errorCode ?? "InternalFailure", s.message ?? "An internal error occurred"), "error");
      ctl.end();
    } else if (name === "truncate") {
      ctl.end(); // clean end of the HTTP body, but no messageStop/metadata
    } else if (name === "corrupt") {
      const bad = Buffer.from(deltaFrame(chunks[faultAfter] ?? "corrupt"));
      bad[bad.length - 1] ^= 0xff; // wrong message CRC
      record.framesSent++;
      await ctl.write(bad);
      ctl.end();
    } else if (name === "drop") {
      if (s.partial) {
        const next = Buffer.from(deltaFrame(chunks[faultAfter] ?? "partial"));
        await ctl.writeRaw(next.subarray(0, Math.floor(next.length / 2)));
        await ctl.sleep(20);
      } else await ctl.sleep(20); // let the deltas reach the client first
      if (!ctl.aborted) ctl.drop();
    } else if (name === "stall") {
      await ctl.stall(s.stallMaxMs ?? 120000);
    }
    return;
  }

  const latencyMs = s.latencyMs ?? Date.now() - started;
  if (isConverse) {
    if (!(await emit(encodeEvent("contentBlockStop", withPad({ contentBlockIndex: 0 }))))) return;
    if (!(await emit(encodeEvent("messageStop", withPad({ stopReason }))))) return;
    if (!(await emit(encodeEvent("metadata", withPad({ usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens }, metrics: { latencyMs } }))))) return;
  } else {
    if (!(await emit(chunkEvent({ type: "content_block_stop", index: 0 })))) return;
    if (!(await emit(chunkEvent({ type: "message_delta", delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } })))) return;
    const metrics = { inputTokenCount: inputTokens, outputTokenCount: outputTokens, invocationLatency: latencyMs, firstByteLatency: Math.min(latencyMs, s.firstByteDelayMs ?? 0) };
    if (!(await emit(chunkEvent({ type: "message_stop", "amazon-bedrock-invocationMetrics": metrics })))) return;
  }
  if (!(await flush())) return;
  ctl.end();
}

// ---------------------------------------------------------------------------
// opts: { port, region, accessKeyId, secretAccessKey, sessionToken,
//         bearerToken, maxSkewSeconds (default 900; 0 = off), verifyAuth
//         (default true), scenario (initial default scenario), tlsCert, tlsKey }
export async function startFakeBedrock(opts = {}) {
  const cfg = {
    region: opts.region || "us-east-1",
    accessKeyId: opts.accessKeyId || DEFAULT_CREDENTIALS.accessKeyId,
    secretAccessKey: opts.secretAccessKey || DEFAULT_CREDENTIALS.secretAccessKey,
    sessionToken: opts.sessionToken || undefined,
    bearerToken: opts.bearerToken || undefined,
    maxSkewSeconds: opts.maxSkewSeconds ?? 900,
    verifyAuth: opts.verifyAuth !== false,
  };
  const fake = await startFakeServer({
    name: "fake-bedrock",
    opts,
    handler: (req, res, ctx) => handleModelRequest(req, res, ctx, cfg),
  });
  return { ...fake, config: { ...cfg, secretAccessKey: "<redacted>" } };
}

const USAGE = `usage: node fake-bedrock.mjs [--port N] [--port-file FILE]
    [--access-key AKID] [--secret-key SECRET] [--session-token TOKEN]
    [--region us-east-1] [--bearer-token TOKEN] [--max-skew-seconds 900]
    [--no-verify-auth] [--scenario 'NAME key=value ...' | --scenario '{json}']
    [--tls-cert FILE --tls-key FILE]
Listens on 127.0.0.1 only; prints "fake-bedrock listening on URL port N".
`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const spec = {
    port: 1, "port-file": 1, "access-key": 1, "secret-key": 1, "session-token": 1, region: 1, "bearer-token": 1,
    "max-skew-seconds": 1, "no-verify-auth": "flag", scenario: 1, "tls-cert": 1, "tls-key": 1, help: "flag",
  };
  runCli("fake-bedrock", USAGE, spec, (a) =>
    startFakeBedrock({
      port: a.port ? Number(a.port) : 0,
      accessKeyId: a["access-key"],
      secretAccessKey: a["secret-key"],
      sessionToken: a["session-token"],
      region: a.region,
      bearerToken: a["bearer-token"],
      maxSkewSeconds: a["max-skew-seconds"] !== undefined ? Number(a["max-skew-seconds"]) : undefined,
      verifyAuth: !a["no-verify-auth"],
      scenario: scenarioFromCli(a.scenario),
      tlsCert: a["tls-cert"],
      tlsKey: a["tls-key"],
    }),
  );
}
