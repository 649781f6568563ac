// Scripted fake providers for the translation tests: an OpenAI Chat
// Completions fake that also answers tool calls, an Anthropic Messages fake
// and a Gemini generateContent fake.  Each one checks what it receives as
// strictly as the real API does (auth header, body shape, the placement of
// tool calls and tool results), answers a violation with the real API's
// error (HTTP status and body shape) and records it, so a test can show
// exactly what a gateway got wrong:
//
//   const up = await startAnthropicFake({ apiKey: 'sk-ant-up' });
//   ... drive the gateway ...
//   assert.deepEqual(up.violations.map((v) => v.message), []);
//   up.requests.at(-1)                      // { method, url, headers, body, json, violation? }
//
// What each fake answers, decided per request:
//   - a model name containing `err-<status>` (e.g. `claude-err-429`) gets
//     that status with the provider's own error body (429 rate limit, 529
//     overloaded, 500, 503 ...);
//   - a request with tools whose last turn is not a tool result gets a tool
//     call: the first declared tool, arguments `toolArgs` ({city: 'Paris'});
//   - a request whose last turn carries tool results gets `afterToolText`;
//   - anything else gets `text` (pieces; streamed one piece per event);
//   - a max-tokens limit of 3 or less (max_tokens, max_completion_tokens,
//     maxOutputTokens) gets only the first piece and the provider's
//     "length" stop reason.
// Options common to the three: label, text, afterToolText, toolArgs,
// usage, apiKey (the key the fake insists on), delayMs (between stream
// events), respond(ctx) (returns per-request overrides of these options,
// or { error: { status, type?, message? } }).
import { chatChunk, sleep, startFakeUpstream, writeSse } from './harness.js';

export const WEATHER_ARGS = Object.freeze({ city: 'Paris' });
export const AFTER_TOOL_TEXT = Object.freeze(['It is ', 'sunny in ', 'Paris.']);

// The usage each fake reports by default (the matrix test derives what the
// client must see from these).
export const DEFAULT_USAGE = Object.freeze({
  openai: Object.freeze({ prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }),
  anthropic: Object.freeze({ input_tokens: 20, cache_creation_input_tokens: 3, cache_read_input_tokens: 5, output_tokens: 9 }),
  gemini: Object.freeze({ promptTokenCount: 13, candidatesTokenCount: 5, thoughtsTokenCount: 2, totalTokenCount: 20 }),
});

// ---- small helpers -----------------------------------------------------------

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStr = (v) => typeof v === 'string';
const isNonEmptyStr = (v) => typeof v === 'string' && v.length > 0;
const isPosInt = (v) => Number.isInteger(v) && v > 0;
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

// A request the real API would refuse: the validators throw one of these.
class Reject extends Error {
  constructor(message, status = 400, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}
const reject = (message, status, type) => { throw new Reject(message, status, type); };
const need = (cond, message) => { if (!cond) reject(message); };

function unknownKeys(obj, allowed) {
  return Object.keys(obj).filter((k) => !allowed.has(k));
}

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

// The JSON-Schema types OpenAI and Anthropic accept (lower case only: a
// Gemini-style "OBJECT"/"STRING" is not JSON Schema).
const JSON_SCHEMA_TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);
function checkJsonSchemaTypes(schema, path) {
  if (!isObj(schema)) return;
  if ('type' in schema) {
    const types = [].concat(schema.type);
    for (const t of types) need(JSON_SCHEMA_TYPES.has(t), `${path}.type: ${JSON.stringify(t)} is not a valid JSON Schema type`);
  }
  if (isObj(schema.properties)) for (const [k, v] of Object.entries(schema.properties)) checkJsonSchemaTypes(v, `${path}.properties.${k}`);
  if (isObj(schema.items)) checkJsonSchemaTypes(schema.items, `${path}.items`);
  for (const k of ['anyOf', 'oneOf', 'allOf']) if (Array.isArray(schema[k])) schema[k].forEach((s, i) => checkJsonSchemaTypes(s, `${path}.${k}.${i}`));
}

// What a fake answers for this request: the options, possibly overridden by
// respond(ctx), and the error named by the model.
function plan(opts, ctx, model) {
  const o = { ...opts, ...(opts.respond?.(ctx) ?? {}) };
  const m = /err-(\d{3})/.exec(model ?? '');
  if (!o.error && m) o.error = { status: Number(m[1]) };
  return o;
}

// Wrap a request handler: run the checks, answer a violation in the
// provider's error format and record it.
function makeHandler(kind, handle, errorBody) {
  const violations = [];
  const handler = async (req, res, ctx) => {
    try {
      await handle(req, res, ctx);
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      const v = { kind, method: req.method, url: req.url, status: err.status, message: err.message, body: ctx.json ?? ctx.body };
      violations.push(v);
      ctx.violation = err.message;
      if (!res.headersSent) {
        const { status, body } = errorBody(err);
        sendJson(res, status, body);
      } else res.end();
    }
  };
  handler.violations = violations;
  handler.kind = kind;
  return handler;
}

async function startWith(handler) {
  const up = await startFakeUpstream(handler);
  up.violations = handler.violations;
  up.kind = handler.kind;
  // The violations of this fake as one line each, for assertion messages.
  up.showViolations = () => handler.violations.map((v) => `${v.kind} ${v.url}: ${v.status} ${v.message}`).join('\n');
  return up;
}

// ---- OpenAI Chat Completions -----------------------------------------------

const OPENAI_TOP = new Set([
  'model', 'messages', 'audio', 'frequency_penalty', 'function_call', 'functions', 'logit_bias', 'logprobs',
  'max_completion_tokens', 'max_tokens', 'metadata', 'modalities', 'n', 'parallel_tool_calls', 'prediction',
  'presence_penalty', 'prompt_cache_key', 'prompt_cache_retention', 'reasoning_effort', 'response_format',
  'safety_identifier', 'seed', 'service_tier', 'stop', 'store', 'stream', 'stream_options', 'temperature',
  'tool_choice', 'tools', 'top_logprobs', 'top_p', 'user', 'verbosity', 'web_search_options',
]);
const OPENAI_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function openaiTextParts(content, path, { allowNull = false, kinds = ['text'] } = {}) {
  if (content === null || content === undefined) { need(allowNull, `Invalid value for '${path}': content is required.`); return; }
  if (isStr(content)) return;
  need(Array.isArray(content), `Invalid type for '${path}': expected one of a string or array of objects.`);
  content.forEach((p, i) => {
    need(isObj(p) && kinds.includes(p.type), `Invalid value for '${path}[${i}].type': expected one of ${kinds.join(', ')}.`);
    if (p.type === 'text') need(isStr(p.text), `Missing required parameter: '${path}[${i}].text'.`);
    if (p.type === 'image_url') need(isObj(p.image_url) && isNonEmptyStr(p.image_url.url), `Missing required parameter: '${path}[${i}].image_url.url'.`);
  });
}

