// A copy of a session's cookie, replayed (issue 13, items 8 and 9): an expired copy of a revoked
// session cannot sign its user out of newer sessions, and replaying one expired token costs D1
// one read, not one read (and one write) per request.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SESSION_COOKIE, cookieValue, decodeJwt, findSetCookie, logLines, request, signIn, sleep, sqlString, startStack, uniqueEmail, waitForLog,
} from './harness.mjs';

const INTERVAL = 3; // SESSION_CHECK_INTERVAL, seconds: a renewed token lives at least 2 s (iat is floored)

describe('replayed session cookies', () => {
  let stack;
  before(async () => {
    // LAST_SEEN_INTERVAL=1: every renewal is due a last-seen write, to show there is one per
    // renewal handed out, not one per request.
    // LOG_D1_QUERIES: the worker logs each D1 statement, so the writes can be counted.
    stack = await startStack({ name: 'replay', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL), LAST_SEEN_INTERVAL: '1', LOG_D1_QUERIES: 'true' } });
  });
  after(async () => { await stack?.stop(); });

  const page = (cookie) => request(stack, '/docs/', { cookie, accept: 'text/html' });
  const csrfFromLogoutPage = async (cookie) => {
    const res = await request(stack, '/auth/logout', { cookie, accept: 'text/html' });
    const m = /name="csrfToken" value="([^"]+)"/.exec(res.body);
    assert.ok(m, `a CSRF token on the sign-out page:\n${res.describe()}`);
    return m[1];
  };
  const logout = (cookie, token, query = '') => request(stack, `/auth/logout${query}`, {
    method: 'POST',
    cookie,
    headers: { origin: stack.base, 'content-type': 'application/x-www-form-urlencoded' },
    body: `csrfToken=${encodeURIComponent(token)}`,
  });
  const sessionRow = async (cookie) => {
    const sid = decodeJwt(cookieValue(cookie)).payload.sid;
    const [row] = await stack.d1(`SELECT revoked_at, last_seen_at FROM sessions WHERE id = ${sqlString(sid)}`);
    return row;
  };

  test('an expired copy of a revoked session cannot sign the user out everywhere', async () => {
    const email = uniqueEmail('stolen');
    const stolen = (await signIn(stack, { email, callbackUrl: '/' })).sessionCookie;
    assert.ok(stolen);
    // The owner ends that session (a lost laptop) and signs in again.
    const signedOut = await logout(stolen, await csrfFromLogoutPage(stolen));
    assert.equal(signedOut.status, 303, signedOut.describe());
    const fresh = (await signIn(stack, { email, callbackUrl: '/' })).sessionCookie;
    assert.ok(fresh);
    await sleep(INTERVAL * 1000 + 1200);
    // The copy still gets a sign-out page with a CSRF token, but acting on it asks D1 first.
    const res = await logout(stolen, await csrfFromLogoutPage(stolen), '?all=1');
    assert.equal(res.status, 303, res.describe());
    assert.equal((await sessionRow(fresh)).revoked_at, null, 'the owner\'s new session was revoked by a copy of a revoked one');
    const owner = await page(fresh);
    assert.equal(owner.status, 200, `the owner is still signed in: ${owner.describe()}`);
  });

  test('a live session with an expired token may still sign out everywhere', async () => {
    const email = uniqueEmail('everywhere');
    const a = (await signIn(stack, { email, callbackUrl: '/' })).sessionCookie;
    const b = (await signIn(stack, { email, callbackUrl: '/' })).sessionCookie;
    await sleep(INTERVAL * 1000 + 1200);
    const res = await logout(a, await csrfFromLogoutPage(a), '?all=1');
    assert.equal(res.status, 303, res.describe());
    assert.notEqual((await sessionRow(b)).revoked_at, null, 'every session of the user ended');
  });

  test('a client that never keeps the renewed cookie is handed the same renewal, with one D1 write', async () => {
    const cookie = (await signIn(stack, { email: uniqueEmail('replay'), callbackUrl: '/' })).sessionCookie;
    await sleep(INTERVAL * 1000 + 1200);
    const from = stack.logs().length;
    const tokens = [];
    // Spread over more than a second: a token issued anew would carry a new `iat`.
    for (let i = 0; i < 5; i += 1) {
      const res = await page(cookie);
      assert.equal(res.status, 200, res.describe());
      const renewed = findSetCookie(res, SESSION_COOKIE);
      assert.ok(renewed?.value, `a renewed cookie: ${JSON.stringify(res.setCookies)}`);
      tokens.push(renewed.value);
      await sleep(300);
    }
    assert.equal(new Set(tokens).size, 1, `one renewal handed out again, not ${new Set(tokens).size} renewals`);
    const { iat } = decodeJwt(tokens[0]).payload;
    const statements = logLines(stack, from).filter((o) => o.event === 'd1_query').map((o) => o.sql);
    const writes = statements.filter((q) => q.startsWith('UPDATE sessions SET last_seen_at'));
    // At most one: the first request's feed pull may write what earlier renewals queued.
    assert.ok(writes.length <= 1, `no last-seen write per request:\n${statements.join('\n')}`);
    assert.equal(statements.filter((q) => q.includes('AS session_id')).length, 0, statements.join('\n'));
    // The isolate writes its queued last-seen times with its next pull of the change feed: the
    // next renewal, of the token handed out.
    await sleep(INTERVAL * 1000 + 1200);
    const mid = stack.logs().length;
    const later = await page(`${SESSION_COOKIE}=${tokens[0]}`);
    assert.equal(later.status, 200, later.describe());
    const [batch] = await waitForLog(stack, (o) => o.event === 'last_seen_written', { from: mid, what: 'the last-seen batch' });
    assert.ok(batch.sessions >= 1, JSON.stringify(batch));
    assert.ok((await sessionRow(cookie)).last_seen_at >= iat, 'last_seen_at written for the renewal');
  });

  test('replaying a revoked session is refused from memory, not by a D1 read per request', async () => {
    const cookie = (await signIn(stack, { email: uniqueEmail('revoked'), callbackUrl: '/' })).sessionCookie;
    const sid = decodeJwt(cookieValue(cookie)).payload.sid;
    // Revoked behind the worker's back (as the admin page or the command line would).
    await stack.d1(`UPDATE sessions SET revoked_at = 1 WHERE id = ${sqlString(sid)}`);
    await sleep(INTERVAL * 1000 + 1200);
    const from = stack.logs().length;
    for (let i = 0; i < 6; i += 1) {
      const res = await page(cookie);
      assert.equal(res.status, 302, res.describe());
      assert.equal(res.location.pathname, '/auth/login');
    }
    const lines = await waitForLog(stack, (o) => o.event === 'session_ended', { from, count: 6, what: 'session_ended' });
    const seen = lines.map((o) => JSON.stringify(o)).join('\n');
    assert.equal(lines.length, 6, seen);
    assert.equal(lines.filter((o) => o.reason !== 'remembered').length, 1, `D1 asked once, memory after: ${seen}`);
  });
});
