// Revocable stateless sessions: renewal with the current role, revocation within
// SESSION_CHECK_INTERVAL, the absolute SESSION_MAX_AGE, key rotation made with `gatehouse keygen`,
// EdDSA keys verified by an ordinary JOSE library from /auth/jwks.json, and bearer tokens.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify } from 'jose';
import {
  ROOT, SESSION_COOKIE, clearsCookie, cookieValue, decodeJwt, eventually, findSetCookie, logLines, request, signIn, sleep,
  sqlString, startStack, uniqueEmail,
} from './harness.mjs';

const CLI = path.join(ROOT, 'target', 'debug', 'gatehouse');
const keygen = (args, input) => execFileSync(CLI, ['keygen', ...args], { input, encoding: 'utf8' }).trim();

// Tokens expire fast, so renewal and revocation show quickly. Long enough that a sign-in plus
// a `wrangler d1 execute` (1–3 s on a busy machine) happens within one token's life.
const INTERVAL = 6;
const pastInterval = () => sleep((INTERVAL + 0.8) * 1000);
// The absolute end is shown with its own, faster stack.
const SHORT_INTERVAL = 2;
const MAX_AGE = 12;

async function sessionOf(stack, cookie) {
  const res = await request(stack, '/auth/session', { cookie });
  assert.equal(res.status, 200, res.describe());
  return { json: res.json(), renewed: findSetCookie(res, SESSION_COOKIE), res };
}

/** Follows a renewal: the cookie the browser holds after this response. */
function next(cookie, res) {
  const c = findSetCookie(res, SESSION_COOKIE);
  return c && c.value ? `${SESSION_COOKIE}=${c.value}` : cookie;
}

describe('renewal and revocation within SESSION_CHECK_INTERVAL', () => {
  let stack;
  before(async () => {
    // LAST_SEEN_INTERVAL=1: a renewal is always due a last-seen write (the default, an hour,
    // is shown natively: src/app/tests/sessions.rs).
    stack = await startStack({ name: 'sessions', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL), LAST_SEEN_INTERVAL: '1' } });
  });
  after(async () => { await stack?.stop(); });

  test('a role changed in D1 is in the session after the next renewal, not before', async () => {
    const email = uniqueEmail('role');
    const { sessionCookie } = await signIn(stack, { email });
    await stack.d1(`UPDATE users SET role = 'editor' WHERE email = ${sqlString(email)}`);
    const before = await sessionOf(stack, sessionCookie);
    assert.equal(before.json.user.role, 'user', 'a fresh token is trusted without D1');
    await pastInterval();
    const after = await sessionOf(stack, sessionCookie);
    assert.equal(after.json.user.role, 'editor', after.res.describe());
    assert.ok(after.renewed?.value, 'renewal sets a fresh cookie');
    assert.equal(decodeJwt(after.renewed.value).payload.role, 'editor');
  });

  test('disabling a user in D1 ends every session of that user within the interval', async () => {
    const email = uniqueEmail('disabled');
    const a = await signIn(stack, { email });
    const b = await signIn(stack, { email });
    await stack.d1(`UPDATE users SET disabled_at = unixepoch() WHERE email = ${sqlString(email)}`);
    await pastInterval();
    for (const cookie of [a.sessionCookie, b.sessionCookie]) {
      const res = await request(stack, '/docs/', { cookie, accept: 'text/html' });
      assert.equal(res.status, 302, res.describe());
      assert.equal(res.location.pathname, '/auth/login');
      assert.ok(clearsCookie(findSetCookie(res, SESSION_COOKIE)), 'the ended session cookie is cleared');
    }
    const again = await signIn(stack, { email });
    assert.equal(again.sessionCookie, null, 'a disabled user cannot sign in again');
  });

  test('last_seen_at moves at renewal, not on every request', async () => {
    const email = uniqueEmail('seen');
    const { sessionCookie } = await signIn(stack, { email });
    const seen = async () => (await stack.d1(
      `SELECT s.last_seen_at AS t FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ${sqlString(email)}`,
    ))[0].t;
    const first = await seen();
    for (let i = 0; i < 3; i++) await request(stack, '/docs/', { cookie: sessionCookie, accept: 'text/html' });
    assert.equal(await seen(), first, 'requests with a fresh token do not write D1');
    await pastInterval();
    const res = await request(stack, '/docs/', { cookie: sessionCookie, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    // The renewal queued the write; the isolate's next pull of the change feed (the next renewal
    // half an interval on) writes it.
    await pastInterval();
    const again = await request(stack, '/docs/', { cookie: next(sessionCookie, res), accept: 'text/html' });
    assert.equal(again.status, 200, again.describe());
    await eventually(async () => (await seen()) > first, 'renewal records last_seen_at', { timeoutMs: 10000, everyMs: 250 });
  });

  test('an expired bearer token gets 401 invalid_token and is never renewed', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('bearer') });
    const auth = { authorization: `Bearer ${cookieValue(sessionCookie)}` };
    const ok = await request(stack, '/auth/verify', { headers: auth });
    assert.equal(ok.status, 200, ok.describe());
    assert.ok(ok.headers.get('x-auth-user-id'));
    await pastInterval();
    const res = await request(stack, '/docs/', { headers: auth, accept: 'application/json' });
    assert.equal(res.status, 401, res.describe());
    assert.equal(res.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    assert.equal(findSetCookie(res, SESSION_COOKIE), null, 'no cookie for bearer clients');
    assert.equal((await request(stack, '/auth/verify', { headers: auth })).status, 401);
  });
});

