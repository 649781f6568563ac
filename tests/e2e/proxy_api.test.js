// The OpenAI-compatible proxy seen through the official `openai` SDK:
// chat completions (plain and streamed), embeddings, the model list,
// client-key authentication and bad input.  One fake upstream plays the
// provider and records what the gateway sent it, so each test checks both
// sides: what the client got and what reached the provider.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { api, createRow, login, show, stopClean, waitForModels } from '../lib/admin.js';
import { chatChunk, openaiHandler, startFakeUpstream, startFusion, writeSse } from '../lib/harness.js';

const ADMIN_PASSWORD = 'proxy-api-admin-password';
const UPSTREAM_KEY = 'sk-upstream-A';

// An error answer in the OpenAI format, from fetch or from api().
function assertOpenAIError(res, status, what) {
  assert.equal(res.status, status, `${what}: want ${status}, got ${res.status} ${res.text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${what}: content-type`);
  const e = res.json?.error;
  assert.ok(e && typeof e === 'object', `${what}: no error object: ${res.text}`);
  assert.equal(typeof e.message, 'string', `${what}: message: ${res.text}`);
  assert.ok(e.message.length > 0, `${what}: empty message`);
  assert.equal(typeof e.type, 'string', `${what}: type: ${res.text}`);
  assert.ok('code' in e, `${what}: code missing: ${res.text}`);
  return e;
}

// The SDK call must throw an APIError with this status and an OpenAI-format error.
async function assertSdkError(promise, status, what) {
  let err;
  try {
    const r = await promise;
    assert.fail(`${what}: expected ${status}, the call succeeded: ${JSON.stringify(r).slice(0, 300)}`);
  } catch (e) { err = e; }
  assert.ok(err instanceof OpenAI.APIError, `${what}: not an APIError: ${err?.stack ?? err}`);
  assert.equal(err.status, status, `${what}: ${err.message}`);
  assert.equal(typeof err.error?.message, 'string', `${what}: error body ${JSON.stringify(err.error)}`);
  assert.equal(typeof err.error?.type, 'string', `${what}: error body ${JSON.stringify(err.error)}`);
  assert.ok(err.error && 'code' in err.error, `${what}: error body ${JSON.stringify(err.error)}`);
  return err;
}

