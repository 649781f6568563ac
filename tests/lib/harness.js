// Shared end-to-end harness: start the real gateway binary on a free port
// with a throw-away database, talk to it, read its logs, stop it.
//
// The harness builds nothing: FUSION_BIN names the binary (the Makefile
// sets it).  Every process it starts is killed if the test process exits
// early, so a failing test never leaves a gateway or fake upstream behind.
//
//   const f = await startFusion({ env: { HEADER_TIMEOUT_MS: '500' } });
//   const res = await fetch(f.baseUrl + '/healthz');
//   f.logs()                      // everything the gateway wrote to stderr
//   await f.waitForLog(/GET \/healthz 200/);
//   const { code, signal } = await f.stop();  // SIGTERM, waits for exit
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const FUSION_BIN = process.env.FUSION_BIN || path.resolve('build/fusion');

// Sanitizer settings reach the gateway; nothing else of the test's
// environment does, so a developer's own variables cannot change a test.
const passEnv = Object.fromEntries(
  ['PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'].filter((k) => process.env[k]).map((k) => [k, process.env[k]]),
);

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function tempDir(prefix = 'fusion-test-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

// Run the binary to completion (for start-up failures, --help, ...).
export function runFusion(args = [], { env = {}, timeoutMs = 10_000, bin = FUSION_BIN } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { env: { ...passEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`fusion ${args.join(' ')} did not exit in ${timeoutMs} ms`)); }, timeoutMs);
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      live.delete(p);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// Start the gateway and wait until /healthz answers.
export async function startFusion({ env = {}, args = [], dbPath, dir, readyTimeoutMs = 15_000, bin = FUSION_BIN } = {}) {
  const ownDir = !dir;
  dir = dir || tempDir();
  dbPath = dbPath || path.join(dir, 'fusion.db');
  const childEnv = {
    ...passEnv,
    PORT: '0',
    LISTEN_ADDR: '127.0.0.1',
    DB_PATH: dbPath,
    WORKERS: '2',
    LOG_LEVEL: 'info',
    ...env,
  };
  const proc = spawn(bin, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  const waiters = [];
  const onData = (d) => {
    out += d;
    for (const w of [...waiters]) w.check();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      for (const w of [...waiters]) w.check();
      resolve({ code, signal });
    });
  });
  let exitInfo = null;
  exited.then((e) => { exitInfo = e; });

  function waitForLog(re, timeoutMs = 5_000) {
    return new Promise((resolve, reject) => {
      const w = {
        check() {
          const m = out.match(re);
          if (m) { done(); resolve(m); } else if (exitInfo) { done(); reject(new Error(`fusion exited (${JSON.stringify(exitInfo)}) before logging ${re}:\n${out}`)); }
        },
      };
      const timer = setTimeout(() => { done(); reject(new Error(`no log line matching ${re} within ${timeoutMs} ms:\n${out}`)); }, timeoutMs);
      function done() { clearTimeout(timer); const i = waiters.indexOf(w); if (i >= 0) waiters.splice(i, 1); }
      waiters.push(w);
      w.check();
    });
  }

  const m = await waitForLog(/listening on \[?[^\s\]]*\]?:(\d+)/, readyTimeoutMs);
  const port = Number(m[1]);
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    try {
      const r = await fetch(baseUrl + '/healthz');
      if (r.status === 200) { await r.arrayBuffer(); break; }
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`fusion did not become healthy:\n${out}`);
    await sleep(25);
  }

  return {
    proc, port, baseUrl, dbPath, dir,
    logs: () => out,
    waitForLog,
    exited,
    // Send a signal and wait for the process to exit (SIGKILL after timeoutMs).
    async stop({ signal = 'SIGTERM', timeoutMs = 15_000, keepDir = false } = {}) {
      if (!exitInfo) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const res = await exited;
      clearTimeout(timer);
      if (ownDir && !keepDir) rmSync(dir, { recursive: true, force: true });
      return res;
    },
  };
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// A raw TCP exchange for what fetch cannot express (malformed requests,
// stalled clients, oversized heads).  Resolves when the server closes the
// connection or timeoutMs passes: { data, closed, ms }.
export function rawExchange(port, chunks, { timeoutMs = 5_000, gapMs = 0, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let closed = false;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.on('data', (d) => { data += d.toString('latin1'); });
    sock.on('end', () => { closed = true; finish(); });
    sock.on('close', () => { closed = true; finish(); });
    sock.on('error', () => { closed = true; finish(); });
    sock.on('connect', async () => {
      for (const c of [].concat(chunks)) {
        if (finished) return;
        sock.write(c);
        if (gapMs) await sleep(gapMs);
      }
      if (!keepOpen) { /* leave it open: the server decides when to close */ }
    });
  });
}

