// UI smoke test: the web UI embedded in the fusion binary loads in a real
// browser (Debian's Chromium via playwright-core), shows the version the
// server reports and its health, makes no failing or off-origin requests,
// and is served for client-side routes too (SPA fallback to index.html).
//
//   FUSION_BIN=/path/to/build/fusion node --test tests/ui/
//
// A screenshot of the home page is left in build/test-artifacts/ui-home.png.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFusion } from '../lib/harness.js';

const ARTIFACTS = fileURLToPath(new URL('../../build/test-artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const STEP_TIMEOUT = 15_000;

let fusion;
let browser;
let expected; // { version, versionText, health } as the server itself reports them

async function getJson(path) {
  const res = await fetch(fusion.baseUrl + path, { signal: AbortSignal.timeout(STEP_TIMEOUT) });
  assert.equal(res.status, 200, `GET ${path} status`);
  return res.json();
}

// Open a fresh page that records everything that went wrong on it.
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const problems = [];
  const origin = new URL(fusion.baseUrl).origin;
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) =>
    problems.push(`request failed: ${req.method()} ${req.url()} (${req.failure()?.errorText})`),
  );
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  page.on('request', (req) => {
    const url = req.url();
    // The UI must work offline: nothing but its own origin (and data: URIs).
    if (!url.startsWith('data:') && new URL(url).origin !== origin) {
      problems.push(`off-origin request: ${url}`);
    }
  });
  return { context, page, problems };
}

async function waitForText(page, selector, want) {
  try {
    await page.waitForFunction(
      ([sel, text]) => document.querySelector(sel)?.textContent?.includes(text) ?? false,
      [selector, want],
      { timeout: STEP_TIMEOUT },
    );
  } catch (err) {
    const got = await page.locator(selector).textContent({ timeout: 1000 }).catch(() => null);
    assert.fail(`${selector}: expected text containing ${JSON.stringify(want)}, got ${JSON.stringify(got)} (${err.message.split('\n')[0]})`);
  }
}

async function checkLoaded(page, problems) {
  assert.match(await page.title(), /Fusion/);
  await waitForText(page, '[data-testid=version]', expected.versionText);
  await waitForText(page, '[data-testid=health]', expected.health);
  assert.equal((await page.locator('[data-testid=health]').textContent()).trim(), 'ok');
  await page.waitForLoadState('networkidle');
  assert.deepEqual(problems, [], 'no console errors or failed requests');
}

describe('web UI', () => {
  before(async () => {
    fusion = await startFusion();

    const v = await getJson('/api/version');
    assert.equal(typeof v.version, 'string', '/api/version has a version string');
    assert.ok(v.version.length > 0, '/api/version version is not empty');
    const h = await getJson('/healthz');
    assert.equal(h.status, 'ok', '/healthz reports ok');
    expected = {
      version: v.version,
      versionText: v.revision ? `${v.version} (${v.revision})` : v.version,
      health: h.status,
    };

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
        '--disable-quic',
      ],
    });
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      if (fusion) await fusion.stop();
    }
  });

  test('home page shows the running version and health', { timeout: 60_000 }, async () => {
    const { context, page, problems } = await openPage();
    try {
      const res = await page.goto(fusion.baseUrl + '/', { waitUntil: 'load' });
      assert.equal(res?.status(), 200, 'GET / status');
      assert.match(res.headers()['content-type'] ?? '', /^text\/html/);
      await checkLoaded(page, problems);
      assert.match(await page.locator('h1').textContent(), /Fusion/);
    } finally {
      // Always leave a picture, pass or fail; never mask the real error.
      await mkdir(ARTIFACTS, { recursive: true }).catch(() => {});
      await page.screenshot({ path: ARTIFACTS + 'ui-home.png', fullPage: true }).catch(() => {});
      await context.close();
    }
  });

  test('client-side routes fall back to the app', { timeout: 60_000 }, async () => {
    const { context, page, problems } = await openPage();
    try {
      const res = await page.goto(fusion.baseUrl + '/some/spa/route', { waitUntil: 'load' });
      assert.equal(res?.status(), 200, 'GET /some/spa/route status');
      assert.match(res.headers()['content-type'] ?? '', /^text\/html/);
      await checkLoaded(page, problems);
    } finally {
      await context.close();
    }
  });
});
