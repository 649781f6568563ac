// Helpers shared by the admin API end-to-end tests (tests/e2e/admin_*):
// one JSON call, login, a clean stop, and checks on error answers.
//
//   const token = await login(f, 'admin', ADMIN_PASSWORD);
//   const res = await api(f, 'GET', '/api/admin/providers', { token });
//   assert.equal(res.status, 200, show(res));
//   await stopClean(f);
import assert from 'node:assert/strict';

// One call with fetch: { status, headers, text, json }.  `token` is sent as
// a Bearer token, `cookie` as the Cookie header; a `body` that is not a
// string or Buffer is sent as JSON (content-type defaults to JSON whenever
// there is a body).  `onResponse`, if given, sees every answer
// ({ method, path, status, headers, text, json }) before it is returned.
export async function api(f, method, p, { token, cookie, body, headers = {}, onResponse } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (cookie) h.cookie = cookie;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const r = await fetch(f.baseUrl + p, { method, headers: h, body: payload });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  const res = { status: r.status, headers: r.headers, text, json };
  onResponse?.({ method, path: p, ...res });
  return res;
}

// A response in one line for assertion messages: status and the start of the body.
export const show = (res) => `${res.status} ${res.text?.slice(0, 400)}`;

// Log in and return the session token; the login must answer 200.
export async function login(f, username, password) {
  const res = await api(f, 'POST', '/api/auth/login', { body: { username, password } });
  assert.equal(res.status, 200, `login ${username}: ${show(res)}`);
  return res.json.token;
}

// Stop the gateway (opts go to f.stop); it must exit 0 (a sanitizer report
// makes it exit non-zero), and a failure shows the sanitizer's output.
export async function stopClean(f, opts) {
  const { code, signal } = await f.stop(opts);
  const logs = f.logs();
  const i = logs.search(/ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer/);
  assert.equal(code, 0, `gateway exited ${code ?? signal}:\n${i >= 0 ? logs.slice(i, i + 4000) : logs.slice(-3000)}`);
}

// A header of a fetch answer (Headers) or of a node:http / raw one (plain object).
const headerOf = (res, name) => (typeof res.headers.get === 'function' ? res.headers.get(name) : res.headers[name]);

// An answer in the JSON error format: its status is `statuses` (one or a
// list), and its message names `field` when one is given.
export function assertError(res, statuses, field) {
  statuses = [].concat(statuses);
  assert.ok(statuses.includes(res.status), `want ${statuses}: ${show(res)}`);
  assert.match(headerOf(res, 'content-type') ?? '', /^application\/json/);
  assert.equal(typeof res.json?.error?.message, 'string', res.text);
  if (field) assert.ok(res.json.error.message.includes(field), `message names ${field}: ${res.json.error.message}`);
}

// ---- helpers for the proxy tests (tests/e2e/proxy_*) -----------------------

// Create a row through the admin API (the POST must answer 201) and return
// the created row — for a client key that includes `key`, shown only here.
export async function createRow(f, token, p, body) {
  const res = await api(f, 'POST', p, { token, body });
  assert.equal(res.status, 201, `POST ${p} ${JSON.stringify(body)}: ${show(res)}`);
  return res.json;
}

// Wait until the proxy, asked with clientKey, lists every model in `names`
// on GET /v1/models (workers pick up a new configuration asynchronously).
export async function waitForModels(f, clientKey, names, timeoutMs = 3_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await api(f, 'GET', '/v1/models', { token: clientKey });
    const ids = new Set((last.json?.data ?? []).map((m) => m.id));
    if (last.status === 200 && names.every((n) => ids.has(n))) {
      // Every worker is woken by the same publication: a short pause lets
      // the one that did not answer this call catch up too.
      await new Promise((r) => setTimeout(r, 30));
      return;
    }
    if (Date.now() > deadline) throw new Error(`models ${names} not listed within ${timeoutMs} ms: ${show(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
