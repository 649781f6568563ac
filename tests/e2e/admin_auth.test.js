// Admin authentication: the first-start flow (admin/admin, forced
// password change), FUSION_ADMIN_PASSWORD, login / me / logout, session
// tokens and cookies, login throttling per username and per address,
// the CSRF rule for cookie-authenticated changes, and that no admin path
// (however it is spelled) answers without credentials.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { api, assertError, login, show, stopClean } from '../lib/admin.js';
import { parseResponse, rawExchange, startFusion } from '../lib/harness.js';

const ADMIN_PASSWORD = 'correct-horse-battery-9';

// ---- helpers -------------------------------------------------------------

// A login from a chosen loopback source address (127.0.0.0/8 is all
// loopback on Linux), so throttling per address can be told apart from
// throttling per username.
function loginFrom(f, localAddress, username, password) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ username, password });
    const t0 = process.hrtime.bigint();
    const req = http.request({
      host: '127.0.0.1', port: f.port, method: 'POST', path: '/api/auth/login', localAddress,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, ms });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A JSON error answer with this status and, when given, this error code.
function assertJsonError(res, status, code) {
  assertError(res, status);
  if (code) assert.equal(res.json.error.code, code, res.text);
}

// A GET written byte for byte (fetch would normalise the path itself).
async function rawGet(port, target, extraHeaders = '') {
  const x = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extraHeaders}Connection: close\r\n\r\n`,
    { timeoutMs: 3000 });
  const res = parseResponse(x.data);
  assert.ok(res, `an answer to GET ${target}`);
  return res;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

// ---- first start -----------------------------------------------------------

describe('first start', () => {
  test('fresh database: admin/admin must change the password before anything else, then the seed provider is accepted', async () => {
    const f = await startFusion();
    try {
      let res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: 'admin' } });
      assert.equal(res.status, 200, show(res));
      assert.equal(res.json.must_change_password, true);
      const first = res.json.token;

      // Every admin call is refused until the password is changed.
      const blocked = [
        ['GET', '/api/admin/providers'], ['POST', '/api/admin/providers', { name: 'x', type: 'openai', base_url: 'http://a.example' }],
        ['GET', '/api/admin/providers/1'], ['PUT', '/api/admin/providers/1', { priority: 1 }], ['DELETE', '/api/admin/providers/1'],
        ['POST', '/api/admin/providers/batch', { action: 'disable', ids: [1] }], ['GET', '/api/admin/providers/1/keys'],
        ['GET', '/api/admin/provider-keys/1'], ['GET', '/api/admin/models'], ['GET', '/api/admin/model-mappings'],
        ['GET', '/api/admin/keys'], ['POST', '/api/admin/keys', { name: 'k' }], ['GET', '/api/admin/users'],
        ['POST', '/api/admin/users', { username: 'eve', password: 'password-eve' }], ['GET', '/api/admin/settings'],
        ['PUT', '/api/admin/settings', { log_retention_days: 2 }],
      ];
      for (const [method, p, body] of blocked) {
        res = await api(f, method, p, { token: first, body });
        assertJsonError(res, 403, 'password_change_required');
      }
      // Who am I still answers, and says so.
      res = await api(f, 'GET', '/api/auth/me', { token: first });
      assert.equal(res.status, 200, show(res));
      assert.equal(res.json.must_change_password, true);

      // The new password needs at least 8 characters.
      res = await api(f, 'POST', '/api/auth/password', { token: first, body: { current_password: 'admin', new_password: 'short7!' } });
      assertJsonError(res, 400);
      assert.match(res.json.error.message, /new_password/);
      res = await api(f, 'POST', '/api/auth/password', { token: first, body: { current_password: 'not-admin', new_password: 'a-new-password' } });
      assert.ok(res.status === 400 || res.status === 401 || res.status === 403, show(res));
      // Still blocked after those failures.
      assertJsonError(await api(f, 'GET', '/api/admin/providers', { token: first }), 403, 'password_change_required');

      res = await api(f, 'POST', '/api/auth/password', { token: first, body: { current_password: 'admin', new_password: 'a-new-password' } });
      assert.equal(res.status, 200, show(res));
      const second = res.json.token;
      assert.match(second, /^fs_[A-Za-z0-9_-]{43}$/);
      assert.notEqual(second, first);
      assert.equal(res.json.must_change_password, false);

      // The old token is revoked.
      assertJsonError(await api(f, 'GET', '/api/auth/me', { token: first }), 401);
      assertJsonError(await api(f, 'GET', '/api/admin/providers', { token: first }), 401);

      // The new one works everywhere.
      res = await api(f, 'GET', '/api/admin/providers', { token: second });
      assert.equal(res.status, 200, show(res));
      res = await api(f, 'GET', '/api/auth/me', { token: second });
      assert.equal(res.json.must_change_password, false);

      // The seed payload, byte for byte, with config as a JSON string.
      const seed = '{"name":"my-provider","type":"openai","config":"{\\"baseUrl\\":\\"https://api.openai.com/v1\\",\\"apiKey\\":\\"sk-xxx\\"}","priority":100,"enabled":true}';
      res = await api(f, 'POST', '/api/admin/providers', { token: second, body: seed });
      assert.equal(res.status, 201, show(res));
      assert.equal(res.json.name, 'my-provider');
      assert.equal(res.json.type, 'openai');
      assert.equal(res.json.base_url, 'https://api.openai.com/v1');
      assert.equal(res.json.priority, 100);
      assert.equal(res.json.enabled, true);
      assert.ok(!res.text.includes('sk-xxx'), `create answer shows the key in clear: ${res.text}`);

      // The same with config as an object.
      const objKey = 'sk-objectform-0123456789abcdef';
      res = await api(f, 'POST', '/api/admin/providers', {
        token: second,
        body: { name: 'my-provider-2', type: 'anthropic', config: { baseUrl: 'https://api.anthropic.com', apiKey: objKey }, priority: 5, enabled: false },
      });
      assert.equal(res.status, 201, show(res));
      assert.equal(res.json.base_url, 'https://api.anthropic.com');
      assert.equal(res.json.enabled, false);

      res = await api(f, 'GET', '/api/admin/providers', { token: second });
      assert.equal(res.status, 200);
      assert.equal(res.json.data.length, 2);
      assert.ok(!res.text.includes('sk-xxx'), `list shows the key in clear: ${res.text}`);
      assert.ok(!res.text.includes(objKey), `list shows the key in clear: ${res.text}`);
      const p2 = res.json.data.find((p) => p.name === 'my-provider-2');
      assert.equal(typeof p2.api_key, 'string');
      assert.ok(p2.api_key.endsWith('cdef'), `masked key keeps a short tail: ${p2.api_key}`);
      assert.ok(p2.api_key.length < objKey.length);
      const p1 = res.json.data.find((p) => p.name === 'my-provider');
      assert.equal(typeof p1.api_key, 'string', 'the seed provider shows a masked key');
      assert.notEqual(p1.api_key, 'sk-xxx');

      // The old password is gone, the new one logs in without a forced change.
      assertJsonError(await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: 'admin' } }), 401);
      res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: 'a-new-password' } });
      assert.equal(res.status, 200);
      assert.equal(res.json.must_change_password, false);
    } finally {
      await stopClean(f);
    }
  });

  test('FUSION_ADMIN_PASSWORD creates the admin with that password and no forced change', async () => {
    const f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    try {
      assertJsonError(await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: 'admin' } }), 401);
      const res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      assert.equal(res.status, 200, show(res));
      assert.equal(res.json.must_change_password, false);
      const list = await api(f, 'GET', '/api/admin/providers', { token: res.json.token });
      assert.equal(list.status, 200, show(list));
    } finally {
      await stopClean(f);
    }
  });
});

// ---- login, sessions, CSRF, unauthenticated access ----------------------------

describe('login and sessions', () => {
  let f;
  before(async () => { f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } }); });
  after(async () => { await stopClean(f); });

  test('login answers token, user, must_change_password, expires_at and an HttpOnly SameSite=Strict cookie', async () => {
    const res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(res.status, 200, show(res));
    assert.deepEqual(Object.keys(res.json).sort(), ['expires_at', 'must_change_password', 'token', 'user']);
    // 256 random bits: fs_ + 43 base64url characters (at least 128 bits required).
    assert.match(res.json.token, /^fs_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(Object.keys(res.json.user).sort(), ['id', 'is_admin', 'username']);
    assert.equal(typeof res.json.user.id, 'number');
    assert.equal(res.json.user.username, 'admin');
    assert.equal(res.json.user.is_admin, true);
    assert.equal(res.json.must_change_password, false);
    const exp = Date.parse(res.json.expires_at);
    assert.ok(Number.isFinite(exp) && exp > Date.now() + 60_000, `expires_at in the future: ${res.json.expires_at}`);

    const cookie = res.headers.get('set-cookie');
    assert.ok(cookie, 'Set-Cookie present');
    assert.ok(cookie.startsWith(`fusion_session=${res.json.token}`), cookie);
    assert.match(cookie, /;\s*HttpOnly/i);
    assert.match(cookie, /;\s*SameSite=Strict/i);

    // Two logins, two different tokens.
    const again = await login(f, 'admin', ADMIN_PASSWORD);
    assert.notEqual(again, res.json.token);
  });

  test('/api/auth/me answers with the Bearer token and with the cookie', async () => {
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    let res = await api(f, 'GET', '/api/auth/me', { token });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.user.username, 'admin');
    assert.equal(res.json.user.is_admin, true);
    assert.equal(res.json.must_change_password, false);
    res = await api(f, 'GET', '/api/auth/me', { cookie: `fusion_session=${token}` });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.user.username, 'admin');
    res = await api(f, 'GET', '/api/auth/me', { cookie: `theme=dark; fusion_session=${token}; other=1` });
    assert.equal(res.status, 200, 'the session cookie is found among others');
    for (const bad of ['Bearer fs_nope', 'Bearer ', `Basic ${Buffer.from('admin:' + ADMIN_PASSWORD).toString('base64')}`, token]) {
      assertJsonError(await api(f, 'GET', '/api/auth/me', { headers: { authorization: bad } }), 401);
    }
    assertJsonError(await api(f, 'GET', '/api/auth/me', { cookie: 'fusion_session=fs_forged' }), 401);
    assertJsonError(await api(f, 'GET', '/api/auth/me'), 401);
  });

  test('logout revokes the token and clears the cookie', async () => {
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const other = await login(f, 'admin', ADMIN_PASSWORD);
    let res = await api(f, 'POST', '/api/auth/logout', { token });
    assert.equal(res.status, 200, show(res));
    const cleared = res.headers.get('set-cookie');
    assert.ok(cleared, 'logout sends Set-Cookie');
    assert.match(cleared, /^fusion_session=(;|$)/, `cookie value emptied: ${cleared}`);
    assert.match(cleared, /Max-Age=0|Expires=Thu, 01 Jan 1970/i, `cookie expired: ${cleared}`);
    assertJsonError(await api(f, 'GET', '/api/auth/me', { token }), 401);
    assertJsonError(await api(f, 'GET', '/api/admin/providers', { token }), 401);
    assertJsonError(await api(f, 'GET', '/api/auth/me', { cookie: `fusion_session=${token}` }), 401);
    // Only that session ended.
    assert.equal((await api(f, 'GET', '/api/auth/me', { token: other })).status, 200);

    // Logout by cookie (the web UI's way).
    const viaCookie = await login(f, 'admin', ADMIN_PASSWORD);
    res = await api(f, 'POST', '/api/auth/logout', { cookie: `fusion_session=${viaCookie}`, headers: { 'x-requested-with': 'XMLHttpRequest' } });
    assert.equal(res.status, 200, show(res));
    assertJsonError(await api(f, 'GET', '/api/auth/me', { cookie: `fusion_session=${viaCookie}` }), 401);
  });

  test('wrong password and unknown user get the same 401 in comparable time', async () => {
    // From addresses of their own, so these failures throttle nobody else.
    const wrong = [];
    const unknown = [];
    let wrongBody;
    let unknownBody;
    for (let i = 0; i < 5; i++) {
      const a = await loginFrom(f, `127.0.0.${50 + i}`, 'admin', `wrong-password-${i}`);
      const b = await loginFrom(f, `127.0.0.${60 + i}`, `no-such-user-${i}`, `wrong-password-${i}`);
      assert.equal(a.status, 401, a.text);
      assert.equal(b.status, 401, b.text);
      wrongBody ??= a.text;
      unknownBody ??= b.text;
      assert.equal(a.text, wrongBody);
      assert.equal(b.text, unknownBody);
      wrong.push(a.ms);
      unknown.push(b.ms);
    }
    assert.equal(unknownBody, wrongBody, 'the same body for both');
    const w = median(wrong);
    const u = median(unknown);
    assert.ok(u >= 0.4 * w, `unknown-user median ${u.toFixed(1)} ms vs wrong-password median ${w.toFixed(1)} ms (${unknown} / ${wrong})`);
  });

  test('login input is validated', async () => {
    for (const body of [{}, { username: 'admin' }, { password: 'x' }, { username: 5, password: 'x' }, { username: 'admin', password: ['x'] }]) {
      assertJsonError(await api(f, 'POST', '/api/auth/login', { body }), 400);
    }
    assertJsonError(await api(f, 'GET', '/api/auth/login'), 405);
  });
});

describe('CSRF rule for cookie-authenticated changes', () => {
  let f;
  let token;
  let cookie;
  const origin = () => `http://127.0.0.1:${f.port}`;
  before(async () => {
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    cookie = `fusion_session=${token}`;
  });
  after(async () => { await stopClean(f); });

  async function names() {
    const res = await api(f, 'GET', '/api/admin/providers?page_size=200', { token });
    assert.equal(res.status, 200);
    return res.json.data.map((p) => p.name);
  }

  test('cookie alone: POST, PUT and DELETE are refused with csrf_check_failed and change nothing', async () => {
    const made = await api(f, 'POST', '/api/admin/providers', { token, body: { name: 'csrf-target', type: 'openai', base_url: 'https://a.example' } });
    assert.equal(made.status, 201, show(made));
    const id = made.json.id;
    const attempts = [
      ['POST', '/api/admin/providers', { name: 'csrf-new', type: 'openai', base_url: 'https://a.example' }],
      ['PUT', `/api/admin/providers/${id}`, { name: 'csrf-renamed' }],
      ['DELETE', `/api/admin/providers/${id}`],
      ['POST', '/api/admin/providers/batch', { action: 'delete', ids: [id] }],
      ['POST', '/api/admin/keys', { name: 'csrf-key' }],
      ['PUT', '/api/admin/settings', { log_retention_days: 9 }],
      ['POST', '/api/admin/users', { username: 'csrf-user', password: 'password-123' }],
    ];
    for (const [method, p, body] of attempts) {
      assertJsonError(await api(f, method, p, { cookie, body }), 403, 'csrf_check_failed');
      // A foreign Origin is no better.
      for (const o of ['http://evil.example', `http://127.0.0.1:${f.port}.evil.example`, 'null', `https://evil.example:${f.port}`]) {
        assertJsonError(await api(f, method, p, { cookie, body, headers: { origin: o } }), 403, 'csrf_check_failed');
      }
    }
    const now = await names();
    assert.ok(now.includes('csrf-target'));
    assert.ok(!now.includes('csrf-new') && !now.includes('csrf-renamed'), now.join(','));
    const settings = await api(f, 'GET', '/api/admin/settings', { token });
    assert.notEqual(settings.json.log_retention_days, 9);
    const keys = await api(f, 'GET', '/api/admin/keys', { token });
    assert.equal(keys.json.pagination.total, 0);
  });

  test('cookie with X-Requested-With works', async () => {
    const headers = { 'x-requested-with': 'XMLHttpRequest' };
    let res = await api(f, 'POST', '/api/admin/providers', { cookie, headers, body: { name: 'xrw', type: 'openai', base_url: 'https://a.example' } });
    assert.equal(res.status, 201, show(res));
    const id = res.json.id;
    res = await api(f, 'PUT', `/api/admin/providers/${id}`, { cookie, headers, body: { priority: 7 } });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.json.priority, 7);
    res = await api(f, 'DELETE', `/api/admin/providers/${id}`, { cookie, headers });
    assert.equal(res.status, 200, show(res));
    assert.ok(!(await names()).includes('xrw'));
  });

  test('cookie with an Origin equal to this server works', async () => {
    const headers = { origin: origin() };
    let res = await api(f, 'POST', '/api/admin/providers', { cookie, headers, body: { name: 'same-origin', type: 'gemini', base_url: 'https://g.example' } });
    assert.equal(res.status, 201, show(res));
    const id = res.json.id;
    res = await api(f, 'PUT', `/api/admin/providers/${id}`, { cookie, headers, body: { priority: 3 } });
    assert.equal(res.status, 200, show(res));
    res = await api(f, 'DELETE', `/api/admin/providers/${id}`, { cookie, headers });
    assert.equal(res.status, 200, show(res));
  });

  test('Bearer calls need neither header; cookie GETs need neither', async () => {
    let res = await api(f, 'POST', '/api/admin/providers', { token, body: { name: 'bearer', type: 'openai', base_url: 'https://a.example' } });
    assert.equal(res.status, 201, show(res));
    const id = res.json.id;
    res = await api(f, 'PUT', `/api/admin/providers/${id}`, { token, body: { priority: 2 } });
    assert.equal(res.status, 200, show(res));
    res = await api(f, 'DELETE', `/api/admin/providers/${id}`, { token });
    assert.equal(res.status, 200, show(res));
    for (const p of ['/api/admin/providers', '/api/admin/settings', '/api/admin/users', '/api/admin/keys', '/api/auth/me']) {
      res = await api(f, 'GET', p, { cookie });
      assert.equal(res.status, 200, `${p}: ${show(res)}`);
    }
  });
});

