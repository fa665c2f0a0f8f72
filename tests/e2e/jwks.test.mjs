// The provider's keys (JWKS): fetched once and cached per isolate, refetched once for an honest
// key rotation, not refetched for a flood of forged `kid`s, and served stale (up to 24 h past
// max-age) when the provider's JWKS endpoint is down. Each scenario needs a cache in a known
// state, so each gets its own stack (≈4 s to start) instead of waiting out the one-minute limit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  STATE_COOKIE, errorCodeOf, idpControl, idpStats, request, sessionCookieFrom, signIn, sleep, startSignIn, startStack,
  uniqueEmail,
} from './harness.mjs';

const CALLBACK_BUDGET_MS = 8000;

/** A describe block with its own stack. */
function withStack(title, name, body) {
  describe(title, () => {
    const ctx = {};
    before(async () => { ctx.stack = await startStack({ name }); });
    after(async () => { await ctx.stack?.stop(); });
    body(ctx);
  });
}

async function timedSignIn(stack, opts = {}) {
  const t0 = Date.now();
  const r = await signIn(stack, { email: uniqueEmail('jwks'), ...opts });
  return { ...r, elapsed: Date.now() - t0 };
}

function assertSignedIn(stack, r) {
  assert.equal(r.response.status, 302, r.response.describe());
  assert.ok(r.sessionCookie, `signed in:\n${r.response.describe()}`);
  assert.equal(r.response.location.href, `${stack.base}/docs/`, r.response.rawLocation);
}

/** Refused with OAuthCallbackError, no session, and never a 5xx anywhere on the way. */
async function assertRefused(stack, response, what = '') {
  assert.equal(response.status, 302, `${what}\n${response.describe()}`);
  assert.equal(errorCodeOf(response.location, stack.base), 'OAuthCallbackError', `${what} ${response.rawLocation}`);
  assert.equal(sessionCookieFrom(response), null, `${what} no session: ${JSON.stringify(response.setCookies)}`);
  const page = await request(stack, response.location, { accept: 'text/html' });
  assert.equal(page.status, 400, `${what} error page:\n${page.describe()}`);
  assert.match(page.headers.get('cache-control') ?? '', /no-store/, page.describe());
}

async function jwksRequestsSince(stack, before) {
  return (await idpStats(stack)).jwks_requests - before.jwks_requests;
}

withStack('provider keys in a healthy cache', 'jwks-cache', (ctx) => {
  test('keys are fetched once and reused by the next sign-in', async () => {
    const { stack } = ctx;
    await idpControl(stack, 'POST', '/_control/reset');
    const before = await idpStats(stack);
    assertSignedIn(stack, await timedSignIn(stack));
    assertSignedIn(stack, await timedSignIn(stack));
    const stats = await idpStats(stack);
    assert.equal(stats.token_requests - before.token_requests, 2, JSON.stringify(stats));
    assert.ok(stats.jwks_requests - before.jwks_requests <= 1, `JWKS fetched ${stats.jwks_requests - before.jwks_requests} times for two sign-ins`);
  });

  test('an honest key rotation right after a sign-in still signs in, with one refetch', async () => {
    const { stack } = ctx;
    assertSignedIn(stack, await timedSignIn(stack));
    const rotated = await idpControl(stack, 'POST', '/_control/rotate');
    assert.notEqual(rotated.kid, rotated.previous_kid, JSON.stringify(rotated));
    const before = await idpStats(stack);
    assertSignedIn(stack, await timedSignIn(stack));
    assert.equal(await jwksRequestsSince(stack, before), 1, 'one refetch for the new kid');
    assertSignedIn(stack, await timedSignIn(stack));
    assert.equal(await jwksRequestsSince(stack, before), 1, 'the new key is cached');
  });
});

withStack('a flood of forged key ids, one after another', 'jwks-flood', (ctx) => {
  test('ten sign-ins with an unknown kid are all refused and cost at most one JWKS fetch', async () => {
    const { stack } = ctx;
    assertSignedIn(stack, await timedSignIn(stack)); // keys cached, no limited fetch yet
    const before = await idpStats(stack);
    for (let i = 0; i < 10; i += 1) {
      const r = await timedSignIn(stack, { extraIdpParams: { test_twist: 'unknown_kid' } });
      await assertRefused(stack, r.response, `forged kid #${i + 1}:`);
    }
    assert.ok(await jwksRequestsSince(stack, before) <= 1, `JWKS fetched ${await jwksRequestsSince(stack, before)} times`);
  });

  test('after the flood an honest sign-in still works from the cache, without a fetch', async () => {
    const { stack } = ctx;
    const before = await idpStats(stack);
    assertSignedIn(stack, await timedSignIn(stack));
    assert.equal(await jwksRequestsSince(stack, before), 0);
  });
});

