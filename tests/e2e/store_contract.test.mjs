// One store contract (src/store/contract.rs) for the in-memory store the native tests use and
// for real D1: here the same suite runs inside workerd against freshly migrated local D1.
//
// The same run checks that every query uses an index: the contract build records every SQL
// text the D1 store prepares (src/runtime/contract.rs), `gatehouse users statements` prints
// every statement the command line can issue, and `EXPLAIN QUERY PLAN` of each, on this D1 with
// the real migrations, must not scan a table (docs/scale.md#every-query-uses-an-index).
//
// The contract build also carries the hot path's WebCrypto Ed25519 check (src/runtime/webcrypto.rs):
// in workerd, it must agree with the pure-Rust check the native tests use.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { ARTIFACTS, ROOT, request, startStack } from './harness.mjs';

const CLI = path.join(ROOT, 'target', 'debug', 'gatehouse');

// How many distinct statements each side issues today (worker: the contract run's; command
// line: `gatehouse users statements`, deduplicated). More is fine; fewer means statements
// went missing from the check (or were removed: then lower the number).
const WORKER_STATEMENTS = 37;
const CLI_STATEMENTS = 11;

/**
 * Scans that are bounded, each argued. A plan row matching `detail` is accepted only in a
 * statement matching `sql`, and only if the plan sorts nothing (no temp B-tree: the rows come
 * in the scan's own order, so `LIMIT` stops it). Every entry must be used by some statement.
 */
const BOUNDED_SCANS = [
  {
    // The admin page's first page and `gatehouse users list` without --search: the email index
    // read from its start, no WHERE on `u` (the `$` anchor: nothing between `FROM users u` and
    // `ORDER BY`), so the scan stops after LIMIT entries (50 on the admin page; the command
    // line's --limit, at most 10000, plus one). Later pages and searches are index ranges.
    why: 'first page by email: LIMIT entries of the email index',
    sql: /FROM users u ORDER BY u\.email LIMIT (\?\d+|\d+)$/,
    detail: 'SCAN u USING INDEX sqlite_autoindex_users_2',
  },
  {
    // The admin page's audit log, newest first: the rowid b-tree read from its end, no WHERE,
    // so the scan stops after LIMIT rows (the admin page asks for 50); each row's actor is
    // one primary key lookup.
    why: 'newest audit rows: LIMIT rows from the end of the rowid b-tree',
    sql: /FROM audit_log a LEFT JOIN users u ON u\.id = a\.actor_user_id ORDER BY a\.id DESC LIMIT \?1$/,
    detail: 'SCAN a',
  },
];

/**
 * What is wrong with one plan: every row that reads a whole table or index (`SCAN` of anything
 * but a constant row or `json_each`'s list of ids), or builds an index or Bloom filter by
 * reading one (`AUTOMATIC … INDEX`, `BLOOM FILTER`), unless an entry of `bounded` covers it.
 * Every table of the schema grows (users, accounts, sessions, audit_log, changes,
 * risc_events), and a plan names a table by its alias, so no table name is let through: any
 * scan fails. `used` collects the bounded entries that applied.
 */
function problems({ sql, plan }, bounded = BOUNDED_SCANS, used = new Set()) {
  const sorts = plan.some((r) => /^USE TEMP B-TREE/.test(r.detail));
  return plan.filter(({ detail }) => {
    if (detail === 'SCAN CONSTANT ROW' || /^SCAN json_each VIRTUAL TABLE\b/.test(detail)) return false;
    const scan = /^SCAN /.test(detail);
    if (!scan && !/\bAUTOMATIC\b|^BLOOM FILTER\b/.test(detail)) return false;
    const ok = scan && !sorts && bounded.find((b) => b.detail === detail && b.sql.test(sql));
    if (ok) used.add(ok);
    return !ok;
  }).map((r) => r.detail);
}

