// A broken configuration value gives the Configuration error page and a log line naming the
// variable — never a crash, and never the secret in the log.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, startStack, waitForLog } from './harness.mjs';

const MARKER = 'SUPERSECRETMARKER0123456789';

describe('a broken SESSION_KEYS', () => {
  let stack;
  before(async () => {
    stack = await startStack({
      name: 'config',
      // Truncated JSON: not a JWK Set.
      vars: { SESSION_KEYS: `{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"${MARKER}` },
    });
  });
  after(async () => { await stack?.stop(); });

  for (const path of ['/docs/', '/auth/login', '/auth/login/google']) {
    test(`GET ${path} answers the Configuration error page with 500`, async () => {
      const res = await request(stack, path, { accept: 'text/html' });
      assert.equal(res.status, 500, res.describe());
      assert.match(res.headers.get('content-type') ?? '', /text\/html/, res.describe());
      assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
      assert.ok(!res.body.includes(MARKER), 'the page does not show the secret');
    });
  }

  test('the worker keeps answering after many requests (no crash)', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await request(stack, '/docs/', { accept: 'text/html' });
      assert.equal(res.status, 500, res.describe());
    }
  });

  test('a structured log line names SESSION_KEYS and the secret is never logged', async () => {
    await waitForLog(stack, (o) => JSON.stringify(o).includes('SESSION_KEYS'), { what: 'a JSON line naming SESSION_KEYS' });
    assert.ok(!stack.logs().includes(MARKER), 'the value of SESSION_KEYS appears in the log');
  });
});
