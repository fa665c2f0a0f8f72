// The whole hot path per request, inside workerd: js/entry.mjs's fetch (filter, memory of
// verdicts, gateCheck, the private marking) against a bare JS forward, both in front of the same
// stub ASSETS (a ready Response, no service binding), for the `browse` and `cold` mixes' inputs.
// What the entry costs over the forward is the gate's own CPU per request, measured without
// the load generator, the network or another worker in the way (bench/run.mjs, "in-worker").
import entry from '../../js/entry.mjs';
import { json, measure } from './measure.mjs';

const PAGE = '<!doctype html><title>page</title>'.padEnd(1024, ' ');
const PRIVATE = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'private', vary: 'Cookie' };
const forward = { fetch: (request, env) => env.ASSETS.fetch(request) };

/** n requests through `worker`, each a (cookie, path) of the mix; all must be 200. */
function loop(worker, env, ctx, pick) {
  let next = 0;
  return async (n) => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const [url, cookie] = pick(next++);
      const res = await worker.fetch(new Request(url, { headers: { cookie } }), env, ctx);
      if (res.status === 200) ok++;
    }
    if (ok !== n) throw new Error(`${ok} of ${n} requests admitted`);
  };
}

export default {
  async fetch(request, env, ctx) {
    const { mix, cookies, paths } = await request.json();
    // The contestant's bindings, with ASSETS answering at once.
    const stub = { ...env, ASSETS: { fetch: async () => new Response(PAGE, { headers: PRIVATE }) } };
    const origin = env.AUTH_URL;
    // browse: a random visitor and page each time; cold: the next token in rotation.
    const pick = mix === 'browse'
      ? () => [origin + paths[Math.floor(Math.random() * paths.length)], cookies[Math.floor(Math.random() * cookies.length)]]
      : (i) => [`${origin}/`, cookies[i % cookies.length]];
    try {
      const fwd = await measure(loop(forward, stub, ctx, pick));
      const gate = await measure(loop(entry, stub, ctx, pick));
      return json({ us: gate.us - fwd.us, gate: gate.us, forward: fwd.us, n: gate.n });
    } catch (e) {
      return json({ error: String(e?.stack ?? e) }, 500);
    }
  },
};
