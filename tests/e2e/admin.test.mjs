// The admin page under wrangler dev with real D1: who may see it, each action, the audit log,
// and that changes reach sessions within SESSION_CHECK_INTERVAL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_EMAIL, SESSION_COOKIE, findSetCookie, request, signIn, sleep, sqlString, startStack, uniqueEmail } from './harness.mjs';

const INTERVAL = 2;
const pastInterval = () => sleep((INTERVAL + 0.8) * 1000);

/** The cookie the browser holds after this response. */
const next = (cookie, res) => {
  const c = findSetCookie(res, SESSION_COOKIE);
  return c && c.value ? `${SESSION_COOKIE}=${c.value}` : cookie;
};

describe('admin page', () => {
  let stack;
  let admin; // cookie of ADMIN_EMAIL
  before(async () => {
    stack = await startStack({ name: 'admin', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL), ROLE_PATHS: '/docs/*=editor' } });
    admin = (await signIn(stack, { email: ADMIN_EMAIL })).sessionCookie;
    assert.ok(admin);
  });
  after(async () => { await stack?.stop(); });

  const userId = async (email) => (await stack.d1(`SELECT id FROM users WHERE email = ${sqlString(email)}`))[0].id;

  async function csrf(cookie) {
    const res = await request(stack, '/auth/csrf', { cookie });
    assert.equal(res.status, 200, res.describe());
    return res.json().csrfToken;
  }

  async function act(cookie, fields, { origin = stack.base, token } = {}) {
    const body = new URLSearchParams({ csrfToken: token ?? (await csrf(cookie)), ...fields }).toString();
    return request(stack, '/auth/admin', {
      method: 'POST',
      cookie,
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
    });
  }

  test('without a session the page asks to sign in; a non-admin gets 403', async () => {
    const anon = await request(stack, '/auth/admin', { accept: 'text/html' });
    assert.equal(anon.status, 302, anon.describe());
    assert.equal(anon.location.pathname, '/auth/login');
    assert.equal(anon.location.searchParams.get('callbackUrl'), '/auth/admin');
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('nonadmin') });
    const res = await request(stack, '/auth/admin', { cookie: sessionCookie, accept: 'text/html' });
    assert.equal(res.status, 403, res.describe());
    const post = await act(sessionCookie, { action: 'revoke-all', user_id: 'x' });
    assert.equal(post.status, 403, post.describe());
  });

  test('an admin sees every user with role, activity and sessions, and can search by email', async () => {
    const email = uniqueEmail('listed');
    await signIn(stack, { email, name: 'Listed Person' });
    const res = await request(stack, '/auth/admin', { cookie: admin, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.ok(res.body.includes(email) && res.body.includes('Listed Person') && res.body.includes(ADMIN_EMAIL));
    const found = await request(stack, `/auth/admin?q=${encodeURIComponent(email.slice(0, 12))}`, { cookie: admin, accept: 'text/html' });
    assert.ok(found.body.includes(email));
    assert.ok(!found.body.includes(`>${ADMIN_EMAIL}<`), 'search narrows the list');
  });

  test('setting a role reaches the user\'s session within the interval and is audited', async () => {
    const email = uniqueEmail('editor');
    let cookie = (await signIn(stack, { email })).sessionCookie;
    assert.equal((await request(stack, '/docs/', { cookie, accept: 'text/html' })).status, 403);
    const id = await userId(email);
    const res = await act(admin, { action: 'set-role', user_id: id, role: 'editor' });
    assert.equal(res.status, 303, res.describe());
    assert.equal(res.location.searchParams.get('done'), 'set-role');
    await pastInterval();
    const page = await request(stack, '/docs/', { cookie, accept: 'text/html' });
    assert.equal(page.status, 200, page.describe());
    cookie = next(cookie, page);
    const audit = await stack.d1(`SELECT action, target FROM audit_log WHERE target LIKE ${sqlString(`${id}%`)}`);
    assert.deepEqual(audit.map((a) => a.action), ['set-role']);
    assert.equal(audit[0].target, `${id} role=editor`);
    const shown = await request(stack, '/auth/admin', { cookie: admin, accept: 'text/html' });
    assert.ok(shown.body.includes(`${id} role=editor`), 'the audit log is on the page');
  });

  test('disabling a user ends their sessions within the interval and blocks sign-in; enabling lets them back', async () => {
    const email = uniqueEmail('disabled');
    const a = (await signIn(stack, { email })).sessionCookie;
    const b = (await signIn(stack, { email })).sessionCookie;
    const id = await userId(email);
    assert.equal((await act(admin, { action: 'disable', user_id: id })).status, 303);
    await pastInterval();
    for (const cookie of [a, b]) {
      const res = await request(stack, '/', { cookie, accept: 'text/html' });
      assert.equal(res.status, 302, res.describe());
    }
    assert.equal((await signIn(stack, { email })).sessionCookie, null);
    const live = await stack.d1(`SELECT COUNT(*) AS n FROM sessions WHERE user_id = ${sqlString(id)} AND revoked_at IS NULL`);
    assert.equal(live[0].n, 0, 'disabling revokes the sessions too');
    assert.equal((await act(admin, { action: 'enable', user_id: id })).status, 303);
    assert.ok((await signIn(stack, { email })).sessionCookie);
  });

  test('revoking one session leaves the others; revoking all ends them all', async () => {
    const email = uniqueEmail('revoke');
    const a = (await signIn(stack, { email })).sessionCookie;
    const b = (await signIn(stack, { email })).sessionCookie;
    const id = await userId(email);
    const [{ id: newest }] = await stack.d1(`SELECT id FROM sessions WHERE user_id = ${sqlString(id)} ORDER BY created_at DESC, rowid DESC LIMIT 1`);
    const detail = await request(stack, `/auth/admin?user=${encodeURIComponent(id)}`, { cookie: admin, accept: 'text/html' });
    assert.ok(detail.body.includes(newest), 'sessions are listed');
    assert.equal((await act(admin, { action: 'revoke-session', user_id: id, session_id: newest })).status, 303);
    await pastInterval();
    assert.equal((await request(stack, '/', { cookie: b, accept: 'text/html' })).status, 302, 'the revoked (newest) session is out');
    const stillA = await request(stack, '/', { cookie: a, accept: 'text/html' });
    assert.equal(stillA.status, 200, stillA.describe());
    assert.equal((await act(admin, { action: 'revoke-all', user_id: id })).status, 303);
    await pastInterval();
    assert.equal((await request(stack, '/', { cookie: next(a, stillA), accept: 'text/html' })).status, 302);
  });

  test('cross-site posts, missing CSRF tokens and self-lockout are refused', async () => {
    const email = uniqueEmail('target');
    await signIn(stack, { email });
    const id = await userId(email);
    const cross = await act(admin, { action: 'disable', user_id: id }, { origin: 'https://evil.test' });
    assert.equal(cross.status, 403, cross.describe());
    const noToken = await act(admin, { action: 'disable', user_id: id }, { token: '' });
    assert.equal(noToken.status, 403, noToken.describe());
    const me = await userId(ADMIN_EMAIL);
    const self = await act(admin, { action: 'set-role', user_id: me, role: 'user' });
    assert.equal(self.location.searchParams.get('refused'), 'self-lockout');
    const selfDisable = await act(admin, { action: 'disable', user_id: me });
    assert.equal(selfDisable.location.searchParams.get('refused'), 'self-lockout');
    const rows = await stack.d1(`SELECT disabled_at FROM users WHERE id IN (${sqlString(id)}, ${sqlString(me)})`);
    assert.ok(rows.every((r) => r.disabled_at === null), 'nothing was changed');
    const role = await stack.d1(`SELECT role FROM users WHERE id = ${sqlString(me)}`);
    assert.equal(role[0].role, 'admin');
  });

  test('actions on ids that match nothing are refused with a message and write no audit row', async () => {
    const email = uniqueEmail('nomatch');
    const other = uniqueEmail('nomatch-other');
    const mine = (await signIn(stack, { email })).sessionCookie;
    const theirs = (await signIn(stack, { email: other })).sessionCookie;
    assert.ok(mine && theirs);
    const id = await userId(email);
    const otherId = await userId(other);
    const sessionOf = async (uid) => (await stack.d1(`SELECT id FROM sessions WHERE user_id = ${sqlString(uid)}`))[0].id;
    const own = await sessionOf(id);
    const foreign = await sessionOf(otherId);
    const auditCount = async () => (await stack.d1('SELECT COUNT(*) AS n FROM audit_log'))[0].n;
    const before = await auditCount();

    const refused = async (fields, code) => {
      const res = await act(admin, fields);
      assert.equal(res.status, 303, res.describe());
      assert.equal(res.location.searchParams.get('refused'), code, res.rawLocation);
      assert.equal(res.location.searchParams.get('done'), null, res.rawLocation);
      const page = await request(stack, res.location, { cookie: admin, accept: 'text/html' });
      assert.equal(page.status, 200, page.describe());
      assert.match(page.body, /nothing was changed/, page.body);
    };
    // A session id that does not exist, and one of another user.
    await refused({ action: 'revoke-session', user_id: id, session_id: 'no-such-session' }, 'unknown-session');
    await refused({ action: 'revoke-session', user_id: id, session_id: foreign }, 'unknown-session');
    const [{ revoked_at: untouched }] = await stack.d1(`SELECT revoked_at FROM sessions WHERE id = ${sqlString(foreign)}`);
    assert.equal(untouched, null, "the other user's session is not revoked");
    // A real one is done once; the second time it has already ended.
    const done = await act(admin, { action: 'revoke-session', user_id: id, session_id: own });
    assert.equal(done.location.searchParams.get('done'), 'revoke-session', done.rawLocation);
    await refused({ action: 'revoke-session', user_id: id, session_id: own }, 'unknown-session');
    // No live session left: revoking all of them touches nothing.
    await refused({ action: 'revoke-all', user_id: id }, 'no-sessions');
    // Unknown users, for every action.
    for (const action of ['disable', 'enable', 'revoke-all']) {
      await refused({ action, user_id: 'no-such-user' }, 'unknown-user');
    }
    await refused({ action: 'set-role', user_id: 'no-such-user', role: 'editor' }, 'unknown-user');
    assert.equal(await auditCount(), before + 1, 'only the one real revocation is in the audit log');
    const logged = await stack.d1(`SELECT action, target FROM audit_log ORDER BY id DESC LIMIT 1`);
    assert.deepEqual(logged, [{ action: 'revoke-session', target: `${id} session=${own}` }]);
  });
});