/** The plan as indented lines, for messages and the artifact. */
const planText = (plan) => {
  const depth = new Map([[0, -1]]);
  return plan.map((r) => {
    depth.set(r.id, (depth.get(r.parent) ?? -1) + 1);
    return `${'  '.repeat(depth.get(r.id))}${r.detail}`;
  }).join('\n');
};

async function explain(stack, statements) {
  const res = await request(stack, '/plans', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ statements }),
  });
  assert.equal(res.status, 200, res.describe());
  const plans = res.json();
  const failed = plans.filter((p) => p.error !== undefined);
  assert.deepEqual(failed, [], `EXPLAIN QUERY PLAN failed:\n${JSON.stringify(failed, null, 2)}`);
  return plans;
}

/** `gatehouse users statements`, building the command line first when it is missing or older. */
function cliStatements() {
  const statements = () => JSON.parse(execFileSync(CLI, ['users', 'statements'], { encoding: 'utf8' }));
  try {
    return statements();
  } catch {
    execFileSync('cargo', ['build', '-p', 'gatehouse-cli'], { cwd: ROOT, stdio: 'inherit', timeout: 20 * 60_000 });
    return statements();
  }
}

describe('the store contract on real local D1', () => {
  let stack;
  let run;
  before(async () => {
    stack = await startStack({ name: 'store-contract', main: path.join(ROOT, 'tests', 'e2e', 'contract-entry.mjs') });
    const res = await request(stack, '/run', { accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    run = res.json();
  });
  after(async () => { await stack?.stop(); });

  test('D1 passes every check the in-memory store passes', () => {
    assert.deepEqual(run.checks.map((r) => r.check), [
      'sign_in_creates_finds_and_refuses',
      'sessions_are_read_renewed_and_revoked',
      'the_email_follows_the_google_account',
      'admin_lists_search_and_pages',
      'admin_actions_apply_once_and_are_audited',
      'security_events_apply_once_by_google_account',
      'the_change_feed_names_what_changed',
      'pruning_deletes_old_rows_only_and_keeps_last_seen',
      'a_code_is_redeemed_once',
      'a_sign_in_ends_with_its_sites',
      'an_admin_ends_a_sign_in_or_one_site',
    ]);
    const failed = run.checks.filter((r) => !r.ok);
    assert.deepEqual(failed, [], JSON.stringify(failed, null, 2));
  });

  test('the suite makes every call whose SQL differs (src/store/contract/coverage.rs)', () => {
    assert.deepEqual(run.missing_shapes, [], 'so some statements were never prepared, and their plans are not checked');
  });

  test('the plan check fails on full scans, in subqueries too, and passes index lookups', async () => {
    // Each statement with the plan row it must be failed for.
    const bad = [
      ['SELECT id FROM sessions WHERE user_agent = ?1', /^SCAN sessions$/],
      ['DELETE FROM changes WHERE kind = ?1', /^SCAN changes$/],
      ['SELECT u.id FROM users u WHERE u.id = ?1 AND EXISTS (SELECT 1 FROM audit_log a WHERE a.target = u.id)', /^SCAN a$/],
      // The bounded first page's scan, but filtered: not bounded by its LIMIT.
      ['SELECT u.id FROM users u WHERE u.role = ?1 ORDER BY u.email LIMIT 50', /^SCAN u USING INDEX sqlite_autoindex_users_2$/],
      ['SELECT a.action FROM audit_log a ORDER BY a.created_at DESC LIMIT ?1', /^SCAN a USING INDEX audit_log_created_at$/],
      // An index built for the statement from a whole table.
      ['SELECT c.id FROM audit_log a JOIN changes c ON c.kind = a.action WHERE a.created_at > ?1', /AUTOMATIC|^BLOOM FILTER ON c\b/],
    ];
    const good = [
      'SELECT id FROM sessions WHERE id = ?1',
      'SELECT u.id FROM users u WHERE u.email > ?1 ORDER BY u.email LIMIT ?2',
      'UPDATE sessions SET revoked_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))',
    ];
    const plans = await explain(stack, [...bad.map(([sql]) => sql), ...good]);
    bad.forEach(([, reason], i) => {
      const p = plans[i];
      assert.ok(problems(p).some((d) => reason.test(d)), `not failed for ${reason}:\n${p.sql}\n${planText(p.plan)}`);
    });
    for (const p of plans.slice(bad.length)) {
      assert.deepEqual(problems(p), [], `failed:\n${p.sql}\n${planText(p.plan)}`);
    }
  });

  test('every statement the worker and the command line issue uses an index', async (t) => {
    const worker = run.statements;
    const cli = [...new Set(cliStatements().flatMap((c) => c.statements))];
    assert.ok(worker.length >= WORKER_STATEMENTS,
      `the contract run prepared ${worker.length} distinct statements, expected at least ${WORKER_STATEMENTS}`);
    assert.ok(cli.length >= CLI_STATEMENTS,
      `gatehouse users statements printed ${cli.length} distinct statements, expected at least ${CLI_STATEMENTS}`);
    const plans = [
      ...(await explain(stack, worker)).map((p) => ({ ...p, from: 'worker' })),
      ...(await explain(stack, cli)).map((p) => ({ ...p, from: 'cli' })),
    ];
    const used = new Set();
    const found = plans.map((p) => ({ ...p, problems: problems(p, BOUNDED_SCANS, used) }));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, 'query-plans.json'), JSON.stringify(found, null, 2));
    t.diagnostic(`${worker.length} worker and ${cli.length} command line statements explained (tests/artifacts/query-plans.json)`);
    const failing = found.filter((p) => p.problems.length > 0);
    assert.equal(failing.length, 0, failing.map((p) =>
      `${p.from}: ${p.sql}\n${planText(p.plan)}\n  → ${p.problems.join('; ')}`).join('\n\n'));
    const unused = BOUNDED_SCANS.filter((b) => !used.has(b)).map((b) => b.why);
    assert.deepEqual(unused, [], 'a bounded scan that no statement has any more: remove it');
  });

  test('the hot path\'s Ed25519 check (WebCrypto) accepts exactly the signatures the pure-Rust one accepts', async () => {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const other = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: 'ed-a', alg: 'EdDSA', use: 'sig' };
    const stranger = { ...(await exportJWK(other.publicKey)), kid: 'ed-b' };
    const keys = { keys: [jwk, stranger] };
    assert.ok((await exportJWK(publicKey)).x === jwk.x);
    const sign = (claims, key = privateKey, kid = 'ed-a') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' }).sign(key);
    const good = await sign({ sub: 'u1', role: 'user' });
    const good2 = await sign({ sub: 'u2', role: 'user', name: 'é'.repeat(40) });
    const [h, p, sig] = good.split('.');
    const [, p2] = (await sign({ sub: 'u1', role: 'admin' })).split('.');
    const flip = Buffer.from(sig, 'base64url');
    flip[10] ^= 1;
    const cases = {
      good,
      good2,
      'payload changed': `${h}.${p2}.${sig}`,
      'one bit of the signature': `${h}.${p}.${flip.toString('base64url')}`,
      'zero signature': `${h}.${p}.${Buffer.alloc(64).toString('base64url')}`,
      'signed by another key, named as ed-b': await sign({ sub: 'u1' }, privateKey, 'ed-b'),
      'ed-b\'s own key': await sign({ sub: 'u3' }, other.privateKey, 'ed-b'),
    };
    const res = await request(stack, '/ed25519', {
      method: 'POST', body: JSON.stringify({ keys, tokens: Object.values(cases) }), headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 200, res.describe());
    const got = Object.fromEntries(Object.keys(cases).map((name, i) => [name, res.json()[i]]));
    const expected = {
      good: true,
      good2: true,
      'payload changed': false,
      'one bit of the signature': false,
      'zero signature': false,
      'signed by another key, named as ed-b': false,
      'ed-b\'s own key': true,
    };
    for (const [name, verified] of Object.entries(expected)) {
      assert.deepEqual(got[name], { webcrypto: verified, native: verified }, name);
    }
  });
});
