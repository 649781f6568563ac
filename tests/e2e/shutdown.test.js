// Graceful shutdown: SIGTERM/SIGINT let in-flight requests finish, stop
// taking new connections, and exit 0 — within SHUTDOWN_TIMEOUT_MS even if
// a client never finishes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { parseResponse, sleep, startFusion } from '../lib/harness.js';

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.data = '';
    s.on('data', (d) => { s.data += d; });
    s.on('connect', () => resolve(s));
    s.on('error', reject);
  });
}

async function waitFor(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(10);
  }
}

describe('graceful shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    test(`${signal} lets in-flight requests finish, then exits 0`, async () => {
      const f = await startFusion({ env: { SHUTDOWN_TIMEOUT_MS: '10000' } });
      // A keep-alive connection that already did one request.
      const idle = await connect(f.port);
      idle.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => idle.data.includes('"ok"'));
      idle.data = '';
      // A request whose body is still arriving.
      const upload = await connect(f.port);
      upload.write('POST /api/version HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello');
      await sleep(100);

      f.proc.kill(signal);
      await f.waitForLog(new RegExp(`received ${signal}`));
      await sleep(100);
      // New connections are refused once every worker stopped accepting.
      await assert.rejects(connect(f.port), /ECONNREFUSED/);
      // An idle keep-alive connection is either closed already (its worker
      // had nothing in flight) or, if it asks, hears "shutting down".
      idle.on('error', () => {});
      if (!idle.closed) idle.write('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => idle.closed || idle.data.includes('\r\n\r\n{'));
      if (idle.data) {
        const ready = parseResponse(idle.data);
        assert.equal(ready.status, 503);
        assert.equal(ready.headers.connection, 'close');
      }

      // The upload completes and gets its answer.
      upload.write('world');
      await waitFor(() => upload.data.includes('\r\n\r\n{'));
      assert.equal(parseResponse(upload.data).status, 405);
      const { code } = await f.stop();
      assert.equal(code, 0);
      assert.match(f.logs(), /stopped/);
      idle.destroy();
      upload.destroy();
    });
  }

  test('a client that never finishes does not hold shutdown past SHUTDOWN_TIMEOUT_MS', async () => {
    const f = await startFusion({ env: { SHUTDOWN_TIMEOUT_MS: '700', BODY_TIMEOUT_MS: '60000' } });
    const upload = await connect(f.port);
    upload.write('POST /api/version HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhello');
    await sleep(100);
    const t0 = Date.now();
    const { code } = await f.stop({ signal: 'SIGTERM', timeoutMs: 5000 });
    const ms = Date.now() - t0;
    assert.equal(code, 0);
    assert.ok(ms >= 600 && ms < 3000, `exited after ${ms} ms`);
    assert.match(f.logs(), /shutdown timeout/);
    upload.destroy();
  });
});
