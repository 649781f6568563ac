// Routing and failover of the proxy: how requests for one model spread
// over several providers (equal weights, 3:1 weights, priorities), and how
// a failure before the first byte (5xx, 429, connection refused, a
// provider that never answers) moves the request on to the next provider,
// while a plain 4xx from the provider is passed through unchanged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { api, createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { closedPort, openaiHandler, startFakeUpstream, startFusion, waitFor } from '../lib/harness.js';

const ADMIN_PASSWORD = 'proxy-routing-admin-password';

// What the failing fake answers, by the model it receives: `fail-<status>`
// or `fail-<status>-<anything>` gets that status and this body (a JSON
// error naming the status when none is listed here).
const FAIL_BODIES = {
  'fail-500': { error: { message: 'primary exploded', type: 'server_error' } },
  'fail-429': { error: { message: 'slow down', type: 'rate_limit_error' } },
  'fail-502': 'Bad Gateway',
  'fail-503': '',
  'fail-400': { error: { message: "Invalid value for 'temperature': 7", type: 'invalid_request_error', param: 'temperature', code: 'invalid_value' } },
  'fail-503-last': { error: { message: 'the second is overloaded too', type: 'overloaded_error', code: 'overloaded' } },
};
const failBody = (model) => {
  const b = FAIL_BODIES[model] ?? { error: { message: `upstream says ${model}`, type: 'x', code: model } };
  return typeof b === 'string' ? b : JSON.stringify(b);
};