withStack('a flood of forged key ids, all at once', 'jwks-flood-parallel', (ctx) => {
  test('ten simultaneous callbacks with an unknown kid are all refused and cost at most one JWKS fetch', async () => {
    const { stack } = ctx;
    assertSignedIn(stack, await timedSignIn(stack));
    const started = [];
    for (let i = 0; i < 10; i += 1) {
      started.push(await startSignIn(stack, { email: uniqueEmail('flood'), extraIdpParams: { test_twist: 'unknown_kid' } }));
    }
    const before = await idpStats(stack);
    const responses = await Promise.all(started.map((s) => request(stack, s.callbackUrl, {
      accept: 'text/html', cookie: `${STATE_COOKIE}=${s.stateCookie.value}`,
    })));
    for (const [i, res] of responses.entries()) await assertRefused(stack, res, `forged kid #${i + 1}:`);
    const fetched = await jwksRequestsSince(stack, before);
    assert.ok(fetched <= 1, `JWKS fetched ${fetched} times for ten simultaneous forged kids`);
  });
});

// The same flood while the provider's JWKS endpoint is slow (here: hangs past the worker's 5 s
// timeout), so every forged kid arrives while the first refetch is still in flight.
withStack('a flood of forged key ids while the JWKS endpoint is slow', 'jwks-flood-slow', (ctx) => {
  test('ten simultaneous callbacks with an unknown kid during a slow refetch cost at most one JWKS fetch', async () => {
    const { stack } = ctx;
    assertSignedIn(stack, await timedSignIn(stack));
    const started = [];
    for (let i = 0; i < 10; i += 1) {
      started.push(await startSignIn(stack, { email: uniqueEmail('slowflood'), extraIdpParams: { test_twist: 'unknown_kid' } }));
    }
    await idpControl(stack, 'POST', '/_control/jwks?mode=stall');
    const before = await idpStats(stack);
    const t0 = Date.now();
    const responses = await Promise.all(started.map((s) => request(stack, s.callbackUrl, {
      accept: 'text/html', cookie: `${STATE_COOKIE}=${s.stateCookie.value}`,
    })));
    const elapsed = Date.now() - t0;
    for (const [i, res] of responses.entries()) await assertRefused(stack, res, `forged kid #${i + 1}:`);
    assert.ok(elapsed < CALLBACK_BUDGET_MS, `the ten callbacks took ${elapsed} ms`);
    const fetched = await jwksRequestsSince(stack, before);
    assert.ok(fetched <= 1, `JWKS fetched ${fetched} times for ten simultaneous forged kids (the one-a-minute limit is only recorded when a fetch ends)`);
  });
});

// The provider's JWKS endpoint is down (`500`), answers nonsense (`garbage`, 200 {"nope":1}),
// or hangs (`stall`, 30 s, longer than the worker's 5 s timeout).
for (const mode of ['500', 'garbage', 'stall']) {
  withStack(`provider keys never fetched, JWKS mode=${mode}`, `jwks-fresh-${mode}`, (ctx) => {
    test(`with no keys cached, a JWKS answering mode=${mode} ends on OAuthCallbackError, never a 500`, async () => {
      const { stack } = ctx;
      await idpControl(stack, 'POST', `/_control/jwks?mode=${mode}`);
      const before = await idpStats(stack);
      const r = await timedSignIn(stack);
      await assertRefused(stack, r.response);
      assert.ok(r.elapsed < CALLBACK_BUDGET_MS + 1000, `the whole sign-in took ${r.elapsed} ms`);
      assert.equal(await jwksRequestsSince(stack, before), 1, 'the worker asked the provider once');
    });

    test(`a second try within the minute is refused without asking the provider again (mode=${mode})`, async () => {
      const { stack } = ctx;
      const before = await idpStats(stack);
      const r = await timedSignIn(stack);
      await assertRefused(stack, r.response);
      assert.equal(await jwksRequestsSince(stack, before), 0, 'failed fetches are limited to one a minute');
    });
  });

  withStack(`provider keys cached and expired, JWKS mode=${mode}`, `jwks-stale-${mode}`, (ctx) => {
    test(`with expired keys cached, a JWKS answering mode=${mode} still signs in from the stale cache`, async () => {
      const { stack } = ctx;
      await idpControl(stack, 'POST', '/_control/jwks_max_age?secs=1');
      assertSignedIn(stack, await timedSignIn(stack));
      await sleep(2100); // past max-age
      await idpControl(stack, 'POST', `/_control/jwks?mode=${mode}`);
      const before = await idpStats(stack);
      const r = await timedSignIn(stack);
      assertSignedIn(stack, r);
      assert.ok(r.elapsed < CALLBACK_BUDGET_MS + 1000, `the whole sign-in took ${r.elapsed} ms`);
      assert.equal(await jwksRequestsSince(stack, before), 1, 'the worker tried to refresh the expired keys');
      const page = await request(stack, '/docs/', { cookie: r.sessionCookie, accept: 'text/html' });
      assert.equal(page.status, 200, page.describe());
    });

    test(`while the JWKS stays broken (mode=${mode}) the stale keys keep serving without a fetch per sign-in`, async () => {
      const { stack } = ctx;
      const before = await idpStats(stack);
      assertSignedIn(stack, await timedSignIn(stack));
      assertSignedIn(stack, await timedSignIn(stack));
      assert.equal(await jwksRequestsSince(stack, before), 0);
    });
  });
}
