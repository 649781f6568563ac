// A fast provider and a slow reader: the provider streams ~20 MB of SSE
// as fast as it can, the client reads it slowly.  Everything must arrive
// intact and in order, and the gateway must not hold the difference in
// memory: its resident size stays under 150 MB during the transfer (it
// pauses the provider instead).
//
// This gateway runs with a small AddressSanitizer quarantine (when the
// binary is sanitized): by default ASan keeps up to 256 MB of freed memory
// in quarantine, which would count in the resident size whatever the
// gateway's own buffering does.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { chatChunk, rssBytes, sleep, sqlRows, startFakeUpstream, startFusion, waitFor } from '../lib/harness.js';

const ADMIN_PASSWORD = 'proxy-backpressure-admin-password';
const EVENTS = 10_000;
const RSS_LIMIT = 150 * 1024 * 1024;
// Wait until a response can take more data, or is gone.
const drainOrClose = (res) => new Promise((resolve) => {
  const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
  res.on('drain', done);
  res.on('close', done);
});
const content = (i) => `${i}:` + String.fromCharCode(97 + (i % 26)).repeat(2000);

describe('proxy: slow reader, fast provider', () => {
  let f;
  let up;
  let clientKey;
  const upstream = { bytes: 0, drainWaits: 0, done: false };

  before(async () => {
    up = await startFakeUpstream(async (req, res, ctx) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < EVENTS && !res.destroyed; i++) {
        const ev = `data: ${JSON.stringify(chatChunk(ctx.json.model, { content: content(i) }))}\n\n`;
        upstream.bytes += ev.length;
        if (!res.write(ev)) {
          upstream.drainWaits++;
          await drainOrClose(res);
        }
      }
      if (!res.destroyed) { res.end('data: [DONE]\n\n'); upstream.done = true; }
    });
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=8'].filter(Boolean).join(':');
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD, ASAN_OPTIONS: asan } });
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const p = await createRow(f, token, '/api/admin/providers', { name: 'p-big', type: 'openai', base_url: up.url + '/v1', api_key: 'sk-upstream-big' });
    await createRow(f, token, '/api/admin/models', { name: 'big', provider_id: p.id });
    clientKey = (await createRow(f, token, '/api/admin/keys', { name: 'big-key' })).key;
    await waitForModels(f, clientKey, ['big']);
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { await up?.close(); }
  });

  test('~20 MB streamed to a slow reader arrive intact; the gateway stays under 150 MB', async (t) => {
    let maxRss = rssBytes(f.proc.pid);
    const baseline = maxRss;
    let bytes = 0;
    let maxLag = 0; // how far the provider got ahead of the reader
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, rssBytes(f.proc.pid));
      maxLag = Math.max(maxLag, upstream.bytes - bytes);
    }, 20);
    try {
      const res = await fetch(f.baseUrl + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${clientKey}`, 'content-type': 'application/json', 'x-request-id': 'big-1' },
        body: JSON.stringify({ model: 'big', messages: [{ role: 'user', content: 'a lot' }], stream: true }),
      });
      assert.equal(res.status, 200);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let pending = '';
      let n = 0;
      let sawDone = false;
      let reads = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        bytes += value.length;
        pending += dec.decode(value, { stream: true });
        let cut;
        while ((cut = pending.indexOf('\n\n')) >= 0) {
          const ev = pending.slice(0, cut);
          pending = pending.slice(cut + 2);
          if (ev.startsWith(':')) continue; // heartbeat
          assert.ok(ev.startsWith('data: '), `event ${n}: ${ev.slice(0, 100)}`);
          const data = ev.slice(6);
          if (data === '[DONE]') { sawDone = true; continue; }
          assert.ok(!sawDone, 'an event after [DONE]');
          const got = JSON.parse(data).choices[0].delta.content;
          if (got !== content(n)) assert.fail(`event ${n} differs: ${got.slice(0, 40)}… (length ${got.length})`);
          n++;
        }
        // The slow part: a pause after every read, longer now and then.
        reads++;
        await sleep(reads % 50 === 0 ? 100 : 1);
      }
      assert.equal(pending.trim(), '', 'nothing after the last event');
      assert.equal(n, EVENTS, 'every event arrived');
      assert.ok(sawDone, 'the stream ended with [DONE]');
      assert.ok(bytes > 20_000_000, `bytes received: ${bytes}`);
      assert.ok(upstream.done, 'the provider sent everything');
    } finally {
      clearInterval(sampler);
    }
    t.diagnostic(`gateway RSS: baseline ${(baseline / 1048576).toFixed(1)} MB, peak ${(maxRss / 1048576).toFixed(1)} MB; provider ahead of the reader by at most ${(maxLag / 1048576).toFixed(1)} MB; provider waited for drain ${upstream.drainWaits} times`);
    assert.ok(maxRss < RSS_LIMIT, `gateway RSS peaked at ${(maxRss / 1048576).toFixed(1)} MB (baseline ${(baseline / 1048576).toFixed(1)} MB, provider waited for drain ${upstream.drainWaits} times)`);

    const row = await waitFor(async () => (await sqlRows(f.dbPath, "SELECT outcome, stream, status_code FROM request_logs WHERE id = 'big-1'"))[0], { what: 'the log row' });
    assert.deepEqual(row, { outcome: 'ok', stream: 1, status_code: 200 });
  });
});
