// UPSTREAM_URL: admitted requests are proxied with identity headers that no visitor can forge,
// and without the session cookie.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SESSION_COOKIE, cookieValue, decodeJwt, request, signIn, startStack, uniqueEmail } from './harness.mjs';

/** An origin that answers every request with what it received, as JSON. */
function startEchoOrigin() {
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    const url = new URL(req.url, 'http://origin.invalid');
    const cacheControl = url.searchParams.get('cc');
    const headers = { 'content-type': 'application/json' };
    if (cacheControl) headers['cache-control'] = cacheControl;
    const redirect = url.searchParams.get('redirect');
    if (redirect) {
      res.writeHead(302, { location: redirect.replace('ORIGIN', `http://127.0.0.1:${server.address().port}`) });
      res.end();
      return;
    }
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      res.writeHead(200, headers);
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, requests, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

describe('proxying to UPSTREAM_URL', () => {
  let stack;
  let echo;
  let session; // "gatehouse_session=…"
  let claims;
  const email = uniqueEmail('upstream');

  before(async () => {
    echo = await startEchoOrigin();
    stack = await startStack({ name: 'upstream', vars: { UPSTREAM_URL: echo.origin } });
    const r = await signIn(stack, { email, callbackUrl: '/' });
    assert.ok(r.sessionCookie, r.response.describe());
    session = r.sessionCookie;
    claims = decodeJwt(cookieValue(session)).payload;
  });
  after(async () => {
    await stack?.stop();
    await new Promise((r) => (echo ? echo.server.close(r) : r()));
  });

  const echoed = (res) => {
    assert.equal(res.status, 200, res.describe());
    return res.json();
  };

  test('an admitted request reaches the origin with its path and query and the identity headers', async () => {
    const seen = echoed(await request(stack, '/app/page?x=1&y=2', { cookie: session, accept: 'text/html' }));
    assert.equal(seen.url, '/app/page?x=1&y=2');
    assert.equal(seen.headers['x-auth-user-id'], claims.sub);
    assert.equal(seen.headers['x-auth-email'], email);
    assert.equal(seen.headers['x-auth-role'], 'user');
  });

  test('identity headers sent by the visitor are replaced by the real ones', async () => {
    const seen = echoed(await request(stack, '/app/', {
      cookie: session,
      accept: 'text/html',
      headers: { 'x-auth-email': 'admin@example.com', 'x-auth-role': 'admin', 'x-auth-user-id': 'forged' },
    }));
    assert.equal(seen.headers['x-auth-email'], email);
    assert.equal(seen.headers['x-auth-role'], 'user');
    assert.equal(seen.headers['x-auth-user-id'], claims.sub);
  });

  test('identity headers sent by the visitor to a public path are removed', async () => {
    const seen = echoed(await request(stack, '/public/x', {
      accept: 'text/html',
      headers: { 'x-auth-email': 'admin@example.com', 'x-auth-role': 'admin', 'x-auth-user-id': 'forged' },
    }));
    for (const h of ['x-auth-email', 'x-auth-role', 'x-auth-user-id']) {
      assert.equal(seen.headers[h], undefined, `${h} reached the origin: ${seen.headers[h]}`);
    }
  });

  test('the session cookie is not forwarded to the origin', async () => {
    const seen = echoed(await request(stack, '/app/', { cookie: `theme=dark; ${session}`, accept: 'text/html' }));
    assert.ok(!String(seen.headers.cookie ?? '').includes(`${SESSION_COOKIE}=`), `cookie at the origin: ${seen.headers.cookie}`);
    assert.ok(!JSON.stringify(seen).includes(cookieValue(session)), 'the session token reached the origin');
    assert.equal(seen.headers['x-auth-email'], email);
  });

  // The design names only the cookie; a session JWT sent as a Bearer token is the same credential.
  test('a session JWT sent as Authorization: Bearer is not forwarded to the origin', async () => {
    const api = echoed(await request(stack, '/app/', { headers: { authorization: `Bearer ${cookieValue(session)}` }, accept: 'application/json' }));
    assert.equal(api.headers['x-auth-email'], email);
    assert.ok(!JSON.stringify(api).includes(cookieValue(session)), `the Bearer session token reached the origin: authorization: ${api.headers.authorization?.slice(0, 40)}…`);
  });

  test('a protected response never says it may be cached publicly', async () => {
    const res = await request(stack, `/app/?cc=${encodeURIComponent('public, max-age=600')}`, { cookie: session, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    const cc = res.headers.get('cache-control') ?? '';
    assert.match(cc, /\bprivate\b|no-store/, `Cache-Control: ${cc}`);
    assert.doesNotMatch(cc, /\bpublic\b/, `Cache-Control: ${cc}`);
  });

  test('a stricter Cache-Control of the origin is kept', async () => {
    const res = await request(stack, `/app/?cc=no-store`, { cookie: session, accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.describe());
  });

  test('a POST reaches the origin with its method and body, and other cookies pass', async () => {
    const res = await request(stack, '/app/form?z=9', {
      method: 'POST',
      cookie: `${session}; theme=dark`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1&b=two',
      accept: 'application/json',
    });
    const seen = echoed(res);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/app/form?z=9');
    assert.equal(seen.body, 'a=1&b=two');
    assert.equal(seen.headers.cookie, 'theme=dark');
    assert.match(res.headers.get('vary') ?? '', /cookie/i, res.describe());
  });

  test('a redirect of the origin to its own address is rewritten to the public origin', async () => {
    const res = await request(stack, `/app/?redirect=${encodeURIComponent('ORIGIN/app/next?q=1')}`, { cookie: session, accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
    assert.equal(res.headers.get('location'), `${stack.base}/app/next?q=1`);
    const foreign = await request(stack, `/app/?redirect=${encodeURIComponent('https://elsewhere.test/x')}`, { cookie: session, accept: 'text/html' });
    assert.equal(foreign.headers.get('location'), 'https://elsewhere.test/x', 'other sites are left alone');
    const relative = await request(stack, `/app/?redirect=${encodeURIComponent('/app/rel')}`, { cookie: session, accept: 'text/html' });
    assert.equal(relative.headers.get('location'), '/app/rel');
  });

  test('without a session nothing reaches the origin', async () => {
    const before = echo.requests.length;
    const res = await request(stack, '/app/secret', { accept: 'text/html' });
    assert.equal(res.status, 302, res.describe());
    assert.equal(res.location.pathname, '/auth/login');
    const api = await request(stack, '/app/secret', { accept: 'application/json' });
    assert.equal(api.status, 401, api.describe());
    assert.equal(echo.requests.length, before, `the origin saw ${JSON.stringify(echo.requests.slice(before))}`);
  });
});
