// Issue 13: the origin gets exactly what the gate decided. Redirects of the upstream to itself
// come back to the public origin however they are spelled; the site's other cookies reach it byte
// for byte, UTF-8 included, and such a cookie hides the session from no route; protected
// responses lose the CDN caching headers that would let a shared cache keep them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, SESSION_COOKIE, clearsCookie, cookieValue, decodeJwt, findSetCookie, request,
  sessionCookieFrom, signIn, sleep, sqlString, startStack, uniqueEmail,
} from './harness.mjs';

const INTERVAL = 3; // seconds a session token is current
const pastInterval = () => sleep((INTERVAL + 0.8) * 1000);
const html = { accept: 'text/html' };
const CDN_HEADERS = ['cdn-cache-control', 'cloudflare-cdn-cache-control', 'surrogate-control'];
// Other sites' cookies as browsers send them: percent signs, `=` padding, quotes, UTF-8.
const ENCODED = 'sid=s%3Aabc; tok=YWJj==; q="a b"; n=%E2%82%AC';
const UTF8 = 'pref=café; 名=値';

/**
 * An origin that echoes what it received (the Cookie header as its raw bytes, in base64) and
 * answers `?loc=` with a 302 to that Location (`UPSTREAM` replaced by its own host:port) and
 * `?cdn=1` with CDN caching headers.
 */
