// Session tokens that were altered, forged or are plain garbage are never admitted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  SESSION_COOKIE, b64url, cookieValue, decodeJwt, request, signHmac, signIn, stackKeyBytes, startStack, uniqueEmail,
} from './harness.mjs';

describe('tampered session tokens', () => {
  let stack;
  let token; // the real session JWT of a user with role "user"
  let jwt; // its decoded parts

  before(async () => {
    stack = await startStack({ name: 'tamper' });
    const r = await signIn(stack, { email: uniqueEmail('tamper'), name: 'Tamper Test' });
    assert.ok(r.sessionCookie, `sign-in failed:\n${r.response.describe()}`);
    token = cookieValue(r.sessionCookie);
    jwt = decodeJwt(token);
  });
  after(async () => { await stack?.stop(); });

  async function assertRefused(cookieValueOrHeader, what) {
    const cookie = cookieValueOrHeader.startsWith(`${SESSION_COOKIE}=`) ? cookieValueOrHeader : `${SESSION_COOKIE}=${cookieValueOrHeader}`;
    const page = await request(stack, '/docs/', { cookie, accept: 'text/html' });
    assert.equal(page.status, 302, `${what}: /docs/ must redirect to sign-in\n${page.describe()}`);
    assert.equal(page.location?.pathname, '/auth/login', `${what}: ${page.rawLocation}`);
    assert.ok(!page.body.includes('Private docs'), what);
    const session = await request(stack, '/auth/session', { cookie, accept: 'application/json' });
    assert.equal(session.status, 200, `${what}: /auth/session\n${session.describe()}`);
    assert.equal(session.json(), null, `${what}: /auth/session must be null\n${session.body}`);
    const api = await request(stack, '/docs/', { headers: { authorization: `Bearer ${cookie.slice(SESSION_COOKIE.length + 1)}` }, accept: 'application/json' });
    assert.equal(api.status, 401, `${what}: as a Bearer token\n${api.describe()}`);
  }

  const now = () => Math.floor(Date.now() / 1000);
  const forge = (headerPatch, payloadPatch, key = stackKeyBytes(stack), hash = 'sha256') =>
    signHmac({ ...jwt.header, ...headerPatch }, { ...jwt.payload, ...payloadPatch }, key, hash);

  test('the untouched token opens the private page (control)', async () => {
    const res = await request(stack, '/docs/', { cookie: `${SESSION_COOKIE}=${token}`, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.ok(res.body.includes('Private docs'));
  });

  test('a token re-signed by the test with the real key is admitted (control for the forgeries below)', async () => {
    const res = await request(stack, '/docs/', { cookie: `${SESSION_COOKIE}=${forge({}, {})}`, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
  });

  test('a token with one character of its signature changed is refused', async () => {
    const [h, p, s] = jwt.parts;
    const flipped = (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    await assertRefused(`${h}.${p}.${flipped}`, 'signature changed');
  });

  test('a token whose payload was changed to role admin, keeping the old signature, is refused', async () => {
    const [h, , s] = jwt.parts;
    const p = b64url(JSON.stringify({ ...jwt.payload, role: 'admin' }));
    await assertRefused(`${h}.${p}.${s}`, 'payload changed');
  });

  test('an alg "none" token built from the real claims is refused', async () => {
    const p = jwt.parts[1];
    for (const header of [{ alg: 'none', typ: 'JWT' }, { alg: 'none', typ: 'JWT', kid: jwt.header.kid }, { alg: 'None', kid: jwt.header.kid, typ: 'JWT' }]) {
      const h = b64url(JSON.stringify(header));
      await assertRefused(`${h}.${p}.`, `alg none ${JSON.stringify(header)}`);
      await assertRefused(`${h}.${p}.${jwt.parts[2]}`, `alg none with old signature ${JSON.stringify(header)}`);
    }
  });

  test('a token signed HS256 with a different key is refused', async () => {
    await assertRefused(forge({}, { role: 'admin' }, randomBytes(32)), 'other key');
    await assertRefused(forge({}, {}, randomBytes(32)), 'other key, same claims');
  });

  test('a token signed with the real key under another algorithm (HS384, HS512) is refused', async () => {
    await assertRefused(forge({ alg: 'HS384' }, {}, stackKeyBytes(stack), 'sha384'), 'HS384');
    await assertRefused(forge({ alg: 'HS512' }, {}, stackKeyBytes(stack), 'sha512'), 'HS512');
  });

  test('a token with a kid that names no configured key is refused', async () => {
    await assertRefused(forge({ kid: 'test-2' }, {}), 'unknown kid');
  });

  test('a correctly signed token for another issuer or audience is refused', async () => {
    await assertRefused(forge({}, { iss: 'https://evil.test' }), 'wrong iss');
    await assertRefused(forge({}, { aud: 'https://evil.test' }), 'wrong aud');
  });

  test('a correctly signed token issued in the future is refused', async () => {
    await assertRefused(forge({}, { iat: now() + 3600, exp: now() + 3900 }), 'iat in the future');
  });

  test('a correctly signed token of another type is refused', async () => {
    await assertRefused(forge({ typ: 'at+jwt' }, {}), 'typ at+jwt');
  });

  test('a correctly signed, expired token for a session id that does not exist is refused', async () => {
    await assertRefused(forge({}, { sid: 'no-such-session', iat: now() - 600, exp: now() - 300 }), 'expired, unknown sid');
  });

  for (const [label, value] of [
    ['"%%%"', '%%%'],
    ['empty', ''],
    ['a 10 KB value', 'a'.repeat(10 * 1024)],
    ['three dots', '...'],
    ['a JWT with non-JSON parts', `${b64url('nope')}.${b64url('nope')}.${b64url('nope')}`],
  ]) {
    test(`a garbage cookie (${label}) is refused without an error`, async () => {
      await assertRefused(`${SESSION_COOKIE}=${value}`, `garbage ${label}`);
    });
  }

  test('the real token sent as Authorization: Bearer opens the private page for an API client', async () => {
    const res = await request(stack, '/docs/', { headers: { authorization: `Bearer ${token}` }, accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    assert.ok(res.body.includes('Private docs'));
  });
});
