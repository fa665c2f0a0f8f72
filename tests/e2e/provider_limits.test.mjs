// Provider answers over 1 MiB are cut off while they stream in, not after buffering, and an
// announced Content-Length over 1 MiB is refused before any of the body is read: a never-ending
// or huge JWKS or token response ends the sign-in on OAuthCallbackError well before the 5 s
// provider timeout, with a log line saying the response was too large. And GOOGLE_*_URL must be
// https:// except on loopback (Configuration page, log line naming the variable).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SESSION_COOKIE, errorCodeOf, findSetCookie, idpControl, request, sessionCookieFrom, signIn, startStack,
  uniqueEmail, waitForLog,
} from './harness.mjs';

/** Well under the worker's 5 s provider timeout: only a cut-off while streaming is this fast. */
const QUICK_MS = 3000;

describe('provider answers larger than 1 MiB', () => {
  let stack;
  before(async () => { stack = await startStack({ name: 'provider_limits' }); });
  after(async () => { await stack?.stop(); });

  /** A sign-in whose provider misbehaves: refused quickly, no session, "too large" logged. */
  async function assertCutOff(idpParams, label) {
    const from = stack.logs().length;
    const t0 = Date.now();
    const r = await signIn(stack, { email: uniqueEmail(label), extraIdpParams: idpParams });
    const elapsed = Date.now() - t0;
    const res = r.response;
    assert.equal(res.status, 302, res.describe());
    assert.equal(errorCodeOf(res.location, stack.base), 'OAuthCallbackError', res.describe());
    assert.equal(sessionCookieFrom(res), null, res.describe());
    assert.equal(findSetCookie(res, SESSION_COOKIE), null, res.describe());
    assert.ok(elapsed < QUICK_MS, `the sign-in took ${elapsed} ms; a cut-off while streaming takes well under ${QUICK_MS} ms`);
    const [line] = await waitForLog(stack, (o) => o.event === 'signin_failed', { from, what: 'signin_failed' });
    assert.equal(line.level, 'warn', JSON.stringify(line));
    assert.match(line.reason, /too large/, JSON.stringify(line));
    const page = await request(stack, res.location, { accept: 'text/html' });
    assert.equal(page.status, 400, page.describe());
    assert.doesNotMatch(page.body, /too large|1 MiB|panicked|\.rs:\d+/, 'the page shows no internals');
    return line;
  }

  test('a JWKS that never ends is cut off after 1 MiB: OAuthCallbackError within 3 s', async () => {
    // A fresh isolate: no key set cached yet, so the sign-in fetches it.
    await idpControl(stack, 'POST', '/_control/jwks?mode=endless');
    try {
      await assertCutOff({}, 'limits-jwks-endless');
    } finally {
      await idpControl(stack, 'POST', '/_control/jwks?mode=ok');
    }
  });

  test('a token response that never ends (token_endless) is cut off after 1 MiB: OAuthCallbackError within 3 s', async () => {
    await assertCutOff({ test_twist: 'token_endless' }, 'limits-token-endless');
  });

  test('a token response announcing 3 MiB and sent a byte a second (token_huge_slow_body) is refused on its Content-Length', async () => {
    await assertCutOff({ test_twist: 'token_huge_slow_body' }, 'limits-token-huge-slow');
  });

  test('a 3 MiB token response sent at once (token_huge) is refused as too large', async () => {
    await assertCutOff({ test_twist: 'token_huge' }, 'limits-token-huge');
  });

  test('a JWKS announcing 3 MiB and sent a byte a second is refused on its Content-Length', async () => {
    // A new isolate (the failed JWKS fetch above is only retried once a minute).
    await stack.restart();
    await idpControl(stack, 'POST', '/_control/jwks?mode=huge_slow');
    try {
      await assertCutOff({}, 'limits-jwks-huge-slow');
    } finally {
      await idpControl(stack, 'POST', '/_control/jwks?mode=ok');
    }
  });

  test('the worker keeps serving: an honest sign-in works after a restart', async () => {
    await stack.restart();
    const r = await signIn(stack, { email: uniqueEmail('limits-honest') });
    assert.ok(r.sessionCookie, r.response.describe());
  });

  test('GOOGLE_TOKEN_URL and GOOGLE_JWKS_URL over plain http:// to a non-loopback host are a Configuration error naming them', async () => {
    const from = stack.logs().length;
    await stack.restart({
      GOOGLE_TOKEN_URL: 'http://oauth2.example.com/token',
      GOOGLE_JWKS_URL: 'http://127.0.0.1.nip.io/certs',
    });
    for (const path of ['/docs/', '/auth/login/google']) {
      const res = await request(stack, path, { accept: 'text/html' });
      assert.equal(res.status, 500, res.describe());
      assert.match(res.body, /not set up correctly/, res.describe());
    }
    const [line] = await waitForLog(stack, (o) => o.event === 'configuration_invalid', { from, what: 'configuration_invalid' });
    const problems = line.problems.join('\n');
    assert.match(problems, /GOOGLE_TOKEN_URL .*https:\/\//, problems);
    assert.match(problems, /GOOGLE_JWKS_URL .*https:\/\//, problems);
    assert.doesNotMatch(problems, /GOOGLE_AUTHORIZATION_URL/, 'the loopback http:// URL of the local provider is fine');
  });
});
