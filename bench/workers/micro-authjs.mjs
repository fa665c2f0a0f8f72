// Micro-benchmarks of Auth.js v5's session cookie (`@auth/core/jwt`), in the same workerd as
// Gatehouse's: `decode` (what every session read costs), `decode` + `encode` (what its session
// call does when it re-issues the cookie) and `getToken` (what the `authjs` contestant runs per
// request: Cookie parse + decode). Bundled by bench/run.mjs with esbuild.
import { decode, encode, getToken } from '@auth/core/jwt';
import { json, measure } from './measure.mjs';

const SALT = 'authjs.session-token'; // the cookie name on http, Auth.js's default salt

function cases(env, p) {
  const secret = env.AUTH_SECRET;
  const check = (payload) => {
    if (!payload?.sub) throw new Error('Auth.js token did not decode');
    return payload;
  };
  const req = new Request('http://127.0.0.1/', { headers: { cookie: `${SALT}=${p.token}` } });
  return {
    decode: async (n) => {
      for (let i = 0; i < n; i++) check(await decode({ token: p.token, secret, salt: SALT }));
    },
    decodeEncode: async (n) => {
      for (let i = 0; i < n; i++) {
        const payload = check(await decode({ token: p.token, secret, salt: SALT }));
        await encode({ token: payload, secret, salt: SALT, maxAge: 30 * 86400 });
      }
    },
    getToken: async (n) => {
      for (let i = 0; i < n; i++) check(await getToken({ req, secret, secureCookie: false }));
    },
  };
}

export default {
  async fetch(request, env) {
    const p = await request.json();
    try {
      const run = cases(env, p)[p.case];
      if (!run) return json({ error: `unknown case ${p.case}` }, 400);
      return json(await measure(run));
    } catch (e) {
      return json({ error: String(e?.stack ?? e) }, 500);
    }
  },
};
