// `make devloop`: how long an edit takes to show in `make dev`'s browser tab. Starts
// `wrangler dev` the way scripts/dev does (GATEHOUSE_DEV_BUILD=1, the repo's wrangler.toml and its
// [build]), then, twice each, edits a template and a Rust string, and times edit → first
// response that shows it. Every edit is undone at the end. Loopback only; bounded in time.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STEP_LIMIT_MS = 10 * 60_000;

const EDITS = [
  { label: 'template (templates/login.html)', file: 'templates/login.html', find: '{% endblock %}', url: '/auth/login' },
  { label: 'Rust (src/error.rs)', file: 'src/error.rs', find: '"Please sign in"', url: '/auth/error?error=SessionRequired' },
];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function body(base, url) {
  try {
    const res = await fetch(new URL(url, base), { signal: AbortSignal.timeout(5000) });
    return await res.text();
  } catch {
    return '';
  }
}

/** Polls until `test(body)` holds; returns the milliseconds since `since`. */
async function until(base, url, test, since) {
  while (Date.now() - since < STEP_LIMIT_MS) {
    if (test(await body(base, url))) return Date.now() - since;
    await sleep(100);
  }
  throw new Error(`${url} did not change within ${STEP_LIMIT_MS / 1000} s`);
}

function edited(edit, marker) {
  const original = fs.readFileSync(path.join(ROOT, edit.file), 'utf8');
  if (!original.includes(edit.find)) throw new Error(`${edit.file} no longer holds ${edit.find}`);
  const text = edit.file.endsWith('.rs')
    ? original.replace(edit.find, `"Please sign in ${marker}"`)
    : original.replace(edit.find, `<!-- ${marker} -->${edit.find}`);
  return { original, text };
}

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-devloop-'));
  const keys = JSON.stringify({ keys: [{ kty: 'oct', kid: 'devloop', alg: 'HS256', k: randomBytes(32).toString('base64url') }] });
  const envFile = path.join(state, 'empty.env');
  fs.writeFileSync(envFile, '');
  const wrangler = spawn(path.join(ROOT, 'node_modules', '.bin', 'wrangler'), [
    'dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state, '--env-file', envFile,
    '--show-interactive-dev-session=false', '--var', 'GOOGLE_CLIENT_SECRET:devloop', '--var', `SESSION_KEYS:${keys}`,
  ], { cwd: ROOT, env: { ...process.env, GATEHOUSE_DEV_BUILD: '1', CI: 'true' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  wrangler.stdout.on('data', (d) => { log += d; });
  wrangler.stderr.on('data', (d) => { log += d; });
  const restore = [];
  try {
    const started = Date.now();
    await until(base, '/auth/login', (b) => b.includes('Continue with Google'), started);
    console.log(`first dev build and start: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const rows = [];
    for (let round = 1; round <= 2; round += 1) {
      for (const edit of EDITS) {
        const marker = `devloop-${randomBytes(4).toString('hex')}`;
        const { original, text } = edited(edit, marker);
        restore.push([edit.file, original]);
        const t0 = Date.now();
        fs.writeFileSync(path.join(ROOT, edit.file), text);
        const shown = await until(base, edit.url, (b) => b.includes(marker), t0);
        fs.writeFileSync(path.join(ROOT, edit.file), original);
        const t1 = Date.now();
        const undone = await until(base, edit.url, (b) => !b.includes(marker) && b.length > 0, t1);
        rows.push({ edit: edit.label, round, shown, undone });
        console.log(`${edit.label}, round ${round}: edit shown after ${(shown / 1000).toFixed(1)} s, undo shown after ${(undone / 1000).toFixed(1)} s`);
      }
    }
    console.log('\n| edit | edit → page shows it (s) | undo → page shows it (s) |\n| --- | ---: | ---: |');
    for (const r of rows) console.log(`| ${r.edit}, round ${r.round} | ${(r.shown / 1000).toFixed(1)} | ${(r.undone / 1000).toFixed(1)} |`);
  } catch (e) {
    console.error(`devloop: ${e.message}\n--- wrangler dev output (tail) ---\n${log.slice(-4000)}`);
    process.exitCode = 1;
  } finally {
    for (const [file, original] of restore.reverse()) fs.writeFileSync(path.join(ROOT, file), original);
    try { process.kill(-wrangler.pid, 'SIGTERM'); } catch { /* already gone */ }
    fs.rmSync(state, { recursive: true, force: true });
  }
}

await main();
