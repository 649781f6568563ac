// Secrets at rest and in transit: canary upstream keys, header values and
// passwords go in through every admin route that takes them, and must
// never come back out — not in any response body or header, not in the
// gateway's log, not in clear in the SQLite file or its WAL.  And the
// master key: a database is refused with a key it was not encrypted
// with, and the key file is private.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { api as adminApi, show, stopClean } from '../lib/admin.js';
import { runFusion, startFusion, tempDir } from '../lib/harness.js';

const ADMIN_PASSWORD = 'secrets-admin-password';

// Every response of this file, for the leak checks.
const recorded = [];

// Every call of this file goes through the shared api() and is recorded.
const api = (f, method, p, opts = {}) => adminApi(f, method, p, {
  ...opts,
  onResponse: (r) => recorded.push({ what: `${method} ${p} → ${r.status}`, headers: [...r.headers].map(([k, v]) => `${k}: ${v}`).join('\n'), text: r.text }),
});

const hex = (n) => randomBytes(n).toString('hex');

// Where a secret could show up: the whole value and any long slice of it
// (a masked hint may keep a few characters, never a long run).
function fragments(secret) {
  const out = [secret];
  for (let i = 0; i + 12 <= secret.length; i += 4) out.push(secret.slice(i, i + 12));
  return out;
}

function assertAbsent(haystack, secrets, where) {
  for (const s of secrets) {
    for (const frag of fragments(s)) {
      const i = haystack.indexOf(frag);
      assert.equal(i, -1, `${where} contains ${JSON.stringify(frag)} (from a secret): …${haystack.slice(Math.max(0, i - 80), i + 80)}…`);
    }
  }
}

function dbFiles(dbPath) {
  return [dbPath, `${dbPath}-wal`, `${dbPath}-journal`].filter((p) => existsSync(p));
}

