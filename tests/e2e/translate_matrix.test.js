// The translation matrix: each client API (OpenAI chat completions,
// Anthropic Messages, Gemini generateContent), spoken by its official SDK,
// against each provider type (openai, anthropic, gemini), played by the
// strict fakes of tests/lib/fakes.js.  For each of the nine pairs: plain
// and streamed text, the max-tokens stop, a tool-call round trip plain and
// streamed, and an upstream 429 in the client's own error format; then
// one request_logs row per call with its tokens.  The fakes refuse (and
// record) anything the real provider would refuse, so a failure names the
// pair and what the provider objected to.
//
// How each SDK is pointed at Fusion:
//   new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: clientKey })
//   new Anthropic({ baseURL: f.baseUrl, apiKey: clientKey })          // → POST /v1/messages
//       (this SDK sends `Authorization: Bearer <key>` and `anthropic-version: 2026-10-21`)
//   new GoogleGenAI({ apiKey: clientKey, httpOptions: { baseUrl: f.baseUrl } })
//       (→ POST /v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse,
//        header x-goog-api-key)
//
// What a client must see, by provider (the fakes' usage, mapped as in
// WIRE.md: prompt = Anthropic input + cache_creation + cache_read;
// completion = Gemini candidates + thoughts):
//   provider openai    prompt 11, completion 7
//   provider anthropic prompt 28 (20 + 3 + 5), completion 9
//   provider gemini    prompt 13, completion 7 (5 + 2 thoughts)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI, Type } from '@google/genai';
import { api, createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { sqlRows, startFusion, waitFor } from '../lib/harness.js';
import {
  AFTER_TOOL_TEXT, DEFAULT_USAGE, WEATHER_ARGS, lastToolExchange, maxTokensOf, startMatrixProviders, systemOf,
  toolDefsOf, upstreamKey, upstreamModel,
} from '../lib/fakes.js';

const ADMIN_PASSWORD = 'translate-matrix-admin-password';
const KINDS = ['openai', 'anthropic', 'gemini'];
const CLIENTS = KINDS;
const PROVIDERS = KINDS;

// The provider model of each provider's model m-<provider> (the fakes echo it).
const PROVIDER_MODEL = { openai: 'gpt-up-4o', anthropic: 'claude-up-sonnet-4', gemini: 'gemini-up-2.5-flash' };
const ERR_MODEL = { openai: 'gpt-err-429', anthropic: 'claude-err-429', gemini: 'gemini-err-429' };

const SYSTEM = 'Be brief.';
const PROMPT = 'Say hello';
const ASK_WEATHER = 'What is the weather in Paris?';
const RESULT = Object.freeze({ temp_c: 21, sky: 'sunny' });
const AFTER_TOOL = AFTER_TOOL_TEXT.join('');

// Prompt and completion tokens each provider's fake reports, as one number each.
const a = DEFAULT_USAGE.anthropic;
const g = DEFAULT_USAGE.gemini;
const TOKENS = {
  openai: { prompt: DEFAULT_USAGE.openai.prompt_tokens, completion: DEFAULT_USAGE.openai.completion_tokens },
  anthropic: { prompt: a.input_tokens + a.cache_creation_input_tokens + a.cache_read_input_tokens, completion: a.output_tokens },
  gemini: { prompt: g.promptTokenCount, completion: g.candidatesTokenCount + g.thoughtsTokenCount },
};

// The stop reason as each client SDK reports it.
const STOP = {
  openai: { text: 'stop', tool: 'tool_calls', length: 'length' },
  anthropic: { text: 'end_turn', tool: 'tool_use', length: 'max_tokens' },
  gemini: { text: 'STOP', tool: 'STOP', length: 'MAX_TOKENS' },
};

// The get_weather tool, declared the way each client API declares it.  The
// OpenAI one carries additionalProperties:false (as strict-mode tools do; a
// Gemini `parameters` schema has no such field), the Gemini one upper-case
// types (as the SDK's Type enum gives; not JSON Schema for the others).
const TOOLS = {
  openai: [{ type: 'function', function: { name: 'get_weather', description: 'Current weather of a city', parameters: { type: 'object', properties: { city: { type: 'string', description: 'City name' } }, required: ['city'], additionalProperties: false } } }],
  anthropic: [{ name: 'get_weather', description: 'Current weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string', description: 'City name' } }, required: ['city'] } }],
  gemini: [{ functionDeclarations: [{ name: 'get_weather', description: 'Current weather of a city', parameters: { type: Type.OBJECT, properties: { city: { type: Type.STRING, description: 'City name' } }, required: ['city'] } }] }],
};

const hex = (n) => randomBytes(n).toString('hex');