describe('SESSION_MAX_AGE', () => {
  let stack;
  before(async () => {
    stack = await startStack({ name: 'maxage', vars: { SESSION_CHECK_INTERVAL: String(SHORT_INTERVAL), SESSION_MAX_AGE: String(MAX_AGE) } });
  });
  after(async () => { await stack?.stop(); });

  test('SESSION_MAX_AGE ends a session however often it was renewed', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('maxage') });
    const start = Date.now();
    let cookie = sessionCookie;
    let renewals = 0;
    while (Date.now() - start < (MAX_AGE - SHORT_INTERVAL - 1) * 1000) {
      await sleep((SHORT_INTERVAL + 0.6) * 1000);
      const res = await request(stack, '/docs/', { cookie, accept: 'text/html' });
      assert.equal(res.status, 200, res.describe());
      const c = findSetCookie(res, SESSION_COOKIE);
      if (c?.value) {
        renewals += 1;
        assert.ok(Number(c.attrs['max-age']) <= MAX_AGE, `cookie lives only the rest of the session: ${c.attrs['max-age']}`);
      }
      cookie = next(cookie, res);
    }
    assert.ok(renewals >= 2, `renewed ${renewals} times`);
    await sleep(Math.max(0, MAX_AGE * 1000 - (Date.now() - start)) + 1000);
    const res = await request(stack, '/docs/', { cookie, accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
  });

});

describe('key rotation with gatehouse keygen --rotate', () => {
  let stack;
  const oldSet = keygen(['--kid', 'old']);
  before(async () => {
    stack = await startStack({ name: 'rotation', vars: { SESSION_KEYS: oldSet, SESSION_CHECK_INTERVAL: String(INTERVAL) } });
  });
  after(async () => { await stack?.stop(); });

  test('a new first key logs no one out; removing the old key ends only its tokens', async () => {
    const a = await signIn(stack, { email: uniqueEmail('rot-a') });
    assert.equal(decodeJwt(cookieValue(a.sessionCookie)).header.kid, 'old');

    // Step 1: prepend a new key, keep the old one.
    const rotated = keygen(['--rotate', '--kid', 'new'], oldSet);
    assert.deepEqual(JSON.parse(rotated).keys.map((k) => k.kid), ['new', 'old']);
    await stack.restart({ SESSION_KEYS: rotated });
    const still = await request(stack, '/docs/', { cookie: a.sessionCookie, accept: 'text/html' });
    assert.equal(still.status, 200, `a token of the old key still works:\n${still.describe()}`);
    const b = await signIn(stack, { email: uniqueEmail('rot-b') });
    assert.equal(decodeJwt(cookieValue(b.sessionCookie)).header.kid, 'new', 'new tokens are signed by the first key');
    await pastInterval();
    const renewal = await request(stack, '/docs/', { cookie: a.sessionCookie, accept: 'text/html' });
    assert.equal(renewal.status, 200, renewal.describe());
    const renewedA = next(a.sessionCookie, renewal);
    assert.equal(decodeJwt(cookieValue(renewedA)).header.kid, 'new', 'renewal re-signs with the new key');

    // Step 2: remove the old key.
    await stack.restart({ SESSION_KEYS: JSON.stringify({ keys: [JSON.parse(rotated).keys[0]] }) });
    const oldToken = await request(stack, '/auth/session', { cookie: a.sessionCookie });
    assert.equal(oldToken.body, 'null', 'a token signed by a removed key is refused');
    const renewedStillWorks = await request(stack, '/docs/', { cookie: renewedA, accept: 'text/html' });
    assert.equal(renewedStillWorks.status, 200, renewedStillWorks.describe());
  });
});

