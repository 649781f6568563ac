// The fake providers of tests/lib/fakes.js, proved against the official
// SDKs pointed straight at them (no gateway): what each SDK sends must be
// accepted, what it gets back must read the way the real API's answers
// read (text, stop reasons, usage, tool calls), and a request the real API
// refuses must be refused with the real error shape — and recorded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI, Type } from '@google/genai';
import {
  AFTER_TOOL_TEXT, DEFAULT_USAGE, WEATHER_ARGS, lastToolExchange, startAnthropicFake, startGeminiFake, startOpenAIFake,
  systemOf, toolDefsOf, upstreamKey, upstreamModel,
} from '../lib/fakes.js';

const RESULT = { temp_c: 21, sky: 'sunny' };
const afterToolText = AFTER_TOOL_TEXT.join('');

// POST raw JSON with fetch: { status, json, text, headers }.
async function post(url, body, headers = {}) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json, text, headers: r.headers };
}

// The fake refused the last request and recorded why (matching `re`).
function assertRecorded(fake, re, before) {
  const got = fake.violations.slice(before);
  assert.equal(got.length, 1, `one violation recorded: ${JSON.stringify(got.map((v) => v.message))}`);
  assert.match(got[0].message, re);
  assert.equal(fake.requests.at(-1).violation, got[0].message);
}

// ---- Anthropic ----------------------------------------------------------------

