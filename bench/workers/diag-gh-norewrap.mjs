// Diagnostic row (BENCH_DIAG=1): js/entry.mjs's hot path with the real gateCheck, but the ASSETS
// response returned as it is (no copy, no Cache-Control/Vary). gatehouse minus this row = what
// marking the response private costs.
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
        if (verdict === 1 || verdict === 2) return env.ASSETS.fetch(request);
      }
    }
    return new Gatehouse(ctx, env).fetch(request);
  },
};
