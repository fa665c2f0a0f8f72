// Micro-benchmarks of Gatehouse's own functions, in wasm, inside workerd: the bench build
// (cargo feature `bench`, bench/out/gh-bench) exports loops over the real Rust functions
// (src/runtime/bench.rs), and the same build's `gateCheck` — the export js/entry.mjs calls on
// every request — is looped here from JS, string marshalling included. Bindings as the
// contestant's (SESSION_KEYS, AUTH_URL …), so `gateCheck` sees the same configuration.
import Bench from '../out/gh-bench/index.js';
import { Verdicts } from '../../js/verdicts.mjs';
import { expectAll, json, measure } from './measure.mjs';

const B = Bench.prototype;
let next = 0;
// gateCheck answers 0 (full route), 1 (public) or the admitted-until Unix second.

function cases(env, p, now) {
  const keys = env.SESSION_KEYS;
  const origin = env.AUTH_URL;
  return {
    // token::verify of a current session token (signature, header, iss/aud/iat/exp/sxp).
    verify: (n) => expectAll('verify', B.benchSessionVerify(keys, p.token, origin, now, n), n),
    // The whole hot-path call from JS for a token never seen in this isolate: strings into
    // wasm, cookie parse, gate rules, verify (p.fresh: more cookies than any memory holds).
    // An EdDSA token is verified with WebCrypto: gateCheck answers -1 and gateCheckSignature's
    // promise gives the verdict, as js/entry.mjs awaits it.
    gateCheckNew: async (n) => {
      const url = `${origin}/`;
      let ok = 0;
      for (let i = 0; i < n; i++) {
        let v = B.gateCheck(env, url, p.fresh[(next++) % p.fresh.length]);
        if (v === -1) v = await B.gateCheckSignature(env);
        if (v > 1) ok++;
      }
      expectAll('gateCheckNew', ok, n);
    },
    // The same call for a token this isolate verified before (src/session/verified.rs): no
    // signature check, no claims decoding; the path rules still run.
    gateCheck: async (n) => {
      const cookie = `gatehouse_session=${p.token}`;
      // The first call of an EdDSA token asks for its WebCrypto check; then it is remembered.
      if (B.gateCheck(env, `${origin}/`, cookie) === -1) await B.gateCheckSignature(env);
      let ok = 0;
      for (let i = 0; i < n; i++) if (B.gateCheck(env, `${origin}/`, cookie) > 1) ok++;
      expectAll('gateCheck', ok, n);
    },
    // js/entry.mjs's memory answering a repeat request: key from URL + Cookie header, one lookup.
    remembered: (n) => {
      const cookie = `gatehouse_session=${p.token}`;
      const url = `${origin}/`;
      const v = new Verdicts();
      v.remember(env, Verdicts.key(url, cookie), now + 3600);
      let ok = 0;
      for (let i = 0; i < n; i++) if (v.admitted(env, Verdicts.key(url, cookie), Date.now())) ok++;
      expectAll('remembered', ok, n);
    },
    // Renewal minus its D1 read: verify the expired token, issue the next one.
    renewal: (n) => expectAll('renewal', B.benchRenewal(keys, p.expired, origin, now, n), n),
    // RS256 ID-token validation (the signature with WebCrypto, as the worker checks it), JWKS
    // parsed once per call, the imported key kept as the isolate keeps it.
    idToken: async (n) =>
      expectAll('idToken', await B.benchIdToken(p.jwks, p.idToken, env.GOOGLE_CLIENT_ID, p.nonce, now, n), n),
    // Sign-in callback CPU: state cookie + ID token + two random ids + session token signed.
    callback: async (n) =>
      expectAll(
        'callback',
        await B.benchSignInCallback(keys, p.jwks, p.idToken, origin, env.GOOGLE_CLIENT_ID, p.nonce, now, n),
        n,
      ),
  };
}

export default {
  async fetch(request, env) {
    const p = await request.json();
    const now = Date.now() / 1000;
    try {
      if (p.case === 'issue') return json({ token: B.benchIssue(env.SESSION_KEYS, JSON.stringify(p.claims), now) });
      const run = cases(env, p, now)[p.case];
      if (!run) return json({ error: `unknown case ${p.case}` }, 400);
      return json(await measure(run));
    } catch (e) {
      return json({ error: String(e?.stack ?? e) }, 500);
    }
  },
};
