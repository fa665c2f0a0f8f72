// Signing out: POST only, with the CSRF token and a same-origin request; revocation shows within
// SESSION_CHECK_INTERVAL (2 s here), after which the token is only a claim to renewal.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SESSION_COOKIE, clearsCookie, cookieValue, decodeJwt, findSetCookie, request, sessionCookieFrom, signIn, sleep,
  sqlString, startStack, subFor, uniqueEmail,
} from './harness.mjs';

describe('signing out', () => {
  let stack;
  const email = uniqueEmail('logout');
  const sessions = {}; // name → "gatehouse_session=…"

  before(async () => {
    stack = await startStack({ name: 'logout', vars: { SESSION_CHECK_INTERVAL: '2' } });
    // Several sessions of one person (one Google account), plus one of another person.
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      const r = await signIn(stack, { email, name: 'Logout Person', sub: subFor(email) });
      assert.ok(r.sessionCookie, `sign-in ${name} failed:\n${r.response.describe()}`);
      sessions[name] = r.sessionCookie;
    }
    const other = uniqueEmail('other');
    for (const name of ['x1', 'x2']) {
      const r = await signIn(stack, { email: other, name: 'Other Person' });
      assert.ok(r.sessionCookie, `sign-in ${name} failed:\n${r.response.describe()}`);
      sessions[name] = r.sessionCookie;
    }
  });
  after(async () => { await stack?.stop(); });

  const sid = (name) => decodeJwt(cookieValue(sessions[name])).payload.sid;
  const revokedAt = async (name) => {
    const rows = await stack.d1(`SELECT revoked_at FROM sessions WHERE id = ${sqlString(sid(name))}`);
    assert.equal(rows.length, 1, `session row for ${name}`);
    return rows[0].revoked_at;
  };
  const csrfFor = async (cookie) => {
    const res = await request(stack, '/auth/csrf', { cookie, accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    const token = res.json()?.csrfToken;
    assert.ok(typeof token === 'string' && token.length >= 16, `csrfToken: ${res.body}`);
    return token;
  };
  const postLogout = (cookie, { form = {}, headers = {}, query = '' } = {}) => request(stack, `/auth/logout${query}`, {
    method: 'POST',
    cookie,
    accept: 'text/html',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const assertStillSignedIn = async (name) => {
    const res = await request(stack, '/docs/', { cookie: sessions[name], accept: 'text/html' });
    assert.equal(res.status, 200, `session ${name} still opens /docs/\n${res.describe()}`);
    assert.equal(await revokedAt(name), null, `session ${name} is not revoked in D1`);
  };
  const assertRefusedPost = async (res, name) => {
    assert.ok(res.status >= 400 && res.status < 500, `expected 4xx:\n${res.describe()}`);
    const c = findSetCookie(res, SESSION_COOKIE);
    assert.ok(!c || !clearsCookie(c), `the cookie is not cleared: ${c?.raw}`);
    await assertStillSignedIn(name);
  };

  test('GET /auth/logout shows a confirmation form and signs nobody out', async () => {
    const res = await request(stack, '/auth/logout', { cookie: sessions.a, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
    assert.match(res.body, /<form\b[^>]*method\s*=\s*["']?post/i, `a POST form:\n${res.body}`);
    const hidden = [...res.body.matchAll(/<input\b[^>]*>/gi)].map((m) => m[0])
      .find((tag) => /name\s*=\s*["']csrfToken["']/i.test(tag));
    assert.ok(hidden, `a csrfToken input:\n${res.body}`);
    assert.match(hidden, /type\s*=\s*["']hidden["']/i, hidden);
    assert.match(hidden, /value\s*=\s*["'][^"']{16,}["']/i, hidden);
    const c = findSetCookie(res, SESSION_COOKIE);
    assert.ok(!c || !clearsCookie(c), `GET does not clear the cookie: ${c?.raw}`);
    await assertStillSignedIn('a');
  });

  test('GET /auth/csrf returns a token for the session', async () => {
    await csrfFor(sessions.a);
  });

  test('a POST without the CSRF token is refused and the session keeps working', async () => {
    const res = await postLogout(sessions.a, { headers: { origin: stack.base } });
    await assertRefusedPost(res, 'a');
  });

  test('a POST with a wrong CSRF token is refused', async () => {
    const res = await postLogout(sessions.a, { form: { csrfToken: 'x'.repeat(43) }, headers: { origin: stack.base } });
    await assertRefusedPost(res, 'a');
  });

  test('a POST with the CSRF token of another session is refused', async () => {
    const tokenOfB = await csrfFor(sessions.b);
    const tokenOfA = await csrfFor(sessions.a);
    if (tokenOfA === tokenOfB) assert.fail('the CSRF token is the same for two sessions, so it is not bound to the session');
    const res = await postLogout(sessions.a, { form: { csrfToken: tokenOfB }, headers: { origin: stack.base } });
    await assertRefusedPost(res, 'a');
  });

  test('a POST with the token but a foreign Origin is refused with 403', async () => {
    const token = await csrfFor(sessions.a);
    const res = await postLogout(sessions.a, { form: { csrfToken: token }, headers: { origin: 'https://evil.test' } });
    assert.equal(res.status, 403, res.describe());
    await assertRefusedPost(res, 'a');
  });

  test('a POST with the token but Sec-Fetch-Site: cross-site is refused with 403', async () => {
    const token = await csrfFor(sessions.a);
    const res = await postLogout(sessions.a, { form: { csrfToken: token }, headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(res.status, 403, res.describe());
    await assertRefusedPost(res, 'a');
  });

  test('a POST with the token but neither Origin nor Sec-Fetch-Site is refused', async () => {
    const token = await csrfFor(sessions.a);
    const res = await postLogout(sessions.a, { form: { csrfToken: token } });
    await assertRefusedPost(res, 'a');
  });

  test('a POST with the token and the same Origin signs out: 303 to /, cookie cleared, session revoked in D1', async () => {
    const token = await csrfFor(sessions.a);
    const res = await postLogout(sessions.a, { form: { csrfToken: token }, headers: { origin: stack.base } });
    assert.equal(res.status, 303, res.describe());
    assert.equal(res.location?.href, `${stack.base}/`, `303 to /: ${res.rawLocation}`);
    const c = findSetCookie(res, SESSION_COOKIE);
    assert.ok(c, `a Set-Cookie for ${SESSION_COOKIE}: ${JSON.stringify(res.setCookies)}`);
    assert.equal(Number(c.attrs['max-age']), 0, `Max-Age=0: ${c.raw}`);
    assert.equal(c.attrs.path, '/', c.raw);
    assert.ok(Number.isInteger(await revokedAt('a')), 'sessions.revoked_at is set');
    assert.equal(await revokedAt('b'), null, 'the other sessions of the user stay');
  });

  test('Sec-Fetch-Site: same-origin is enough to sign out, and a local callbackUrl is followed', async () => {
    const token = await csrfFor(sessions.c);
    const res = await postLogout(sessions.c, { form: { csrfToken: token, callbackUrl: '/public/' }, headers: { 'sec-fetch-site': 'same-origin' } });
    assert.equal(res.status, 303, res.describe());
    assert.equal(res.location?.href, `${stack.base}/public/`, res.rawLocation);
    assert.ok(clearsCookie(findSetCookie(res, SESSION_COOKIE)), JSON.stringify(res.setCookies));
    assert.ok(Number.isInteger(await revokedAt('c')));
  });

  test('a foreign callbackUrl on sign-out is replaced by /', async () => {
    const token = await csrfFor(sessions.d);
    const res = await postLogout(sessions.d, { form: { csrfToken: token, callbackUrl: 'https://evil.test/' }, headers: { origin: stack.base } });
    assert.equal(res.status, 303, res.describe());
    assert.equal(res.location?.href, `${stack.base}/`, res.rawLocation);
    assert.ok(Number.isInteger(await revokedAt('d')));
  });

  test('?all=1 revokes every session of the user and no one else\'s', async () => {
    const token = await csrfFor(sessions.x1);
    const res = await postLogout(sessions.x1, { form: { csrfToken: token }, headers: { origin: stack.base }, query: '?all=1' });
    assert.equal(res.status, 303, res.describe());
    assert.ok(Number.isInteger(await revokedAt('x1')));
    assert.ok(Number.isInteger(await revokedAt('x2')), 'the second session of that user is revoked too');
    assert.equal(await revokedAt('b'), null, 'sessions of other users stay');
    assert.equal(await revokedAt('e'), null, 'sessions of other users stay');
  });

  test('after the check interval, signed-out sessions are refused everywhere', async () => {
    // Until every token above is past its exp (= iat + SESSION_CHECK_INTERVAL), with a margin: a
    // token is fresh while exp > now, so from then on each request must ask D1.
    const lastExp = Math.max(...Object.values(sessions).map((c) => decodeJwt(cookieValue(c)).payload.exp));
    await sleep(Math.max(0, lastExp * 1000 + 300 - Date.now()));
    for (const name of ['a', 'c', 'd', 'x1', 'x2']) {
      const page = await request(stack, '/docs/', { cookie: sessions[name], accept: 'text/html' });
      assert.equal(page.status, 302, `session ${name} must be refused\n${page.describe()}`);
      assert.equal(page.location?.pathname, '/auth/login', page.rawLocation);
      assert.equal(sessionCookieFrom(page), null, `no fresh cookie for revoked session ${name}: ${JSON.stringify(page.setCookies)}`);
      const s = await request(stack, '/auth/session', { cookie: sessions[name], accept: 'application/json' });
      assert.equal(s.status, 200, s.describe());
      assert.equal(s.json(), null, `session ${name}: /auth/session must be null\n${s.body}`);
    }
  });

  test('a session that was not signed out is renewed with a fresh cookie after the interval', async () => {
    const old = decodeJwt(cookieValue(sessions.b)).payload;
    assert.ok(old.exp <= Date.now() / 1000, 'the old token is past its exp by now');
    const res = await request(stack, '/docs/', { cookie: sessions.b, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.ok(res.body.includes('Private docs'));
    const fresh = sessionCookieFrom(res);
    assert.ok(fresh, `a fresh Set-Cookie: ${SESSION_COOKIE}=…: ${JSON.stringify(res.setCookies)}`);
    assert.notEqual(fresh, sessions.b);
    const next = decodeJwt(cookieValue(fresh)).payload;
    assert.equal(next.sid, old.sid, 'same session');
    assert.equal(next.sub, old.sub, 'same user');
    assert.ok(next.exp > Date.now() / 1000, 'the fresh token is valid now');
    assert.equal(next.exp - next.iat, 2, 'exp = iat + SESSION_CHECK_INTERVAL');
    const again = await request(stack, '/docs/', { cookie: fresh, accept: 'text/html' });
    assert.equal(again.status, 200, again.describe());
  });

  test('renewal in one tab does not sign out another tab holding the older token', async () => {
    const res = await request(stack, '/docs/', { cookie: sessions.b, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    const s = await request(stack, '/auth/session', { cookie: sessions.e, accept: 'application/json' });
    assert.equal(s.json()?.user?.email, email, s.body);
  });
});
