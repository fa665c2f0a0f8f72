// Concurrent first sign-ins of one person end with one user, one account and one session each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  STATE_COOKIE, cookieValue, decodeJwt, request, sessionCookieFrom, sqlString, startSignIn, startStack, subFor, uniqueEmail,
} from './harness.mjs';

describe('ten parallel first sign-ins of one new person', () => {
  let stack;
  before(async () => { stack = await startStack({ name: 'concurrency' }); });
  after(async () => { await stack?.stop(); });

  const email = uniqueEmail('parallel');
  const sub = subFor(email);
  let responses = [];
  let cookies = [];

  test('all ten callbacks, fired at once, redirect with a session cookie', async () => {
    // Ten browser tabs: ten state cookies and ten provider codes for the same Google account.
    const started = [];
    for (let i = 0; i < 10; i += 1) started.push(await startSignIn(stack, { email, sub, name: 'Parallel Person' }));
    assert.equal(new Set(started.map((s) => s.callbackUrl.searchParams.get('code'))).size, 10, 'ten different codes');
    const [before] = await stack.d1(`SELECT COUNT(*) AS n FROM users WHERE email = ${sqlString(email)}`);
    assert.equal(before.n, 0, 'a new person');

    responses = await Promise.all(started.map((s) => request(stack, s.callbackUrl, {
      accept: 'text/html',
      cookie: `${STATE_COOKIE}=${s.stateCookie.value}`,
    })));
    for (const [i, res] of responses.entries()) {
      assert.equal(res.status, 302, `tab ${i + 1}:\n${res.describe()}`);
      assert.equal(res.location.href, `${stack.base}/docs/`, `tab ${i + 1}: ${res.rawLocation}`);
      assert.ok(sessionCookieFrom(res), `tab ${i + 1} has a session cookie:\n${res.describe()}`);
    }
    cookies = responses.map(sessionCookieFrom);
    assert.equal(new Set(cookies).size, 10, 'ten different session tokens');
  });

  test('D1 holds exactly one user row, one account row and ten session rows for that person', async () => {
    assert.equal(cookies.length, 10, 'the sign-ins ran');
    const e = sqlString(email);
    const users = await stack.d1(`SELECT id FROM users WHERE email = ${e}`);
    assert.equal(users.length, 1, `user rows: ${JSON.stringify(users)}`);
    const accounts = await stack.d1(`SELECT user_id FROM accounts WHERE provider = 'google' AND provider_account_id = ${sqlString(sub)}`);
    assert.equal(accounts.length, 1, `account rows: ${JSON.stringify(accounts)}`);
    assert.equal(accounts[0].user_id, users[0].id, 'the account belongs to that user');
    const [accountsOfUser] = await stack.d1(`SELECT COUNT(*) AS n FROM accounts WHERE user_id = ${sqlString(users[0].id)}`);
    assert.equal(accountsOfUser.n, 1);
    const sessions = await stack.d1(`SELECT id FROM sessions WHERE user_id = ${sqlString(users[0].id)}`);
    assert.equal(sessions.length, 10, `session rows: ${sessions.length}`);
    // Every token names that user and one of those sessions.
    const sids = new Set(sessions.map((s) => s.id));
    for (const c of cookies) {
      const { payload } = decodeJwt(cookieValue(c));
      assert.equal(payload.sub, users[0].id, 'the token names the one user');
      assert.ok(sids.has(payload.sid), `the token's session ${payload.sid} is in D1`);
    }
    assert.equal(new Set(cookies.map((c) => decodeJwt(cookieValue(c)).payload.sid)).size, 10, 'ten sessions, one per tab');
  });

  test('each of the ten session cookies opens the private page', async () => {
    assert.equal(cookies.length, 10, 'the sign-ins ran');
    for (const [i, cookie] of cookies.entries()) {
      const page = await request(stack, '/docs/', { cookie, accept: 'text/html' });
      assert.equal(page.status, 200, `tab ${i + 1}:\n${page.describe()}`);
      assert.ok(page.body.includes('Private docs'), `tab ${i + 1}`);
    }
  });
});
