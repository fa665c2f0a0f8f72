#!/usr/bin/env node
// `make bench`: what the gate costs, side by side on the real runtime (design.md, "Performance
// contract"). One raw `workerd serve` process (no wrangler proxy, which caps everything near
// 1.5k req/s) runs every contestant behind the same static ASSETS worker; wrk loads them in
// interleaved rounds from another core; in-worker loops time the functions themselves.
//
//   node bench/run.mjs               full run (≈ 20 min): 2 runs × 3 rounds × 6 s per cell
//                                    (contestant × request mix), medians; the spread between
//                                    the two runs is reported beside each ratio
//   BENCH_QUICK=1 node bench/run.mjs smoke run: 1 run × 1 round × 2 s, fewer cold starts
//   BENCH_REPEAT=n …                 n runs of the load phase instead of 2
//   BENCH_DIAG=1 …                   adds a diagnostic row: gatehouse-plain without the private-
//                                    response copy (Cache-Control/Vary), to see what that copy costs
//   BENCH_NO_BUILD=1 …               reuse the last builds (only to work on the bench itself)
//
// Everything generated (configs, bundles, bench builds, logs) goes to bench/out/ (git-ignored);
// the results to bench/results.json.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'bench/out');
const CONFIGS = {
  bench: path.join(OUT, 'workerd.capnp'),
  'js-fwd': path.join(OUT, 'cold-js-fwd.capnp'),
  gatehouse: path.join(OUT, 'cold-gatehouse.capnp'),
};
const WORKERD = path.join(ROOT, 'node_modules/@cloudflare/workerd-linux-64/bin/workerd');
const NODE_BIN = path.join(ROOT, 'node_modules/.bin');

const QUICK = process.env.BENCH_QUICK === '1';
// Throughput: wrk, one thread, 32 keep-alive connections, enough to keep one workerd core
// saturated. Latency: a separate wrk run on one connection (bench/latency.lua), i.e. the time
// one request takes through the gate when it does not queue behind others.
const LOAD = QUICK
  ? { rounds: 1, seconds: 2, warmup: 1, connections: 32, latencySeconds: 1 }
  : { rounds: 3, seconds: 6, warmup: 2, connections: 32, latencySeconds: 2 };
// Runs of the whole load phase (each its own interleaved rounds): the spread between runs says
// how far one run's ratios can be trusted on this machine.
const REPEAT = Number(process.env.BENCH_REPEAT ?? (QUICK ? 1 : 2));
const COLD_RUNS = QUICK ? 2 : 5;
const CORES = os.cpus().length;
// workerd on core 0, wrk on core 1, so the load generator never steals the runtime's CPU.
const PIN = CORES >= 2 ? { workerd: '0', wrk: '1' } : null;

// The contestants (one worker each): `gatehouse` is the release bundle with HS256 sessions,
// `gatehouse-eddsa` with EdDSA. `gatehouse-plain`: the same as `gatehouse`, on a path where ASSETS
// does not mark its response private itself (no `_headers`), so Gatehouse copies it to set
// Cache-Control and Vary (measured with the `same` mix only).
const CONTESTANTS = ['js-fwd', 'rs-fwd', 'authjs', 'gatehouse', 'gatehouse-eddsa', 'gatehouse-plain'];
// The request mixes (issue 15), each measured for every contestant but gatehouse-plain:
//   same    one cookie asks for one URL again and again (the best case: every per-isolate
//           memory answers);
//   browse  VISITORS visitors × PAGES paths, each request a random visitor and a random path:
//           16,384 URL+cookie pairs, far more than any per-isolate memory of requests holds;
//   cold    every request a different valid token (FRESH_TOKENS in rotation, more than any
//           per-isolate memory holds), one URL: every request pays the full check.
// js-fwd and rs-fwd carry the same cookies as gatehouse (same request bytes) and ignore them.
const MIXES = ['same', 'browse', 'cold'];
const VISITORS = 256;
const PAGES = 64;
// More than js/verdicts.mjs (MAX_ENTRIES 1024) and src/session/verified.rs (CAPACITY 2048) hold.
const FRESH_TOKENS = 4096;
/** The path each row requests (bench/workers/assets.mjs: /plain/ answers without private headers). */
const pathFor = (name) => (name === 'gatehouse-plain' || name === 'diag-gh-norewrap' ? '/plain/' : '/');
// Not contestants: variants of the entry (bench/workers/diag-*.mjs), to see where its time per
// request goes.
const DIAG = process.env.BENCH_DIAG === '1' ? ['diag-gh-norewrap'] : [];
const ROWS = [...CONTESTANTS, ...DIAG];
/** What wrk loads: one cell per contestant and mix (`gatehouse/browse`). */
const CELLS = [
  ...MIXES.flatMap((mix) => CONTESTANTS.filter((n) => n !== 'gatehouse-plain').map((row) => ({ key: `${row}/${mix}`, row, mix }))),
  { key: 'gatehouse-plain/same', row: 'gatehouse-plain', mix: 'same' },
  ...DIAG.map((row) => ({ key: `${row}/same`, row, mix: 'same' })),
];
const CLIENT_ID = 'gatehouse-bench.apps.googleusercontent.com';
const AUTHJS_COOKIE = 'authjs.session-token'; // Auth.js's cookie name on http, also its salt
const GOOGLE_ISSUER = 'https://accounts.google.com';

// The design's targets (design.md, "Performance contract"; issue 8).
const TARGETS = {
  // Issue 15: HS256 ÷ js-fwd per mix, and EdDSA for `cold`.
  mixes: { 'gatehouse/same': 0.95, 'gatehouse/browse': 0.92, 'gatehouse/cold': 0.85, 'gatehouse-eddsa/cold': 0.75 },
  perRsFwd: 0.95,
  perJsFwd: 0.9,
  perAuthjs: 1.5,
  checkPerAuthjsDecode: 0.25,
  callbackUs: 2000,
  wasmGzipBytes: 1024 * 1024,
  cookieBytes: 1024,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const t0 = Date.now();
function step(title) {
  console.log(`\n== ${title}  (+${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs a command; its output goes to bench/out/build.log, and its tail to the console on failure. */
function run(cmd, args, { cwd = ROOT, env = process.env } = {}) {
  const log = path.join(OUT, 'build.log');
  fs.appendFileSync(log, `\n$ ${cmd} ${args.join(' ')}   (in ${cwd})\n`);
  const fd = fs.openSync(log, 'a');
  try {
    execFileSync(cmd, args, { cwd, env, stdio: ['ignore', fd, fd] });
  } catch (e) {
    const tail = fs.readFileSync(log, 'utf8').split('\n').slice(-40).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} failed (bench/out/build.log):\n${tail}`);
  } finally {
    fs.closeSync(fd);
  }
}

