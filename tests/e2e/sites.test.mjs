// Several sites behind one Gatehouse (SITES, docs/sites.md), under wrangler dev with local D1:
// http://127.0.0.1:PORT (the auth origin, AUTH_URL) and http://localhost:PORT are two origins,
// with two cookie jars, served by the same worker; http://127.0.0.2:PORT is a third, reached
// through its Host header. One sign-in at the auth origin; the other sites get their own
// sessions by one-time codes, with no second trip to the provider.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  SESSION_COOKIE, clearsCookie, decodeJwt, eventually, findSetCookie, idpStats,
  parseSetCookie, rawRequest, request, startStack, subFor, uniqueEmail, waitForLog,
} from './harness.mjs';

const HANDOFF_COOKIE = 'gatehouse_handoff';
const INTERVAL = 3;

/**
 * A request for a third site, `http://127.0.0.2:PORT`: sent to wrangler dev's 127.0.0.1 listener
 * with that `Host` (workerd takes the request's URL from it, as a custom domain would), since
 * only 127.0.0.1 is listened on. Answers in `request`'s shape.
 */
async function viaHost(stack, url, { cookie, accept = 'text/html' } = {}) {
  const target = new URL(url);
  const headers = { host: target.host, accept };
  if (cookie) headers.cookie = cookie;
  const res = await rawRequest(stack, target.pathname + target.search, { headers });
  const setCookies = [res.headers['set-cookie'] ?? []].flat();
  return {
    status: res.status,
    body: res.body,
    setCookies,
    location: res.headers.location ? new URL(res.headers.location, target) : null,
    url: target,
    describe() { return `GET ${target} → ${res.status}\n${JSON.stringify(res.headers)}\n\n${res.body.slice(0, 2000)}`; },
  };
}

/** A browser's cookies, one jar per origin (host-only cookies, as `__Host-` ones are). */
class Browser {
  constructor(stack) { this.stack = stack; this.jars = new Map(); }
  jar(origin) {
    if (!this.jars.has(origin)) this.jars.set(origin, new Map());
    return this.jars.get(origin);
  }
  header(origin) {
    const pairs = [...this.jar(origin)].map(([k, v]) => `${k}=${v}`);
    return pairs.length ? pairs.join('; ') : undefined;
  }
  take(origin, setCookies) {
    for (const raw of setCookies) {
      const c = parseSetCookie(raw);
      if (clearsCookie(c)) this.jar(origin).delete(c.name);
      else this.jar(origin).set(c.name, c.value);
    }
  }
  get(origin, name) { return this.jar(origin).get(name); }
  /** One request from this browser (no redirect followed). */
  async send(url, options = {}) {
    const target = new URL(url);
    const res = target.hostname === '127.0.0.2'
      ? await viaHost(this.stack, url, { cookie: this.header(target.origin) })
      : await request(target.origin, target.pathname + target.search, {
        accept: 'text/html', cookie: this.header(target.origin), ...options,
      });
    this.take(target.origin, res.setCookies);
    return res;
  }
  /**
   * Follows redirects as a browser does, from `url`; at the provider's authorization endpoint,
   * approves as `email`. Returns { res, hops } (every URL visited).
   */
  async follow(url, { email, idp } = {}) {
    const hops = [];
    let next = new URL(url);
    for (let i = 0; i < 12; i++) {
      if (idp && next.href.startsWith(`${idp}/o/oauth2/v2/auth`)) {
        next.searchParams.set('test_email', email);
        next.searchParams.set('test_sub', subFor(email));
      }
      hops.push(next.href);
      const res = await this.send(next.href);
      if (res.status < 300 || res.status >= 400 || !res.location) return { res, hops };
      next = res.location;
    }
    throw new Error(`too many redirects: ${hops.join(' → ')}`);
  }
}

