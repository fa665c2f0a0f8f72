// The worker's entry: a thin hot path in front of the Rust worker (build/index.js).
//
// A GET or HEAD outside /auth/* is decided by one synchronous call into wasm that is handed only
// the origin, the path and the Cookie header (a signature check, no I/O): a public path, or an
// unexpired session token that the path admits, goes straight to ASSETS from here. Everything
// else — sign-in, renewal (one D1 read), refusals, bearer tokens, UPSTREAM_URL mode, requests
// carrying X-Auth-* headers — goes to the Rust worker's own fetch, which applies the same rules.
import Gatehouse from '../build/index.js';

// worker-build puts the wasm exports on the entrypoint's prototype.
const { gateCheck, privateCacheControl } = Gatehouse.prototype;
if (typeof gateCheck !== 'function' || typeof privateCacheControl !== 'function') {
  throw new Error('build/index.js lacks gateCheck/privateCacheControl: rebuild with scripts/build');
}

const FULL = 0;
const PUBLIC = 1;
const ADMITTED = 2;

// A plain module worker, not a subclass of the bundle's entrypoint: worker-build wraps that class
// in Proxies that run on every property access, which cost ~10 % of a forward's throughput.
export default {
  async fetch(request, env, ctx) {
    const method = request.method;
    if (method === 'GET' || method === 'HEAD') {
      const headers = request.headers;
      // Identity headers from a visitor are removed by the full route; never let them through.
      if (!headers.has('x-auth-user-id') && !headers.has('x-auth-email') && !headers.has('x-auth-role')) {
        const url = new URL(request.url);
        const bearer = headers.get('authorization')?.startsWith('Bearer ') ?? false;
        const verdict = gateCheck(env, url.origin, url.pathname, headers.get('cookie') ?? undefined, bearer);
        if (verdict === PUBLIC) return env.ASSETS.fetch(request);
        if (verdict === ADMITTED) {
          const response = await env.ASSETS.fetch(request);
          // Protected responses never land in a shared cache.
          const out = new Response(response.body, response);
          out.headers.set('cache-control', privateCacheControl(response.headers.get('cache-control') ?? undefined));
          out.headers.append('vary', 'Cookie');
          return out;
        }
        if (verdict !== FULL) throw new Error('gateCheck: unknown verdict');
      }
    }
    // The full route: the Rust worker's own entrypoint.
    return new Gatehouse(ctx, env).fetch(request);
  },
};