describe('fake anthropic, driven by @anthropic-ai/sdk', () => {
  const KEY = 'sk-ant-self-1';
  let fake;
  let client;
  const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const ask = [{ role: 'user', content: 'Weather in Paris?' }];

  before(async () => {
    fake = await startAnthropicFake({ apiKey: KEY });
    // This SDK (1.14) sends `Authorization: Bearer <apiKey>` and
    // `anthropic-version: 2026-10-21` by default; the fake insists on what the
    // gateway sends upstream (x-api-key, 2023-06-01), so say that instead.
    client = new Anthropic({
      apiKey: KEY, baseURL: fake.url, maxRetries: 0, timeout: 10_000,
      defaultHeaders: { 'x-api-key': KEY, authorization: null, 'anthropic-version': '2023-06-01' },
    });
  });
  after(async () => { await fake?.close(); });

  test('text, not streamed: content, end_turn, usage with cache tokens, the model echoed', async () => {
    const msg = await client.messages.create({ model: 'claude-self', max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'claude-self');
    assert.deepEqual(msg.content, [{ type: 'text', text: 'Hello from anthropic' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.deepEqual(msg.usage, DEFAULT_USAGE.anthropic);
    const got = fake.requests.at(-1);
    assert.equal(got.url, '/v1/messages');
    assert.equal(upstreamKey('anthropic', got), KEY);
    assert.equal(upstreamModel('anthropic', got), 'claude-self');
    assert.equal(systemOf('anthropic', got.json), 'Be brief.');
    assert.equal(got.headers.authorization, undefined);
    assert.deepEqual(fake.violations, []);
  });

  test('text, streamed: the documented event sequence, text deltas, stop reason and usage', async () => {
    const stream = client.messages.stream({ model: 'claude-self', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const types = [];
    const texts = [];
    let startUsage;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'message_start') startUsage = ev.message.usage;
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') texts.push(ev.delta.text);
    }
    const final = await stream.finalMessage();
    assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
      'ping is not surfaced by the SDK iterator');
    assert.deepEqual(texts, ['Hello', ' from ', 'anthropic']);
    assert.equal(startUsage.input_tokens, 20, 'message_start carries the real input_tokens');
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.content[0].text, 'Hello from anthropic');
    assert.equal(final.usage.input_tokens, 20);
    assert.equal(final.usage.cache_read_input_tokens, 5);
    assert.equal(final.usage.cache_creation_input_tokens, 3);
    assert.equal(final.usage.output_tokens, 9, 'output_tokens from message_delta');
    const raw = await fetch(fake.url + '/v1/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEY, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'm', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'x' }] }),
    }).then((r) => r.text());
    assert.match(raw, /^event: message_start\ndata: /);
    assert.match(raw, /event: ping\ndata: \{"type":"ping"\}\n\n/);
    assert.ok(raw.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n'), raw.slice(-120));
    assert.ok(!raw.includes('[DONE]'));
    assert.deepEqual(fake.violations, []);
  });

  test('tool call round trip, not streamed: text then tool_use, tool_use stop; the tool_result turn is accepted', async () => {
    const first = await client.messages.create({ model: 'claude-self', max_tokens: 200, tools, messages: ask });
    assert.equal(first.stop_reason, 'tool_use');
    assert.equal(first.content[0].type, 'text');
    const use = first.content.find((b) => b.type === 'tool_use');
    assert.ok(use, JSON.stringify(first.content));
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, WEATHER_ARGS);
    assert.match(use.id, /^[a-zA-Z0-9_-]+$/);
    const second = await client.messages.create({
      model: 'claude-self', max_tokens: 200, tools,
      messages: [...ask, { role: 'assistant', content: first.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: JSON.stringify(RESULT) }] }],
    });
    assert.equal(second.stop_reason, 'end_turn');
    assert.equal(second.content[0].text, afterToolText);
    const ex = lastToolExchange('anthropic', fake.requests.at(-1).json);
    assert.deepEqual(ex.calls, [{ id: use.id, name: 'get_weather', args: WEATHER_ARGS }]);
    assert.deepEqual(ex.results, [{ id: use.id, content: JSON.stringify(RESULT) }]);
    assert.deepEqual(toolDefsOf('anthropic', fake.requests.at(-1).json).map((t) => t.name), ['get_weather']);
    assert.deepEqual(fake.violations, []);
  });

  test('tool call round trip, streamed: input_json_delta fragments assemble into the input', async () => {
    const stream = client.messages.stream({ model: 'claude-self', max_tokens: 200, tools, messages: ask });
    const fragments = [];
    for await (const ev of stream) if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') fragments.push(ev.delta.partial_json);
    const first = await stream.finalMessage();
    assert.ok(fragments.filter(Boolean).length >= 3, `several fragments: ${JSON.stringify(fragments)}`);
    assert.equal(first.stop_reason, 'tool_use');
    const use = first.content.find((b) => b.type === 'tool_use');
    assert.deepEqual(use.input, WEATHER_ARGS);
    const s2 = client.messages.stream({
      model: 'claude-self', max_tokens: 200, tools,
      messages: [...ask, { role: 'assistant', content: first.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: [{ type: 'text', text: JSON.stringify(RESULT) }] }, { type: 'text', text: 'and?' }] }],
    });
    const second = await s2.finalMessage();
    assert.equal(second.content[0].text, afterToolText);
    assert.equal(second.stop_reason, 'end_turn');
    assert.deepEqual(fake.violations, []);
  });

  test('max_tokens of 3 or less: the first piece and stop_reason max_tokens', async () => {
    const msg = await client.messages.create({ model: 'claude-self', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.stop_reason, 'max_tokens');
    assert.equal(msg.content[0].text, 'Hello');
  });

  test('malformed requests: 400 invalid_request_error in the Anthropic shape, recorded', async () => {
    const h = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };
    const base = { model: 'claude-self', max_tokens: 50 };
    const use = { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } };
    const result = { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' };
    const cases = [
      ['missing max_tokens', { model: 'claude-self', messages: ask }, /max_tokens: Field required/],
      ['max_tokens zero', { ...base, max_tokens: 0, messages: ask }, /max_tokens/],
      ['no messages', { ...base, messages: [] }, /at least one message/],
      ['non-alternating roles', { ...base, messages: [...ask, { role: 'user', content: 'again' }] }, /roles must alternate/],
      ['first message assistant', { ...base, messages: [{ role: 'assistant', content: 'hi' }, ...ask] }, /first message/],
      ['a system role in messages', { ...base, messages: [{ role: 'system', content: 'x' }, ...ask] }, /role/],
      ['empty text block', { ...base, messages: [{ role: 'user', content: [{ type: 'text', text: '' }] }] }, /non-empty/],
      ['unknown block type', { ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, /does not match any of the expected tags/],
      ['image without a source', { ...base, messages: [{ role: 'user', content: [{ type: 'image' }] }] }, /source/],
      ['unknown top-level field', { ...base, messages: ask, stream_options: { include_usage: true } }, /stream_options: Extra inputs are not permitted/],
      ['tool_use in a user turn', { ...base, tools, messages: [{ role: 'user', content: [use] }] }, /only allowed in assistant/],
      ['tool_result without its tool_use', { ...base, tools, messages: [...ask, { role: 'assistant', content: 'ok' }, { role: 'user', content: [result] }] }, /unexpected `tool_use_id`/],
      ['tool_use without its tool_result', { ...base, tools, messages: [...ask, { role: 'assistant', content: [use] }, { role: 'user', content: 'well?' }] }, /without `tool_result` blocks/],
      ['tool_result after text', { ...base, tools, messages: [...ask, { role: 'assistant', content: [use] }, { role: 'user', content: [{ type: 'text', text: 'here' }, result] }] }, /must come first/],
      ['tool_use without tools', { ...base, messages: [...ask, { role: 'assistant', content: [use] }, { role: 'user', content: [result] }] }, /must define tools/],
      ['tool_use id with a colon', { ...base, tools, messages: [...ask, { role: 'assistant', content: [{ ...use, id: 'call:1' }] }, { role: 'user', content: [{ ...result, tool_use_id: 'call:1' }] }] }, /pattern/],
      ['tool_use input a string', { ...base, tools, messages: [...ask, { role: 'assistant', content: [{ ...use, input: '{"city":"Paris"}' }] }, { role: 'user', content: [result] }] }, /input/],
      ['tool without input_schema', { ...base, tools: [{ name: 'get_weather' }], messages: ask }, /input_schema: Field required/],
      ['tool schema type OBJECT', { ...base, tools: [{ name: 'x', input_schema: { type: 'OBJECT' } }], messages: ask }, /input_schema.type/],
      ['nested schema type STRING', { ...base, tools: [{ name: 'x', input_schema: { type: 'object', properties: { city: { type: 'STRING' } } } }], messages: ask }, /not a valid JSON Schema type/],
      ['OpenAI-style tool', { ...base, tools: [{ type: 'function', function: { name: 'x' } }], messages: ask }, /name/],
      ['tool_choice without tools', { ...base, tool_choice: { type: 'auto' }, messages: ask }, /tool_choice may only be specified/],
      ['tool_choice tool without name', { ...base, tools, tool_choice: { type: 'tool' }, messages: ask }, /tool_choice.tool.name/],
      ['system as an object', { ...base, system: { text: 'x' }, messages: ask }, /system/],
      ['trailing whitespace in a final assistant turn', { ...base, messages: [...ask, { role: 'assistant', content: 'Sure ' }] }, /trailing whitespace/],
    ];
    for (const [what, body, re] of cases) {
      const n = fake.violations.length;
      const res = await post(fake.url + '/v1/messages', body, h);
      assert.equal(res.status, 400, `${what}: ${res.text}`);
      assert.equal(res.json?.type, 'error', `${what}: ${res.text}`);
      assert.equal(res.json?.error?.type, 'invalid_request_error', `${what}: ${res.text}`);
      assert.match(res.json.error.message, re, what);
      assertRecorded(fake, re, n);
    }
    // Through the SDK: a BadRequestError carrying the same body.
    const n = fake.violations.length;
    const err = await client.messages.create({ model: 'claude-self', messages: ask }).catch((e) => e);
    assert.ok(err instanceof Anthropic.BadRequestError, String(err));
    assert.equal(err.status, 400);
    assert.equal(err.error.type, 'error');
    assert.equal(err.error.error.type, 'invalid_request_error');
    assertRecorded(fake, /max_tokens/, n);
    fake.violations.length = 0;
  });

  test('headers: x-api-key and anthropic-version 2023-06-01 are required; the SDK defaults (Bearer, its own version) are refused', async () => {
    let n = fake.violations.length;
    const dflt = new Anthropic({ apiKey: KEY, baseURL: fake.url, maxRetries: 0 });
    const err = await dflt.messages.create({ model: 'claude-self', max_tokens: 5, messages: ask }).catch((e) => e);
    assert.ok(err instanceof Anthropic.AuthenticationError, String(err));
    assert.equal(err.error.error.type, 'authentication_error');
    assert.equal(fake.requests.at(-1).headers.authorization, `Bearer ${KEY}`, 'this SDK sends the key as a Bearer token');
    assert.equal(fake.requests.at(-1).headers['anthropic-version'], '2026-10-21');
    assertRecorded(fake, /x-api-key header is required/, n);

    n = fake.violations.length;
    let res = await post(fake.url + '/v1/messages', { model: 'm', max_tokens: 5, messages: ask }, { 'x-api-key': KEY });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.type, 'invalid_request_error');
    assertRecorded(fake, /anthropic-version/, n);

    n = fake.violations.length;
    res = await post(fake.url + '/v1/messages', { model: 'm', max_tokens: 5, messages: ask }, { 'x-api-key': 'sk-wrong', 'anthropic-version': '2023-06-01' });
    assert.equal(res.status, 401);
    assert.deepEqual(Object.keys(res.json), ['type', 'error']);
    assert.equal(res.json.error.type, 'authentication_error');
    assertRecorded(fake, /invalid x-api-key/, n);
    fake.violations.length = 0;
  });

  test('scripted errors by model name: 429 rate_limit_error, 529 overloaded_error, 500 api_error', async () => {
    const want = { 429: ['rate_limit_error', Anthropic.RateLimitError], 529: ['overloaded_error', Anthropic.APIError], 500: ['api_error', Anthropic.InternalServerError] };
    for (const [status, [type, cls]] of Object.entries(want)) {
      for (const stream of [false, true]) {
        const err = await client.messages.create({ model: `claude-err-${status}`, max_tokens: 5, messages: ask, stream }).catch((e) => e);
        assert.ok(err instanceof cls, `${status}: ${err}`);
        assert.equal(err.status, Number(status));
        assert.equal(err.error.type, 'error');
        assert.equal(err.error.error.type, type);
      }
    }
    assert.equal(fake.violations.length, 0, 'a scripted error is no violation');
  });

  test('mid-stream error event: the SDK throws after the first delta', async () => {
    const mid = await startAnthropicFake({ midStreamError: true });
    try {
      const c = new Anthropic({ apiKey: 'k', baseURL: mid.url, maxRetries: 0, defaultHeaders: { 'x-api-key': 'k', authorization: null, 'anthropic-version': '2023-06-01' } });
      const texts = [];
      const err = await (async () => {
        const s = await c.messages.create({ model: 'm', max_tokens: 50, stream: true, messages: ask });
        for await (const ev of s) if (ev.type === 'content_block_delta') texts.push(ev.delta.text);
      })().catch((e) => e);
      assert.deepEqual(texts, ['Hello']);
      assert.ok(err instanceof Anthropic.APIError, String(err));
      assert.match(String(err.message), /Overloaded|overloaded/);
    } finally { await mid.close(); }
  });
});

