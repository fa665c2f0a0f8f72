// The gate without a session: who is redirected, who gets 401, what stays public.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rawRequest, request, startStack } from './harness.mjs';

describe('the gate, for a visitor without a session', () => {
  let stack;
  before(async () => { stack = await startStack({ name: 'gate' }); });
  after(async () => { await stack?.stop(); });

  function assertLoginRedirect(res, expectedCallback) {
    assert.equal(res.status, 302, res.describe());
    assert.ok(res.location, 'a Location header');
    assert.equal(res.location.origin, stack.base, `redirect stays on the site: ${res.rawLocation}`);
    assert.equal(res.location.pathname, '/auth/login', `redirect goes to the sign-in page: ${res.rawLocation}`);
    assert.equal(res.location.searchParams.get('callbackUrl'), expectedCallback, `callbackUrl in ${res.rawLocation}`);
  }

  test('a browser navigation to a private page is redirected to the sign-in page with the path as callbackUrl', async () => {
    const res = await request(stack, '/docs/', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' });
    assertLoginRedirect(res, '/docs/');
    assert.ok(!res.body.includes('Private docs'), 'the private page is not in the redirect body');
  });

  test('the query string of the private page is kept in callbackUrl', async () => {
    const res = await request(stack, '/docs/?q=1&page=2', { accept: 'text/html' });
    assertLoginRedirect(res, '/docs/?q=1&page=2');
  });

  test('a HEAD navigation is redirected like a GET', async () => {
    const res = await request(stack, '/docs/', { method: 'HEAD', accept: 'text/html' });
    assertLoginRedirect(res, '/docs/');
  });

  test('an API request for a private page gets 401 JSON with WWW-Authenticate: Bearer', async () => {
    const res = await request(stack, '/docs/', { accept: 'application/json' });
    assert.equal(res.status, 401, res.describe());
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer\b/, res.describe());
    assert.match(res.headers.get('content-type') ?? '', /application\/json/, res.describe());
    assert.doesNotThrow(() => res.json(), `body is JSON: ${res.body}`);
    assert.ok(!res.body.includes('Private docs'));
  });

  test('a POST to a private page gets 401 even when it accepts HTML', async () => {
    const res = await request(stack, '/docs/', {
      method: 'POST',
      accept: 'text/html',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: stack.base },
      body: 'a=1',
    });
    assert.equal(res.status, 401, res.describe());
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer\b/, res.describe());
  });

  test('a public path is served without a session', async () => {
    const res = await request(stack, '/public/', { accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.ok(res.body.includes('Public page'), res.describe());
  });

  test('an exact public path passes the gate even when the file does not exist', async () => {
    const res = await request(stack, '/favicon.ico', { accept: 'text/html' });
    assert.ok(res.status !== 302 && res.status !== 401, `/favicon.ico is public, got ${res.describe()}`);
    assert.ok(res.status < 500, res.describe());
  });

  test('a path that only starts like a public prefix is still private', async () => {
    const res = await request(stack, '/publicity/', { accept: 'text/html' });
    assertLoginRedirect(res, '/publicity/');
  });

  test('an encoded traversal through the public prefix never reaches a private page', async () => {
    for (const raw of ['/public/..%2fdocs/', '/public/%2e%2e/docs/', '/public/..%2Fdocs/index.html', '/public/%2e%2e%2fdocs%2f']) {
      const res = await rawRequest(stack, raw, { headers: { accept: 'text/html' } });
      assert.ok(!res.body.includes('Private docs'), `GET ${raw} → ${res.status} served the private page`);
      assert.ok(res.status < 500, `GET ${raw} → ${res.status}`);
    }
  });

  test('GET /auth/session without a cookie answers null and is not cached', async () => {
    const res = await request(stack, '/auth/session', { accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    assert.equal(res.json(), null, res.describe());
    assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
  });

  test('the sign-in page offers "Continue with Google" and keeps callbackUrl', async () => {
    const res = await request(stack, '/auth/login?callbackUrl=%2Fdocs%2F%3Fq%3D1', { accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.match(res.headers.get('content-type') ?? '', /text\/html/, res.describe());
    assert.match(res.body, /Continue with Google/, 'a "Continue with Google" control');
    const targets = googleTargets(res.body, stack.base);
    assert.ok(targets.length > 0, `the page links or posts to /auth/login/google:\n${res.body}`);
    assert.ok(
      targets.some((t) => t === '/docs/?q=1'),
      `one Google sign-in control carries callbackUrl=/docs/?q=1, found ${JSON.stringify(targets)}`,
    );
  });

  test('the sign-in page is not cached and may not be framed', async () => {
    const res = await request(stack, '/auth/login', { accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/, `Content-Security-Policy: ${csp}`);
  });

  test('the sign-in page escapes what it echoes from the query string', async () => {
    const evil = '"><script>alert(1)</script>';
    const res = await request(stack, `/auth/login?callbackUrl=${encodeURIComponent(evil)}&error=${encodeURIComponent(evil)}`, { accept: 'text/html' });
    assert.ok(res.status < 500, res.describe());
    assert.ok(!res.body.includes('<script>alert(1)</script>'), `the page reflects raw markup:\n${res.body}`);
  });

  test('the error page escapes an unknown error code', async () => {
    const res = await request(stack, `/auth/error?error=${encodeURIComponent('<script>alert(1)</script>')}`, { accept: 'text/html' });
    assert.ok(res.status >= 400 && res.status < 600, res.describe());
    assert.ok(!res.body.includes('<script>alert(1)</script>'), `the page reflects raw markup:\n${res.body}`);
  });

  test('forward auth answers 401 without a session', async () => {
    const res = await request(stack, '/auth/verify', { accept: 'application/json' });
    assert.equal(res.status, 401, res.describe());
  });

  test('the JWK Set is empty when every session key is symmetric', async () => {
    const res = await request(stack, '/auth/jwks.json', { accept: 'application/json' });
    assert.equal(res.status, 200, res.describe());
    assert.deepEqual(res.json(), { keys: [] });
  });
});

/** callbackUrl values carried by links/forms to /auth/login/google in an HTML page. */
function googleTargets(html, base) {
  const unescape = (s) => s
    .replace(/&amp;/g, '&').replace(/&#x2F;/gi, '/').replace(/&#47;/g, '/').replace(/&quot;/g, '"')
    .replace(/&#x3D;/gi, '=').replace(/&#61;/g, '=').replace(/&#x3F;/gi, '?').replace(/&#63;/g, '?')
    .replace(/&#x27;/gi, "'").replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  const found = [];
  // Links (or GET forms with the query in the action).
  for (const m of html.matchAll(/(?:href|action)\s*=\s*(["'])(.*?)\1/gis)) {
    const value = unescape(m[2]);
    if (!value.includes('/auth/login/google')) continue;
    const u = new URL(value, base);
    if (u.searchParams.has('callbackUrl')) found.push(u.searchParams.get('callbackUrl'));
    else found.push(null);
  }
  // Forms posting/getting to /auth/login/google with a hidden callbackUrl input.
  for (const form of html.matchAll(/<form\b[^>]*action\s*=\s*(["'])([^"']*\/auth\/login\/google[^"']*)\1[^>]*>([\s\S]*?)<\/form>/gi)) {
    for (const input of form[3].matchAll(/<input\b[^>]*>/gi)) {
      const tag = input[0];
      if (!/name\s*=\s*["']callbackUrl["']/i.test(tag)) continue;
      const v = /value\s*=\s*(["'])(.*?)\1/is.exec(tag);
      if (v) found.push(unescape(v[2]));
    }
  }
  return found;
}
