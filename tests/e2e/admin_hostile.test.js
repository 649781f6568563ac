// Hostile input to the admin API: SQL metacharacters are data, control
// characters and oversized values are refused, broken or non-object JSON
// gets a 400 that says where, and the gateway stays healthy throughout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { api, assertError, login, show, stopClean } from '../lib/admin.js';
import { startFusion } from '../lib/harness.js';

const ADMIN_PASSWORD = 'hostile-admin-password';

describe('hostile input', () => {
  let f;
  let token;
  let providerId;
  const call = (method, p, body, headers) => api(f, method, p, { token, body, headers });

  async function healthy() {
    const h = await fetch(f.baseUrl + '/healthz');
    assert.equal(h.status, 200);
    await h.arrayBuffer();
    const res = await call('GET', '/api/admin/providers');
    assert.equal(res.status, 200, show(res));
  }

  before(async () => {
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    const p = await call('POST', '/api/admin/providers', { name: 'base', type: 'openai', base_url: 'https://a.example' });
    assert.equal(p.status, 201, show(p));
    providerId = p.json.id;
  });
  after(async () => { await stopClean(f); });

  test('SQL metacharacters are stored verbatim and the tables survive', async () => {
    const evil = [
      "'); DROP TABLE providers;--",
      "x' OR '1'='1",
      'Robert"); DELETE FROM users; --',
      "a'; UPDATE users SET is_admin=1; --",
      '%_\\ \' " ` ; -- /* */',
    ];
    const made = [];
    for (const name of evil) {
      let res = await call('POST', '/api/admin/providers', { name, type: 'openai', base_url: 'https://a.example' });
      assert.equal(res.status, 201, show(res));
      assert.equal(res.json.name, name);
      made.push(res.json.id);
      res = await call('GET', `/api/admin/providers/${res.json.id}`);
      assert.equal(res.json.name, name, 'read back verbatim');

      res = await call('POST', '/api/admin/models', { name, provider_id: providerId, description: name });
      assert.equal(res.status, 201, show(res));
      assert.equal(res.json.name, name);
      assert.equal(res.json.description, name);
      res = await call('POST', '/api/admin/keys', { name, allowed_models: [name] });
      assert.equal(res.status, 201, show(res));
      assert.equal(res.json.name, name);
      assert.deepEqual(res.json.allowed_models, [name]);
      res = await call('POST', '/api/admin/model-mappings', { client_model: name, provider_id: providerId, provider_model: name });
      assert.equal(res.status, 201, show(res));
      assert.equal(res.json.client_model, name);
    }
    // Filters are values too: an injected condition matches nothing extra.
    let res = await call('GET', `/api/admin/models?name=${encodeURIComponent("nothing' OR '1'='1")}`);
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.pagination.total, 0);
    res = await call('GET', `/api/admin/models?name=${encodeURIComponent("x' OR '1'='1")}`);
    assert.equal(res.json.pagination.total, 1, 'exactly the one model with that literal name');
    res = await call('GET', `/api/admin/providers?type=${encodeURIComponent("openai' OR '1'='1")}`);
    assert.ok(res.status === 400 || (res.status === 200 && res.json.pagination.total === 0), show(res));
    // Names in places that are not values.
    assertError(await call('GET', `/api/admin/models?${encodeURIComponent('name = name OR 1=1 --')}=1`), 400);
    assertError(await call('PUT', '/api/admin/settings', { "log_retention_days = 1; DROP TABLE settings; --": 1 }), 400);
    assertError(await call('POST', '/api/admin/providers', { name: 'z', type: 'openai', base_url: 'https://a.example', "name) VALUES ('x'); --": 1 }), 400);
    res = await api(f, 'POST', '/api/auth/login', { body: { username: "admin' --", password: 'whatever' } });
    assert.equal(res.status, 401, show(res));

    const tables = execFileSync('sqlite3', ['-readonly', f.dbPath, "SELECT name FROM sqlite_master WHERE type='table'"]).toString();
    for (const t of ['providers', 'users', 'models', 'model_mappings', 'client_keys', 'settings', 'sessions']) {
      assert.match(tables, new RegExp(`^${t}$`, 'm'), `table ${t} still exists`);
    }
    res = await call('GET', '/api/admin/providers?page_size=200');
    const names = res.json.data.map((p) => p.name);
    for (const name of evil) assert.ok(names.includes(name), name);
    assert.equal((await call('GET', '/api/admin/users')).json.pagination.total, 1);
    assert.equal((await call('GET', '/api/admin/settings')).status, 200);
    for (const id of made) assert.equal((await call('DELETE', `/api/admin/providers/${id}`)).status, 200);
    await healthy();
  });

  test('control characters in names are refused', async () => {
    for (const ch of ['\u0001', '\n', '\r', '\t', '\u001b[31m', '\u007f', '\b', '\u001f']) {
      const name = `bad${ch}name`;
      assertError(await call('POST', '/api/admin/providers', { name, type: 'openai', base_url: 'https://a.example' }), 400, 'name');
      assertError(await call('PUT', `/api/admin/providers/${providerId}`, { name }), 400, 'name');
      assertError(await call('POST', '/api/admin/models', { name, provider_id: providerId }), 400, 'name');
      assertError(await call('POST', '/api/admin/keys', { name }), 400, 'name');
      assertError(await call('POST', '/api/admin/model-mappings', { client_model: name, provider_id: providerId, provider_model: 'x' }), 400, 'client_model');
      assertError(await call('POST', '/api/admin/users', { username: `u${ch}`, password: 'password-123' }), 400, 'username');
    }
    // NUL, escaped in JSON.
    assertError(await call('POST', '/api/admin/providers', '{"name":"a\\u0000b","type":"openai","base_url":"https://a.example"}'), 400);
    assertError(await call('POST', '/api/admin/keys', '{"name":"a\\u0000b"}'), 400);
    assert.equal((await call('GET', `/api/admin/providers/${providerId}`)).json.name, 'base');
    const keys = await call('GET', '/api/admin/keys?page_size=200');
    assert.ok(keys.json.data.every((k) => !/[\u0000-\u001f\u007f]/.test(k.name)));
    await healthy();
  });

  test('C1 control characters (U+0080..U+009F) in names are refused too', async () => {
    // U+009B is a one-character CSI: it starts terminal escape sequences
    // when a name is printed to a log viewer or a terminal.
    for (const ch of ['\u0085', '\u009b', '\u0080']) {
      assertError(await call('POST', '/api/admin/providers', { name: `c1${ch}31mname`, type: 'openai', base_url: 'https://a.example' }), 400, 'name');
    }
  });

  test('ordinary Unicode names round-trip', async () => {
    const name = 'модель 模型 🚀 café';
    const res = await call('POST', '/api/admin/models', { name, provider_id: providerId });
    assert.equal(res.status, 201, show(res));
    assert.equal((await call('GET', `/api/admin/models/${res.json.id}`)).json.name, name);
  });

  test('oversized values are refused and the gateway stays healthy', async () => {
    const huge = 'a'.repeat(1024 * 1024);
    assertError(await call('POST', '/api/admin/providers', { name: huge, type: 'openai', base_url: 'https://a.example' }), [400, 413]);
    assertError(await call('PUT', `/api/admin/providers/${providerId}`, { name: huge }), [400, 413]);
    assertError(await call('POST', '/api/admin/keys', { name: huge }), [400, 413]);
    await healthy();
    // Under the body limit but far over the field's: 400 naming the field.
    const big = 'b'.repeat(100 * 1024);
    assertError(await call('POST', '/api/admin/providers', { name: big, type: 'openai', base_url: 'https://a.example' }), 400, 'name');
    assertError(await call('POST', '/api/admin/models', { name: big, provider_id: providerId }), 400, 'name');
    assertError(await call('POST', '/api/admin/models', { name: 'x', provider_id: providerId, description: big }), 400, 'description');
    assertError(await call('POST', '/api/admin/providers', { name: 'y', type: 'openai', base_url: `https://a.example/${big}` }), 400, 'base_url');
    assertError(await call('POST', '/api/admin/providers', { name: 'y', type: 'openai', base_url: 'https://a.example', api_key: big }), 400, 'api_key');
    assertError(await call('POST', '/api/admin/keys', { name: 'x', allowed_models: Array(5000).fill('m') }), 400, 'allowed_models');
    assertError(await call('POST', '/api/admin/providers', { name: 'y', type: 'openai', base_url: 'https://a.example', priority: 1e30 }), 400, 'priority');
    assertError(await call('POST', '/api/admin/providers', '{"name":"y","type":"openai","base_url":"https://a.example","priority":99999999999999999999999}'), 400);
    assertError(await call('POST', '/api/auth/login', { username: huge, password: 'x' }), [400, 413]);
    await healthy();
  });

  test('malformed JSON is a 400 that says where', async () => {
    const bodies = ['{"name": "x",', '{name: "x"}', '{"name": "x"}}', '{"enabled": tru}', "{'name': 'x'}", '{"a":1,}',
      '{"name": "unterminated}', Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])];
    for (const body of bodies) {
      for (const [method, p] of [['POST', '/api/admin/providers'], ['PUT', `/api/admin/providers/${providerId}`], ['PUT', '/api/admin/settings'],
        ['POST', '/api/admin/providers/batch'], ['POST', '/api/auth/login']]) {
        const res = await call(method, p, body);
        assertError(res, 400);
        assert.match(res.json.error.message, /line/, `${method} ${p} ${body}: ${res.json.error.message}`);
        assert.match(res.json.error.message, /column/, `${method} ${p} ${body}: ${res.json.error.message}`);
      }
    }
    // Duplicate names are ambiguous: refused.
    assertError(await call('POST', '/api/admin/providers', '{"name":"d1","name":"d2","type":"openai","base_url":"https://a.example"}'), 400);
    // Very deep nesting.
    assertError(await call('POST', '/api/admin/providers', '['.repeat(100000)), [400, 413]);
    assertError(await call('POST', '/api/admin/providers', `{"name":${'['.repeat(50000)}`), [400, 413]);
    await healthy();
  });

  test('an empty body and non-object JSON are 400', async () => {
    const targets = [['POST', '/api/admin/providers'], ['PUT', `/api/admin/providers/${providerId}`], ['POST', '/api/admin/models'],
      ['POST', '/api/admin/keys'], ['POST', '/api/admin/users'], ['PUT', '/api/admin/settings'], ['POST', '/api/admin/providers/batch'],
      ['POST', `/api/admin/providers/${providerId}/keys`], ['POST', '/api/auth/login'], ['POST', '/api/auth/password']];
    for (const [method, p] of targets) {
      assertError(await call(method, p, ''), 400);
      const res = await api(f, method, p, { token, headers: { 'content-length': '0' } });
      assertError(res, 400);
      for (const body of ['[]', '[{"name":"x"}]', '"x"', '42', 'null', 'true', '  ']) {
        assertError(await call(method, p, body), 400);
      }
    }
    await healthy();
  });

  test('odd ids in the path are 404, never 500', async () => {
    for (const id of ['0', '-1', '1e3', '0x10', '99999999999999999999', '9223372036854775807', '1.0', '%20', 'null', 'abc']) {
      for (const coll of ['providers', 'models', 'model-mappings', 'keys', 'users', 'provider-keys']) {
        const res = await call('GET', `/api/admin/${coll}/${id}`);
        assert.ok([400, 404].includes(res.status), `${coll}/${id}: ${show(res)}`);
      }
    }
    await healthy();
  });
});