function startOrigin() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://origin.invalid');
    const loc = url.searchParams.get('loc');
    if (loc !== null) {
      res.writeHead(302, { location: loc.replaceAll('UPSTREAM', `127.0.0.1:${server.address().port}`) });
      res.end();
      return;
    }
    const headers = { 'content-type': 'application/json' };
    if (url.searchParams.get('cdn')) {
      Object.assign(headers, {
        'cache-control': 'public, max-age=600',
        'cdn-cache-control': 'max-age=86400',
        'cloudflare-cdn-cache-control': 'max-age=86400',
        'surrogate-control': 'max-age=86400',
      });
    }
    res.writeHead(200, headers);
    // Node reads header bytes as latin1: back to the bytes that came over the wire.
    const cookie = req.headers.cookie === undefined ? null : Buffer.from(req.headers.cookie, 'latin1').toString('base64');
    res.end(JSON.stringify({ url: req.url, cookie, email: req.headers['x-auth-email'] ?? null }));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}`, host: `127.0.0.1:${server.address().port}` }));
  });
}

/**
 * A request whose header values go on the wire as the UTF-8 bytes of the strings given (fetch
 * refuses anything beyond Latin-1; Node writes header strings as latin1, so each UTF-8 byte is
 * handed over as one latin1 character).
 */
function utf8Request(stack, rawPath, { method = 'GET', headers = {}, body } = {}) {
  const { hostname, port } = new URL(stack.base);
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k] = Buffer.from(v, 'utf8').toString('latin1');
  if (body !== undefined) h['content-length'] = String(Buffer.byteLength(body));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path: rawPath, headers: h, timeout: 30_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const setCookies = [].concat(res.headers['set-cookie'] ?? []);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: text,
          setCookies,
          json: () => JSON.parse(text),
          describe: () => `${method} ${rawPath} → ${res.statusCode}\n${JSON.stringify(res.headers)}\n\n${text.slice(0, 1500)}`,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const fromBase64 = (b64) => (b64 === null ? null : Buffer.from(b64, 'base64'));

describe('UPSTREAM_URL mode', () => {
  let stack;
  let up;
  let session;
  const email = uniqueEmail('origin-up');

  before(async () => {
    up = await startOrigin();
    stack = await startStack({ name: 'origin-upstream', vars: { UPSTREAM_URL: up.origin, SESSION_CHECK_INTERVAL: String(INTERVAL) } });
    const r = await signIn(stack, { email, callbackUrl: '/' });
    assert.ok(r.sessionCookie, r.response.describe());
    session = r.sessionCookie;
  });
  after(async () => {
    await stack?.stop();
    await new Promise((r) => (up ? up.server.close(r) : r()));
  });

  // Item 4.
  test('a redirect to the upstream\'s host is rewritten to the public origin however it is spelled', async () => {
    const cases = [
      ['http://UPSTREAM/app/a?x=1#f', `${stack.base}/app/a?x=1#f`],
      ['HTTP://UPSTREAM/app/b', `${stack.base}/app/b`],
      ['https://UPSTREAM/app/c?y', `${stack.base}/app/c?y`], // the other scheme, same port
      ['//UPSTREAM/app/d', `${stack.base}/app/d`],
      ['/\\UPSTREAM/app/e#g', `${stack.base}/app/e#g`],
      ['\\\\UPSTREAM/app/f', `${stack.base}/app/f`],
      // Relative references already lead to the public site; other hosts are not ours to change.
      ['/app/rel?z=1', '/app/rel?z=1'],
      ['rel', 'rel'],
      ['https://elsewhere.test/x', 'https://elsewhere.test/x'],
      ['//elsewhere.test/x', '//elsewhere.test/x'],
      ['http://127.0.0.1/app/', 'http://127.0.0.1/app/'], // the upstream's host, another port
    ];
    const wrong = [];
    for (const [loc, want] of cases) {
      const res = await request(stack, `/app/?loc=${encodeURIComponent(loc)}`, { cookie: session, ...html });
      assert.equal(res.status, 302, res.describe());
      if (res.rawLocation !== want) wrong.push(`${loc} → ${res.rawLocation} (want ${want})`);
    }
    assert.deepEqual(wrong, []);
  });

  // Item 5.
  test('other cookies reach the origin byte for byte, in order, without ours', async () => {
    const res = await request(stack, '/app/', { cookie: `${ENCODED}; ${session}; last=1`, ...html });
    assert.equal(res.status, 200, res.describe());
    const seen = res.json();
    assert.equal(seen.email, email);
    assert.equal(fromBase64(seen.cookie).toString('latin1'), `${ENCODED}; last=1`);
  });

  // Items 5 and 6.
  test('a UTF-8 cookie reaches the origin as the same bytes, and the session still counts', async () => {
    const res = await utf8Request(stack, '/app/', { headers: { cookie: `${UTF8}; ${session}; ${ENCODED}`, ...html } });
    assert.equal(res.status, 200, res.describe());
    const seen = res.json();
    assert.equal(seen.email, email);
    assert.deepEqual(fromBase64(seen.cookie), Buffer.from(`${UTF8}; ${ENCODED}`, 'utf8'));
  });

  test('nothing but our cookies: no Cookie header at the origin', async () => {
    const seen = (await request(stack, '/app/', { cookie: session, ...html })).json();
    assert.equal(seen.cookie, null);
  });

  // Item 7.
  test('a protected response loses the CDN caching headers; a public one keeps them', async () => {
    const res = await request(stack, '/app/?cdn=1', { cookie: session, ...html });
    assert.equal(res.status, 200, res.describe());
    for (const name of CDN_HEADERS) assert.equal(res.headers.get(name), null, `${name}: ${res.describe()}`);
    assert.match(res.headers.get('cache-control') ?? '', /^private\b/, res.describe());
    const pub = await request(stack, '/public/?cdn=1', html);
    assert.equal(pub.status, 200, pub.describe());
    for (const name of CDN_HEADERS) assert.equal(pub.headers.get(name), 'max-age=86400', `${name} on a public path: ${pub.describe()}`);
  });
});

