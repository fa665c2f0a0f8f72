import { startStack, uniqueEmail } from '../e2e/harness.mjs';
import { launchBrowser, signInThroughChooser } from './browser.mjs';
const stack = await startStack({ name: 'browser-debug' });
const browser = await launchBrowser();
try {
  const context = await browser.newContext({ baseURL: stack.base });
  const page = await context.newPage();
  page.on('response', async (r) => { if (r.request().isNavigationRequest()) console.log(r.request().method(), r.url(), r.status(), JSON.stringify(r.request().headers())); });
  await signInThroughChooser(page, stack, { callbackUrl: '/', email: uniqueEmail('dbg') });
  await page.goto('/auth/logout');
  console.log(await page.content());
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.waitForTimeout(2000);
  console.log(page.url(), await page.content());
  console.log(stack.logs().slice(-3000));
} finally { await browser.close(); await stack.stop(); }