// ---- Gemini ---------------------------------------------------------------------

describe('fake gemini, driven by @google/genai', () => {
  const KEY = 'AIza-self-gemini';
  let fake;
  let ai;
  const tools = [{ functionDeclarations: [{ name: 'get_weather', description: 'Weather of a city', parameters: { type: Type.OBJECT, properties: { city: { type: Type.STRING } }, required: ['city'] } }] }];
  const ask = [{ role: 'user', parts: [{ text: 'Weather in Paris?' }] }];
  const textOf = (r) => (r.candidates?.[0]?.content?.parts ?? []).filter((p) => typeof p.text === 'string' && !p.thought).map((p) => p.text).join('');

  before(async () => {
    fake = await startGeminiFake({ apiKey: KEY });
    ai = new GoogleGenAI({ apiKey: KEY, httpOptions: { baseUrl: fake.url } });
  });
  after(async () => { await fake?.close(); });

  test('text, not streamed: the URL, the key header, text, STOP, usageMetadata', async () => {
    const r = await ai.models.generateContent({ model: 'gemini-self-2.5', contents: 'hi', config: { systemInstruction: 'Be brief.', maxOutputTokens: 100, temperature: 0.2 } });
    assert.equal(textOf(r), 'Hello from gemini');
    assert.equal(r.candidates[0].finishReason, 'STOP');
    assert.equal(r.usageMetadata.promptTokenCount, 13);
    assert.equal(r.usageMetadata.candidatesTokenCount, 5);
    assert.equal(r.usageMetadata.thoughtsTokenCount, 2);
    assert.equal(r.usageMetadata.totalTokenCount, 20);
    assert.equal(r.modelVersion, 'gemini-self-2.5');
    const got = fake.requests.at(-1);
    assert.equal(got.url, '/v1beta/models/gemini-self-2.5:generateContent', 'no key= in the URL');
    assert.equal(upstreamKey('gemini', got), KEY);
    assert.equal(upstreamModel('gemini', got), 'gemini-self-2.5');
    assert.equal(systemOf('gemini', got.json), 'Be brief.');
    assert.deepEqual(got.json.systemInstruction, { parts: [{ text: 'Be brief.' }], role: 'user' }, 'the SDK gives systemInstruction role user');
    assert.deepEqual(got.json.generationConfig, { maxOutputTokens: 100, temperature: 0.2 });
    assert.deepEqual(fake.violations, []);
  });

  test('text, streamed: alt=sse, \\r\\n\\r\\n events, usage and finishReason on the last chunk, one request only', async () => {
    const before = fake.requests.length;
    const chunks = [];
    for await (const c of await ai.models.generateContentStream({ model: 'gemini-self-2.5', contents: 'hi' })) chunks.push(c);
    assert.equal(fake.requests.length, before + 1, 'one upstream request for the stream');
    assert.equal(fake.requests.at(-1).url, '/v1beta/models/gemini-self-2.5:streamGenerateContent?alt=sse');
    assert.deepEqual(chunks.map(textOf), ['Hello', ' from ', 'gemini']);
    const last = chunks.at(-1);
    assert.equal(last.candidates[0].finishReason, 'STOP');
    assert.equal(last.usageMetadata.promptTokenCount, 13);
    assert.equal(last.usageMetadata.candidatesTokenCount, 5);
    assert.equal(last.usageMetadata.totalTokenCount, 20);
    assert.equal(chunks[0].candidates[0].finishReason, undefined);
    assert.equal(chunks[0].usageMetadata.promptTokenCount, 13, 'every chunk carries the running usage');
    const raw = await fetch(`${fake.url}/v1beta/models/g:streamGenerateContent?alt=sse`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': KEY }, body: JSON.stringify({ contents: ask.slice(0, 1) }) }).then((r) => r.text());
    assert.match(raw, /^data: \{.*\}\r\n\r\ndata: /s);
    assert.ok(!raw.includes('[DONE]'));
    assert.deepEqual(fake.violations, []);
  });

  test('without alt=sse the stream is one JSON array', async () => {
    const res = await post(`${fake.url}/v1beta/models/g:streamGenerateContent`, { contents: ask }, { 'x-goog-api-key': KEY });
    assert.equal(res.status, 200, res.text);
    assert.ok(Array.isArray(res.json), res.text);
    assert.equal(res.json.map((c) => c.candidates[0].content.parts[0].text).join(''), 'Hello from gemini');
    assert.equal(res.json.at(-1).candidates[0].finishReason, 'STOP');
  });

  test('function call round trip, not streamed: whole functionCall, STOP; the functionResponse turn is accepted', async () => {
    const first = await ai.models.generateContent({ model: 'gemini-self-2.5', contents: ask, config: { tools } });
    assert.equal(first.candidates[0].finishReason, 'STOP');
    assert.deepEqual(first.functionCalls, [{ name: 'get_weather', args: WEATHER_ARGS }]);
    const sent = fake.requests.at(-1).json;
    assert.deepEqual(sent.tools[0].functionDeclarations[0].parameters, { type: 'OBJECT', properties: { city: { type: 'STRING' } }, required: ['city'] }, 'the SDK sends upper-case schema types');
    const second = await ai.models.generateContent({
      model: 'gemini-self-2.5', config: { tools },
      contents: [...ask, first.candidates[0].content, { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: RESULT } }] }],
    });
    assert.equal(textOf(second), afterToolText);
    assert.equal(second.candidates[0].finishReason, 'STOP');
    const ex = lastToolExchange('gemini', fake.requests.at(-1).json);
    assert.deepEqual(ex.calls, [{ id: undefined, name: 'get_weather', args: WEATHER_ARGS }]);
    assert.deepEqual(ex.results, [{ id: undefined, name: 'get_weather', content: JSON.stringify(RESULT) }]);
    assert.deepEqual(fake.violations, []);
  });

  test('function call round trip, streamed: the call arrives whole in one chunk', async () => {
    const chunks = [];
    for await (const c of await ai.models.generateContentStream({ model: 'gemini-self-2.5', contents: ask, config: { tools } })) chunks.push(c);
    const calls = chunks.flatMap((c) => c.functionCalls ?? []);
    assert.deepEqual(calls, [{ name: 'get_weather', args: WEATHER_ARGS }]);
    assert.equal(chunks.at(-1).candidates[0].finishReason, 'STOP');
    const model = { role: 'model', parts: chunks.flatMap((c) => c.candidates[0].content.parts) };
    const out = [];
    for await (const c of await ai.models.generateContentStream({
      model: 'gemini-self-2.5', config: { tools },
      contents: [...ask, model, { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: RESULT } }] }],
    })) out.push(c);
    assert.equal(out.map(textOf).join(''), afterToolText);
    assert.deepEqual(fake.violations, []);
  });

  test('thoughtSignature (opt-in): given on the functionCall part, required back on it', async () => {
    const sig = await startGeminiFake({ thoughtSignature: 'c2lnLTEyMw==' });
    try {
      const c = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: sig.url } });
      const first = await c.models.generateContent({ model: 'g', contents: ask, config: { tools } });
      const content = first.candidates[0].content;
      assert.equal(content.parts[0].thoughtSignature, 'c2lnLTEyMw==');
      const fr = { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: RESULT } }] };
      const ok = await c.models.generateContent({ model: 'g', config: { tools }, contents: [...ask, content, fr] });
      assert.equal(textOf(ok), afterToolText);
      const stripped = { role: 'model', parts: [{ functionCall: content.parts[0].functionCall }] };
      const err = await c.models.generateContent({ model: 'g', config: { tools }, contents: [...ask, stripped, fr] }).catch((e) => e);
      assert.equal(err.status, 400, String(err));
      assert.match(sig.violations[0].message, /thought_signature/);
    } finally { await sig.close(); }
  });

  test('maxOutputTokens of 3 or less: MAX_TOKENS', async () => {
    const r = await ai.models.generateContent({ model: 'g', contents: 'hi', config: { maxOutputTokens: 3 } });
    assert.equal(r.candidates[0].finishReason, 'MAX_TOKENS');
    assert.equal(textOf(r), 'Hello');
  });

  test('malformed requests: 400 INVALID_ARGUMENT in the Gemini shape, recorded', async () => {
    const fc = { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] };
    const fr = { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: RESULT } }] };
    const decl = (parameters) => [{ functionDeclarations: [{ name: 'get_weather', parameters }] }];
    const cases = [
      ['no contents', {}, /contents is not specified/],
      ['empty contents', { contents: [] }, /contents is not specified/],
      ['role assistant', { contents: [{ role: 'assistant', parts: [{ text: 'x' }] }] }, /valid role/],
      ['empty parts', { contents: [{ role: 'user', parts: [] }] }, /must not be empty/],
      ['empty text part', { contents: [{ role: 'user', parts: [{ text: '' }] }] }, /must not be empty/],
      ['unknown part kind', { contents: [{ role: 'user', parts: [{ image_url: 'x' }] }] }, /Unknown name "image_url"/],
      ['two kinds in one part', { contents: [{ role: 'user', parts: [{ text: 'a', inlineData: { mimeType: 'image/png', data: 'AA==' } }] }] }, /oneof/],
      ['inlineData without mimeType', { contents: [{ role: 'user', parts: [{ inlineData: { data: 'AA==' } }] }] }, /mimeType/],
      ['functionCall in a user turn', { contents: [{ role: 'user', parts: [{ functionCall: { name: 'f', args: {} } }] }] }, /only allowed in model turns/],
      ['functionCall args a string', { contents: [...ask, { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: '{"city":"Paris"}' } }] }, fr] }, /args/],
      ['functionResponse without a call', { contents: [...ask, { role: 'model', parts: [{ text: 'ok' }] }, fr] }, /function response turn comes immediately after a function call turn/],
      ['functionResponse name mismatch', { contents: [...ask, fc, { role: 'user', parts: [{ functionResponse: { name: 'other', response: {} } }] }] }, /does not match/],
      ['functionResponse response a string', { contents: [...ask, fc, { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: 'sunny' } }] }] }, /Struct/],
      ['two responses for one call', { contents: [...ask, fc, { role: 'user', parts: [fr.parts[0], fr.parts[0]] }] }, /number of function response parts/],
      ['function call turn after a model turn', { contents: [...ask, { role: 'model', parts: [{ text: 'hm' }] }, fc, fr] }, /function call turn comes immediately after a user turn/],
      ['unknown top-level field', { contents: ask, model: 'g' }, /Unknown name "model"/],
      ['snake_case field', { contents: ask, generation_config: {} }, /Unknown name "generation_config"/],
      ['unknown generationConfig key', { contents: ask, generationConfig: { max_tokens: 5 } }, /Unknown name "max_tokens"/],
      ['maxOutputTokens zero', { contents: ask, generationConfig: { maxOutputTokens: 0 } }, /max_output_tokens/],
      ['systemInstruction a string', { contents: ask, systemInstruction: 'be nice' }, /system_instruction/],
      ['additionalProperties in parameters', { contents: ask, tools: decl({ type: 'object', properties: { city: { type: 'string' } }, additionalProperties: false }) }, /Unknown name "additionalProperties"/],
      ['$schema in parameters', { contents: ask, tools: decl({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' }) }, /Unknown name "\$schema"/],
      ['bad schema type', { contents: ask, tools: decl({ type: 'dict' }) }, /Type/],
      ['bad function name', { contents: ask, tools: [{ functionDeclarations: [{ name: '1 get weather' }] }] }, /Invalid function name/],
      ['OpenAI-style tool', { contents: ask, tools: [{ type: 'function', function: { name: 'x' } }] }, /Unknown name "type"/],
      ['bad mode', { contents: ask, tools: decl({ type: 'object' }), toolConfig: { functionCallingConfig: { mode: 'REQUIRED' } } }, /mode/],
      ['allowedFunctionNames with AUTO', { contents: ask, tools: decl({ type: 'object' }), toolConfig: { functionCallingConfig: { mode: 'AUTO', allowedFunctionNames: ['get_weather'] } } }, /only allowed when mode is ANY/],
    ];
    for (const [what, body, re] of cases) {
      const n = fake.violations.length;
      const res = await post(`${fake.url}/v1beta/models/g:generateContent`, body, { 'x-goog-api-key': KEY });
      assert.equal(res.status, 400, `${what}: ${res.text}`);
      assert.deepEqual(Object.keys(res.json?.error ?? {}), ['code', 'message', 'status'], `${what}: ${res.text}`);
      assert.equal(res.json.error.code, 400);
      assert.equal(res.json.error.status, 'INVALID_ARGUMENT');
      assert.match(res.json.error.message, re, what);
      assertRecorded(fake, re, n);
    }
    // Through the SDK: an ApiError with the status; its message is the JSON body.
    const n = fake.violations.length;
    const err = await ai.models.generateContent({ model: 'g', contents: [{ role: 'assistant', parts: [{ text: 'x' }] }] }).catch((e) => e);
    assert.equal(err.name, 'ApiError', String(err));
    assert.equal(err.status, 400);
    assert.equal(JSON.parse(err.message).error.status, 'INVALID_ARGUMENT');
    assertRecorded(fake, /valid role/, n);
    fake.violations.length = 0;
  });

  test('the key in the URL fails loudly; a missing key is 403 PERMISSION_DENIED; a wrong one 400', async () => {
    let n = fake.violations.length;
    let res = await post(`${fake.url}/v1beta/models/g:generateContent?key=${KEY}`, { contents: ask }, { 'x-goog-api-key': KEY });
    assert.equal(res.status, 400);
    assert.match(res.json.error.message, /API key was sent in the URL/);
    assertRecorded(fake, /\?key=/, n);
    n = fake.violations.length;
    res = await post(`${fake.url}/v1beta/models/g:streamGenerateContent?alt=sse&key=${KEY}`, { contents: ask });
    assert.equal(res.status, 400);
    assertRecorded(fake, /URL/, n);
    n = fake.violations.length;
    res = await post(`${fake.url}/v1beta/models/g:generateContent`, { contents: ask }, { authorization: `Bearer ${KEY}` });
    assert.equal(res.status, 403);
    assert.equal(res.json.error.status, 'PERMISSION_DENIED');
    assertRecorded(fake, /unregistered callers/, n);
    n = fake.violations.length;
    res = await post(`${fake.url}/v1beta/models/g:generateContent`, { contents: ask }, { 'x-goog-api-key': 'AIza-wrong' });
    assert.equal(res.status, 400);
    assertRecorded(fake, /API key not valid/, n);
    fake.violations.length = 0;
  });

  test('scripted errors by model name: 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 500 INTERNAL', async () => {
    for (const [status, st] of [[429, 'RESOURCE_EXHAUSTED'], [503, 'UNAVAILABLE'], [500, 'INTERNAL']]) {
      const err = await ai.models.generateContent({ model: `gemini-err-${status}`, contents: 'hi' }).catch((e) => e);
      assert.equal(err.status, status, String(err));
      assert.deepEqual(JSON.parse(err.message).error, { code: status, message: JSON.parse(err.message).error.message, status: st });
      const serr = await (async () => { for await (const c of await ai.models.generateContentStream({ model: `gemini-err-${status}`, contents: 'hi' })) assert.ok(c); })().catch((e) => e);
      assert.equal(serr?.status, status, String(serr));
    }
    assert.equal(fake.violations.length, 0);
  });
});

