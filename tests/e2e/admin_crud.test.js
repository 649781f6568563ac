// Admin CRUD: providers (and their keys), models, model mappings, client
// keys, users and settings — create / get / list with pagination /
// partial update / delete, validation messages that name the field,
// conflicts, cascades, batch operations, and secrets shown only masked.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { api, assertError, login, show, stopClean } from '../lib/admin.js';
import { startFusion, tempDir } from '../lib/harness.js';

const ADMIN_PASSWORD = 'crud-admin-password-1';

function assertList(res, { page = 1, pageSize = 20 } = {}) {
  assert.equal(res.status, 200, show(res));
  assert.deepEqual(Object.keys(res.json).sort(), ['data', 'pagination']);
  assert.ok(Array.isArray(res.json.data));
  assert.deepEqual(Object.keys(res.json.pagination).sort(), ['page', 'page_size', 'total']);
  assert.equal(res.json.pagination.page, page);
  assert.equal(res.json.pagination.page_size, pageSize);
  assert.equal(typeof res.json.pagination.total, 'number');
  return res.json;
}

describe('admin CRUD', () => {
  let f;
  let token;
  let seq = 0;
  const uniq = (p) => `${p}-${++seq}`;
  const call = (method, p, body) => api(f, method, p, { token, body });
  // GET a collection and check the list shape against its own query.
  async function listOf(p) {
    const q = new URL(p, 'http://x').searchParams;
    return assertList(await call('GET', p), { page: Number(q.get('page') ?? 1), pageSize: Number(q.get('page_size') ?? 20) });
  }

  async function makeProvider(extra = {}) {
    const res = await call('POST', '/api/admin/providers', { name: uniq('prov'), type: 'openai', base_url: 'https://upstream.example/v1', ...extra });
    assert.equal(res.status, 201, show(res));
    return res.json;
  }

  before(async () => {
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
  });
  after(async () => { await stopClean(f); });

  // ---- providers ---------------------------------------------------------

  test('providers: create, get, list, partial update, delete', async () => {
    let res = await call('POST', '/api/admin/providers', {
      name: 'crud-provider', type: 'anthropic', base_url: 'https://api.anthropic.com', priority: 10, weight: 3,
      timeout_ms: 30000, enabled: true, api_key: 'sk-ant-crud-0123456789abcdef',
    });
    assert.equal(res.status, 201, show(res));
    const p = res.json;
    assert.equal(typeof p.id, 'number');
    assert.equal(p.name, 'crud-provider');
    assert.equal(p.type, 'anthropic');
    assert.equal(p.base_url, 'https://api.anthropic.com');
    assert.equal(p.priority, 10);
    assert.equal(p.weight, 3);
    assert.equal(p.timeout_ms, 30000);
    assert.equal(p.enabled, true);
    assert.ok(!Number.isNaN(Date.parse(p.created_at)), p.created_at);

    res = await call('GET', `/api/admin/providers/${p.id}`);
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.name, 'crud-provider');
    assert.ok(!res.text.includes('sk-ant-crud-0123456789abcdef'), 'the key is not shown in clear');
    assert.ok(res.json.api_key.endsWith('cdef'), `masked key: ${res.json.api_key}`);

    const list = await listOf('/api/admin/providers');
    assert.ok(list.data.some((x) => x.id === p.id));

    // Partial update: only what is given changes.
    res = await call('PUT', `/api/admin/providers/${p.id}`, { priority: 42 });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.priority, 42);
    assert.equal(res.json.name, 'crud-provider');
    assert.equal(res.json.type, 'anthropic');
    assert.equal(res.json.base_url, 'https://api.anthropic.com');
    assert.equal(res.json.weight, 3);
    assert.equal(res.json.timeout_ms, 30000);
    assert.equal(res.json.enabled, true);
    assert.equal(res.json.created_at, p.created_at);
    res = await call('PUT', `/api/admin/providers/${p.id}`, { enabled: false, name: 'crud-provider-renamed' });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.enabled, false);
    assert.equal(res.json.priority, 42);
    res = await call('GET', `/api/admin/providers/${p.id}`);
    assert.equal(res.json.name, 'crud-provider-renamed');
    assert.equal(res.json.enabled, false);

    res = await call('DELETE', `/api/admin/providers/${p.id}`);
    assert.equal(res.status, 200, show(res));
    assertError(await call('GET', `/api/admin/providers/${p.id}`), 404);
    assertError(await call('DELETE', `/api/admin/providers/${p.id}`), 404);
    assert.ok(!(await listOf('/api/admin/providers?page_size=200')).data.some((x) => x.id === p.id));
  });

  test('providers: unknown ids are 404 for get, update and delete', async () => {
    for (const [method, body] of [['GET'], ['PUT', { priority: 1 }], ['DELETE']]) {
      assertError(await call(method, '/api/admin/providers/987654', body), 404);
    }
    assertError(await call('GET', '/api/admin/providers/987654/keys'), 404);
    assertError(await call('POST', '/api/admin/providers/987654/keys', { api_key: 'sk-whatever-0123456789' }), 404);
  });

  test('providers: validation names the field', async () => {
    const ok = { name: uniq('valid'), type: 'openai', base_url: 'https://a.example' };
    const without = (k) => Object.fromEntries(Object.entries(ok).filter(([x]) => x !== k));
    assertError(await call('POST', '/api/admin/providers', without('name')), 400, 'name');
    assertError(await call('POST', '/api/admin/providers', without('type')), 400, 'type');
    assertError(await call('POST', '/api/admin/providers', without('base_url')), 400, 'base_url');
    const wrong = [
      ['name', 123], ['name', ''], ['name', null], ['type', 7], ['priority', 'high'], ['priority', 1.5], ['enabled', 'yes'],
      ['enabled', 1], ['weight', 0], ['timeout_ms', 5], ['base_url', 'ftp://a.example'], ['base_url', 'https://user:pw@a.example'],
      ['base_url', 42], ['headers', 'X-A: b'], ['headers', { Host: 'evil' }], ['api_key', 12345],
    ];
    for (const [k, v] of wrong) {
      assertError(await call('POST', '/api/admin/providers', { ...ok, [k]: v }), 400, k);
    }
    assertError(await call('POST', '/api/admin/providers', { ...ok, colour: 'blue' }), 400, 'colour');
    assertError(await call('POST', '/api/admin/providers', { ...ok, id: 5 }), 400, 'id');
    assertError(await call('POST', '/api/admin/providers', { ...ok, health_status: 'ok' }), 400, 'health_status');

    const res = await call('POST', '/api/admin/providers', { ...ok, type: 'foo' });
    assertError(res, 400, 'type');
    for (const t of ['openai', 'anthropic', 'gemini']) assert.ok(res.json.error.message.includes(t), res.json.error.message);

    // Nothing of the above was stored.
    const names = (await listOf('/api/admin/providers?page_size=200')).data.map((x) => x.name);
    assert.ok(!names.includes(ok.name));

    // Updates validate the same way.
    const p = await makeProvider();
    assertError(await call('PUT', `/api/admin/providers/${p.id}`, { priority: 'x' }), 400, 'priority');
    assertError(await call('PUT', `/api/admin/providers/${p.id}`, { colour: 'x' }), 400, 'colour');
    assertError(await call('PUT', `/api/admin/providers/${p.id}`, { type: 'foo' }), 400, 'type');
  });

  test('providers: a duplicate name is 409', async () => {
    const p = await makeProvider();
    assertError(await call('POST', '/api/admin/providers', { name: p.name, type: 'gemini', base_url: 'https://g.example' }), 409);
    const q = await makeProvider();
    assertError(await call('PUT', `/api/admin/providers/${q.id}`, { name: p.name }), 409);
    assert.equal((await call('GET', `/api/admin/providers/${q.id}`)).json.name, q.name);
  });

  test('providers: header values are shown masked only', async () => {
    const value = 'hdr-value-abcdef0123456789';
    let res = await call('POST', '/api/admin/providers', {
      name: uniq('with-headers'), type: 'openai', base_url: 'https://a.example', headers: { 'X-Org-Secret': value, 'X-Plain': 'visible-maybe' },
    });
    assert.equal(res.status, 201, show(res));
    const id = res.json.id;
    for (const r of [res, await call('GET', `/api/admin/providers/${id}`), await call('GET', '/api/admin/providers?page_size=200')]) {
      assert.ok(!r.text.includes(value), `header value in clear: ${r.text.slice(0, 300)}`);
      assert.ok(!r.text.includes('abcdef012345'), 'no long part of the value');
    }
    const shown = res.json.headers;
    assert.equal(typeof shown, 'object');
    assert.ok('X-Org-Secret' in shown, JSON.stringify(shown));
    assert.notEqual(shown['X-Org-Secret'], value);
    assert.ok(shown['X-Org-Secret'].endsWith('6789'), shown['X-Org-Secret']);
    // Replacing and removing the headers.
    res = await call('PUT', `/api/admin/providers/${id}`, { headers: { 'X-Other': 'other-secret-value-99999999' } });
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(Object.keys(res.json.headers), ['X-Other']);
    assert.ok(!res.text.includes('other-secret-value-99999999'));
    res = await call('PUT', `/api/admin/providers/${id}`, { headers: null });
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(res.json.headers, {});
  });

  // ---- provider keys -------------------------------------------------------

  test('provider keys: create, list, get, update (resets status), delete', async () => {
    const p = await makeProvider({ api_key: 'sk-first-key-000000000000aaaa' });
    const other = await makeProvider({ api_key: 'sk-other-key-000000000000bbbb' });
    const secret = 'sk-second-key-11111111111cccc';
    let res = await call('POST', `/api/admin/providers/${p.id}/keys`, { api_key: secret, weight: 50 });
    assert.equal(res.status, 201, show(res));
    const k = res.json;
    assert.equal(k.provider_id, p.id);
    assert.equal(k.weight, 50);
    assert.equal(k.enabled, true);
    assert.equal(k.status, 'ok');
    assert.ok(!res.text.includes(secret), 'key in clear in the create answer');
    assert.ok(typeof k.api_key === 'string' && k.api_key.endsWith('cccc'), `masked: ${k.api_key}`);

    let list = await listOf(`/api/admin/providers/${p.id}/keys`);
    assert.equal(list.pagination.total, 2);
    assert.ok(list.data.some((x) => x.id === k.id));
    assert.ok(list.data.every((x) => x.provider_id === p.id));
    list = await listOf(`/api/admin/providers/${other.id}/keys`);
    assert.equal(list.pagination.total, 1);
    assert.ok(!list.data.some((x) => x.id === k.id));
    assert.equal((await call('GET', `/api/admin/providers/${p.id}`)).json.key_count, 2);

    res = await call('GET', `/api/admin/provider-keys/${k.id}`);
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.id, k.id);
    assert.ok(!res.text.includes(secret));

    res = await call('PUT', `/api/admin/provider-keys/${k.id}`, { weight: 7 });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.weight, 7);
    assert.equal(res.json.api_key, k.api_key, 'the key itself unchanged');

    // The proxy marks a key bad (simulated in the database); editing it trusts it again.
    execFileSync('sqlite3', ['-cmd', '.timeout 5000', f.dbPath,
      `UPDATE provider_keys SET status = 'invalid', status_reason = 'upstream said 401' WHERE id = ${k.id}`]);
    res = await call('GET', `/api/admin/provider-keys/${k.id}`);
    assert.equal(res.json.status, 'invalid');
    res = await call('PUT', `/api/admin/provider-keys/${k.id}`, { api_key: 'sk-replaced-key-2222222222dddd' });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.status, 'ok');
    assert.equal(res.json.status_reason, null);
    assert.ok(res.json.api_key.endsWith('dddd'));

    // Validation.
    assertError(await call('POST', `/api/admin/providers/${p.id}/keys`, { weight: 5 }), 400, 'api_key');
    assertError(await call('POST', `/api/admin/providers/${p.id}/keys`, { api_key: 5 }), 400, 'api_key');
    assertError(await call('POST', `/api/admin/providers/${p.id}/keys`, { api_key: 'sk-x-0123456789', weight: 'heavy' }), 400, 'weight');
    assertError(await call('POST', `/api/admin/providers/${p.id}/keys`, { api_key: 'sk-x-0123456789', colour: 1 }), 400, 'colour');
    assertError(await call('PUT', `/api/admin/provider-keys/${k.id}`, { provider_id: other.id }), 400, 'provider_id');
    assertError(await call('PUT', `/api/admin/provider-keys/${k.id}`, { status: 'ok' }), 400, 'status');
    assertError(await call('GET', '/api/admin/provider-keys/987654'), 404);
    assertError(await call('PUT', '/api/admin/provider-keys/987654', { weight: 1 }), 404);

    res = await call('DELETE', `/api/admin/provider-keys/${k.id}`);
    assert.equal(res.status, 200, show(res));
    assertError(await call('GET', `/api/admin/provider-keys/${k.id}`), 404);
    assertError(await call('DELETE', `/api/admin/provider-keys/${k.id}`), 404);
    assert.equal((await listOf(`/api/admin/providers/${p.id}/keys`)).pagination.total, 1);
  });

  // ---- models and mappings -----------------------------------------------------

  test('models: create, get, list with filters, update, delete, validation', async () => {
    const p = await makeProvider();
    let res = await call('POST', '/api/admin/models', { name: 'gpt-4o', provider_id: p.id, description: 'fast', input_price_per_mtok: 2.5 });
    assert.equal(res.status, 201, show(res));
    const m = res.json;
    assert.equal(m.name, 'gpt-4o');
    assert.equal(m.provider_id, p.id);
    assert.equal(m.provider_model, 'gpt-4o', 'provider_model defaults to the name');
    assert.equal(m.enabled, true);
    assert.equal(m.input_price_per_mtok, 2.5);

    res = await call('GET', `/api/admin/models/${m.id}`);
    assert.equal(res.status, 200);
    assert.equal(res.json.description, 'fast');

    const list = await listOf(`/api/admin/models?provider_id=${p.id}`);
    assert.equal(list.pagination.total, 1);
    assert.equal(list.data[0].id, m.id);

    res = await call('PUT', `/api/admin/models/${m.id}`, { description: 'two\nlines', enabled: false });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.description, 'two\nlines');
    assert.equal(res.json.enabled, false);
    assert.equal(res.json.name, 'gpt-4o');
    assert.equal(res.json.input_price_per_mtok, 2.5);

    assertError(await call('POST', '/api/admin/models', { name: 'gpt-4o', provider_id: p.id }), 409);
    assertError(await call('POST', '/api/admin/models', { provider_id: p.id }), 400, 'name');
    assertError(await call('POST', '/api/admin/models', { name: 'x' }), 400, 'provider_id');
    assertError(await call('POST', '/api/admin/models', { name: 'x', provider_id: 987654 }), 400, 'provider_id');
    assertError(await call('POST', '/api/admin/models', { name: 'x', provider_id: String(p.id) }), 400, 'provider_id');
    assertError(await call('POST', '/api/admin/models', { name: 'x', provider_id: p.id, input_price_per_mtok: -1 }), 400, 'input_price_per_mtok');
    assertError(await call('POST', '/api/admin/models', { name: 'x', provider_id: p.id, enabled: 'true' }), 400, 'enabled');
    assertError(await call('POST', '/api/admin/models', { name: 'x', provider_id: p.id, vendor: 'y' }), 400, 'vendor');
    assertError(await call('PUT', `/api/admin/models/${m.id}`, { provider_id: 987654 }), 400, 'provider_id');
    assertError(await call('GET', `/api/admin/models?colour=red`), 400, 'colour');
    assertError(await call('GET', '/api/admin/models/987654'), 404);
    assertError(await call('PUT', '/api/admin/models/987654', { enabled: true }), 404);

    res = await call('DELETE', `/api/admin/models/${m.id}`);
    assert.equal(res.status, 200, show(res));
    assertError(await call('GET', `/api/admin/models/${m.id}`), 404);
    assertError(await call('DELETE', `/api/admin/models/${m.id}`), 404);
  });

  test('model mappings: create, get, list, update, delete, validation', async () => {
    const p = await makeProvider();
    const body = { client_model: 'gpt-4', provider_id: p.id, provider_model: 'gpt-4o-2024-08-06', priority: 5 };
    let res = await call('POST', '/api/admin/model-mappings', body);
    assert.equal(res.status, 201, show(res));
    const mm = res.json;
    assert.equal(mm.client_model, 'gpt-4');
    assert.equal(mm.provider_model, 'gpt-4o-2024-08-06');
    assert.equal(mm.priority, 5);
    assert.equal(mm.enabled, true);

    assert.equal((await call('GET', `/api/admin/model-mappings/${mm.id}`)).json.provider_id, p.id);
    const list = await listOf(`/api/admin/model-mappings?provider_id=${p.id}`);
    assert.equal(list.pagination.total, 1);
    res = await call('PUT', `/api/admin/model-mappings/${mm.id}`, { weight: 9 });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.weight, 9);
    assert.equal(res.json.priority, 5);

    assertError(await call('POST', '/api/admin/model-mappings', body), 409);
    for (const k of ['client_model', 'provider_id', 'provider_model']) {
      const b = { ...body, client_model: 'other' };
      delete b[k];
      assertError(await call('POST', '/api/admin/model-mappings', b), 400, k);
    }
    assertError(await call('POST', '/api/admin/model-mappings', { ...body, client_model: 'z', provider_id: 987654 }), 400, 'provider_id');
    assertError(await call('POST', '/api/admin/model-mappings', { ...body, client_model: 'z', weight: 'w' }), 400, 'weight');
    assertError(await call('POST', '/api/admin/model-mappings', { ...body, client_model: 'z', extra: 1 }), 400, 'extra');

    assert.equal((await call('DELETE', `/api/admin/model-mappings/${mm.id}`)).status, 200);
    assertError(await call('GET', `/api/admin/model-mappings/${mm.id}`), 404);
    assertError(await call('PUT', `/api/admin/model-mappings/${mm.id}`, { weight: 1 }), 404);
  });

  test('pagination: page and page_size (default 20, max 200)', async () => {
    const p = await makeProvider();
    for (let i = 0; i < 25; i++) {
      const res = await call('POST', '/api/admin/models', { name: `page-model-${String(i).padStart(2, '0')}`, provider_id: p.id });
      assert.equal(res.status, 201, show(res));
    }
    const q = `/api/admin/models?provider_id=${p.id}`;
    const first = await listOf(q);
    assert.equal(first.pagination.total, 25);
    assert.equal(first.data.length, 20);
    const second = await listOf(`${q}&page=2`);
    assert.equal(second.data.length, 5);
    const seen = new Set([...first.data, ...second.data].map((x) => x.id));
    assert.equal(seen.size, 25, 'pages do not overlap');
    assert.equal((await listOf(`${q}&page=3`)).data.length, 0);
    assert.equal((await listOf(`${q}&page=3&page_size=10`)).data.length, 5);
    assert.equal((await listOf(`${q}&page_size=200`)).data.length, 25);
    assert.equal((await listOf(`${q}&page_size=1`)).data.length, 1);

    for (const bad of ['page_size=201', 'page_size=0', 'page_size=-1', 'page_size=abc', 'page_size=', 'page=0', 'page=-1', 'page=x', 'page=1.5']) {
      const res = await call('GET', `${q}&${bad}`);
      assertError(res, 400, bad.split('=')[0]);
    }
    // Every collection answers in the same shape.
    for (const coll of ['providers', 'models', 'model-mappings', 'keys', 'users', `providers/${p.id}/keys`]) {
      await listOf(`/api/admin/${coll}`);
      assertError(await call('GET', `/api/admin/${coll}?page_size=201`), 400, 'page_size');
      assertError(await call('GET', `/api/admin/${coll}?page=0`), 400, 'page');
    }
  });

  test('deleting a provider removes its keys, models and mappings', async () => {
    const p = await makeProvider({ api_key: 'sk-cascade-key-0000000000001111' });
    const keep = await makeProvider({ api_key: 'sk-keep-key-00000000000000002222' });
    const k2 = (await call('POST', `/api/admin/providers/${p.id}/keys`, { api_key: 'sk-cascade-key2-00000000003333' })).json;
    const keys = (await listOf(`/api/admin/providers/${p.id}/keys`)).data;
    assert.equal(keys.length, 2);
    for (const body of [{ name: 'cascade-a', provider_id: p.id }, { name: 'cascade-b', provider_id: p.id }, { name: 'cascade-a', provider_id: keep.id }]) {
      assert.equal((await call('POST', '/api/admin/models', body)).status, 201);
    }
    assert.equal((await call('POST', '/api/admin/model-mappings', { client_model: 'cascade', provider_id: p.id, provider_model: 'x' })).status, 201);
    assert.equal((await call('POST', '/api/admin/model-mappings', { client_model: 'cascade', provider_id: keep.id, provider_model: 'x' })).status, 201);

    assert.equal((await call('DELETE', `/api/admin/providers/${p.id}`)).status, 200);

    assert.equal((await listOf(`/api/admin/models?provider_id=${p.id}`)).pagination.total, 0);
    assert.equal((await listOf(`/api/admin/model-mappings?provider_id=${p.id}`)).pagination.total, 0);
    const allModels = (await listOf('/api/admin/models?page_size=200')).data;
    assert.ok(!allModels.some((m) => m.provider_id === p.id));
    const allMappings = (await listOf('/api/admin/model-mappings?page_size=200')).data;
    assert.ok(!allMappings.some((m) => m.provider_id === p.id));
    for (const k of keys) assertError(await call('GET', `/api/admin/provider-keys/${k.id}`), 404);
    assertError(await call('GET', `/api/admin/provider-keys/${k2.id}`), 404);
    assertError(await call('GET', `/api/admin/providers/${p.id}/keys`), 404);
    // The other provider keeps everything.
    assert.equal((await listOf(`/api/admin/models?provider_id=${keep.id}`)).pagination.total, 1);
    assert.equal((await listOf(`/api/admin/model-mappings?provider_id=${keep.id}`)).pagination.total, 1);
    assert.equal((await listOf(`/api/admin/providers/${keep.id}/keys`)).pagination.total, 1);
    // And the database holds no orphans.
    const orphans = execFileSync('sqlite3', ['-readonly', f.dbPath,
      `SELECT (SELECT count(*) FROM provider_keys WHERE provider_id = ${p.id}) + (SELECT count(*) FROM models WHERE provider_id = ${p.id}) + (SELECT count(*) FROM model_mappings WHERE provider_id = ${p.id})`]).toString().trim();
    assert.equal(orphans, '0');
  });

  test('providers batch: enable, disable, delete', async () => {
    const ps = [await makeProvider(), await makeProvider(), await makeProvider()];
    const ids = ps.map((p) => p.id);
    let res = await call('POST', '/api/admin/providers/batch', { action: 'disable', ids: ids.slice(0, 2) });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.affected, 2);
    assert.equal((await call('GET', `/api/admin/providers/${ids[0]}`)).json.enabled, false);
    assert.equal((await call('GET', `/api/admin/providers/${ids[1]}`)).json.enabled, false);
    assert.equal((await call('GET', `/api/admin/providers/${ids[2]}`)).json.enabled, true);
    const disabled = (await listOf('/api/admin/providers?enabled=false&page_size=200')).data.map((p) => p.id);
    assert.ok(ids.slice(0, 2).every((id) => disabled.includes(id)));
    assert.ok(!disabled.includes(ids[2]));

    res = await call('POST', '/api/admin/providers/batch', { action: 'enable', ids });
    assert.equal(res.status, 200, show(res));
    for (const id of ids) assert.equal((await call('GET', `/api/admin/providers/${id}`)).json.enabled, true);

    for (const bad of [{ action: 'explode', ids }, { ids }, { action: 'delete' }, { action: 'delete', ids: [] }, { action: 'delete', ids: ['1'] },
      { action: 'delete', ids: [0] }, { action: 'delete', ids: 5 }]) {
      assertError(await call('POST', '/api/admin/providers/batch', bad), 400);
    }
    for (const id of ids) assert.equal((await call('GET', `/api/admin/providers/${id}`)).status, 200, 'invalid batches change nothing');
    assertError(await call('GET', '/api/admin/providers/batch'), 405);

    res = await call('POST', '/api/admin/providers/batch', { action: 'delete', ids: [...ids, 987654] });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.affected, 3);
    for (const id of ids) assertError(await call('GET', `/api/admin/providers/${id}`), 404);
  });

  // ---- client keys ---------------------------------------------------------------

  test('client keys: the key is shown exactly once, later only its prefix', async () => {
    let res = await call('POST', '/api/admin/keys', { name: 'ci-pipeline', allowed_models: ['gpt-4o'], rpm_limit: 60, expires_at: '2030-01-31T00:00:00Z' });
    assert.equal(res.status, 201, show(res));
    const k = res.json;
    assert.match(k.key, /^fk-[A-Za-z0-9_-]{32,}$/);
    assert.equal(typeof k.key_prefix, 'string');
    assert.ok(k.key.startsWith(k.key_prefix.replace(/(…|\.\.\.)$/, '')), `${k.key_prefix} is a prefix of the key`);
    assert.ok(k.key_prefix.replace(/(…|\.\.\.)$/, '').length <= 12, 'the prefix is short');
    assert.deepEqual(k.allowed_models, ['gpt-4o']);
    assert.equal(k.rpm_limit, 60);
    assert.equal(Date.parse(k.expires_at), Date.parse('2030-01-31T00:00:00Z'));

    const again = (await call('POST', '/api/admin/keys', { name: 'second' })).json;
    assert.notEqual(again.key, k.key);

    const later = [await call('GET', `/api/admin/keys/${k.id}`), await call('GET', '/api/admin/keys?page_size=200'),
      await call('PUT', `/api/admin/keys/${k.id}`, { name: 'ci-renamed' }), await call('GET', `/api/admin/keys?enabled=true`)];
    for (const r of later) {
      assert.equal(r.status, 200, show(r));
      assert.ok(!r.text.includes(k.key), 'the full key shown again');
      assert.ok(!r.text.includes(k.key.slice(12)), 'a large part of the key shown again');
      assert.ok(!r.text.includes('"key"'), `a key field in ${r.text.slice(0, 200)}`);
      assert.ok(!r.text.includes('key_hash'), 'the hash is not shown');
    }
    assert.equal(later[0].json.key_prefix, k.key_prefix);
    assert.equal(later[2].json.name, 'ci-renamed');
    assert.equal(later[2].json.rpm_limit, 60);

    assertError(await call('POST', '/api/admin/keys', {}), 400, 'name');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', key: 'fk-chosen-by-me-0000000000000000000' }), 400, 'key');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', key_prefix: 'fk-x' }), 400, 'key_prefix');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', allowed_models: 'gpt-4o' }), 400, 'allowed_models');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', allowed_models: [1] }), 400, 'allowed_models');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', expires_at: 'tomorrow' }), 400, 'expires_at');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', rpm_limit: -1 }), 400, 'rpm_limit');
    assertError(await call('PUT', `/api/admin/keys/${k.id}`, { key: 'fk-x' }), 400, 'key');

    assert.equal((await call('DELETE', `/api/admin/keys/${k.id}`)).status, 200);
    assertError(await call('GET', `/api/admin/keys/${k.id}`), 404);
  });

  // ---- users ---------------------------------------------------------------------

  test('users: create, log in as the new user, update, delete, protections', async () => {
    const me = (await call('GET', '/api/auth/me')).json.user;
    let res = await call('POST', '/api/admin/users', { username: 'carol', password: 'carol-password-1', is_admin: false });
    assert.equal(res.status, 201, show(res));
    const carol = res.json;
    assert.equal(carol.username, 'carol');
    assert.equal(carol.is_admin, false);
    assert.ok(!/password_hash|carol-password-1|argon2/.test(res.text), `no password material: ${res.text}`);
    assert.ok(!('password' in carol));

    const list = await listOf('/api/admin/users');
    assert.ok(list.data.some((u) => u.username === 'carol') && list.data.some((u) => u.username === 'admin'));
    assert.ok(!/password_hash|argon2/.test(JSON.stringify(list)));

    // The new user can log in; a non-admin reads but does not write.
    const carolToken = await login(f, 'carol', 'carol-password-1');
    assert.equal((await api(f, 'GET', '/api/admin/providers', { token: carolToken })).status, 200);
    assertError(await api(f, 'POST', '/api/admin/providers', { token: carolToken, body: { name: 'by-carol', type: 'openai', base_url: 'https://a.example' } }), 403);
    assertError(await api(f, 'DELETE', `/api/admin/users/${me.id}`, { token: carolToken }), 403);

    // A password set by an admin ends that user's sessions.
    res = await call('PUT', `/api/admin/users/${carol.id}`, { password: 'carol-password-2' });
    assert.equal(res.status, 200, show(res));
    assertError(await api(f, 'GET', '/api/auth/me', { token: carolToken }), 401);
    const carolToken2 = await login(f, 'carol', 'carol-password-2');

    // Validation and conflicts.
    assertError(await call('POST', '/api/admin/users', { username: 'carol', password: 'another-password' }), 409);
    assertError(await call('POST', '/api/admin/users', { username: 'dan' }), 400, 'password');
    assertError(await call('POST', '/api/admin/users', { password: 'dan-password-1' }), 400, 'username');
    assertError(await call('POST', '/api/admin/users', { username: 'dan', password: 'short' }), 400, 'password');
    assertError(await call('POST', '/api/admin/users', { username: 'dan', password: 12345678 }), 400, 'password');
    assertError(await call('POST', '/api/admin/users', { username: 'dan smith', password: 'dan-password-1' }), 400, 'username');
    assertError(await call('POST', '/api/admin/users', { username: 'dan', password: 'dan-password-1', is_admin: 'no' }), 400, 'is_admin');
    assertError(await call('POST', '/api/admin/users', { username: 'dan', password: 'dan-password-1', password_hash: 'x' }), 400, 'password_hash');

    // You cannot delete yourself, nor demote the last administrator.
    assertError(await call('DELETE', `/api/admin/users/${me.id}`), 409);
    assertError(await call('PUT', `/api/admin/users/${me.id}`, { is_admin: false }), 409);
    res = await call('GET', `/api/admin/users/${me.id}`);
    assert.equal(res.json.is_admin, true);
    assert.equal((await call('GET', '/api/auth/me')).status, 200);

    // Deleting a user ends its sessions and its logins.
    assert.equal((await call('DELETE', `/api/admin/users/${carol.id}`)).status, 200);
    assertError(await api(f, 'GET', '/api/auth/me', { token: carolToken2 }), 401);
    assertError(await api(f, 'POST', '/api/auth/login', { body: { username: 'carol', password: 'carol-password-2' } }), 401);
    assertError(await call('GET', `/api/admin/users/${carol.id}`), 404);
    assertError(await call('DELETE', `/api/admin/users/${carol.id}`), 404);
  });

  // ---- settings ------------------------------------------------------------------

  test('settings: every setting, validated updates, read back', async () => {
    let res = await call('GET', '/api/admin/settings');
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(Object.keys(res.json).sort(), ['default_max_tokens', 'health_check_interval_seconds', 'log_body_enabled', 'log_body_max_bytes', 'log_retention_days', 'max_attempts']);
    assert.equal(res.json.max_attempts, 5);
    assert.equal(typeof res.json.log_body_enabled, 'boolean');
    for (const k of ['health_check_interval_seconds', 'log_body_max_bytes', 'log_retention_days']) assert.ok(Number.isInteger(res.json[k]), k);
    assert.ok(!res.text.includes('secrets.check'), 'internal rows are not shown');
    const initial = res.json;

    res = await call('PUT', '/api/admin/settings', { log_retention_days: 7, log_body_enabled: false });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.log_retention_days, 7);
    assert.equal(res.json.log_body_enabled, false);
    assert.equal(res.json.health_check_interval_seconds, initial.health_check_interval_seconds);
    res = await call('GET', '/api/admin/settings');
    assert.deepEqual(res.json, { ...initial, log_retention_days: 7, log_body_enabled: false });

    const bad = [
      [{ nope: 1 }, 'nope'], [{ 'secrets.check': 'x' }, 'secrets.check'], [{ log_retention_days: 0 }, 'log_retention_days'],
      [{ log_retention_days: 3651 }, 'log_retention_days'], [{ log_retention_days: '7' }, 'log_retention_days'],
      [{ log_retention_days: 7.5 }, 'log_retention_days'], [{ health_check_interval_seconds: -1 }, 'health_check_interval_seconds'],
      [{ health_check_interval_seconds: 86401 }, 'health_check_interval_seconds'], [{ log_body_max_bytes: -1 }, 'log_body_max_bytes'],
      [{ max_attempts: 0 }, 'max_attempts'], [{ max_attempts: 11 }, 'max_attempts'],
      [{ log_body_max_bytes: 1e12 }, 'log_body_max_bytes'], [{ log_body_enabled: 'no' }, 'log_body_enabled'],
      [{ log_body_enabled: 0 }, 'log_body_enabled'],
      // A bad entry fails the whole update.
      [{ log_retention_days: 9, nope: 1 }, 'nope'],
    ];
    for (const [body, field] of bad) assertError(await call('PUT', '/api/admin/settings', body), 400, field);
    res = await call('GET', '/api/admin/settings');
    assert.equal(res.json.log_retention_days, 7, 'rejected updates changed nothing');
    assertError(await call('POST', '/api/admin/settings', { log_retention_days: 8 }), 405);
    assertError(await call('DELETE', '/api/admin/settings'), 405);
  });
});

describe('settings persist across a restart', () => {
  test('a saved setting survives a restart on the same database', async () => {
    const dir = tempDir();
    try {
      let f = await startFusion({ dir, env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
      let token = await login(f, 'admin', ADMIN_PASSWORD);
      let res = await api(f, 'PUT', '/api/admin/settings', { token, body: { log_retention_days: 11, health_check_interval_seconds: 0, log_body_max_bytes: 1024 } });
      assert.equal(res.status, 200, show(res));
      await stopClean(f);

      f = await startFusion({ dir, env: { FUSION_ADMIN_PASSWORD: 'a-different-password' } });
      // The admin already exists: FUSION_ADMIN_PASSWORD does not reset it.
      token = await login(f, 'admin', ADMIN_PASSWORD);
      res = await api(f, 'GET', '/api/admin/settings', { token });
      assert.equal(res.status, 200, show(res));
      assert.equal(res.json.log_retention_days, 11);
      assert.equal(res.json.health_check_interval_seconds, 0);
      assert.equal(res.json.log_body_max_bytes, 1024);
      await stopClean(f);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
