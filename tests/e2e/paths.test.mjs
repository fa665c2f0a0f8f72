// What the origin receives is what the gate decided (issue 13, items 1–3): paths that servers
// read in different ways are refused before anything reaches the origin; the names under which
// Workers Static Assets serves one file are one path for the rules; a session token never
// reaches the origin. Judged by what a real origin (a local HTTP server behind UPSTREAM_URL) and
// real Static Assets (wrangler dev) receive and serve.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ADMIN_EMAIL, ROOT, cookieValue, rawRequest, request, signIn, startStack, uniqueEmail } from './harness.mjs';

/** An origin that records every request line and answers with what it received, as JSON. */
function startEchoOrigin() {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, headers: req.headers, secret: req.url.startsWith('/private') || req.url.startsWith('/admin') }));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, seen, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

// Each is read as a public (or admin-free) path by a server that cuts `;`, decodes %2F/%5C,
// merges `//` or decodes twice, and as /private/… or /admin/… by a prefix router (nginx
// `location`, Express `app.use`, Pages Functions, `_redirects`).
const SPELLINGS = [
  '/private/..;/public/x', '/private/..%2Fpublic%2Fx', '/private/..%2fpublic%2fx', '/private/..%5Cpublic%5Cx',
  '/private/..%5cpublic%5cx', '/private/.;/x', '/private/%2e%2e;/public/x', '/private;x/y', '/private%3bx/y',
  '/private/..%252fpublic%252fx', '/private/%252e%252e/public/x', '/private//..;/public/x',
  '/admin/..;/public/x', '/admin/..%2Fpublic%2Fx', '/admin/..%5Cpublic%5Cx', '/admin;/x', '/admin%2Fx',
];

describe('the origin gets exactly the path the gate decided (UPSTREAM_URL)', () => {
  let stack;
  let echo;
  let user;
  before(async () => {
    echo = await startEchoOrigin();
    stack = await startStack({
      name: 'paths-upstream',
      vars: { UPSTREAM_URL: echo.origin, PUBLIC_PATHS: '/public/*', ROLE_PATHS: '/admin/*=admin' },
    });
    const r = await signIn(stack, { email: uniqueEmail('paths'), callbackUrl: '/' });
    assert.ok(r.sessionCookie, r.response.describe());
    user = r.sessionCookie;
  });
  after(async () => {
    await stack?.stop();
    await new Promise((r) => (echo ? echo.server.close(r) : r()));
  });

  test('no spelling read differently by different servers reaches the origin, for a visitor or a user', async () => {
    assert.ok(SPELLINGS.length >= 15);
    for (const spelling of SPELLINGS) {
      for (const cookie of [undefined, user]) {
        const before = echo.seen.length;
        const headers = { accept: 'text/html', ...(cookie ? { cookie } : {}) };
        const res = await rawRequest(stack, spelling, { headers });
        const reached = echo.seen.slice(before).map((s) => s.url);
        const who = cookie ? 'user' : 'visitor';
        // The admin-only prefix must never be reached by a plain user; nothing private by a visitor.
        const leaked = reached.filter((u) => u.startsWith('/admin') || (!cookie && u.startsWith('/private')));
        assert.deepEqual(leaked, [], `${spelling} (${who}) reached the origin as ${JSON.stringify(reached)}: ${res.status}`);
        assert.equal(res.status, 400, `${spelling} (${who}): ${res.status} ${res.body.slice(0, 200)}`);
        assert.doesNotMatch(res.body, /"secret":true/);
      }
    }
  });

  test('ordinary paths still reach the origin exactly as sent', async () => {
    for (const [spelling, cookie] of [['/public/a%20b.html', undefined], ['/private/caf%C3%A9?x=%2F', user], ['/public/', undefined]]) {
      const res = await rawRequest(stack, spelling, { headers: { accept: 'application/json', ...(cookie ? { cookie } : {}) } });
      assert.equal(res.status, 200, `${spelling}: ${res.status} ${res.body.slice(0, 200)}`);
      assert.equal(JSON.parse(res.body).url, spelling);
    }
  });

  test('a session token sent as a Bearer credential never reaches the origin, in any spelling of the scheme', async () => {
    const token = cookieValue(user);
    const cases = [
      ['/public/x', { authorization: `Bearer ${token}` }],
      ['/public/x', { authorization: `bearer ${token}` }],
      ['/private/x', { authorization: `bearer ${token}`, cookie: user }],
      ['/private/x', { authorization: `BEARER ${token}`, cookie: user }],
    ];
    for (const [p, headers] of cases) {
      const res = await request(stack, p, { headers, accept: 'application/json' });
      assert.equal(res.status, 200, res.describe());
      const seen = res.json();
      assert.equal(seen.headers.authorization, undefined, `${p} with ${headers.authorization.slice(0, 7)}: the token reached the origin`);
      assert.ok(!res.body.includes(token), `${p}: the token reached the origin`);
    }
    // The site's own credentials on its public paths are its business.
    const own = await request(stack, '/public/api', { headers: { authorization: 'Bearer site-api-key' }, accept: 'application/json' });
    assert.equal(own.json().headers.authorization, 'Bearer site-api-key');
  });
});