describe('one sign-in for several sites', () => {
  let stack;
  let A; // the auth origin, a site too
  let B; // the second site
  let C; // a third site, reached through its Host header (viaHost)
  before(async () => {
    stack = await startStack({
      name: 'sites',
      vars: ({ port }) => ({
        SITES: `http://127.0.0.1:${port}, http://localhost:${port}, http://127.0.0.2:${port}`,
        AUTH_URL: `http://127.0.0.1:${port}`,
        SESSION_CHECK_INTERVAL: String(INTERVAL),
        PUBLIC_PATHS: `/public/*, http://localhost:${port}/open/*`,
        ROLE_PATHS: `http://localhost:${port}/docs/*=staff`,
      }),
    });
    A = stack.base;
    B = stack.base.replace('127.0.0.1', 'localhost');
    C = stack.base.replace('127.0.0.1', '127.0.0.2');
    // The second origin reaches the same worker, as its own site.
    const probe = await request(B, '/auth/session');
    assert.equal(probe.status, 200, probe.describe());
  });
  after(async () => { await stack?.stop(); });

  /** A browser signed in at the auth origin as `email` (one provider authorization). */
  async function signedInAtA(email) {
    const browser = new Browser(stack);
    const { res } = await browser.follow(`${A}/auth/login/google?callbackUrl=%2F`, { email, idp: stack.idp });
    assert.equal(res.url.origin, A, res.describe());
    assert.ok(browser.get(A, SESSION_COOKIE), 'signed in at the auth origin');
    return browser;
  }

  test('signed in once, a person opens the second site without seeing the provider again', async () => {
    const email = uniqueEmail('once');
    const before = await idpStats(stack);
    const browser = await signedInAtA(email);
    const afterSignIn = await idpStats(stack);
    assert.equal(afterSignIn.authorization_requests - before.authorization_requests, 1);

    // The protected page on B, through B's sign-in, the auth origin's hand-off and B's callback.
    const viaB = await browser.follow(`${B}/`);
    assert.equal(viaB.res.status, 200, viaB.res.describe());
    const paths = viaB.hops.map((h) => { const u = new URL(h); return `${u.origin === A ? 'A' : 'B'}${u.pathname}`; });
    assert.deepEqual(paths, ['B/', 'B/auth/login', 'A/auth/handoff', 'B/auth/handoff/callback', 'B/'], viaB.hops.join('\n'));
    assert.equal(
      (await idpStats(stack)).authorization_requests, afterSignIn.authorization_requests,
      'no second authorization at the provider',
    );

    // B's own session: its cookie, its audience, a row of its own for its site.
    const token = browser.get(B, SESSION_COOKIE);
    assert.ok(token);
    assert.notEqual(token, browser.get(A, SESSION_COOKIE));
    const claims = decodeJwt(token).payload;
    assert.equal(claims.aud, B);
    assert.equal(claims.iss, B);
    const sessionB = (await browser.send(`${B}/auth/session`, { accept: 'application/json' })).json();
    assert.equal(sessionB.user.email, email);
    const rows = await stack.d1(`SELECT site, parent_id FROM sessions WHERE id = '${claims.sid}'`);
    assert.equal(rows[0].site, B);
    assert.equal(rows[0].parent_id, decodeJwt(browser.get(A, SESSION_COOKIE)).payload.sid);
    // The hand-off state cookie on B is spent.
    assert.equal(browser.get(B, HANDOFF_COOKIE), undefined);
  });

  test('a visitor who starts on the second site signs in at the auth origin and comes back', async () => {
    const email = uniqueEmail('starts-on-b');
    const browser = new Browser(stack);
    const before = (await idpStats(stack)).authorization_requests;
    const { res, hops } = await browser.follow(`${B}/?from=b`);
    // Not signed in anywhere: the auth origin's sign-in page.
    assert.equal(res.status, 200);
    assert.equal(res.url.origin, A);
    assert.equal(res.url.pathname, '/auth/login');
    assert.match(res.url.searchParams.get('callbackUrl'), /^\/auth\/handoff\?site=/);
    assert.equal(hops.length, 4, hops.join('\n'));
    // "Continue with Google" on that page, then the provider, then back to B's page.
    assert.match(res.body, /Continue with Google/);
    const start = `${A}/auth/login/google?callbackUrl=${encodeURIComponent(res.url.searchParams.get('callbackUrl'))}`;
    const { res: landed } = await browser.follow(start, { email, idp: stack.idp });
    assert.equal(landed.status, 200, landed.describe());
    assert.equal(landed.url.href, `${B}/?from=b`);
    assert.equal((await idpStats(stack)).authorization_requests - before, 1);
  });

  /** A browser signed in at A that left B for the auth origin; returns the code URL for B. */
  async function codeFor(browser) {
    const out = await browser.send(`${B}/auth/login?callbackUrl=%2F`);
    assert.equal(out.status, 302);
    assert.equal(out.location.origin, A);
    assert.ok(browser.get(B, HANDOFF_COOKIE), 'B set its state cookie before the redirect');
    const back = await browser.send(out.location.href);
    assert.equal(back.status, 302, back.describe());
    assert.equal(back.location.origin, B);
    assert.equal(back.location.pathname, '/auth/handoff/callback');
    return back.location.href;
  }

  async function assertRefused(res, reason, from) {
    assert.equal(res.status, 302, res.describe());
    assert.match(res.location.href, /\/auth\/error\?error=Verification/);
    assert.ok(!findSetCookie(res, SESSION_COOKIE)?.value, 'no session');
    await waitForLog(stack, (l) => l.event === 'handoff_refused' && l.reason?.includes(reason), { from, what: `handoff_refused: ${reason}` });
  }

  test('a code is refused when replayed, without the state cookie, with another browser\'s state, or expired', async () => {
    const browser = await signedInAtA(uniqueEmail('codes'));
    const from = stack.logs().length;

    const code = await codeFor(browser);
    const state = browser.get(B, HANDOFF_COOKIE);
    const first = await browser.send(code);
    assert.equal(first.status, 302);
    assert.ok(findSetCookie(first, SESSION_COOKIE)?.value, 'the first use signs in');
    // Replayed, with the same state cookie put back.
    const replay = await request(B, new URL(code).pathname + new URL(code).search, { accept: 'text/html', cookie: `${HANDOFF_COOKIE}=${state}` });
    await assertRefused(replay, 'already used', from);

    // Without B's state cookie (another browser, or none).
    const bare = await codeFor(browser);
    await assertRefused(await request(B, new URL(bare).pathname + new URL(bare).search, { accept: 'text/html' }), 'state cookie', from);

    // Login CSRF: the attacker's code in the victim's browser, which holds its own state.
    const attacker = await signedInAtA(uniqueEmail('attacker'));
    const attackersCode = await codeFor(attacker);
    const victim = new Browser(stack);
    await victim.send(`${B}/auth/login?callbackUrl=%2F`);
    assert.ok(victim.get(B, HANDOFF_COOKIE));
    const planted = await victim.send(attackersCode);
    await assertRefused(planted, 'another browser', from);
    assert.equal(victim.get(B, SESSION_COOKIE), undefined);

    // Expired: the code row's end moved to the past, as 60 s of waiting would.
    const late = await codeFor(browser);
    await stack.d1('UPDATE handoff_codes SET expires_at = unixepoch() - 1 WHERE used_at IS NULL');
    await assertRefused(await browser.send(late), 'expired', from);

    // Malformed input never reaches D1 as anything but a refusal.
    await browser.send(`${B}/auth/login?callbackUrl=%2F`);
    await assertRefused(await browser.send(`${B}/auth/handoff/callback?code=%27%3B--`), 'malformed', from);

    // Only hashes are stored.
    const raw = new URL(code).searchParams.get('code');
    const stored = (await stack.d1('SELECT code_hash FROM handoff_codes')).map((r) => r.code_hash);
    assert.ok(stored.includes(createHash('sha256').update(raw).digest('base64url')), 'its hash is');
    assert.ok(!stored.includes(raw), 'the code itself is not stored');
  });

  test('a code for another site is refused, and the auth origin hands off only to listed sites', async () => {
    const browser = await signedInAtA(uniqueEmail('other-site'));
    const from = stack.logs().length;
    // A code made for B, taken to C with C's own valid state cookie: refused, and spent.
    const forB = new URL(await codeFor(browser));
    const leaveC = await browser.send(`${C}/auth/login?callbackUrl=%2F`);
    assert.equal(leaveC.status, 302, leaveC.describe());
    assert.equal(leaveC.location.searchParams.get('site'), C);
    assert.ok(browser.get(C, HANDOFF_COOKIE), 'C set its own state cookie');
    await assertRefused(await browser.send(`${C}${forB.pathname}${forB.search}`), 'another site', from);
    await assertRefused(await browser.send(forB.href), 'already used', from);
    // (The refusal spent C's state too.) A hand-off of C's own works on C.
    assert.equal(browser.get(C, HANDOFF_COOKIE), undefined);
    const onC = await browser.follow(`${C}/`);
    assert.equal(onC.res.status, 200, onC.res.describe());
    assert.equal(onC.res.url.origin, C);
    assert.equal(decodeJwt(browser.get(C, SESSION_COOKIE)).payload.aud, C);
    // The auth origin is itself a site: it never hands off to itself, nor to an unlisted origin.
    const state = 'a'.repeat(43);
    for (const site of [A, 'http://evil.test:1', 'https://localhost']) {
      const r = await browser.send(`${A}/auth/handoff?site=${encodeURIComponent(site)}&state=${state}`);
      assert.equal(r.status, 400, `${site}: ${r.describe()}`);
    }
    // A code made for B, taken to the auth origin's own callback path: refused there.
    const code = new URL(await codeFor(browser));
    const elsewhere = await browser.send(`${A}${code.pathname}${code.search}`);
    await assertRefused(elsewhere, 'state cookie', from);
  });

  test('a token of one site is refused on the other, by cookie and by Bearer; an unlisted origin is refused', async () => {
    const browser = await signedInAtA(uniqueEmail('isolation'));
    const tokenA = browser.get(A, SESSION_COOKIE);
    const asCookie = await request(B, '/', { accept: 'text/html', cookie: `${SESSION_COOKIE}=${tokenA}` });
    assert.equal(asCookie.status, 302, 'not admitted on B');
    assert.equal(asCookie.location.pathname, '/auth/login');
    const asBearer = await request(B, '/', { headers: { authorization: `Bearer ${tokenA}` } });
    assert.equal(asBearer.status, 401);
    const session = await request(B, '/auth/session', { cookie: `${SESSION_COOKIE}=${tokenA}` });
    assert.equal(session.body, 'null');
    // The same token is fine where it belongs.
    assert.equal((await request(A, '/', { cookie: `${SESSION_COOKIE}=${tokenA}` })).status, 200);
    // Another Host for the same worker: refused before any rule, public paths included.
    for (const path of ['/public/', '/', '/auth/session']) {
      const r = await rawRequest(stack, path, { headers: { host: `evil.test:${new URL(A).port}`, cookie: `${SESSION_COOKIE}=${tokenA}` } });
      assert.equal(r.status, 421, `${path}: ${r.status} ${r.body}`);
    }
  });

  test('each site keeps its own public and role paths', async () => {
    assert.equal((await request(B, '/open/anything')).status, 404, 'public on B (no such file)');
    assert.equal((await request(A, '/open/anything', { accept: 'text/html' })).status, 302, 'not public on A');
    const browser = await signedInAtA(uniqueEmail('roles'));
    await browser.follow(`${B}/`);
    assert.ok(browser.get(B, SESSION_COOKIE));
    // /docs/* needs the staff role on B only.
    assert.equal((await browser.send(`${B}/docs/`)).status, 403);
    assert.equal((await browser.send(`${A}/docs/`)).status, 200);
  });

  test('signing out on the second site ends the sign-in at the auth origin within the interval', async () => {
    const browser = await signedInAtA(uniqueEmail('sign-out'));
    await browser.follow(`${B}/`);
    const tokenB = browser.get(B, SESSION_COOKIE);
    assert.ok(tokenB);
    const csrf = (await browser.send(`${B}/auth/csrf`, { accept: 'application/json' })).json().csrfToken;
    const out = await browser.send(`${B}/auth/logout`, {
      method: 'POST',
      headers: { origin: B, 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrfToken=${encodeURIComponent(csrf)}`,
    });
    assert.equal(out.status, 303, out.describe());
    assert.equal(browser.get(B, SESSION_COOKIE), undefined, 'B\'s cookie is gone at once');
    // A's token is still unexpired for a moment; within the interval it stops being renewed.
    await eventually(async () => {
      const r = await browser.send(`${A}/`);
      return r.status === 302 && r.location.pathname === '/auth/login';
    }, 'the auth origin\'s session ended', { timeoutMs: (INTERVAL + 3) * 1000, everyMs: 250 });
    // And the second site cannot get a new code from it.
    const again = await browser.follow(`${B}/`);
    assert.equal(again.res.url.origin, A);
    assert.equal(again.res.url.pathname, '/auth/login');
  });
});
