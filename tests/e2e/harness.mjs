// End-to-end harness: the real worker under `wrangler dev` (workerd) with real local D1, and the
// local identity provider (tools/idp) standing in for Google.
//
//   const stack = await startStack({ vars: { SESSION_CHECK_INTERVAL: '2' } });
//   (or `vars: ({ base, port }) => ({ … })` for values that name the stack's own origin)
//   const { sessionCookie } = await signIn(stack, { email: 'a@example.com' });
//   const res = await request(stack, '/docs/', { cookie: sessionCookie });
//   await stack.stop();
//
// Run every suite (one stack per file, files one after another):
//   node --test --test-concurrency=1 tests/e2e/
// Each stack's wrangler and identity-provider output goes to tests/artifacts/<suite>-<time>-*.log.
//
// Environment knobs (all optional):
//   GATEHOUSE_E2E_SKIP_BUILD=1  (or GATEHOUSE_SKIP_BUILD=1) run the bundle already in build/worker/ instead of letting
//                               `wrangler dev` run `bash scripts/build` (and watch src/) on start
//   GATEHOUSE_IDP_BIN=path      the identity provider binary (default target/debug/gatehouse-idp)
//   GATEHOUSE_E2E_READY_TIMEOUT seconds to wait for the worker to answer (default 180)

import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
const WRANGLER = path.join(ROOT, 'node_modules', '.bin', 'wrangler');

export const CLIENT_ID = 'test-client.apps.googleusercontent.com';
export const CLIENT_SECRET = 'test-client-secret';
export const ADMIN_EMAIL = 'admin@example.com';
export const SESSION_COOKIE = 'gatehouse_session';
export const STATE_COOKIE = 'gatehouse_state';

const READY_TIMEOUT_MS = Number(process.env.GATEHOUSE_E2E_READY_TIMEOUT || 180) * 1000;
const LOG_KEEP = 400_000; // characters of process output kept in memory per process

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every process group we start is killed when this test process exits,
// whatever happens to the tests.

const liveGroups = new Set();
function killAllNow() {
  for (const pid of liveGroups) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  liveGroups.clear();
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { killAllNow(); process.exit(128 + (os.constants.signals[sig] ?? 1)); });
}

function groupAlive(pid) {
  try { process.kill(-pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

async function killGroup(pid, graceMs = 3000) {
  if (!pid) return;
  try { process.kill(-pid, 'SIGTERM'); } catch { liveGroups.delete(pid); return; }
  const deadline = Date.now() + graceMs;
  while (groupAlive(pid) && Date.now() < deadline) await sleep(100);
  if (groupAlive(pid)) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    const hard = Date.now() + 3000;
    while (groupAlive(pid) && Date.now() < hard) await sleep(100);
  }
  liveGroups.delete(pid);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `check` until it returns a truthy value (which is returned) or `timeoutMs` passes, then
 * fails with `what()`. For whatever arrives in its own time — a log line wrangler has not
 * flushed yet, a row another request writes — instead of a fixed sleep that is either too long
 * or, on a busy machine, too short.
 */
export async function eventually(check, what, { timeoutMs = 5000, everyMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`not within ${timeoutMs} ms: ${typeof what === 'function' ? what() : what}`);
    }
    await sleep(everyMs);
  }
}

/** The worker's JSON log lines (wrangler output) from character offset `from` on, parsed. */
export function logLines(stack, from = 0) {
  return stack.logs().slice(from).split('\n')
    .filter((l) => l.includes('{'))
    .map((l) => l.slice(l.indexOf('{')))
    .flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
}

/**
 * Waits for `count` JSON log lines (from offset `from`) that satisfy `match` and returns them
 * all; fails with the lines seen after 5 s.
 */
export async function waitForLog(stack, match, { from = 0, count = 1, what = 'a matching log line', timeoutMs = 5000 } = {}) {
  const matching = () => logLines(stack, from).filter(match);
  await eventually(
    () => matching().length >= count,
    () => `${count} × ${what} among:\n${logLines(stack, from).map((o) => JSON.stringify(o)).join('\n')}`,
    { timeoutMs },
  );
  return matching();
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns a command in its own process group, keeping its output in memory and in a log file. */
function spawnLogged(cmd, args, { cwd = ROOT, env = process.env, logFile }) {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const logStream = fs.createWriteStream(logFile);
  logStream.write(`$ ${[cmd, ...args].map(redactArg).join(' ')}\n`);
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  liveGroups.add(child.pid);
  const proc = { child, pid: child.pid, out: '', exited: null, logFile };
  const onData = (chunk) => {
    const s = chunk.toString('utf8');
    proc.out = (proc.out + s).slice(-LOG_KEEP);
    logStream.write(s);
    for (const l of proc.listeners) l(proc.out);
  };
  proc.listeners = new Set();
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  proc.exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      proc.exited = { code, signal };
      logStream.write(`\n[process exited: code=${code} signal=${signal}]\n`);
      resolve(proc.exited);
    });
    child.on('error', (err) => {
      proc.exited = { code: null, signal: null, error: err };
      onData(Buffer.from(`\n[spawn error: ${err.message}]\n`));
      resolve(proc.exited);
    });
  });
  proc.closeLog = () => new Promise((r) => logStream.end(r));
  return proc;
}

