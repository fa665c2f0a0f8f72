// The hot path in js/entry.mjs, through wrangler dev: what admitted responses tell caches (with
// and without the site's own `_headers`), and the memory of admitted verdicts, which must never
// admit what gateCheck would not: another path, a lapsed token, a disabled user after the
// interval, a request carrying identity headers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, SESSION_COOKIE, clearsCookie, findSetCookie, request, signIn, sleep, sqlString, startStack, uniqueEmail,
} from './harness.mjs';

const INTERVAL = 6; // seconds a token is current
const pastInterval = () => sleep((INTERVAL + 0.8) * 1000);
const VARS = { SESSION_CHECK_INTERVAL: String(INTERVAL), ROLE_PATHS: '/admin/*=admin' };
const html = { accept: 'text/html' };

/** Cache-Control and Vary as a list of lower-case directives / field names. */
const list = (v) => (v ?? '').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);

function assertPrivate(res) {
  const cc = list(res.headers.get('cache-control'));
  assert.ok(cc.includes('private'), `Cache-Control private: ${res.describe()}`);
  assert.ok(!cc.includes('public') && !cc.some((d) => d.startsWith('s-maxage')), `nothing for shared caches: ${res.describe()}`);
  const vary = list(res.headers.get('vary'));
  assert.equal(vary.filter((f) => f === 'cookie').length, 1, `Vary names Cookie once: ${res.describe()}`);
}

describe('the demo site, whose public/_headers marks its pages private itself', () => {
  let stack;
  before(async () => { stack = await startStack({ name: 'hotpath', vars: VARS }); });
  after(async () => { await stack?.stop(); });

  test('an admitted page is private and varies on Cookie, the first time and when remembered', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('private') });
    const page = fs.readFileSync(path.join(ROOT, 'public/docs/index.html'), 'utf8');
    for (let i = 0; i < 3; i++) {
      const res = await request(stack, '/docs/', { cookie: sessionCookie, ...html });
      assert.equal(res.status, 200, res.describe());
      assert.equal(res.body, page);
      assertPrivate(res);
      assert.equal(res.headers.get('cache-control'), 'private', 'the site\'s own value, untouched');
      assert.equal(res.headers.get('vary'), 'Cookie');
    }
  });

  test('the _headers file itself is never served', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('headers') });
    const res = await request(stack, '/_headers', { cookie: sessionCookie, ...html });
    assert.equal(res.status, 404, res.describe());
    assert.ok(!res.body.includes('Cache-Control'), res.describe());
  });

  test('a remembered verdict is for that path only: a role path is still refused', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('rolepath') });
    for (const p of ['/docs/', '/docs/', '/docs/?next=/admin/']) {
      assert.equal((await request(stack, p, { cookie: sessionCookie, ...html })).status, 200, p);
    }
    for (const p of ['/admin/', '/admin/?x=/docs/', '/docs/../admin/', '/%61dmin/']) {
      const res = await request(stack, p, { cookie: sessionCookie, ...html });
      assert.equal(res.status, 403, `${p}: ${res.describe()}`);
    }
  });

  test('identity headers sent with a remembered cookie take the full route and are refused or stripped', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('xauth') });
    assert.equal((await request(stack, '/docs/', { cookie: sessionCookie, ...html })).status, 200);
    const forged = { 'x-auth-role': 'admin', 'x-auth-email': 'boss@example.com' };
    const res = await request(stack, '/admin/', { cookie: sessionCookie, headers: forged, ...html });
    assert.equal(res.status, 403, res.describe());
  });

  test('a remembered verdict lapses with the token: a disabled user is out after the interval', async () => {
    const email = uniqueEmail('lapse');
    const { sessionCookie } = await signIn(stack, { email });
    for (let i = 0; i < 3; i++) {
      assert.equal((await request(stack, '/docs/', { cookie: sessionCookie, ...html })).status, 200);
    }
    await stack.d1(`UPDATE users SET disabled_at = unixepoch() WHERE email = ${sqlString(email)}`);
    await pastInterval();
    const res = await request(stack, '/docs/', { cookie: sessionCookie, ...html });
    assert.equal(res.status, 302, res.describe());
    assert.equal(res.location.pathname, '/auth/login');
    assert.ok(clearsCookie(findSetCookie(res, SESSION_COOKIE)), 'the ended session cookie is cleared');
  });
});

describe('a site without _headers: Gatehouse marks admitted responses private itself', () => {
  let stack;
  let dir;
  before(async () => {
    // public/ as it is, minus _headers: the static assets answer with Cloudflare's default
    // Cache-Control, which a shared cache may store.
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gatehouse-assets-'));
    await fsp.cp(path.join(ROOT, 'public'), dir, { recursive: true });
    await fsp.rm(path.join(dir, '_headers'));
    stack = await startStack({ name: 'hotpath-plain', vars: VARS, assets: dir });
  });
  after(async () => {
    await stack?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test('a public page keeps the site\'s own caching (nothing to protect)', async () => {
    const res = await request(stack, '/public/', html);
    assert.equal(res.status, 200, res.describe());
    assert.ok(!list(res.headers.get('cache-control')).includes('private'), res.describe());
  });

  test('an admitted page is made private and varies on Cookie, the first time and when remembered', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('plain') });
    for (let i = 0; i < 3; i++) {
      const res = await request(stack, '/docs/', { cookie: sessionCookie, ...html });
      assert.equal(res.status, 200, res.describe());
      assert.match(res.body, /<html/i);
      assertPrivate(res);
    }
    const missing = await request(stack, '/docs/no-such-page', { cookie: sessionCookie, ...html });
    assert.equal(missing.status, 404, missing.describe());
    assertPrivate(missing);
  });
});
