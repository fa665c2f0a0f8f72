// `gatehouse users …` (tools/cli) end to end: the real binary runs `wrangler d1 execute` on the
// stack's local D1 (--local --persist-to), and the running worker sees each change within
// SESSION_CHECK_INTERVAL: roles, revocation, disabling, enabling, audit rows; unknown and
// hostile emails change nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, errorCodeOf, request, signIn, sleep, sqlString, startStack, uniqueEmail } from './harness.mjs';

const CLI = path.join(ROOT, 'target', 'debug', 'gatehouse');
const INTERVAL = 2; // seconds
const pastInterval = () => sleep((INTERVAL + 1) * 1000);

const env = { ...process.env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0', WRANGLER_SEND_METRICS: 'false' };

/** Builds the CLI when it is missing or predates `users`. */
function ensureCli() {
  let ok = false;
  try {
    execFileSync(CLI, ['users', '--help'], { stdio: 'ignore' });
    ok = true;
  } catch { /* missing or old */ }
  if (!ok) execFileSync('cargo', ['build', '-p', 'gatehouse-cli'], { cwd: ROOT, stdio: 'inherit', timeout: 20 * 60_000 });
}

/** Runs `gatehouse users <args> --local --persist-to <state>` from the repo root. */
function users(stack, ...args) {
  const argv = ['users', ...args, '--local', '--persist-to', stack.persistDir];
  return new Promise((resolve) => {
    execFile(CLI, argv, { cwd: ROOT, env, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr, describe: () => `$ gatehouse ${argv.join(' ')} → ${code}\n${stdout}\n${stderr}` });
    });
  });
}

async function counts(stack) {
  const [row] = await stack.d1(
    'SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM sessions) AS sessions, ' +
    "(SELECT COUNT(*) FROM audit_log) AS audit, (SELECT COUNT(*) FROM users WHERE role <> 'user') AS roled, " +
    '(SELECT COUNT(*) FROM users WHERE disabled_at IS NOT NULL) AS disabled, ' +
    '(SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL) AS revoked',
  );
  return row;
}

const userRow = async (stack, email) =>
  (await stack.d1(`SELECT id, role, disabled_at FROM users WHERE email = ${sqlString(email)}`))[0];

/**
 * A request the worker may answer with its 503 "briefly unavailable" page: this suite's
 * `wrangler d1 execute` runs on the SQLite file wrangler dev has open, and a D1 call of the
 * worker that meets its lock (SQLITE_BUSY) fails. The page says "try again in a moment"; so does
 * this, twice, and any other answer is returned as it is.
 */
async function settled(stack, path, options) {
  for (let attempt = 1; ; attempt++) {
    const res = await request(stack, path, options);
    const unavailable = res.status === 503 && res.headers.get('retry-after') === '5';
    if (!unavailable || attempt >= 3) return res;
    await sleep(1000);
  }
}

async function assertSignedOut(stack, cookie) {
  const res = await settled(stack, '/docs/', { cookie, accept: 'text/html' });
  assert.equal(res.status, 302, res.describe());
  assert.equal(res.location.pathname, '/auth/login', res.describe());
}

async function assertAdmitted(stack, cookie) {
  const res = await settled(stack, '/docs/', { cookie, accept: 'text/html' });
  assert.equal(res.status, 200, res.describe());
}