describe('secrets never leak', () => {
  let f;
  let dir;
  let token;
  // Random canaries: anything found anywhere came from this run.
  const upstreamKeys = [`sk-canary-${hex(16)}`, `sk-canary-${hex(16)}`, `sk-canary-${hex(16)}`, `sk-canary-${hex(16)}`, `sk-canary-${hex(16)}`];
  const headerValues = [`Bearer hv-canary-${hex(16)}`, `hv-canary-${hex(16)}`];
  const userPassword = `pw-canary-${hex(12)}`;
  const secrets = [...upstreamKeys, ...headerValues, userPassword];
  const sessionTokens = [];
  const clientKeys = [];
  const call = (method, p, body) => api(f, method, p, { token, body });

  before(async () => {
    dir = tempDir();
    f = await startFusion({ dir, env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD, LOG_LEVEL: 'debug' } });
    const res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(res.status, 200, show(res));
    token = res.json.token;
    sessionTokens.push(token);
  });
  after(async () => {
    if (f) await f.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('secrets go in through every route that takes them', async () => {
    const [k0, k1, k2, k3, k4] = upstreamKeys;
    const [h0, h1] = headerValues;
    // Create with api_key and headers.
    let res = await call('POST', '/api/admin/providers', {
      name: 'canary-1', type: 'openai', base_url: 'https://api.openai.com/v1', api_key: k0, headers: { Authorization: h0, 'X-Team': h1 },
    });
    assert.equal(res.status, 201, show(res));
    const p1 = res.json.id;
    // Create with the seed format (config as a string) and as an object.
    res = await call('POST', '/api/admin/providers', {
      name: 'canary-2', type: 'anthropic', config: JSON.stringify({ baseUrl: 'https://api.anthropic.com', apiKey: k1 }),
    });
    assert.equal(res.status, 201, show(res));
    const p2 = res.json.id;
    res = await call('POST', '/api/admin/providers', { name: 'canary-3', type: 'gemini', config: { baseUrl: 'https://g.example', apiKey: k2 } });
    assert.equal(res.status, 201, show(res));
    // Extra keys, key updates, provider key replacement.
    res = await call('POST', `/api/admin/providers/${p1}/keys`, { api_key: k3, weight: 5 });
    assert.equal(res.status, 201, show(res));
    const key3 = res.json.id;
    res = await call('PUT', `/api/admin/provider-keys/${key3}`, { api_key: k4 });
    assert.equal(res.status, 200, show(res));
    res = await call('PUT', `/api/admin/providers/${p2}`, { api_key: k3, headers: { 'X-Team': h1 } });
    assert.equal(res.status, 200, show(res));

    // Failing writes that carry secrets: the error must not echo them.
    const failing = [
      ['POST', '/api/admin/providers', { name: 'canary-1', type: 'openai', base_url: 'https://a.example', api_key: k0 }, 409],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'nope', base_url: 'https://a.example', api_key: k0 }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', base_url: 'https://a.example', api_key: `${k0}\n` }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', base_url: 'https://a.example', headers: { 'Bad Name': h0 } }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', base_url: 'https://a.example', headers: { Host: h0 } }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', base_url: 'https://a.example', headers: { 'X-A': `${h1}\r\nX-B: y` } }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', config: { baseUrl: 'https://a.example', apiKey: k0, extra: k1 } }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', config: { baseUrl: 'notaurl', apiKey: k0 } }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', config: `{"baseUrl":"https://a.example","apiKey":"${k0}"` }, 400],
      ['POST', '/api/admin/providers', { name: 'canary-x', type: 'openai', base_url: 'https://a.example', api_key: k0, unknown: 1 }, 400],
      ['PUT', `/api/admin/providers/${p1}`, { api_key: k0, priority: 'high' }, 400],
      ['PUT', '/api/admin/providers/987654', { api_key: k0 }, 404],
      ['POST', '/api/admin/providers/987654/keys', { api_key: k0 }, 404],
      ['POST', `/api/admin/providers/${p1}/keys`, { api_key: k0, weight: -1 }, 400],
      ['PUT', '/api/admin/provider-keys/987654', { api_key: k0 }, 404],
      ['POST', '/api/admin/users', { username: 'admin', password: userPassword }, 409],
      ['POST', '/api/admin/users', { username: 'bad name', password: userPassword }, 400],
    ];
    for (const [method, p, body, status] of failing) {
      res = await call(method, p, body);
      assert.equal(res.status, status, `${method} ${p}: ${show(res)}`);
    }

    // Users and passwords.
    res = await call('POST', '/api/admin/users', { username: 'canary-user', password: userPassword, is_admin: false });
    assert.equal(res.status, 201, show(res));
    res = await api(f, 'POST', '/api/auth/login', { body: { username: 'canary-user', password: userPassword } });
    assert.equal(res.status, 200, show(res));
    sessionTokens.push(res.json.token);
    res = await api(f, 'POST', '/api/auth/password', { token: res.json.token, body: { current_password: userPassword, new_password: `${userPassword}-2` } });
    assert.equal(res.status, 200, show(res));
    sessionTokens.push(res.json.token);
    secrets.push(`${userPassword}-2`);
    res = await api(f, 'POST', '/api/auth/login', { body: { username: 'canary-user', password: userPassword } });
    assert.equal(res.status, 401, 'the old password no longer works');

    // Client keys: shown once (that answer is the one place they may appear).
    res = await call('POST', '/api/admin/keys', { name: 'canary-client' });
    assert.equal(res.status, 201, show(res));
    clientKeys.push(res.json.key);
    recorded.pop(); // the create answer legitimately holds the new key

    // Everything that reads secrets back.
    const reads = ['/api/admin/providers', `/api/admin/providers/${p1}`, `/api/admin/providers/${p2}`, `/api/admin/providers/${p1}/keys`,
      `/api/admin/providers/${p2}/keys`, `/api/admin/provider-keys/${key3}`, '/api/admin/providers?type=openai', '/api/admin/providers?enabled=true',
      '/api/admin/keys', '/api/admin/users', '/api/admin/settings', '/api/auth/me'];
    for (const p of reads) {
      res = await call('GET', p);
      assert.equal(res.status, 200, `${p}: ${show(res)}`);
    }
    res = await call('POST', '/api/admin/providers/batch', { action: 'disable', ids: [p1, p2] });
    assert.equal(res.status, 200, show(res));
    res = await call('GET', `/api/admin/providers/${p1}`);
    // Masked hints are present (so the checks below look at real data).
    assert.equal(typeof res.json.api_key, 'string');
    assert.ok(Object.keys(res.json.headers).length === 2, JSON.stringify(res.json.headers));
    res = await call('DELETE', `/api/admin/provider-keys/${key3}`);
    assert.equal(res.status, 200, show(res));
  });

  test('no response body or header of this file holds a secret', () => {
    assert.ok(recorded.length > 30, `recorded ${recorded.length} responses`);
    for (const r of recorded) {
      assertAbsent(r.text, [...secrets, ...clientKeys], `body of ${r.what}`);
      assertAbsent(r.headers, [...secrets, ...clientKeys], `headers of ${r.what}`);
    }
  });

  test('the gateway log holds no secret, session token or client key', async () => {
    // Read while running and again after a clean stop (final messages).
    assertAbsent(f.logs(), [...secrets, ...sessionTokens, ...clientKeys], 'gateway log');
    await stopClean(f, { keepDir: true });
    assertAbsent(f.logs(), [...secrets, ...sessionTokens, ...clientKeys], 'gateway log');
  });

  test('the database file and its WAL hold no secret in clear', () => {
    const files = dbFiles(f.dbPath);
    assert.ok(files.length >= 1);
    for (const file of files) {
      const bytes = readFileSync(file).toString('latin1');
      assertAbsent(bytes, [...secrets, ...sessionTokens, ...clientKeys], path.basename(file));
    }
    // The masked hints are there (the search above looked at the right data).
    const all = files.map((file) => readFileSync(file).toString('latin1')).join('');
    assert.ok(all.includes('canary-client') && all.includes('canary-1'), 'the database holds the rows');
  });
});

