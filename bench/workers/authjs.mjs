// `authjs`: the peer. Auth.js v5's own edge check — `getToken` from `@auth/core/jwt` parses the
// Cookie header and decodes the JWE session (dir + A256CBC-HS512, key derived with HKDF) — then
// the same forward to ASSETS. A request without a valid session is refused.
// Bundled by bench/run.mjs with esbuild into bench/out/authjs.mjs.
import { getToken } from '@auth/core/jwt';

export default {
  async fetch(request, env) {
    const token = await getToken({ req: request, secret: env.AUTH_SECRET, secureCookie: false });
    if (!token) return new Response('Unauthorized', { status: 401 });
    return env.ASSETS.fetch(request);
  },
};
