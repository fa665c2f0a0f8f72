// Diagnostic row (BENCH_DIAG=1): js/entry.mjs's hot path with the verdict fixed to "admitted"
// (no call into wasm): URL parse, header checks, the response copy with Cache-Control (one wasm
// call, privateCacheControl) and Vary. Its gap to diag-gh-bare is the entry's JS work; the gap
// from it to gatehouse is gateCheck.
import Gatehouse from '../../build/index.js';

const { privateCacheControl } = Gatehouse.prototype;

export default class extends Gatehouse {
  async fetch(request) {
    const method = request.method;
    if (method === 'GET' || method === 'HEAD') {
      const headers = request.headers;
      if (!headers.has('x-auth-user-id') && !headers.has('x-auth-email') && !headers.has('x-auth-role')) {
        const url = new URL(request.url);
        const bearer = headers.get('authorization')?.startsWith('Bearer ') ?? false;
        const verdict = url.pathname && headers.get('cookie') && !bearer ? 2 : 0; // stands in for gateCheck
        if (verdict === 2) {
          const response = await this.env.ASSETS.fetch(request);
          const out = new Response(response.body, response);
          out.headers.set('cache-control', privateCacheControl(response.headers.get('cache-control') ?? undefined));
          out.headers.append('vary', 'Cookie');
          return out;
        }
      }
    }
    return super.fetch(request);
  }
}