describe('admin paths without credentials', () => {
  let f;
  let token;
  const SECRET_NAME = 'provider-only-for-admins';
  before(async () => {
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    const res = await api(f, 'POST', '/api/admin/providers', { token, body: { name: SECRET_NAME, type: 'openai', base_url: 'https://a.example' } });
    assert.equal(res.status, 201, show(res));
  });
  after(async () => { await stopClean(f); });

  test('every /api/admin path and method answers 401 JSON', async () => {
    const paths = ['/api/admin', '/api/admin/', '/api/admin/providers', '/api/admin/providers/1', '/api/admin/providers/1/keys',
      '/api/admin/providers/batch', '/api/admin/provider-keys/1', '/api/admin/models', '/api/admin/models/1',
      '/api/admin/model-mappings', '/api/admin/model-mappings/1', '/api/admin/keys', '/api/admin/keys/1', '/api/admin/users',
      '/api/admin/users/1', '/api/admin/settings', '/api/admin/no-such-thing', '/api/admin/providers?page=1'];
    for (const p of paths) {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
        const body = method === 'GET' || method === 'DELETE' ? undefined : { name: 'x' };
        const res = await api(f, method, p, { body });
        assertJsonError(res, 401);
        assert.ok(!res.text.includes(SECRET_NAME));
      }
    }
    // A revoked-looking or forged credential is no better.
    for (const headers of [{ authorization: 'Bearer fs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, { cookie: 'fusion_session=' }, { cookie: 'fusion_session=fs_x' },
      { authorization: `Bearer ${token}x` }, { authorization: `Bearer ${token.slice(0, -1)}` }]) {
      const res = await api(f, 'GET', '/api/admin/providers', { headers });
      assertJsonError(res, 401);
    }
  });

  test('path normalisation tricks do not bypass authentication', async () => {
    const cases = [
      ['//api/admin/providers', [401]],
      ['//api//admin/providers', [401]],
      ['///api/admin/providers', [401]],
      ['/api//admin/providers', [401]],
      ['/api/./admin/providers', [401]],
      ['/api/admin/./providers', [401]],
      ['/x/../api/admin/providers', [401]],
      ['/api/%61dmin/providers', [401]],
      ['/api/admin/%70roviders', [401]],
      ['/%2e/api/admin/providers', [401]],
      ['/api/admin/providers/', [401]],
      ['/api/admin/providers?', [401]],
      ['/api/admin/providers#frag', [400, 401]],
      ['/API/admin/providers', [200, 404]],
      ['/Api/Admin/Providers', [200, 404]],
      ['/api/admin%2fproviders', [400]],
      ['/api%2fadmin/providers', [400]],
      ['/api/admin/providers%00', [400]],
      ['/api/admin/providers%2f..%2f..%2fhealthz', [400]],
    ];
    for (const [target, statuses] of cases) {
      const res = await rawGet(f.port, target);
      assert.ok(statuses.includes(res.status), `GET ${target} → ${res.status} (want ${statuses}): ${res.body.slice(0, 200)}`);
      assert.ok(!res.body.includes(SECRET_NAME), `GET ${target} leaked provider data`);
      if (res.status !== 200) assert.match(res.headers['content-type'] ?? '', /^application\/json/, target);
      else assert.match(res.headers['content-type'] ?? '', /^text\/html/, `${target} answered 200 with something other than the UI`);
    }
    // With a token, the spellings that normalise to the admin API reach it
    // (so the 401s above really came from the admin API's check).
    for (const target of ['/api//admin/providers', '/api/./admin/providers', '/x/../api/admin/providers', '/api/%61dmin/providers']) {
      const res = await rawGet(f.port, target, `Authorization: Bearer ${token}\r\n`);
      assert.equal(res.status, 200, `${target} with a token: ${res.body.slice(0, 200)}`);
      assert.ok(res.body.includes(SECRET_NAME));
    }
  });

  test('a request target starting with // is a path (RFC 9112 origin-form), not an authority', async () => {
    // "//api/admin/providers" must name the same resource as
    // "/api/admin/providers" (normalised once), not "/admin/providers".
    let res = await rawGet(f.port, '//api/admin/providers');
    assert.equal(res.status, 401, `without a token: ${res.status} ${res.body.slice(0, 120)}`);
    res = await rawGet(f.port, '//api/admin/providers', `Authorization: Bearer ${token}\r\n`);
    assert.equal(res.status, 200, `with a token: ${res.status} ${res.body.slice(0, 120)}`);
    assert.ok(res.body.includes(SECRET_NAME));
  });
});

