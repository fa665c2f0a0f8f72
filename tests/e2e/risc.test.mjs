// Google's Cross-Account Protection (RISC) through the real runtime: the local provider signs
// security event tokens as Google does and pushes them to POST /auth/risc. Each event's effect
// reaches a signed-in session within SESSION_CHECK_INTERVAL; every hostile token is refused with
// one generic 400 and changes nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cookieValue, decodeJwt, errorCodeOf, idpControl, pushRisc, request, signHmac, signIn, sleep, sqlString,
  stackKeyBytes, startStack, subFor, uniqueEmail, waitForLog,
} from './harness.mjs';

const INTERVAL = 2; // SESSION_CHECK_INTERVAL, seconds
const GENERIC = { err: 'invalid_request', description: 'The security event token was not accepted.' };
const html = { accept: 'text/html' };

describe('Google security events (RISC) pushed to /auth/risc', () => {
  let stack;
  before(async () => {
    stack = await startStack({ name: 'risc', vars: { RISC_ENABLED: 'true', SESSION_CHECK_INTERVAL: String(INTERVAL) } });
  });
  after(async () => { await stack?.stop(); });

  /** A signed-in person: email, Google sub, cookie, session id. */
  async function person(label) {
    const email = uniqueEmail(label);
    const { sessionCookie } = await signIn(stack, { email, callbackUrl: '/' });
    assert.ok(sessionCookie, `${label} signed in`);
    return { email, sub: subFor(email), cookie: sessionCookie, sid: decodeJwt(cookieValue(sessionCookie)).payload.sid };
  }

  /** Waits until every token issued so far is past its exp: the next request must ask D1. */
  async function pastInterval(...people) {
    const lastExp = Math.max(...people.map((p) => decodeJwt(cookieValue(p.cookie)).payload.exp));
    await sleep(Math.max(0, lastExp * 1000 + 300 - Date.now()));
  }

  async function assertSignedOut(p, what) {
    const res = await request(stack, '/docs/', { cookie: p.cookie, ...html });
    assert.equal(res.status, 302, `${what}: ${res.describe()}`);
    assert.equal(res.location.pathname, '/auth/login', `${what}: ${res.rawLocation}`);
  }

  async function assertSignedIn(p, what) {
    const res = await request(stack, '/docs/', { cookie: p.cookie, ...html });
    assert.equal(res.status, 200, `${what}: ${res.describe()}`);
  }

  const auditOf = (action) => stack.d1(`SELECT target FROM audit_log WHERE action = ${sqlString(action)}`);

  for (const event of ['sessions-revoked', 'tokens-revoked', 'account-credential-change-required']) {
    test(`${event}: the person's sessions end within the interval, and they may sign in again`, async () => {
      const p = await person(event);
      const other = await person(`${event}-other`);
      const sent = await pushRisc(stack, { event, sub: p.sub });
      assert.deepEqual([sent.status, sent.body], [202, ''], JSON.stringify(sent));
      await pastInterval(p, other);
      await assertSignedOut(p, event);
      await assertSignedIn(other, 'another person');
      const [row] = await stack.d1(`SELECT revoked_at FROM sessions WHERE id = ${sqlString(p.sid)}`);
      assert.ok(Number.isInteger(row.revoked_at), 'revoked in D1');
      const again = await signIn(stack, { email: p.email, callbackUrl: '/' });
      assert.ok(again.sessionCookie, 'not disabled: signing in again works');
      assert.ok((await auditOf(`risc:${event}`)).length >= 1, 'an audit row');
    });
  }

  test('account-disabled (hijacking): signed out within the interval, sign-in refused, audited as Google RISC', async () => {
    const p = await person('disabled');
    const sent = await pushRisc(stack, { event: 'account-disabled', sub: p.sub, reason: 'hijacking' });
    assert.equal(sent.status, 202, JSON.stringify(sent));
    await pastInterval(p);
    await assertSignedOut(p, 'account-disabled');
    const again = await signIn(stack, { email: p.email, callbackUrl: '/' });
    assert.equal(again.sessionCookie, null, 'no new session');
    assert.equal(errorCodeOf(again.response.location, stack.base), 'AccessDenied', again.response.describe());
    const [user] = await stack.d1(`SELECT disabled_at FROM users WHERE email = ${sqlString(p.email)}`);
    assert.ok(Number.isInteger(user.disabled_at));
    const rows = await auditOf('risc:account-disabled');
    assert.ok(rows.some((r) => r.target.endsWith(' reason=hijacking')), JSON.stringify(rows));
    await waitForLog(stack, (o) => o.event === 'risc_event' && o.matched === 1, { what: 'risc_event matched 1' });
    assert.ok(!stack.logs().includes(p.sub), 'the Google account id is not logged');
    assert.ok(!stack.logs().includes(p.email), 'the email is not logged');
  });

  test('account-enabled: an audit row, nothing else (an admin decides)', async () => {
    const p = await person('enabled');
    assert.equal((await pushRisc(stack, { event: 'account-enabled', sub: p.sub })).status, 202);
    await pastInterval(p);
    await assertSignedIn(p, 'account-enabled');
    assert.ok((await auditOf('risc:account-enabled')).length >= 1);
  });

  test('verification: 202 and a log line with the state the operator chose', async () => {
    const from = stack.logs().length;
    const sent = await pushRisc(stack, { event: 'verification', state: 'e2e-check-7f3a' });
    assert.equal(sent.status, 202, JSON.stringify(sent));
    const [line] = await waitForLog(stack, (o) => o.event === 'risc_verification', { from, what: 'risc_verification' });
    assert.equal(line.state, 'e2e-check-7f3a');
  });

  test('an event type Gatehouse does not know, or an account it does not have: 202, nothing changes', async () => {
    const p = await person('unknown');
    assert.equal((await pushRisc(stack, { event: 'unknown', sub: p.sub })).status, 202);
    assert.equal((await pushRisc(stack, { event: 'sessions-revoked', sub: '999999999999999999999' })).status, 202);
    await pastInterval(p);
    await assertSignedIn(p, 'unknown event');
  });

  test('hostile tokens: each refused with the same 400, and nothing changes', async () => {
    const victim = await person('victim');
    const twists = ['bad_signature', 'wrong_aud', 'stale_iat', 'future_iat', 'wrong_iss', 'unknown_kid', 'alg_none', 'no_jti', 'no_events'];
    for (const twist of twists) {
      const sent = await pushRisc(stack, { event: 'account-disabled', sub: victim.sub, twist });
      assert.equal(sent.status, 400, `${twist}: ${JSON.stringify(sent)}`);
      assert.deepEqual(JSON.parse(sent.body), GENERIC, twist);
    }
    // A subject of another issuer is not an account of ours: accepted as a SET, ignored.
    const foreign = await pushRisc(stack, { event: 'account-disabled', sub: victim.sub, twist: 'subject_other_iss' });
    assert.equal(foreign.status, 202, JSON.stringify(foreign));
    // Signed with the site's own session key (HS256), pushed directly.
    const now = Math.floor(Date.now() / 1000);
    const forged = signHmac(
      { alg: 'HS256', kid: stack.sessionKeys.keys[0].kid, typ: 'secevent+jwt' },
      {
        iss: `${stack.idp}/`, aud: 'test-client.apps.googleusercontent.com', iat: now, jti: `forged-${now}`,
        events: { 'https://schemas.openid.net/secevent/risc/event-type/account-disabled': { subject: { subject_type: 'iss-sub', iss: `${stack.idp}/`, sub: victim.sub } } },
      },
      stackKeyBytes(stack),
    );
    const res = await request(stack, '/auth/risc', { method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: forged });
    assert.equal(res.status, 400, res.describe());
    assert.deepEqual(res.json(), GENERIC);
    // A good token sent as JSON instead of application/secevent+jwt.
    const made = await idpControl(stack, 'POST', `/_control/risc?${new URLSearchParams({ event: 'account-disabled', sub: victim.sub })}`);
    const wrongType = await request(stack, '/auth/risc', { method: 'POST', headers: { 'content-type': 'application/json' }, body: made.set });
    assert.equal(wrongType.status, 400, wrongType.describe());
    await pastInterval(victim);
    await assertSignedIn(victim, 'after every hostile token');
    const [user] = await stack.d1(`SELECT disabled_at FROM users WHERE email = ${sqlString(victim.email)}`);
    assert.equal(user.disabled_at, null, 'not disabled');
    const refusals = await waitForLog(stack, (o) => o.event === 'risc_refused', { count: twists.length + 2, what: 'risc_refused' });
    assert.ok(refusals.every((o) => o.level === 'warn' && typeof o.reason === 'string'));
  });

  test('a replayed token (same jti) is acted on once', async () => {
    const p = await person('replay');
    const jti = `replay-${Date.now()}`;
    const first = await pushRisc(stack, { event: 'account-enabled', sub: p.sub, jti });
    assert.equal(first.status, 202, JSON.stringify(first));
    const again = await pushRisc(stack, { event: 'account-disabled', sub: p.sub, jti });
    assert.equal(again.status, 400, JSON.stringify(again));
    assert.deepEqual(JSON.parse(again.body), GENERIC);
    const rows = await stack.d1(`SELECT jti FROM risc_events WHERE jti = ${sqlString(jti)}`);
    assert.equal(rows.length, 1);
    await pastInterval(p);
    await assertSignedIn(p, 'the replay did not disable');
  });
});