// Parse the first HTTP response out of raw bytes: { status, headers, body }.
export function parseResponse(raw) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = Number(headers['content-length'] ?? 0);
  const body = raw.slice(end + 4, end + 4 + len);
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

// A scripted fake upstream provider.  `handler(req, res, ctx)` answers
// each request; ctx.body is the raw body and ctx.json its parse (or
// undefined).  Every request is recorded in `requests` with its headers
// and body, and connection closes are counted, so a test can check what
// the gateway sent and whether it hung up.
export async function startFakeUpstream(handler) {
  const requests = [];
  let closedConnections = 0;
  let current = handler;
  const server = createServer(async (req, res) => {
    const parts = [];
    for await (const p of req) parts.push(p);
    const body = Buffer.concat(parts).toString('utf8');
    let json;
    try { json = body ? JSON.parse(body) : undefined; } catch { json = undefined; }
    const entry = { method: req.method, url: req.url, headers: req.headers, body, json };
    requests.push(entry);
    try {
      await current(req, res, entry);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(err), type: 'fake_upstream_error' } }));
    }
  });
  server.on('connection', (s) => s.on('close', () => { closedConnections++; }));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    get closedConnections() { return closedConnections; },
    setHandler(h) { current = h; },
    close() {
      server.closeAllConnections?.();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

// Write Server-Sent Events one by one with a pause between them.
export async function writeSse(res, events, { delayMs = 0, status = 200 } = {}) {
  if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const e of events) {
    if (res.destroyed) return;
    res.write(typeof e === 'string' ? e : `data: ${JSON.stringify(e)}\n\n`);
    if (delayMs) await sleep(delayMs);
  }
  res.end();
}

// ---- helpers for the proxy tests (tests/e2e/proxy_*) -----------------------

import { readFileSync } from 'node:fs';

// A port on 127.0.0.1 that nothing listens on: connecting to it is refused.
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(() => r()));
  return port;
}

// Call `fn` every `everyMs` until it returns something truthy, and return
// that; after timeoutMs throw, naming `what` and the last value or error.
export async function waitFor(fn, { timeoutMs = 2_000, everyMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms (last: ${last instanceof Error ? last.stack : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

// A read-only SQL query on a database with the sqlite3 CLI: the rows as
// objects (`sqlite3 -json`), [] when there are none.
export function sqlRows(dbPath, sql) {
  return new Promise((resolve, reject) => {
    const p = spawn('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 2000', dbPath, sql], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`sqlite3 exited ${code}: ${err}`));
      else resolve(out.trim() ? JSON.parse(out) : []);
    });
  });
}

// The resident set size of a process in bytes (VmRSS of /proc/<pid>/status).
export function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) * 1024 : 0;
}

// One chat.completion.chunk as an OpenAI stream sends it.
export function chatChunk(model, delta, { id = 'chatcmpl-fake', finish = null, usage } = {}) {
  const c = { id, object: 'chat.completion.chunk', created: 1700000000, model, choices: [{ index: 0, delta, finish_reason: finish }] };
  if (usage !== undefined) c.usage = usage;
  return c;
}

// A startFakeUpstream handler that answers like the OpenAI API:
// POST …/chat/completions (JSON, or SSE with stream: true — the parts of
// `content` as chunks, then a usage-only chunk when stream_options.
// include_usage asks for it, then [DONE]) and POST …/embeddings (floats,
// or base64 when encoding_format is base64, as the SDK asks by default).
// Anything else is a 404.
export function openaiHandler({ label = 'fake', parts = ['Hello', ' from ', label], usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }, delayMs = 0 } = {}) {
  return async (req, res, ctx) => {
    const body = ctx.json ?? {};
    if (req.method === 'POST' && req.url.endsWith('/chat/completions')) {
      if (body.stream) {
        const events = parts.map((p, i) => chatChunk(body.model, i === 0 ? { role: 'assistant', content: p } : { content: p }));
        events.push(chatChunk(body.model, {}, { finish: 'stop' }));
        if (body.stream_options?.include_usage) {
          events.push({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1700000000, model: body.model, choices: [], usage });
        }
        events.push('data: [DONE]\n\n');
        await writeSse(res, events, { delayMs });
        return;
      }
      if (delayMs) await sleep(delayMs);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'chatcmpl-fake', object: 'chat.completion', created: 1700000000, model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: parts.join('') }, finish_reason: 'stop' }],
        usage,
      }));
      return;
    }
    if (req.method === 'POST' && req.url.endsWith('/embeddings')) {
      const inputs = [].concat(body.input ?? []);
      const vec = [0.25, -0.5, 1];
      const emb = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        object: 'list', model: body.model,
        data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: emb })),
        usage: { prompt_tokens: 3, total_tokens: 3 },
      }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `fake ${label}: no route ${req.method} ${req.url}`, type: 'invalid_request_error' } }));
  };
}