describe('login throttling', () => {
  // Each test has a gateway of its own: throttling state is in its database.
  async function gatewayWithBob() {
    const f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const res = await api(f, 'POST', '/api/admin/users', { token, body: { username: 'bob', password: 'bob-password-1', is_admin: false } });
    assert.equal(res.status, 201, show(res));
    return { f, token };
  }

  function assertThrottled(res) {
    assert.equal(res.status, 429, `${res.status} ${res.text}`);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    const ra = res.headers['retry-after'];
    assert.match(ra ?? '', /^\d+$/, `Retry-After is whole seconds: ${ra}`);
    assert.ok(Number(ra) > 0 && Number(ra) <= 300, `Retry-After ${ra}`);
    assert.ok(!res.json?.token, 'no token while throttled');
  }

  test('10 failures for one username lock that username (even with the right password), from any address', async () => {
    const { f, token } = await gatewayWithBob();
    try {
      // Each failure from a different address, so only the per-user count reaches 10.
      for (let i = 0; i < 10; i++) {
        const res = await loginFrom(f, `127.0.0.${10 + i}`, 'admin', `guess-${i}`);
        assert.equal(res.status, 401, `failure ${i + 1}: ${res.text}`);
      }
      assertThrottled(await loginFrom(f, '127.0.0.20', 'admin', ADMIN_PASSWORD));
      assertThrottled(await loginFrom(f, '127.0.0.1', 'admin', ADMIN_PASSWORD));
      // Another username from the same addresses is not affected.
      const bob = await loginFrom(f, '127.0.0.20', 'bob', 'bob-password-1');
      assert.equal(bob.status, 200, bob.text);
      // Sessions that already exist keep working.
      assert.equal((await api(f, 'GET', '/api/admin/providers', { token })).status, 200);
    } finally {
      await stopClean(f);
    }
  });

  test('10 failures from one address lock that address for every username', async () => {
    const { f } = await gatewayWithBob();
    try {
      for (let i = 0; i < 10; i++) {
        const res = await loginFrom(f, '127.0.0.30', `ghost-${i}`, 'whatever-password');
        assert.equal(res.status, 401, `failure ${i + 1}: ${res.text}`);
      }
      assertThrottled(await loginFrom(f, '127.0.0.30', 'bob', 'bob-password-1'));
      assertThrottled(await loginFrom(f, '127.0.0.30', 'ghost-99', 'whatever-password'));
      // The same user from another address is fine.
      const bob = await loginFrom(f, '127.0.0.31', 'bob', 'bob-password-1');
      assert.equal(bob.status, 200, bob.text);
    } finally {
      await stopClean(f);
    }
  });
});
