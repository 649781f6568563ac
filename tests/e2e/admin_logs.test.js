// Admin API over the request log and the dashboard numbers:
// GET /api/admin/logs (newest first, pages, every filter, the LIKE search
// and its escaping, 400s naming the filter), GET /api/admin/logs/{id},
// DELETE /api/admin/logs?before= (in batches, administrators only) and
// GET /api/admin/stats (exact counts and percentiles recomputed here).
//
// Rows are seeded straight into request_logs with the sqlite3 CLI while
// the gateway runs (WAL lets both write), so every expected value below
// is computed from the seed, not from another endpoint.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { api, assertError, createRow, login, show, stopClean } from '../lib/admin.js';
import { startFusion } from '../lib/harness.js';

const ADMIN_PASSWORD = 'logs-admin-password-1';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// Run SQL (on stdin) against the database with the sqlite3 CLI, writable.
function sqlExec(dbPath, sql) {
  return new Promise((resolve, reject) => {
    const p = spawn('sqlite3', ['-bail', '-cmd', '.timeout 5000', dbPath], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sqlite3 exited ${code}: ${err}`))));
    p.stdin.end(sql);
  });
}

const lit = (v) => (v === null || v === undefined ? 'NULL' : typeof v === 'number' ? String(v) : `'${String(v).replaceAll("'", "''")}'`);
const COLS = ['id', 'created_at', 'client_key_id', 'client_key_name', 'client_format', 'client_model', 'provider_id',
  'provider_name', 'provider_model', 'status_code', 'outcome', 'error', 'latency_ms', 'ttft_ms', 'prompt_tokens',
  'completion_tokens', 'total_tokens', 'cached_tokens', 'stream', 'client_addr', 'attempts', 'request_body', 'response_body'];
const insertSql = (rows) => `BEGIN;\n${rows.map((r) => `INSERT INTO request_logs (${COLS.join(', ')}) VALUES (${COLS.map((c) => lit(r[c])).join(', ')});`).join('\n')}\nCOMMIT;\n`;

// Nearest rank, in integers: the value at rank ceil(p * n / 100); null for no values.
const pct = (sorted, p) => (sorted.length ? sorted[Math.max(1, Math.ceil((p * sorted.length) / 100)) - 1] : null);
const bytes = (s) => (s === null ? null : Buffer.byteLength(s, 'utf8'));
const iso = (ms) => new Date(ms).toISOString();

describe('admin: request logs and stats', () => {
  let f;
  let token;
  let roToken;
  let alpha;
  let beta;
  let now;
  const rows = []; // every seeded row, as inserted
  const call = (method, p, tok = token) => api(f, method, p, { token: tok });
  const list = async (qs) => {
    const res = await call('GET', `/api/admin/logs${qs ? `?${qs}` : ''}`);
    assert.equal(res.status, 200, show(res));
    return res.json;
  };
  // The ids a filter must return, newest first.
  const expectIds = (pred) => rows.filter(pred).sort((a, b) => b.created_at - a.created_at).map((r) => r.id);
  const allIds = async (qs) => {
    const j = await list(qs ? `page_size=200&${qs}` : 'page_size=200');
    assert.equal(j.pagination.total, j.data.length, 'everything fits on one page here');
    return j.data.map((r) => r.id);
  };

  before(async () => {
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    alpha = await createRow(f, token, '/api/admin/providers', { name: 'alpha', type: 'openai', base_url: 'https://alpha.example/v1' });
    beta = await createRow(f, token, '/api/admin/providers', { name: 'beta', type: 'anthropic', base_url: 'https://beta.example', enabled: false });
    await createRow(f, token, '/api/admin/models', { name: 'gpt-a', provider_id: alpha.id });
    await createRow(f, token, '/api/admin/models', { name: 'gpt-b', provider_id: beta.id, enabled: false });
    await createRow(f, token, '/api/admin/models', { name: 'gpt-c', provider_id: alpha.id });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'gpt-a', provider_id: alpha.id, provider_model: 'gpt-4o' });
    await createRow(f, token, '/api/admin/keys', { name: 'k1' });
    await createRow(f, token, '/api/admin/keys', { name: 'k2', enabled: false });
    await createRow(f, token, '/api/admin/keys', { name: 'k3' });
    await createRow(f, token, '/api/admin/users', { username: 'reader', password: 'reader-password-1', is_admin: false });
    roToken = await login(f, 'reader', 'reader-password-1');

    // 40 recent rows a minute apart (newest first), then 6 rows 3 days old.
    now = Date.now();
    const statuses = [200, 200, 429, 500, 400, 201, 502, null, 200, 404];
    const bodies = [
      ['{"q":"100% sure"}', '{"a":"ok"}'],
      ['{"q":"snake_case here"}', null],
      ['{"q":"back\\\\slash"}', '{"a":"x"}'],
      ['{"q":"a_b"}', '{"a":"axb"}'],
      ['{"q":"caf\u00e9 \u2603"}', '{"a":"\u00fcber"}'],
      [null, null],
      ['{"q":"plain"}', '{"a":"50% off"}'],
      ['{"q":"percent literal %% twice"}', '{}'],
    ];
    for (let i = 0; i < 46; i++) {
      const old = i >= 40;
      const status = statuses[i % statuses.length];
      const prov = i % 3 === 0 ? alpha : i % 3 === 1 ? beta : null;
      const [reqBody, respBody] = bodies[i % bodies.length];
      rows.push({
        id: `log-${String(i).padStart(2, '0')}`,
        created_at: old ? now - 3 * DAY - i * 1000 : now - 2 * HOUR - i * 60_000,
        client_key_id: i % 2 === 0 ? 1 : 2,
        client_key_name: i % 2 === 0 ? 'k1' : 'k2',
        client_format: 'openai',
        client_model: i % 4 === 0 ? 'gpt-b' : 'gpt-a',
        provider_id: prov?.id ?? null,
        provider_name: prov?.name ?? null,
        provider_model: prov ? 'upstream-model' : null,
        status_code: status,
        outcome: status === null ? 'client_disconnected' : status < 400 ? 'ok' : status >= 500 ? 'upstream_error' : 'upstream_client_error',
        error: status >= 400 ? `error ${status}` : null,
        latency_ms: i % 7 === 6 ? null : 10 + ((i * 37) % 500),
        ttft_ms: i % 5 === 0 ? null : 5 + ((i * 13) % 90),
        prompt_tokens: i % 6 === 5 ? null : 10 + i,
        completion_tokens: i % 6 === 5 ? null : 2 * i,
        total_tokens: i % 6 === 5 ? null : 10 + 3 * i,
        cached_tokens: null,
        stream: i % 2,
        client_addr: '127.0.0.1',
        attempts: JSON.stringify([{ provider_id: prov?.id ?? null, status, ms: 12 }]),
        request_body: reqBody,
        response_body: respBody,
      });
    }
    await sqlExec(f.dbPath, insertSql(rows));
  });
  after(async () => { await stopClean(f); });

  test('every endpoint needs a session', async () => {
    for (const [m, p] of [['GET', '/api/admin/logs'], ['GET', '/api/admin/logs/log-00'], ['DELETE', '/api/admin/logs?before=0'], ['GET', '/api/admin/stats']]) {
      assertError(await api(f, m, p), 401);
    }
  });

  test('list: newest first, list rows without bodies, pagination', async () => {
    const j = await list('');
    assert.deepEqual(j.pagination, { page: 1, page_size: 20, total: rows.length });
    const want = expectIds(() => true);
    assert.deepEqual(j.data.map((r) => r.id), want.slice(0, 20));
    for (const r of j.data) {
      const seed = rows.find((s) => s.id === r.id);
      assert.equal(r.created_at, iso(seed.created_at));
      assert.equal(r.request_body, undefined, 'no bodies in lists');
      assert.equal(r.response_body, undefined);
      assert.equal(r.request_body_bytes, bytes(seed.request_body), `${r.id} request bytes`);
      assert.equal(r.response_body_bytes, bytes(seed.response_body), `${r.id} response bytes`);
      assert.deepEqual(r.attempts, JSON.parse(seed.attempts));
      assert.equal(r.stream, seed.stream === 1);
      for (const k of ['client_key_id', 'client_key_name', 'client_model', 'provider_id', 'provider_name', 'status_code', 'outcome', 'error', 'latency_ms', 'ttft_ms', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens', 'client_addr']) {
        assert.equal(r[k], seed[k], `${r.id}.${k}`);
      }
    }
    // Pages of 7 put together are the whole list, in order.
    const got = [];
    for (let page = 1; ; page++) {
      const p = await list(`page=${page}&page_size=7`);
      assert.deepEqual(p.pagination, { page, page_size: 7, total: rows.length });
      if (p.data.length === 0) break;
      assert.ok(p.data.length <= 7);
      got.push(...p.data.map((r) => r.id));
    }
    assert.deepEqual(got, want);
    // HEAD answers like GET, without a body.
    const head = await fetch(`${f.baseUrl}/api/admin/logs`, { method: 'HEAD', headers: { authorization: `Bearer ${token}` } });
    assert.equal(head.status, 200);
  });

  test('filters: provider, model, status, key, outcome, time window', async () => {
    assert.deepEqual(await allIds(`provider=${alpha.id}`), expectIds((r) => r.provider_id === alpha.id));
    assert.deepEqual(await allIds('provider=beta'), expectIds((r) => r.provider_name === 'beta'));
    assert.deepEqual(await allIds('provider=nosuch'), []);
    assert.deepEqual(await allIds('model=gpt-b'), expectIds((r) => r.client_model === 'gpt-b'));
    assert.deepEqual(await allIds('status=429'), expectIds((r) => r.status_code === 429));
    for (const c of [2, 4, 5]) {
      const ids = expectIds((r) => r.status_code !== null && Math.floor(r.status_code / 100) === c);
      assert.ok(ids.length > 0);
      assert.deepEqual(await allIds(`status=${c}xx`), ids, `${c}xx`);
    }
    assert.deepEqual(await allIds('status=4XX'), await allIds('status=4xx'));
    assert.deepEqual(await allIds('key_id=2'), expectIds((r) => r.client_key_id === 2));
    assert.deepEqual(await allIds('outcome=upstream_error'), expectIds((r) => r.outcome === 'upstream_error'));
    assert.deepEqual(await allIds(`provider=${alpha.id}&status=5xx&model=gpt-a`),
      expectIds((r) => r.provider_id === alpha.id && r.status_code >= 500 && r.client_model === 'gpt-a'));
    // from is inclusive, to exclusive; ISO-8601 and epoch ms alike.
    const a = rows[10].created_at;
    const b = rows[3].created_at;
    const inWindow = expectIds((r) => r.created_at >= a && r.created_at < b);
    assert.ok(inWindow.includes(rows[10].id) && !inWindow.includes(rows[3].id));
    assert.deepEqual(await allIds(`from=${a}&to=${b}`), inWindow);
    assert.deepEqual(await allIds(`from=${encodeURIComponent(iso(a))}&to=${encodeURIComponent(iso(b))}`), inWindow);
    assert.deepEqual(await allIds(`to=${now - DAY}`), expectIds((r) => r.created_at < now - DAY));
    assert.deepEqual(await allIds(`from=${a}&to=${a}`), []);
    // Empty values mean "not given".
    assert.equal((await list('provider=&model=&status=&q=')).pagination.total, rows.length);
  });

  test('q: LIKE search in both bodies, with %, _ and \\ taken literally', async () => {
    const recent = (r) => r.created_at >= now - DAY;
    const has = (s) => (r) => (r.request_body ?? '').includes(s) || (r.response_body ?? '').includes(s);
    for (const q of ['%', '_', 'a_b', '\\', '%%', 'snake_case', '50% off', '\u00fcber', 'sure"}']) {
      const want = expectIds((r) => recent(r) && has(q)(r));
      assert.ok(want.length > 0, `the seed has ${q}`);
      assert.deepEqual(await allIds(`q=${encodeURIComponent(q)}`), want, `q=${q}`);
    }
    // '%' is not a wildcard: rows without a literal % are not found.
    assert.ok(!(await allIds('q=%25')).includes(rows.find((r) => r.request_body === '{"q":"plain"}' && !r.response_body.includes('%'))?.id ?? 'none'));
    assert.deepEqual(await allIds('q=nothing-like-this'), []);
    // Without from, a search covers the last 24 hours; from widens it.
    const oldMatch = expectIds((r) => !recent(r) && has('%')(r));
    assert.ok(oldMatch.length > 0);
    assert.ok(!(await allIds('q=%25')).some((id) => oldMatch.includes(id)));
    assert.deepEqual(await allIds(`q=%25&from=${now - 4 * DAY}`), expectIds(has('%')));
    // Combined with other filters.
    assert.deepEqual(await allIds('q=%25&status=2xx'), expectIds((r) => recent(r) && has('%')(r) && r.status_code >= 200 && r.status_code < 300));
  });

  test('invalid filter values are 400s naming the filter', async () => {
    const cases = [
      ['status=abc', 'status'], ['status=600', 'status'], ['status=6xx', 'status'], ['status=42', 'status'], ['status=-200', 'status'],
      ['key_id=0', 'key_id'], ['key_id=x', 'key_id'], ['key_id=1.5', 'key_id'],
      ['from=yesterday', 'from'], ['to=2027-02-30', 'to'], [`from=${now}&to=${now - 1}`, 'from'],
      ['page=0', 'page'], ['page_size=201', 'page_size'], ['page_size=x', 'page_size'],
      [`q=${'x'.repeat(257)}`, 'q'], ['q=%FF', 'q'],
      ['model=a%0Ab', 'model'], [`provider=${'p'.repeat(300)}`, 'provider'], ['outcome=%01', 'outcome'],
      ['bogus=1', 'bogus'], ['status=200&status=201', 'status'],
    ];
    for (const [qs, field] of cases) {
      const res = await call('GET', `/api/admin/logs?${qs}`);
      assertError(res, 400, field);
    }
    // 256 bytes is still fine.
    assert.equal((await call('GET', `/api/admin/logs?q=${'x'.repeat(256)}`)).status, 200);
  });

  test('detail: the whole row with bodies and attempts; 404 otherwise', async () => {
    const seed = rows.find((r) => r.request_body?.includes('caf'));
    const res = await call('GET', `/api/admin/logs/${seed.id}`);
    assert.equal(res.status, 200, show(res));
    const d = res.json;
    assert.equal(d.id, seed.id);
    assert.equal(d.request_body, seed.request_body);
    assert.equal(d.response_body, seed.response_body);
    assert.equal(d.request_body_bytes, bytes(seed.request_body));
    assert.ok(d.request_body_bytes > seed.request_body.length, 'bytes, not characters');
    assert.deepEqual(d.attempts, JSON.parse(seed.attempts));
    assert.equal(d.created_at, iso(seed.created_at));
    const nulls = rows.find((r) => r.request_body === null);
    const n = (await call('GET', `/api/admin/logs/${nulls.id}`)).json;
    assert.equal(n.request_body, null);
    assert.equal(n.request_body_bytes, null);
    for (const id of ['no-such-log', 'bad%20id', 'x'.repeat(65)]) {
      assertError(await call('GET', `/api/admin/logs/${id}`), 404);
    }
    assertError(await call('GET', '/api/admin/logs/log-00/more'), 404);
    const del = await call('DELETE', '/api/admin/logs/log-00');
    assertError(del, 405);
    assert.equal(del.headers.get('allow'), 'GET, HEAD');
    const post = await call('POST', '/api/admin/logs');
    assertError(post, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD, DELETE');
    // Read-only users may read.
    assert.equal((await call('GET', `/api/admin/logs/${seed.id}`, roToken)).status, 200);
    assert.equal((await call('GET', '/api/admin/logs', roToken)).status, 200);
  });

  test('stats: exact counts, sums, averages and percentiles', async () => {
    const check = async (hours) => {
      const res = await call('GET', `/api/admin/stats${hours ? `?hours=${hours}` : ''}`);
      assert.equal(res.status, 200, show(res));
      const s = res.json;
      const h = hours ?? 24;
      assert.equal(s.window_hours, h);
      const since = Date.parse(s.since);
      assert.ok(Math.abs(since - (Date.now() - h * HOUR)) < 60_000, s.since);
      assert.deepEqual(s.totals, {
        providers: { total: 2, enabled: 1 },
        models: { total: 3, enabled: 2 },
        model_mappings: { total: 1, enabled: 1 },
        client_keys: { total: 3, enabled: 2 },
      });
      const win = rows.filter((r) => r.created_at >= since);
      const ok = win.filter((r) => r.status_code >= 200 && r.status_code < 400).length;
      const sum = (k, rs = win) => rs.reduce((a, r) => a + (r[k] ?? 0), 0);
      const avg = (k) => { const v = win.filter((r) => r[k] !== null); return v.length ? sum(k, v) / v.length : null; };
      const q = s.requests;
      assert.equal(q.total, win.length);
      assert.equal(q.ok, ok);
      assert.equal(q.errors, win.length - ok);
      if (win.length) assert.ok(Math.abs(q.success_rate - ok / win.length) < 1e-4, `success_rate ${q.success_rate}`);
      else assert.equal(q.success_rate, null);
      assert.equal(q.prompt_tokens, sum('prompt_tokens'));
      assert.equal(q.completion_tokens, sum('completion_tokens'));
      assert.equal(q.total_tokens, sum('total_tokens'));
      for (const k of ['latency_ms', 'ttft_ms']) {
        const want = avg(k);
        const got = q[`avg_${k}`];
        if (want === null) assert.equal(got, null, `avg_${k}`);
        else assert.ok(Math.abs(got - want) < 0.01, `avg_${k} ${got} vs ${want}`);
      }

      assert.deepEqual(s.providers.map((p) => p.id), [alpha.id, beta.id]);
      for (const p of s.providers) {
        const pr = win.filter((r) => r.provider_id === p.id);
        const lat = pr.map((r) => r.latency_ms).filter((v) => v !== null).sort((x, y) => x - y);
        assert.equal(p.name, p.id === alpha.id ? 'alpha' : 'beta');
        assert.equal(p.requests, pr.length);
        assert.equal(p.errors, pr.filter((r) => !(r.status_code >= 200 && r.status_code < 400)).length);
        assert.equal(p.tokens, sum('total_tokens', pr));
        assert.equal(p.p50_latency_ms, pct(lat, 50), `${p.name} p50 of ${lat}`);
        assert.equal(p.p95_latency_ms, pct(lat, 95), `${p.name} p95 of ${lat}`);
        assert.equal(p.health_status, 'unknown');
        assert.equal(p.latency_ms, null);
        assert.equal(p.deleted, false);
      }
      for (const k of ['written', 'dropped', 'queued']) assert.equal(typeof s.log_writer[k], 'number', k);
      return s;
    };
    const day = await check();
    assert.equal(day.requests.total, 40);
    const wide = await check(100); // the 3-day-old rows too
    assert.equal(wide.requests.total, rows.length);
    await check(1); // nothing in the last hour
    const empty = (await call('GET', '/api/admin/stats?hours=1')).json;
    assert.equal(empty.requests.total, 0);
    assert.equal(empty.requests.success_rate, null);
    assert.equal(empty.requests.avg_latency_ms, null);
    assert.equal(empty.providers[0].p50_latency_ms, null);

    for (const qs of ['hours=0', 'hours=8761', 'hours=abc', 'hours=', 'days=1']) {
      assertError(await call('GET', `/api/admin/stats?${qs}`), 400, qs.split('=')[0]);
    }
    assert.equal((await call('GET', '/api/admin/stats?hours=8760')).status, 200);
    assert.equal((await call('GET', '/api/admin/stats', roToken)).status, 200);
    const put = await call('PUT', '/api/admin/stats');
    assertError(put, 405);
    assert.equal(put.headers.get('allow'), 'GET, HEAD');
  });

  test('stats: a provider that is gone still shows with its rows', async () => {
    const gone = await createRow(f, token, '/api/admin/providers', { name: 'gone', type: 'openai', base_url: 'https://gone.example/v1' });
    const t = Date.now() - 5 * 60_000;
    const extra = [0, 1, 2, 3, 4].map((i) => ({
      id: `gone-${i}`, created_at: t + i, provider_id: gone.id, provider_name: 'gone', status_code: i < 4 ? 200 : 503,
      latency_ms: [100, 300, 200, 500, 400][i], total_tokens: 7, stream: 0,
    }));
    await sqlExec(f.dbPath, insertSql(extra));
    assert.equal((await call('DELETE', `/api/admin/providers/${gone.id}`)).status, 200);
    const s = (await call('GET', '/api/admin/stats')).json;
    const g = s.providers.find((p) => p.id === gone.id);
    assert.deepEqual(g, {
      id: gone.id, name: 'gone', requests: 5, errors: 1, tokens: 35, p50_latency_ms: 300, p95_latency_ms: 500,
      health_status: null, latency_ms: null, deleted: true,
    });
    await sqlExec(f.dbPath, "DELETE FROM request_logs WHERE id LIKE 'gone-%';");
  });

  test('delete before: administrators only, batches, exact count', async () => {
    assertError(await call('DELETE', '/api/admin/logs?before=0', roToken), 403);
    assertError(await call('DELETE', '/api/admin/logs'), 400, 'before');
    assertError(await call('DELETE', '/api/admin/logs?before=soon'), 400, 'before');
    assertError(await call('DELETE', '/api/admin/logs?before=0&provider=1'), 400, 'provider');

    // 12,000 old rows: more than two batches of 5000.
    const t0 = now - 10 * DAY;
    await sqlExec(f.dbPath, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 12000)
      INSERT INTO request_logs (id, created_at, status_code) SELECT 'bulk-' || i, ${t0} - i, 200 FROM c;`);
    assert.equal((await list('')).pagination.total, rows.length + 12000);

    let res = await call('DELETE', `/api/admin/logs?before=${now - 9 * DAY}`);
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(res.json, { deleted: 12000, before: iso(now - 9 * DAY), complete: true });
    assert.equal((await list('')).pagination.total, rows.length);

    // before is exclusive: a row exactly at it stays.
    const cut = rows[42].created_at; // a 3-day-old row
    const older = rows.filter((r) => r.created_at < cut);
    res = await call('DELETE', `/api/admin/logs?before=${encodeURIComponent(iso(cut))}`);
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.deleted, older.length);
    assert.deepEqual(await allIds(''), expectIds((r) => r.created_at >= cut));
    assertError(await call('GET', `/api/admin/logs/${older[0].id}`), 404);

    res = await call('DELETE', `/api/admin/logs?before=${cut}`);
    assert.deepEqual(res.json, { deleted: 0, before: iso(cut), complete: true });
  });
});
