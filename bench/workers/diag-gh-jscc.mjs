// Diagnostic row (BENCH_DIAG=1): js/entry.mjs's hot path exactly, except that Cache-Control is a
// constant set in JS instead of privateCacheControl()'s string round trip through wasm.
// gatehouse minus this row = that call.
import Gatehouse from '../../build/index.js';

const { gateCheck } = Gatehouse.prototype;

export default {
  async fetch(request, env, ctx) {
    const method = request.method;
    if (method === 'GET' || method === 'HEAD') {
      const headers = request.headers;
      if (!headers.has('x-auth-user-id') && !headers.has('x-auth-email') && !headers.has('x-auth-role')) {
        const url = new URL(request.url);
        const bearer = headers.get('authorization')?.startsWith('Bearer ') ?? false;
        const verdict = gateCheck(env, url.origin, url.pathname, headers.get('cookie') ?? undefined, bearer);
        if (verdict === 1) return env.ASSETS.fetch(request);
        if (verdict === 2) {
          const response = await env.ASSETS.fetch(request);
          const out = new Response(response.body, response);
          out.headers.set('cache-control', 'private, max-age=60');
          out.headers.append('vary', 'Cookie');
          return out;
        }
      }
    }
    return new Gatehouse(ctx, env).fetch(request);
  },
};