describe('EdDSA session keys', () => {
  let stack;
  const edSet = keygen(['--alg', 'eddsa', '--kid', 'ed-1']);
  before(async () => {
    stack = await startStack({ name: 'eddsa', vars: { SESSION_KEYS: edSet } });
  });
  after(async () => { await stack?.stop(); });

  test('tokens are EdDSA and a third party verifies them with jose from /auth/jwks.json', async (t) => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('ed'), name: 'N'.repeat(200) });
    const token = cookieValue(sessionCookie);
    assert.equal(decodeJwt(token).header.alg, 'EdDSA');
    const res = await request(stack, '/auth/jwks.json');
    assert.equal(res.status, 200, res.describe());
    assert.match(res.headers.get('cache-control') ?? '', /public, max-age=\d+/);
    const jwks = res.json();
    assert.deepEqual(jwks.keys.map((k) => [k.kid, k.kty, k.crv, k.alg]), [['ed-1', 'OKP', 'Ed25519', 'EdDSA']]);
    assert.ok(jwks.keys.every((k) => !('d' in k)), 'no private part is published');
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: stack.base, audience: stack.base, algorithms: ['EdDSA'], typ: 'JWT',
    });
    assert.equal(protectedHeader.kid, 'ed-1');
    assert.equal(payload.email, decodeJwt(token).payload.email);
    const page = await request(stack, '/docs/', { cookie: sessionCookie, accept: 'text/html' });
    assert.equal(page.status, 200, page.describe());
    t.diagnostic(`EdDSA session cookie with a 200-character name: ${sessionCookie.length} bytes`);
    assert.ok(sessionCookie.length < 1024);
  });

  test('the hot path checks a new EdDSA token with WebCrypto: its claims still decide, and nothing falls back', async () => {
    // The first request of each token below reaches the hot path with a signature this
    // isolate never checked: gateCheck asks for it, WebCrypto verifies it (src/runtime/webcrypto.rs).
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('ed3') });
    const token = cookieValue(sessionCookie);
    const claims = decodeJwt(token).payload;
    for (let i = 0; i < 3; i++) {
      const page = await request(stack, `/docs/?n=${i}`, { cookie: sessionCookie, accept: 'text/html' });
      assert.equal(page.status, 200, page.describe());
    }
    // A good signature over the wrong claims: another site's audience, or a role it does not have.
    const key = await importJWK(JSON.parse(edSet).keys[0], 'EdDSA');
    const signed = (payload) => new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', kid: 'ed-1', typ: 'JWT' }).sign(key);
    const foreign = await signed({ ...claims, iss: 'https://other.example', aud: 'https://other.example' });
    const res = await request(stack, '/docs/', { cookie: `${SESSION_COOKIE}=${foreign}`, accept: 'text/html' });
    assert.equal(res.status, 302, `a token of another origin: ${res.describe()}`);
    const resigned = await signed({ ...claims, iat: Math.floor(Date.now() / 1000) - 1 });
    const ok = await request(stack, '/docs/', { cookie: `${SESSION_COOKIE}=${resigned}`, accept: 'text/html' });
    assert.equal(ok.status, 200, `the same claims, signed anew: ${ok.describe()}`);
    assert.deepEqual(logLines(stack).filter((l) => l.event === 'webcrypto_unavailable'), []);
  });

  test('a token whose signature was made for another key is refused by jose and by the gate', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('ed2') });
    const [h, p] = cookieValue(sessionCookie).split('.');
    const forged = `${h}.${p}.${Buffer.alloc(64, 7).toString('base64url')}`;
    const jwks = (await request(stack, '/auth/jwks.json')).json();
    await assert.rejects(jwtVerify(forged, createLocalJWKSet(jwks), { algorithms: ['EdDSA'] }));
    const res = await request(stack, '/docs/', { cookie: `${SESSION_COOKIE}=${forged}`, accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
  });
});