function capture(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', ...opts }).trim();
}

const pinned = (core, cmd, args) => (PIN ? ['taskset', ['-c', core, cmd, ...args]] : [cmd, args]);
const b64u = (x) => Buffer.from(x).toString('base64url');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One HTTP request on a fresh connection (no pooling: cold-start polls must not reuse one). */
function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Other processes on this machine (a build, a test run) would steal the cores the benchmark pins;
// so every load run records how much CPU the rest of the machine used meanwhile: all cores' busy
// time minus workerd's and our own (this process and the wrk it waited for), in cores.

const TICK = 100; // USER_HZ: /proc/stat and /proc/<pid>/stat count in 1/100 s

function busyTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f; // not idle, not iowait
  return user + nice + system + irq + softirq + steal;
}

function procTicks(pid, withChildren = false) {
  try {
    // Fields after the command's closing parenthesis; utime is the 14th field of the line.
    const rest = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const [utime, stime, cutime, cstime] = rest.slice(11, 15).map(Number);
    return utime + stime + (withChildren ? cutime + cstime : 0);
  } catch {
    return 0;
  }
}

function cpuSnapshot(workerdPid) {
  return { at: performance.now(), busy: busyTicks(), ours: procTicks(process.pid, true) + procTicks(workerdPid) };
}

/** Cores' worth of CPU used by other processes since `a`. */
function foreignCores(a, b) {
  const seconds = (b.at - a.at) / 1000;
  return Math.max(0, (b.busy - a.busy - (b.ours - a.ours)) / TICK / seconds);
}

