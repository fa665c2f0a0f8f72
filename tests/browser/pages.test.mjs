// The auth pages in a real browser (Debian chromium via playwright-core): signing in and out as a
// person does, by mouse and by keyboard only, the error pages, the security headers as the
// browser sees them, and an axe-core audit (WCAG 2.0/2.1 A + AA) of every page in light and dark
// colour schemes at desktop and phone widths, with screenshots of each.
//
//   GATEHOUSE_SKIP_BUILD=1 node --test --test-concurrency=1 tests/browser/
//
// Screenshots: tests/artifacts/screenshots/<page>-<scheme>-<width>.png; the README's picture of
// the sign-in page: docs/sign-in.png.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  ROOT, SESSION_COOKIE, pushRisc, sqlString, startStack, uniqueEmail,
} from '../e2e/harness.mjs';
import {
  VIEWPORTS, axeViolations, focusIndicator, formatViolations, launchBrowser, saveScreenshot,
  signInThroughChooser, watchCsp,
} from './browser.mjs';

const README_SHOT = path.join(ROOT, 'docs', 'sign-in.png');
const README_SHOT_MAX = 80 * 1024;

describe('the auth pages in a browser', () => {
  let stack;
  let browser;
  const contexts = new Set();

  before(async () => {
    stack = await startStack({ name: 'browser-pages', vars: { ROLE_PATHS: '/admin/*=admin' } });
    browser = await launchBrowser();
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await stack?.stop();
  });

  /** A fresh browser context (own cookies) with the stack as base URL. */
  async function newContext(options = {}) {
    const context = await browser.newContext({ baseURL: stack.base, ...options });
    context.setDefaultTimeout(20_000);
    context.setDefaultNavigationTimeout(30_000);
    contexts.add(context);
    const page = await context.newPage();
    return { context, page };
  }
  async function closeContext(context) {
    contexts.delete(context);
    await context.close();
  }
  const sessionCookies = async (context) => (await context.cookies(stack.base)).filter((c) => c.name === SESSION_COOKIE);

  test('a person opening a protected page signs in with the provider and lands back on it', async () => {
    const { context, page } = await newContext();
    const csp = await watchCsp(page);

    const first = await page.goto('/docs/');
    const landed = new URL(page.url());
    assert.equal(landed.pathname, '/auth/login', `redirected to sign-in, got ${page.url()}`);
    assert.equal(landed.searchParams.get('callbackUrl'), '/docs/');
    assert.equal(first.status(), 200);
    assert.match(await page.title(), /Sign in/);
    await assert.doesNotReject(page.getByText('Gatehouse demo', { exact: true }).first().waitFor(), 'the site name is shown');
    const google = page.getByRole('link', { name: 'Continue with Google' });
    assert.equal(await google.count(), 1);

    await google.click();
    await page.waitForURL((u) => u.href.startsWith(`${stack.idp}/o/oauth2/v2/auth`));
    await assert.doesNotReject(page.getByRole('heading', { name: 'Choose an account' }).waitFor());
    const devNotice = page.getByText(/Development identity provider — not Google/);
    assert.equal(await devNotice.count(), 1, 'the chooser says clearly that it is a development provider');
    assert.ok(await devNotice.isVisible());
    assert.match(await page.title(), /Development identity provider/);

    await Promise.all([
      page.waitForURL(`${stack.base}/docs/`),
      page.getByRole('button', { name: /^Ada Lovelace\b/ }).click(),
    ]);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Private docs');
    assert.equal((await sessionCookies(context)).length, 1, 'a session cookie is set');

    const session = await page.goto('/auth/session');
    assert.equal(session.status(), 200);
    const body = JSON.parse(await session.text());
    assert.equal(body?.user?.email, 'ada@example.com', JSON.stringify(body));
    assert.equal(body.user.name, 'Ada Lovelace');

    assert.deepEqual(await csp.list(), [], 'no page of the sign-in reported a CSP violation');
    await closeContext(context);
  });

  test('signing out through the confirmation page ends the session and the cookie', async () => {
    const { context, page } = await newContext();
    const email = uniqueEmail('browser-out');
    await signInThroughChooser(page, stack, { callbackUrl: '/', email, name: 'Browser Out' });
    assert.equal((await sessionCookies(context)).length, 1, 'signed in');

    const confirm = await page.goto('/auth/logout');
    assert.equal(confirm.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/auth/logout', 'the GET shows a page and changes nothing');
    await assert.doesNotReject(page.getByText(`Signed in as ${email}`).waitFor());
    assert.equal((await sessionCookies(context)).length, 1, 'still signed in after the GET');

    const visited = [];
    page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(`${r.method()} ${new URL(r.url()).pathname}`); });
    const [posted] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/auth/logout'),
      page.getByRole('button', { name: 'Sign out', exact: true }).click(),
    ]);
    const sent = await posted.request().allHeaders();
    assert.equal(posted.status(), 303,
      `the sign-out POST is accepted (the browser sent Origin: ${sent.origin}, Sec-Fetch-Site: ${sent['sec-fetch-site']}); `
      + `got ${posted.status()} ${await posted.text().catch(() => '')}`);
    await page.waitForURL((u) => u.pathname === '/auth/login');
    assert.deepEqual(visited.slice(0, 3), ['POST /auth/logout', 'GET /', 'GET /auth/login'], `navigations: ${visited.join(', ')}`);
    assert.equal(new URL(page.url()).searchParams.get('callbackUrl'), '/', page.url());
    assert.deepEqual(await sessionCookies(context), [], 'the session cookie is gone');

    await page.goto('/');
    assert.equal(new URL(page.url()).pathname, '/auth/login', 'the home page asks for sign-in again');
    await closeContext(context);
  });

  test('an error code shows its page with advice and a way back', async () => {
    const { context, page } = await newContext();
    const res = await page.goto('/auth/error?error=AccessDenied');
    assert.equal(res.status(), 403);
    assert.equal((await page.getByRole('heading', { level: 1 }).textContent()).trim(), 'Access denied');
    const advice = (await page.locator('h1 + p').textContent()).trim();
    assert.match(advice, /^[A-Z].{15,}[.!]$/, `a sentence of advice: ${JSON.stringify(advice)}`);
    const back = page.getByRole('link', { name: 'Back to sign-in' });
    assert.equal(await back.count(), 1);
    assert.equal(new URL(await back.getAttribute('href'), stack.base).pathname, '/auth/login');
    await Promise.all([page.waitForURL((u) => u.pathname === '/auth/login'), back.click()]);
    assert.match(await page.title(), /Sign in/);
    await closeContext(context);
  });

  test('signing in works with the keyboard alone, with focus always visible', async () => {
    const { context, page } = await newContext();
    const email = uniqueEmail('keyboard');
    await page.goto('/auth/login?callbackUrl=%2Fdocs%2F');
    const seen = [];
    const tabTo = async (describe, wanted, max = 12) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press('Tab');
        const f = await focusIndicator(page);
        seen.push(f);
        if (await page.evaluate(wanted)) return f;
      }
      throw new Error(`Tab never reached ${describe}; focus went: ${seen.map((s) => s.what).join(' → ')}`);
    };

    const link = await tabTo('the Google link', () => document.activeElement?.textContent?.includes('Continue with Google'));
    assert.ok(link.visible && link.focusVisible, `the focused link shows a focus ring: ${JSON.stringify(link)}`);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(stack.idp)), page.keyboard.press('Enter')]);

    const field = await tabTo('the email field', () => document.activeElement?.id === 'email');
    assert.ok(field.visible, `the focused email field shows a focus ring: ${JSON.stringify(field)}`);
    await page.keyboard.type(email);
    await tabTo('the name field', () => document.activeElement?.id === 'name', 1);
    await page.keyboard.type('Keyboard Person');
    const button = await tabTo('the Continue button', () => document.activeElement?.textContent === 'Continue', 3);
    assert.ok(button.visible, `the focused button shows a focus ring: ${JSON.stringify(button)}`);
    await Promise.all([page.waitForURL(`${stack.base}/docs/`), page.keyboard.press('Enter')]);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Private docs');

    const hidden = seen.filter((s) => !s.visible);
    assert.deepEqual(hidden, [], 'every control reached by Tab showed a focus indicator');
    const session = JSON.parse(await (await page.goto('/auth/session')).text());
    assert.equal(session?.user?.email, email);
    assert.equal(session.user.name, 'Keyboard Person');
    await closeContext(context);
  });

  describe('accessibility (axe-core, WCAG 2.0/2.1 A and AA) and screenshots', () => {
    // Every page, in the order one context can reach them (the last three need a session).
    const PAGES = [
      ['sign-in', async (page) => page.goto('/auth/login?callbackUrl=%2Fdocs%2F'), 200],
      ['sign-in-error', async (page) => page.goto('/auth/login?error=OAuthCallbackError'), 200],
      ['error-access-denied', async (page) => page.goto('/auth/error?error=AccessDenied'), 403],
      ['error-configuration', async (page) => page.goto('/auth/error?error=Configuration'), 500],
      ['idp-chooser', async (page) => {
        await page.goto('/auth/login?callbackUrl=%2Fdocs%2F');
        await Promise.all([
          page.waitForURL((u) => u.href.startsWith(stack.idp)),
          page.getByRole('link', { name: 'Continue with Google' }).click(),
        ]);
        return null;
      }, null],
      // Ada is not an admin: /admin/ is the 403 role page.
      ['forbidden', async (page) => {
        await Promise.all([
          page.waitForURL(`${stack.base}/docs/`),
          page.getByRole('button', { name: /^Ada Lovelace\b/ }).click(),
        ]);
        return page.goto('/admin/');
      }, 403],
      ['sign-out', async (page) => page.goto('/auth/logout'), 200],
      // Signing in again as the site admin (ADMIN_EMAILS) opens the admin pages.
      ['admin', async (page) => {
        await page.goto('/auth/login?callbackUrl=%2Fauth%2Fadmin');
        await Promise.all([
          page.waitForURL((u) => u.href.startsWith(stack.idp)),
          page.getByRole('link', { name: 'Continue with Google' }).click(),
        ]);
        await Promise.all([
          page.waitForURL(`${stack.base}/auth/admin`),
          page.getByRole('button', { name: /^Site Admin\b/ }).click(),
        ]);
        return page.goto('/auth/admin');
      }, 200],
      ['admin-user', async (page) => {
        const [res] = await Promise.all([
          page.waitForNavigation(),
          page.getByRole('link', { name: 'ada@example.com' }).click(),
        ]);
        assert.ok(await page.getByRole('button', { name: 'Set role' }).isVisible());
        return res;
      }, 200],
    ];

    for (const scheme of ['light', 'dark']) {
      for (const [width, viewport] of Object.entries(VIEWPORTS)) {
        test(`every page passes axe and is captured: ${scheme}, ${width} (${viewport.width}×${viewport.height})`, async () => {
          // bypassCSP only here: the pages' CSP (default-src 'none') would refuse axe's script.
          const { context, page } = await newContext({ colorScheme: scheme, viewport, bypassCSP: true });
          const report = [];
          for (const [name, open, status] of PAGES) {
            const res = await open(page);
            if (status !== null) assert.equal(res?.status(), status, `${name}: status of ${page.url()}`);
            assert.equal(await page.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches), scheme === 'dark');
            const { violations, checked } = await axeViolations(page);
            for (const rule of ['color-contrast', 'document-title', 'html-has-lang']) {
              assert.ok(checked.includes(rule), `${name}: axe checked ${rule} (checked: ${checked.join(', ')})`);
            }
            if (violations.length) report.push(formatViolations(`${name} ${scheme} ${width}`, violations));
            await saveScreenshot(page, `${name}-${scheme}-${width}`);
          }
          await closeContext(context);
          assert.equal(report.length, 0, `axe found violations:\n${report.join('\n')}`);
        });
      }
    }

    test('a screenshot was saved for every page, scheme and width', async () => {
      for (const [name] of PAGES) {
        for (const scheme of ['light', 'dark']) {
          for (const width of Object.keys(VIEWPORTS)) {
            const file = path.join(ROOT, 'tests', 'artifacts', 'screenshots', `${name}-${scheme}-${width}.png`);
            assert.ok(fs.existsSync(file) && fs.statSync(file).size > 1000, `missing ${file}`);
          }
        }
      }
    });
  });

  test('a small screenshot of the sign-in card for the README (docs/sign-in.png)', async () => {
    let size = Infinity;
    for (const deviceScaleFactor of [2, 1]) {
      const { context, page } = await newContext({ colorScheme: 'light', viewport: VIEWPORTS.desktop, deviceScaleFactor });
      await page.goto('/auth/login?callbackUrl=%2Fdocs%2F');
      const box = await page.locator('main').boundingBox();
      const pad = 24;
      const clip = {
        x: Math.max(0, box.x - pad),
        y: Math.max(0, box.y - pad),
        width: box.width + 2 * pad,
        height: box.height + 2 * pad,
      };
      await fsp.mkdir(path.dirname(README_SHOT), { recursive: true });
      await page.screenshot({ path: README_SHOT, clip });
      await closeContext(context);
      size = fs.statSync(README_SHOT).size;
      if (size <= README_SHOT_MAX) break;
    }
    assert.ok(size <= README_SHOT_MAX, `docs/sign-in.png is ${size} bytes`);
  });

  test('the auth pages carry their security headers, and the inline style passes the CSP', async () => {
    const { context, page } = await newContext();
    const csp = await watchCsp(page);
    const checkHeaders = (res, what) => {
      const h = res.headers();
      const policy = h['content-security-policy'] ?? '';
      assert.match(policy, /(^|;)\s*default-src 'none'/, `${what}: CSP ${policy}`);
      assert.match(policy, /(^|;)\s*frame-ancestors 'none'/, `${what}: CSP ${policy}`);
      assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|https?:/, `${what}: no loophole or third-party origin in ${policy}`);
      assert.equal(h['cache-control'], 'no-store', `${what}: cache-control`);
      assert.equal(h['referrer-policy'], 'no-referrer', `${what}: referrer-policy`);
      assert.equal(h['x-content-type-options'], 'nosniff', `${what}: x-content-type-options`);
    };

    const login = await page.goto('/auth/login?callbackUrl=%2Fdocs%2F');
    checkHeaders(login, 'sign-in page');
    // The stylesheet really applied (a blocked one would leave the browser's default look).
    const styled = await page.evaluate(() => ({
      radius: getComputedStyle(document.querySelector('main')).borderTopLeftRadius,
      display: getComputedStyle(document.querySelector('.btn')).display,
    }));
    assert.deepEqual(styled, { radius: '12px', display: 'flex' }, 'the inline stylesheet is applied');
    assert.deepEqual(await csp.list(), [], 'no CSP violation reported while the sign-in page loads');

    for (const [what, url] of [
      ['sign-in page with an error', '/auth/login?error=OAuthCallbackError'],
      ['error page', '/auth/error?error=AccessDenied'],
      ['sign-out page', '/auth/logout'],
    ]) {
      checkHeaders(await page.goto(url), what);
    }
    assert.deepEqual(await csp.list(), [], 'no CSP violation on the other auth pages');

    // The watcher does notice a violation: a style the policy does not list is refused and reported.
    await page.goto('/auth/login');
    await page.evaluate(() => {
      const s = document.createElement('style');
      s.textContent = 'body{background:red}';
      document.head.append(s);
    });
    await page.waitForTimeout(200);
    const reported = await csp.list();
    assert.ok(reported.some((m) => /style-src/.test(m)), `an unlisted inline style is reported: ${JSON.stringify(reported)}`);
    await closeContext(context);
  });
});