// ---- OpenAI -----------------------------------------------------------------------

describe('fake openai (tool-aware), driven by openai', () => {
  const KEY = 'sk-self-openai';
  let fake;
  let client;
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } } }];
  const ask = [{ role: 'user', content: 'Weather in Paris?' }];

  before(async () => {
    fake = await startOpenAIFake({ apiKey: KEY });
    client = new OpenAI({ apiKey: KEY, baseURL: fake.url + '/v1', maxRetries: 0, timeout: 10_000 });
  });
  after(async () => { await fake?.close(); });

  test('text, not streamed and streamed with usage', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-self', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0].message.content, 'Hello from openai');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual(r.usage, DEFAULT_USAGE.openai);
    assert.equal(fake.requests.at(-1).url, '/v1/chat/completions');
    assert.equal(upstreamKey('openai', fake.requests.at(-1)), KEY);
    assert.equal(systemOf('openai', fake.requests.at(-1).json), 'Be brief.');
    const chunks = [];
    for await (const c of await client.chat.completions.create({ model: 'gpt-self', messages: ask, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Hello from openai');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
    assert.deepEqual(chunks.at(-1).usage, DEFAULT_USAGE.openai);
    const short = await client.chat.completions.create({ model: 'gpt-self', messages: ask, max_tokens: 2 });
    assert.equal(short.choices[0].finish_reason, 'length');
    assert.deepEqual(fake.violations, []);
  });

  test('tool call round trip, not streamed and streamed', async () => {
    const first = await client.chat.completions.create({ model: 'gpt-self', messages: ask, tools });
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    const call = first.choices[0].message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), WEATHER_ARGS);
    const second = await client.chat.completions.create({
      model: 'gpt-self', tools,
      messages: [...ask, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify(RESULT) }],
    });
    assert.equal(second.choices[0].message.content, afterToolText);
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.deepEqual(lastToolExchange('openai', fake.requests.at(-1).json), { calls: [{ id: call.id, name: 'get_weather', args: WEATHER_ARGS }], results: [{ id: call.id, content: JSON.stringify(RESULT) }] });

    const chunks = [];
    for await (const c of await client.chat.completions.create({ model: 'gpt-self', messages: ask, tools, stream: true })) chunks.push(c);
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.ok(deltas.length >= 3, JSON.stringify(deltas));
    assert.ok(deltas.every((d) => d.index === 0));
    const args = deltas.map((d) => d.function?.arguments ?? '').join('');
    assert.deepEqual(JSON.parse(args), WEATHER_ARGS);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
    const id = deltas[0].id;
    const out = [];
    for await (const c of await client.chat.completions.create({
      model: 'gpt-self', tools, stream: true,
      messages: [...ask, { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: args } }] }, { role: 'tool', tool_call_id: id, content: JSON.stringify(RESULT) }],
    })) out.push(c);
    assert.equal(out.map((c) => c.choices[0]?.delta?.content ?? '').join(''), afterToolText);
    assert.deepEqual(fake.violations, []);
  });

  test('malformed requests: 400 in the OpenAI shape, recorded', async () => {
    const call = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } };
    const asst = { role: 'assistant', content: null, tool_calls: [call] };
    const cases = [
      ['no messages', { model: 'g', messages: [] }, /empty array/],
      ['unknown argument', { model: 'g', messages: ask, max_output_tokens: 5 }, /Unrecognized request argument supplied: max_output_tokens/],
      ['role model', { model: 'g', messages: [{ role: 'model', content: 'x' }] }, /Supported values/],
      ['tool message without tool_calls before it', { model: 'g', tools, messages: [...ask, { role: 'tool', tool_call_id: 'call_1', content: 'x' }] }, /must be a response to a preceeding message with 'tool_calls'/],
      ['tool message with an unknown id', { model: 'g', tools, messages: [...ask, asst, { role: 'tool', tool_call_id: 'call_2', content: 'x' }] }, /not found/],
      ['unanswered tool call', { model: 'g', tools, messages: [...ask, asst, { role: 'user', content: 'well?' }] }, /did not have response messages: call_1/],
      ['arguments an object', { model: 'g', tools, messages: [...ask, { ...asst, tool_calls: [{ ...call, function: { name: 'get_weather', arguments: { city: 'Paris' } } }] }, { role: 'tool', tool_call_id: 'call_1', content: 'x' }] }, /expected a string, but got object/],
      ['assistant without content or tool_calls', { model: 'g', messages: [...ask, { role: 'assistant' }, { role: 'user', content: 'x' }] }, /content is required/],
      ['tool_choice without tools', { model: 'g', messages: ask, tool_choice: 'auto' }, /only allowed when 'tools' are specified/],
      ['parameters type OBJECT', { model: 'g', messages: ask, tools: [{ type: 'function', function: { name: 'x', parameters: { type: 'OBJECT' } } }] }, /type: "object"/],
      ['Anthropic-style tool', { model: 'g', messages: ask, tools: [{ name: 'x', input_schema: { type: 'object' } }] }, /tools\[0\]\.type/],
      ['stream_options without stream', { model: 'g', messages: ask, stream_options: { include_usage: true } }, /only allowed when 'stream' is enabled/],
    ];
    for (const [what, body, re] of cases) {
      const n = fake.violations.length;
      const res = await post(fake.url + '/v1/chat/completions', body, { authorization: `Bearer ${KEY}` });
      assert.equal(res.status, 400, `${what}: ${res.text}`);
      assert.deepEqual(Object.keys(res.json?.error ?? {}), ['message', 'type', 'param', 'code'], `${what}: ${res.text}`);
      assert.equal(res.json.error.type, 'invalid_request_error');
      assert.match(res.json.error.message, re, what);
      assertRecorded(fake, re, n);
    }
    const n = fake.violations.length;
    const res = await post(fake.url + '/v1/chat/completions', { model: 'g', messages: ask }, { 'x-api-key': KEY });
    assert.equal(res.status, 401);
    assertRecorded(fake, /API key/, n);
    fake.violations.length = 0;
  });

  test('scripted error: 429 rate_limit_exceeded', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-err-429', messages: ask }).catch((e) => e);
    assert.ok(err instanceof OpenAI.RateLimitError, String(err));
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.equal(fake.violations.length, 0);
  });
});