/** Waits (up to 2 min) until other processes use < 0.1 core, so runs do not start on a busy machine. */
async function waitForQuiet(workerdPid) {
  for (let waited = 0; ; waited += 2) {
    const a = cpuSnapshot(workerdPid);
    await sleep(2000);
    const used = foreignCores(a, cpuSnapshot(workerdPid));
    if (used < 0.1) return used;
    if (waited >= 120) {
      console.log(`machine still busy (${used.toFixed(2)} core used by other processes): measuring anyway, results will be noisy`);
      return used;
    }
    if (waited === 0) console.log(`machine busy (${used.toFixed(2)} core used by other processes): waiting up to 2 min …`);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Builds: the release bundle exactly as deployed, plus the bench-only variants.

function toolEnv() {
  const env = { ...process.env };
  delete env.GATEHOUSE_SKIP_BUILD; // always measure the current source
  return env;
}

function build() {
  step('setup and builds (log: bench/out/build.log)');
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'build.log'), '');
  const env = toolEnv();
  console.log('setup (wrk) …');
  run('bash', ['scripts/setup', '--bench'], { env });
  // The contestant is build/, the real release bundle (opt-level "s", LTO), rebuilt now.
  console.log('release build (scripts/build) …');
  run('bash', ['scripts/build'], { env });
  // worker-build with the pinned tools, as scripts/build does; the bench variants get their own
  // target dir so the main build's artifacts and fingerprints are left alone.
  const wb = {
    ...env,
    WASM_BINDGEN_BIN: capture('bash', ['-c', 'command -v wasm-bindgen']),
    WASM_OPT_BIN: path.join(NODE_BIN, 'wasm-opt'),
    ESBUILD_BIN: path.join(NODE_BIN, 'esbuild'),
    CARGO_TARGET_DIR: path.join(OUT, 'target'),
  };
  console.log('bench build of gatehouse (feature "bench") → bench/out/gh-bench …');
  run('worker-build', ['--release', '--out-dir', 'bench/out/gh-bench', '.', '--features', 'bench'], { env: wb });
  console.log('rs-fwd → bench/out/rs-fwd …');
  run('worker-build', ['--release', '--out-dir', '../out/rs-fwd'], { cwd: path.join(ROOT, 'bench/rs-fwd'), env: wb });
  // The Auth.js workers are bundled the way wrangler bundles a JS worker (esbuild, worker conditions).
  for (const name of ['authjs', 'micro-authjs']) {
    console.log(`bundle ${name}.mjs …`);
    run(path.join(NODE_BIN, 'esbuild'), [
      `bench/workers/${name}.mjs`, '--bundle', '--format=esm', '--platform=neutral',
      '--conditions=workerd,worker,browser', '--main-fields=module,main', `--outfile=bench/out/${name}.mjs`,
    ]);
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Keys, tokens and cookies, made here with node:crypto and @auth/core, independently of Rust.

function keygen(alg) {
  // The bench's own target dir: never waits on (or disturbs) a build running in target/.
  const env = { ...process.env, CARGO_TARGET_DIR: path.join(OUT, 'target') };
  return JSON.parse(capture('cargo', ['run', '-q', '-p', 'gatehouse-cli', '--', 'keygen', '--alg', alg], { env }));
}

/** A session JWT with the header and claims of src/session/token.rs, signed with the set's first key. */
function signSession(jwks, claims) {
  const jwk = jwks.keys[0];
  const alg = jwk.kty === 'oct' ? 'HS256' : 'EdDSA';
  const input = `${b64u(JSON.stringify({ alg, kid: jwk.kid, typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  const sig =
    alg === 'HS256'
      ? crypto.createHmac('sha256', Buffer.from(jwk.k, 'base64url')).update(input).digest()
      : crypto.sign(null, Buffer.from(input), crypto.createPrivateKey({
          key: { kty: 'OKP', crv: 'Ed25519', d: jwk.d, x: jwk.x },
          format: 'jwk',
        }));
  return `${input}.${b64u(sig)}`;
}

/** A typical signed-in user: Google-sized ids and picture URL. */
function person(name = 'Ada Lovelace') {
  return {
    sub: b64u(crypto.randomBytes(16)), // random.token(16), as sign-in makes them
    sid: b64u(crypto.randomBytes(16)),
    email: 'ada.lovelace@example.com',
    name,
    picture: `https://lh3.googleusercontent.com/a/ACg8oc${b64u(crypto.randomBytes(48))}=s96-c`,
  };
}

function sessionClaims(origin, who, { iat, exp }) {
  return { exp, iat, iss: origin, aud: origin, ...who, role: 'user', sxp: iat + 30 * 86400 };
}

/** An RSA-2048 key as Google's JWKS publishes it, and an ID token signed with it. */
function googleIdToken(who, nonce, now) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench-rsa-1', alg: 'RS256', use: 'sig' };
  const claims = {
    iss: GOOGLE_ISSUER, azp: CLIENT_ID, aud: CLIENT_ID, sub: '109876543210987654321',
    email: who.email, email_verified: true, at_hash: b64u(crypto.randomBytes(16)), nonce,
    name: who.name, picture: who.picture, given_name: 'Ada', family_name: 'Lovelace',
    iat: now, exp: now + 3600,
  };
  const input = `${b64u(JSON.stringify({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), privateKey);
  return { jwks: JSON.stringify({ keys: [jwk] }), idToken: `${input}.${b64u(sig)}` };
}

async function makeSecrets(ports) {
  step('keys and tokens');
  const { encode } = await import('@auth/core/jwt');
  const now = Math.floor(Date.now() / 1000);
  const who = person();
  const s = { now, who, nonce: b64u(crypto.randomBytes(16)) };
  s.keys = { hs256: keygen('hs256'), eddsa: keygen('eddsa') };
  s.origin = {
    hs256: `http://127.0.0.1:${ports.gatehouse}`,
    eddsa: `http://127.0.0.1:${ports['gatehouse-eddsa']}`,
    'hs256-plain': `http://127.0.0.1:${ports['gatehouse-plain']}`,
  };
  // exp = now + 3600: current for the whole run, so every request takes the admitted path.
  for (const alg of ['hs256', 'eddsa']) {
    const o = s.origin[alg];
    s[alg] = {
      token: signSession(s.keys[alg], sessionClaims(o, who, { iat: now, exp: now + 3600 })),
      // An expired token whose session is still live: the renewal path's input.
      expired: signSession(s.keys[alg], sessionClaims(o, who, { iat: now - 600, exp: now - 300 })),
    };
  }
  s.plain = signSession(s.keys.hs256, sessionClaims(s.origin['hs256-plain'], who, { iat: now, exp: now + 3600 }));
  s.google = googleIdToken(who, s.nonce, now);
  s.authSecret = crypto.randomBytes(32).toString('base64');
  const authjs = (p) => encode({
    token: { name: p.name, email: p.email, picture: p.picture, sub: p.sub },
    secret: s.authSecret,
    salt: AUTHJS_COOKIE,
    maxAge: 30 * 86400,
  });
  s.authjsToken = await authjs(who);
  // The `browse` and `cold` mixes: VISITORS and FRESH_TOKENS sessions of different people, one
  // cookie per line for bench/*.lua, per kind of token.
  const cookieLines = async (n) => {
    const out = { hs256: [], eddsa: [], authjs: [] };
    for (let i = 0; i < n; i++) {
      const p = person();
      for (const alg of ['hs256', 'eddsa']) {
        out[alg].push(`gatehouse_session=${signSession(s.keys[alg], sessionClaims(s.origin[alg], p, { iat: now, exp: now + 3600 }))}`);
      }
      out.authjs.push(`${AUTHJS_COOKIE}=${await authjs(p)}`);
    }
    return out;
  };
  s.mixFiles = {};
  for (const [mix, n] of [['browse', VISITORS], ['cold', FRESH_TOKENS]]) {
    s.mixFiles[mix] = {};
    for (const [kind, lines] of Object.entries(await cookieLines(n))) {
      const file = path.join(OUT, `${mix}-${kind}.txt`);
      fs.writeFileSync(file, lines.join('\n') + '\n');
      s.mixFiles[mix][kind] = file;
    }
  }
  // A site's pages and what they load: PAGES paths, none public (wrangler.toml's PUBLIC_PATHS).
  const paths = [];
  for (let i = 0; paths.length < PAGES; i++) {
    const kind = i % 4;
    paths.push(kind === 0 ? `/docs/chapter-${i}/` : kind === 1 ? `/docs/chapter-${i - 1}/figure-${i}.png`
      : kind === 2 ? `/assets/site-${i % 8}.css` : `/blog/2026/post-${i}.html`);
  }
  s.pathsFile = path.join(OUT, 'browse-paths.txt');
  fs.writeFileSync(s.pathsFile, paths.join('\n') + '\n');
  console.log(`HS256 and EdDSA session keys (gatehouse-cli keygen), tokens signed with node:crypto; Auth.js JWE ${s.authjsToken.length} B`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// 3. The workerd config: one process, every contestant on its own socket, one ASSETS worker.

function wranglerToml() {
  const toml = fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8');
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)[1];
  const vars = {};
  const block = /^\[vars\]\n([\s\S]*?)(?=^\[|$(?![\s\S]))/m.exec(toml)?.[1] ?? '';
  for (const m of block.matchAll(/^([A-Z_]+)\s*=\s*"([^"]*)"/gm)) vars[m[1]] = m[2];
  return { date, vars };
}

const str = (v) => JSON.stringify(String(v)); // capnp string literals take JSON's escapes
const embed = (file) => str(path.relative(OUT, path.join(ROOT, file)));
const esm = (name, file) => `(name = ${str(name)}, esModule = embed ${embed(file)})`;
const wasm = (name, file) => `(name = ${str(name)}, wasm = embed ${embed(file)})`;
const text = (name, value) => `(name = ${str(name)}, text = ${str(value)})`;
const assets = `(name = "ASSETS", service = "assets")`;

function worker(date, modules, bindings) {
  return `(\n    compatibilityDate = ${str(date)},\n    modules = [\n      ${modules.join(',\n      ')}\n    ],\n    bindings = [\n      ${bindings.join(',\n      ')}\n    ]\n  )`;
}

/** wrangler.toml's [vars] (PUBLIC_PATHS, SESSION_CHECK_INTERVAL …) plus the secrets and AUTH_URL. */
function gatehouseBindings(s, alg, vars, site = alg) {
  const all = {
    ...vars,
    GOOGLE_CLIENT_ID: CLIENT_ID,
    GOOGLE_CLIENT_SECRET: 'bench-client-secret',
    SESSION_KEYS: JSON.stringify(s.keys[alg]),
    AUTH_URL: s.origin[site],
  };
  return [assets, ...Object.entries(all).map(([k, v]) => text(k, v))];
}

function workers(s) {
  const { date, vars } = wranglerToml();
  // Module names are repo paths, so the bundles' relative imports resolve as on disk:
  // js/entry.mjs imports ../build/index.js, which imports ./index_bg.wasm.
  const entry = [
    esm('js/entry.mjs', 'js/entry.mjs'),
    esm('js/filter.mjs', 'js/filter.mjs'),
    esm('js/private.mjs', 'js/private.mjs'),
    esm('js/verdicts.mjs', 'js/verdicts.mjs'),
    esm('build/index.js', 'build/index.js'),
    wasm('build/index_bg.wasm', 'build/index_bg.wasm'),
  ];
  const gatehouse = (alg, site = alg) => worker(date, entry, gatehouseBindings(s, alg, vars, site));
  const micro = (alg) =>
    worker(date, [
      esm('bench/workers/micro-gatehouse.mjs', 'bench/workers/micro-gatehouse.mjs'),
      esm('bench/workers/measure.mjs', 'bench/workers/measure.mjs'),
      esm('js/verdicts.mjs', 'js/verdicts.mjs'),
      esm('bench/out/gh-bench/index.js', 'bench/out/gh-bench/index.js'),
      wasm('bench/out/gh-bench/index_bg.wasm', 'bench/out/gh-bench/index_bg.wasm'),
    ], gatehouseBindings(s, alg, vars));
  // The whole entry (js/entry.mjs) against a bare forward, in one isolate, stub ASSETS.
  const entryLoop = worker(date, [
    esm('bench/workers/micro-entry.mjs', 'bench/workers/micro-entry.mjs'),
    esm('bench/workers/measure.mjs', 'bench/workers/measure.mjs'),
    ...entry,
  ], gatehouseBindings(s, 'hs256', vars));
  const diag = Object.fromEntries(DIAG.map((n) => {
    const main = esm(`bench/workers/${n}.mjs`, `bench/workers/${n}.mjs`);
    return [n, worker(date, [main, esm('js/verdicts.mjs', 'js/verdicts.mjs'), esm('build/index.js', 'build/index.js'), wasm('build/index_bg.wasm', 'build/index_bg.wasm')], gatehouseBindings(s, 'hs256', vars))];
  }));
  return {
    ...diag,
    assets: worker(date, [esm('assets.mjs', 'bench/workers/assets.mjs')], []),
    'js-fwd': worker(date, [esm('js-fwd.mjs', 'bench/workers/js-fwd.mjs')], [assets]),
    'rs-fwd': worker(date, [esm('index.js', 'bench/out/rs-fwd/index.js'), wasm('index_bg.wasm', 'bench/out/rs-fwd/index_bg.wasm')], [assets]),
    authjs: worker(date, [esm('authjs.mjs', 'bench/out/authjs.mjs')], [assets, text('AUTH_SECRET', s.authSecret)]),
    gatehouse: gatehouse('hs256'),
    'gatehouse-eddsa': gatehouse('eddsa'),
    'gatehouse-plain': gatehouse('hs256', 'hs256-plain'),
    'micro-gh-hs256': micro('hs256'),
    'micro-gh-eddsa': micro('eddsa'),
    'micro-entry': entryLoop,
    'micro-authjs': worker(date, [esm('micro-authjs.mjs', 'bench/out/micro-authjs.mjs')], [text('AUTH_SECRET', s.authSecret)]),
  };
}

/** capnp constant names are camelCase: `rs-fwd` → `workerRsFwd`. */
const constId = (n) => 'worker' + n.split('-').map((p) => p[0].toUpperCase() + p.slice(1)).join('');

/** A named workerd config serving `names` (plus assets) on their ports. */
function configConst(constName, names, ports) {
  const services = ['assets', ...names].map((n) => `(name = ${str(n)}, worker = .${constId(n)})`);
  const sockets = names.map((n) => `(name = ${str(n)}, address = "127.0.0.1:${ports[n]}", http = (), service = ${str(n)})`);
  return `const ${constName} :Workerd.Config = (\n  services = [\n    ${services.join(',\n    ')}\n  ],\n  sockets = [\n    ${sockets.join(',\n    ')}\n  ]\n);\n`;
}

/** One config file per workerd process (workerd takes one Config constant per file). */
function writeConfigs(s, ports) {
  const ws = workers(s);
  const defs = Object.entries(ws).map(([n, w]) => `const ${constId(n)} :Workerd.Worker = ${w};\n`);
  const file = (names) =>
    `# Generated by bench/run.mjs: do not edit.\nusing Workerd = import "/workerd/workerd.capnp";\n\n` +
    configConst('config', names, ports) + '\n' + defs.join('\n');
  fs.writeFileSync(CONFIGS.bench, file(Object.keys(ws).filter((n) => n !== 'assets')));
  // Cold start: each contestant alone with the ASSETS worker, so the process start is comparable.
  fs.writeFileSync(CONFIGS['js-fwd'], file(['js-fwd']));
  fs.writeFileSync(CONFIGS.gatehouse, file(['gatehouse']));
}

// ---------------------------------------------------------------------------------------------
// 4. Running workerd

function startWorkerd(config) {
  const log = fs.openSync(path.join(OUT, 'workerd.log'), 'a');
  const [cmd, args] = pinned(PIN?.workerd, WORKERD, ['serve', config]);
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  child.exitedEarly = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return child;
}

async function stopWorkerd(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await Promise.race([child.exitedEarly, sleep(3000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await child.exitedEarly; // its sockets are free once it has exited
}

/** Polls until `url` answers 200; returns ms since `since`. */
async function firstOk(child, url, headers, since, timeoutMs = 30000) {
  let exited = false;
  child.exitedEarly.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error(`workerd exited early (see bench/out/workerd.log)`);
    try {
      const r = await request(url, { headers });
      if (r.status === 200) return performance.now() - since;
    } catch {
      // not listening yet
    }
    if (performance.now() - since > timeoutMs) throw new Error(`no 200 from ${url} in ${timeoutMs} ms`);
    await sleep(1);
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Sanity: the benchmark must measure the admitted path, and refusals must be refusals.

function curlStatus(url, cookie) {
  const args = ['-s', '-o', '/dev/null', '-w', '%{http_code}', url];
  if (cookie) args.unshift('-H', `Cookie: ${cookie}`);
  return Number(capture('curl', args));
}

function cookieFor(name, s) {
  if (name === 'authjs') return `${AUTHJS_COOKIE}=${s.authjsToken}`;
  if (name === 'gatehouse-plain') return `gatehouse_session=${s.plain}`;
  if (name === 'gatehouse-eddsa') return `gatehouse_session=${s.eddsa.token}`;
  // js-fwd and rs-fwd carry the same Cookie header as gatehouse: same request bytes for all.
  return `gatehouse_session=${s.hs256.token}`;
}

async function sanity(s, ports) {
  step('sanity (curl)');
  const page = (await request(`http://127.0.0.1:${ports['js-fwd']}/`)).body;
  const rows = [];
  for (const name of ROWS) {
    const url = `http://127.0.0.1:${ports[name]}${pathFor(name)}`;
    const withCookie = curlStatus(url, cookieFor(name, s));
    const without = curlStatus(url);
    rows.push({ name, withCookie, without });
    console.log(`${name.padEnd(16)} with cookie ${withCookie}   without ${without}`);
    if (withCookie !== 200) throw new Error(`${name}: ${withCookie} with a valid cookie, expected 200`);
    const admitted = await request(url, { headers: { cookie: cookieFor(name, s) } });
    if (admitted.body !== page) throw new Error(`${name}: the admitted response is not the ASSETS page`);
    const cc = admitted.headers['cache-control'] ?? '';
    if (name.startsWith('gatehouse') && !/\bprivate\b/.test(cc)) throw new Error(`${name}: Cache-Control ${cc}, expected private`);
    if (name.startsWith('gatehouse') && /public/.test(cc)) throw new Error(`${name}: Cache-Control ${cc} still public`);
    const gated = name.startsWith('gatehouse') || name === 'authjs';
    if (gated && ![302, 401].includes(without)) throw new Error(`${name}: ${without} without a cookie, expected 302/401`);
  }
  // The mixes' inputs: every visitor's and every fresh cookie on a page of the `browse` mix is
  // admitted (a refusal would measure the sign-in redirect instead).
  for (const c of CELLS.filter((x) => x.mix !== 'same')) {
    const env = mixEnv(c, s);
    const cookies = fs.readFileSync(env.BENCH_COOKIES, 'utf8').trim().split('\n');
    const paths = env.BENCH_PATHS ? fs.readFileSync(env.BENCH_PATHS, 'utf8').trim().split('\n') : [pathFor(c.row)];
    for (const [i, cookie] of [cookies[0], cookies.at(-1)].entries()) {
      const p = paths[i === 0 ? 0 : paths.length - 1];
      const status = curlStatus(`http://127.0.0.1:${ports[c.row]}${p}`, cookie);
      if (status !== 200) throw new Error(`${c.key}: ${status} for ${p} with a cookie of ${env.BENCH_COOKIES}, expected 200`);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// 6. Load: wrk, interleaved rounds, medians. Every contestant serves the same page through one
// ASSETS forward, with the same connections and a valid session cookie: the only difference is
// the gate's own work.

/** The environment bench/mix.lua and bench/latency.lua read for a cell (none for `same`). */
function mixEnv(cell, s) {
  if (cell.mix === 'same') return null;
  const kind = cell.row === 'authjs' ? 'authjs' : cell.row === 'gatehouse-eddsa' ? 'eddsa' : 'hs256';
  return {
    BENCH_COOKIES: s.mixFiles[cell.mix][kind],
    BENCH_PATHS: cell.mix === 'browse' ? s.pathsFile : '',
    BENCH_ORDER: cell.mix === 'browse' ? 'random' : 'round',
  };
}

/** Requests per second at saturation (32 connections). */
function wrk(url, cookie, seconds, workerdPid, mix = null) {
  const before = cpuSnapshot(workerdPid);
  const script = mix ? ['-s', path.join(ROOT, 'bench/mix.lua')] : [];
  const [cmd, args] = pinned(PIN?.wrk, 'wrk', ['-t1', `-c${LOAD.connections}`, `-d${seconds}s`, ...script, '-H', `Cookie: ${cookie}`, url]);
  const out = capture(cmd, args, { env: { ...process.env, ...mix } });
  const foreign = foreignCores(before, cpuSnapshot(workerdPid));
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const bad = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:.*/.exec(out)?.[0];
  if (!rps || bad) throw new Error(`wrk against ${url}: ${bad} non-2xx responses\n${out}`);
  return { rps, errors: errors ?? null, foreignCores: foreign };
}

/** Latency of single requests, one connection, timed per request by bench/latency.lua (ms). */
function latency(url, cookie, seconds, mix = null) {
  const script = path.join(ROOT, 'bench/latency.lua');
  const [cmd, args] = pinned(PIN?.wrk, 'wrk', ['-t1', '-c1', `-d${seconds}s`, '-s', script, '-H', `Cookie: ${cookie}`, url]);
  const out = capture(cmd, args, { env: { ...process.env, BENCH_COOKIES: '', BENCH_PATHS: '', ...mix } });
  const m = /LATENCY n=(\d+) bad=(\d+) mean_us=([\d.]+) p50_us=([\d.]+) p99_us=([\d.]+)/.exec(out);
  if (!m || Number(m[2])) throw new Error(`latency run against ${url} failed or saw non-200s\n${out}`);
  return { n: Number(m[1]), mean: Number(m[3]) / 1000, p50: Number(m[4]) / 1000, p99: Number(m[5]) / 1000 };
}

/** A cell's figures over rounds `rs`: medians, the req/s range and the most CPU others used. */
function roundStats(c, rs) {
  return {
    row: c.row,
    mix: c.mix,
    rps: median(rs.map((x) => x.rps)),
    p50: median(rs.map((x) => x.p50)),
    p99: median(rs.map((x) => x.p99)),
    min: Math.min(...rs.map((x) => x.rps)),
    max: Math.max(...rs.map((x) => x.rps)),
    maxForeignCores: Math.max(...rs.map((x) => x.foreignCores)),
  };
}

/** One run of the load phase: LOAD.rounds interleaved rounds over every cell. */
function loadRun(s, ports, workerdPid, runNo) {
  const url = (n) => `http://127.0.0.1:${ports[n]}${pathFor(n)}`;
  for (const c of CELLS) wrk(url(c.row), cookieFor(c.row, s), LOAD.warmup, workerdPid, mixEnv(c, s)); // JIT, connections, caches
  const runs = Object.fromEntries(CELLS.map((c) => [c.key, []]));
  for (let r = 0; r < LOAD.rounds; r++) {
    // Rotate the order each round so no cell always runs right after the same one.
    const order = CELLS.map((_, i) => CELLS[(i + r + runNo) % CELLS.length]);
    for (const c of order) {
      const res = wrk(url(c.row), cookieFor(c.row, s), LOAD.seconds, workerdPid, mixEnv(c, s));
      const lat = latency(url(c.row), cookieFor(c.row, s), LOAD.latencySeconds, mixEnv(c, s));
      Object.assign(res, { p50: lat.p50, p99: lat.p99, latencyRequests: lat.n });
      runs[c.key].push(res);
      const busy = res.foreignCores >= 0.1 ? `   (busy machine: ${res.foreignCores.toFixed(2)} core used by others)` : '';
      console.log(`run ${runNo + 1} round ${r + 1}  ${c.key.padEnd(24)} ${res.rps.toFixed(0).padStart(7)} req/s  1-conn p50 ${res.p50.toFixed(3)} ms  p99 ${res.p99.toFixed(3)} ms${busy}`);
    }
  }
  const cells = {};
  for (const c of CELLS) cells[c.key] = { ...roundStats(c, runs[c.key]), runs: runs[c.key] };
  for (const c of CELLS) {
    const cell = cells[c.key];
    const peer = (row) => cells[`${row}/${c.mix}`];
    // Ratios within the same mix: js-fwd and rs-fwd carry the same requests.
    cell.perJsFwd = cell.rps / peer('js-fwd').rps;
    cell.perRsFwd = cell.rps / peer('rs-fwd').rps;
    cell.perAuthjs = cell.rps / peer('authjs').rps;
    // µs per request above the JS forward, at saturation on one core.
    cell.extraUsPerRequest = 1e6 / cell.rps - 1e6 / peer('js-fwd').rps;
  }
  return cells;
}

/** REPEAT runs of the load phase; each cell's figures are the medians over every round of every
 * run, its ratios the median of the runs' ratios, with their spread (min–max over runs). */
async function load(s, ports, workerdPid) {
  step(`load: ${REPEAT} run(s) × ${LOAD.rounds} round(s) × ${LOAD.seconds} s × ${CELLS.length} cells, wrk -t1 -c${LOAD.connections}` +
    (PIN ? ` (workerd on core ${PIN.workerd}, wrk on core ${PIN.wrk})` : ' (one core: not pinned)'));
  const quiet = await waitForQuiet(workerdPid);
  const runs = [];
  for (let r = 0; r < REPEAT; r++) runs.push(loadRun(s, ports, workerdPid, r));
  const summary = { quietBefore: quiet, runs, cells: {} };
  for (const c of CELLS) {
    const all = runs.flatMap((run) => run[c.key].runs);
    const per = (k) => runs.map((run) => run[c.key][k]);
    const out = roundStats(c, all);
    for (const k of ['perJsFwd', 'perRsFwd', 'perAuthjs', 'extraUsPerRequest']) {
      out[k] = median(per(k));
      out[`${k}Runs`] = per(k);
    }
    summary.cells[c.key] = out;
  }
  return summary;
}

// ---------------------------------------------------------------------------------------------
// 7. In-worker costs: loops timed with performance.now() inside workerd (bench/workers/*).

const MICRO = [
  // [service, case, label]
  ['micro-gh-hs256', 'verify', 'Gatehouse session check, HS256 (token::verify)'],
  ['micro-gh-eddsa', 'verify', 'Gatehouse session check, EdDSA (token::verify, pure Rust)'],
  ['micro-gh-hs256', 'gateCheckNew', 'gateCheck() from JS, HS256, a token new to the isolate'],
  ['micro-gh-eddsa', 'gateCheckNew', 'gateCheck() from JS, EdDSA, a token new to the isolate (WebCrypto)'],
  ['micro-gh-hs256', 'gateCheck', 'gateCheck() from JS, HS256, a token verified before'],
  ['micro-gh-eddsa', 'gateCheck', 'gateCheck() from JS, EdDSA, a token verified before'],
  ['micro-gh-hs256', 'remembered', 'repeat request: js/entry.mjs memory of verdicts (key + lookup)'],
  ['micro-entry', 'browse', 'js/entry.mjs fetch − a JS forward, HS256, browse mix (stub ASSETS)'],
  ['micro-entry', 'cold', 'js/entry.mjs fetch − a JS forward, HS256, cold mix (stub ASSETS)'],
  ['micro-authjs', 'decode', 'Auth.js decode'],
  ['micro-authjs', 'decodeEncode', 'Auth.js decode + re-encode'],
  ['micro-authjs', 'getToken', 'Auth.js getToken (cookie parse + decode)'],
  ['micro-gh-hs256', 'renewal', 'renewal CPU excl. D1, HS256 (verify expired + issue)'],
  ['micro-gh-eddsa', 'renewal', 'renewal CPU excl. D1, EdDSA (verify expired + issue)'],
  ['micro-gh-hs256', 'idToken', 'Google ID-token check, RS256 (WebCrypto signature + claims)'],
  ['micro-gh-hs256', 'callback', 'sign-in callback CPU (ID-token check + state + session sign), HS256'],
  ['micro-gh-eddsa', 'callback', 'sign-in callback CPU (ID-token check + state + session sign), EdDSA'],
];

function microPayload(service, s, kase) {
  if (service === 'micro-authjs') return { token: s.authjsToken };
  if (service === 'micro-entry') {
    const lines = (file) => fs.readFileSync(file, 'utf8').trim().split('\n');
    return { mix: kase, cookies: lines(s.mixFiles[kase].hs256), paths: lines(s.pathsFile) };
  }
  const alg = service.endsWith('eddsa') ? 'eddsa' : 'hs256';
  // The micro workers' AUTH_URL is the contestant's origin, so the `cold` cookies are theirs.
  const fresh = fs.readFileSync(s.mixFiles.cold[alg], 'utf8').trim().split('\n');
  return { ...s[alg], fresh, nonce: s.nonce, jwks: s.google.jwks, idToken: s.google.idToken };
}

async function post(port, body) {
  const r = await request(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = JSON.parse(r.body);
  if (r.status !== 200) throw new Error(`${JSON.stringify(body.case)}: ${out.error ?? r.body}`);
  return out;
}

async function micro(s, ports, workerdPid) {
  step('in-worker costs (µs/op, median of 5 loops of ≥ 250 ms each)');
  await waitForQuiet(workerdPid);
  const out = {};
  for (const [service, kase, label] of MICRO) {
    const before = cpuSnapshot(workerdPid);
    const r = await post(ports[service], { case: kase, ...microPayload(service, s, kase) });
    const foreign = foreignCores(before, cpuSnapshot(workerdPid));
    out[`${service}/${kase}`] = { label, ...r, foreignCores: foreign };
    const busy = foreign >= 0.1 ? `   (busy machine: ${foreign.toFixed(2)} core used by others)` : '';
    console.log(`${label.padEnd(72)} ${r.us.toFixed(1).padStart(8)} µs   (n=${r.n})${busy}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 8. Sizes: the wasm as uploaded, and the session cookie as the real `token::issue` makes it.

function wasmSize() {
  const raw = fs.readFileSync(path.join(ROOT, 'build/index_bg.wasm'));
  return { raw: raw.length, gzip: zlib.gzipSync(raw, { level: 9 }).length };
}

async function cookieSizes(s, ports) {
  // Production cookie name (https): `__Host-gatehouse_session`; http loopback drops the prefix.
  const out = {};
  for (const alg of ['hs256', 'eddsa']) {
    for (const [kind, who] of [['typical', s.who], ['name200', { ...s.who, name: 'N'.repeat(200) }]]) {
      const claims = { iss: 'https://www.example.com', aud: 'https://www.example.com', ...who, role: 'user', sxp: s.now + 30 * 86400 };
      const { token } = await post(ports[`micro-gh-${alg}`], { case: 'issue', claims });
      const cookie = `__Host-gatehouse_session=${token}`;
      const hasName = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).name !== undefined;
      out[`${alg}/${kind}`] = { bytes: cookie.length, tokenBytes: token.length, keptName: hasName };
    }
  }
  out.authjs = { bytes: `__Secure-authjs.session-token=${s.authjsToken}`.length };
  return out;
}

// ---------------------------------------------------------------------------------------------
// 9. Cold start: time from spawning `workerd serve` to the first 200, gatehouse vs js-fwd alone
// (each with the ASSETS worker), interleaved, median of COLD_RUNS. Includes process start, config
// load, module compile and the first request; the difference is what Gatehouse's bundle adds.

async function coldStart(s, ports) {
  step(`cold start (${COLD_RUNS} runs each, interleaved)`);
  await waitForQuiet(0);
  const cases = [
    ['js-fwd', CONFIGS['js-fwd'], `http://127.0.0.1:${ports['js-fwd']}/`, {}],
    ['gatehouse', CONFIGS.gatehouse, `http://127.0.0.1:${ports.gatehouse}/`, { cookie: cookieFor('gatehouse', s) }],
  ];
  const times = { 'js-fwd': [], gatehouse: [] };
  for (let i = 0; i < COLD_RUNS; i++) {
    for (const [name, config, url, headers] of cases) {
      const since = performance.now();
      const child = startWorkerd(config);
      try {
        times[name].push(await firstOk(child, url, headers, since));
      } finally {
        await stopWorkerd(child);
      }
    }
  }
  const out = {};
  for (const [name, ts] of Object.entries(times)) {
    out[name] = { ms: median(ts), runs: ts };
    console.log(`${name.padEnd(10)} ${median(ts).toFixed(0)} ms  (runs: ${ts.map((t) => t.toFixed(0)).join(', ')})`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 10. Report

/** What exactly was measured: the commit (+dirty if src/, js/ or Cargo files differ) and the
 * SHA-256 of the files workerd loaded, taken when the config is written (others may keep editing). */
function measuredCode() {
  let commit = 'unknown';
  try {
    const dirty = capture('git', ['status', '--porcelain', '--', 'src', 'js', 'Cargo.toml', 'Cargo.lock']);
    commit = capture('git', ['rev-parse', '--short', 'HEAD']) + (dirty ? '+dirty' : '');
  } catch {}
  const files = {};
  for (const f of ['js/entry.mjs', 'js/filter.mjs', 'js/private.mjs', 'build/index.js', 'build/index_bg.wasm']) {
    files[f] = crypto.createHash('sha256').update(fs.readFileSync(path.join(ROOT, f))).digest('hex').slice(0, 16);
  }
  return { commit, files };
}

function machine(code) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: Number(capture('nproc')),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    workerd: capture(WORKERD, ['--version']),
    node: process.version,
    kernel: os.release(),
    commit: code.commit,
    date: new Date().toISOString(),
  };
}

function targets(load, micro, sizes, cookies) {
  const us = (k) => micro[k].us;
  const t = [];
  const add = (name, value, target, met, unit = '') => t.push({ name, value, target, unit, met });
  for (const [key, target] of Object.entries(TARGETS.mixes)) {
    const l = load.cells[key];
    add(`req/s ÷ js-fwd, ${key} (issue 15)`, l.perJsFwd, `≥ ${target}`, l.perJsFwd >= target);
  }
  for (const [key, label] of [
    ['gatehouse/same', 'HS256'],
    ['gatehouse-eddsa/same', 'EdDSA'],
    ['gatehouse-plain/same', 'HS256, ASSETS without private headers'],
  ]) {
    const l = load.cells[key];
    add(`req/s ÷ rs-fwd (${label})`, l.perRsFwd, `≥ ${TARGETS.perRsFwd}`, l.perRsFwd >= TARGETS.perRsFwd);
    add(`req/s ÷ authjs (${label})`, l.perAuthjs, `≥ ${TARGETS.perAuthjs}`, l.perAuthjs >= TARGETS.perAuthjs);
  }
  const decode = us('micro-authjs/decode');
  // EdDSA: the check the runtime makes now, WebCrypto through the whole gateCheck call (an upper
  // bound: URL and cookie parsing included); token::verify in wasm is the pure-Rust verifier.
  for (const [k, label] of [['micro-gh-hs256/verify', 'HS256'], ['micro-gh-eddsa/gateCheckNew', 'EdDSA, WebCrypto, whole gateCheck']]) {
    const ratio = us(k) / decode;
    add(`session check ÷ Auth.js decode (${label})`, ratio, `≤ ${TARGETS.checkPerAuthjsDecode}`, ratio <= TARGETS.checkPerAuthjsDecode);
  }
  for (const k of ['micro-gh-hs256/callback', 'micro-gh-eddsa/callback']) {
    add(`sign-in callback CPU (${k.includes('eddsa') ? 'EdDSA' : 'HS256'})`, us(k), `≤ ${TARGETS.callbackUs} µs`, us(k) <= TARGETS.callbackUs, 'µs');
  }
  add('wasm gzip', sizes.gzip, '≤ 1 MiB', sizes.gzip <= TARGETS.wasmGzipBytes, 'B');
  for (const [k, c] of Object.entries(cookies)) {
    if (k !== 'authjs') add(`session cookie ${k}`, c.bytes, `≤ ${TARGETS.cookieBytes} B`, c.bytes <= TARGETS.cookieBytes, 'B');
  }
  return t;
}

function printTables(m, load, micro, sizes, cookies, cold, tgs) {
  step('results');
  console.log(`machine: ${m.nproc} cores, ${m.cpu}; workerd ${m.workerd}; node ${m.node}; commit ${m.commit}`);
  console.log(`load: ${REPEAT} run(s) of ${LOAD.rounds} interleaved round(s); req/s: wrk -t1 -c${LOAD.connections} ${LOAD.seconds} s; ` +
    `p50/p99: one connection, ${LOAD.latencySeconds} s, per-request (bench/latency.lua); medians over rounds\n`);
  const spread = (xs) => (xs.length > 1 ? ` (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : '');
  // The mixes table (issue 15): req/s ÷ js-fwd of the same mix, median of runs, runs' spread.
  console.log(`request mixes: req/s ÷ js-fwd of the same mix, median of ${REPEAT} run(s) (spread over runs)`);
  const mixRows = CONTESTANTS.filter((n) => n !== 'gatehouse-plain').map((n) => [n, ...MIXES.map((mix) => {
    const l = load.cells[`${n}/${mix}`];
    return `${l.perJsFwd.toFixed(2)}${spread(l.perJsFwdRuns)}`;
  })]);
  mixRows.push(['js-fwd req/s', ...MIXES.map((mix) => load.cells[`js-fwd/${mix}`].rps.toFixed(0))]);
  printGrid(['contestant', ...MIXES], mixRows);
  console.log('');
  const head = ['cell', 'req/s', '÷ js-fwd', '÷ rs-fwd', '÷ authjs', 'p50 ms', 'p99 ms', '+µs/req vs js-fwd', 'range req/s', 'others\' CPU'];
  const rows = CELLS.map(({ key }) => {
    const l = load.cells[key];
    return [key, l.rps.toFixed(0), l.perJsFwd.toFixed(3), l.perRsFwd.toFixed(3), l.perAuthjs.toFixed(3),
      l.p50.toFixed(3), l.p99.toFixed(3), l.extraUsPerRequest.toFixed(1), `${l.min.toFixed(0)}–${l.max.toFixed(0)}`,
      `≤ ${l.maxForeignCores.toFixed(2)} core`];
  });
  printGrid(head, rows);
  console.log('\nin-worker costs (µs/op)');
  printGrid(['operation', 'µs/op'], Object.values(micro).map((r) => [r.label, r.us.toFixed(1)]));
  console.log(`\nwasm build/index_bg.wasm: ${(sizes.raw / 1024).toFixed(0)} KiB raw, ${(sizes.gzip / 1024).toFixed(0)} KiB gzip -9`);
  console.log('session cookie (name=value, __Host- name): ' +
    Object.entries(cookies).map(([k, c]) => `${k} ${c.bytes} B${c.keptName === false ? ' (name dropped)' : ''}`).join(', '));
  console.log(`cold start to first 200: js-fwd ${cold['js-fwd'].ms.toFixed(0)} ms, gatehouse ${cold.gatehouse.ms.toFixed(0)} ms (median of ${COLD_RUNS})`);
  console.log('\ntargets');
  printGrid(['target', 'value', 'wanted', ''], tgs.map((t) => [t.name, fmt(t.value, t.unit), t.target, t.met ? 'met' : 'MISSED']));
}

function fmt(v, unit) {
  return unit === 'B' ? `${v} B` : unit === 'µs' ? `${v.toFixed(0)} µs` : v.toFixed(3);
}

function printGrid(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  if (!fs.existsSync(path.join(ROOT, 'node_modules/.bin/esbuild'))) run('bash', ['scripts/setup']);
  if (process.env.BENCH_NO_BUILD === '1') console.log('BENCH_NO_BUILD=1: measuring the existing builds');
  else build();
  const names = [...ROWS, 'micro-gh-hs256', 'micro-gh-eddsa', 'micro-entry', 'micro-authjs'];
  const ports = {};
  for (const n of names) ports[n] = await freePort();
  const secrets = await makeSecrets(ports);
  const code = measuredCode();
  writeConfigs(secrets, ports);
  // Throwaway keys and tokens of this run, kept for poking at bench/out/workerd.capnp by hand.
  fs.writeFileSync(path.join(OUT, 'inputs.json'), JSON.stringify({ ports, ...secrets }, null, 2));
  fs.writeFileSync(path.join(OUT, 'workerd.log'), '');

  step('workerd serve bench/out/workerd.capnp');
  const child = startWorkerd(CONFIGS.bench);
  let load_, micro_, cookies;
  try {
    await firstOk(child, `http://127.0.0.1:${ports['js-fwd']}/`, {}, performance.now());
    await sanity(secrets, ports);
    load_ = await load(secrets, ports, child.pid);
    // Kept at once: a later phase that fails must not lose a quarter of an hour of load runs.
    fs.writeFileSync(path.join(OUT, 'load.json'), JSON.stringify({ measured: code, load: load_ }, null, 2) + '\n');
    console.log('written: bench/out/load.json (the load phase, in case a later phase fails)');
    micro_ = await micro(secrets, ports, child.pid);
    cookies = await cookieSizes(secrets, ports);
  } finally {
    await stopWorkerd(child);
  }
  const cold = await coldStart(secrets, ports);
  const sizes = wasmSize();
  const m = machine(code);
  const tgs = targets(load_, micro_, sizes, cookies);
  printTables(m, load_, micro_, sizes, cookies, cold, tgs);
  const results = { machine: m, measured: code, quick: QUICK, load: { params: { ...LOAD, repeat: REPEAT }, pinning: PIN, mixes: MIXES, ...load_ }, micro: micro_, wasm: sizes, cookies, coldStart: cold, targets: tgs };
  fs.writeFileSync(path.join(ROOT, 'bench/results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(`\nwritten: bench/results.json  (${((Date.now() - t0) / 1000).toFixed(0)} s in all)`);
}

main().catch((e) => {
  console.error(`\nbench failed: ${e.stack ?? e}`);
  process.exit(1);
});