// Google's Cross-Account Protection on a signed-in browser: the provider pushes a security event
// to /auth/risc, and the person's next page after SESSION_CHECK_INTERVAL is the sign-in page.
describe('Google security events reach a signed-in browser', () => {
  const INTERVAL = 2;
  let stack;
  let browser;
  before(async () => {
    stack = await startStack({ name: 'browser-risc', vars: { RISC_ENABLED: 'true', SESSION_CHECK_INTERVAL: String(INTERVAL) } });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('account-disabled: the next page after the interval asks for sign-in, and signing in is refused', async () => {
    const context = await browser.newContext({ baseURL: stack.base });
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    const email = uniqueEmail('browser-risc');
    await signInThroughChooser(page, stack, { callbackUrl: '/docs/', email, name: 'Hijacked Person' });
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Private docs');

    // The Google account id the provider gave this person, as the worker stored it.
    const [account] = await stack.d1(
      `SELECT a.provider_account_id AS sub FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.email = ${sqlString(email)}`,
    );
    const sent = await pushRisc(stack, { event: 'account-disabled', sub: account.sub, reason: 'hijacking' });
    assert.equal(sent.status, 202, JSON.stringify(sent));
    await new Promise((r) => setTimeout(r, (INTERVAL + 1) * 1000));

    await page.goto('/docs/');
    assert.equal(new URL(page.url()).pathname, '/auth/login', `after the interval: ${page.url()}`);
    await page.getByRole('link', { name: 'Continue with Google' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${stack.idp}/`));
    await page.getByLabel('Email', { exact: true }).fill(email);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/auth/error'),
      page.getByRole('button', { name: 'Continue', exact: true }).click(),
    ]);
    assert.equal(new URL(page.url()).searchParams.get('error'), 'AccessDenied', page.url());
    assert.deepEqual((await context.cookies(stack.base)).filter((c) => c.name === SESSION_COOKIE), [], 'no session cookie');
    await context.close();
  });
});
