// Browser helpers for the page suites: Debian's chromium driven by playwright-core (never
// `npx playwright install`), axe-core for accessibility audits, screenshots under
// tests/artifacts/screenshots/.
//
//   const browser = await launchBrowser();
//   const context = await browser.newContext({ baseURL: stack.base });
//   const page = await context.newPage();
//   await signInThroughChooser(page, stack, { callbackUrl: '/docs/' });
//   const violations = await axeViolations(page); // needs a context made with bypassCSP: true

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS } from '../e2e/harness.mjs';

const require = createRequire(import.meta.url);

export const CHROMIUM = process.env.GATEHOUSE_CHROMIUM || '/usr/bin/chromium';
export const LAUNCH_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const SCREENSHOTS = path.join(ARTIFACTS, 'screenshots');
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}

/**
 * Collects what a page reports about Content Security Policy: console messages that mention it
 * and `securitypolicyviolation` events (recorded by an init script, which CSP does not govern).
 * Call before the navigation; read `list()` after it.
 */
export async function watchCsp(page) {
  const messages = [];
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) messages.push(`console ${msg.type()}: ${msg.text()}`);
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`);
    });
  });
  return {
    async list() {
      const events = await page.evaluate(() => window.__cspViolations ?? []).catch(() => []);
      return [...messages, ...events.map((e) => `event: ${e}`)];
    },
  };
}

/**
 * Signs in the way a person does: the sign-in page's "Continue with Google" link, then one of the
 * provider's preset accounts (`account` is its visible name) or, with `email`, the
 * "Use another account" form. Ends on the page the worker redirects to.
 */
export async function signInThroughChooser(page, stack, { callbackUrl = '/docs/', account = 'Ada Lovelace', email, name } = {}) {
  await page.goto(`${stack.base}/auth/login?callbackUrl=${encodeURIComponent(callbackUrl)}`);
  await page.getByRole('link', { name: 'Continue with Google' }).click();
  await page.waitForURL((u) => u.href.startsWith(`${stack.idp}/`));
  if (email) {
    await page.getByLabel('Email', { exact: true }).fill(email);
    if (name) await page.getByLabel('Name (optional)').fill(name);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${stack.base}/`) && !u.pathname.startsWith('/auth/callback')),
      page.getByRole('button', { name: 'Continue', exact: true }).click(),
    ]);
  } else {
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${stack.base}/`) && !u.pathname.startsWith('/auth/callback')),
      page.getByRole('button', { name: new RegExp(`^${account}\\b`) }).click(),
    ]);
  }
  assert.equal(new URL(page.url()).pathname, new URL(callbackUrl, stack.base).pathname, `sign-in ended on ${page.url()}`);
}

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page. Returns { violations, checked }:
 * `checked` lists the rules that found something to check and passed, so a caller can tell a
 * clean page from an audit that looked at nothing. Rules axe could not decide (`incomplete`)
 * count as violations here: a page this simple should leave no doubt.
 */
export async function axeViolations(page) {
  const loaded = await page.evaluate(() => typeof window.axe === 'object').catch(() => false);
  if (!loaded) await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
  return page.evaluate(async (tags) => {
    const result = await window.axe.run(document, { runOnly: { type: 'tag', values: tags } });
    const describe = (v, undecided) => ({
      id: undecided ? `${v.id} (undecided)` : v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({
        target: n.target.join(' '),
        html: n.html,
        summary: n.failureSummary ?? [...n.any, ...n.all, ...n.none].map((c) => c.message).join('; '),
      })),
    });
    return {
      violations: [...result.violations.map((v) => describe(v, false)), ...result.incomplete.map((v) => describe(v, true))],
      checked: result.passes.map((p) => p.id),
    };
  }, AXE_TAGS);
}

/** Violations as readable text, one block per rule and element. */
export function formatViolations(label, violations) {
  const lines = [];
  for (const v of violations) {
    lines.push(`  [${label}] ${v.id} (${v.impact}): ${v.help}\n    ${v.helpUrl}`);
    for (const n of v.nodes) {
      lines.push(`    at ${n.target}\n      ${n.html.slice(0, 200)}\n      ${(n.summary ?? '').replace(/\n/g, '\n      ')}`);
    }
  }
  return lines.join('\n');
}

/** Saves a full-page screenshot as tests/artifacts/screenshots/<name>.png; returns the path. */
export async function saveScreenshot(page, name) {
  await fsp.mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Does the element that has focus draw a visible focus indicator? Returns its description. */
export function focusIndicator(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { visible: false, what: 'nothing focused' };
    const cs = getComputedStyle(el);
    const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0;
    const ring = cs.boxShadow && cs.boxShadow !== 'none';
    const label = (el.getAttribute('aria-label') || el.textContent || el.getAttribute('name') || '').trim().replace(/\s+/g, ' ');
    return {
      visible: Boolean(outline || ring),
      focusVisible: el.matches(':focus-visible'),
      what: `<${el.tagName.toLowerCase()}> ${label.slice(0, 40)}`,
      outline: `${cs.outlineStyle} ${cs.outlineWidth} ${cs.outlineColor}`,
    };
  });
}
