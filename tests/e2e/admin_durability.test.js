// kill -9 through the API: every provider creation the gateway answered
// 201 for is in the database after a SIGKILL in the middle of a burst,
// the file is intact, and the gateway starts again on it and lists them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { login, stopClean } from '../lib/admin.js';
import { startFusion, tempDir } from '../lib/harness.js';

const ADMIN_PASSWORD = 'durability-admin-pw';
const BURST = 100;
const KILL_AFTER_ACKS = 40;

test('acknowledged provider creations survive kill -9 mid-burst', async () => {
  const dir = tempDir();
  try {
    let f = await startFusion({ dir, env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    let token = await login(f, 'admin', ADMIN_PASSWORD);
    const acked = [];
    let failedAt = -1;
    let killed = false;
    for (let i = 0; i < BURST; i++) {
      const name = `durable-${String(i).padStart(3, '0')}`;
      const pending = fetch(f.baseUrl + '/api/admin/providers', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ name, type: 'openai', base_url: 'https://a.example', api_key: `sk-durable-${i}-0123456789abcdef` }),
      });
      // Once enough are acknowledged, kill the gateway while this one is in flight.
      if (!killed && acked.length >= KILL_AFTER_ACKS) {
        killed = true;
        setTimeout(() => f.proc.kill('SIGKILL'), 1 + (i % 3));
      }
      try {
        const r = await pending;
        const body = await r.text();
        if (r.status === 201) acked.push(name);
        else assert.fail(`${name}: ${r.status} ${body}`);
      } catch (e) {
        if (e.code === 'ERR_ASSERTION') throw e;
        failedAt = i;
        break; // the gateway is gone
      }
    }
    const { signal } = await f.stop({ keepDir: true });
    assert.equal(signal, 'SIGKILL', 'the gateway was killed mid-burst');
    assert.ok(failedAt > 0 && failedAt < BURST, `requests were still going when it died (stopped at ${failedAt})`);
    assert.ok(acked.length >= KILL_AFTER_ACKS, `${acked.length} acknowledged`);

    // The file is intact and holds every acknowledged row (the CLI also
    // recovers the WAL the killed process left).
    assert.equal(execFileSync('sqlite3', [f.dbPath, 'PRAGMA integrity_check']).toString().trim(), 'ok');
    const stored = new Set(execFileSync('sqlite3', [f.dbPath, "SELECT name FROM providers WHERE name LIKE 'durable-%'"]).toString().split('\n').filter(Boolean));
    for (const name of acked) assert.ok(stored.has(name), `${name} was acknowledged but is not in the database`);
    assert.equal(execFileSync('sqlite3', [f.dbPath, 'PRAGMA foreign_key_check']).toString().trim(), '');
    // Each stored provider has its key (written in the same transaction).
    const keyless = execFileSync('sqlite3', [f.dbPath,
      "SELECT count(*) FROM providers p WHERE p.name LIKE 'durable-%' AND NOT EXISTS (SELECT 1 FROM provider_keys k WHERE k.provider_id = p.id)"]).toString().trim();
    assert.equal(keyless, '0', 'no provider without its api key');

    // The gateway starts again on that database and lists them.
    f = await startFusion({ dir, env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    token = await login(f, 'admin', ADMIN_PASSWORD);
    const r = await fetch(f.baseUrl + '/api/admin/providers?page_size=200', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    const listed = new Set((await r.json()).data.map((p) => p.name));
    for (const name of acked) assert.ok(listed.has(name), `${name} not listed after restart`);
    assert.equal(listed.size, stored.size);
    await stopClean(f, { keepDir: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
