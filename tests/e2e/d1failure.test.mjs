// D1 failing in the middle of a sign-in: a Configuration error page, no session, and nothing
// half-written (the sign-in batch is one transaction).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLIENT_SECRET, SESSION_COOKIE, STATE_COOKIE, clearsCookie, errorCodeOf, findSetCookie, request, sessionCookieFrom,
  signIn, startStack, uniqueEmail, waitForLog,
} from './harness.mjs';

const INTERNALS = [/panicked/i, /\bError:/, /no such table/i, /SQLITE/i, /D1_ERROR/i, /\bsessions\b/, /\.rs:\d+/, /\bat [\w.<>$]+ \(/, /backtrace/i];

describe('D1 failing during the callback', () => {
  let stack;
  before(async () => {
    stack = await startStack({ name: 'd1failure' });
    // After the migrations: the sign-in batch's session insert now fails.
    await stack.d1('DROP TABLE sessions');
  });
  after(async () => { await stack?.stop(); });

  let result;
  const email = uniqueEmail('d1fail');

  test('a sign-in ends on /auth/error?error=Configuration without a session cookie', async () => {
    result = await signIn(stack, { email });
    const res = result.response;
    assert.equal(res.status, 302, res.describe());
    assert.equal(errorCodeOf(res.location, stack.base), 'Configuration', res.rawLocation);
    assert.equal(sessionCookieFrom(res), null, JSON.stringify(res.setCookies));
    assert.equal(findSetCookie(res, SESSION_COOKIE), null, JSON.stringify(res.setCookies));
    const state = findSetCookie(res, STATE_COOKIE);
    assert.ok(state && clearsCookie(state), `the state cookie is cleared: ${JSON.stringify(res.setCookies)}`);
  });

  test('the Configuration page is a 500 HTML page without internals', async () => {
    assert.ok(result, 'the sign-in ran');
    const page = await request(stack, result.response.location, { accept: 'text/html' });
    assert.equal(page.status, 500, page.describe());
    assert.match(page.headers.get('content-type') ?? '', /text\/html/, page.describe());
    assert.match(page.headers.get('cache-control') ?? '', /no-store/, page.describe());
    for (const re of INTERNALS) assert.doesNotMatch(page.body, re, `the page shows internals:\n${page.body}`);
    assert.ok(!page.body.includes(CLIENT_SECRET));
    assert.ok(!page.body.includes(result.callbackUrl.searchParams.get('code')), 'the page shows the code');
  });

  test('nothing is half-written: no user and no account row', async () => {
    assert.ok(result, 'the sign-in ran');
    const [users] = await stack.d1('SELECT COUNT(*) AS n FROM users');
    assert.equal(users.n, 0, 'the sign-in batch is one transaction');
    const [accounts] = await stack.d1('SELECT COUNT(*) AS n FROM accounts');
    assert.equal(accounts.n, 0);
  });

  test('the worker logs the failure as an error line without the code or the client secret', async () => {
    assert.ok(result, 'the sign-in ran');
    const line = (await waitForLog(stack, (o) => o.event === 'signin_failed', { what: 'signin_failed' })).at(-1);
    assert.equal(line.level, 'error', JSON.stringify(line));
    // D1's message, which names the table, and not a dump of the JavaScript error with its stack.
    assert.match(line.reason, /no such table: sessions/, JSON.stringify(line));
    assert.doesNotMatch(line.reason, /\n|\bat [\w.<>$:-]+ \(|file:\/\/|cloudflare-internal|D1Error \{/, JSON.stringify(line));
    assert.ok(!stack.logs().includes(result.callbackUrl.searchParams.get('code')), 'the code is not logged');
    assert.ok(!stack.logs().includes(CLIENT_SECRET), 'the client secret is not logged');
  });

  test('/auth/session without a cookie still answers null', async () => {
    const res = await request(stack, '/auth/session', { accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    assert.equal(res.json(), null, res.body);
    assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
  });
});
