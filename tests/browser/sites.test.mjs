// One sign-in for two sites in a real browser (Debian chromium via playwright-core):
// http://127.0.0.1:PORT (the auth origin) and http://localhost:PORT are two origins with two
// cookie jars, served by one wrangler dev (SITES, docs/sites.md). A person signs in once, opens
// the second site without seeing the provider again, and signs out there, which ends the sign-in
// on the first site too.
//
//   GATEHOUSE_SKIP_BUILD=1 node --test --test-concurrency=1 tests/browser/sites.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SESSION_COOKIE, eventually, idpStats, startStack } from '../e2e/harness.mjs';
import { axeViolations, formatViolations, launchBrowser, saveScreenshot, signInThroughChooser } from './browser.mjs';

const INTERVAL = 3;

describe('one sign-in for two sites in a browser', () => {
  let stack;
  let browser;
  let A;
  let B;

  before(async () => {
    stack = await startStack({
      name: 'browser-sites',
      vars: ({ port }) => ({
        SITES: `http://127.0.0.1:${port}, http://localhost:${port}`,
        AUTH_URL: `http://127.0.0.1:${port}`,
        SESSION_CHECK_INTERVAL: String(INTERVAL),
      }),
    });
    A = stack.base;
    B = stack.base.replace('127.0.0.1', 'localhost');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('sign in once, open the second site without the provider, sign out there to end both', async () => {
    const context = await browser.newContext();
    context.setDefaultTimeout(20_000);
    context.setDefaultNavigationTimeout(30_000);
    const page = await context.newPage();
    const visited = [];
    page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) visited.push(frame.url()); });

    const start = (await idpStats(stack)).authorization_requests;
    await signInThroughChooser(page, stack, { callbackUrl: '/docs/' });
    assert.equal((await idpStats(stack)).authorization_requests - start, 1, 'one authorization at the provider');

    // The second site: through its sign-in and the auth origin's hand-off, straight to the page.
    const from = visited.length;
    await page.goto(`${B}/docs/`);
    assert.equal(page.url(), `${B}/docs/`, `landed on ${page.url()}`);
    const seen = visited.slice(from);
    assert.ok(!seen.some((u) => u.startsWith(stack.idp)), `the provider was not shown: ${seen.join(' → ')}`);
    assert.equal((await idpStats(stack)).authorization_requests - start, 1, 'no second authorization');
    await saveScreenshot(page, 'second-site-docs');

    // Two sites, two cookies: each its own.
    const [cookieA] = (await context.cookies(A)).filter((c) => c.name === SESSION_COOKIE);
    const [cookieB] = (await context.cookies(B)).filter((c) => c.name === SESSION_COOKIE);
    assert.ok(cookieA && cookieB, 'a session cookie on each origin');
    assert.notEqual(cookieA.value, cookieB.value);
    assert.equal(cookieB.domain, 'localhost');
    assert.ok(cookieB.httpOnly);
    const sessionB = await page.evaluate(async () => (await fetch('/auth/session')).json());
    assert.ok(sessionB.user.email, 'the second site shows its session');

    // Sign out on the second site, from its sign-out page.
    await page.goto(`${B}/auth/logout`);
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(`${B}/auth/logout`)),
      page.getByRole('button', { name: 'Sign out', exact: true }).click(),
    ]);
    await page.waitForLoadState();
    assert.equal((await context.cookies(B)).filter((c) => c.name === SESSION_COOKIE).length, 0, 'gone on B at once');

    // The sign-in at the auth origin ended with it: the first site asks to sign in again
    // within the interval (its token is not renewed), and B cannot get a new code meanwhile.
    await page.goto(`${B}/docs/`);
    assert.equal(new URL(page.url()).origin, A);
    assert.equal(new URL(page.url()).pathname, '/auth/login');
    await eventually(async () => {
      await page.goto(`${A}/docs/`);
      return new URL(page.url()).pathname === '/auth/login';
    }, 'the first site signed out', { timeoutMs: (INTERVAL + 4) * 1000, everyMs: 500 });
    await context.close();
  });

  test('a hand-off that cannot be used says so in words, with a way to sign in again', async () => {
    // bypassCSP: axe-core is injected as a script, which the pages' CSP (rightly) forbids.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    // A code this browser's state never asked for.
    await page.goto(`${B}/auth/handoff/callback?code=${'a'.repeat(43)}`);
    const url = new URL(page.url());
    assert.equal(url.origin, B);
    assert.equal(url.pathname, '/auth/error');
    assert.equal(url.searchParams.get('error'), 'Verification');
    await assert.doesNotReject(page.getByRole('heading', { name: 'This sign-in link cannot be used' }).waitFor());
    assert.equal(await page.getByRole('link', { name: 'Back to sign-in' }).count(), 1);
    const { violations } = await axeViolations(page);
    assert.deepEqual(violations, [], formatViolations('hand-off error page', violations));
    await saveScreenshot(page, 'handoff-error');
    await context.close();
  });
});