function redactArg(a) {
  return String(a).replace(/^(SESSION_KEYS|GOOGLE_CLIENT_SECRET):.*/, '$1:[redacted]');
}

function tail(text, n = 6000) {
  return text.length > n ? '…' + text.slice(-n) : text;
}

function run(cmd, args, { cwd = ROOT, env = process.env, timeout = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, timeout, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n$ ${[cmd, ...args].join(' ')}\nstdout:\n${tail(stdout)}\nstderr:\n${tail(stderr)}`;
        reject(err);
      } else resolve({ stdout, stderr });
    });
  });
}

const toolEnv = () => ({
  ...process.env,
  CI: 'true',
  NO_COLOR: '1',
  FORCE_COLOR: '0',
  WRANGLER_SEND_METRICS: 'false',
});

// ---------------------------------------------------------------------------------------------
// The identity provider

async function idpBinary() {
  const bin = process.env.GATEHOUSE_IDP_BIN || path.join(ROOT, 'target', 'debug', 'gatehouse-idp');
  if (!fs.existsSync(bin)) {
    await run('cargo', ['build', '-p', 'gatehouse-idp'], { timeout: 20 * 60_000 });
  }
  if (!fs.existsSync(bin)) throw new Error(`identity provider binary not found at ${bin}`);
  return bin;
}

async function startIdp(logFile) {
  const bin = await idpBinary();
  const proc = spawnLogged(bin, ['--port', '0', '--client-id', CLIENT_ID, '--client-secret', CLIENT_SECRET], {
    env: toolEnv(),
    logFile,
  });
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error('identity provider did not print its ready line within 60 s')), 60_000);
    const check = (out) => {
      const m = /gatehouse-idp listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) done(null, m[1]);
    };
    function done(err, value) {
      clearTimeout(timer);
      proc.listeners.delete(check);
      if (err) reject(err); else resolve(value);
    }
    proc.listeners.add(check);
    check(proc.out);
    proc.exitPromise.then((e) => done(new Error(`identity provider exited before it was ready (${JSON.stringify(e)})`)));
  }).catch((err) => {
    err.message += `\nidentity provider output:\n${tail(proc.out)}`;
    throw err;
  });
  return { proc, origin };
}

// ---------------------------------------------------------------------------------------------
// The worker

/** A copy of wrangler.toml without [build] (so no build and no watching of src/), absolute paths. */
function prebuiltConfig(dir, assets = null, assetsSettings = '', main = null) {
  let toml = fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8');
  toml = toml.replace(/^\[build\][\s\S]*?(?=^\[)/m, '');
  const abs = (rel) => JSON.stringify(path.join(ROOT, rel));
  toml = toml.replace(/^main\s*=\s*"([^"]*)"/m, (_, p) => `main = ${main ? JSON.stringify(main) : abs(p)}`);
  toml = toml.replace(/^directory\s*=\s*"([^"]*)"/m, (_, p) => `directory = ${assets ? JSON.stringify(assets) : abs(p)}`);
  toml = toml.replace(/^migrations_dir\s*=\s*"([^"]*)"/m, (_, p) => `migrations_dir = ${abs(p)}`);
  // Extra [assets] lines, e.g. `not_found_handling = "single-page-application"`.
  if (assetsSettings) toml = toml.replace(/^run_worker_first\s*=.*$/m, (line) => `${line}\n${assetsSettings}`);
  const file = path.join(dir, 'wrangler.e2e.toml');
  fs.writeFileSync(file, toml);
  if (!fs.existsSync(path.join(ROOT, 'build', 'worker', 'shim.mjs'))) {
    throw new Error('a prebuilt bundle is needed but build/worker/shim.mjs does not exist: run `bash scripts/build` first');
  }
  return file;
}

function suiteName(name) {
  if (name) return name;
  const script = process.argv[1] ? path.basename(process.argv[1]) : 'stack';
  return script.replace(/\.test\.mjs$|\.mjs$/, '');
}

/**
 * Starts the identity provider and the worker (`wrangler dev`, local D1 in a temp dir with the
 * migrations applied). Returns { base, idp, persistDir, sessionKeys, d1(sql), logs(), stop() }.
 * `vars` are added to or replace the test configuration; `assets` serves another directory than
 * public/; `assetsSettings` adds lines to [assets] (e.g. not_found_handling); `main` serves another
 * entry module (the store contract worker).
 */
export async function startStack({ vars = {}, name, assets = null, assetsSettings = '', main = null } = {}) {
  const label = `${suiteName(name)}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const procs = [];
  let persistDir = null;
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(procs.map((p) => killGroup(p.pid)));
    await Promise.all(procs.map((p) => p.closeLog()));
    if (persistDir) await fsp.rm(persistDir, { recursive: true, force: true });
  };

  try {
    persistDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gatehouse-e2e-'));

    const idp = await startIdp(path.join(ARTIFACTS, `${label}-idp.log`));
    procs.push(idp.proc);

    await run(WRANGLER, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', persistDir], { env: toolEnv() });

    const sessionKeys = {
      keys: [{ kty: 'oct', kid: 'test-1', alg: 'HS256', k: randomBytes(32).toString('base64url') }],
    };
    // An empty env file: wrangler then reads neither .dev.vars nor .env from the repo, so a
    // developer's local secrets cannot change what the tests see.
    const envFile = path.join(persistDir, 'empty.env');
    await fsp.writeFile(envFile, '');

    const port = await freePort();
    const inspectorPort = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const allVars = {
      GOOGLE_CLIENT_ID: CLIENT_ID,
      GOOGLE_CLIENT_SECRET: CLIENT_SECRET,
      SESSION_KEYS: JSON.stringify(sessionKeys),
      GOOGLE_ISSUER: idp.origin,
      GOOGLE_AUTHORIZATION_URL: `${idp.origin}/o/oauth2/v2/auth`,
      GOOGLE_TOKEN_URL: `${idp.origin}/token`,
      GOOGLE_JWKS_URL: `${idp.origin}/oauth2/v3/certs`,
      // Used only where a suite sets RISC_ENABLED=true.
      RISC_CONFIGURATION_URL: `${idp.origin}/.well-known/risc-configuration`,
      ADMIN_EMAILS: ADMIN_EMAIL,
      // `vars` may be a function of the stack's origin and port (e.g. SITES, which names them).
      ...(typeof vars === 'function' ? vars({ base, port }) : vars),
    };
    // One wrangler dev on this port and state; `restart` replaces it (same origin, same D1),
    // e.g. to change SESSION_KEYS the way a deployment would.
    let currentVars = allVars;
    let wrangler = null;
    let launches = 0;
    const launch = async () => {
      launches += 1;
      const args = [
        'dev',
        '--ip', '127.0.0.1',
        '--port', String(port),
        '--inspector-port', String(inspectorPort),
        '--persist-to', persistDir,
        '--env-file', envFile,
        '--show-interactive-dev-session=false',
        '--log-level', 'log', // 'info' would hide the worker's own console.log lines
        // `GET /__scheduled?cron=…` fires the worker's scheduled handler (the cron trigger;
        // tests/e2e/prune.test.mjs). wrangler's own /cdn-cgi/handler/scheduled cannot: with
        // [assets] it reaches the assets router, which has no scheduled handler.
        '--test-scheduled',
      ];
      // `assets`: another directory in place of public/ (needs the bundle built, as make test does).
      if (assets || assetsSettings || main || process.env.GATEHOUSE_E2E_SKIP_BUILD === '1' || process.env.GATEHOUSE_SKIP_BUILD === '1') args.push('--config', prebuiltConfig(persistDir, assets, assetsSettings, main));
      for (const [k, v] of Object.entries(currentVars)) args.push('--var', `${k}:${v}`);
      const logName = `${label}-wrangler${launches > 1 ? `-${launches}` : ''}.log`;
      wrangler = spawnLogged(WRANGLER, args, { env: toolEnv(), logFile: path.join(ARTIFACTS, logName) });
      procs.push(wrangler);
      await waitForWorker(base, wrangler);
    };
    await launch();
    const restart = async (changedVars = {}) => {
      await killGroup(wrangler.pid);
      await wrangler.closeLog();
      currentVars = { ...currentVars, ...changedVars };
      await launch();
    };

    const d1 = async (sql) => {
      // The local database is one SQLite file that wrangler dev holds open too: a query may meet
      // its lock (SQLITE_BUSY) for a moment, and is then tried again (a refused batch changed
      // nothing), as `gatehouse users` does (tools/cli/src/wrangler.rs, retry_busy).
      let stdout;
      for (let attempt = 1; ; attempt++) {
        try {
          ({ stdout } = await run(
            WRANGLER,
            ['d1', 'execute', 'DB', '--local', '--persist-to', persistDir, '--json', '--command', sql],
            { env: toolEnv() },
          ));
          break;
        } catch (err) {
          if (attempt >= 6 || !/SQLITE_BUSY/.test(err.message)) throw err;
          await sleep(100 * 2 ** (attempt - 1));
        }
      }
      const start = stdout.search(/[[{]/);
      const parsed = JSON.parse(start > 0 ? stdout.slice(start) : stdout);
      if (!Array.isArray(parsed)) throw new Error(`d1 execute: unexpected output ${tail(stdout, 2000)}`);
      return parsed.at(-1)?.results ?? [];
    };

    return {
      base,
      idp: idp.origin,
      persistDir,
      sessionKeys,
      d1,
      logs: () => procs.filter((p) => p !== idp.proc).map((p) => p.out).join('\n'),
      restart,
      idpLogs: () => idp.proc.out,
      wranglerLogFile: wrangler.logFile,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForWorker(base, proc) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = null;
  while (Date.now() < deadline) {
    if (proc.exited) {
      throw new Error(`wrangler dev exited before the worker answered (${JSON.stringify(proc.exited)}); log ${proc.logFile}:\n${tail(proc.out)}`);
    }
    if (/Running custom build `[^`]*` failed/.test(proc.out)) {
      throw new Error(`the worker build failed; log ${proc.logFile}:\n${tail(proc.out)}`);
    }
    try {
      const res = await fetch(`${base}/auth/csrf`, { redirect: 'manual', signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      return res.status;
    } catch (e) {
      lastError = e;
    }
    await sleep(250);
  }
  throw new Error(`worker at ${base} did not answer within ${READY_TIMEOUT_MS / 1000} s (last error: ${lastError?.cause?.code ?? lastError?.message}); log ${proc.logFile}:\n${tail(proc.out)}`);
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/**
 * One request with manual redirects. Returns { status, headers, body, setCookies, location, url }
 * where `location` is the Location header resolved against the request URL (a URL) or null.
 */
export async function request(stackOrBase, pathOrUrl, { method = 'GET', cookie, headers = {}, body, accept } = {}) {
  const base = typeof stackOrBase === 'string' ? stackOrBase : stackOrBase.base;
  const url = new URL(pathOrUrl, base);
  const h = { ...headers };
  if (cookie !== undefined && cookie !== null) h.cookie = cookie;
  if (accept) h.accept = accept;
  let res;
  let text;
  try {
    res = await fetch(url, { method, headers: h, body, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
    text = method === 'HEAD' ? '' : await res.text();
  } catch (err) {
    // A request that hangs or breaks says which one, and what the worker logged meanwhile. A
    // new Error: a timeout's DOMException has a read-only `message`.
    const logs = typeof stackOrBase === 'string' ? '' : `\nworker log (tail):\n${tail(stackOrBase.logs(), 4000)}`;
    throw new Error(`${method} ${url.pathname}${url.search}: ${err?.name}: ${err?.message}${logs}`, { cause: err });
  }
  const loc = res.headers.get('location');
  return {
    status: res.status,
    headers: res.headers,
    body: text,
    setCookies: res.headers.getSetCookie(),
    location: loc === null ? null : new URL(loc, url),
    rawLocation: loc,
    url,
    json() { return JSON.parse(text); },
    describe() {
      return `${method} ${url} → ${res.status}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text.slice(0, 2000)}`;
    },
  };
}

/** A request sent byte for byte as given (no URL normalisation by the client). */
export function rawRequest(stack, rawPath, { method = 'GET', headers = {} } = {}) {
  const { hostname, port } = new URL(stack.base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path: rawPath, headers, timeout: 30_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Cookies

/** Parses one Set-Cookie header: { name, value, attrs } with attribute names lower-cased. */
export function parseSetCookie(header) {
  const [pair, ...rest] = header.split(';');
  const eq = pair.indexOf('=');
  const name = (eq < 0 ? pair : pair.slice(0, eq)).trim();
  const value = eq < 0 ? '' : pair.slice(eq + 1).trim();
  const attrs = {};
  for (const part of rest) {
    const i = part.indexOf('=');
    const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
    if (!k) continue;
    attrs[k] = i < 0 ? true : part.slice(i + 1).trim();
  }
  return { name, value, attrs, raw: header };
}

/** The Set-Cookie (parsed) for `name` in a response or list of headers, the last one if several. */
export function findSetCookie(resOrList, name) {
  const list = Array.isArray(resOrList) ? resOrList : resOrList.setCookies;
  const found = list.map(parseSetCookie).filter((c) => c.name === name);
  return found.at(-1) ?? null;
}

/** Does this Set-Cookie delete the cookie (Max-Age=0 or less, or Expires in the past)? */
export function clearsCookie(c) {
  if (!c) return false;
  if (c.attrs['max-age'] !== undefined) return Number(c.attrs['max-age']) <= 0;
  if (c.attrs.expires !== undefined) return Date.parse(c.attrs.expires) <= Date.now();
  return false;
}

/** "name=value" of a Set-Cookie that sets (not clears) the session cookie, or null. */
export function sessionCookieFrom(resOrList) {
  const c = findSetCookie(resOrList, SESSION_COOKIE);
  if (!c || !c.value || clearsCookie(c)) return null;
  return `${c.name}=${c.value}`;
}

export function cookieValue(cookiePair) {
  return cookiePair.slice(cookiePair.indexOf('=') + 1);
}

// ---------------------------------------------------------------------------------------------
// Sign-in, exactly as a browser does it

/** A stable numeric Google-like `sub` for an email, so one person signs in as one account. */
export function subFor(email) {
  const hex = createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 15);
  return '1' + BigInt('0x' + hex).toString().padStart(20, '0').slice(-20);
}

export function uniqueEmail(prefix = 'user') {
  return `${prefix}-${randomBytes(5).toString('hex')}@example.com`;
}

/**
 * Starts a sign-in as a browser does (GET /auth/login/google, then the provider, which
 * auto-approves thanks to the test_* parameters) and stops before the callback. Throws (with the
 * exchange) if a step does not answer as a browser needs it to.
 * Returns { login, stateCookie, authorizeUrl, callbackUrl, idpResponse }.
 */
export async function startSignIn(stack, { email = 'user@example.com', name = 'Test User', callbackUrl = '/docs/', sub, extraIdpParams = {}, userAgent } = {}) {
  const loginPath = callbackUrl === undefined || callbackUrl === null
    ? '/auth/login/google'
    : `/auth/login/google?callbackUrl=${encodeURIComponent(callbackUrl)}`;
  const headers = userAgent ? { 'user-agent': userAgent } : {};
  const login = await request(stack, loginPath, { accept: 'text/html', headers });
  if (login.status !== 302 || !login.location) {
    throw new Error(`sign-in start did not redirect to the provider:\n${login.describe()}`);
  }
  const stateCookie = findSetCookie(login, STATE_COOKIE);
  if (!stateCookie || !stateCookie.value) {
    throw new Error(`sign-in start set no ${STATE_COOKIE} cookie:\n${login.describe()}`);
  }
  const params = new URLSearchParams({
    test_email: email,
    test_name: name,
    test_sub: sub ?? subFor(email),
    ...extraIdpParams,
  });
  const raw = login.rawLocation;
  const idpUrl = new URL(raw + (raw.includes('?') ? '&' : '?') + params.toString(), login.url);
  const idpResponse = await request(stack, idpUrl, { accept: 'text/html', headers });
  if (idpResponse.status !== 302 || !idpResponse.location) {
    throw new Error(`identity provider did not redirect back:\n${idpResponse.describe()}`);
  }
  return { login, stateCookie, authorizeUrl: login.location, callbackUrl: idpResponse.location, idpResponse, headers };
}

/**
 * The whole sign-in: startSignIn, then the callback with the state cookie.
 * Returns { response, location, setCookies, sessionCookie ("gatehouse_session=…" or null),
 * stateCookie, authorizeUrl, callbackUrl, login, idpResponse }.
 */
export async function signIn(stack, options = {}) {
  const started = await startSignIn(stack, options);
  const response = await request(stack, started.callbackUrl, {
    accept: 'text/html',
    cookie: `${STATE_COOKIE}=${started.stateCookie.value}`,
    headers: started.headers,
  });
  return {
    ...started,
    response,
    location: response.location,
    setCookies: response.setCookies,
    sessionCookie: sessionCookieFrom(response),
  };
}

/** Asserts nothing; returns the `error` code of a redirect to /auth/error, or null. */
export function errorCodeOf(location, base) {
  if (!location) return null;
  const u = new URL(location, base);
  if (u.origin !== new URL(base).origin || u.pathname !== '/auth/error') return null;
  return u.searchParams.get('error');
}

// ---------------------------------------------------------------------------------------------
// JWTs

export const b64url = (bufOrString) => Buffer.from(bufOrString).toString('base64url');
export const unb64url = (s) => Buffer.from(s, 'base64url');

export function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`not a JWS compact token: ${token.slice(0, 80)}`);
  return {
    header: JSON.parse(unb64url(parts[0]).toString('utf8')),
    payload: JSON.parse(unb64url(parts[1]).toString('utf8')),
    signature: parts[2],
    parts,
  };
}

/** Signs header+payload with an HMAC (HS256/384/512) key given as raw bytes. */
export function signHmac(header, payload, keyBytes, hash = 'sha256') {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = createHmac(hash, keyBytes).update(input).digest('base64url');
  return `${input}.${sig}`;
}

export function stackKeyBytes(stack) {
  return unb64url(stack.sessionKeys.keys[0].k);
}

export function sqlString(s) {
  return `'${String(s).replace(/'/g, "''")}'`;
}

// ---------------------------------------------------------------------------------------------
// The identity provider's control endpoints (hostile mode; see tools/idp/src/lib.rs)

/**
 * Calls a control endpoint of the stack's identity provider, e.g.
 * `idpControl(stack, 'POST', '/_control/jwks?mode=500')`. Returns the parsed JSON answer;
 * throws when the provider does not answer 2xx.
 */
export async function idpControl(stack, method, controlPath) {
  const url = new URL(controlPath, stack.idp);
  const res = await fetch(url, { method, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status}\n${text.slice(0, 2000)}`);
  return text ? JSON.parse(text) : null;
}

/**
 * Has the local provider make a Cross-Account Protection security event token and push it to
 * the worker's `/auth/risc` (`params`: event, sub, reason, state, jti, twist). Returns
 * `{ jti, set, status, body }`: what the receiver answered.
 */
export async function pushRisc(stack, params) {
  const query = new URLSearchParams({ ...params, receiver: `${stack.base}/auth/risc` });
  return idpControl(stack, 'POST', `/_control/risc?${query}`);
}

/** `{ jwks_requests, token_requests, authorization_requests }` counted by the provider since its start or last reset. */
export const idpStats = (stack) => idpControl(stack, 'GET', '/_control/stats');

/** Every twist the provider knows: `[{ name, kind, acceptable }]`. */
export async function idpTwists(stack) {
  return (await idpControl(stack, 'GET', '/_control/twists')).twists;
}
