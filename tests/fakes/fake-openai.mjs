#!/usr/bin/env node
// Fake OpenAI-compatible Chat Completions endpoint for eventcast's client tests.
//
//   POST /v1/chat/completions   (also /chat/completions, llama.cpp style)
//
// Streams SSE exactly as OpenAI does (spec 6.2-6.4): data-only events with
// chat.completion.chunk JSON, a role-only first chunk, content deltas, a
// finish_reason chunk, a usage chunk with empty choices when
// stream_options.include_usage is set, then `data: [DONE]`. See README.md.

import { fileURLToPath } from "node:url";
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

export const DEFAULT_API_KEY = "sk-fake-test-key";

const OBF_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

// Pre-stream HTTP errors: [status, type, code, message].
export const HTTP_ERROR_PRESETS = {
  "bad-request": [400, "invalid_request_error", null, "Invalid request."],
  unauthorized: [401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."],
  forbidden: [403, "invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"],
  "not-found": [404, "invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."],
  "rate-limit": [429, "requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."],
  quota: [429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota, please check your plan and billing details."],
  server: [500, "server_error", null, "The server had an error while processing your request. Sorry about that!"],
  overloaded: [503, "server_error", null, "The engine is currently overloaded, please try again later."],
};

function openaiError(message, type, code = null, param = null) {
  return { error: { message, type, param, code } };
}

const ROLES = new Set(["system", "developer", "user", "assistant", "tool", "function"]);
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

export function validateChatRequest(b) {
  if (!isObj(b)) return ["We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", null];
  if (typeof b.model !== "string" || b.model === "") return ["you must provide a model parameter", "model"];
  if (!Array.isArray(b.messages) || b.messages.length === 0) return ["Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages"];
  for (let i = 0; i < b.messages.length; i++) {
    const m = b.messages[i];
    if (!isObj(m) || !ROLES.has(m.role)) return [`Invalid value: '${m?.role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`, `messages[${i}].role`];
    const c = m.content;
    const okContent = typeof c === "string" || c === null || (Array.isArray(c) && c.every((p) => isObj(p) && typeof p.type === "string"));
    if (!okContent || (c === null && m.role !== "assistant")) return [`Invalid type for 'messages[${i}].content': expected one of a string or array of objects.`, `messages[${i}].content`];
  }
  if (b.stream !== undefined && typeof b.stream !== "boolean") return [`Invalid type for 'stream': expected a boolean, but got ${typeof b.stream} instead.`, "stream"];
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (b.stream !== true) return ["The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"];
    if (!isObj(b.stream_options)) return ["Invalid type for 'stream_options': expected an object.", "stream_options"];
  }
  if (b.temperature !== undefined && b.temperature !== null && (typeof b.temperature !== "number" || b.temperature < 0 || b.temperature > 2)) return [`Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got ${b.temperature} instead.`, "temperature"];
  if (b.top_p !== undefined && b.top_p !== null && (typeof b.top_p !== "number" || b.top_p < 0 || b.top_p > 1)) return [`Invalid 'top_p': expected a value between 0 and 1, but got ${b.top_p} instead.`, "top_p"];
  for (const k of ["max_tokens", "max_completion_tokens"]) {
    if (b[k] !== undefined && b[k] !== null && (!Number.isInteger(b[k]) || b[k] < 1)) return [`Invalid '${k}': integer below minimum value. Expected a value >= 1, but got ${b[k]} instead.`, k];
  }
  if (b.stop !== undefined && b.stop !== null) {
    const arr = typeof b.stop === "string" ? [b.stop] : b.stop;
    if (!Array.isArray(arr) || arr.length > 4 || arr.some((x) => typeof x !== "string")) return ["Invalid 'stop': expected a string or an array of at most 4 strings.", "stop"];
  }
  return null;
}

const msgText = (c) => (typeof c === "string" ? c : Array.isArray(c) ? c.filter((p) => p.type === "text" && typeof p.text === "string").map((p) => p.text).join("") : "");

const STREAM_SCENARIOS = new Set(["happy", "slow-start", "error-mid-stream", "llama-error", "missing-done", "drop", "stall"]);

// SSE serialisation of one event with the configured dialect.
function sseEvent(data, s) {
  const eol = s.lineEnding === "crlf" ? "\r\n" : s.lineEnding === "cr" ? "\r" : "\n";
  const sep = s.noSpace ? "data:" : "data: ";
  let lines;
  if (s.multilineData && data !== "[DONE]") {
    // Valid JSON spread over several data: lines (joined with \n by the parser).
    lines = JSON.stringify(JSON.parse(data), null, 1).split("\n").map((l) => sep + l);
  } else lines = [sep + data];
  return lines.join(eol) + eol + eol;
}

function sseComment(text, s) {
  const eol = s.lineEnding === "crlf" ? "\r\n" : s.lineEnding === "cr" ? "\r" : "\n";
  return `: ${text}${eol}`;
}

async function handleChat(req, res, ctx, cfg) {
  const { record, url } = ctx;
  if (!/^(\/v1)?\/chat\/completions$/.test(url.pathname)) {
    return sendJson(res, 404, openaiError(`Invalid URL (${req.method} ${url.pathname})`, "invalid_request_error"));
  }
  if (req.method !== "POST") return sendJson(res, 405, openaiError(`Invalid method ${req.method}`, "invalid_request_error"));

  // Auth: Authorization: Bearer <key>.
  const authz = req.headers.authorization;
  const m = /^Bearer\s+(.*)$/i.exec(authz || "");
  record.auth = { scheme: m ? "bearer" : authz ? "other" : "none", verdict: "ok" };
  if (cfg.apiKey) {
    if (!authz || !m || m[1].trim() === "") {
      record.auth.verdict = "missing";
      return sendJson(res, 401, openaiError("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", "invalid_request_error"));
    }
    if (m[1].trim() !== cfg.apiKey) {
      record.auth.verdict = "invalid";
      const k = m[1].trim();
      const shown = k.length > 8 ? `${k.slice(0, 3)}*****${k.slice(-4)}` : "*****";
      return sendJson(res, 401, openaiError(`Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`, "invalid_request_error", "invalid_api_key"));
    }
  }

  if (record.bodyJson === null) return sendJson(res, 400, openaiError(validateChatRequest(undefined)[0], "invalid_request_error"));
  const invalid = validateChatRequest(record.bodyJson);
  if (invalid) return sendJson(res, 400, openaiError(invalid[0], "invalid_request_error", null, invalid[1]));

  const b = record.bodyJson;
  const users = b.messages.filter((x) => x.role === "user");
  const prompt = msgText(users[users.length - 1]?.content);
  const { options: promptOpts, cleanPrompt } = extractPromptDirectives(prompt);
  const s = { ...ctx.takeScenario(), ...parseScenarioHeader(req.headers["x-fake-scenario"]), ...promptOpts };
  record.scenario = s;
  record.prompt = cleanPrompt;
  record.model = b.model;
  const name = s.scenario || "happy";

  if (name === "error" || HTTP_ERROR_PRESETS[name]) {
    const [st, type, code, msg] = HTTP_ERROR_PRESETS[name] || [500, "server_error", null, "The server had an error while processing your request."];
    const headers = {};
    if (s.retryAfter !== undefined) headers["retry-after"] = String(s.retryAfter);
    return sendJson(res, s.status ?? st, openaiError(s.message ?? msg, s.errorType ?? type, s.code ?? code), headers);
  }
  if (!STREAM_SCENARIOS.has(name)) return sendJson(res, 400, openaiError(`fake-openai: unknown scenario '${name}'`, "invalid_request_error"));

  const cap = b.max_completion_tokens ?? b.max_tokens;
  let chunks = answerChunks(s, cleanPrompt);
  let finishReason = s.finishReason ?? "stop";
  if (Number.isInteger(cap) && chunks.length > cap) {
    chunks = chunks.slice(0, cap);
    finishReason = "length";
  }
  const promptTokens = s.inputTokens ?? Math.max(1, countWords(b.messages.map((x) => msgText(x.content)).join(" ")));
  const completionTokens = s.outputTokens ?? chunks.length;
  record.expectedText = chunks.join("");

  const rng = makeRng(s.seed ?? record.id);
  const id = s.id ?? `chatcmpl-fake${String(record.id).padStart(6, "0")}`;
  const created = s.created ?? Math.floor(Date.now() / 1000);
  const includeUsage = b.stream_options?.include_usage === true;
  const obfuscate = (s.obfuscation ?? cfg.obfuscation) && b.stream_options?.include_obfuscation !== false;
  const chunkJson = (choices, usage) => {
    const o = { id, object: "chat.completion.chunk", created, model: b.model, service_tier: "default", system_fingerprint: "fp_fake", choices };
    if (includeUsage) o.usage = usage ?? null;
    if (obfuscate) o.obfuscation = OBF_ALPHABET.slice(0, rng.int(1, 16));
    return JSON.stringify(o);
  };
  const usageObj = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };

  const ctl = new StreamCtl(req, res, record, ctx.stats);
  if (name === "slow-start") {
    if (!(await ctl.sleep(s.firstByteDelayMs ?? 2000))) return;
  } else if (s.firstByteDelayMs && !(await ctl.sleep(s.firstByteDelayMs))) return;

  // Non-streaming request: one chat.completion JSON (kept simple).
  if (b.stream !== true) {
    ctl.ended = true;
    record.completed = true;
    return sendJson(res, 200, {
      id, object: "chat.completion", created, model: b.model, system_fingerprint: "fp_fake",
      choices: [{ index: 0, message: { role: "assistant", content: chunks.join(""), refusal: null }, logprobs: null, finish_reason: finishReason }],
      usage: usageObj,
    });
  }

  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "x-request-id": `req_${requestId().replace(/-/g, "")}`,
    "openai-processing-ms": "1",
  });
  res.flushHeaders();

  const writeOpts = { split: s.split === true, rng, maxPiece: s.maxPiece ?? 7, pieceDelayMs: s.pieceDelayMs ?? 0 };
  const pending = [];
  const send = async (text, kind = "event") => {
    if (kind !== "comment") record.framesSent++;
    if (kind === "delta") record.deltasSent++;
    if (s.coalesce) {
      pending.push(text);
      return true;
    }
    return ctl.write(Buffer.from(text, "utf8"), writeOpts);
  };
  const flush = async () => {
    if (!pending.length) return true;
    const all = Buffer.from(pending.join(""), "utf8");
    pending.length = 0;
    return ctl.write(all, writeOpts);
  };
  const delayMs = s.delayMs ?? 10;
  const keepAliveEvery = s.comments === true ? 1 : Number.isInteger(s.comments) ? s.comments : 0;

  if (keepAliveEvery && !(await send(sseComment("keep-alive", s), "comment"))) return;
  // Role-only first chunk (OpenAI sends content "" and refusal null there).
  const roleDelta = s.nullContent ? { role: "assistant", content: null } : { role: "assistant", content: "", refusal: null };
  if (!(await send(sseEvent(chunkJson([{ index: 0, delta: roleDelta, logprobs: null, finish_reason: null }]), s)))) return;

  const faulty = ["error-mid-stream", "llama-error", "drop", "stall"].includes(name);
  const n = faulty ? Math.min(s.deltas ?? 2, chunks.length) : chunks.length;
  for (let i = 0; i < n; i++) {
    if (!s.coalesce && !(await ctl.sleep(delayMs))) return;
    if (keepAliveEvery && i % keepAliveEvery === 0 && i > 0 && !(await send(sseComment("keep-alive", s), "comment"))) return;
    if (!(await send(sseEvent(chunkJson([{ index: 0, delta: { content: chunks[i] }, logprobs: null, finish_reason: null }]), s), "delta"))) return;
  }

  if (faulty) {
    if (!(await flush())) return;
    const err = { error: { message: s.message ?? "The server had an error while processing your request.", type: s.errorType ?? "server_error", param: null, code: s.code ?? null } };
    if (name === "error-mid-stream") {
      await send(sseEvent(JSON.stringify(err), s));
      if (s.doneAfterError !== false) await send(sseEvent("[DONE]", s));
      ctl.end();
    } else if (name === "llama-error") {
      // llama.cpp before PR #16109: a non-standard SSE field `error:`.
      const eol = s.lineEnding === "crlf" ? "\r\n" : "\n";
      await send(`error: ${JSON.stringify({ code: 500, message: err.error.message, type: "server_error" })}${eol}${eol}`);
      ctl.end();
    } else if (name === "drop") {
      await ctl.sleep(20);
      if (!ctl.aborted) ctl.drop();
    } else if (name === "stall") {
      await ctl.stall(s.stallMaxMs ?? 120000);
    }
    return;
  }

  if (!(await send(sseEvent(chunkJson([{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }]), s)))) return;
  if (includeUsage && !(await send(sseEvent(chunkJson([], usageObj), s)))) return;
  if (name !== "missing-done") {
    if (s.doneNoBlankLine) {
      if (!(await send(`data: [DONE]${s.lineEnding === "crlf" ? "\r\n" : "\n"}`))) return;
    } else if (!(await send(sseEvent("[DONE]", s)))) return;
  }
  if (!(await flush())) return;
  ctl.end();
}