describe('proxy: OpenAI API through the SDK', () => {
  let f;
  let token;
  let up;
  let provider;
  const keys = {};
  const client = (apiKey = keys.main, opts = {}) => new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey, maxRetries: 0, timeout: 10_000, ...opts });
  const messages = [{ role: 'user', content: 'Say hello' }];
  const upCalls = () => up.requests.length;
  const lastUp = () => up.requests[up.requests.length - 1];

  before(async () => {
    up = await startFakeUpstream(openaiHandler({ label: 'A' }));
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    provider = await createRow(f, token, '/api/admin/providers', { name: 'prov-a', type: 'openai', base_url: up.url + '/v1', api_key: UPSTREAM_KEY });
    const off = await createRow(f, token, '/api/admin/providers', { name: 'prov-off', type: 'openai', base_url: up.url + '/v1', api_key: 'sk-upstream-off', enabled: false });
    for (const m of [
      { name: 'gpt-3.5-turbo', provider_id: provider.id },
      { name: 'text-embedding-3-small', provider_id: provider.id },
      { name: 'list-b', provider_id: provider.id, provider_model: 'b-upstream' },
      { name: 'list-off', provider_id: provider.id, enabled: false },
      { name: 'on-disabled-provider', provider_id: off.id },
    ]) await createRow(f, token, '/api/admin/models', m);
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'gpt-4', provider_id: provider.id, provider_model: 'gpt-3.5-turbo' });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'map-off', provider_id: provider.id, provider_model: 'x', enabled: false });
    keys.main = (await createRow(f, token, '/api/admin/keys', { name: 'main' })).key;
    keys.onlyA = (await createRow(f, token, '/api/admin/keys', { name: 'only-a', allowed_models: ['gpt-3.5-turbo'] })).key;
    keys.disabled = (await createRow(f, token, '/api/admin/keys', { name: 'disabled', enabled: false })).key;
    keys.expired = (await createRow(f, token, '/api/admin/keys', { name: 'expired', expires_at: '2001-01-01T00:00:00Z' })).key;
    await waitForModels(f, keys.main, ['gpt-4', 'gpt-3.5-turbo', 'list-b']);
  });
  after(async () => {
    // The fakes close whatever the gateway's exit, or they keep the test process alive.
    try { if (f) await stopClean(f); } finally { await up?.close(); }
  });

  // ---- chat completions ---------------------------------------------------

  test('non-streaming: content, usage, model rewritten, provider key, Fusion headers', async () => {
    const before = upCalls();
    const { data, response } = await client(keys.main, { organization: 'org-x', project: 'proj-x' })
      .chat.completions.create({ model: 'gpt-4', messages }).withResponse();
    assert.equal(data.choices[0].message.content, 'Hello from A');
    assert.deepEqual(data.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-fusion-provider'), 'prov-a');
    assert.equal(response.headers.get('x-fusion-attempts'), '1');

    assert.equal(upCalls(), before + 1, 'one upstream call');
    const got = lastUp();
    assert.equal(got.method, 'POST');
    assert.equal(got.url, '/v1/chat/completions');
    assert.equal(got.json?.model, 'gpt-3.5-turbo', `upstream body: ${got.body}`);
    assert.equal(got.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(got.headers['openai-organization'], undefined, 'OpenAI-Organization must not be forwarded');
    assert.equal(got.headers['openai-project'], undefined, 'OpenAI-Project must not be forwarded');
    assert.ok(!JSON.stringify(got.headers).includes(keys.main), `the client key reached the provider: ${JSON.stringify(got.headers)}`);
    assert.ok(!got.body.includes(keys.main), 'the client key is in the upstream body');
    assert.match(got.headers['content-type'] ?? '', /^application\/json/);
  });

  test('non-streaming: every other body field reaches the provider untouched', async () => {
    const body = {
      model: 'gpt-4',
      messages: [{ role: 'system', content: 'Be terse. ünïcødé ✓' }, { role: 'user', content: 'Weather in Paris?' }],
      temperature: 0.3,
      top_p: 0.9,
      max_tokens: 77,
      seed: 12345,
      user: 'user-42',
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
      tool_choice: 'auto',
      response_format: { type: 'json_object' },
      custom_field: { nested: [1, 2.5, 'three', null, true], empty: {} },
    };
    await client().chat.completions.create(body);
    const got = lastUp().json;
    assert.deepEqual(got, { ...body, model: 'gpt-3.5-turbo' }, `upstream body: ${lastUp().body}`);
  });

  // Fusion rewrites "model" in the client's bytes when it can; a name
  // spelled with escapes or written twice must not slip past it.
  test('non-streaming: the body bytes reach the provider as sent, only model changed', async () => {
    const raw = '{ "messages" : [{"role":"user","content":"a \\"quoted\\" }{ model"}] ,\n"model":"gpt-4", "x":{"model":"inner"} }';
    const res = await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: raw });
    assert.equal(res.status, 200, res.text);
    assert.equal(lastUp().body, raw.replace('"model":"gpt-4"', '"model":"gpt-3.5-turbo"'));
  });

  test('non-streaming: an escaped "model" name is still rewritten; a duplicate one is refused', async () => {
    const escaped = '{"mod\\u0065l":"gpt-4","messages":[{"role":"user","content":"hi"}]}';
    const res = await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: escaped });
    assert.equal(res.status, 200, res.text);
    assert.equal(lastUp().json?.model, 'gpt-3.5-turbo', lastUp().body);
    const dup = await api(f, 'POST', '/v1/chat/completions', {
      token: keys.main, body: '{"model":"list-b","mod\\u0065l":"gpt-4","messages":[]}',
    });
    assert.equal(dup.status, 400, dup.text);
    assert.match(dup.json?.error?.message ?? '', /duplicate object key/);
  });

  test('a model name (not a mapping) is sent as its provider_model', async () => {
    await client().chat.completions.create({ model: 'list-b', messages });
    assert.equal(lastUp().json?.model, 'b-upstream');
  });

  test('streaming: chunks in order, no injected usage chunk, stream_options asked upstream', async () => {
    up.setHandler(openaiHandler({ label: 'A', parts: ['Hel', 'lo', ' wor', 'ld'], delayMs: 20 }));
    try {
      const { data: stream, response } = await client().chat.completions.create({ model: 'gpt-4', messages, stream: true }).withResponse();
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(response.headers.get('x-fusion-provider'), 'prov-a');
      assert.equal(response.headers.get('x-fusion-attempts'), '1');
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      assert.equal(text, 'Hello world');
      assert.deepEqual(chunks.map((c) => c.choices[0]?.delta?.content ?? null), ['Hel', 'lo', ' wor', 'ld', null]);
      assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'stop');
      for (const c of chunks) {
        assert.ok(c.choices.length > 0, `the client got a chunk with empty choices: ${JSON.stringify(c)}`);
        assert.equal(c.usage, undefined, `the client got usage it did not ask for: ${JSON.stringify(c)}`);
      }
      const got = lastUp().json;
      assert.equal(got.stream, true);
      assert.equal(got.model, 'gpt-3.5-turbo');
      assert.deepEqual(got.stream_options, { include_usage: true });
      assert.equal(lastUp().headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    } finally { up.setHandler(openaiHandler({ label: 'A' })); }
  });

  test('streaming: the client that asks for usage gets the usage chunk', async () => {
    const stream = await client().chat.completions.create({ model: 'gpt-4', messages, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, [], `last chunk: ${JSON.stringify(last)}`);
    assert.deepEqual(last.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'Hello from A');
    assert.deepEqual(lastUp().json.stream_options, { include_usage: true });
  });

  test('streaming: other stream_options are kept, include_usage added', async () => {
    const stream = await client().chat.completions.create({ model: 'gpt-4', messages, stream: true, stream_options: { include_obfuscation: false } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.ok(chunks.every((c) => c.choices.length > 0), JSON.stringify(chunks));
    assert.deepEqual(lastUp().json.stream_options, { include_obfuscation: false, include_usage: true });
  });

  test('streaming: the raw stream ends with data: [DONE]', async () => {
    const res = await fetch(f.baseUrl + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.main}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4', messages, stream: true }),
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    const events = text.split('\n\n').filter((e) => e.trim() && !e.startsWith(':'));
    assert.equal(events[events.length - 1], 'data: [DONE]', `stream: ${JSON.stringify(text)}`);
    assert.ok(text.endsWith('data: [DONE]\n\n'), `stream: ${JSON.stringify(text.slice(-200))}`);
    assert.equal(events.length, 5, `3 content chunks, finish, [DONE]: ${JSON.stringify(text)}`);
  });

  test('streaming: tool_calls deltas pass through unchanged', async () => {
    const deltas = [
      { role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
      { tool_calls: [{ index: 1, id: 'call_def', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
    ];
    up.setHandler(async (req, res, ctx) => {
      const events = deltas.map((d) => chatChunk(ctx.json.model, d));
      events.push(chatChunk(ctx.json.model, {}, { finish: 'tool_calls' }));
      await writeSse(res, [...events, 'data: [DONE]\n\n'], { delayMs: 10 });
    });
    try {
      const stream = await client().chat.completions.create({
        model: 'gpt-4', messages, stream: true,
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }],
      });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      assert.deepEqual(chunks.slice(0, 4).map((c) => c.choices[0].delta), deltas);
      assert.equal(chunks[4].choices[0].finish_reason, 'tool_calls');
      assert.equal(chunks.length, 5);
    } finally { up.setHandler(openaiHandler({ label: 'A' })); }
  });

  // ---- embeddings -----------------------------------------------------------

  test('embeddings through the SDK', async () => {
    const before = upCalls();
    const { data, response } = await client().embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] }).withResponse();
    assert.equal(data.data.length, 2);
    assert.deepEqual(Array.from(data.data[0].embedding), [0.25, -0.5, 1]);
    assert.equal(response.headers.get('x-fusion-provider'), 'prov-a');
    assert.equal(upCalls(), before + 1);
    const got = lastUp();
    assert.equal(got.url, '/v1/embeddings');
    assert.equal(got.json.model, 'text-embedding-3-small');
    assert.deepEqual(got.json.input, ['one', 'two']);
    assert.equal(got.headers.authorization, `Bearer ${UPSTREAM_KEY}`);

    const floats = await client().embeddings.create({ model: 'text-embedding-3-small', input: 'x', encoding_format: 'float' });
    assert.deepEqual(floats.data[0].embedding, [0.25, -0.5, 1]);
  });

  // ---- models ---------------------------------------------------------------

  test('GET /v1/models lists the enabled models and mappings, once each', async () => {
    const ids = [];
    for await (const m of client().models.list()) ids.push(m.id);
    assert.deepEqual([...ids].sort(), ['gpt-3.5-turbo', 'gpt-4', 'list-b', 'text-embedding-3-small'], `listed: ${ids}`);
    const m = await client().models.retrieve('gpt-4');
    assert.equal(m.id, 'gpt-4');
    assert.equal(m.object, 'model');
  });

  test('GET /v1/models: a key with allowed_models sees only those', async () => {
    const ids = [];
    for await (const m of client(keys.onlyA).models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['gpt-3.5-turbo']);
    await assertSdkError(client(keys.onlyA).models.retrieve('gpt-4'), 404, 'retrieve a model the key may not use');
  });

  test('GET /v1/models/{id}: unknown, disabled model or mapping, disabled provider → 404', async () => {
    for (const id of ['x', 'list-off', 'map-off', 'on-disabled-provider']) {
      await assertSdkError(client().models.retrieve(id), 404, `retrieve ${id}`);
    }
  });

  test('GET /v1/models needs a valid key', async () => {
    assertOpenAIError(await api(f, 'GET', '/v1/models'), 401, 'no key');
    await assertSdkError(client('fk-not-a-real-key').models.list(), 401, 'wrong key');
  });

  // ---- authentication and authorisation -----------------------------------

  test('auth: missing, wrong, disabled, expired key → 401; nothing goes upstream', async () => {
    const before = upCalls();
    const e = assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { body: { model: 'gpt-4', messages } }), 401, 'missing key');
    assert.equal(e.type, 'authentication_error');
    assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { body: { model: 'gpt-4', messages }, headers: { authorization: 'Basic Zm9vOmJhcg==' } }), 401, 'not a Bearer key');
    for (const [what, key] of [['wrong', 'fk-wrongwrongwrongwrongwrongwrongwrongwrong12'], ['disabled', keys.disabled], ['expired', keys.expired], ['the provider key', UPSTREAM_KEY]]) {
      const err = await assertSdkError(client(key).chat.completions.create({ model: 'gpt-4', messages }), 401, `${what} key`);
      assert.equal(err.error.type, 'authentication_error', `${what} key`);
    }
    await assertSdkError(client(keys.disabled).chat.completions.create({ model: 'gpt-4', messages, stream: true }), 401, 'disabled key, stream');
    await assertSdkError(client(keys.expired).embeddings.create({ model: 'text-embedding-3-small', input: 'x' }), 401, 'expired key, embeddings');
    assert.equal(upCalls(), before, 'no call reached the provider');
  });

  test('auth: a key in use is refused once disabled, admitted again once enabled, refused once deleted', async () => {
    // Workers remember the keys they found (per configuration version);
    // each change must reach the worker that answered the calls before.
    const row = await createRow(f, token, '/api/admin/keys', { name: 'toggled' });
    const call = () => api(f, 'POST', '/v1/chat/completions', { token: row.key, body: { model: 'gpt-4', messages } });
    const until = async (status, what) => {
      const deadline = Date.now() + 3_000;
      let res;
      while ((res = await call()).status !== status) {
        assert.ok(Date.now() < deadline, `${what}: still ${res.status} ${res.text?.slice(0, 200)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      for (let i = 0; i < 5; i++) assert.equal((await call()).status, status, `${what}: call ${i} after the change`);
    };
    await until(200, 'new key');
    let res = await api(f, 'PATCH', `/api/admin/keys/${row.id}`, { token, body: { enabled: false } });
    assert.equal(res.status, 200, show(res));
    await until(401, 'disabled');
    res = await api(f, 'PATCH', `/api/admin/keys/${row.id}`, { token, body: { enabled: true } });
    assert.equal(res.status, 200, show(res));
    await until(200, 'enabled again');
    res = await api(f, 'DELETE', `/api/admin/keys/${row.id}`, { token });
    assert.equal(res.status, 200, show(res));
    await until(401, 'deleted');
  });

  test('auth: a model the key may not use → 403; an unknown model → 404', async () => {
    const before = upCalls();
    const e403 = await assertSdkError(client(keys.onlyA).chat.completions.create({ model: 'gpt-4', messages }), 403, 'model not allowed');
    assert.equal(e403.error.type, 'permission_error');
    const e404 = await assertSdkError(client().chat.completions.create({ model: 'no-such-model', messages }), 404, 'unknown model');
    assert.equal(e404.error.type, 'not_found_error');
    await assertSdkError(client().chat.completions.create({ model: 'no-such-model', messages, stream: true }), 404, 'unknown model, stream');
    await assertSdkError(client().embeddings.create({ model: 'no-such-model', input: 'x' }), 404, 'unknown model, embeddings');
    assert.equal(upCalls(), before, 'no call reached the provider');
    // The allowed model works with the restricted key.
    const ok = await client(keys.onlyA).chat.completions.create({ model: 'gpt-3.5-turbo', messages });
    assert.equal(ok.choices[0].message.content, 'Hello from A');
  });

  // ---- bad input --------------------------------------------------------------

  test('bad input: malformed JSON → 400 with line and column', async () => {
    const before = upCalls();
    const res = await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: '{"model": "gpt-4",\n "messages": [}' });
    const e = assertOpenAIError(res, 400, 'malformed JSON');
    assert.match(e.message, /line 2/, e.message);
    assert.match(e.message, /column \d+/, e.message);
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(upCalls(), before);
  });

  test('bad input: missing model or messages → 400', async () => {
    const before = upCalls();
    let e = assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: { messages } }), 400, 'missing model');
    assert.match(e.message, /model/, e.message);
    e = assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: { model: 'gpt-4' } }), 400, 'missing messages');
    assert.match(e.message, /messages/, e.message);
    assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: { model: 42, messages } }), 400, 'model not a string');
    assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: '' }), 400, 'empty body');
    assertOpenAIError(await api(f, 'POST', '/v1/chat/completions', { token: keys.main, body: '[1,2]' }), 400, 'not an object');
    assertOpenAIError(await api(f, 'POST', '/v1/embeddings', { token: keys.main, body: { input: 'x' } }), 400, 'embeddings without model');
    await assertSdkError(client().chat.completions.create({ messages }), 400, 'SDK without model');
    assert.equal(upCalls(), before);
  });

  test('bad input: api_base / base_url in the body do not redirect the call', async () => {
    const before = upCalls();
    const res = await api(f, 'POST', '/v1/chat/completions', {
      token: keys.main,
      body: { model: 'gpt-4', messages, api_base: 'http://127.0.0.1:1/v1', base_url: 'http://127.0.0.1:1/v1', baseURL: 'http://127.0.0.1:1' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, 'Hello from A');
    assert.equal(upCalls(), before + 1, 'the configured provider got the call');
    assert.equal(lastUp().url, '/v1/chat/completions');
  });

  test('wrong methods on the proxy routes → 405', async () => {
    const res = await api(f, 'GET', '/v1/chat/completions', { token: keys.main });
    assertOpenAIError(res, 405, 'GET /v1/chat/completions');
    assert.match(res.headers.get('allow') ?? '', /POST/);
  });
});