describe('proxy: routing and failover', () => {
  let f;
  let token;
  let clientKey;
  let client;
  const up = {};
  const prov = {};
  const messages = [{ role: 'user', content: 'hi' }];

  // A fake that never answers: the request is kept open until the gateway
  // hangs up, and each hang-up is recorded with its time.
  const stalled = [];
  const stallHandler = (req, res) => new Promise((resolve) => {
    const entry = { at: Date.now(), closedAt: null };
    stalled.push(entry);
    res.on('close', () => { entry.closedAt = Date.now(); resolve(); });
  });

  before(async () => {
    for (const name of ['one', 'two']) up[name] = await startFakeUpstream(openaiHandler({ label: name }));
    up.bad = await startFakeUpstream((req, res, ctx) => {
      const model = ctx.json?.model ?? '';
      const m = /^fail-(\d{3})/.exec(model);
      if (!m) return openaiHandler({ label: 'bad' })(req, res, ctx);
      res.writeHead(Number(m[1]), { 'content-type': 'application/json' });
      res.end(failBody(model));
    });
    up.slow = await startFakeUpstream(stallHandler);
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    const mk = async (name, base_url, extra = {}) => {
      prov[name] = await createRow(f, token, '/api/admin/providers', { name: `p-${name}`, type: 'openai', base_url, api_key: `sk-upstream-${name}`, ...extra });
    };
    const mapping = (client_model, name, provider_model, extra = {}) => createRow(f, token, '/api/admin/model-mappings', { client_model, provider_id: prov[name].id, provider_model, ...extra });
    for (const name of ['one', 'two']) await mk(name, up[name].url + '/v1');
    // Same name on two providers of equal priority and weight.
    await createRow(f, token, '/api/admin/models', { name: 'eq', provider_id: prov.one.id });
    await createRow(f, token, '/api/admin/models', { name: 'eq', provider_id: prov.two.id });
    // Weights 300:100.
    await mapping('w31', 'one', 'w31-at-one', { weight: 300 });
    await mapping('w31', 'two', 'w31-at-two', { weight: 100 });
    // Priorities: 'prio' on p-one (10) before p-two (0).
    await mapping('prio', 'one', 'prio-at-one', { priority: 10 });
    await mapping('prio', 'two', 'prio-at-two', { priority: 0 });
    // Each failure case has a primary provider of its own (priority 10) —
    // the circuit breaker counts failures per provider — and p-two as the
    // secondary (priority 0).
    const cases = [
      ['500', up.bad.url + '/v1', 'fail-500'], ['429', up.bad.url + '/v1', 'fail-429'], ['408', up.bad.url + '/v1', 'fail-408'],
      ['502', up.bad.url + '/v1', 'fail-502'], ['503', up.bad.url + '/v1', 'fail-503'], ['s500', up.bad.url + '/v1', 'fail-500'],
      ['400', up.bad.url + '/v1', 'fail-400'], ['404', up.bad.url + '/v1', 'fail-404'], ['409', up.bad.url + '/v1', 'fail-409'],
      ['422', up.bad.url + '/v1', 'fail-422'],
      ['refused', `http://127.0.0.1:${await closedPort()}/v1`, 'refused'],
      ['timeout', up.slow.url + '/v1', 'stalled', { timeout_ms: 1000 }],
    ];
    for (const [name, base, model, extra] of cases) {
      await mk(name, base, extra);
      await mapping(`fo-${name}`, name, model, { priority: 10 });
      await mapping(`fo-${name}`, 'two', `fo-${name}-at-two`, { priority: 0 });
    }
    // Every candidate fails: p-all1 with 500, then p-all2 with 503.
    await mk('all1', up.bad.url + '/v1');
    await mk('all2', up.bad.url + '/v1');
    await mapping('allfail', 'all1', 'fail-500', { priority: 10 });
    await mapping('allfail', 'all2', 'fail-503-last', { priority: 0 });
    clientKey = (await createRow(f, token, '/api/admin/keys', { name: 'routing' })).key;
    client = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: clientKey, maxRetries: 0, timeout: 10_000 });
    await waitForModels(f, clientKey, ['eq', 'w31', 'prio', 'allfail', ...cases.map(([n]) => `fo-${n}`)]);
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { for (const u of Object.values(up)) await u.close(); }
  });

  const counts = () => Object.fromEntries(Object.entries(up).map(([k, u]) => [k, u.requests.length]));
  const delta = (before) => { const now = counts(); return Object.fromEntries(Object.keys(now).map((k) => [k, now[k] - before[k]])); };

  // n calls, `parallel` at a time; the x-fusion-provider of each answer.
  async function calls(model, n, parallel = 10) {
    const served = [];
    for (let i = 0; i < n; i += parallel) {
      const batch = await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, async () => {
        const { data, response } = await client.chat.completions.create({ model, messages }).withResponse();
        assert.match(data.choices[0].message.content, /^Hello from /);
        return response.headers.get('x-fusion-provider');
      }));
      served.push(...batch);
    }
    return served;
  }
  const tally = (list) => list.reduce((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});

  test('equal priority and weight: 100 requests split between 40 and 60 each', async () => {
    const before = counts();
    const served = await calls('eq', 100);
    const d = delta(before);
    assert.equal(d.one + d.two, 100, JSON.stringify(d));
    assert.ok(d.one >= 40 && d.one <= 60, `split ${JSON.stringify(d)}`);
    assert.ok(d.two >= 40 && d.two <= 60, `split ${JSON.stringify(d)}`);
    assert.deepEqual(tally(served), { 'p-one': d.one, 'p-two': d.two });
    for (const r of up.one.requests.slice(before.one)) assert.equal(r.json.model, 'eq');
    for (const r of up.one.requests.slice(before.one)) assert.equal(r.headers.authorization, 'Bearer sk-upstream-one');
    for (const r of up.two.requests.slice(before.two)) assert.equal(r.headers.authorization, 'Bearer sk-upstream-two');
  });

  test('weights 300:100: about 3:1', async () => {
    const before = counts();
    await calls('w31', 100);
    const d = delta(before);
    assert.equal(d.one + d.two, 100, JSON.stringify(d));
    assert.ok(d.one >= 65 && d.one <= 85, `want ~75 on the weight-300 provider: ${JSON.stringify(d)}`);
    for (const r of up.one.requests.slice(before.one)) assert.equal(r.json.model, 'w31-at-one');
    for (const r of up.two.requests.slice(before.two)) assert.equal(r.json.model, 'w31-at-two');
  });

  test('a higher-priority provider gets every request while it works', async () => {
    const before = counts();
    const served = await calls('prio', 20);
    assert.deepEqual(tally(served), { 'p-one': 20 });
    const d = delta(before);
    assert.equal(d.one, 20, JSON.stringify(d));
    assert.equal(d.two, 0, JSON.stringify(d));
    for (const r of up.one.requests.slice(before.one)) assert.equal(r.json.model, 'prio-at-one');
  });

  for (const status of ['500', '429', '408', '502', '503']) {
    test(`failover: primary answers ${status} → the secondary serves, x-fusion-attempts: 2`, async () => {
      const before = counts();
      const { data, response } = await client.chat.completions.create({ model: `fo-${status}`, messages }).withResponse();
      assert.equal(data.choices[0].message.content, 'Hello from two');
      assert.equal(response.headers.get('x-fusion-attempts'), '2');
      assert.equal(response.headers.get('x-fusion-provider'), 'p-two');
      const d = delta(before);
      assert.equal(d.bad, 1, JSON.stringify(d));
      assert.equal(d.two, 1, JSON.stringify(d));
      assert.equal(up.bad.requests.at(-1).json.model, `fail-${status}`);
      assert.equal(up.bad.requests.at(-1).headers.authorization, `Bearer sk-upstream-${status}`);
      assert.equal(up.two.requests.at(-1).json.model, `fo-${status}-at-two`);
      assert.equal(up.two.requests.at(-1).headers.authorization, 'Bearer sk-upstream-two');
    });
  }

  test('failover of a stream: primary answers 500 before the first byte → the secondary streams', async () => {
    const before = counts();
    const { data: stream, response } = await client.chat.completions.create({ model: 'fo-s500', messages, stream: true }).withResponse();
    assert.equal(response.headers.get('x-fusion-attempts'), '2');
    assert.equal(response.headers.get('x-fusion-provider'), 'p-two');
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'Hello from two');
    assert.equal(delta(before).bad, 1);
    assert.deepEqual(up.two.requests.at(-1).json.stream_options, { include_usage: true });
  });

  test('failover: connection refused → the secondary serves', async () => {
    const before = counts();
    const { data, response } = await client.chat.completions.create({ model: 'fo-refused', messages }).withResponse();
    assert.equal(data.choices[0].message.content, 'Hello from two');
    assert.equal(response.headers.get('x-fusion-attempts'), '2');
    assert.equal(response.headers.get('x-fusion-provider'), 'p-two');
    assert.equal(delta(before).two, 1);
  });

  test('failover: no first byte within timeout_ms (1000) → the secondary serves in time', async () => {
    const before = counts();
    const t0 = Date.now();
    const { data, response } = await client.chat.completions.create({ model: 'fo-timeout', messages }).withResponse();
    const ms = Date.now() - t0;
    assert.equal(data.choices[0].message.content, 'Hello from two');
    assert.equal(response.headers.get('x-fusion-attempts'), '2');
    assert.equal(response.headers.get('x-fusion-provider'), 'p-two');
    assert.ok(ms >= 900, `answered after ${ms} ms: the slow provider's timeout was not waited for`);
    assert.ok(ms < 2000, `answered after ${ms} ms, want about 1000 ms + the secondary`);
    const d = delta(before);
    assert.equal(d.slow, 1, JSON.stringify(d));
    assert.equal(d.two, 1, JSON.stringify(d));
    // The gateway hung up on the provider that timed out.
    const s = stalled.at(-1);
    await waitFor(() => s.closedAt, { timeoutMs: 1000, what: 'the timed-out upstream request closed' });
  });

  test('a 400 from the provider is passed through unchanged, without failover', async () => {
    const before = counts();
    const res = await api(f, 'POST', '/v1/chat/completions', { token: clientKey, body: { model: 'fo-400', messages, temperature: 7 } });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.text, failBody('fail-400'));
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('x-fusion-provider'), 'p-400');
    assert.equal(res.headers.get('x-fusion-attempts'), '1');
    const d = delta(before);
    assert.equal(d.bad, 1, JSON.stringify(d));
    assert.equal(d.two, 0, `the secondary must not be tried: ${JSON.stringify(d)}`);
    // The SDK sees the provider's error as it is.
    const err = await client.chat.completions.create({ model: 'fo-400', messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.equal(err.code, 'invalid_value');
    assert.equal(err.param, 'temperature');
    assert.equal(delta(before).two, 0);
  });

  // (Not 401/403 here: those take the provider's key out of use.)
  for (const status of ['404', '409', '422']) {
    test(`a ${status} from the provider is passed through without failover`, async () => {
      const before = counts();
      const res = await api(f, 'POST', '/v1/chat/completions', { token: clientKey, body: { model: `fo-${status}`, messages } });
      assert.equal(res.status, Number(status), res.text);
      assert.equal(res.text, failBody(`fail-${status}`));
      assert.equal(res.headers.get('x-fusion-attempts'), '1');
      assert.equal(delta(before).two, 0);
    });
  }

  test('every candidate fails → the last upstream status and error body', async () => {
    const before = counts();
    const res = await api(f, 'POST', '/v1/chat/completions', { token: clientKey, body: { model: 'allfail', messages } });
    assert.equal(res.status, 503, res.text);
    assert.equal(res.text, failBody('fail-503-last'));
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('x-fusion-attempts'), '2');
    assert.equal(res.headers.get('x-fusion-provider'), 'p-all2');
    assert.deepEqual(up.bad.requests.slice(before.bad).map((r) => r.json.model), ['fail-500', 'fail-503-last']);
    // A stream request that fails everywhere gets the same, not a stream.
    const s = await api(f, 'POST', '/v1/chat/completions', { token: clientKey, body: { model: 'allfail', messages, stream: true } });
    assert.equal(s.status, 503, s.text);
    assert.equal(s.text, failBody('fail-503-last'));
  });
});
