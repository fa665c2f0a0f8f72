// Faults show the right page (issue 13, item 11): an unreachable site behind UPSTREAM_URL is a
// 502 page, a site that does not answer in UPSTREAM_TIMEOUT a 504 page, a D1 outage a 503 "try
// again in a moment" page that keeps the visitor's cookie; `Configuration` stays for what the
// operator must fix (missing tables: d1failure.test.mjs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  SESSION_COOKIE, errorCodeOf, findSetCookie, freePort, request, signIn, sleep, startStack, uniqueEmail, waitForLog,
} from './harness.mjs';

const INTERNALS = [/panicked/i, /\bError:/, /SQLITE/i, /D1_ERROR/i, /malformed/i, /\.rs:\d+/, /backtrace/i, /not set up correctly/];

/** An origin whose /hang/… requests are never answered. */
function startOrigin() {
  const hanging = [];
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/public/hang')) {
      hanging.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`origin saw ${req.url}`);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, hanging, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

describe('the site behind UPSTREAM_URL failing', () => {
  let stack;
  let origin;
  before(async () => {
    origin = await startOrigin();
    stack = await startStack({
      name: 'outages-upstream',
      vars: { UPSTREAM_URL: origin.origin, UPSTREAM_TIMEOUT: '1', PUBLIC_PATHS: '/public/*' },
    });
  });
  after(async () => {
    await stack?.stop();
    for (const res of origin?.hanging ?? []) res.destroy();
    await new Promise((r) => (origin ? origin.server.close(r) : r()));
  });

  test('a site that does not answer within UPSTREAM_TIMEOUT gives a 504 page, then JSON for scripts', async () => {
    const started = Date.now();
    const res = await request(stack, '/public/hang?x=1', { accept: 'text/html' });
    assert.equal(res.status, 504, res.describe());
    assert.ok(Date.now() - started < 10_000, 'answered after the timeout, not after the origin');
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.body, /took too long/);
    assert.match(res.body, /href="\/public\/hang\?x=1"/, 'the page offers to try the same page again');
    for (const re of INTERNALS) assert.doesNotMatch(res.body, re);
    const api = await request(stack, '/public/hang', { accept: 'application/json' });
    assert.equal(api.status, 504, api.describe());
    assert.deepEqual(api.json(), { error: 'GatewayTimeout' });
    await waitForLog(stack, (o) => o.event === 'upstream_timeout', { what: 'upstream_timeout' });
  });

  test('an unreachable site gives a 502 page, not the Configuration page', async () => {
    const closed = await freePort();
    // A generous timeout: a refused connection must be a 502 however slow the machine, never
    // a 504 because the first request of the restarted worker took more than one second.
    await stack.restart({ UPSTREAM_URL: `http://127.0.0.1:${closed}`, UPSTREAM_TIMEOUT: '10' });
    const res = await request(stack, '/public/x', { accept: 'text/html' });
    assert.equal(res.status, 502, res.describe());
    assert.match(res.body, /could not be reached/);
    for (const re of INTERNALS) assert.doesNotMatch(res.body, re);
    const api = await request(stack, '/public/x', { accept: 'application/json' });
    assert.deepEqual([api.status, api.json()], [502, { error: 'BadGateway' }]);
    await waitForLog(stack, (o) => o.event === 'upstream_unreachable', { what: 'upstream_unreachable' });
  });
});

describe('D1 failing (an outage, not a setup problem)', () => {
  let stack;
  const INTERVAL = 2;
  before(async () => {
    stack = await startStack({ name: 'outages-d1', vars: { SESSION_CHECK_INTERVAL: String(INTERVAL) } });
  });
  after(async () => { await stack?.stop(); });

  // Reads of `sessions` fail with an error that is not about the schema, as an overloaded or
  // unreachable D1 would; `restore` puts the table back.
  const breakReads = () => stack.d1(
    "ALTER TABLE sessions RENAME TO sessions_down; CREATE VIEW sessions AS SELECT * FROM sessions_down WHERE json_extract('not json', '$') IS NULL",
  );
  const restoreReads = () => stack.d1('DROP VIEW sessions; ALTER TABLE sessions_down RENAME TO sessions');

  test('a renewal during the outage gets a 503 page that keeps the cookie, and works once D1 is back', async () => {
    const cookie = (await signIn(stack, { email: uniqueEmail('outage'), callbackUrl: '/' })).sessionCookie;
    assert.ok(cookie);
    await sleep(INTERVAL * 1000 + 1200);
    await breakReads();
    try {
      const res = await request(stack, '/docs/?p=2', { cookie, accept: 'text/html' });
      assert.equal(res.status, 503, res.describe());
      assert.equal(res.headers.get('retry-after'), '5');
      assert.match(res.body, /try again in a moment/i);
      assert.match(res.body, /href="\/docs\/\?p=2"/);
      for (const re of INTERNALS) assert.doesNotMatch(res.body, re);
      assert.equal(findSetCookie(res, SESSION_COOKIE), null, 'the cookie is kept for the retry');
      const session = await request(stack, '/auth/session', { cookie, accept: 'application/json' });
      assert.deepEqual([session.status, session.json()], [503, { error: 'Unavailable' }], 'not null, which means "signed out"');
      const api = await request(stack, '/docs/', { cookie, accept: 'application/json' });
      assert.equal(api.status, 503, api.describe());
    } finally {
      await restoreReads();
    }
    const back = await request(stack, '/docs/', { cookie, accept: 'text/html' });
    assert.equal(back.status, 200, back.describe());
    assert.ok(findSetCookie(back, SESSION_COOKIE)?.value, 'renewed');
  });

  test('a sign-in whose writes fail ends on the Unavailable page, with no session', async () => {
    await stack.d1("CREATE TRIGGER sessions_down BEFORE INSERT ON sessions BEGIN SELECT RAISE(ABORT, 'D1 is overloaded'); END");
    try {
      const r = await signIn(stack, { email: uniqueEmail('signin-outage') });
      assert.equal(errorCodeOf(r.response.location, stack.base), 'Unavailable', r.response.rawLocation);
      assert.equal(r.sessionCookie, null);
      const page = await request(stack, r.response.location, { accept: 'text/html' });
      assert.equal(page.status, 503, page.describe());
      for (const re of INTERNALS) assert.doesNotMatch(page.body, re);
    } finally {
      await stack.d1('DROP TRIGGER sessions_down');
    }
  });
});