// opts: { port, apiKey (default DEFAULT_API_KEY; null/"" = accept any),
//         obfuscation (default true), scenario, tlsCert, tlsKey }
export async function startFakeOpenAI(opts = {}) {
  const cfg = {
    apiKey: opts.apiKey === undefined ? DEFAULT_API_KEY : opts.apiKey || null,
    obfuscation: opts.obfuscation !== false,
  };
  const fake = await startFakeServer({ name: "fake-openai", opts, handler: (req, res, ctx) => handleChat(req, res, ctx, cfg) });
  return { ...fake, config: { ...cfg, apiKey: cfg.apiKey ? "<redacted>" : null } };
}

const USAGE = `usage: node fake-openai.mjs [--port N] [--port-file FILE]
    [--api-key KEY | --no-auth] [--no-obfuscation]
    [--scenario 'NAME key=value ...' | --scenario '{json}']
    [--tls-cert FILE --tls-key FILE]
Listens on 127.0.0.1 only; prints "fake-openai listening on URL port N".
Default API key: ${DEFAULT_API_KEY}
`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const spec = { port: 1, "port-file": 1, "api-key": 1, "no-auth": "flag", "no-obfuscation": "flag", scenario: 1, "tls-cert": 1, "tls-key": 1, help: "flag" };
  runCli("fake-openai", USAGE, spec, (a) =>
    startFakeOpenAI({
      port: a.port ? Number(a.port) : 0,
      apiKey: a["no-auth"] ? null : a["api-key"],
      obfuscation: !a["no-obfuscation"],
      scenario: scenarioFromCli(a.scenario),
      tlsCert: a["tls-cert"],
      tlsKey: a["tls-key"],
    }),
  );
}
