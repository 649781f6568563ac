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
