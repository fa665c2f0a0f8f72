// Signing in with the local identity provider standing in for Google.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_EMAIL, CLIENT_ID, CLIENT_SECRET, SESSION_COOKIE, STATE_COOKIE,
  clearsCookie, cookieValue, decodeJwt, errorCodeOf, findSetCookie, request, sessionCookieFrom, signIn as browserSignIn, sqlString,
  startSignIn, startStack, subFor, uniqueEmail,
} from './harness.mjs';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const THIRTY_DAYS = 2592000;

describe('signing in with Google', () => {
  let stack;
  // Every secret-ish value the suite sees, to check the worker never logs one.
  const seen = new Set();
  before(async () => { stack = await startStack({ name: 'signin' }); });
  after(async () => { await stack?.stop(); });
  const signIn = async (...args) => {
    const r = await browserSignIn(...args);
    for (const key of ['code', 'state']) {
      const v = r.callbackUrl?.searchParams.get(key);
      if (v) seen.add(v);
    }
    if (r.sessionCookie) seen.add(cookieValue(r.sessionCookie));
    if (r.stateCookie?.value) seen.add(r.stateCookie.value);
    return r;
  };

  const countFor = async (email) => {
    const e = sqlString(email);
    const [row] = await stack.d1(
      `SELECT (SELECT COUNT(*) FROM users WHERE email = ${e}) AS users,
              (SELECT COUNT(*) FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.email = ${e}) AS accounts,
              (SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ${e}) AS sessions`,
    );
    return row;
  };

  function assertErrorRedirect(result, code) {
    const { response } = result;
    assert.equal(response.status, 302, response.describe());
    assert.equal(errorCodeOf(response.location, stack.base), code, `expected /auth/error?error=${code}, got ${response.rawLocation}`);
    assert.equal(result.sessionCookie, null, `no session cookie may be set: ${JSON.stringify(response.setCookies)}`);
  }

  test('the start of sign-in sets a short-lived state cookie and redirects to the provider with state, PKCE S256 and a nonce', async () => {
    const res = await request(stack, '/auth/login/google?callbackUrl=%2Fdocs%2F', { accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
    const loc = res.location;
    assert.equal(`${loc.origin}${loc.pathname}`, `${stack.idp}/o/oauth2/v2/auth`, res.rawLocation);
    const q = loc.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), CLIENT_ID);
    assert.equal(q.get('redirect_uri'), `${stack.base}/auth/callback/google`);
    assert.ok((q.get('state') ?? '').length >= 16, `state: ${q.get('state')}`);
    assert.ok((q.get('nonce') ?? '').length >= 16, `nonce: ${q.get('nonce')}`);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    const scopes = (q.get('scope') ?? '').split(/\s+/);
    for (const s of ['openid', 'email']) assert.ok(scopes.includes(s), `scope includes ${s}: ${q.get('scope')}`);

    assert.equal(findSetCookie(res, `__Host-${STATE_COOKIE}`), null, 'no __Host- prefix on http://127.0.0.1');
    const c = findSetCookie(res, STATE_COOKIE);
    assert.ok(c && c.value, `a ${STATE_COOKIE} cookie: ${JSON.stringify(res.setCookies)}`);
    assert.equal(c.attrs.httponly, true, c.raw);
    assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax', c.raw);
    assert.equal(c.attrs.path, '/', c.raw);
    assert.equal(Number(c.attrs['max-age']), 600, c.raw);
    assert.equal(c.attrs.secure, undefined, `no Secure on plain http: ${c.raw}`);
  });

  test('a full sign-in sets the session cookie with the right attributes and lands on the callbackUrl', async () => {
    const email = uniqueEmail('first');
    const r = await signIn(stack, { email, name: 'First Person', callbackUrl: '/docs/' });
    const res = r.response;
    assert.equal(res.status, 302, res.describe());
    assert.equal(res.location.href, `${stack.base}/docs/`, `final redirect: ${res.rawLocation}`);

    assert.equal(findSetCookie(res, `__Host-${SESSION_COOKIE}`), null, 'no __Host- prefix on http://127.0.0.1');
    const c = findSetCookie(res, SESSION_COOKIE);
    assert.ok(c && c.value, `a ${SESSION_COOKIE} cookie: ${JSON.stringify(res.setCookies)}`);
    assert.equal(c.attrs.httponly, true, c.raw);
    assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax', c.raw);
    assert.equal(c.attrs.path, '/', c.raw);
    assert.equal(c.attrs.secure, undefined, `no Secure on plain http: ${c.raw}`);
    assert.equal(c.attrs.domain, undefined, `no Domain: ${c.raw}`);
    const maxAge = Number(c.attrs['max-age']);
    assert.ok(maxAge > THIRTY_DAYS - 120 && maxAge <= THIRTY_DAYS, `Max-Age about 30 days: ${c.raw}`);
    assert.ok(`${c.name}=${c.value}`.length < 1024, `cookie under 1 KB (${c.value.length} bytes)`);
    assert.equal(res.setCookies.filter((h) => h.startsWith(`${SESSION_COOKIE}`)).length, 1, 'one session cookie, not chunks');

    const state = findSetCookie(res, STATE_COOKIE);
    assert.ok(state && clearsCookie(state), `the state cookie is cleared in the callback response: ${JSON.stringify(res.setCookies)}`);
  });

  test('a very long name and picture keep the session cookie under 1 KB in one cookie', async () => {
    const email = uniqueEmail('long');
    const longName = 'N'.repeat(1500);
    const r = await signIn(stack, {
      email,
      name: longName,
      extraIdpParams: { test_picture: `https://lh3.googleusercontent.com/a/${'p'.repeat(1500)}` },
    });
    assert.equal(r.response.status, 302, r.response.describe());
    assert.ok(r.sessionCookie, `signed in: ${JSON.stringify(r.setCookies)}`);
    assert.ok(r.sessionCookie.length < 1024, `cookie is ${r.sessionCookie.length} bytes`);
    assert.equal(r.setCookies.filter((h) => h.includes(SESSION_COOKIE)).length, 1, `one session cookie: ${JSON.stringify(r.setCookies)}`);
    const s = await request(stack, '/auth/session', { cookie: r.sessionCookie, accept: 'application/json' });
    assert.equal(s.json()?.user?.email, email, s.body);
    const [row] = await stack.d1(`SELECT name FROM users WHERE email = ${sqlString(email)}`);
    assert.equal(row?.name, longName, 'the full name is kept in D1');
  });

  test('the session token carries the claims of the design', async () => {
    const email = uniqueEmail('claims');
    const r = await signIn(stack, { email, name: 'Claims Person' });
    assert.ok(r.sessionCookie, r.response.describe());
    const { header, payload } = decodeJwt(cookieValue(r.sessionCookie));
    assert.equal(header.alg, 'HS256');
    assert.equal(header.kid, 'test-1');
    assert.equal(header.typ, 'JWT');
    assert.equal(payload.iss, stack.base);
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    assert.ok(aud.includes(stack.base), `aud: ${JSON.stringify(payload.aud)}`);
    assert.equal(payload.email, email);
    assert.equal(payload.role, 'user');
    assert.ok(typeof payload.sub === 'string' && payload.sub.length > 0, 'sub is the user id');
    assert.notEqual(payload.sub, subFor(email), 'sub is the Gatehouse user id, not the Google sub');
    assert.ok(typeof payload.sid === 'string' && payload.sid.length > 0, 'sid');
    assert.equal(payload.exp - payload.iat, 300, 'exp = iat + SESSION_CHECK_INTERVAL');
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 60, `iat is now: ${payload.iat}`);
    const rows = await stack.d1(`SELECT s.id, s.user_id, s.revoked_at FROM sessions s WHERE s.id = ${sqlString(payload.sid)}`);
    assert.equal(rows.length, 1, 'the session row exists in D1');
    assert.equal(rows[0].user_id, payload.sub);
    assert.equal(rows[0].revoked_at, null);
  });

  test('the session cookie opens the private page, which is marked private', async () => {
    const r = await signIn(stack, { email: uniqueEmail('docs') });
    assert.ok(r.sessionCookie, r.response.describe());
    const res = await request(stack, '/docs/', { cookie: r.sessionCookie, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.ok(res.body.includes('Private docs'), res.describe());
    assert.match(res.headers.get('cache-control') ?? '', /\bprivate\b/, res.describe());
  });

  test('GET /auth/session describes the signed-in user', async () => {
    const email = uniqueEmail('session');
    const r = await signIn(stack, { email, name: 'Session Person' });
    assert.ok(r.sessionCookie, r.response.describe());
    const res = await request(stack, '/auth/session', { cookie: r.sessionCookie, accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
    const body = res.json();
    assert.ok(body && body.user, res.body);
    assert.ok(typeof body.user.id === 'string' && body.user.id.length > 0, `user.id: ${res.body}`);
    assert.equal(body.user.email, email);
    assert.equal(body.user.name, 'Session Person');
    assert.equal(body.user.role, 'user');
    assert.ok('image' in body.user, `user.image is present (may be null): ${res.body}`);
    assert.match(String(body.expires), RFC3339, `expires is RFC 3339: ${body.expires}`);
    assert.ok(Date.parse(body.expires) > Date.now(), `expires is in the future: ${body.expires}`);
  });

  test('forward auth answers 200 with identity headers for a session', async () => {
    const email = uniqueEmail('verify');
    const r = await signIn(stack, { email });
    assert.ok(r.sessionCookie, r.response.describe());
    const res = await request(stack, '/auth/verify', { cookie: r.sessionCookie });
    assert.equal(res.status, 200, res.describe());
    const values = [...res.headers.values()];
    assert.ok(values.includes(email), `an identity header carries the email:\n${res.describe()}`);
  });

  test('a user listed in ADMIN_EMAILS gets the admin role', async () => {
    const r = await signIn(stack, { email: ADMIN_EMAIL, name: 'The Admin' });
    assert.ok(r.sessionCookie, r.response.describe());
    const res = await request(stack, '/auth/session', { cookie: r.sessionCookie, accept: 'application/json' });
    assert.equal(res.json()?.user?.role, 'admin', res.body);
    assert.equal(decodeJwt(cookieValue(r.sessionCookie)).payload.role, 'admin');
  });

  test('signing in twice as one person gives one user, one account and two sessions', async () => {
    const email = uniqueEmail('twice');
    const a = await signIn(stack, { email, name: 'Twice' });
    const b = await signIn(stack, { email, name: 'Twice' });
    assert.ok(a.sessionCookie && b.sessionCookie, 'both sign-ins set a session cookie');
    assert.notEqual(a.sessionCookie, b.sessionCookie);
    const ja = decodeJwt(cookieValue(a.sessionCookie)).payload;
    const jb = decodeJwt(cookieValue(b.sessionCookie)).payload;
    assert.equal(ja.sub, jb.sub, 'same user id');
    assert.notEqual(ja.sid, jb.sid, 'different sessions');
    const counts = await countFor(email);
    assert.deepEqual({ ...counts }, { users: 1, accounts: 1, sessions: 2 });
  });

  test('a second Google account with an existing email is refused with OAuthAccountNotLinked', async () => {
    const email = uniqueEmail('linked');
    const first = await signIn(stack, { email, sub: '111000111000111000111' });
    assert.ok(first.sessionCookie, first.response.describe());
    const second = await signIn(stack, { email, sub: '222000222000222000222' });
    assertErrorRedirect(second, 'OAuthAccountNotLinked');
    const counts = await countFor(email);
    assert.deepEqual({ ...counts }, { users: 1, accounts: 1, sessions: 1 });
  });

  test('the email match for OAuthAccountNotLinked ignores letter case', async () => {
    const email = uniqueEmail('casey');
    const first = await signIn(stack, { email, sub: '333000333000333000333' });
    assert.ok(first.sessionCookie, first.response.describe());
    const second = await signIn(stack, { email: email.toUpperCase(), sub: '444000444000444000444' });
    assertErrorRedirect(second, 'OAuthAccountNotLinked');
  });

  test('an unverified email never takes over an existing user', async () => {
    const email = uniqueEmail('unverified');
    const first = await signIn(stack, { email, sub: '555000555000555000555' });
    assert.ok(first.sessionCookie, first.response.describe());
    const second = await signIn(stack, { email, sub: '666000666000666000666', extraIdpParams: { test_email_verified: 'false' } });
    assert.equal(second.response.status, 302, second.response.describe());
    assert.ok(errorCodeOf(second.response.location, stack.base), `an error redirect: ${second.response.rawLocation}`);
    assert.equal(second.sessionCookie, null);
    const counts = await countFor(email);
    assert.equal(counts.accounts, 1);
  });

  for (const evil of ['https://evil.test/', '//evil.test', '//evil.test/docs/', 'http://127.0.0.1.evil.test/', 'javascript:alert(1)']) {
    test(`a foreign callbackUrl (${evil}) is replaced by /`, async () => {
      const r = await signIn(stack, { email: uniqueEmail('redirect'), callbackUrl: evil });
      assert.equal(r.response.status, 302, r.response.describe());
      assert.ok(r.sessionCookie, 'the sign-in itself succeeds');
      assert.equal(r.response.location.href, `${stack.base}/`, `landed on ${r.response.rawLocation}`);
    });
  }

  test('an absolute callbackUrl on the site itself is kept', async () => {
    const r = await signIn(stack, { email: uniqueEmail('absolute'), callbackUrl: `${stack.base}/docs/?a=1` });
    assert.equal(r.response.status, 302, r.response.describe());
    assert.ok(r.sessionCookie, 'the sign-in succeeds');
    assert.equal(r.response.location.href, `${stack.base}/docs/?a=1`, `landed on ${r.response.rawLocation}`);
  });

  test('pressing Cancel at the provider ends on OAuthCallbackError without a session', async () => {
    const r = await signIn(stack, { email: uniqueEmail('cancel'), extraIdpParams: { test_deny: '1' } });
    assert.equal(r.callbackUrl.searchParams.get('error'), 'access_denied', `the provider said no: ${r.callbackUrl}`);
    assertErrorRedirect(r, 'OAuthCallbackError');
    const state = findSetCookie(r.response, STATE_COOKIE);
    assert.ok(state && clearsCookie(state), `the state cookie is cleared on failure too: ${JSON.stringify(r.response.setCookies)}`);
  });

  test('a callback carrying error=access_denied with a valid state ends on OAuthCallbackError', async () => {
    const login = await request(stack, '/auth/login/google?callbackUrl=%2Fdocs%2F', { accept: 'text/html' });
    const state = login.location.searchParams.get('state');
    const sc = findSetCookie(login, STATE_COOKIE);
    const res = await request(stack, `/auth/callback/google?error=access_denied&state=${encodeURIComponent(state)}`, {
      cookie: `${STATE_COOKIE}=${sc.value}`,
      accept: 'text/html',
    });
    assertErrorRedirect({ response: res, sessionCookie: sessionCookieFrom(res) }, 'OAuthCallbackError');
  });

  test('a callback without the state cookie ends on OAuthCallbackError without a session', async () => {
    const s = await startSignIn(stack, { email: uniqueEmail('nostate') });
    const res = await request(stack, s.callbackUrl, { accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
    assert.equal(errorCodeOf(res.location, stack.base), 'OAuthCallbackError', res.rawLocation);
    assert.equal(sessionCookieFrom(res), null, JSON.stringify(res.setCookies));
  });

  test('a callback whose state does not match the state cookie ends on OAuthCallbackError', async () => {
    const email = uniqueEmail('mismatch');
    const a = await startSignIn(stack, { email });
    const b = await startSignIn(stack, { email });
    const res = await request(stack, a.callbackUrl, { cookie: `${STATE_COOKIE}=${b.stateCookie.value}`, accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
    assert.equal(errorCodeOf(res.location, stack.base), 'OAuthCallbackError', res.rawLocation);
    assert.equal(sessionCookieFrom(res), null, JSON.stringify(res.setCookies));
  });

  test('a state cookie that was tampered with ends on OAuthCallbackError', async () => {
    const s = await startSignIn(stack, { email: uniqueEmail('tamperstate') });
    const v = s.stateCookie.value;
    const i = Math.floor(v.length / 2);
    const tampered = v.slice(0, i) + (v[i] === 'A' ? 'B' : 'A') + v.slice(i + 1);
    const res = await request(stack, s.callbackUrl, { cookie: `${STATE_COOKIE}=${tampered}`, accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
    assert.equal(errorCodeOf(res.location, stack.base), 'OAuthCallbackError', res.rawLocation);
    assert.equal(sessionCookieFrom(res), null, JSON.stringify(res.setCookies));
  });

  test('the state is checked before the code is redeemed', async () => {
    const s = await startSignIn(stack, { email: uniqueEmail('order') });
    const bad = await request(stack, s.callbackUrl, { accept: 'text/html' });
    assert.equal(errorCodeOf(bad.location, stack.base), 'OAuthCallbackError', bad.rawLocation);
    // The code was not spent by the refused attempt, so the real browser can still finish.
    const good = await request(stack, s.callbackUrl, { cookie: `${STATE_COOKIE}=${s.stateCookie.value}`, accept: 'text/html' });
    assert.equal(good.status, 302, good.describe());
    assert.equal(good.location.href, `${stack.base}/docs/`, good.rawLocation);
    assert.ok(findSetCookie(good, SESSION_COOKIE)?.value, JSON.stringify(good.setCookies));
  });

  const errorPages = [
    ['AccessDenied', 403],
    ['Configuration', 500],
    ['OAuthCallbackError', 400],
    ['OAuthAccountNotLinked', 403],
    ['SessionRequired', 401],
  ];
  for (const [code, status] of errorPages) {
    test(`the error page for ${code} answers ${status} as an uncached HTML page`, async () => {
      const res = await request(stack, `/auth/error?error=${code}`, { accept: 'text/html' });
      assert.equal(res.status, status, res.describe());
      assert.match(res.headers.get('content-type') ?? '', /text\/html/, res.describe());
      assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
      assert.match(res.body, /<html|<!doctype html/i, 'an HTML document');
    });
  }

  test('the worker logs hold no session token, state, authorization code or client secret', async () => {
    const logs = stack.logs();
    assert.ok(seen.size > 10, `the suite saw tokens and codes (${seen.size})`);
    assert.ok(/"event"/.test(logs), 'the worker wrote structured log lines');
    for (const v of seen) {
      assert.ok(!logs.includes(v), `a secret value appears in the worker log: ${v.slice(0, 24)}…`);
    }
    assert.ok(!logs.includes(CLIENT_SECRET), 'the client secret appears in the worker log');
    assert.ok(!logs.includes(stack.sessionKeys.keys[0].k), 'the session key appears in the worker log');
  });
});
