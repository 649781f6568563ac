// Start-up: configuration validation, log formats, and the database
// checks made before anything serves (newer schema refused untouched,
// repeated starts fine).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runFusion, startFusion, tempDir } from '../lib/harness.js';

const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('configuration', () => {
  test('--help lists every setting with its variable and flag', async () => {
    const { code, stdout } = await runFusion(['--help']);
    assert.equal(code, 0);
    for (const v of ['PORT', 'DB_PATH', 'LISTEN_ADDR', 'WORKERS', 'LOG_LEVEL', 'LOG_FORMAT', 'MAX_BODY_BYTES',
      'MAX_HEADER_BYTES', 'MAX_CONNECTIONS', 'HEADER_TIMEOUT_MS', 'BODY_TIMEOUT_MS', 'IDLE_TIMEOUT_MS',
      'SHUTDOWN_TIMEOUT_MS']) {
      assert.match(stdout, new RegExp(`--${v.toLowerCase().replaceAll('_', '-')}\\s+${v}\\b`), v);
    }
  });

  test('--version prints the version', async () => {
    const { code, stdout } = await runFusion(['--version']);
    assert.equal(code, 0);
    assert.match(stdout, /^fusion 0\.1\.0 /);
  });

  test('invalid values are refused at start with a message naming the setting', async () => {
    const dir = tempDir();
    const base = { DB_PATH: path.join(dir, 'x.db') };
    const cases = [
      [{ PORT: 'abc' }, [], /invalid PORT 'abc'/],
      [{ PORT: '65536' }, [], /invalid PORT/],
      [{ WORKERS: '0' }, [], /invalid WORKERS/],
      [{ LOG_LEVEL: 'loud' }, [], /invalid LOG_LEVEL 'loud'.*debug, info, warn, error/],
      [{ LOG_FORMAT: 'xml' }, [], /invalid LOG_FORMAT/],
      [{ MAX_BODY_BYTES: '12x' }, [], /invalid MAX_BODY_BYTES/],
      [{ MAX_BODY_BYTES: '10' }, [], /invalid MAX_BODY_BYTES/],
      [{ LISTEN_ADDR: 'example.com' }, [], /invalid LISTEN_ADDR/],
      [{ HEADER_TIMEOUT_MS: '-5' }, [], /invalid HEADER_TIMEOUT_MS/],
      [{ DB_PATH: '' }, [], /invalid DB_PATH/],
      [{}, ['--no-such-flag=1'], /unknown flag/],
      [{}, ['--port'], /needs a value/],
      [{}, ['stray'], /unexpected argument/],
    ];
    for (const [env, args, re] of cases) {
      const r = await runFusion(args, { env: { ...base, ...env } });
      assert.equal(r.code, 2, `${JSON.stringify(env)} ${args} → exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    assert.ok(!existsSync(base.DB_PATH), 'no database created for a refused configuration');
    rmSync(dir, { recursive: true, force: true });
  });

  test('a flag wins over its environment variable', async () => {
    const f = await startFusion({ env: { MAX_BODY_BYTES: 'nonsense' }, args: ['--max-body-bytes=2k'] });
    const r = await fetch(f.baseUrl + '/v1/x', { method: 'POST', body: 'x'.repeat(3000) });
    assert.equal(r.status, 413);
    assert.equal((await f.stop()).code, 0);
  });

  test('LOG_FORMAT=json writes one JSON object per line, each with a request id', async () => {
    const f = await startFusion({ env: { LOG_FORMAT: 'json' } });
    await fetch(f.baseUrl + '/healthz', { headers: { 'X-Request-Id': 'json-check-1' } });
    await f.waitForLog(/json-check-1/);
    assert.equal((await f.stop()).code, 0);
    const lines = f.logs().trim().split('\n');
    assert.ok(lines.length >= 3);
    for (const l of lines) {
      const o = JSON.parse(l);
      assert.ok(o.ts && o.level && o.msg && 'request_id' in o, l);
    }
    assert.ok(lines.some((l) => JSON.parse(l).request_id === 'json-check-1'));
  });

  test('a port already in use is a clear start-up error', async () => {
    const srv = net.createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address();
    const dir = tempDir();
    const r = await runFusion([], { env: { PORT: String(port), LISTEN_ADDR: '127.0.0.1', DB_PATH: path.join(dir, 'x.db') } });
    srv.close();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1 port \d+: Address already in use/);
  });

  // Workers listen with SO_REUSEPORT, which a second process of the same
  // user could join; a second Fusion on a busy port must still be refused.
  test('a second Fusion on the port of a running one is refused, and the first keeps serving', async () => {
    const first = await startFusion();
    try {
      const dir = tempDir();
      const r = await runFusion([], { env: { PORT: String(first.port), LISTEN_ADDR: '127.0.0.1', DB_PATH: path.join(dir, 'y.db') } });
      rmSync(dir, { recursive: true, force: true });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot listen on 127\.0\.0\.1 port \d+: Address already in use/);
      for (let i = 0; i < 8; i++) assert.equal((await fetch(first.baseUrl + '/healthz')).status, 200);
    } finally {
      await first.stop();
    }
  });
});

describe('database at start-up', () => {
  test('a database from a newer schema version is refused and left untouched', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'newer.db');
    execFileSync('sqlite3', [db, 'PRAGMA journal_mode=WAL; CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL); INSERT INTO schema_migrations VALUES (1,\'initial schema\',0),(999,\'from the future\',0); CREATE TABLE future_things(x);']);
    const before = sha(db);
    const r = await runFusion([], { env: { PORT: '0', LISTEN_ADDR: '127.0.0.1', DB_PATH: db } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /schema version 999/);
    assert.match(r.stderr, /refusing/);
    assert.equal(sha(db), before, 'database file unchanged');
    assert.ok(!existsSync(db + '-wal') || readFileSync(db + '-wal').length === 0);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a file that is not a database is refused and left untouched', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'notes.txt');
    writeFileSync(db, 'these are my notes, not a database\n'.repeat(200));
    const before = sha(db);
    const r = await runFusion([], { env: { PORT: '0', DB_PATH: db } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a SQLite database|not a database/);
    assert.equal(sha(db), before);
    rmSync(dir, { recursive: true, force: true });
  });

  test('starting twice on the same database is fine and the schema is complete', async () => {
    const dir = tempDir();
    const db = path.join(dir, 'twice.db');
    for (let i = 0; i < 2; i++) {
      const f = await startFusion({ dbPath: db, dir });
      const r = await fetch(f.baseUrl + '/readyz');
      assert.equal(r.status, 200);
      assert.equal((await f.stop({ keepDir: true })).code, 0);
    }
    const tables = execFileSync('sqlite3', [db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"]).toString().split('\n').filter(Boolean);
    for (const t of ['users', 'sessions', 'providers', 'provider_keys', 'models', 'model_mappings', 'client_keys',
      'request_logs', 'health_checks', 'settings', 'schema_migrations']) {
      assert.ok(tables.includes(t), `table ${t}`);
    }
    assert.equal(execFileSync('sqlite3', [db, 'PRAGMA integrity_check']).toString().trim(), 'ok');
    assert.equal(execFileSync('sqlite3', [db, 'PRAGMA journal_mode']).toString().trim(), 'wal');
    assert.equal(execFileSync('sqlite3', [db, 'SELECT count(*) FROM schema_migrations']).toString().trim(), '1');
    rmSync(dir, { recursive: true, force: true });
  });
});
