// The stored email follows the Google account: a sign-in with a new email for the same Google
// `sub` updates users.email, so the session token, X-Auth-Email (what the origin gets) and
// ADMIN_EMAILS use the current address. A new email that already belongs to another user is not
// taken: the sign-in succeeds with the old email kept, and a warn line (email_conflict) says so.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { cookieValue, decodeJwt, eventually, request, signIn, sqlString, startStack, subFor, uniqueEmail } from './harness.mjs';

/** An origin that answers every request with the identity headers it received. */
function startEchoOrigin() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      email: req.headers['x-auth-email'] ?? null,
      role: req.headers['x-auth-role'] ?? null,
      id: req.headers['x-auth-user-id'] ?? null,
    }));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

const promoted = uniqueEmail('promoted');

describe('the stored email follows the Google account', () => {
  let stack;
  let echo;
  before(async () => {
    echo = await startEchoOrigin();
    stack = await startStack({
      name: 'email_change',
      vars: { UPSTREAM_URL: echo.origin, ADMIN_EMAILS: `admin@example.com,${promoted}` },
    });
  });
  after(async () => {
    await stack?.stop();
    await new Promise((r) => (echo ? echo.server.close(r) : r()));
  });

  /** What the origin is told about the holder of `cookie`. */
  async function origin(cookie) {
    const res = await request(stack, '/whoami', { cookie });
    assert.equal(res.status, 200, res.describe());
    return res.json();
  }

  const usersOf = (sub) => stack.d1(
    `SELECT u.id, u.email, u.role FROM users u JOIN accounts a ON a.user_id = u.id WHERE a.provider_account_id = ${sqlString(sub)}`,
  );

  test('a new email for the same sub updates the user: token, X-Auth-Email and ADMIN_EMAILS use it', async () => {
    const old = uniqueEmail('renamed-old');
    const sub = subFor(old);
    const first = await signIn(stack, { email: old, sub, callbackUrl: '/' });
    assert.ok(first.sessionCookie, first.response.describe());
    const before = await origin(first.sessionCookie);
    assert.deepEqual([before.email, before.role], [old, 'user']);

    // The person's Google account now says `promoted` (listed in ADMIN_EMAILS).
    const second = await signIn(stack, { email: promoted, sub, callbackUrl: '/' });
    assert.ok(second.sessionCookie, second.response.describe());
    assert.equal(decodeJwt(cookieValue(second.sessionCookie)).payload.email, promoted, 'the session token has the new email');
    const now = await origin(second.sessionCookie);
    assert.deepEqual([now.email, now.role, now.id], [promoted, 'admin', before.id], 'the origin gets the new email and its role');
    const rows = await usersOf(sub);
    assert.deepEqual(rows.map((r) => [r.id, r.email]), [[before.id, promoted]], 'one user row, with the new email');
    const [{ n }] = await stack.d1(`SELECT COUNT(*) AS n FROM users WHERE email = ${sqlString(old)}`);
    assert.equal(n, 0, 'the old email is gone');
  });

  test('a new email that belongs to another user is not taken: signed in with the old email, email_conflict logged', async () => {
    const ann = uniqueEmail('conflict-ann');
    const bob = uniqueEmail('conflict-bob');
    assert.ok((await signIn(stack, { email: ann })).sessionCookie);
    const bobFirst = await signIn(stack, { email: bob, callbackUrl: '/' });
    assert.ok(bobFirst.sessionCookie);
    const bobId = (await origin(bobFirst.sessionCookie)).id;

    const from = stack.logs().length;
    // Bob's Google account (his sub) now says Ann's address, in other letter case.
    const r = await signIn(stack, { email: ann.toUpperCase(), sub: subFor(bob), callbackUrl: '/' });
    assert.equal(r.response.status, 302, r.response.describe());
    assert.equal(r.location.pathname, '/', r.response.describe());
    assert.ok(r.sessionCookie, 'the sign-in still succeeds');
    const seen = await origin(r.sessionCookie);
    assert.deepEqual([seen.email, seen.id], [bob, bobId], 'the origin still gets the old email');
    assert.deepEqual((await usersOf(subFor(bob))).map((u) => u.email), [bob]);
    assert.deepEqual((await usersOf(subFor(ann))).map((u) => u.email), [ann], "Ann's row is untouched");

    // The warn line: reaches the log within a few seconds, names no email.
    const line = await eventually(
      () => stack.logs().slice(from).split('\n').find((l) => l.includes('"event":"email_conflict"')),
      () => `an email_conflict line in:\n${stack.logs().slice(from)}`,
    );
    const parsed = JSON.parse(line.slice(line.indexOf('{')));
    assert.equal(parsed.level, 'warn', line);
    assert.ok(!line.includes(ann.split('@')[0]) && !line.toLowerCase().includes(ann.split('@')[0]), `no email in the line: ${line}`);
    assert.ok(!line.includes(bob.split('@')[0]), `no email in the line: ${line}`);
  });

  test('a conflicting address listed in ADMIN_EMAILS gives no admin role', async () => {
    const carol = uniqueEmail('conflict-carol');
    // `promoted` already belongs to the user of the first test.
    const r = await signIn(stack, { email: carol, callbackUrl: '/' });
    assert.ok(r.sessionCookie);
    const again = await signIn(stack, { email: promoted, sub: subFor(carol), callbackUrl: '/' });
    assert.ok(again.sessionCookie, again.response.describe());
    const seen = await origin(again.sessionCookie);
    assert.deepEqual([seen.email, seen.role], [carol, 'user']);
    assert.deepEqual((await usersOf(subFor(carol))).map((u) => [u.email, u.role]), [[carol, 'user']]);
  });
});
