// One store contract (src/store/contract.rs) for the in-memory store the native tests use and
// for real D1: here the same suite runs inside workerd against freshly migrated local D1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, request, startStack } from './harness.mjs';

describe('the store contract on real local D1', () => {
  let stack;
  before(async () => {
    stack = await startStack({ name: 'store-contract', main: path.join(ROOT, 'tests', 'e2e', 'contract-entry.mjs') });
  });
  after(async () => { await stack?.stop(); });

  test('D1 passes every check the in-memory store passes', async () => {
    const res = await request(stack, '/run', { accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    const results = res.json();
    assert.deepEqual(results.map((r) => r.check), [
      'sign_in_creates_finds_and_refuses',
      'sessions_are_read_renewed_and_revoked',
      'the_email_follows_the_google_account',
      'admin_lists_search_and_pages',
      'admin_actions_apply_once_and_are_audited',
      'security_events_apply_once_by_google_account',
      'the_change_feed_names_what_changed',
      'pruning_deletes_old_rows_only_and_keeps_last_seen',
    ]);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, [], JSON.stringify(failed, null, 2));
  });
});
