// The worker's entry: a thin hot path in front of the Rust worker (build/index.js).
//
// A GET or HEAD outside /auth/* is decided by one synchronous call into wasm that is handed only
// the URL and the Cookie header (a URL parse and a signature check, no I/O): a public path, or an
// unexpired session token that the path admits, goes straight to ASSETS from here. Everything
// else — sign-in, renewal (from the change feed, or one D1 read), refusals, bearer tokens,
// UPSTREAM_URL mode, requests carrying X-Auth-* headers — goes to the Rust worker's own fetch,
// which applies the same rules.
// The cron trigger (wrangler.toml's [triggers]) goes straight to the Rust worker's scheduled
// handler, which prunes old rows (src/prune.rs).
// A session token under an Ed25519 key that this isolate has not verified yet gets its signature
// checked with the runtime's WebCrypto (gateCheck answers CHECK_SIGNATURE, gateCheckSignature
// makes the check, asynchronously, and answers as gateCheck would): ≈ 50 µs instead of ≈ 450 µs
// for Ed25519 in wasm. Which key, which bytes and what the claims are worth stay in Rust.
// An admitted verdict is remembered until the token lapses (js/verdicts.mjs says why that is
// safe), so repeat requests with the same cookie skip the call.
import Gatehouse from '../build/index.js';
import { hotPathMayDecide } from './filter.mjs';
import { markPrivate } from './private.mjs';
import { memo, Verdicts } from './verdicts.mjs';

// worker-build puts the wasm exports on the entrypoint's prototype.
const { gateCheck, gateCheckSignature, identityHeaderPrefix, privateCacheControl, privateVary, sharedCacheHeaders } = Gatehouse.prototype;
if ([gateCheck, gateCheckSignature, identityHeaderPrefix, privateCacheControl, privateVary, sharedCacheHeaders].some((f) => typeof f !== 'function')) {
  throw new Error('build/index.js lacks gateCheck/gateCheckSignature/identityHeaderPrefix/privateCacheControl/privateVary/sharedCacheHeaders: rebuild with scripts/build');
}
if (typeof Gatehouse.prototype.scheduled !== 'function') {
  throw new Error('build/index.js lacks the scheduled handler: rebuild with scripts/build');
}

// gateCheck's answer: FULL, PUBLIC, CHECK_SIGNATURE (gateCheckSignature's promise gives one of the
// others), or (any other value) admitted until that Unix second.
const FULL = 0;
const PUBLIC = 1;
const CHECK_SIGNATURE = -1;

const verdicts = new Verdicts();
// The identity header prefix (`x-auth-`), decided in Rust; asked for once.
let prefix = null;
// What marks an admitted response private, all decided in Rust. The same upstream value always
// gets the same answer: remember the last few. The CDN header list is asked for once.
let shared = null;
const rules = {
  cacheControl: memo((upstream) => privateCacheControl(upstream)),
  vary: memo((upstream) => privateVary(upstream)),
  get shared() { return (shared ??= sharedCacheHeaders()); },
};

/** What gateCheck's `verdict` (never CHECK_SIGNATURE here) asks for. */
function answer(verdict, request, env, ctx, key) {
  if (verdict === PUBLIC) return env.ASSETS.fetch(request);
  if (verdict === FULL) return full(request, env, ctx);
  if (!(verdict > 1)) throw new Error('gateCheck: unknown verdict');
  if (key !== null) verdicts.remember(env, key, verdict);
  return privately(request, env);
}

/** The full route: the Rust worker's own entrypoint. */
function full(request, env, ctx) {
  return new Gatehouse(ctx, env).fetch(request);
}

/** ASSETS' response for an admitted request, marked so that it never lands in a shared cache. */
async function privately(request, env) {
  return markPrivate(await env.ASSETS.fetch(request), rules);
}

// A plain module worker, not a subclass of the bundle's entrypoint: worker-build wraps that class
// in Proxies that run on every property access, which cost ~10 % of a forward's throughput.
export default {
  fetch(request, env, ctx) {
    const headers = request.headers;
    // The same filter as the full route's (src/app/forward.rs, `hot_path_may_decide`).
    if (hotPathMayDecide(request.method, headers, (prefix ??= identityHeaderPrefix()))) {
      const cookie = headers.get('cookie');
      const key = cookie === null ? null : Verdicts.key(request.url, cookie);
      if (key !== null && verdicts.admitted(env, key, Date.now())) return privately(request, env);
      const verdict = gateCheck(env, request.url, cookie ?? undefined);
      // Called at once, with no await between: gateCheck left the check for it.
      if (verdict === CHECK_SIGNATURE) return gateCheckSignature(env).then((v) => answer(v, request, env, ctx, key));
      return answer(verdict, request, env, ctx, key);
    }
    return full(request, env, ctx);
  },
  // The cron trigger: pruning, in the Rust worker's own entrypoint.
  scheduled(controller, env, ctx) {
    return new Gatehouse(ctx, env).scheduled(controller);
  },
};
