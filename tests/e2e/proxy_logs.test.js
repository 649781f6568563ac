// Request logging of the proxy: every proxied request leaves exactly one
// request_logs row (written asynchronously, in batches) that says which
// model the client asked for, which provider and provider model served
// it, the status, the outcome, whether it streamed, the tokens and every
// upstream attempt — and neither the client key nor any provider key
// appears in those rows or anywhere in the gateway's own log (run at
// debug level here, the most talkative).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { api, createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { openaiHandler, sqlRows, startFakeUpstream, startFusion, waitFor } from '../lib/harness.js';

const ADMIN_PASSWORD = 'proxy-logs-admin-password';
const hex = (n) => randomBytes(n).toString('hex');

describe('proxy: request_logs rows', () => {
  let f;
  let token;
  let keyRow;
  let client;
  let good;
  let bad;
  const goodKey = `sk-upstream-LOG-${hex(12)}`;
  const badKey = `sk-upstream-BAD-${hex(12)}`;
  const messages = [{ role: 'user', content: 'log me' }];
  const ids = [];
  const rid = (name) => { const id = `${name}-${hex(4)}`; ids.push(id); return id; };
  const sent = {};

  before(async () => {
    good = await startFakeUpstream(openaiHandler({ label: 'good' }));
    bad = await startFakeUpstream((req, res, ctx) => {
      const m = ctx.json?.model;
      const status = m === 'bad-400' ? 400 : 500;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `bad upstream ${status}`, type: 'x' } }));
    });
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD, LOG_LEVEL: 'debug' } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    const pg = await createRow(f, token, '/api/admin/providers', { name: 'log-prov', type: 'openai', base_url: good.url + '/v1', api_key: goodKey });
    const pb = await createRow(f, token, '/api/admin/providers', { name: 'log-bad', type: 'openai', base_url: bad.url + '/v1', api_key: badKey });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'gpt-4', provider_id: pg.id, provider_model: 'gpt-3.5-turbo' });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'log-fo', provider_id: pb.id, provider_model: 'fo-bad', priority: 10 });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'log-fo', provider_id: pg.id, provider_model: 'fo-good', priority: 0 });
    await createRow(f, token, '/api/admin/models', { name: 'only-bad', provider_id: pb.id });
    await createRow(f, token, '/api/admin/models', { name: 'bad-400', provider_id: pb.id });
    await createRow(f, token, '/api/admin/models', { name: 'emb', provider_id: pg.id });
    keyRow = await createRow(f, token, '/api/admin/keys', { name: 'log-key' });
    client = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: keyRow.key, maxRetries: 0, timeout: 10_000 });
    await waitForModels(f, keyRow.key, ['gpt-4', 'log-fo', 'only-bad', 'bad-400', 'emb']);

    // The calls whose rows the tests below read.
    const opts = (id) => ({ headers: { 'X-Request-Id': id } });
    sent.plain = rid('plain');
    const { response } = await client.chat.completions.create({ model: 'gpt-4', messages, temperature: 0.5 }, opts(sent.plain)).withResponse();
    assert.equal(response.headers.get('x-request-id'), sent.plain, 'the client request id is echoed');
    sent.stream = rid('stream');
    for await (const c of await client.chat.completions.create({ model: 'gpt-4', messages, stream: true }, opts(sent.stream))) assert.ok(c.choices.length > 0);
    sent.streamUsage = rid('stream-usage');
    for await (const c of await client.chat.completions.create({ model: 'gpt-4', messages, stream: true, stream_options: { include_usage: true } }, opts(sent.streamUsage))) assert.ok(c);
    sent.fo = rid('fo');
    await client.chat.completions.create({ model: 'log-fo', messages }, opts(sent.fo));
    sent.fail = rid('fail');
    await assert.rejects(client.chat.completions.create({ model: 'only-bad', messages }, opts(sent.fail)), (e) => e.status === 500);
    sent.c400 = rid('c400');
    await assert.rejects(client.chat.completions.create({ model: 'bad-400', messages }, opts(sent.c400)), (e) => e.status === 400);
    sent.emb = rid('emb');
    await client.embeddings.create({ model: 'emb', input: 'vector me' }, opts(sent.emb));
    sent.unknown = rid('unknown');
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages }, opts(sent.unknown)), (e) => e.status === 404);
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { await good?.close(); await bad?.close(); }
  });

  let rowsCache;
  async function rows() {
    if (rowsCache) return rowsCache;
    const inList = ids.map((i) => `'${i}'`).join(',');
    rowsCache = await waitFor(async () => {
      const r = await sqlRows(f.dbPath, `SELECT * FROM request_logs WHERE id IN (${inList})`);
      return r.length >= ids.length ? r : null;
    }, { timeoutMs: 2000, what: `request_logs rows for ${ids}` });
    return rowsCache;
  }
  const row = async (id) => {
    const r = (await rows()).filter((x) => x.id === id);
    assert.equal(r.length, 1, `one row for ${id}: ${JSON.stringify(r)}`);
    return r[0];
  };
  const attemptsOf = (r) => {
    const a = JSON.parse(r.attempts);
    assert.ok(Array.isArray(a), `attempts is a JSON array: ${r.attempts}`);
    return a;
  };

  test('one row per request, within 2 s', async () => {
    const r = await rows();
    assert.equal(r.length, ids.length, JSON.stringify(r.map((x) => x.id)));
    const all = await sqlRows(f.dbPath, 'SELECT id FROM request_logs');
    assert.equal(all.length, ids.length, `rows: ${JSON.stringify(all)}`);
  });

  test('a plain completion: models, provider, status, outcome, tokens, attempts', async () => {
    const r = await row(sent.plain);
    assert.equal(r.client_model, 'gpt-4');
    assert.equal(r.provider_name, 'log-prov');
    assert.equal(r.provider_model, 'gpt-3.5-turbo');
    assert.equal(r.status_code, 200);
    assert.equal(r.outcome, 'ok');
    assert.equal(r.stream, 0);
    assert.equal(r.prompt_tokens, 11);
    assert.equal(r.completion_tokens, 7);
    assert.equal(r.total_tokens, 18);
    assert.equal(r.client_key_id, keyRow.id);
    assert.equal(r.client_key_name, 'log-key');
    assert.equal(r.client_format, 'openai');
    assert.ok(Number.isInteger(r.latency_ms) && r.latency_ms >= 0, `latency_ms ${r.latency_ms}`);
    assert.ok(Math.abs(r.created_at - Date.now()) < 60_000, `created_at ${r.created_at}`);
    const a = attemptsOf(r);
    assert.equal(a.length, 1, r.attempts);
    assert.equal(a[0].provider, 'log-prov');
    assert.equal(a[0].status, 200);
  });

  test('streams: stream = 1 and the tokens counted, whether or not the client asked for usage', async () => {
    for (const id of [sent.stream, sent.streamUsage]) {
      const r = await row(id);
      assert.equal(r.stream, 1, id);
      assert.equal(r.outcome, 'ok', id);
      assert.equal(r.status_code, 200, id);
      assert.equal(r.client_model, 'gpt-4');
      assert.equal(r.provider_model, 'gpt-3.5-turbo');
      assert.equal(r.prompt_tokens, 11, `${id}: ${JSON.stringify(r)}`);
      assert.equal(r.completion_tokens, 7, id);
      assert.equal(r.total_tokens, 18, id);
      assert.equal(attemptsOf(r).length, 1);
    }
  });

  test('failover: the serving provider, and both attempts in order', async () => {
    const r = await row(sent.fo);
    assert.equal(r.outcome, 'ok');
    assert.equal(r.status_code, 200);
    assert.equal(r.client_model, 'log-fo');
    assert.equal(r.provider_name, 'log-prov');
    assert.equal(r.provider_model, 'fo-good');
    const a = attemptsOf(r);
    assert.equal(a.length, 2, r.attempts);
    assert.equal(a[0].provider, 'log-bad');
    assert.equal(a[0].status, 500);
    assert.equal(a[1].provider, 'log-prov');
    assert.equal(a[1].status, 200);
  });

  test('an upstream failure: status and outcome upstream_error', async () => {
    const r = await row(sent.fail);
    assert.equal(r.status_code, 500);
    assert.equal(r.outcome, 'upstream_error');
    assert.equal(r.provider_name, 'log-bad');
    const a = attemptsOf(r);
    assert.equal(a.length, 1);
    assert.equal(a[0].status, 500);
  });

  test('an upstream 400 passed through: its status, not ok', async () => {
    const r = await row(sent.c400);
    assert.equal(r.status_code, 400);
    assert.notEqual(r.outcome, 'ok');
    assert.equal(attemptsOf(r).length, 1);
  });

  test('embeddings and an unknown model have rows too', async () => {
    const e = await row(sent.emb);
    assert.equal(e.client_model, 'emb');
    assert.equal(e.status_code, 200);
    assert.equal(e.outcome, 'ok');
    assert.equal(e.stream, 0);
    assert.equal(e.prompt_tokens, 3);
    const u = await row(sent.unknown);
    assert.equal(u.client_model, 'no-such-model');
    assert.equal(u.status_code, 404);
    assert.notEqual(u.outcome, 'ok');
    assert.deepEqual(attemptsOf(u), []);
  });

  test('refused requests have rows too: a wrong key (401), a malformed body (400)', async () => {
    const wrong = `rej-401-${hex(4)}`;
    let r = await fetch(f.baseUrl + '/v1/chat/completions', {
      method: 'POST', headers: { authorization: `Bearer fk-${hex(20)}`, 'content-type': 'application/json', 'x-request-id': wrong },
      body: JSON.stringify({ model: 'gpt-4', messages }),
    });
    assert.equal(r.status, 401);
    const bad = `rej-400-${hex(4)}`;
    r = await fetch(f.baseUrl + '/v1/chat/completions', {
      method: 'POST', headers: { authorization: `Bearer ${keyRow.key}`, 'content-type': 'application/json', 'x-request-id': bad },
      body: '{"model": "gpt-4", ',
    });
    assert.equal(r.status, 400);
    const got = await waitFor(async () => {
      const x = await sqlRows(f.dbPath, `SELECT * FROM request_logs WHERE id IN ('${wrong}', '${bad}') ORDER BY id`);
      return x.length === 2 ? x : null;
    }, { timeoutMs: 2000, what: 'rows for the refused requests' });
    const w = got.find((x) => x.id === wrong);
    assert.equal(w.status_code, 401);
    assert.equal(w.outcome, 'rejected');
    assert.equal(w.client_key_id, null);
    const b = got.find((x) => x.id === bad);
    assert.equal(b.status_code, 400);
    assert.equal(b.outcome, 'rejected');
    assert.equal(b.client_key_id, keyRow.id);
  });

  test('no key in any row or in the gateway log', async () => {
    // Some more traffic that carries keys: wrong and missing ones.
    await api(f, 'POST', '/v1/chat/completions', { token: `fk-${hex(20)}`, body: { model: 'gpt-4', messages } });
    await api(f, 'POST', '/v1/chat/completions', { token: goodKey, body: { model: 'gpt-4', messages } });
    const everything = JSON.stringify(await sqlRows(f.dbPath, 'SELECT * FROM request_logs'));
    const logs = f.logs();
    for (const [what, secret] of [['client key', keyRow.key], ['provider key', goodKey], ['provider key', badKey]]) {
      // The whole key and any long piece of it.
      for (let i = 0; i + 16 <= secret.length; i += 4) {
        const piece = secret.slice(i, i + 16);
        assert.ok(!everything.includes(piece), `the ${what} is in request_logs: …${everything.slice(Math.max(0, everything.indexOf(piece) - 100), everything.indexOf(piece) + 100)}…`);
        assert.ok(!logs.includes(piece), `the ${what} is in the gateway log: …${logs.slice(Math.max(0, logs.indexOf(piece) - 100), logs.indexOf(piece) + 100)}…`);
      }
    }
    // The rows were really read: the request bodies' text is there, the keys are not.
    assert.ok(everything.includes('log me') || everything.includes('vector me') || everything.includes(sent.plain), 'rows were read');
  });
});
