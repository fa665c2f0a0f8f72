// Old rows go away: the cron trigger's handler (src/runtime/scheduled.rs, src/prune.rs) under
// wrangler dev with real local D1. Rows are seeded with times relative to now, the trigger is
// fired through `wrangler dev --test-scheduled`'s route (GET /__scheduled?cron=…), and
// the test checks exactly which rows went, the one log line, and the admin page's last seen and
// active sessions afterwards. Then a D1 failure and a bad configuration: logged, nothing else.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_EMAIL, logLines, request, signIn, sqlString, startStack, waitForLog } from './harness.mjs';

const DAY = 86_400;
// src/oidc/risc.rs JTI_RETENTION_SECS: the longest a SET is accepted (7 days), plus a day.
const JTI_RETENTION = 8 * DAY;
const CRON = '*/10 * * * *';

/** The admin page's time format (src/admin.rs `when`). */
const when = (t) => `${new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/**
 * Fires the cron trigger once: `wrangler dev --test-scheduled` (the harness) runs the worker's
 * scheduled handler on `GET /__scheduled` and answers once it has finished (500 had it thrown).
 */
async function fire(stack) {
  const res = await request(stack, `/__scheduled?cron=${encodeURIComponent(CRON)}`);
  assert.equal(res.status, 200, res.describe());
  assert.equal(res.body, 'Ran scheduled event');
  return res;
}

describe('pruning on a cron trigger', () => {
  let stack;
  let admin;
  let now;
  const users = {
    // Both sessions past their end for days; the user row already holds a later last seen.
    old: { id: 'pr-user-old', email: 'prune-old@example.com' },
    // One live session, one revoked two days ago (the latest seen).
    mix: { id: 'pr-user-mix', email: 'prune-mix@example.com' },
    // Revoked an hour ago, and past its end an hour ago: both within the day of grace.
    recent: { id: 'pr-user-recent', email: 'prune-recent@example.com' },
  };

  before(async () => {
    stack = await startStack({ name: 'prune' });
    admin = (await signIn(stack, { email: ADMIN_EMAIL })).sessionCookie;
    assert.ok(admin);
    now = Math.floor(Date.now() / 1000);
    const ago = (days) => Math.round(now - days * DAY);
    const user = (u, lastSeen) =>
      `(${sqlString(u.id)}, ${sqlString(u.email)}, 1, ${sqlString(u.email)}, 'user', ${ago(60)}, ${ago(60)}, ${lastSeen ?? 'NULL'})`;
    // id, user, created, expires, last seen, revoked
    const session = (id, u, created, expires, seen, revoked) =>
      `(${sqlString(id)}, ${sqlString(u.id)}, ${created}, ${expires}, ${seen}, ${revoked ?? 'NULL'}, 'prune-test')`;
    await stack.d1(
      'INSERT INTO users (id, email, email_verified, name, role, created_at, updated_at, last_seen_at) VALUES ' +
      [user(users.old, ago(11)), user(users.mix), user(users.recent)].join(', ') + '; ' +
      'INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, revoked_at, user_agent) VALUES ' +
      [
        session('pr-exp-1', users.old, ago(40), ago(10), ago(15)),
        session('pr-exp-2', users.old, ago(35), ago(5), ago(12)),
        session('pr-live', users.mix, ago(3), ago(-27), ago(3)),
        session('pr-rev-old', users.mix, ago(2.5), ago(-27.5), ago(2.2), ago(2)),
        session('pr-rev-new', users.recent, ago(1), ago(-29), ago(0.9), now - 3600),
        session('pr-exp-new', users.recent, ago(30.5), now - 3600, ago(20)),
      ].join(', ') + '; ' +
      'INSERT INTO audit_log (actor_user_id, action, target, created_at) VALUES ' +
      `(NULL, 'prune-test-old', NULL, ${ago(366)}), (NULL, 'prune-test-new', NULL, ${ago(364)}); ` +
      'INSERT INTO risc_events (jti, received_at) VALUES ' +
      `('pr-jti-old', ${now - JTI_RETENTION - 600}), ('pr-jti-new', ${now - JTI_RETENTION + 600}); ` +
      'INSERT INTO changes (kind, id, at) VALUES ' +
      `('session', 'pr-change-old', ${ago(1) - 600}), ('session', 'pr-change-new', ${now - 600})`,
    );
  });
  after(async () => { await stack?.stop(); });

  const ids = async (sql) => (await stack.d1(sql)).map((r) => r.id);

  test('the trigger deletes exactly the old rows, logs their counts, and keeps last seen', async () => {
    const changesBefore = (await stack.d1('SELECT COUNT(*) AS n FROM changes'))[0].n;
    const from = stack.logs().length;
    await fire(stack);
    const [line] = await waitForLog(stack, (l) => l.event === 'pruned' || l.event === 'prune_failed', { from, what: 'the pruning line' });
    // Counts only: no id, email or token in the line.
    assert.deepEqual(line, {
      level: 'info',
      event: 'pruned',
      expired_sessions: 2,
      revoked_sessions: 1,
      audit_entries: 1,
      risc_events: 1,
      changes: 1,
      more: false,
    });

    assert.deepEqual(
      await ids("SELECT id FROM sessions WHERE id LIKE 'pr-%' ORDER BY id"),
      ['pr-exp-new', 'pr-live', 'pr-rev-new'],
      'past their end or revoked over a day ago: gone; live or ended within the day: kept',
    );
    assert.deepEqual(
      (await stack.d1("SELECT action FROM audit_log WHERE action LIKE 'prune-test-%'")).map((r) => r.action),
      ['prune-test-new'],
      'audit rows older than AUDIT_RETENTION_DAYS (365) go',
    );
    assert.deepEqual(await ids("SELECT jti AS id FROM risc_events WHERE jti LIKE 'pr-%'"), ['pr-jti-new']);
    assert.deepEqual(await ids("SELECT id FROM changes WHERE id LIKE 'pr-%'"), ['pr-change-new']);
    // Keeping last seen on the user rows wrote no change: the feed only lost the old row.
    assert.equal((await stack.d1('SELECT COUNT(*) AS n FROM changes'))[0].n, changesBefore - 1);

    const lastSeen = Object.fromEntries(
      (await stack.d1("SELECT id, last_seen_at FROM users WHERE id LIKE 'pr-user-%'")).map((r) => [r.id, r.last_seen_at]),
    );
    const ago = (days) => Math.round(now - days * DAY);
    assert.deepEqual(lastSeen, {
      'pr-user-old': ago(11), // its own, later than its pruned sessions': never moved back
      'pr-user-mix': ago(2.2), // from the pruned revoked session, the latest of all its sessions
      'pr-user-recent': null, // nothing of it pruned
    });

    // The admin page: last seen survives the pruned rows, active sessions are unchanged.
    const page = await request(stack, '/auth/admin?q=prune-', { cookie: admin, accept: 'text/html' });
    assert.equal(page.status, 200, page.describe());
    const row = (email) => {
      const m = new RegExp(`<tr><td><a [^>]*>${email.replace(/[.]/g, '\\.')}</a></td>(.*?)</tr>`).exec(page.body);
      assert.ok(m, `${email} listed:\n${page.body}`);
      const cells = [...m[1].matchAll(/<td>(.*?)<\/td>/g)].map((c) => c[1]);
      return { lastSeen: cells[3], active: cells[4] };
    };
    assert.deepEqual(row(users.old.email), { lastSeen: when(ago(11)), active: '0' });
    assert.deepEqual(row(users.mix.email), { lastSeen: when(ago(2.2)), active: '1' });
    assert.deepEqual(row(users.recent.email), { lastSeen: when(ago(0.9)), active: '0' });

    // Again: nothing left to prune.
    const again = stack.logs().length;
    await fire(stack);
    const [second] = await waitForLog(stack, (l) => l.event === 'pruned' || l.event === 'prune_failed', { from: again, what: 'the second pruning line' });
    assert.deepEqual(second, {
      level: 'info', event: 'pruned', expired_sessions: 0, revoked_sessions: 0, audit_entries: 0, risc_events: 0, changes: 0, more: false,
    });
  });

  test('a D1 failure is logged with its reason; the trigger itself does not fail', async () => {
    await stack.d1(`INSERT INTO audit_log (actor_user_id, action, target, created_at) VALUES (NULL, 'prune-test-failure', NULL, ${now - 400 * DAY})`);
    await stack.d1('ALTER TABLE risc_events RENAME TO risc_events_away');
    try {
      const from = stack.logs().length;
      await fire(stack);
      const [line] = await waitForLog(stack, (l) => l.event === 'pruned' || l.event === 'prune_failed', { from, what: 'the failure line' });
      assert.equal(line.level, 'error');
      assert.equal(line.event, 'prune_failed');
      assert.match(line.reason, /no such table: risc_events/);
      assert.deepEqual(Object.keys(line).sort(), ['event', 'level', 'reason']);
      // What came before the failure in the run went; the rest waits for the next run.
      assert.deepEqual(await stack.d1("SELECT action FROM audit_log WHERE action = 'prune-test-failure'"), []);
    } finally {
      await stack.d1('ALTER TABLE risc_events_away RENAME TO risc_events');
    }
  });

  test('under a bad configuration the trigger logs and deletes nothing', async () => {
    await stack.restart({ AUDIT_RETENTION_DAYS: '0' });
    await stack.d1(`INSERT INTO audit_log (actor_user_id, action, target, created_at) VALUES (NULL, 'prune-test-kept', NULL, ${now - 400 * DAY})`);
    const from = stack.logs().length;
    await fire(stack);
    const [line] = await waitForLog(stack, (l) => l.event === 'pruned' || l.event === 'prune_failed', { from, what: 'the refusal line' });
    assert.deepEqual(line, { level: 'error', event: 'prune_failed', reason: 'configuration_invalid' });
    const problems = logLines(stack).filter((l) => l.event === 'configuration_invalid').flatMap((l) => l.problems);
    assert.ok(problems.some((p) => p.startsWith('AUDIT_RETENTION_DAYS ')), JSON.stringify(problems));
    assert.equal((await stack.d1("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'prune-test-kept'"))[0].n, 1);
  });
});
