// Diagnostic row (BENCH_DIAG=1), not a contestant: js/entry.mjs's hot path with the verdict fixed
// to "admitted" (no call to gateCheck): URL parse, header checks, and the response copy marked
// private (Cache-Control from privateCacheControl, Vary). gatehouse minus this row = gateCheck;
// this row minus js-fwd = the entry's JS work around it.
import Gatehouse from '../../build/index.js';

const { privateCacheControl } = Gatehouse.prototype;

export default {
  async fetch(request, env, ctx) {
    const method = request.method;
    if (method === 'GET' || method === 'HEAD') {
      const headers = request.headers;
      if (!headers.has('x-auth-user-id') && !headers.has('x-auth-email') && !headers.has('x-auth-role')) {
        const url = new URL(request.url);
        const bearer = headers.get('authorization')?.startsWith('Bearer ') ?? false;
        const verdict = url.pathname && headers.get('cookie') && !bearer ? 2 : 0; // stands in for gateCheck
        if (verdict === 2) {
          const response = await env.ASSETS.fetch(request);
          const out = new Response(response.body, response);
          out.headers.set('cache-control', privateCacheControl(response.headers.get('cache-control') ?? undefined));
          out.headers.append('vary', 'Cookie');
          return out;
        }
      }
    }
    return new Gatehouse(ctx, env).fetch(request);
  },
};
