// Issue 16: renewal from the change feed. A warm isolate renews sessions from their tokens and a
// feed of what changed (pulled at most once per half SESSION_CHECK_INTERVAL), so D1 load follows
// changes, not sessions; revocation, disabling, a role change and a deleted user still reach every
// session within the interval. D1 statements are counted from the worker's own log
// (LOG_D1_QUERIES=true: one line per statement, its SQL with placeholders only).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SESSION_COOKIE, cookieValue, decodeJwt, findSetCookie, logLines, request, signIn, sleep, sqlString, startStack, uniqueEmail,
} from './harness.mjs';

// A token renews from the feed while it is under two intervals old (an expired token idle for
// less than about one interval); 10 s leaves room for the SQL changes below (`wrangler d1
// execute` takes a few seconds) between a session's last renewal and its next.
const INTERVAL = 10;
const pastInterval = () => sleep((INTERVAL + 0.8) * 1000);

/** The D1 statements the worker ran since log offset `from`, by kind. */
function queries(stack, from) {
  const sql = logLines(stack, from).filter((o) => o.event === 'd1_query').map((o) => o.sql);
  return {
    all: sql,
    sessionReads: sql.filter((q) => q.includes('AS session_id')).length,
    feedReads: sql.filter((q) => q.startsWith('SELECT kind, id, at FROM changes')).length,
  };
}

describe('renewal from the change feed', () => {
  let stack;
  before(async () => {
    stack = await startStack({ name: 'feed', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL), LOG_D1_QUERIES: 'true' } });
  });
  after(async () => { await stack?.stop(); });

  const page = (cookie) => request(stack, '/docs/', { cookie, accept: 'text/html' });
  /** Requests a page with `cookie`; returns the response and the cookie the browser holds after it. */
  const visit = async (cookie) => {
    const res = await page(cookie);
    const renewed = findSetCookie(res, SESSION_COOKIE);
    return { res, cookie: renewed?.value ? `${SESSION_COOKIE}=${renewed.value}` : cookie };
  };

  test('a warm isolate renews many sessions with no session read, and the feed at most twice an interval', async () => {
    let cookies = [];
    let feedReads = 0;
    for (let i = 0; i < 6; i += 1) cookies.push((await signIn(stack, { email: uniqueEmail('warm') })).sessionCookie);
    // Warm the isolate's feed, then two rounds of renewals, each past the interval.
    for (let round = 0; round < 3; round += 1) {
      await pastInterval();
      const from = stack.logs().length;
      const next = [];
      for (const c of cookies) {
        const { res, cookie } = await visit(c);
        assert.equal(res.status, 200, res.describe());
        assert.notEqual(cookie, c, 'renewed');
        next.push(cookie);
      }
      cookies = next;
      const q = queries(stack, from);
      assert.equal(q.sessionReads, 0, `round ${round}: no session read for ${cookies.length} renewals:\n${q.all.join('\n')}`);
      assert.ok(q.feedReads <= 1, `round ${round}: at most one feed read:\n${q.all.join('\n')}`);
      assert.equal(q.all.length, q.feedReads, `round ${round}: nothing but the feed:\n${q.all.join('\n')}`);
      feedReads += q.feedReads;
    }
    assert.ok(feedReads >= 1, 'the feed was read (the query log works)');
  });

  test('a renewed token is issued as of the feed pull, and lives one interval from it', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('asof') });
    await pastInterval();
    const { res, cookie } = await visit(sessionCookie);
    assert.equal(res.status, 200, res.describe());
    const { iat, exp } = decodeJwt(cookieValue(cookie)).payload;
    assert.equal(exp - iat, INTERVAL);
    assert.ok(iat <= Math.floor(Date.now() / 1000), 'never in the future');
    assert.ok(exp > Math.floor(Date.now() / 1000), 'current');
  });

  test('revocation, disabling, a role change and a deleted user reach a warm isolate within the interval', async () => {
    const names = ['revoked', 'disabled', 'promoted', 'deleted', 'untouched'];
    const s = {};
    for (const n of names) {
      const email = uniqueEmail(n);
      s[n] = { email, cookie: (await signIn(stack, { email })).sessionCookie };
    }
    // Each session is renewed from the feed once, so what follows reaches feed-renewed tokens.
    await pastInterval();
    for (const n of names) {
      const { res, cookie } = await visit(s[n].cookie);
      assert.equal(res.status, 200, res.describe());
      s[n].cookie = cookie;
    }
    // Changes behind the worker's back, as an operator's SQL or the command line make them (the
    // admin page and sign-out go through the same triggers).
    const sid = decodeJwt(cookieValue(s.revoked.cookie)).payload.sid;
    await stack.d1([
      `UPDATE sessions SET revoked_at = unixepoch() WHERE id = ${sqlString(sid)}`,
      `UPDATE users SET disabled_at = unixepoch() WHERE email = ${sqlString(s.disabled.email)}`,
      `UPDATE users SET role = 'editor' WHERE email = ${sqlString(s.promoted.email)}`,
      `DELETE FROM users WHERE email = ${sqlString(s.deleted.email)}`,
    ].join('; '));
    await pastInterval();
    const from = stack.logs().length;
    for (const n of ['revoked', 'disabled', 'deleted']) {
      const res = await page(s[n].cookie);
      assert.equal(res.status, 302, `${n}: ${res.describe()}`);
      assert.equal(res.location.pathname, '/auth/login', n);
    }
    const promoted = await request(stack, '/auth/session', { cookie: s.promoted.cookie });
    assert.equal(promoted.json().user.role, 'editor', promoted.describe());
    const { res } = await visit(s.untouched.cookie);
    assert.equal(res.status, 200, res.describe());
    const q = queries(stack, from);
    assert.equal(q.sessionReads, 4, `one session read for each changed session, none for the untouched one:\n${q.all.join('\n')}`);
    assert.ok(q.feedReads <= 1, q.all.join('\n'));
  });
});