describe('translation matrix: 3 client APIs × 3 provider types', () => {
  let f;
  let fakes;
  let clientKey;
  const sdk = {};
  // Every call whose log row the last test checks: { id, client, provider,
  // stream, ok, done } (done: the call went through as the test wanted).
  const calls = [];
  const done = (id) => { calls.find((c) => c.id === id).done = true; };
  const rid = (client, provider, what, { stream = false, ok = true } = {}) => {
    const id = `tm-${client[0]}${provider[0]}-${what}-${hex(4)}`;
    calls.push({ id, client, provider, stream, ok, what });
    return id;
  };

  before(async () => {
    fakes = await startMatrixProviders();
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const baseUrl = { openai: fakes.openai.url + '/v1', anthropic: fakes.anthropic.url, gemini: fakes.gemini.url };
    const names = [];
    for (const p of PROVIDERS) {
      const prov = await createRow(f, token, '/api/admin/providers', { name: `p-${p}`, type: p, base_url: baseUrl[p], api_key: fakes.keys[p] });
      await createRow(f, token, '/api/admin/models', { name: `m-${p}`, provider_id: prov.id, provider_model: PROVIDER_MODEL[p] });
      names.push(`m-${p}`);
      // Each failing pair has a provider of its own, so that no circuit
      // breaker or cooling key of one case changes the next.
      for (const c of CLIENTS) {
        for (const s of ['', 's']) {
          const name = `e${s}-${c}-${p}`;
          const ep = await createRow(f, token, '/api/admin/providers', { name: `p-${name}`, type: p, base_url: baseUrl[p], api_key: fakes.keys[p] });
          await createRow(f, token, '/api/admin/models', { name, provider_id: ep.id, provider_model: ERR_MODEL[p] });
          names.push(name);
        }
      }
    }
    clientKey = (await createRow(f, token, '/api/admin/keys', { name: 'matrix' })).key;
    await waitForModels(f, clientKey, names);
    sdk.openai = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: clientKey, maxRetries: 0, timeout: 10_000 });
    sdk.anthropic = new Anthropic({ baseURL: f.baseUrl, apiKey: clientKey, maxRetries: 0, timeout: 10_000 });
    sdk.gemini = new GoogleGenAI({ apiKey: clientKey, httpOptions: { baseUrl: f.baseUrl, timeout: 10_000 } });
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { await fakes?.close(); }
  });

  // ---- what reached the provider -------------------------------------------

  // Run `fn`; exactly `n` requests must reach the fake of `provider` and none
  // any other fake, and no fake may have refused anything.  Returns
  // { result, ups } (the new upstream requests).  A failure shows what the
  // fakes objected to.
  async function through(provider, n, fn) {
    const before = Object.fromEntries(KINDS.map((k) => [k, fakes[k].requests.length]));
    const v0 = fakes.violations().length;
    let result;
    try {
      result = await fn();
    } catch (err) {
      const v = fakes.violations().slice(v0);
      if (v.length) err.message += `\nthe provider refused:\n${v.map((x) => `${x.kind}: ${x.message}`).join('\n')}`;
      throw err;
    }
    const v = fakes.violations().slice(v0);
    assert.deepEqual(v.map((x) => `${x.kind}: ${x.message}`), [], 'the provider refused a request');
    for (const k of KINDS) {
      const got = fakes[k].requests.length - before[k];
      assert.equal(got, k === provider ? n : 0, `upstream requests to the ${k} fake: ${got}`);
    }
    return { result, ups: fakes[provider].requests.slice(before[provider]) };
  }

  // The provider got its own model name, its own key in its own header
  // (never the client key), at its own URL.
  function checkUpstream(provider, up, { stream, model = PROVIDER_MODEL[provider] }) {
    const what = `${provider} upstream ${up.method} ${up.url}`;
    assert.equal(up.method, 'POST', what);
    assert.equal(upstreamModel(provider, up), model, `${what}: model`);
    assert.equal(upstreamKey(provider, up), fakes.keys[provider], `${what}: provider key`);
    assert.ok(!JSON.stringify(up.headers).includes(clientKey), `${what}: the client key reached the provider's headers`);
    assert.ok(!up.url.includes(clientKey) && !up.body.includes(clientKey), `${what}: the client key reached the provider`);
    assert.match(up.headers['content-type'] ?? '', /^application\/json/, what);
    if (provider === 'openai') {
      assert.equal(up.url, '/v1/chat/completions', what);
      assert.equal(Boolean(up.json.stream), stream, `${what}: stream`);
    } else if (provider === 'anthropic') {
      assert.equal(up.url, '/v1/messages', what);
      assert.equal(up.headers['anthropic-version'], '2023-06-01', what);
      assert.equal(up.headers.authorization, undefined, `${what}: no Authorization header to Anthropic`);
      assert.equal(Boolean(up.json.stream), stream, `${what}: stream`);
    } else {
      const path = `/v1beta/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`;
      assert.equal(up.url, path, what);
      assert.equal(up.headers.authorization, undefined, `${what}: no Authorization header to Gemini`);
    }
  }

  // ---- the three clients, one driver each ------------------------------------
  //
  // text({ model, stream, id, system, maxTokens }) → { text, stop, usage, startInputTokens? }
  // toolAsk({ model, stream, id }) → { call: { id, name, args }, stop, turn }
  //     (turn: the assistant turn to send back, in the client's format)
  // toolAnswer({ model, stream, id, call, turn }) → { text, stop }
  // fail({ model, stream, id }) → checks the client-format 429

  const opts = (id) => ({ headers: { 'X-Request-Id': id } });

  const drivers = {
    openai: {
      async text({ model, stream, id, system, maxTokens }) {
        const body = { model, messages: [...(system ? [{ role: 'system', content: system }] : []), { role: 'user', content: PROMPT }] };
        if (maxTokens) body.max_tokens = maxTokens;
        if (!stream) {
          const r = await sdk.openai.chat.completions.create(body, opts(id));
          assert.equal(r.object, 'chat.completion');
          assert.equal(r.choices.length, 1);
          assert.equal(r.choices[0].message.role, 'assistant');
          return { text: r.choices[0].message.content, stop: r.choices[0].finish_reason, usage: r.usage };
        }
        const chunks = [];
        for await (const c of await sdk.openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, opts(id))) chunks.push(c);
        const withChoices = chunks.filter((c) => c.choices.length > 0);
        assert.ok(withChoices.length > 0, 'no chunk with choices');
        assert.equal(withChoices[0].choices[0].delta.role, 'assistant', 'the first chunk carries role assistant');
        assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id in every chunk');
        const usageChunks = chunks.filter((c) => c.usage);
        assert.equal(usageChunks.length, 1, `one usage chunk: ${JSON.stringify(usageChunks)}`);
        assert.deepEqual(chunks.at(-1).choices, [], 'the usage chunk comes last, with no choices');
        return {
          text: withChoices.map((c) => c.choices[0].delta.content ?? '').join(''),
          stop: withChoices.map((c) => c.choices[0].finish_reason).filter(Boolean).at(-1),
          usage: chunks.at(-1).usage,
        };
      },
      async toolAsk({ model, stream, id }) {
        const body = { model, messages: [{ role: 'user', content: ASK_WEATHER }], tools: TOOLS.openai };
        if (!stream) {
          const r = await sdk.openai.chat.completions.create(body, opts(id));
          const m = r.choices[0].message;
          assert.equal(m.tool_calls?.length, 1, `one tool call: ${JSON.stringify(m)}`);
          const c = m.tool_calls[0];
          assert.equal(c.type, 'function');
          assert.equal(typeof c.function.arguments, 'string', 'arguments is a JSON string');
          const call = { id: c.id, name: c.function.name, args: JSON.parse(c.function.arguments) };
          return { call, stop: r.choices[0].finish_reason, turn: { role: 'assistant', content: m.content ?? null, tool_calls: [{ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }] } };
        }
        const chunks = [];
        for await (const c of await sdk.openai.chat.completions.create({ ...body, stream: true }, opts(id))) chunks.push(c);
        const withChoices = chunks.filter((c) => c.choices.length > 0);
        assert.equal(withChoices[0].choices[0].delta.role, 'assistant', 'the first chunk carries role assistant');
        const deltas = withChoices.flatMap((c) => c.choices[0].delta.tool_calls ?? []);
        assert.ok(deltas.length > 0, 'tool_calls deltas');
        assert.deepEqual([...new Set(deltas.map((d) => d.index))], [0], `one tool call, index 0: ${JSON.stringify(deltas)}`);
        assert.ok(deltas[0].id && deltas[0].function?.name, `the first tool_calls delta has id and name: ${JSON.stringify(deltas[0])}`);
        assert.equal(deltas[0].type, 'function');
        assert.equal(deltas.filter((d) => d.id).length, 1, 'the id comes once');
        const args = deltas.map((d) => d.function?.arguments ?? '').join('');
        const text = withChoices.map((c) => c.choices[0].delta.content ?? '').join('');
        const call = { id: deltas[0].id, name: deltas[0].function.name, args: JSON.parse(args) };
        return {
          call,
          stop: withChoices.map((c) => c.choices[0].finish_reason).filter(Boolean).at(-1),
          turn: { role: 'assistant', content: text || null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: args } }] },
        };
      },
      async toolAnswer({ model, stream, id, call, turn }) {
        const body = {
          model, tools: TOOLS.openai,
          messages: [{ role: 'user', content: ASK_WEATHER }, turn, { role: 'tool', tool_call_id: call.id, content: JSON.stringify(RESULT) }],
        };
        if (!stream) {
          const r = await sdk.openai.chat.completions.create(body, opts(id));
          return { text: r.choices[0].message.content, stop: r.choices[0].finish_reason };
        }
        const chunks = [];
        for await (const c of await sdk.openai.chat.completions.create({ ...body, stream: true }, opts(id))) chunks.push(c);
        const withChoices = chunks.filter((c) => c.choices.length > 0);
        return { text: withChoices.map((c) => c.choices[0].delta.content ?? '').join(''), stop: withChoices.map((c) => c.choices[0].finish_reason).filter(Boolean).at(-1) };
      },
      async fail({ model, stream, id }) {
        const err = await (async () => {
          const r = await sdk.openai.chat.completions.create({ model, messages: [{ role: 'user', content: PROMPT }], stream }, opts(id));
          if (stream) for await (const c of r) assert.ok(c);
          return r;
        })().catch((e) => e);
        assert.ok(err instanceof OpenAI.APIError, `an OpenAI APIError: ${err?.stack ?? JSON.stringify(err)}`);
        assert.equal(err.status, 429, err.message);
        assert.ok(err instanceof OpenAI.RateLimitError);
        assert.equal(typeof err.error?.message, 'string', `error body: ${JSON.stringify(err.error)}`);
        assert.ok(err.error.message.length > 0);
        assert.equal(typeof err.error?.type, 'string', `error body: ${JSON.stringify(err.error)}`);
      },
    },

    anthropic: {
      async text({ model, stream, id, system, maxTokens }) {
        const body = { model, max_tokens: maxTokens ?? 256, messages: [{ role: 'user', content: PROMPT }] };
        if (system) body.system = system;
        if (!stream) {
          const m = await sdk.anthropic.messages.create(body, opts(id));
          assert.equal(m.type, 'message');
          assert.equal(m.role, 'assistant');
          for (const b of m.content) if (b.type === 'text') assert.ok(b.text.length > 0, 'text blocks are non-empty');
          return { text: m.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), stop: m.stop_reason, usage: m.usage };
        }
        const s = sdk.anthropic.messages.stream(body, opts(id));
        const types = [];
        let startUsage;
        for await (const ev of s) {
          types.push(ev.type);
          if (ev.type === 'message_start') startUsage = ev.message.usage;
        }
        const m = await s.finalMessage();
        assert.equal(types[0], 'message_start', `events: ${types}`);
        assert.equal(types.at(-1), 'message_stop', `events: ${types}`);
        assert.equal(types.at(-2), 'message_delta', `events: ${types}`);
        for (const b of m.content) if (b.type === 'text') assert.ok(b.text.length > 0, 'text blocks are non-empty');
        return { text: m.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), stop: m.stop_reason, usage: m.usage, startInputTokens: startUsage?.input_tokens };
      },
      async toolAsk({ model, stream, id }) {
        const body = { model, max_tokens: 256, tools: TOOLS.anthropic, messages: [{ role: 'user', content: ASK_WEATHER }] };
        let m;
        if (!stream) m = await sdk.anthropic.messages.create(body, opts(id));
        else {
          const s = sdk.anthropic.messages.stream(body, opts(id));
          const starts = [];
          const fragments = [];
          for await (const ev of s) {
            if (ev.type === 'content_block_start') starts.push(ev.content_block);
            if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') fragments.push(ev.delta.partial_json);
          }
          m = await s.finalMessage();
          const useStart = starts.find((b) => b.type === 'tool_use');
          assert.ok(useStart, `a tool_use block starts: ${JSON.stringify(starts)}`);
          assert.deepEqual(useStart.input, {}, 'the tool_use block starts with input {}');
          assert.ok(fragments.join('').length > 0, 'the arguments come as input_json_delta');
        }
        for (const b of m.content) if (b.type === 'text') assert.ok(b.text.length > 0, `text blocks are non-empty: ${JSON.stringify(m.content)}`);
        const uses = m.content.filter((b) => b.type === 'tool_use');
        assert.equal(uses.length, 1, `one tool_use block: ${JSON.stringify(m.content)}`);
        assert.match(uses[0].id, /^[a-zA-Z0-9_-]+$/, 'a tool_use id Anthropic accepts');
        return { call: { id: uses[0].id, name: uses[0].name, args: uses[0].input }, stop: m.stop_reason, turn: { role: 'assistant', content: m.content } };
      },
      async toolAnswer({ model, stream, id, call, turn }) {
        const body = {
          model, max_tokens: 256, tools: TOOLS.anthropic,
          messages: [{ role: 'user', content: ASK_WEATHER }, turn, { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: JSON.stringify(RESULT) }] }],
        };
        const m = stream ? await sdk.anthropic.messages.stream(body, opts(id)).finalMessage() : await sdk.anthropic.messages.create(body, opts(id));
        return { text: m.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), stop: m.stop_reason };
      },
      async fail({ model, stream, id }) {
        const err = await (async () => {
          const r = await sdk.anthropic.messages.create({ model, max_tokens: 50, messages: [{ role: 'user', content: PROMPT }], stream }, opts(id));
          if (stream) for await (const ev of r) assert.ok(ev);
          return r;
        })().catch((e) => e);
        assert.ok(err instanceof Anthropic.APIError, `an Anthropic APIError: ${err?.stack ?? JSON.stringify(err)}`);
        assert.equal(err.status, 429, err.message);
        assert.ok(err instanceof Anthropic.RateLimitError);
        assert.equal(err.error?.type, 'error', `error body: ${JSON.stringify(err.error)}`);
        assert.equal(err.error?.error?.type, 'rate_limit_error', `error body: ${JSON.stringify(err.error)}`);
        assert.equal(typeof err.error.error.message, 'string');
      },
    },

    gemini: {
      async text({ model, stream, id, system, maxTokens }) {
        const config = { httpOptions: { headers: { 'X-Request-Id': id } } };
        if (system) config.systemInstruction = system;
        if (maxTokens) config.maxOutputTokens = maxTokens;
        const req = { model, contents: PROMPT, config };
        if (!stream) {
          const r = await sdk.gemini.models.generateContent(req);
          assert.equal(r.candidates?.length, 1, JSON.stringify(r));
          assert.equal(r.candidates[0].content.role, 'model');
          return { text: geminiText([r]), stop: r.candidates[0].finishReason, usage: r.usageMetadata };
        }
        const chunks = [];
        for await (const c of await sdk.gemini.models.generateContentStream(req)) chunks.push(c);
        assert.ok(chunks.length > 0);
        const finishes = chunks.map((c) => c.candidates?.[0]?.finishReason).filter(Boolean);
        assert.equal(finishes.length, 1, `one finishReason, on the last chunk: ${JSON.stringify(chunks)}`);
        return { text: geminiText(chunks), stop: lastFinish(chunks), usage: chunks.findLast((c) => c.usageMetadata)?.usageMetadata };
      },
      async toolAsk({ model, stream, id }) {
        const req = { model, contents: [{ role: 'user', parts: [{ text: ASK_WEATHER }] }], config: { tools: TOOLS.gemini, httpOptions: { headers: { 'X-Request-Id': id } } } };
        let chunks;
        if (!stream) chunks = [await sdk.gemini.models.generateContent(req)];
        else {
          chunks = [];
          for await (const c of await sdk.gemini.models.generateContentStream(req)) chunks.push(c);
        }
        const calls = chunks.flatMap((c) => c.functionCalls ?? []);
        assert.equal(calls.length, 1, `one whole functionCall: ${JSON.stringify(chunks.map((c) => c.candidates))}`);
        const fc = calls[0];
        // The model turn to send back: the parts as received, text pieces merged.
        const parts = [];
        for (const c of chunks) {
          assert.equal(c.candidates?.[0]?.content?.role ?? 'model', 'model', 'the role of a Gemini answer is model');
          for (const p of c.candidates?.[0]?.content?.parts ?? []) {
            if (typeof p.text === 'string' && !p.thought && Object.keys(p).length === 1) {
              if (!p.text) continue;
              if (parts.length && typeof parts.at(-1).text === 'string' && Object.keys(parts.at(-1)).length === 1) parts.at(-1).text += p.text;
              else parts.push({ text: p.text });
            } else parts.push(p);
          }
        }
        return { call: { id: fc.id, name: fc.name, args: fc.args }, stop: lastFinish(chunks), turn: { role: 'model', parts } };
      },
      async toolAnswer({ model, stream, id, call, turn }) {
        const fr = { name: call.name, response: { ...RESULT } };
        if (call.id) fr.id = call.id;
        const req = {
          model, config: { tools: TOOLS.gemini, httpOptions: { headers: { 'X-Request-Id': id } } },
          contents: [{ role: 'user', parts: [{ text: ASK_WEATHER }] }, turn, { role: 'user', parts: [{ functionResponse: fr }] }],
        };
        let chunks;
        if (!stream) chunks = [await sdk.gemini.models.generateContent(req)];
        else {
          chunks = [];
          for await (const c of await sdk.gemini.models.generateContentStream(req)) chunks.push(c);
        }
        return { text: geminiText(chunks), stop: lastFinish(chunks) };
      },
      async fail({ model, stream, id }) {
        const req = { model, contents: PROMPT, config: { httpOptions: { headers: { 'X-Request-Id': id } } } };
        const err = await (async () => {
          if (!stream) return sdk.gemini.models.generateContent(req);
          for await (const c of await sdk.gemini.models.generateContentStream(req)) assert.ok(c);
          return 'no error';
        })().catch((e) => e);
        assert.ok(err instanceof Error, `an error: ${JSON.stringify(err)}`);
        assert.equal(err.status, 429, `${err.stack}`);
        let body;
        try { body = JSON.parse(err.message); } catch { assert.fail(`the error message is the JSON error body: ${err.message}`); }
        assert.equal(body.error?.code, 429, err.message);
        assert.equal(body.error?.status, 'RESOURCE_EXHAUSTED', err.message);
        assert.equal(typeof body.error?.message, 'string', err.message);
      },
    },
  };

  // The finish reason of a Gemini answer: on its last chunk, as Google sends it.
  function lastFinish(chunks) {
    const fin = chunks.at(-1)?.candidates?.[0]?.finishReason;
    assert.ok(fin, `the last chunk carries the finishReason: ${JSON.stringify(chunks.at(-1))}`);
    return fin;
  }

  function geminiText(chunks) {
    return chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? []).filter((p) => typeof p.text === 'string' && !p.thought).map((p) => p.text).join('');
  }

  // The usage a client saw, checked against what the provider reported.
  function checkUsage(client, provider, usage, what) {
    const { prompt, completion } = TOKENS[provider];
    assert.ok(usage, `${what}: no usage`);
    const u = JSON.stringify(usage);
    if (client === 'openai') {
      assert.equal(usage.prompt_tokens, prompt, `${what}: prompt_tokens ${u}`);
      assert.equal(usage.completion_tokens, completion, `${what}: completion_tokens ${u}`);
      assert.equal(usage.total_tokens, prompt + completion, `${what}: total_tokens ${u}`);
    } else if (client === 'anthropic') {
      const input = usage.input_tokens + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
      assert.equal(input, prompt, `${what}: input_tokens + cache tokens ${u}`);
      assert.equal(usage.output_tokens, completion, `${what}: output_tokens ${u}`);
      if (provider === 'anthropic') {
        assert.equal(usage.input_tokens, a.input_tokens, `${what}: ${u}`);
        assert.equal(usage.cache_read_input_tokens, a.cache_read_input_tokens, `${what}: ${u}`);
        assert.equal(usage.cache_creation_input_tokens, a.cache_creation_input_tokens, `${what}: ${u}`);
      }
    } else {
      assert.equal(usage.promptTokenCount, prompt, `${what}: promptTokenCount ${u}`);
      assert.equal((usage.candidatesTokenCount ?? 0) + (usage.thoughtsTokenCount ?? 0), completion, `${what}: candidatesTokenCount + thoughtsTokenCount ${u}`);
      assert.equal(usage.totalTokenCount, prompt + completion, `${what}: totalTokenCount ${u}`);
      if (provider === 'gemini') {
        assert.equal(usage.candidatesTokenCount, g.candidatesTokenCount, `${what}: ${u}`);
        assert.equal(usage.thoughtsTokenCount, g.thoughtsTokenCount, `${what}: ${u}`);
      }
    }
  }

  // ---- the nine pairs ---------------------------------------------------------

  for (const client of CLIENTS) {
    describe(`client API: ${client}`, () => {
      const d = () => drivers[client];

      for (const provider of PROVIDERS) {
        const pair = `${client} → ${provider}`;
        const model = `m-${provider}`;

        test(`${pair}: text, not streamed (system prompt, text, stop, usage)`, async () => {
          const id = rid(client, provider, 'text');
          const { result: r, ups } = await through(provider, 1, () => d().text({ model, stream: false, id, system: SYSTEM }));
          done(id);
          assert.equal(r.text, `Hello from ${provider}`, pair);
          assert.equal(r.stop, STOP[client].text, `${pair}: stop reason`);
          checkUsage(client, provider, r.usage, pair);
          checkUpstream(provider, ups[0], { stream: false });
          assert.equal(systemOf(provider, ups[0].json), SYSTEM, `${pair}: the system prompt in the provider's place`);
          assert.ok(ups[0].body.includes(PROMPT), `${pair}: the prompt reached the provider`);
          if (provider === 'anthropic') assert.ok(Number.isInteger(ups[0].json.max_tokens) && ups[0].json.max_tokens > 0, `${pair}: a max_tokens is supplied`);
        });

        test(`${pair}: text, streamed (deltas, stop, usage)`, async () => {
          const id = rid(client, provider, 'stream', { stream: true });
          const { result: r, ups } = await through(provider, 1, () => d().text({ model, stream: true, id }));
          done(id);
          assert.equal(r.text, `Hello from ${provider}`, pair);
          assert.equal(r.stop, STOP[client].text, `${pair}: stop reason`);
          checkUsage(client, provider, r.usage, `${pair} (stream)`);
          checkUpstream(provider, ups[0], { stream: true });
          if (provider === 'openai') assert.deepEqual(ups[0].json.stream_options, { include_usage: true }, `${pair}: usage asked of the provider`);
          // A streamed Anthropic answer announces the real input tokens in
          // message_start when the provider said them before the first byte.
          if (client === 'anthropic' && provider !== 'openai') {
            assert.equal(r.startInputTokens, provider === 'anthropic' ? a.input_tokens : g.promptTokenCount, `${pair}: message_start input_tokens`);
          }
        });

        test(`${pair}: max tokens 3 → the length stop reason`, async () => {
          const id = rid(client, provider, 'length');
          const { result: r, ups } = await through(provider, 1, () => d().text({ model, stream: false, id, maxTokens: 3 }));
          done(id);
          assert.equal(maxTokensOf(provider, ups[0].json), 3, `${pair}: the limit reached the provider`);
          assert.equal(r.text, 'Hello', pair);
          assert.equal(r.stop, STOP[client].length, `${pair}: stop reason`);
        });

        for (const stream of [false, true]) {
          const how = stream ? 'streamed' : 'not streamed';
          test(`${pair}: tool call round trip, ${how}`, async () => {
            const id1 = rid(client, provider, stream ? 'tool1s' : 'tool1', { stream });
            const { result: ask, ups: up1 } = await through(provider, 1, () => d().toolAsk({ model, stream, id: id1 }));
            done(id1);
            checkUpstream(provider, up1[0], { stream });
            assert.deepEqual(toolDefsOf(provider, up1[0].json).map((t) => t.name), ['get_weather'], `${pair}: the tool declared to the provider`);
            const schema = toolDefsOf(provider, up1[0].json)[0].schema;
            assert.equal(String(schema?.type).toLowerCase(), 'object', `${pair}: parameters schema ${JSON.stringify(schema)}`);
            assert.deepEqual(schema.required, ['city'], `${pair}: parameters schema ${JSON.stringify(schema)}`);
            assert.equal(ask.call.name, 'get_weather', pair);
            assert.deepEqual(ask.call.args, WEATHER_ARGS, `${pair}: arguments`);
            assert.equal(ask.stop, STOP[client].tool, `${pair}: stop reason of the tool call`);
            if (client !== 'gemini') assert.ok(typeof ask.call.id === 'string' && ask.call.id.length > 0, `${pair}: a tool call id`);

            const id2 = rid(client, provider, stream ? 'tool2s' : 'tool2', { stream });
            const { result: fin, ups: up2 } = await through(provider, 1, () => d().toolAnswer({ model, stream, id: id2, call: ask.call, turn: ask.turn }));
            done(id2);
            checkUpstream(provider, up2[0], { stream });
            assert.equal(fin.text, AFTER_TOOL, `${pair}: the final answer`);
            assert.equal(fin.stop, STOP[client].text, `${pair}: the final stop reason`);
            // The provider saw its own call and the result placed after it.
            const ex = lastToolExchange(provider, up2[0].json);
            assert.equal(ex.calls.length, 1, `${pair}: the call in the history: ${JSON.stringify(ex)}`);
            assert.equal(ex.calls[0].name, 'get_weather');
            assert.deepEqual(ex.calls[0].args, WEATHER_ARGS, `${pair}: the call's arguments in the history`);
            assert.equal(ex.results.length, 1, `${pair}: one tool result: ${JSON.stringify(ex)}`);
            assert.match(ex.results[0].content, /sunny/, `${pair}: the tool result's content`);
            assert.match(ex.results[0].content, /21/, `${pair}: the tool result's content`);
            if (provider === 'gemini') assert.equal(ex.results[0].name, 'get_weather', `${pair}: functionResponse name`);
            else assert.equal(ex.results[0].id, ex.calls[0].id, `${pair}: the result answers the call's id`);
            // Where client and provider speak the same API, the provider's id passes through.
            if (client === provider && provider !== 'gemini') {
              assert.equal(ask.call.id, ex.calls[0].id, `${pair}: the provider's tool call id passes through`);
            }
            assert.deepEqual(toolDefsOf(provider, up2[0].json).map((t) => t.name), ['get_weather'], `${pair}: the tools are declared again`);
          });
        }

        for (const stream of [false, true]) {
          test(`${pair}: the provider answers 429 (${stream ? 'stream' : 'plain'}) → a 429 in the ${client} error format`, async () => {
            const errModel = `e${stream ? 's' : ''}-${client}-${provider}`;
            const id = rid(client, provider, stream ? 'err429s' : 'err429', { stream, ok: false });
            const { ups } = await through(provider, 1, () => d().fail({ model: errModel, stream, id }));
            done(id);
            checkUpstream(provider, ups[0], { stream, model: ERR_MODEL[provider] });
          });
        }
      }

      test(`${client}: other ways in (${client === 'openai' ? 'tool_choice, stop, temperature mapped; a wrong key' : 'auth variants, raw wire shapes, a wrong key'})`, async () => {
        if (client === 'openai') {
          // A forced tool choice, a stop string and a temperature, in each provider's own terms.
          for (const provider of PROVIDERS) {
            const { result: r, ups } = await through(provider, 1, () => sdk.openai.chat.completions.create({
              model: `m-${provider}`, messages: [{ role: 'user', content: ASK_WEATHER }], tools: TOOLS.openai,
              tool_choice: { type: 'function', function: { name: 'get_weather' } }, stop: 'END', temperature: 0.5,
            }));
            assert.equal(r.choices[0].message.tool_calls?.[0]?.function?.name, 'get_weather', `→ ${provider}`);
            const b = ups[0].json;
            if (provider === 'openai') {
              assert.deepEqual(b.tool_choice, { type: 'function', function: { name: 'get_weather' } });
              assert.equal(b.stop, 'END');
              assert.equal(b.temperature, 0.5);
            } else if (provider === 'anthropic') {
              assert.equal(b.tool_choice?.type, 'tool', JSON.stringify(b.tool_choice));
              assert.equal(b.tool_choice?.name, 'get_weather');
              assert.deepEqual(b.stop_sequences, ['END']);
              assert.equal(b.temperature, 0.5);
            } else {
              assert.equal(b.toolConfig?.functionCallingConfig?.mode, 'ANY', JSON.stringify(b.toolConfig));
              assert.deepEqual(b.toolConfig.functionCallingConfig.allowedFunctionNames, ['get_weather']);
              assert.deepEqual(b.generationConfig?.stopSequences, ['END']);
              assert.equal(b.generationConfig?.temperature, 0.5);
            }
          }
          const res = await api(f, 'POST', '/v1/chat/completions', { token: 'fk-wrong', body: { model: 'm-anthropic', messages: [{ role: 'user', content: PROMPT }] } });
          assert.equal(res.status, 401, res.text);
          assert.equal(typeof res.json?.error?.message, 'string', res.text);
          return;
        }
        if (client === 'anthropic') {
          // x-api-key with the client key, as Anthropic's own clients send it.
          const ok = await through('gemini', 1, () => api(f, 'POST', '/v1/messages', {
            headers: { 'x-api-key': clientKey, 'anthropic-version': '2023-06-01' },
            body: { model: 'm-gemini', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }] },
          }));
          assert.equal(ok.result.status, 200, ok.result.text);
          assert.equal(ok.result.json.type, 'message');
          assert.equal(ok.result.json.role, 'assistant');
          assert.deepEqual(ok.result.json.content, [{ type: 'text', text: 'Hello from gemini' }]);
          // A raw stream: event/data pairs, no [DONE].
          const res = await fetch(f.baseUrl + '/v1/messages', {
            method: 'POST',
            headers: { 'x-api-key': clientKey, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'm-openai', max_tokens: 64, stream: true, messages: [{ role: 'user', content: PROMPT }] }),
          });
          assert.equal(res.status, 200);
          assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
          const raw = await res.text();
          const events = raw.split('\n\n').filter((e) => e.trim() && !e.startsWith(':'));
          for (const e of events) assert.match(e, /^event: [a-z_]+\ndata: \{/, `event shape: ${JSON.stringify(e)}`);
          assert.ok(!raw.includes('[DONE]'), 'no [DONE] in an Anthropic stream');
          assert.match(events.at(-1), /^event: message_stop\n/);
          // A wrong key: 401 in the Anthropic shape.
          const bad = await api(f, 'POST', '/v1/messages', { headers: { 'x-api-key': 'fk-wrong', 'anthropic-version': '2023-06-01' }, body: { model: 'm-gemini', max_tokens: 5, messages: [{ role: 'user', content: PROMPT }] } });
          assert.equal(bad.status, 401, bad.text);
          assert.equal(bad.json?.type, 'error', bad.text);
          assert.equal(bad.json?.error?.type, 'authentication_error', bad.text);
          return;
        }
        // Gemini: key= in the query, Bearer, and a stream without alt=sse (one JSON array).
        const body = { contents: [{ role: 'user', parts: [{ text: PROMPT }] }] };
        for (const [how, url, headers] of [
          ['key= query', `/v1beta/models/m-anthropic:generateContent?key=${clientKey}`, {}],
          ['Bearer', '/v1beta/models/m-anthropic:generateContent', { authorization: `Bearer ${clientKey}` }],
        ]) {
          const { result: res } = await through('anthropic', 1, () => api(f, 'POST', url, { headers, body }));
          assert.equal(res.status, 200, `${how}: ${res.text}`);
          assert.equal(res.json.candidates[0].content.parts.map((p) => p.text).join(''), 'Hello from anthropic', how);
          assert.equal(res.json.candidates[0].finishReason, 'STOP', how);
        }
        const { result: arr } = await through('openai', 1, () => api(f, 'POST', '/v1beta/models/m-openai:streamGenerateContent', { headers: { 'x-goog-api-key': clientKey }, body }));
        assert.equal(arr.status, 200, arr.text);
        assert.ok(Array.isArray(arr.json), `a JSON array: ${arr.text}`);
        assert.equal(arr.json.flatMap((c) => c.candidates?.[0]?.content?.parts ?? []).map((p) => p.text ?? '').join(''), 'Hello from openai');
        assert.equal(arr.json.at(-1).candidates[0].finishReason, 'STOP');
        const sse = await fetch(`${f.baseUrl}/v1beta/models/m-openai:streamGenerateContent?alt=sse`, { method: 'POST', headers: { 'x-goog-api-key': clientKey, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        assert.equal(sse.status, 200);
        assert.match(sse.headers.get('content-type') ?? '', /^text\/event-stream/);
        const raw = await sse.text();
        assert.ok(!raw.includes('[DONE]'), 'no [DONE] in a Gemini stream');
        for (const e of raw.split(/\r?\n\r?\n/).filter((x) => x.trim() && !x.startsWith(':'))) assert.match(e, /^data: \{/, `event shape: ${JSON.stringify(e)}`);
        const bad = await api(f, 'POST', '/v1beta/models/m-openai:generateContent', { headers: { 'x-goog-api-key': 'fk-wrong' }, body });
        assert.ok([400, 401, 403].includes(bad.status), bad.text);
        assert.equal(bad.json?.error?.code, bad.status, bad.text);
        assert.equal(typeof bad.json?.error?.status, 'string', bad.text);
        assert.equal(typeof bad.json?.error?.message, 'string', bad.text);
      });
    });
  }

  // ---- the log ------------------------------------------------------------------

  describe('request_logs', () => {
    test('one row per call: client format, models, stream, status, tokens', async () => {
      const made = calls.filter((c) => c.done);
      assert.ok(made.length > 0, 'no call went through');
      const inList = made.map((c) => `'${c.id}'`).join(',');
      const rows = await waitFor(async () => {
        const r = await sqlRows(f.dbPath, `SELECT * FROM request_logs WHERE id IN (${inList})`);
        return r.length >= made.length ? r : null;
      }, { timeoutMs: 3000, what: `request_logs rows for ${made.length} calls` });
      const byId = new Map(rows.map((r) => [r.id, r]));
      const problems = [];
      for (const c of made) {
        const r = byId.get(c.id);
        const pair = `${c.client} → ${c.provider} ${c.what} (${c.id})`;
        if (!r) { problems.push(`${pair}: no row`); continue; }
        const want = {
          client_format: c.client,
          stream: c.stream ? 1 : 0,
          status_code: c.ok ? 200 : 429,
          provider_name: c.ok ? `p-${c.provider}` : `p-e${c.stream ? 's' : ''}-${c.client}-${c.provider}`,
          provider_model: c.ok ? PROVIDER_MODEL[c.provider] : ERR_MODEL[c.provider],
        };
        if (c.ok) {
          want.outcome = 'ok';
          want.prompt_tokens = TOKENS[c.provider].prompt;
          want.completion_tokens = TOKENS[c.provider].completion;
          want.total_tokens = TOKENS[c.provider].prompt + TOKENS[c.provider].completion;
        }
        for (const [k, v] of Object.entries(want)) if (r[k] !== v) problems.push(`${pair}: ${k} = ${JSON.stringify(r[k])}, want ${JSON.stringify(v)}`);
      }
      assert.deepEqual(problems, []);
    });
  });
});
