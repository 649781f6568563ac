// The HTTP front: health endpoints, request ids, the embedded UI, JSON
// errors, and the protections in front of evhttp (size limits, slow
// clients, ambiguous framing, connection cap).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { parseResponse, rawExchange, sleep, startFusion } from '../lib/harness.js';

function assertJsonError(res, status, code) {
  assert.ok(res, 'a response was received');
  assert.equal(res.status, status, `status (body: ${res.body})`);
  assert.match(res.headers['content-type'], /^application\/json/);
  const body = JSON.parse(res.body);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  if (code) assert.equal(body.error.code, code);
  assert.match(res.headers['x-request-id'] ?? '', /^[0-9a-f]{32}$/);
  return body;
}

describe('http server', () => {
  let f;
  before(async () => {
    f = await startFusion({ env: { HEADER_TIMEOUT_MS: '1000', BODY_TIMEOUT_MS: '1500', MAX_BODY_BYTES: '1m' } });
  });
  after(async () => {
    const { code } = await f.stop();
    assert.equal(code, 0);
  });

  test('healthz, readyz and version answer JSON', async () => {
    let r = await fetch(f.baseUrl + '/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok', version: '0.1.0' });
    r = await fetch(f.baseUrl + '/readyz');
    assert.equal(r.status, 200);
    assert.equal((await r.json()).status, 'ready');
    r = await fetch(f.baseUrl + '/api/version');
    const v = await r.json();
    assert.equal(v.version, '0.1.0');
    assert.equal(typeof v.revision, 'string');
    assert.equal(r.headers.get('cache-control'), 'no-store');
  });

  test('every response carries X-Request-Id: a sane one is echoed, others replaced', async () => {
    let r = await fetch(f.baseUrl + '/healthz', { headers: { 'X-Request-Id': 'client-abc_123.4:5' } });
    assert.equal(r.headers.get('x-request-id'), 'client-abc_123.4:5');
    await f.waitForLog(/\[client-abc_123\.4:5\] GET \/healthz 200/);
    for (const bad of ['has space', 'x'.repeat(65), 'semi;colon', '<script>']) {
      r = await fetch(f.baseUrl + '/healthz', { headers: { 'X-Request-Id': bad } });
      assert.match(r.headers.get('x-request-id'), /^[0-9a-f]{32}$/, bad);
    }
    r = await fetch(f.baseUrl + '/no/such/api.json');
    assert.match(r.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  });

  test('the embedded web UI is served at / with caching validators', async () => {
    let r = await fetch(f.baseUrl + '/');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
    const html = await r.text();
    assert.match(html, /<div id="root"><\/div>/);
    const etag = r.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{16}"$/);
    r = await fetch(f.baseUrl + '/', { headers: { 'If-None-Match': etag } });
    assert.equal(r.status, 304);

    const asset = html.match(/src="(\/assets\/[^"]+\.js)"/)[1];
    r = await fetch(f.baseUrl + asset);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /javascript/);
    assert.match(r.headers.get('cache-control'), /immutable/);
    assert.ok((await r.arrayBuffer()).byteLength > 1000);

    // Client-side routes get the app; missing files do not.
    r = await fetch(f.baseUrl + '/providers/12');
    assert.equal(r.status, 200);
    assert.match(await r.text(), /<div id="root">/);
    r = await fetch(f.baseUrl + '/assets/missing.js');
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, 'not_found');
  });

  test('unknown API paths are JSON 404s; wrong methods are 405 with Allow', async () => {
    let r = await fetch(f.baseUrl + '/api/nope');
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.type, 'not_found_error');
    r = await fetch(f.baseUrl + '/v1/whatever', { method: 'POST', body: '{}' });
    assert.equal(r.status, 404);
    r = await fetch(f.baseUrl + '/healthz', { method: 'DELETE' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
    assert.equal((await r.json()).error.code, 'method_not_allowed');
  });

  test('paths are normalised once; ambiguous ones are refused', async () => {
    let x = await rawExchange(f.port, 'GET //api//version HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 500 });
    assert.equal(parseResponse(x.data).status, 200);
    x = await rawExchange(f.port, 'GET /v1/%2e%2e/api/version HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 500 });
    assert.equal(parseResponse(x.data).status, 200);
    for (const p of ['/../etc/passwd', '/api%2fversion', '/a/%2e%2e/%2e%2e/x', '/x%00y']) {
      x = await rawExchange(f.port, `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`, { timeoutMs: 500 });
      assertJsonError(parseResponse(x.data), 400, 'invalid_path');
    }
  });

  test('a 100 MB announced body gets 413 without being read, and the connection is closed', async () => {
    const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      'Content-Length: 104857600\r\n\r\n';
    // Send the head and the start of the body, then keep the socket open:
    // the server must answer and close by itself.
    const x = await rawExchange(f.port, [head, '{"model":"x","messages":['], { timeoutMs: 5000 });
    assertJsonError(parseResponse(x.data), 413, 'request_too_large');
    assert.ok(x.closed, 'server closed the connection');
    assert.ok(x.ms < 2500, `closed after ${x.ms} ms`);
  });

  test('a chunked body is accepted within the limit and refused beyond it', async () => {
    const ok = 'POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' +
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    let x = await rawExchange(f.port, ok, { timeoutMs: 2000 });
    // Both pipelined requests are answered, in order.
    assert.match(x.data, /^HTTP\/1\.1 405[\s\S]*HTTP\/1\.1 200/);
    const big = 'POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '100001\r\n' + 'a'.repeat(1000);
    x = await rawExchange(f.port, big, { timeoutMs: 3000 });
    assertJsonError(parseResponse(x.data), 413, 'request_too_large');
    assert.ok(x.closed);
  });

  test('pipelined requests with Content-Length bodies in one write are answered in order', async () => {
    // Each head and its body pass to evhttp together; the bytes after a
    // body start the next request.
    const three = 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
      'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc' +
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const x = await rawExchange(f.port, three, { timeoutMs: 2000 });
    assert.match(x.data, /^HTTP\/1\.1 405[\s\S]*HTTP\/1\.1 405[\s\S]*HTTP\/1\.1 200/);
    assert.equal(x.data.match(/HTTP\/1\.1 /g).length, 3);
    assert.ok(x.closed);
  });

  test('a 64 KB header block gets 431', async () => {
    const x = await rawExchange(f.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assertJsonError(parseResponse(x.data), 431, 'request_header_too_large');
    assert.ok(x.closed);
  });

  test('ambiguous framing, unknown methods and other versions are refused in JSON', async () => {
    const cases = [
      ['POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
      ['POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 400],
      ['POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
      ['POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
      ['BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n', 501],
      ['GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
      ['GET / HTTP/1.1\r\nHost x\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 400],
      ['garbage\r\n\r\n', 400],
    ];
    for (const [req, status] of cases) {
      const x = await rawExchange(f.port, req, { timeoutMs: 3000 });
      const res = parseResponse(x.data);
      assertJsonError(res, status);
      assert.ok(x.closed, `closed after ${JSON.stringify(req)}`);
    }
  });

  test('a client that sends half a request line and stalls is cut off; others are served meanwhile', async () => {
    const stalled = rawExchange(f.port, 'GET /heal', { timeoutMs: 6000 });
    const slowBody = rawExchange(f.port, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc', { timeoutMs: 6000 });
    await sleep(200);
    const t0 = Date.now();
    const r = await fetch(f.baseUrl + '/healthz');
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 < 500, 'healthy client served at once');
    const s = await stalled;
    assertJsonError(parseResponse(s.data), 408, 'request_timeout');
    assert.ok(s.closed);
    assert.ok(s.ms >= 900 && s.ms < 3000, `head timeout after ${s.ms} ms`);
    const b = await slowBody;
    assertJsonError(parseResponse(b.data), 408, 'request_timeout');
    assert.ok(b.ms >= 1400 && b.ms < 3500, `body timeout after ${b.ms} ms`);
  });

  test('a trickling client cannot stretch the head deadline', async () => {
    const chunks = 'GET /healthz HTTP/1.1\r\nHost: x\r\n'.split('');
    const x = await rawExchange(f.port, chunks, { gapMs: 100, timeoutMs: 6000 });
    assertJsonError(parseResponse(x.data), 408, 'request_timeout');
    assert.ok(x.ms < 2500, `cut after ${x.ms} ms`);
  });

  test('keep-alive: many requests share one connection', async () => {
    const sock = net.connect(f.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    let data = '';
    sock.on('data', (d) => { data += d; });
    for (let i = 0; i < 20; i++) sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const deadline = Date.now() + 3000;
    while ((data.match(/HTTP\/1\.1 200/g) ?? []).length < 20 && Date.now() < deadline) await sleep(20);
    sock.destroy();
    assert.equal((data.match(/HTTP\/1\.1 200/g) ?? []).length, 20);
  });
});

describe('connection cap', () => {
  test('connections beyond MAX_CONNECTIONS get 503 and are closed', async () => {
    const f = await startFusion({ env: { MAX_CONNECTIONS: '3', WORKERS: '1' } });
    try {
      const idle = [];
      for (let i = 0; i < 3; i++) {
        const s = net.connect(f.port, '127.0.0.1');
        await new Promise((r) => s.on('connect', r));
        idle.push(s);
      }
      await sleep(100);
      const x = await rawExchange(f.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
      assertJsonError(parseResponse(x.data), 503, 'too_many_connections');
      for (const s of idle) s.destroy();
      await sleep(200);
      const r = await fetch(f.baseUrl + '/healthz');
      assert.equal(r.status, 200, 'served again once connections closed');
    } finally {
      assert.equal((await f.stop()).code, 0);
    }
  });
});