/** A site with the files whose names Static Assets aliases. */
function aliasSite() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-aliases-'));
  const files = {
    'index.html': '<h1>Home page</h1>',
    'public/index.html': '<h1>Public page</h1>',
    'finance/q3.html': '<h1>Q3 figures SECRET-Q3</h1>',
    'reports/index.html': '<h1>Reports SECRET-REPORTS</h1>',
    'docs.html': '<h1>Docs SECRET-DOCS</h1>',
    'docs/a.html': '<h1>Docs A SECRET-DOCS-A</h1>',
  };
  for (const [name, body] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), `<!doctype html><title>t</title>${body}\n`);
  }
  return dir;
}

const ROLE_PATHS = '/finance/q3.html=finance,/reports/index.html=finance,/docs/*=finance';
const ALIASES = [
  '/finance/q3', '/finance/q3/', '/finance/q3.html', '/finance/q3/index.html',
  '/reports', '/reports/', '/reports/index', '/reports/index.html',
  '/docs', '/docs/', '/docs.html', '/docs/index.html', '/docs/a', '/docs/a.html',
];

describe('Static Assets aliases of one file are one path for the rules', () => {
  let stack;
  let dir;
  before(async () => {
    dir = aliasSite();
    stack = await startStack({ name: 'paths-aliases', assets: dir, vars: { PUBLIC_PATHS: '/public/*', ROLE_PATHS } });
  });
  after(async () => {
    await stack?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('each alias really serves the protected file (to an admin)', async () => {
    const admin = await signIn(stack, { email: ADMIN_EMAIL, callbackUrl: '/' });
    assert.ok(admin.sessionCookie, admin.response.describe());
    const served = {};
    for (const alias of ALIASES) {
      const res = await request(stack, alias, { cookie: admin.sessionCookie, accept: 'text/html' });
      served[alias] = res.status === 200 ? (/SECRET-[A-Z0-9-]+/.exec(res.body)?.[0] ?? 'other') : `${res.status} ${res.rawLocation ?? ''}`;
    }
    // html_handling (auto-trailing-slash, the default) serves these without the file's own name.
    assert.equal(served['/finance/q3'], 'SECRET-Q3', JSON.stringify(served));
    assert.equal(served['/reports/'], 'SECRET-REPORTS', JSON.stringify(served));
    assert.equal(served['/docs'], 'SECRET-DOCS', JSON.stringify(served));
    assert.equal(served['/docs/a'], 'SECRET-DOCS-A', JSON.stringify(served));
  });

  test('no alias serves a protected file without the role, nor without a session', async () => {
    const r = await signIn(stack, { email: uniqueEmail('alias'), callbackUrl: '/' });
    assert.ok(r.sessionCookie, r.response.describe());
    for (const alias of ALIASES) {
      const res = await request(stack, alias, { cookie: r.sessionCookie, accept: 'text/html' });
      assert.equal(res.status, 403, `${alias} for a user without the role: ${res.status} ${res.rawLocation ?? ''}`);
      assert.doesNotMatch(res.body, /SECRET/, alias);
      const anonymous = await request(stack, alias, { accept: 'text/html' });
      assert.equal(anonymous.status, 302, `${alias} for a visitor: ${anonymous.status}`);
      assert.doesNotMatch(anonymous.body, /SECRET/, alias);
    }
    const home = await request(stack, '/', { cookie: r.sessionCookie, accept: 'text/html' });
    assert.match(home.body, /Home page/, 'paths without a role rule only need a session');
  });
});

describe('a single-page-application fallback that would expose a protected page', () => {
  let stack;
  let dir;
  const execFileP = promisify(execFile);
  const cli = path.join(ROOT, 'target', 'debug', 'gatehouse');
  const SPA = 'not_found_handling = "single-page-application"';
  before(async () => {
    dir = aliasSite();
    stack = await startStack({ name: 'paths-spa', assets: dir, assetsSettings: SPA, vars: { PUBLIC_PATHS: '/public/*' } });
  });
  after(async () => {
    await stack?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('is real: Static Assets answers a missing public path with the protected /index.html', async () => {
    const res = await request(stack, '/public/no-such-page', { accept: 'text/html' });
    assert.equal(res.status, 200, res.describe());
    assert.match(res.body, /Home page/, 'the SPA fallback serves index.html');
    const direct = await request(stack, '/', { accept: 'text/html' });
    assert.equal(direct.status, 302, 'while / itself needs a session');
  });

  test('so `gatehouse check` (run by scripts/build before wrangler dev and deploy) refuses it', async () => {
    const toml = (assets, vars) => `name = "x"\nmain = "js/entry.mjs"\n[assets]\ndirectory = ${JSON.stringify(dir)}\nbinding = "ASSETS"\nrun_worker_first = true\n${assets}\n[vars]\n${vars}\n`;
    const file = path.join(dir, '..', `${path.basename(dir)}.toml`);
    try {
      fs.writeFileSync(file, toml(SPA, 'PUBLIC_PATHS = "/public/*"'));
      const refused = await execFileP(cli, ['check', '--config', file]).then(() => null, (e) => e);
      assert.ok(refused, 'gatehouse check accepted an exposing configuration');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /single-page-application/);
      fs.writeFileSync(file, toml('', 'PUBLIC_PATHS = "/public/*"'));
      const { stdout } = await execFileP(cli, ['check', '--config', file]);
      assert.match(stdout, /safe to serve/);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
