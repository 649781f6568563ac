// The release binary (build/fusion), which the other end-to-end tests do
// not run: they drive the sanitizer build, which keeps the sanitizers'
// allocator.  The release build allocates with mimalloc, linked so that it
// serves the libraries' malloc too; these tests check that it really is
// the allocator in use and that the proxy path works on it: concurrent
// streaming and non-streaming calls through the official SDK, every one
// logged (rows allocated in the workers and freed by the log writer), and
// a clean exit on SIGTERM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { openaiHandler, rssBytes, runFusion, sleep, sqlRows, startFakeUpstream, startFusion, waitFor } from '../lib/harness.js';

const BURST = 800; // streams at once

const RELEASE_BIN = process.env.FUSION_RELEASE_BIN || path.resolve('build/fusion');
const ADMIN_PASSWORD = 'release-build-admin-password';

describe('release build', () => {
  let up;
  let slow;
  let f;
  let key;
  let client;

  before(async () => {
    up = await startFakeUpstream(openaiHandler({ label: 'release', parts: ['Hello', ' from ', 'the ', 'release ', 'build'] }));
    slow = await startFakeUpstream(openaiHandler({ parts: Array.from({ length: 40 }, (_, i) => `part ${i} `), delayMs: 50 }));
    f = await startFusion({ bin: RELEASE_BIN, env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const p = await createRow(f, token, '/api/admin/providers', { name: 'rel', type: 'openai', base_url: up.url + '/v1', api_key: 'sk-release-upstream' });
    await createRow(f, token, '/api/admin/models', { name: 'rel-model', provider_id: p.id });
    const ps = await createRow(f, token, '/api/admin/providers', { name: 'rel-slow', type: 'openai', base_url: slow.url + '/v1', api_key: 'sk-release-slow' });
    await createRow(f, token, '/api/admin/models', { name: 'rel-slow', provider_id: ps.id });
    key = (await createRow(f, token, '/api/admin/keys', { name: 'rel-key' })).key;
    client = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: key, maxRetries: 0, timeout: 10_000 });
    await waitForModels(f, key, ['rel-model', 'rel-slow']);
  });
  after(async () => {
    try { if (f && f.proc.exitCode === null) await f.stop(); } finally { await up?.close(); await slow?.close(); }
  });

  test('--version and the start-up line name mimalloc as the allocator', async () => {
    const { code, stdout } = await runFusion(['--version'], { bin: RELEASE_BIN });
    assert.equal(code, 0);
    assert.match(stdout, /^fusion 0\.1\.0 \(\S+\), allocator mimalloc \d+\.\d+\.\d+\n$/);
    assert.match(f.logs(), /listening on .*; allocator mimalloc \d/);
  });

  test('memory a burst of streams took is given back once the gateway is quiet', { timeout: 60_000 }, async () => {
    const pid = f.proc.pid;
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(pid)); }, 50);
    const body = JSON.stringify({ model: 'rel-slow', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const one = async () => {
      const r = await fetch(f.baseUrl + '/v1/chat/completions', {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body,
      });
      assert.equal(r.status, 200);
      const text = await r.text();
      assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-200));
    };
    try {
      await Promise.all(Array.from({ length: BURST }, one));
    } finally {
      clearInterval(sampler);
    }
    const grew = peak - before;
    assert.ok(grew > 8 << 20, `the burst grew RSS by ${(grew / 1048576).toFixed(1)} MB only`);
    // Quiet from here: three checks 5 s apart, then each worker (both
    // had hundreds of the connections) gives back what its heap freed.
    // Not all of the growth: the upstream connections stay pooled and the
    // log writer's page cache stays full.
    const lines = () => f.logs().match(/worker \d: quiet after a burst; freed memory given back \(process RSS \d+ -> \d+ MB\)/g) ?? [];
    await waitFor(() => lines().length >= 2, { timeoutMs: 30_000, what: 'both workers giving memory back' });
    const now = rssBytes(pid);
    const mb = (n) => (n / 1048576).toFixed(1);
    assert.ok(now < peak - grew / 3, `RSS ${mb(before)} MB before, ${mb(peak)} MB at the peak, ${mb(now)} MB once given back`);
    await sleep(5_500);
    assert.equal(lines().length, 2, 'once per worker and burst, not at every quiet check');
  });

  test('concurrent calls stream and answer; every one is logged and the gateway exits cleanly', async () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const ids = [];
    const one = async (i) => {
      const id = `rel-${i}`;
      ids.push(id);
      const opts = { headers: { 'X-Request-Id': id } };
      if (i % 2) {
        const r = await client.chat.completions.create({ model: 'rel-model', messages }, opts);
        assert.equal(r.choices[0].message.content, 'Hello from the release build');
        return;
      }
      let text = '';
      const s = await client.chat.completions.create({ model: 'rel-model', messages, stream: true, stream_options: { include_usage: true } }, opts);
      let usage = null;
      for await (const c of s) {
        text += c.choices[0]?.delta?.content ?? '';
        usage = c.usage ?? usage;
      }
      assert.equal(text, 'Hello from the release build');
      assert.equal(usage?.total_tokens, 18);
    };
    for (let round = 0; round < 4; round++) await Promise.all(Array.from({ length: 50 }, (_, k) => one(round * 50 + k)));

    await stopClean(f, { keepDir: true });
    const rows = await sqlRows(f.dbPath, "SELECT id, status_code, outcome, stream, total_tokens FROM request_logs WHERE id LIKE 'rel-%' ORDER BY id");
    assert.deepEqual(rows.map((r) => r.id), ids.sort(), 'one row per call');
    for (const r of rows) {
      const streamed = Number(r.id.slice(4)) % 2 === 0 ? 1 : 0;
      assert.deepEqual([r.status_code, r.outcome, r.stream, r.total_tokens], [200, 'ok', streamed, 18], JSON.stringify(r));
    }
    rmSync(f.dir, { recursive: true, force: true });
  });
});
