// The ID token's `iss` must equal GOOGLE_ISSUER: a provider that signs as someone else is refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { errorCodeOf, signIn, sqlString, startStack, uniqueEmail } from './harness.mjs';

describe('an ID token from an unexpected issuer', () => {
  let stack;
  before(async () => {
    stack = await startStack({ name: 'issuer', vars: { GOOGLE_ISSUER: 'https://issuer.invalid' } });
  });
  after(async () => { await stack?.stop(); });

  test('is refused with OAuthCallbackError, no session and no user', async () => {
    const email = uniqueEmail('issuer');
    const r = await signIn(stack, { email });
    assert.equal(r.response.status, 302, r.response.describe());
    assert.equal(errorCodeOf(r.response.location, stack.base), 'OAuthCallbackError', r.response.rawLocation);
    assert.equal(r.sessionCookie, null, JSON.stringify(r.setCookies));
    const rows = await stack.d1(`SELECT id FROM users WHERE email = ${sqlString(email)}`);
    assert.equal(rows.length, 0);
  });
});
