// Diagnostic row (BENCH_DIAG=1): js/entry.mjs's hot path exactly (memory of verdicts, gateCheck),
// except that an admitted request's ASSETS response is returned as it is, with no copy marked
// private (Cache-Control, Vary). Requested on /plain/, where ASSETS does not mark it private
// itself: gatehouse-plain minus this row = what that copy costs.
import Gatehouse from '../../build/index.js';
import { Verdicts } from '../../js/verdicts.mjs';

const { gateCheck } = Gatehouse.prototype;
const verdicts = new Verdicts();

export default {
  fetch(request, env, ctx) {
    const method = request.method;
    if (method === 'GET' || method === 'HEAD') {
      const headers = request.headers;
      if (!headers.has('x-auth-user-id') && !headers.has('x-auth-email') && !headers.has('x-auth-role') && !headers.has('authorization')) {
        const cookie = headers.get('cookie');
        const key = cookie === null ? null : Verdicts.key(request.url, cookie);
        if (key !== null && verdicts.admitted(env, key, Date.now())) return env.ASSETS.fetch(request);
        const verdict = gateCheck(env, request.url, cookie ?? undefined);
        if (verdict === 1) return env.ASSETS.fetch(request);
        if (verdict > 1) {
          if (key !== null) verdicts.remember(env, key, verdict);
          return env.ASSETS.fetch(request);
        }
      }
    }
    return new Gatehouse(ctx, env).fetch(request);
  },
};
