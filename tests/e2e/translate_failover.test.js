// Failover between providers of different formats: the first candidate
// (one format) fails before any byte reached the client, the next one
// (another format) serves the call.  Each attempt builds its own request
// and stream state for its own format; the client sees one clean answer
// in its own format, and the log row names both attempts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { createRow, login, stopClean, waitForModels } from '../lib/admin.js';
import { sqlRows, startFusion, waitFor } from '../lib/harness.js';
import { startMatrixProviders } from '../lib/fakes.js';

const ADMIN_PASSWORD = 'translate-failover-admin-password';

describe('failover across provider formats', () => {
  let f;
  let fakes;
  let clientKey;

  before(async () => {
    fakes = await startMatrixProviders();
    f = await startFusion({ env: { FUSION_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    const token = await login(f, 'admin', ADMIN_PASSWORD);
    const prov = {};
    prov.anthropic = await createRow(f, token, '/api/admin/providers', { name: 'fo-anthropic', type: 'anthropic', base_url: fakes.anthropic.url, api_key: fakes.keys.anthropic });
    prov.gemini = await createRow(f, token, '/api/admin/providers', { name: 'fo-gemini', type: 'gemini', base_url: fakes.gemini.url, api_key: fakes.keys.gemini });
    prov.openai = await createRow(f, token, '/api/admin/providers', { name: 'fo-openai', type: 'openai', base_url: fakes.openai.url + '/v1', api_key: fakes.keys.openai });
    // fo-1: an Anthropic provider that answers 500, then a Gemini one.
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'fo-1', provider_id: prov.anthropic.id, provider_model: 'claude-err-500', priority: 10 });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'fo-1', provider_id: prov.gemini.id, provider_model: 'gemini-up-2.5-flash', priority: 1 });
    // fo-2: an OpenAI-compatible provider that answers 500, then an Anthropic one.
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'fo-2', provider_id: prov.openai.id, provider_model: 'gpt-err-500', priority: 10 });
    await createRow(f, token, '/api/admin/model-mappings', { client_model: 'fo-2', provider_id: prov.anthropic.id, provider_model: 'claude-up-sonnet-4', priority: 1 });
    clientKey = (await createRow(f, token, '/api/admin/keys', { name: 'failover' })).key;
    await waitForModels(f, clientKey, ['fo-1', 'fo-2']);
  });
  after(async () => {
    try { if (f) await stopClean(f); } finally { await fakes?.close(); }
  });

  test('openai client, stream: Anthropic 500, then Gemini serves', async () => {
    const client = new OpenAI({ baseURL: f.baseUrl + '/v1', apiKey: clientKey, maxRetries: 0 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'fo-1', messages: [{ role: 'user', content: 'Say hello' }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    let text = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(response.headers.get('x-fusion-provider'), 'fo-gemini');
    assert.equal(response.headers.get('x-fusion-attempts'), '2');
    assert.ok(text.length > 0, 'the Gemini answer reached the client');
    assert.equal(finish, 'stop');
    assert.equal(usage?.prompt_tokens, 13);
    assert.equal(fakes.violations().length, 0, fakes.showViolations());
    const id = response.headers.get('x-request-id');
    const [row] = await waitFor(() => sqlRows(f.dbPath, `SELECT * FROM request_logs WHERE id = '${id}'`).then((r) => r.length && r), { what: 'log row' });
    const attempts = JSON.parse(row.attempts);
    assert.deepEqual(attempts.map((a) => [a.provider, a.status]), [['fo-anthropic', 500], ['fo-gemini', 200]]);
    assert.equal(row.outcome, 'ok');
  });

  test('anthropic client, stream: OpenAI-compatible 500, then Anthropic serves', async () => {
    const client = new Anthropic({ baseURL: f.baseUrl, apiKey: clientKey, maxRetries: 0 });
    const stream = client.messages.stream({ model: 'fo-2', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello' }] });
    const msg = await stream.finalMessage();
    assert.equal(msg.stop_reason, 'end_turn');
    assert.match(msg.content.map((b) => b.text ?? '').join(''), /Hello/);
    assert.equal(fakes.violations().length, 0, fakes.showViolations());
  });
});
