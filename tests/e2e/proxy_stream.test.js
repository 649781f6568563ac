// Streams that do not end well: a client that goes away in the middle of
// a stream (the provider must see its request closed at once, not after
// the whole answer), and a provider that cuts its connection in the
// middle of a stream (the client gets what was sent and then an end, the
// gateway does not hang, and the next request works).  Each case leaves
// a request_logs row that says what happened.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { chatChunk, openaiHandler, rawExchange, sleep, sqlRows, startFakeUpstream, startFusion, waitFor } from '../lib/harness.js';

const ADMIN_PASSWORD = 'proxy-stream-admin-password';

// Events of an SSE text, comments (heartbeats) left out: the data of each.
const sseData = (text) => text.split('\n\n').filter((e) => e.trim() && !e.startsWith(':'))
  .map((e) => e.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'));

describe('proxy: streams cut short', () => {
  let f;
  let token;
  let clientKey;
  let client;
  let up;
  const messages = [{ role: 'user', content: 'stream please' }];
  // One entry per upstream request the fake answered slowly or stalled.
  const seen = [];

  // 50 chunks, one every 200 ms, unless the gateway hangs up first.
  async function slow50(req, res, ctx) {
    const s = { at: Date.now(), closedAt: null, finished: false, sent: 0 };
    seen.push(s);
    res.on('close', () => { s.closedAt = Date.now(); s.finished = res.writableFinished; });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < 50 && !res.destroyed; i++) {
      res.write(`data: ${JSON.stringify(chatChunk(ctx.json.model, { content: `c${i} ` }))}\n\n`);
      s.sent++;
      await sleep(200);
    }
    if (!res.destroyed) { res.write('data: [DONE]\n\n'); res.end(); }
  }

  // Three chunks, then the connection is destroyed mid-stream.
  async function cutAfter3(req, res, ctx) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < 3; i++) {
      res.write(`data: ${JSON.stringify(chatChunk(ctx.json.model, { content: `part${i} ` }))}\n\n`);
      await sleep(30);
    }
    res.socket.destroy();
  }

  // No headers at all until the gateway hangs up.
  function stall(req, res) {
    const s = { at: Date.now(), closedAt: null, finished: false, sent: 0, res };
    seen.push(s);
    return new Promise((resolve) => res.on('close', () => { s.closedAt = Date.now(); resolve(); }));
  }

  before(async () => {
    const ok = openaiHandler({ label: 'S' });
    up = await startFakeUpstream((req, res, ctx) => {
      const m = ctx.json?.model;
      if (m === 'slow') return slow50(req, res, ctx);
      if (m === 'cut') return cutAfter3(req, res, ctx);
      if (m === 'stall') return stall(req, res, ctx);
      return ok(req, res, ctx);
    });
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    const p = await createRow(f, token, '/api/admin/providers', { name: 'p-stream', type: 'openai', base_url: up.url + '/v1', api_key: 'sk-upstream-stream' });
    for (const name of ['slow', 'cut', 'stall', 'ok']) await createRow(f, token, '/api/admin/models', { name, provider_id: p.id });
    clientKey = (await createRow(f, token, '/api/admin/keys', { name: 'stream-key' })).key;
    client = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: clientKey, maxRetries: 0, timeout: 15_000 });
    await waitForModels(f, clientKey, ['slow', 'cut', 'stall', 'ok']);
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { await up?.close(); }
  });

  // The request_logs row of a request id, once the writer has stored it.
  const logRow = (id) => waitFor(async () => (await sqlRows(f.dbPath, `SELECT * FROM request_logs WHERE id = '${id}'`))[0], { timeoutMs: 2000, what: `request_logs row ${id}` });

  async function assertNextRequestWorks() {
    const r = await client.chat.completions.create({ model: 'ok', messages });
    assert.equal(r.choices[0].message.content, 'Hello from S');
  }

  // Fusion frames the chunks of a stream itself: every chunk's size line
  // must match its bytes (HTTP/1.1), and an HTTP/1.0 client gets the
  // events unframed, ended by the close.
  test('stream bytes on the wire: chunk framing over HTTP/1.1, none over HTTP/1.0', async () => {
    const body = JSON.stringify({ model: 'ok', messages, stream: true });
    const req = (v) => `POST /v1/chat/completions HTTP/${v}\r\nHost: x\r\nAuthorization: Bearer ${clientKey}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    const r11 = await rawExchange(f.port, req('1.1'));
    const head = r11.data.indexOf('\r\n\r\n');
    assert.match(r11.data.slice(0, head), /transfer-encoding: chunked/i);
    let rest = r11.data.slice(head + 4);
    let joined = '';
    for (;;) {
      const eol = rest.indexOf('\r\n');
      assert.ok(eol > 0, `a chunk size line: ${JSON.stringify(rest.slice(0, 40))}`);
      const size = parseInt(rest.slice(0, eol), 16);
      assert.ok(/^[0-9a-f]+$/.test(rest.slice(0, eol)) && size >= 0);
      if (size === 0) { assert.equal(rest.slice(eol), '\r\n\r\n'); break; }
      joined += rest.slice(eol + 2, eol + 2 + size);
      assert.equal(rest.slice(eol + 2 + size, eol + 4 + size), '\r\n', 'a chunk ends where its size says');
      rest = rest.slice(eol + 4 + size);
    }
    const events = sseData(joined);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join(''), 'Hello from S');

    const r10 = await rawExchange(f.port, req('1.0'));
    const head10 = r10.data.indexOf('\r\n\r\n');
    assert.doesNotMatch(r10.data.slice(0, head10), /transfer-encoding/i);
    const events10 = sseData(r10.data.slice(head10 + 4));
    assert.equal(events10.at(-1), '[DONE]');
    assert.equal(events10.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join(''), 'Hello from S');
  });

  test('client leaves mid-stream (SDK: break + abort) → the provider sees its request closed within 1 s', async () => {
    const stream = await client.chat.completions.create({ model: 'slow', messages, stream: true }, { headers: { 'X-Request-Id': 'disc-sdk-1' } });
    const got = [];
    for await (const c of stream) {
      got.push(c.choices[0].delta.content);
      if (got.length === 2) break;
    }
    stream.controller.abort();
    const abortedAt = Date.now();
    assert.deepEqual(got, ['c0 ', 'c1 ']);
    const s = seen.at(-1);
    await waitFor(() => s.closedAt, { timeoutMs: 3000, what: 'the upstream request closed' });
    assert.ok(s.closedAt - abortedAt < 1000, `the provider saw the close ${s.closedAt - abortedAt} ms after the client left`);
    assert.equal(s.finished, false, 'the upstream answer was not sent to its end');
    assert.ok(s.sent < 10, `the provider sent ${s.sent} chunks`);

    const row = await logRow('disc-sdk-1');
    assert.equal(row.outcome, 'client_disconnected', JSON.stringify(row));
    assert.equal(row.stream, 1);
    assert.equal(row.client_model, 'slow');
    assert.equal(row.provider_name, 'p-stream');
    await assertNextRequestWorks();
  });

  test('client leaves mid-stream (fetch + AbortController) → the provider sees its request closed within 1 s', async () => {
    const ac = new AbortController();
    const res = await fetch(f.baseUrl + '/v1/chat/completions', {
      method: 'POST', signal: ac.signal,
      headers: { authorization: `Bearer ${clientKey}`, 'content-type': 'application/json', 'x-request-id': 'disc-fetch-1' },
      body: JSON.stringify({ model: 'slow', messages, stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    while (sseData(text).length < 3) {
      const { value, done } = await reader.read();
      assert.ok(!done, `stream ended early: ${text}`);
      text += dec.decode(value, { stream: true });
    }
    ac.abort();
    const abortedAt = Date.now();
    const s = seen.at(-1);
    await waitFor(() => s.closedAt, { timeoutMs: 3000, what: 'the upstream request closed' });
    assert.ok(s.closedAt - abortedAt < 1000, `the provider saw the close ${s.closedAt - abortedAt} ms after the client left`);
    assert.equal(s.finished, false);
    const row = await logRow('disc-fetch-1');
    assert.equal(row.outcome, 'client_disconnected', JSON.stringify(row));
    await assertNextRequestWorks();
  });

  test('client leaves before the provider answered at all → the provider sees its request closed within 1 s', async () => {
    const ac = new AbortController();
    const pending = fetch(f.baseUrl + '/v1/chat/completions', {
      method: 'POST', signal: ac.signal,
      headers: { authorization: `Bearer ${clientKey}`, 'content-type': 'application/json', 'x-request-id': 'disc-early-1' },
      body: JSON.stringify({ model: 'stall', messages }),
    }).catch((e) => e);
    const before = seen.length;
    await waitFor(() => seen.length > before, { timeoutMs: 2000, what: 'the upstream request arrived' });
    await sleep(100);
    ac.abort();
    const abortedAt = Date.now();
    await pending;
    const s = seen.at(-1);
    try {
      await waitFor(() => s.closedAt, { timeoutMs: 2000, what: 'the upstream request closed' });
    } finally {
      // Failed: hang up from the provider's side, so the gateway is not
      // left holding the request (and the tests after this one still run).
      if (!s.closedAt) s.res.destroy();
    }
    assert.ok(s.closedAt - abortedAt < 1000, `the provider saw the close ${s.closedAt - abortedAt} ms after the client left`);
    const row = await logRow('disc-early-1');
    assert.equal(row.outcome, 'client_disconnected', JSON.stringify(row));
    assert.equal(row.stream, 0);
    await assertNextRequestWorks();
  });

  test('the provider cuts the stream (raw): the chunks, then an end without [DONE]; no hang', async () => {
    const t0 = Date.now();
    const res = await fetch(f.baseUrl + '/v1/chat/completions', {
      method: 'POST', signal: AbortSignal.timeout(5000),
      headers: { authorization: `Bearer ${clientKey}`, 'content-type': 'application/json', 'x-request-id': 'cut-raw-1' },
      body: JSON.stringify({ model: 'cut', messages, stream: true }),
    });
    assert.equal(res.status, 200);
    // Read what comes, keeping it even if the connection ends in an error.
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    let readError = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
      }
    } catch (err) { readError = err; }
    const ms = Date.now() - t0;
    assert.ok(!readError || !['TimeoutError', 'AbortError'].includes(readError.name), `the gateway kept the client waiting after the upstream cut: ${readError}`);
    assert.ok(ms < 3000, `the stream ended after ${ms} ms`);
    const data = sseData(text);
    assert.ok(data.length >= 3, `the three chunks (read error: ${readError}): ${JSON.stringify(text)}`);
    assert.deepEqual(data.slice(0, 3).map((d) => JSON.parse(d).choices[0].delta.content), ['part0 ', 'part1 ', 'part2 ']);
    assert.ok(!data.includes('[DONE]'), `a cut stream must not end with [DONE]: ${JSON.stringify(text)}`);
    for (const d of data.slice(3)) {
      const j = JSON.parse(d);
      assert.ok(j.error && typeof j.error.message === 'string', `after the chunks only an error event may come: ${d}`);
    }
    const row = await logRow('cut-raw-1');
    assert.equal(row.outcome, 'upstream_error', JSON.stringify(row));
    assert.equal(row.stream, 1);
    await assertNextRequestWorks();
  });

  test('the provider cuts the stream (SDK): the chunks arrive, then the SDK ends or throws; no hang', async () => {
    const t0 = Date.now();
    const stream = await client.chat.completions.create({ model: 'cut', messages, stream: true });
    const got = [];
    let error = null;
    try {
      for await (const c of stream) got.push(c.choices[0]?.delta?.content);
    } catch (err) { error = err; }
    const ms = Date.now() - t0;
    assert.ok(ms < 3000, `the stream ended after ${ms} ms`);
    assert.deepEqual(got, ['part0 ', 'part1 ', 'part2 '], `chunks before the cut (error: ${error})`);
    if (error) assert.ok(error instanceof OpenAI.OpenAIError || error instanceof Error, String(error));
    await assertNextRequestWorks();
  });

  test('after all that the gateway serves several streams at once', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, async () => {
      const stream = await client.chat.completions.create({ model: 'ok', messages, stream: true });
      let text = '';
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
      return text;
    }));
    assert.deepEqual(results, Array(5).fill('Hello from S'));
  });
});

// The client connection's idle timeout (IDLE_TIMEOUT_MS) is for silence:
// a stream that keeps sending must outlive it however long it runs, also
// when its events come faster than the gateway re-arms the connection's
// timers (it does so at most every eighth of the idle timeout, not per
// event).  And a connection that then stays silent is still closed.
describe('proxy: a stream longer than the idle timeout', () => {
  let f;
  let up;
  let client;
  let key;

  before(async () => {
    up = await startFakeUpstream(openaiHandler({ parts: Array.from({ length: 60 }, (_, i) => `p${i} `), delayMs: 40 }));
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD, IDLE_TIMEOUT_MS: '1000' } });
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const p = await createRow(f, token, '/api/admin/providers', { name: 'long', type: 'openai', base_url: up.url + '/v1', api_key: 'sk-long' });
    await createRow(f, token, '/api/admin/models', { name: 'long-model', provider_id: p.id });
    key = (await createRow(f, token, '/api/admin/keys', { name: 'long-key' })).key;
    client = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: key, maxRetries: 0, timeout: 20_000 });
    await waitForModels(f, key, ['long-model']);
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { await up?.close(); }
  });

  test('60 events over ~2.4 s with a 1 s idle timeout all arrive, then silence closes the connection', async () => {
    const t0 = Date.now();
    let text = '';
    for await (const c of await client.chat.completions.create({ model: 'long-model', messages: [{ role: 'user', content: 'go' }], stream: true })) {
      text += c.choices[0]?.delta?.content ?? '';
    }
    assert.ok(Date.now() - t0 > 2000, `the stream took ${Date.now() - t0} ms only`);
    assert.equal(text, Array.from({ length: 60 }, (_, i) => `p${i} `).join(''));

    // Same again on a raw connection kept open after the answer: it is
    // closed about one idle timeout after the stream ended.
    const body = JSON.stringify({ model: 'long-model', messages: [{ role: 'user', content: 'go' }], stream: true });
    const raw = await rawExchange(f.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      { timeoutMs: 8_000 });
    assert.ok(raw.closed, `still open after ${raw.ms} ms`);
    assert.ok(raw.ms > 2000 + 800 && raw.ms < 2000 + 4000, `closed after ${raw.ms} ms`);
    assert.match(raw.data, /data: \[DONE\]\n\n\r\n0\r\n\r\n$/);
    assert.equal(sseData(raw.data.slice(raw.data.indexOf('\r\n\r\n'))).length > 60, true);
  });
});