describe('gatehouse users on local D1', () => {
  let stack;
  const a = { email: uniqueEmail('cli-a'), name: 'Ann Cli' };
  const b = { email: uniqueEmail('cli-b'), name: 'Bob Cli' };

  before(async () => {
    ensureCli();
    stack = await startStack({ name: 'cli', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL) } });
    for (const u of [a, b]) {
      const r = await signIn(stack, u);
      assert.ok(r.sessionCookie, `sign-in of ${u.email} failed: ${r.response.describe()}`);
      u.cookie = r.sessionCookie;
      u.id = (await userRow(stack, u.email)).id;
    }
  });
  after(async () => { await stack?.stop(); });

  test('users list shows both users with role, sessions and disabled', async () => {
    const r = await users(stack, 'list');
    assert.equal(r.code, 0, r.describe());
    const lines = r.stdout.split('\n');
    assert.match(lines[0], /^EMAIL\s+NAME\s+ROLE\s+CREATED\s+LAST SEEN \(UTC\)\s+ACTIVE SESSIONS\s+DISABLED$/, r.describe());
    const today = new Date().toISOString().slice(0, 10);
    for (const u of [a, b]) {
      const line = lines.find((l) => l.startsWith(u.email + ' '));
      assert.ok(line, `${u.email} missing:\n${r.describe()}`);
      const cols = line.split(/\s{2,}/);
      assert.deepEqual(cols.map((c) => c.trim()).filter((_, i) => i !== 4),
        [u.email, u.name, 'user', today, '1', 'no'], line);
      assert.match(cols[4], /^\d{4}-\d\d-\d\d \d\d:\d\d$/, line);
    }
    const only = await users(stack, 'list', '--search', 'CLI-B', '--limit', '5');
    assert.equal(only.code, 0, only.describe());
    assert.ok(only.stdout.includes(b.email) && !only.stdout.includes(a.email), only.describe());
  });

  test('set-role changes D1 at once and the session at its next renewal', async () => {
    const r = await users(stack, 'set-role', a.email.toUpperCase(), 'editor');
    assert.equal(r.code, 0, r.describe());
    assert.match(r.stdout, /SESSION_CHECK_INTERVAL/);
    assert.equal((await userRow(stack, a.email)).role, 'editor');
    await pastInterval();
    const res = await settled(stack, '/auth/session', { cookie: a.cookie });
    assert.equal(res.status, 200, res.describe());
    assert.equal(res.json()?.user?.role, 'editor', res.describe());
  });

  test('revoke ends every session of the user within the interval, and only theirs', async () => {
    const r = await users(stack, 'revoke', a.email);
    assert.equal(r.code, 0, r.describe());
    assert.match(r.stdout, /revoked/);
    assert.match(r.stdout, /next renewal, within SESSION_CHECK_INTERVAL/);
    const live = await stack.d1(`SELECT COUNT(*) AS n FROM sessions WHERE user_id = ${sqlString(a.id)} AND revoked_at IS NULL`);
    assert.equal(live[0].n, 0);
    await pastInterval();
    await assertSignedOut(stack, a.cookie);
    await assertAdmitted(stack, b.cookie);
  });

  test('disable locks the user out; enable lets them back in', async () => {
    const r = await users(stack, 'disable', b.email);
    assert.equal(r.code, 0, r.describe());
    assert.match(r.stdout, /SESSION_CHECK_INTERVAL/);
    assert.ok((await userRow(stack, b.email)).disabled_at > 0);
    await pastInterval();
    await assertSignedOut(stack, b.cookie);
    const refused = await signIn(stack, b);
    assert.equal(refused.sessionCookie, null, refused.response.describe());
    assert.equal(errorCodeOf(refused.response.location, stack.base), 'AccessDenied', refused.response.describe());

    const listed = await users(stack, 'list', '--search', b.email);
    assert.match(listed.stdout.split('\n').find((l) => l.startsWith(b.email)) ?? '', /\s0\s+yes$/, listed.describe());

    const e = await users(stack, 'enable', b.email);
    assert.equal(e.code, 0, e.describe());
    assert.equal((await userRow(stack, b.email)).disabled_at, null);
    const again = await signIn(stack, b);
    assert.ok(again.sessionCookie, again.response.describe());
    assert.equal(again.location.pathname, '/docs/');
    await assertAdmitted(stack, again.sessionCookie);
  });

  test('each change wrote one audit_log row without an actor', async () => {
    const rows = await stack.d1('SELECT actor_user_id, action, target, created_at FROM audit_log ORDER BY id');
    assert.deepEqual(rows.map(({ actor_user_id, action, target }) => ({ actor_user_id, action, target })), [
      { actor_user_id: null, action: 'cli:set-role', target: `${a.id} role=editor` },
      { actor_user_id: null, action: 'cli:revoke', target: a.id },
      { actor_user_id: null, action: 'cli:disable', target: b.id },
      { actor_user_id: null, action: 'cli:enable', target: b.id },
    ]);
    const now = Date.now() / 1000;
    for (const r of rows) assert.ok(Math.abs(r.created_at - now) < 300, `created_at ${r.created_at} is Unix seconds of now`);
  });

  test('revoke of a user without live sessions exits 1, says so, and writes no audit row', async () => {
    // Every session of `a` was revoked above.
    const before = await counts(stack);
    const r = await users(stack, 'revoke', a.email);
    assert.equal(r.code, 1, r.describe());
    assert.match(r.stderr, /no live sessions/, r.describe());
    assert.match(r.stderr, /nothing changed/, r.describe());
    assert.equal(r.stdout, '', r.describe());
    assert.deepEqual(await counts(stack), before);
  });

  test('an unknown email exits 1 and changes nothing', async () => {
    const before = await counts(stack);
    const r = await users(stack, 'disable', uniqueEmail('nobody'));
    assert.equal(r.code, 1, r.describe());
    assert.match(r.stderr, /no user with email/);
    assert.deepEqual(await counts(stack), before);
  });

  test('hostile emails, roles and searches are refused without touching D1', async () => {
    const before = await counts(stack);
    const attempts = [
      ['disable', "x@y.test'; DROP TABLE users; --"],
      ['revoke', "a'--@x.test"],
      ['disable', `${b.email}' OR '1'='1`],
      ['set-role', `${a.email}' OR '1'='1`, 'admin'],
      ['set-role', a.email, "admin' WHERE '1'='1"],
      ['list', '--search', "' OR 1=1; DELETE FROM users; --"],
    ];
    for (const args of attempts) {
      const r = await users(stack, ...args);
      assert.equal(r.code, 2, r.describe());
      assert.equal(r.stdout, '', r.describe());
      assert.doesNotMatch(r.stderr, /wrangler/, `refused before wrangler ran: ${r.describe()}`);
    }
    assert.deepEqual(await counts(stack), before, 'no row counted differently');
    assert.equal((await userRow(stack, a.email)).role, 'editor');
    assert.equal((await userRow(stack, b.email)).disabled_at, null);
  });
});