describe('ASSETS mode, with a _headers file that sets CDN caching headers', () => {
  let stack;
  let dir;

  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gatehouse-origin-assets-'));
    await fsp.cp(path.join(ROOT, 'public'), dir, { recursive: true });
    await fsp.writeFile(path.join(dir, '_headers'), [
      '/*',
      '  Cache-Control: private',
      '  Vary: Cookie',
      '  CDN-Cache-Control: max-age=86400',
      '  Cloudflare-CDN-Cache-Control: max-age=86400',
      '  Surrogate-Control: max-age=86400',
      '',
    ].join('\n'));
    stack = await startStack({ name: 'origin-assets', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL) }, assets: dir });
  });
  after(async () => {
    await stack?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  const assertNoCdnHeaders = (res) => {
    for (const name of CDN_HEADERS) {
      const value = res.headers instanceof Headers ? res.headers.get(name) : res.headers[name];
      assert.ok(value === null || value === undefined, `${name}: ${res.describe()}`);
    }
  };

  // Item 7.
  test('an admitted page loses the CDN caching headers on the hot path, remembered or not', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('cdn') });
    for (let i = 0; i < 3; i++) {
      const res = await request(stack, '/docs/', { cookie: sessionCookie, ...html });
      assert.equal(res.status, 200, res.describe());
      assertNoCdnHeaders(res);
      assert.equal(res.headers.get('cache-control'), 'private');
      assert.equal(res.headers.get('vary'), 'Cookie');
    }
    // The site's headers are in effect: a public page (nothing to protect) keeps them.
    const pub = await request(stack, '/public/', html);
    assert.equal(pub.status, 200, pub.describe());
    for (const name of CDN_HEADERS) assert.equal(pub.headers.get(name), 'max-age=86400', `${name}: ${pub.describe()}`);
  });

  // Items 6 and 7: the full route (renewal) forwards to ASSETS itself.
  test('with a UTF-8 site cookie, an expired token is renewed on the full route, and the page loses the CDN headers', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('renew') });
    const cookie = `${UTF8}; ${sessionCookie}`;
    const fresh = await utf8Request(stack, '/docs/', { headers: { cookie, ...html } });
    assert.equal(fresh.status, 200, `the hot path admits: ${fresh.describe()}`);
    await pastInterval();
    const res = await utf8Request(stack, '/docs/', { headers: { cookie, ...html } });
    assert.equal(res.status, 200, `renewed on the full route: ${res.describe()}`);
    const renewed = sessionCookieFrom(res.setCookies);
    assert.ok(renewed && renewed !== sessionCookie, `a renewed session cookie: ${res.setCookies}`);
    assertNoCdnHeaders(res);
    assert.match(res.headers['cache-control'] ?? '', /^private\b/, res.describe());
  });

  // Item 6.
  test('with a UTF-8 site cookie, GET /auth/session sees the session', async () => {
    const email = uniqueEmail('utf8-session');
    const { sessionCookie } = await signIn(stack, { email });
    const res = await utf8Request(stack, '/auth/session', { headers: { cookie: `${UTF8}; ${sessionCookie}`, accept: 'application/json' } });
    assert.equal(res.status, 200, res.describe());
    assert.equal(res.json()?.user?.email, email, res.describe());
  });

  // Item 6.
  test('with a UTF-8 site cookie, signing out revokes the session', async () => {
    const { sessionCookie } = await signIn(stack, { email: uniqueEmail('utf8-logout') });
    const sid = decodeJwt(cookieValue(sessionCookie)).payload.sid;
    const csrf = await request(stack, '/auth/csrf', { cookie: sessionCookie, accept: 'application/json' });
    const token = csrf.json().csrfToken;
    const res = await utf8Request(stack, '/auth/logout', {
      method: 'POST',
      headers: {
        cookie: `${UTF8}; ${sessionCookie}`,
        origin: stack.base,
        'content-type': 'application/x-www-form-urlencoded',
        ...html,
      },
      body: new URLSearchParams({ csrfToken: token }).toString(),
    });
    assert.equal(res.status, 303, res.describe());
    assert.ok(clearsCookie(findSetCookie(res.setCookies, SESSION_COOKIE)), res.describe());
    const rows = await stack.d1(`SELECT revoked_at FROM sessions WHERE id = ${sqlString(sid)}`);
    assert.equal(rows.length, 1);
    assert.ok(rows[0].revoked_at, `the session is revoked in D1: ${JSON.stringify(rows)}`);
    await pastInterval();
    const after = await utf8Request(stack, '/docs/', { headers: { cookie: `${UTF8}; ${sessionCookie}`, ...html } });
    assert.equal(after.status, 302, `signed out: ${after.describe()}`);
  });
});
