// js/verdicts.mjs: the hot path's memory of admitted verdicts. Plain Node, no runtime needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_ENTRIES, MAX_KEY_LENGTH, memo, Verdicts } from '../../js/verdicts.mjs';

const env = { SESSION_KEYS: 'k' };
const URL_A = 'https://site.test/docs/';
const COOKIE = 'theme=dark; __Host-gatehouse_session=a.b.c';
const T = 1_800_000_000; // Unix seconds

test('an admitted verdict holds until the second gateCheck named, not a millisecond longer', () => {
  const v = new Verdicts();
  const key = Verdicts.key(URL_A, COOKIE);
  assert.equal(v.admitted(env, key, T * 1000), false, 'nothing remembered yet');
  v.remember(env, key, T + 300);
  assert.equal(v.admitted(env, key, T * 1000), true);
  assert.equal(v.admitted(env, key, (T + 300) * 1000 - 1), true);
  assert.equal(v.admitted(env, key, (T + 300) * 1000), false, 'lapsed at until');
  assert.equal(v.size, 0, 'a lapsed entry is dropped');
  assert.equal(v.admitted(env, key, T * 1000), false, 'and stays gone');
});

test('the key is the exact URL and Cookie header: any other path, query or cookie is not admitted', () => {
  const v = new Verdicts();
  v.remember(env, Verdicts.key(URL_A, COOKIE), T + 300);
  const now = T * 1000;
  for (const [url, cookie] of [
    ['https://site.test/admin/', COOKIE],
    ['https://site.test/docs/?x=1', COOKIE],
    ['https://site.test/docs', COOKIE],
    ['https://other.test/docs/', COOKIE],
    ['http://site.test/docs/', COOKIE],
    [URL_A, '__Host-gatehouse_session=a.b.c'],
    [URL_A, COOKIE + 'x'],
    [URL_A, COOKIE.toUpperCase()],
    [URL_A + '\n' + COOKIE, ''],
  ]) {
    assert.equal(v.admitted(env, Verdicts.key(url, cookie), now), false, `${url} | ${cookie}`);
  }
  assert.equal(v.admitted(env, Verdicts.key(URL_A, COOKIE), now), true);
});

test('another env (configuration) forgets everything', () => {
  const v = new Verdicts();
  const key = Verdicts.key(URL_A, COOKIE);
  v.remember(env, key, T + 300);
  const other = { SESSION_KEYS: 'k2' };
  assert.equal(v.admitted(other, key, T * 1000), false);
  v.remember(other, Verdicts.key(URL_A, 'x=1'), T + 300);
  assert.equal(v.size, 1, 'the first env\'s entries are gone');
  assert.equal(v.admitted(env, key, T * 1000), false);
});

test('bounded: the least recently used go first, and long requests are never remembered', () => {
  const v = new Verdicts(4); // two generations of 2
  const now = T * 1000;
  const keys = [0, 1, 2, 3, 4, 5].map((i) => Verdicts.key(`${URL_A}${i}`, COOKIE));
  for (const k of keys.slice(0, 4)) v.remember(env, k, T + 300);
  assert.equal(v.size, 4);
  // keys 0 and 1 are in the old generation; using key 0 brings it back into the young one.
  assert.equal(v.admitted(env, keys[0], now), true);
  v.remember(env, keys[4], T + 300);
  v.remember(env, keys[5], T + 300);
  assert.ok(v.size <= 4, `size ${v.size}`);
  // Kept: key 0 (in use), 4 and 5 (newest); dropped: 1, 2, 3 (not used since two rotations).
  assert.deepEqual(keys.map((k) => v.admitted(env, k, now)), [true, false, false, false, true, true]);
  // Re-remembering a present key adds nothing.
  const before = v.size;
  v.remember(env, keys[5], T + 600);
  assert.equal(v.size, before);
  const full = new Verdicts();
  for (let i = 0; i <= 3 * MAX_ENTRIES; i++) full.remember(env, Verdicts.key(`${URL_A}${i}`, COOKIE), T + 300);
  assert.ok(full.size <= MAX_ENTRIES, 'the default bound');
  assert.ok(full.size >= MAX_ENTRIES / 2);
  assert.equal(Verdicts.key(URL_A, 'c='.padEnd(MAX_KEY_LENGTH, 'x')), null);
  assert.notEqual(Verdicts.key(URL_A, 'c=x'), null);
});

test('memo: same answer as the function, computed once per value, bounded', () => {
  let calls = 0;
  const f = memo((x) => {
    calls++;
    return `private${x === undefined ? '' : ', ' + x}`;
  }, 2);
  assert.equal(f(undefined), 'private');
  assert.equal(f(undefined), 'private');
  assert.equal(f('max-age=60'), 'private, max-age=60');
  assert.equal(calls, 2);
  assert.equal(f('no-store'), 'private, no-store'); // third value: the memo starts over
  assert.equal(f('max-age=60'), 'private, max-age=60');
  assert.equal(calls, 4);
});