describe('master key', () => {
  function envFor(db, extra = {}) {
    return { PORT: '0', LISTEN_ADDR: '127.0.0.1', DB_PATH: db, FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD, ...extra };
  }

  async function seed(dir) {
    const f = await startFusion({ dir, env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    let res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    const token = res.json.token;
    res = await api(f, 'POST', '/api/admin/providers', {
      token, body: { name: 'keyed', type: 'openai', base_url: 'https://a.example', api_key: 'sk-master-key-test-0123456789abcd', headers: { 'X-A': 'hv-0123456789abcdef' } },
    });
    assert.equal(res.status, 201, show(res));
    await stopClean(f, { keepDir: true });
    return f.dbPath;
  }

  async function startsAndLists(db, env) {
    const f = await startFusion({ dbPath: db, dir: path.dirname(db), env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD, ...env } });
    const res = await api(f, 'POST', '/api/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    const list = await api(f, 'GET', '/api/admin/providers', { token: res.json.token });
    assert.equal(list.status, 200);
    assert.equal(list.json.data[0].name, 'keyed');
    assert.ok(list.json.data[0].api_key.endsWith('abcd'));
    await stopClean(f, { keepDir: true });
  }

  test('the key file is created beside the database with mode 0600', async () => {
    const dir = tempDir();
    try {
      const db = await seed(dir);
      const st = statSync(`${db}.key`);
      assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
      assert.match(readFileSync(`${db}.key`, 'utf8').trim(), /^[0-9a-fA-F]{64}$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a different FUSION_SECRET_KEY is refused at start; the right one works', async () => {
    const dir = tempDir();
    try {
      const db = await seed(dir);
      const original = readFileSync(`${db}.key`, 'utf8').trim();
      let other = hex(32);
      while (other === original) other = hex(32);
      const r = await runFusion([], { env: envFor(db, { FUSION_SECRET_KEY: other }) });
      assert.notEqual(r.code, 0, `started with the wrong key:\n${r.stderr}`);
      assert.match(r.stderr + r.stdout, /master key/i);
      assert.match(r.stderr + r.stdout, /does not match|doesn't match|not match|mismatch/i);
      assert.doesNotMatch(r.stderr, /listening on/);
      // The original key, given in the environment, is accepted.
      await startsAndLists(db, { FUSION_SECRET_KEY: original });
      // And the key file alone still works.
      await startsAndLists(db, {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a lost key file is not silently replaced: start refuses', async () => {
    const dir = tempDir();
    try {
      const db = await seed(dir);
      const original = readFileSync(`${db}.key`, 'utf8');
      unlinkSync(`${db}.key`);
      const r = await runFusion([], { env: envFor(db) });
      assert.notEqual(r.code, 0, `started without its key:\n${r.stderr}`);
      assert.match(r.stderr + r.stdout, /master key/i);
      assert.match(r.stderr + r.stdout, /does not match|doesn't match|not match|mismatch/i);
      assert.doesNotMatch(r.stderr, /listening on/);
      // A new key file was made (and refused); it is private too.
      assert.ok(existsSync(`${db}.key`), 'a new key file was created');
      assert.equal(statSync(`${db}.key`).mode & 0o777, 0o600);
      assert.notEqual(readFileSync(`${db}.key`, 'utf8').trim(), original.trim());
      // Putting the original back makes it start again.
      unlinkSync(`${db}.key`);
      writeFileSync(`${db}.key`, original, { mode: 0o600 });
      chmodSync(`${db}.key`, 0o600);
      await startsAndLists(db, {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a key file others can read is refused; a malformed FUSION_SECRET_KEY is refused', async () => {
    const dir = tempDir();
    try {
      const db = await seed(dir);
      chmodSync(`${db}.key`, 0o644);
      let r = await runFusion([], { env: envFor(db) });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /0600/);
      chmodSync(`${db}.key`, 0o600);
      for (const bad of ['abc', 'g'.repeat(64), '0'.repeat(63)]) {
        r = await runFusion([], { env: envFor(db, { FUSION_SECRET_KEY: bad }) });
        assert.notEqual(r.code, 0, `FUSION_SECRET_KEY=${bad} accepted`);
        assert.match(r.stderr, /FUSION_SECRET_KEY/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
