// store_crash.test.js — a setting acknowledged by the store survives kill -9.
//
// Drives tests/tools/store_writer (found in $FUSION_TOOLS), which writes
// settings crash.k<i> = v<i> one store_setting_set() at a time and prints
// "ack <i>" after each one returned 0.  Each round starts the writer on
// the same database, waits for a few hundred acks, SIGKILLs it mid-write,
// then checks with the sqlite3 CLI that the file is intact and that every
// key acknowledged so far, in this round or an earlier one, is there with
// its value.
//
// The CLI opens the database read-only so it does not checkpoint: the WAL
// left by the killed writer stays in place and the next round's writer
// (i.e. our store_open) must recover it.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const ROUND_TIMEOUT_MS = 20_000;

function writerPath() {
  const dir = process.env.FUSION_TOOLS;
  assert.ok(dir, 'FUSION_TOOLS must name the folder holding store_writer');
  const p = path.join(dir, 'store_writer');
  assert.ok(existsSync(p), `${p} does not exist (build the test tools first)`);
  return p;
}

// Run the writer from key index `start`, SIGKILL it `delayMs` after the
// `minAcks`-th ack, and resolve with every index it acknowledged.
function killRound(writer, db, start, minAcks, delayMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(writer, [db, '0', String(start)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = [];
    let stderr = '';
    let killScheduled = false;
    let timedOut = false;

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ROUND_TIMEOUT_MS);

    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^ack (\d+)$/.exec(line);
      if (!m) return;
      acked.push(Number(m[1]));
      if (!killScheduled && acked.length >= minAcks) {
        killScheduled = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });

    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close' fires after stdout is drained, so every ack the writer
    // printed before dying has been seen.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`round gave up after ${ROUND_TIMEOUT_MS} ms with ${acked.length} acks; stderr: ${stderr}`));
      } else if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited on its own (code ${code}, signal ${signal}); stderr: ${stderr}`));
      } else {
        resolve(acked);
      }
    });
  });
}

function sqlite(db, sql) {
  return execFileSync('sqlite3', ['-readonly', '-batch', db, sql], {
    encoding: 'utf8',
    timeout: ROUND_TIMEOUT_MS,
  });
}

test('acknowledged settings survive kill -9 of the writer, three times over', async (t) => {
  const writer = writerPath();
  const dir = mkdtempSync(path.join(tmpdir(), 'fusion-store-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = path.join(dir, 'fusion.db');

  const expected = new Map(); // key -> value, over all rounds
  const rounds = [
    { start: 0, minAcks: 200, delayMs: 0 },
    { start: 1_000_000, minAcks: 300, delayMs: 7 },
    { start: 2_000_000, minAcks: 250, delayMs: 23 },
  ];

  for (const [n, round] of rounds.entries()) {
    const acked = await killRound(writer, db, round.start, round.minAcks, round.delayMs);
    assert.ok(acked.length >= round.minAcks, `round ${n}: only ${acked.length} acks`);
    for (const i of acked) expected.set(`crash.k${i}`, `v${i}`);

    assert.ok(existsSync(`${db}-wal`), `round ${n}: expected the killed writer to leave a WAL behind`);
    assert.equal(sqlite(db, 'PRAGMA integrity_check').trim(), 'ok', `round ${n}: integrity_check`);

    const rows = sqlite(db, "SELECT key || '=' || value FROM settings WHERE key LIKE 'crash.k%'");
    const stored = new Map(
      rows
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const eq = l.indexOf('=');
          return [l.slice(0, eq), l.slice(eq + 1)];
        }),
    );
    const missing = [...expected].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
    assert.deepEqual(missing.slice(0, 10), [], `round ${n}: ${missing.length} acknowledged keys lost`);
  }

  // The database is still usable by a normal (read-write) opener afterwards.
  assert.equal(
    execFileSync('sqlite3', [db, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim(),
    'ok',
  );
});