export function validateOpenAIChat(body) {
  need(isObj(body), 'We could not parse the JSON body of your request.');
  const extra = unknownKeys(body, OPENAI_TOP);
  need(extra.length === 0, `Unrecognized request argument supplied: ${extra[0]}`);
  need(isNonEmptyStr(body.model), "you must provide a model parameter");
  need(Array.isArray(body.messages), "Missing required parameter: 'messages'.");
  need(body.messages.length > 0, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.");
  for (const k of ['max_tokens', 'max_completion_tokens', 'n']) if (k in body && body[k] !== null) need(isPosInt(body[k]), `Invalid '${k}': expected a positive integer.`);
  if ('temperature' in body && body.temperature !== null) need(isNum(body.temperature) && body.temperature >= 0 && body.temperature <= 2, `Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got ${body.temperature} instead.`);
  if ('stream_options' in body && body.stream_options !== null) need(body.stream === true, "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  if ('stop' in body && body.stop !== null) need(isStr(body.stop) || (Array.isArray(body.stop) && body.stop.every(isStr) && body.stop.length <= 4), "Invalid 'stop': expected a string or an array of at most 4 strings.");

  const toolNames = new Set();
  if ('tools' in body) {
    need(Array.isArray(body.tools), "Invalid type for 'tools': expected an array.");
    body.tools.forEach((t, i) => {
      need(isObj(t) && t.type === 'function', `Invalid value for 'tools[${i}].type': expected 'function'.`);
      const fn = t.function;
      need(isObj(fn), `Missing required parameter: 'tools[${i}].function'.`);
      need(isStr(fn.name) && /^[a-zA-Z0-9_-]{1,64}$/.test(fn.name), `Invalid 'tools[${i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`);
      need(!toolNames.has(fn.name), `Invalid 'tools': duplicate function name ${fn.name}.`);
      toolNames.add(fn.name);
      const extraFn = unknownKeys(fn, new Set(['name', 'description', 'parameters', 'strict']));
      need(extraFn.length === 0, `Unrecognized request argument supplied: tools[${i}].function.${extraFn[0]}`);
      if ('parameters' in fn) {
        need(isObj(fn.parameters), `Invalid type for 'tools[${i}].function.parameters': expected an object.`);
        need(fn.parameters.type === 'object', `Invalid schema for function '${fn.name}': schema must be a JSON Schema of 'type: "object"', got 'type: ${JSON.stringify(fn.parameters.type)}'.`);
        checkJsonSchemaTypes(fn.parameters, `tools[${i}].function.parameters`);
      }
    });
  }
  if ('tool_choice' in body && body.tool_choice !== null) {
    const tc = body.tool_choice;
    need(toolNames.size > 0 || tc === 'none', "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
    if (isStr(tc)) need(['none', 'auto', 'required'].includes(tc), `Invalid value: '${tc}'. Supported values are: 'none', 'auto', and 'required'.`);
    else {
      need(isObj(tc) && tc.type === 'function' && isObj(tc.function) && isStr(tc.function.name), "Invalid 'tool_choice': expected a string or {type: 'function', function: {name}}.");
      need(toolNames.has(tc.function.name), `Invalid 'tool_choice': function ${tc.function.name} is not among the tools.`);
    }
  }

  // Roles and the pairing of tool calls with tool messages.
  let open = null; // ids of the last assistant tool_calls still waiting for an answer
  let inToolGroup = false;
  body.messages.forEach((m, i) => {
    const p = `messages[${i}]`;
    need(isObj(m), `Invalid type for '${p}': expected an object.`);
    need(OPENAI_ROLES.has(m.role), `Invalid value: '${m.role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.`);
    if (m.role !== 'tool' && open && open.size > 0) {
      reject(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open].join(', ')}`);
    }
    if (m.role !== 'tool') inToolGroup = false;
    switch (m.role) {
      case 'system': case 'developer':
        openaiTextParts(m.content, `${p}.content`);
        break;
      case 'user':
        openaiTextParts(m.content, `${p}.content`, { kinds: ['text', 'image_url', 'input_audio', 'file'] });
        break;
      case 'assistant': {
        const hasCalls = Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
        openaiTextParts(m.content, `${p}.content`, { allowNull: hasCalls, kinds: ['text', 'refusal'] });
        open = null;
        if ('tool_calls' in m && m.tool_calls !== null) {
          need(Array.isArray(m.tool_calls), `Invalid type for '${p}.tool_calls': expected an array.`);
          need(m.tool_calls.length > 0, `Invalid '${p}.tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead.`);
          open = new Set();
          m.tool_calls.forEach((c, j) => {
            const q = `${p}.tool_calls[${j}]`;
            need(isObj(c) && isNonEmptyStr(c.id), `Missing required parameter: '${q}.id'.`);
            need(c.type === 'function', `Missing required parameter: '${q}.type'.`);
            need(isObj(c.function) && isNonEmptyStr(c.function.name), `Missing required parameter: '${q}.function.name'.`);
            need(isStr(c.function.arguments), `Invalid type for '${q}.function.arguments': expected a string, but got ${Array.isArray(c.function.arguments) ? 'an array' : typeof c.function.arguments} instead.`);
            open.add(c.id);
          });
          inToolGroup = true;
        }
        break;
      }
      case 'tool':
        need(inToolGroup && open, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.");
        need(isNonEmptyStr(m.tool_call_id), `Missing required parameter: '${p}.tool_call_id'.`);
        need(open.has(m.tool_call_id), `Invalid parameter: 'tool_call_id' of '${m.tool_call_id}' not found in 'tool_calls' of previous message.`);
        open.delete(m.tool_call_id);
        openaiTextParts(m.content, `${p}.content`);
        break;
      default:
    }
  });
  if (open && open.size > 0) {
    reject(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open].join(', ')}`);
  }
}

const OPENAI_ERRORS = {
  400: ['invalid_request_error', null, 'The request was invalid.'],
  401: ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided.'],
  403: ['permission_denied', null, 'You are not allowed to use this model.'],
  404: ['invalid_request_error', 'model_not_found', 'The model does not exist or you do not have access to it.'],
  429: ['requests', 'rate_limit_exceeded', 'Rate limit reached for requests. Please try again in 1s.'],
  500: ['server_error', null, 'The server had an error while processing your request. Sorry about that!'],
  503: ['server_error', null, 'The engine is currently overloaded, please try again later.'],
};
function openaiError(status, message, type) {
  const [t, code, m] = OPENAI_ERRORS[status] ?? ['api_error', null, `fake error ${status}`];
  return { error: { message: message ?? m, type: type ?? t, param: null, code } };
}

function openaiLastIsToolResult(body) {
  return body.messages?.at(-1)?.role === 'tool';
}

// A startFakeUpstream handler for POST …/chat/completions with the checks
// above; it answers text, or a tool call when the request has tools and the
// last message is not a tool result.
export function openaiToolHandler(opts = {}) {
  const o0 = {
    label: 'openai', text: ['Hello', ' from ', opts.label ?? 'openai'], afterToolText: AFTER_TOOL_TEXT,
    toolArgs: WEATHER_ARGS, usage: DEFAULT_USAGE.openai, delayMs: 0, apiKey: undefined, ...opts,
  };
  let n = 0;
  return makeHandler('openai', async (req, res, ctx) => {
    if (!(req.method === 'POST' && req.url.split('?')[0].endsWith('/chat/completions'))) {
      reject(`fake openai: no route ${req.method} ${req.url}`, 404);
    }
    const auth = req.headers.authorization ?? '';
    const key = /^Bearer (.+)$/.exec(auth)?.[1];
    if (!key) reject("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", 401);
    if (o0.apiKey && key !== o0.apiKey) reject('Incorrect API key provided.', 401);
    need(/^application\/json/.test(req.headers['content-type'] ?? ''), 'Invalid content-type: expected application/json.');
    need(ctx.json !== undefined, 'We could not parse the JSON body of your request.');
    const body = ctx.json;
    validateOpenAIChat(body);

    const o = plan(o0, ctx, body.model);
    if (o.error) {
      const st = o.error.status ?? 500;
      return sendJson(res, st, openaiError(st, o.error.message, o.error.type), st === 429 ? { 'retry-after': '1' } : {});
    }
    n += 1;
    const id = `chatcmpl-fake${n}`;
    const limit = body.max_completion_tokens ?? body.max_tokens;
    const wantsTool = Array.isArray(body.tools) && body.tools.length > 0 && !openaiLastIsToolResult(body) && body.tool_choice !== 'none';
    let parts = openaiLastIsToolResult(body) ? [...o.afterToolText] : [...o.text];
    let finish = 'stop';
    if (!wantsTool && limit !== undefined && limit !== null && limit <= 3) { parts = parts.slice(0, 1); finish = 'length'; }
    const call = wantsTool ? { id: `call_fake${n}`, name: body.tools[0].function.name, arguments: JSON.stringify(o.toolArgs) } : null;

    if (body.stream) {
      const events = [];
      if (call) {
        const a = call.arguments;
        const cut = [0, 4, Math.ceil(a.length / 2), a.length];
        events.push(chatChunk(body.model, { role: 'assistant', content: null, tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }, { id }));
        for (let i = 0; i + 1 < cut.length; i++) events.push(chatChunk(body.model, { tool_calls: [{ index: 0, function: { arguments: a.slice(cut[i], cut[i + 1]) } }] }, { id }));
        events.push(chatChunk(body.model, {}, { id, finish: 'tool_calls' }));
      } else {
        parts.forEach((p, i) => events.push(chatChunk(body.model, i === 0 ? { role: 'assistant', content: p } : { content: p }, { id })));
        events.push(chatChunk(body.model, {}, { id, finish }));
      }
      if (body.stream_options?.include_usage) {
        events.push({ id, object: 'chat.completion.chunk', created: 1700000000, model: body.model, choices: [], usage: o.usage });
      }
      events.push('data: [DONE]\n\n');
      await writeSse(res, events, { delayMs: o.delayMs });
      return;
    }
    if (o.delayMs) await sleep(o.delayMs);
    const message = call
      ? { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }], refusal: null }
      : { role: 'assistant', content: parts.join(''), refusal: null };
    sendJson(res, 200, {
      id, object: 'chat.completion', created: 1700000000, model: body.model,
      choices: [{ index: 0, message, logprobs: null, finish_reason: call ? 'tool_calls' : finish }],
      usage: o.usage,
    });
  }, (err) => ({ status: err.status, body: openaiError(err.status, err.message, err.type) }));
}

// ---- Anthropic Messages ------------------------------------------------------

// The documented top-level fields: those the brief lists (service_level is
// kept as listed) plus those the installed @anthropic-ai/sdk declares.
const ANTHROPIC_TOP = new Set([
  'model', 'messages', 'max_tokens', 'system', 'metadata', 'stop_sequences', 'stream', 'temperature', 'top_p', 'top_k',
  'tools', 'tool_choice', 'thinking', 'service_level', 'service_tier', 'container', 'mcp_servers',
  'cache_control', 'context_management', 'diagnostics', 'inference_geo', 'output_config', 'speed', 'user_profile_id', 'workspace_id',
]);
const ANTHROPIC_VERSION = '2023-06-01';
const ANTHROPIC_ERRORS = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error', 504: 'timeout_error', 529: 'overloaded_error',
};
const ANTHROPIC_MESSAGES = {
  429: 'Number of request tokens has exceeded your per-minute rate limit.',
  500: 'Internal server error',
  529: 'Overloaded',
};
function anthropicError(status, message, type) {
  return { type: 'error', error: { type: type ?? ANTHROPIC_ERRORS[status] ?? 'api_error', message: message ?? ANTHROPIC_MESSAGES[status] ?? `fake error ${status}` } };
}

const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);
const BLOCK_KEYS = {
  text: new Set(['type', 'text', 'cache_control', 'citations']),
  image: new Set(['type', 'source', 'cache_control']),
  document: new Set(['type', 'source', 'cache_control', 'citations', 'context', 'title']),
  tool_use: new Set(['type', 'id', 'name', 'input', 'cache_control', 'caller']),
  tool_result: new Set(['type', 'tool_use_id', 'content', 'is_error', 'cache_control']),
  thinking: new Set(['type', 'thinking', 'signature']),
  redacted_thinking: new Set(['type', 'data']),
};

function anthropicBlock(b, p, role) {
  need(isObj(b), `${p}: Input should be a valid dictionary`);
  const keys = BLOCK_KEYS[b.type];
  need(keys, `${p}.type: Input tag '${b.type}' found using 'type' does not match any of the expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'`);
  const extra = unknownKeys(b, keys);
  need(extra.length === 0, `${p}.${b.type}.${extra[0]}: Extra inputs are not permitted`);
  switch (b.type) {
    case 'text':
      need(isStr(b.text), `${p}.text.text: Field required`);
      need(b.text.length > 0, `${p}: text content blocks must be non-empty`);
      break;
    case 'image': {
      const s = b.source;
      need(isObj(s), `${p}.image.source: Field required`);
      if (s.type === 'base64') {
        need(IMAGE_TYPES.has(s.media_type), `${p}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`);
        need(isNonEmptyStr(s.data), `${p}.image.source.base64.data: Field required`);
      } else if (s.type === 'url') need(isNonEmptyStr(s.url), `${p}.image.source.url.url: Field required`);
      else if (s.type === 'file') need(isNonEmptyStr(s.file_id), `${p}.image.source.file.file_id: Field required`);
      else reject(`${p}.image.source: Input tag '${s.type}' does not match any of the expected tags: 'base64', 'url', 'file'`);
      break;
    }
    case 'document':
      need(isObj(b.source), `${p}.document.source: Field required`);
      break;
    case 'tool_use':
      need(role === 'assistant', `${p}: tool_use blocks are only allowed in assistant messages`);
      need(isStr(b.id), `${p}.tool_use.id: Field required`);
      need(/^[a-zA-Z0-9_-]+$/.test(b.id), `${p}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'`);
      need(isNonEmptyStr(b.name), `${p}.tool_use.name: Field required`);
      need(isObj(b.input), `${p}.tool_use.input: Input should be a valid dictionary`);
      break;
    case 'tool_result':
      need(role === 'user', `${p}: tool_result blocks are only allowed in user messages`);
      need(isNonEmptyStr(b.tool_use_id), `${p}.tool_result.tool_use_id: Field required`);
      if ('content' in b) {
        if (!isStr(b.content)) {
          need(Array.isArray(b.content), `${p}.tool_result.content: Input should be a valid string or list`);
          b.content.forEach((c, k) => {
            need(isObj(c) && ['text', 'image', 'document', 'search_result'].includes(c.type), `${p}.tool_result.content.${k}: Input tag '${c?.type}' does not match any of the expected tags: 'text', 'image', 'document', 'search_result'`);
            if (c.type === 'text' || c.type === 'image') anthropicBlock(c, `${p}.tool_result.content.${k}`, 'user');
          });
        }
      }
      if ('is_error' in b) need(typeof b.is_error === 'boolean', `${p}.tool_result.is_error: Input should be a valid boolean`);
      break;
    case 'thinking':
      need(role === 'assistant', `${p}: thinking blocks are only allowed in assistant messages`);
      need(isStr(b.thinking) && isStr(b.signature), `${p}.thinking: thinking and signature are required`);
      break;
    case 'redacted_thinking':
      need(role === 'assistant' && isStr(b.data), `${p}.redacted_thinking: data is required, in assistant messages`);
      break;
    default:
  }
}

const ANTHROPIC_TOOL_KEYS = new Set(['name', 'description', 'input_schema', 'cache_control', 'type', 'strict', 'input_examples', 'defer_loading', 'eager_input_streaming', 'allowed_callers']);

export function validateAnthropicMessages(body) {
  need(isObj(body), 'messages: Input should be a valid dictionary');
  const extra = unknownKeys(body, ANTHROPIC_TOP);
  need(extra.length === 0, `${extra[0]}: Extra inputs are not permitted`);
  need('model' in body, 'model: Field required');
  need(isNonEmptyStr(body.model), 'model: Input should be a valid string');
  need('max_tokens' in body, 'max_tokens: Field required');
  need(isPosInt(body.max_tokens), `max_tokens: Input should be a positive integer, got ${JSON.stringify(body.max_tokens)}`);
  need('messages' in body, 'messages: Field required');
  need(Array.isArray(body.messages), 'messages: Input should be a valid list');
  need(body.messages.length > 0, 'messages: at least one message is required');
  if ('stream' in body) need(typeof body.stream === 'boolean', 'stream: Input should be a valid boolean');
  if ('temperature' in body) need(isNum(body.temperature) && body.temperature >= 0 && body.temperature <= 1, 'temperature: Input should be less than or equal to 1');
  if ('top_p' in body) need(isNum(body.top_p) && body.top_p >= 0 && body.top_p <= 1, 'top_p: Input should be between 0 and 1');
  if ('top_k' in body) need(Number.isInteger(body.top_k) && body.top_k >= 0, 'top_k: Input should be a non-negative integer');
  if ('stop_sequences' in body) need(Array.isArray(body.stop_sequences) && body.stop_sequences.every(isNonEmptyStr), 'stop_sequences: Input should be a list of non-empty strings');
  if ('metadata' in body) {
    need(isObj(body.metadata), 'metadata: Input should be a valid dictionary');
    const e = unknownKeys(body.metadata, new Set(['user_id']));
    need(e.length === 0, `metadata.${e[0]}: Extra inputs are not permitted`);
  }
  if ('thinking' in body) need(isObj(body.thinking) && ['enabled', 'disabled', 'adaptive'].includes(body.thinking.type), "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'");

  if ('system' in body) {
    if (!isStr(body.system)) {
      need(Array.isArray(body.system), 'system: Input should be a valid string or list of text blocks');
      body.system.forEach((b, i) => {
        need(isObj(b) && b.type === 'text', `system.${i}.type: Input should be 'text'`);
        anthropicBlock(b, `system.${i}`, 'system');
      });
    }
  }

  const toolNames = new Set();
  if ('tools' in body) {
    need(Array.isArray(body.tools), 'tools: Input should be a valid list');
    body.tools.forEach((t, i) => {
      const p = `tools.${i}`;
      need(isObj(t), `${p}: Input should be a valid dictionary`);
      need(isStr(t.name) && /^[a-zA-Z0-9_-]{1,128}$/.test(t.name), `${p}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`);
      need(!toolNames.has(t.name), `tools: Tool names must be unique (${t.name})`);
      toolNames.add(t.name);
      if ('type' in t && t.type !== 'custom') return; // a server tool (web_search_..., bash_...): its own shape
      const e = unknownKeys(t, ANTHROPIC_TOOL_KEYS);
      need(e.length === 0, `${p}.custom.${e[0]}: Extra inputs are not permitted`);
      need('input_schema' in t, `${p}.custom.input_schema: Field required`);
      need(isObj(t.input_schema), `${p}.custom.input_schema: Input should be a valid dictionary`);
      need(t.input_schema.type === 'object', `${p}.custom.input_schema.type: Input should be 'object'`);
      checkJsonSchemaTypes(t.input_schema, `${p}.custom.input_schema`);
    });
  }
  if ('tool_choice' in body) {
    const tc = body.tool_choice;
    need(isObj(tc) && ['auto', 'any', 'tool', 'none'].includes(tc.type), "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'");
    if (tc.type !== 'none') need(toolNames.size > 0, 'tool_choice may only be specified while providing tools.');
    const allowed = new Set(tc.type === 'tool' ? ['type', 'name', 'disable_parallel_tool_use'] : tc.type === 'none' ? ['type'] : ['type', 'disable_parallel_tool_use']);
    const e = unknownKeys(tc, allowed);
    need(e.length === 0, `tool_choice.${tc.type}.${e[0]}: Extra inputs are not permitted`);
    if (tc.type === 'tool') need(isNonEmptyStr(tc.name), 'tool_choice.tool.name: Field required');
    if ('disable_parallel_tool_use' in tc) need(typeof tc.disable_parallel_tool_use === 'boolean', `tool_choice.${tc.type}.disable_parallel_tool_use: Input should be a valid boolean`);
  }

  let prevRole = null;
  let prevToolUses = [];
  let sawToolBlocks = false;
  body.messages.forEach((m, i) => {
    const p = `messages.${i}`;
    need(isObj(m), `${p}: Input should be a valid dictionary`);
    const e = unknownKeys(m, new Set(['role', 'content']));
    need(e.length === 0, `${p}.${e[0]}: Extra inputs are not permitted`);
    need(m.role === 'user' || m.role === 'assistant', `${p}.role: Input should be 'user' or 'assistant'`);
    if (i === 0) need(m.role === 'user', 'messages: first message must use the "user" role');
    need(m.role !== prevRole, `messages: roles must alternate between "user" and "assistant", but found multiple "${m.role}" roles in a row`);
    need('content' in m, `${p}.content: Field required`);
    const blocks = isStr(m.content) ? null : m.content;
    if (blocks === null) need(m.content.length > 0 || (m.role === 'assistant' && i === body.messages.length - 1), `${p}: user messages must have non-empty content`);
    else {
      need(Array.isArray(blocks), `${p}.content: Input should be a valid string or list`);
      need(blocks.length > 0 || (m.role === 'assistant' && i === body.messages.length - 1), `${p}: all messages must have non-empty content except for the optional final assistant message`);
      blocks.forEach((b, k) => anthropicBlock(b, `${p}.content.${k}`, m.role));
    }
    const list = blocks ?? [];
    if (m.role === 'user') {
      const results = list.filter((b) => b.type === 'tool_result');
      const firstOther = list.findIndex((b) => b.type !== 'tool_result');
      const lastResult = list.map((b) => b.type).lastIndexOf('tool_result');
      need(results.length === 0 || firstOther < 0 || lastResult < firstOther, `${p}: tool_result blocks must come first in the user message, before any other content`);
      const ids = new Set(prevToolUses);
      for (const r of results) {
        need(ids.has(r.tool_use_id), `${p}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${r.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
      }
      const answered = new Set(results.map((r) => r.tool_use_id));
      const missing = prevToolUses.filter((id) => !answered.has(id));
      need(missing.length === 0, `messages.${i - 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`);
      if (results.length) sawToolBlocks = true;
      prevToolUses = [];
    } else {
      prevToolUses = list.filter((b) => b.type === 'tool_use').map((b) => b.id);
      if (prevToolUses.length) sawToolBlocks = true;
      if (i === body.messages.length - 1) {
        const last = isStr(m.content) ? m.content : list.filter((b) => b.type === 'text').at(-1)?.text ?? '';
        need(!/\s$/.test(last), 'messages: final assistant content cannot end with trailing whitespace');
      }
    }
    prevRole = m.role;
  });
  need(!sawToolBlocks || toolNames.size > 0, 'Requests which include `tool_use` or `tool_result` blocks must define tools.');
}

function anthropicLastIsToolResult(body) {
  const last = body.messages?.at(-1);
  return last?.role === 'user' && Array.isArray(last.content) && last.content.some((b) => b.type === 'tool_result');
}

const sseEvent = (name, data) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

// A startFakeUpstream handler for POST /v1/messages.  Extra options:
// toolPreText (the text block before a tool_use, '' for none),
// midStreamError (after the first text delta, an `error` event and the end).
export function anthropicHandler(opts = {}) {
  const o0 = {
    label: 'anthropic', text: ['Hello', ' from ', opts.label ?? 'anthropic'], afterToolText: AFTER_TOOL_TEXT,
    toolArgs: WEATHER_ARGS, toolPreText: 'Let me check.', usage: DEFAULT_USAGE.anthropic, delayMs: 0, apiKey: undefined, midStreamError: false, ...opts,
  };
  let n = 0;
  return makeHandler('anthropic', async (req, res, ctx) => {
    if (!(req.method === 'POST' && req.url.split('?')[0] === '/v1/messages')) {
      reject(`fake anthropic: no route ${req.method} ${req.url}`, 404);
    }
    const key = req.headers['x-api-key'];
    if (!isNonEmptyStr(key)) reject('x-api-key header is required', 401, 'authentication_error');
    if (o0.apiKey && key !== o0.apiKey) reject('invalid x-api-key', 401, 'authentication_error');
    const version = req.headers['anthropic-version'];
    need(version !== undefined, 'anthropic-version: header is required');
    need(version === ANTHROPIC_VERSION, `anthropic-version: fake expects ${ANTHROPIC_VERSION}, got ${JSON.stringify(version)}`);
    need(/^application\/json/.test(req.headers['content-type'] ?? ''), 'content-type: application/json is required');
    need(ctx.json !== undefined, 'There was an error parsing the body of your request as JSON');
    const body = ctx.json;
    validateAnthropicMessages(body);

    const o = plan(o0, ctx, body.model);
    if (o.error) {
      const st = o.error.status ?? 500;
      return sendJson(res, st, anthropicError(st, o.error.message, o.error.type), st === 429 ? { 'retry-after': '1' } : {});
    }
    n += 1;
    const msgId = `msg_fake${n}`;
    const afterTool = anthropicLastIsToolResult(body);
    const wantsTool = Array.isArray(body.tools) && body.tools.length > 0 && !afterTool && body.tool_choice?.type !== 'none';
    let parts = afterTool ? [...o.afterToolText] : [...o.text];
    let stop = 'end_turn';
    if (!wantsTool && body.max_tokens <= 3) { parts = parts.slice(0, 1); stop = 'max_tokens'; }
    const toolName = wantsTool ? (body.tool_choice?.type === 'tool' ? body.tool_choice.name : body.tools[0].name) : null;
    const toolUse = wantsTool ? { type: 'tool_use', id: `toolu_fake${n}`, name: toolName, input: o.toolArgs } : null;
    if (toolUse) { parts = o.toolPreText ? [o.toolPreText] : []; stop = 'tool_use'; }
    const u = o.usage;

    if (!body.stream) {
      if (o.delayMs) await sleep(o.delayMs);
      const content = [];
      if (parts.length) content.push({ type: 'text', text: parts.join('') });
      if (toolUse) content.push(toolUse);
      return sendJson(res, 200, {
        id: msgId, type: 'message', role: 'assistant', model: body.model, content,
        stop_reason: stop, stop_sequence: null, usage: { ...u },
      }, { 'request-id': `req_fake${n}` });
    }

    const ev = [];
    const startUsage = { ...u, output_tokens: 1 };
    ev.push(sseEvent('message_start', { type: 'message_start', message: { id: msgId, type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage } }));
    let index = 0;
    if (parts.length) {
      ev.push(sseEvent('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }));
      ev.push(sseEvent('ping', { type: 'ping' }));
      parts.forEach((t, i) => {
        ev.push(sseEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: t } }));
        if (i === 0 && o.midStreamError) ev.push(sseEvent('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
      });
      ev.push(sseEvent('content_block_stop', { type: 'content_block_stop', index }));
      index += 1;
    }
    if (toolUse) {
      const a = JSON.stringify(toolUse.input);
      const cut = [0, 3, Math.ceil(a.length / 2), a.length];
      ev.push(sseEvent('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: toolUse.id, name: toolUse.name, input: {} } }));
      ev.push(sseEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } }));
      for (let i = 0; i + 1 < cut.length; i++) {
        ev.push(sseEvent('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: a.slice(cut[i], cut[i + 1]) } }));
      }
      ev.push(sseEvent('content_block_stop', { type: 'content_block_stop', index }));
    }
    ev.push(sseEvent('message_delta', { type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: u.output_tokens } }));
    ev.push(sseEvent('message_stop', { type: 'message_stop' }));
    if (o.midStreamError) {
      // The stream ends at the error event, as Anthropic's does.
      const cutAt = ev.findIndex((e) => e.startsWith('event: error'));
      ev.splice(cutAt + 1);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': `req_fake${n}` });
    await writeSse(res, ev, { delayMs: o.delayMs });
  }, (err) => ({ status: err.status, body: anthropicError(err.status, err.message, err.type) }));
}

// ---- Gemini generateContent -------------------------------------------------

const GEMINI_TOP = new Set(['contents', 'tools', 'toolConfig', 'safetySettings', 'systemInstruction', 'generationConfig', 'cachedContent', 'labels']);
const GEMINI_GENCONFIG = new Set([
  'temperature', 'topP', 'topK', 'candidateCount', 'maxOutputTokens', 'stopSequences', 'presencePenalty', 'frequencyPenalty',
  'seed', 'responseMimeType', 'responseSchema', 'responseJsonSchema', 'responseModalities', 'responseLogprobs', 'logprobs',
  'thinkingConfig', 'mediaResolution', 'speechConfig', 'enableEnhancedCivicAnswers', 'imageConfig', 'audioTimestamp',
  'enableAffectiveDialog', 'routingConfig', 'modelSelectionConfig',
]);
const GEMINI_PART_KINDS = ['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse'];
const GEMINI_PART_MODIFIERS = new Set(['thought', 'thoughtSignature', 'videoMetadata', 'mediaResolution', 'partMetadata']);
const GEMINI_SCHEMA_KEYS = new Set([
  'type', 'format', 'title', 'description', 'nullable', 'enum', 'maxItems', 'minItems', 'properties', 'required',
  'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern', 'example', 'anyOf', 'propertyOrdering',
  'default', 'items', 'minimum', 'maximum',
]);
const GEMINI_TYPES = new Set(['TYPE_UNSPECIFIED', 'STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT', 'NULL']);
const GEMINI_STATUS = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};
const GEMINI_MESSAGES = {
  429: 'Resource has been exhausted (e.g. check quota).',
  500: 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
  503: 'The model is overloaded. Please try again later.',
};
function geminiError(status, message, st) {
  return { error: { code: status, message: message ?? GEMINI_MESSAGES[status] ?? `fake error ${status}`, status: st ?? GEMINI_STATUS[status] ?? 'UNKNOWN' } };
}
const unknownField = (name, at) => `Invalid JSON payload received. Unknown name "${name}"${at ? ` at '${at}'` : ''}: Cannot find field.`;

function geminiSchema(s, p) {
  need(isObj(s), `Invalid value at '${p}': expected a Schema object`);
  const e = unknownKeys(s, GEMINI_SCHEMA_KEYS);
  need(e.length === 0, unknownField(e[0], p));
  if ('type' in s) need(isStr(s.type) && GEMINI_TYPES.has(s.type.toUpperCase()), `Invalid value at '${p}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), ${JSON.stringify(s.type)}`);
  if ('properties' in s) {
    need(isObj(s.properties), `Invalid value at '${p}.properties': expected a map`);
    for (const [k, v] of Object.entries(s.properties)) geminiSchema(v, `${p}.properties[${k}].value`);
  }
  if ('items' in s) geminiSchema(s.items, `${p}.items`);
  if ('anyOf' in s) { need(Array.isArray(s.anyOf), `Invalid value at '${p}.any_of'`); s.anyOf.forEach((x, i) => geminiSchema(x, `${p}.any_of[${i}]`)); }
  if ('required' in s) need(Array.isArray(s.required) && s.required.every(isStr), `Invalid value at '${p}.required': expected a list of strings`);
  if ('enum' in s) need(Array.isArray(s.enum) && s.enum.every(isStr), `Invalid value at '${p}.enum': expected a list of strings`);
}

function geminiPart(part, p, role) {
  need(isObj(part), `Invalid value at '${p}': expected a Part object`);
  const kinds = Object.keys(part).filter((k) => !GEMINI_PART_MODIFIERS.has(k));
  for (const k of kinds) need(GEMINI_PART_KINDS.includes(k), unknownField(k, p));
  need(kinds.length === 1, kinds.length === 0
    ? `* GenerateContentRequest.${p}.data: required oneof field 'data' must have one initialized field`
    : `Invalid value at '${p}': oneof field 'data' is already set. Cannot set '${kinds[1]}'`);
  const kind = kinds[0];
  const v = part[kind];
  switch (kind) {
    case 'text':
      need(isStr(v), `Invalid value at '${p}.text' (TYPE_STRING)`);
      need(v.length > 0, `* GenerateContentRequest.${p}.text: text parts must not be empty`);
      break;
    case 'inlineData':
      need(isObj(v) && isNonEmptyStr(v.mimeType) && isNonEmptyStr(v.data), `* GenerateContentRequest.${p}.inline_data: mimeType and data (base64) are required`);
      need(/^[A-Za-z0-9+/=_-]+$/.test(v.data), `Invalid value at '${p}.inline_data.data' (TYPE_BYTES), Base64 decoding failed`);
      break;
    case 'fileData':
      need(isObj(v) && isNonEmptyStr(v.fileUri), `* GenerateContentRequest.${p}.file_data.file_uri: a file URI is required`);
      break;
    case 'functionCall': {
      need(role === 'model', `* GenerateContentRequest.${p}.function_call: function calls are only allowed in model turns`);
      need(isObj(v), `Invalid value at '${p}.function_call'`);
      const e = unknownKeys(v, new Set(['name', 'args', 'id']));
      need(e.length === 0, unknownField(e[0], `${p}.function_call`));
      need(isNonEmptyStr(v.name), `* GenerateContentRequest.${p}.function_call.name: name is required`);
      if ('args' in v) need(isObj(v.args), `Invalid value at '${p}.function_call.args' (type.googleapis.com/google.protobuf.Struct), ${JSON.stringify(v.args)}`);
      break;
    }
    case 'functionResponse': {
      need(role === 'user' || role === undefined, `* GenerateContentRequest.${p}.function_response: function responses are only allowed in user turns`);
      need(isObj(v), `Invalid value at '${p}.function_response'`);
      const e = unknownKeys(v, new Set(['name', 'response', 'id', 'parts', 'willContinue', 'scheduling']));
      need(e.length === 0, unknownField(e[0], `${p}.function_response`));
      need(isNonEmptyStr(v.name), `* GenerateContentRequest.${p}.function_response.name: name is required`);
      need(isObj(v.response), `Invalid value at '${p}.function_response.response' (type.googleapis.com/google.protobuf.Struct), ${JSON.stringify(v.response)}`);
      break;
    }
    default:
  }
  return kind;
}

export function validateGeminiRequest(body) {
  need(isObj(body), 'Invalid JSON payload received. Expected an object.');
  const extra = unknownKeys(body, GEMINI_TOP);
  need(extra.length === 0, unknownField(extra[0]));
  need(Array.isArray(body.contents) && body.contents.length > 0, '* GenerateContentRequest.contents: contents is not specified');

  if ('systemInstruction' in body) {
    const si = body.systemInstruction;
    need(isObj(si), "Invalid value at 'system_instruction'");
    const e = unknownKeys(si, new Set(['parts', 'role']));
    need(e.length === 0, unknownField(e[0], 'system_instruction'));
    need(Array.isArray(si.parts) && si.parts.length > 0, '* GenerateContentRequest.system_instruction.parts: must not be empty');
    si.parts.forEach((pt, i) => {
      need(isObj(pt) && Object.keys(pt).length === 1 && isNonEmptyStr(pt.text), `* GenerateContentRequest.system_instruction.parts[${i}]: only non-empty text parts are allowed`);
    });
  }

  if ('generationConfig' in body) {
    const g = body.generationConfig;
    need(isObj(g), "Invalid value at 'generation_config'");
    const e = unknownKeys(g, GEMINI_GENCONFIG);
    need(e.length === 0, unknownField(e[0], 'generation_config'));
    if ('maxOutputTokens' in g) need(isPosInt(g.maxOutputTokens), `Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), ${JSON.stringify(g.maxOutputTokens)}`);
    if ('temperature' in g) need(isNum(g.temperature) && g.temperature >= 0 && g.temperature <= 2, `Invalid value at 'generation_config.temperature' (TYPE_FLOAT), ${JSON.stringify(g.temperature)}`);
    if ('topP' in g) need(isNum(g.topP), `Invalid value at 'generation_config.top_p' (TYPE_FLOAT), ${JSON.stringify(g.topP)}`);
    if ('topK' in g) need(Number.isInteger(g.topK), `Invalid value at 'generation_config.top_k' (TYPE_INT32), ${JSON.stringify(g.topK)}`);
    if ('candidateCount' in g) need(isPosInt(g.candidateCount), `Invalid value at 'generation_config.candidate_count' (TYPE_INT32), ${JSON.stringify(g.candidateCount)}`);
    if ('stopSequences' in g) need(Array.isArray(g.stopSequences) && g.stopSequences.every(isStr) && g.stopSequences.length <= 5, "Invalid value at 'generation_config.stop_sequences': a list of at most 5 strings");
    if ('thinkingConfig' in g) {
      need(isObj(g.thinkingConfig), "Invalid value at 'generation_config.thinking_config'");
      const te = unknownKeys(g.thinkingConfig, new Set(['thinkingBudget', 'includeThoughts', 'thinkingLevel']));
      need(te.length === 0, unknownField(te[0], 'generation_config.thinking_config'));
    }
  }

  const declared = new Set();
  if ('tools' in body) {
    need(Array.isArray(body.tools), "Invalid value at 'tools': expected a list");
    body.tools.forEach((t, i) => {
      const p = `tools[${i}]`;
      need(isObj(t), `Invalid value at '${p}'`);
      const e = unknownKeys(t, new Set(['functionDeclarations', 'googleSearch', 'googleSearchRetrieval', 'codeExecution', 'urlContext', 'computerUse', 'fileSearch', 'googleMaps', 'mcpServers']));
      need(e.length === 0, unknownField(e[0], p));
      if (!('functionDeclarations' in t)) return;
      need(Array.isArray(t.functionDeclarations), `Invalid value at '${p}.function_declarations': expected a list`);
      t.functionDeclarations.forEach((d, j) => {
        const q = `${p}.function_declarations[${j}]`;
        need(isObj(d), `Invalid value at '${q}'`);
        const de = unknownKeys(d, new Set(['name', 'description', 'parameters', 'parametersJsonSchema', 'response', 'responseJsonSchema', 'behavior']));
        need(de.length === 0, unknownField(de[0], q));
        need(isStr(d.name) && /^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$/.test(d.name), `* GenerateContentRequest.${q}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or dashes (-), with a maximum length of 64.`);
        declared.add(d.name);
        need(!('parameters' in d && 'parametersJsonSchema' in d), `* GenerateContentRequest.${q}: parameters and parameters_json_schema are mutually exclusive`);
        if ('parameters' in d) geminiSchema(d.parameters, `${q}.parameters`);
        if ('parametersJsonSchema' in d) need(isObj(d.parametersJsonSchema), `Invalid value at '${q}.parameters_json_schema': expected an object`);
      });
    });
  }
  if ('toolConfig' in body) {
    const tc = body.toolConfig;
    need(isObj(tc), "Invalid value at 'tool_config'");
    const e = unknownKeys(tc, new Set(['functionCallingConfig', 'retrievalConfig']));
    need(e.length === 0, unknownField(e[0], 'tool_config'));
    const fc = tc.functionCallingConfig;
    if (fc !== undefined) {
      need(isObj(fc), "Invalid value at 'tool_config.function_calling_config'");
      const fe = unknownKeys(fc, new Set(['mode', 'allowedFunctionNames']));
      need(fe.length === 0, unknownField(fe[0], 'tool_config.function_calling_config'));
      if ('mode' in fc) need(['MODE_UNSPECIFIED', 'AUTO', 'ANY', 'NONE', 'VALIDATED'].includes(fc.mode), `Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), ${JSON.stringify(fc.mode)}`);
      if ('allowedFunctionNames' in fc) {
        need(fc.mode === 'ANY' || fc.mode === 'VALIDATED', '* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: only allowed when mode is ANY or VALIDATED');
        need(Array.isArray(fc.allowedFunctionNames) && fc.allowedFunctionNames.every((n) => declared.has(n)), '* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: every name must be a declared function');
      }
    }
  }
  if ('safetySettings' in body) need(Array.isArray(body.safetySettings) && body.safetySettings.every((s) => isObj(s) && isStr(s.category) && isStr(s.threshold)), "Invalid value at 'safety_settings'");

  let prev = null; // { role, calls: [names] }
  body.contents.forEach((c, i) => {
    const p = `contents[${i}]`;
    need(isObj(c), `Invalid value at '${p}'`);
    const e = unknownKeys(c, new Set(['role', 'parts']));
    need(e.length === 0, unknownField(e[0], p));
    if ('role' in c) need(c.role === 'user' || c.role === 'model', `* GenerateContentRequest.${p}.role: Please use a valid role: user, model.`);
    need(Array.isArray(c.parts) && c.parts.length > 0, `* GenerateContentRequest.${p}.parts: contents.parts must not be empty.`);
    const kinds = c.parts.map((pt, k) => geminiPart(pt, `${p}.parts[${k}]`, c.role));
    const calls = c.parts.filter((pt) => pt.functionCall).map((pt) => pt.functionCall.name);
    const responses = c.parts.filter((pt) => pt.functionResponse).map((pt) => pt.functionResponse.name);
    if (calls.length) {
      need(prev && prev.role !== 'model', 'Please ensure that function call turn comes immediately after a user turn or after a function response turn.');
    }
    if (responses.length) {
      need(prev && prev.role === 'model' && prev.calls.length > 0, 'Please ensure that function response turn comes immediately after a function call turn.');
      need(responses.length === prev.calls.length, 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.');
      for (const n of responses) need(prev.calls.includes(n), `* GenerateContentRequest.${p}: function response ${n} does not match any function call of the previous turn (${prev.calls.join(', ')})`);
    }
    prev = { role: c.role ?? 'user', calls };
  });
}

function geminiLastIsToolResult(body) {
  return (body.contents?.at(-1)?.parts ?? []).some((p) => p.functionResponse);
}

// A startFakeUpstream handler for POST /v1beta/models/{model}:generateContent
// and :streamGenerateContent (SSE with alt=sse, else one JSON array).  Extra
// options: toolPreText (a text part before the functionCall; '' = none),
// thoughtSignature (put on the functionCall part, and then required back on
// it), crlf (SSE events end in \r\n\r\n as Google's do; default true),
// usageEveryChunk (partial usageMetadata on every chunk, as Google sends;
// default true).
export function geminiHandler(opts = {}) {
  const o0 = {
    label: 'gemini', text: ['Hello', ' from ', opts.label ?? 'gemini'], afterToolText: AFTER_TOOL_TEXT,
    toolArgs: WEATHER_ARGS, toolPreText: '', usage: DEFAULT_USAGE.gemini, delayMs: 0, apiKey: undefined,
    thoughtSignature: undefined, crlf: true, usageEveryChunk: true, ...opts,
  };
  let n = 0;
  return makeHandler('gemini', async (req, res, ctx) => {
    const url = new URL(req.url, 'http://fake');
    ctx.path = url.pathname;
    if (url.searchParams.has('key')) {
      reject('FAKE GEMINI: the API key was sent in the URL (?key=); send it in the x-goog-api-key header so it never lands in a log', 400);
    }
    const m = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(url.pathname);
    if (!(req.method === 'POST' && m)) {
      reject(`fake gemini: no route ${req.method} ${url.pathname}`, 404);
    }
    const model = decodeURIComponent(m[1]);
    ctx.model = model;
    const streaming = m[2] === 'streamGenerateContent';
    const sse = url.searchParams.get('alt') === 'sse';
    if (url.searchParams.has('alt')) need(['sse', 'json'].includes(url.searchParams.get('alt')), `Invalid value at 'alt': ${url.searchParams.get('alt')}`);
    const key = req.headers['x-goog-api-key'];
    if (!isNonEmptyStr(key)) reject("Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", 403);
    if (o0.apiKey && key !== o0.apiKey) reject('API key not valid. Please pass a valid API key.', 400);
    need(/^application\/json/.test(req.headers['content-type'] ?? ''), 'Invalid content-type: expected application/json');
    need(ctx.json !== undefined, 'Invalid JSON payload received.');
    const body = ctx.json;
    validateGeminiRequest(body);

    const o = plan(o0, ctx, model);
    if (o.thoughtSignature) {
      // Every functionCall part sent back must carry the signature it was given.
      body.contents.forEach((c, i) => c.parts.forEach((pt, k) => {
        if (pt.functionCall) need(pt.thoughtSignature === o.thoughtSignature, `Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call \`default_api:${pt.functionCall.name}\` , position ${i + 1}. part ${k}`);
      }));
    }
    if (o.error) {
      const st = o.error.status ?? 500;
      return sendJson(res, st, geminiError(st, o.error.message, o.error.type));
    }
    n += 1;
    const responseId = `resp-fake${n}`;
    const afterTool = geminiLastIsToolResult(body);
    const hasDecl = (body.tools ?? []).some((t) => Array.isArray(t.functionDeclarations) && t.functionDeclarations.length > 0);
    const wantsTool = hasDecl && !afterTool && body.toolConfig?.functionCallingConfig?.mode !== 'NONE';
    let parts = afterTool ? [...o.afterToolText] : [...o.text];
    let finish = 'STOP';
    const limit = body.generationConfig?.maxOutputTokens;
    if (!wantsTool && limit !== undefined && limit <= 3) { parts = parts.slice(0, 1); finish = 'MAX_TOKENS'; }
    let callPart = null;
    if (wantsTool) {
      const allowed = body.toolConfig?.functionCallingConfig?.allowedFunctionNames;
      const name = allowed?.[0] ?? body.tools.find((t) => t.functionDeclarations?.length).functionDeclarations[0].name;
      callPart = { functionCall: { name, args: o.toolArgs } };
      if (o.thoughtSignature) callPart.thoughtSignature = o.thoughtSignature;
      parts = o.toolPreText ? [o.toolPreText] : [];
    }
    const u = o.usage;
    const usage = { ...u, promptTokensDetails: [{ modality: 'TEXT', tokenCount: u.promptTokenCount }] };
    const candidate = (ps, fin) => {
      const c = { content: { role: 'model', parts: ps }, index: 0 };
      if (fin) c.finishReason = fin;
      return c;
    };

    if (!streaming) {
      if (o.delayMs) await sleep(o.delayMs);
      const ps = parts.length ? [{ text: parts.join('') }] : [];
      if (callPart) ps.push(callPart);
      return sendJson(res, 200, { candidates: [candidate(ps, finish)], usageMetadata: usage, modelVersion: model, responseId });
    }

    // One chunk per text piece; the finish reason and the full usage ride on
    // the last chunk together with its content, as Google sends them.
    const pieces = parts.map((t) => [{ text: t }]);
    if (callPart) pieces.push([callPart]);
    if (pieces.length === 0) pieces.push([]);
    const chunks = pieces.map((ps, i) => {
      const last = i === pieces.length - 1;
      const ch = { candidates: [candidate(ps, last ? finish : undefined)] };
      if (last) ch.usageMetadata = usage;
      else if (o.usageEveryChunk) ch.usageMetadata = { promptTokenCount: u.promptTokenCount, totalTokenCount: u.promptTokenCount, promptTokensDetails: usage.promptTokensDetails };
      ch.modelVersion = model;
      ch.responseId = responseId;
      return ch;
    });
    if (sse) {
      const end = o.crlf ? '\r\n\r\n' : '\n\n';
      res.writeHead(200, { 'content-type': 'text/event-stream', 'x-content-type-options': 'nosniff' });
      await writeSse(res, chunks.map((c) => `data: ${JSON.stringify(c)}${end}`), { delayMs: o.delayMs });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
    const pieces2 = chunks.map((c, i) => (i === 0 ? '[' : ',\r\n') + JSON.stringify(c));
    pieces2.push(']');
    await writeSse(res, pieces2, { delayMs: o.delayMs });
  }, (err) => ({ status: err.status, body: geminiError(err.status, err.message, err.type) }));
}

// ---- starting them ------------------------------------------------------------

export const startOpenAIFake = (opts) => startWith(openaiToolHandler(opts));
export const startAnthropicFake = (opts) => startWith(anthropicHandler(opts));
export const startGeminiFake = (opts) => startWith(geminiHandler(opts));

// One fake of each kind, each insisting on its own provider key:
// { openai, anthropic, gemini, keys: { openai, anthropic, gemini }, all, close() }.
export async function startMatrixProviders({ keys = {}, ...opts } = {}) {
  const k = { openai: 'sk-up-openai-K1', anthropic: 'sk-ant-up-K2', gemini: 'AIza-up-gemini-K3', ...keys };
  const fakes = {
    openai: await startOpenAIFake({ apiKey: k.openai, ...opts.openai }),
    anthropic: await startAnthropicFake({ apiKey: k.anthropic, ...opts.anthropic }),
    gemini: await startGeminiFake({ apiKey: k.gemini, ...opts.gemini }),
  };
  return {
    ...fakes,
    keys: k,
    all: Object.values(fakes),
    // Every violation any fake recorded, one line each.
    violations: () => Object.values(fakes).flatMap((f) => f.violations),
    showViolations: () => Object.values(fakes).map((f) => f.showViolations()).filter(Boolean).join('\n'),
    async close() { for (const f of Object.values(fakes)) await f.close(); },
  };
}

// ---- reading what a fake received (the same questions in every format) ------

// The model the provider was asked for.
export function upstreamModel(kind, entry) {
  if (kind === 'gemini') return decodeURIComponent(/\/models\/([^/:]+):/.exec(entry.url)?.[1] ?? '');
  return entry.json?.model;
}

// The provider key the request carried, read the way that provider reads it.
export function upstreamKey(kind, entry) {
  if (kind === 'openai') return /^Bearer (.+)$/.exec(entry.headers.authorization ?? '')?.[1];
  if (kind === 'anthropic') return entry.headers['x-api-key'];
  return entry.headers['x-goog-api-key'];
}

const textOf = (content) => {
  if (content === null || content === undefined) return '';
  if (isStr(content)) return content;
  if (Array.isArray(content)) return content.map((b) => (isStr(b) ? b : b.text ?? '')).join('');
  return '';
};

// The system prompt the provider got, as one string ('' when none).
export function systemOf(kind, body) {
  if (kind === 'openai') return body.messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => textOf(m.content)).join('\n');
  if (kind === 'anthropic') return textOf(body.system);
  return (body.systemInstruction?.parts ?? []).map((p) => p.text ?? '').join('');
}

// The tools declared to the provider: [{ name, schema }].
export function toolDefsOf(kind, body) {
  if (kind === 'openai') return (body.tools ?? []).map((t) => ({ name: t.function.name, schema: t.function.parameters }));
  if (kind === 'anthropic') return (body.tools ?? []).map((t) => ({ name: t.name, schema: t.input_schema }));
  return (body.tools ?? []).flatMap((t) => t.functionDeclarations ?? []).map((d) => ({ name: d.name, schema: d.parameters ?? d.parametersJsonSchema }));
}

// The last tool exchange in a request's history: the tool calls of the
// last assistant turn that made some, with their parsed arguments, and the
// tool results after it, each result's content as a string.
// { calls: [{ id, name, args }], results: [{ id, name, content }] }
export function lastToolExchange(kind, body) {
  const calls = [];
  const results = [];
  if (kind === 'openai') {
    const i = body.messages.findLastIndex((m) => m.role === 'assistant' && m.tool_calls?.length);
    if (i < 0) return { calls, results };
    for (const c of body.messages[i].tool_calls) {
      let args;
      try { args = JSON.parse(c.function.arguments); } catch { args = c.function.arguments; }
      calls.push({ id: c.id, name: c.function.name, args });
    }
    for (const m of body.messages.slice(i + 1)) if (m.role === 'tool') results.push({ id: m.tool_call_id, content: textOf(m.content) });
  } else if (kind === 'anthropic') {
    const i = body.messages.findLastIndex((m) => m.role === 'assistant' && Array.isArray(m.content) && m.content.some((b) => b.type === 'tool_use'));
    if (i < 0) return { calls, results };
    for (const b of body.messages[i].content) if (b.type === 'tool_use') calls.push({ id: b.id, name: b.name, args: b.input });
    for (const b of body.messages[i + 1]?.content ?? []) if (b.type === 'tool_result') results.push({ id: b.tool_use_id, content: textOf(b.content) });
  } else {
    const i = body.contents.findLastIndex((c) => c.parts.some((p) => p.functionCall));
    if (i < 0) return { calls, results };
    for (const p of body.contents[i].parts) if (p.functionCall) calls.push({ id: p.functionCall.id, name: p.functionCall.name, args: p.functionCall.args ?? {} });
    for (const p of body.contents[i + 1]?.parts ?? []) if (p.functionResponse) results.push({ id: p.functionResponse.id, name: p.functionResponse.name, content: JSON.stringify(p.functionResponse.response) });
  }
  return { calls, results };
}

// The max-tokens limit the provider was asked for (undefined when none).
export function maxTokensOf(kind, body) {
  if (kind === 'openai') return body.max_completion_tokens ?? body.max_tokens;
  if (kind === 'anthropic') return body.max_tokens;
  return body.generationConfig?.maxOutputTokens;
}
