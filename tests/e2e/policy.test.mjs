// Access policy: ALLOWED_EMAIL_DOMAINS / ALLOWED_EMAILS at sign-in, ROLE_PATHS at the gate.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_EMAIL, errorCodeOf, rawRequest, request, signIn, sqlString, startStack } from './harness.mjs';

describe('access policy', () => {
  let stack;
  before(async () => {
    stack = await startStack({
      name: 'policy',
      vars: {
        ALLOWED_EMAIL_DOMAINS: 'allowed.test',
        ALLOWED_EMAILS: `guest@example.com,listed@example.com,${ADMIN_EMAIL}`,
        ROLE_PATHS: '/docs/*=admin',
      },
    });
  });
  after(async () => { await stack?.stop(); });

  const userRows = async (email) => stack.d1(`SELECT id FROM users WHERE email = ${sqlString(email)}`);

  async function assertAccessDenied(options) {
    const r = await signIn(stack, options);
    assert.equal(r.response.status, 302, r.response.describe());
    assert.equal(errorCodeOf(r.response.location, stack.base), 'AccessDenied', `expected AccessDenied: ${r.response.rawLocation}`);
    assert.equal(r.sessionCookie, null, JSON.stringify(r.setCookies));
    assert.equal((await userRows(options.email)).length, 0, `no user row is created for ${options.email}`);
  }

  test('a verified email in an allowed domain signs in', async () => {
    const r = await signIn(stack, { email: 'ann@allowed.test', callbackUrl: '/' });
    assert.ok(r.sessionCookie, r.response.describe());
    assert.equal(r.response.location.href, `${stack.base}/`);
  });

  test('an email listed in ALLOWED_EMAILS signs in although its domain is not allowed', async () => {
    const r = await signIn(stack, { email: 'guest@example.com', callbackUrl: '/' });
    assert.ok(r.sessionCookie, r.response.describe());
  });

  test('any other email is refused with AccessDenied and no user is created', async () => {
    await assertAccessDenied({ email: 'stranger@example.com' });
  });

  test('a domain that merely ends like an allowed one is refused', async () => {
    await assertAccessDenied({ email: 'mallory@notallowed.test' });
    await assertAccessDenied({ email: 'mallory@allowed.test.evil.test' });
  });

  test('an unverified email in an allowed domain is refused', async () => {
    await assertAccessDenied({ email: 'unverified@allowed.test', extraIdpParams: { test_email_verified: 'false' } });
  });

  test('an unverified email listed in ALLOWED_EMAILS is refused', async () => {
    await assertAccessDenied({ email: 'listed@example.com', extraIdpParams: { test_email_verified: 'false' } });
  });

  test('a user without the role named in ROLE_PATHS gets 403 there, as a page or as JSON', async () => {
    const r = await signIn(stack, { email: 'bob@allowed.test' });
    assert.ok(r.sessionCookie, r.response.describe());
    const page = await request(stack, '/docs/', { cookie: r.sessionCookie, accept: 'text/html' });
    assert.equal(page.status, 403, page.describe());
    assert.ok(!page.body.includes('Private docs'), 'the private page is not served');
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const api = await request(stack, '/docs/', { cookie: r.sessionCookie, accept: 'application/json' });
    assert.equal(api.status, 403, api.describe());
    assert.doesNotThrow(() => api.json(), api.body);
    const home = await request(stack, '/', { cookie: r.sessionCookie, accept: 'text/html' });
    assert.equal(home.status, 200, `paths outside ROLE_PATHS only need a session:\n${home.describe()}`);
  });

  // Each spelling goes to workerd byte for byte; none may serve the admin-only page to a user.
  const SPELLINGS = [
    '/docs', '/docs/', '/docs/.', '/docs/./', '/docs//', '//docs/', '///docs/', '/./docs/', '/docs;x/',
    '/docs/index.html', '/docs/index.html;x', '/public/../docs/', '/public/..;/docs/', '/public/%2e%2e/docs/',
    '/public/%2E%2E/docs/', '/public/.%2e/docs/', '/public/..%2fdocs/', '/public/..%2Fdocs/',
    '/public/..%5cdocs/', '/public\\..\\docs\\', '/%64ocs/', '/%2fdocs/', '/public/../../docs/',
    '/favicon.ico/../docs/', '/x/../docs/', '/docs%2f', '/docs%3bx/', '/public/%2e%2e;/docs/',
    '/docs/%2e/', '/docs/x/..', '/public%2f..%2fdocs/',
  ];

  test('no spelling of a ROLE_PATHS path reaches it without the role', async () => {
    assert.ok(SPELLINGS.length >= 30);
    const r = await signIn(stack, { email: 'carol@allowed.test' });
    assert.ok(r.sessionCookie, r.response.describe());
    for (const path of SPELLINGS) {
      for (const cookie of [r.sessionCookie, undefined]) {
        const headers = { accept: 'text/html', ...(cookie ? { cookie } : {}) };
        const res = await rawRequest(stack, path, { headers });
        assert.ok(!res.body.includes('Private docs'), `${path} (${cookie ? 'user' : 'anonymous'}) served the private page: ${res.status}`);
        assert.ok([302, 400, 403, 404].includes(res.status), `${path}: ${res.status}`);
      }
    }
  });

  test('a user with that role is admitted', async () => {
    const r = await signIn(stack, { email: ADMIN_EMAIL });
    assert.ok(r.sessionCookie, r.response.describe());
    const page = await request(stack, '/docs/', { cookie: r.sessionCookie, accept: 'text/html' });
    assert.equal(page.status, 200, page.describe());
    assert.ok(page.body.includes('Private docs'));
  });

  test('without a session a ROLE_PATHS path still redirects to sign-in', async () => {
    const page = await request(stack, '/docs/', { accept: 'text/html' });
    assert.equal(page.status, 302, page.describe());
    assert.equal(page.location.pathname, '/auth/login');
  });
});
