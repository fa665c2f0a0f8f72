// A hostile identity provider: every way the provider can get a sign-in wrong (the local
// provider's `test_twist`s, listed by GET /_control/twists) plus bad callbacks, each refused with
// the right error code, no session, an error page without internals, and in bounded time.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  CLIENT_SECRET, SESSION_COOKIE, STATE_COOKIE,
  clearsCookie, cookieValue, decodeJwt, errorCodeOf, findSetCookie, idpTwists, request, sessionCookieFrom, signHmac,
  sqlString, stackKeyBytes, startSignIn, startStack, uniqueEmail, waitForLog,
} from './harness.mjs';

/** The worker's provider requests time out after 5 s; a callback must be answered within this. */
const CALLBACK_BUDGET_MS = 8000;
const STATUS_OF = { OAuthCallbackError: 400, AccessDenied: 403, OAuthAccountNotLinked: 403 };
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;
/** Things an error page must never show: panics, exceptions, stack frames, source paths. */
const INTERNALS = [
  /panicked/i, /\bError:/, /RuntimeError/, /unreachable/i, /wasm-function/i, /\bat [\w.<>$]+ \(/, /\.rs:\d+/,
  /\bsrc\/[\w/]+\.\w+/, /backtrace/i, /Traceback/, /IdToken\(|CodeExchange\(|Jwks\(|State\(/,
];

const stack = await startStack({ name: 'hostile' });
// The provider's own list: every twist, and whether a correct relying party accepts it.
const twists = await idpTwists(stack);

/** The code a correct app answers for a twist it must refuse. */
const expectedCode = (twist) => (twist === 'unverified_email' ? 'AccessDenied' : 'OAuthCallbackError');

/** Readable test names for the twists (the rest fall back to the raw name). */
const TWIST_TITLES = {
  token_stall: 'a token endpoint that stalls (token_stall) is given up after about 5 s with OAuthCallbackError',
  token_slow_body: 'a token endpoint that trickles its body (token_slow_body) is given up after about 5 s with OAuthCallbackError',
};
/** Twists whose refusal must wait for the worker's 5 s provider timeout. */
const SLOW = new Set(['token_stall', 'token_slow_body']);

describe('a hostile identity provider', () => {
  after(async () => { await stack.stop(); });

  // Every secret-ish value the suite sees, to check none reaches a page or the worker log.
  const seen = new Set();
  let failures = 0; // callbacks that were refused (each must log one signin_failed line)

  test('the provider lists its twists, and the worker is exercised by each of them', () => {
    assert.ok(twists.length >= 39, `twists: ${JSON.stringify(twists)}`);
    const acceptable = twists.filter((t) => t.acceptable).map((t) => t.name).sort();
    assert.deepEqual(acceptable, ['aud_array_with_azp', 'expired_within_leeway', 'iat_future_within_leeway']);
  });

  /** Starts a sign-in and records its state, state cookie and code as secrets. */
  async function start(opts) {
    const s = await startSignIn(stack, opts);
    for (const v of [s.stateCookie.value, s.callbackUrl.searchParams.get('code'), s.callbackUrl.searchParams.get('state')]) {
      if (v) seen.add(v);
    }
    return s;
  }

  /** Sends a callback (URL and cookie as given) and times it. */
  async function callback(url, stateCookieValue) {
    const t0 = Date.now();
    const res = await request(stack, url, {
      accept: 'text/html',
      cookie: stateCookieValue === null ? undefined : `${STATE_COOKIE}=${stateCookieValue}`,
    });
    return { res, elapsed: Date.now() - t0 };
  }

  /**
   * A refused callback: (a) no session cookie, (b) a redirect to /auth/error with `code` (and
   * the callbackUrl of a valid state cookie; `cancelled=1` only for a cancel), the state cookie
   * cleared, (c) an uncached 4xx error page without internals or secrets, (d) within 8 s.
   */
  async function assertRefused({ res, elapsed }, code, { callbackUrl = '/docs/', cancelled = false, minMs = 0 } = {}) {
    failures += 1;
    const what = res.describe();
    // (a) never a session cookie, not even a cleared one.
    assert.equal(sessionCookieFrom(res), null, `no session cookie may be set:\n${what}`);
    assert.equal(findSetCookie(res, SESSION_COOKIE), null, `the callback does not touch the session cookie:\n${what}`);
    // (b) the error code.
    assert.equal(res.status, 302, what);
    assert.equal(errorCodeOf(res.location, stack.base), code, `expected /auth/error?error=${code}:\n${what}`);
    const q = res.location.searchParams;
    assert.equal(q.get('callbackUrl'), callbackUrl, `callbackUrl of the error redirect: ${res.rawLocation}`);
    assert.equal(q.get('cancelled'), cancelled ? '1' : null, `cancelled in ${res.rawLocation}`);
    const state = findSetCookie(res, STATE_COOKIE);
    assert.ok(state && clearsCookie(state), `the state cookie is cleared:\n${what}`);
    for (const v of seen) assert.ok(!res.rawLocation.includes(v), `a secret value is in the Location: ${res.rawLocation}`);
    // (d) in bounded time.
    assert.ok(elapsed < CALLBACK_BUDGET_MS, `the callback took ${elapsed} ms (budget ${CALLBACK_BUDGET_MS} ms)`);
    assert.ok(elapsed >= minMs, `the callback took ${elapsed} ms, expected at least ${minMs} ms (the provider timeout)`);
    // (c) the error page.
    const page = await request(stack, res.location, { accept: 'text/html' });
    assert.equal(page.status, STATUS_OF[code], page.describe());
    assert.ok(page.status >= 400 && page.status < 500, page.describe());
    assert.match(page.headers.get('content-type') ?? '', /text\/html/, page.describe());
    assert.match(page.headers.get('cache-control') ?? '', /no-store/, page.describe());
    assert.equal(sessionCookieFrom(page), null, page.describe());
    for (const re of INTERNALS) assert.doesNotMatch(page.body, re, `the error page shows internals:\n${page.body}`);
    assert.doesNotMatch(page.body, JWT_SHAPED, 'the error page shows a token');
    assert.ok(!page.body.includes(CLIENT_SECRET), 'the error page shows the client secret');
    for (const v of seen) assert.ok(!page.body.includes(v), `the error page shows a secret value: ${v.slice(0, 16)}…`);
    assert.ok(page.body.includes(`Error code: ${code}`) || page.body.includes(code), `the page names the code:\n${page.body}`);
    return page;
  }

  /** Asserts a sign-in succeeded and its session opens the private page. */
  async function assertSignedIn({ res, elapsed }) {
    const cookie = sessionCookieFrom(res);
    assert.ok(cookie, `a session cookie:\n${res.describe()}`);
    seen.add(cookieValue(cookie));
    assert.equal(res.status, 302, res.describe());
    assert.equal(res.location.href, `${stack.base}/docs/`, res.rawLocation);
    assert.ok(elapsed < CALLBACK_BUDGET_MS, `the callback took ${elapsed} ms`);
    const page = await request(stack, '/docs/', { cookie, accept: 'text/html' });
    assert.equal(page.status, 200, page.describe());
    return cookie;
  }

  // Emails of the sign-ins that must leave nothing in D1, and of those that must succeed.
  const refusedEmails = [];
  const acceptedEmails = [];

  /** A whole sign-in with `idpParams` for the provider (twists etc.), then the callback. */
  async function hostileSignIn(label, idpParams, mutate) {
    const email = uniqueEmail(`hostile-${label.replace(/[^a-z0-9]+/gi, '-').slice(0, 30)}`);
    const s = await start({ email, extraIdpParams: idpParams });
    let url = s.callbackUrl;
    let cookie = s.stateCookie.value;
    if (mutate) ({ url, cookie } = await mutate(s));
    return { email, ...(await callback(url, cookie)) };
  }

  // ---- Every twist the provider offers ---------------------------------------------------

  for (const { name, acceptable, kind } of twists) {
    if (acceptable) {
      test(`a token within the rules (${name}) signs the person in`, async () => {
        const r = await hostileSignIn(name, { test_twist: name });
        acceptedEmails.push(r.email);
        await assertSignedIn(r);
      });
    } else {
      const code = expectedCode(name);
      const title = TWIST_TITLES[name] ?? `the ${kind.replace('_', ' ')} twist ${name} is refused with ${code}`;
      test(title, async () => {
        const r = await hostileSignIn(name, { test_twist: name });
        refusedEmails.push(r.email);
        // The two slow ones must also wait for the worker's 5 s timeout, not fail early.
        await assertRefused(r, code, { minMs: SLOW.has(name) ? 4000 : 0 });
      });
    }
  }

  // ---- Extra hostile cases: combinations, and callbacks tampered with -------------------

  const randomCode = () => `4/${randomBytes(24).toString('base64url')}`;
  const extras = [
    ['an expired token without kid (expired + no_kid)', { test_twist: 'expired,no_kid' }, 'OAuthCallbackError'],
    ['a token from another issuer for another client (wrong_iss + wrong_aud)', { test_twist: 'wrong_iss,wrong_aud' }, 'OAuthCallbackError'],
    ['a valid second audience does not excuse an expired token (aud_array_with_azp + expired)', { test_twist: 'aud_array_with_azp,expired' }, 'OAuthCallbackError'],
    ['clock skew within leeway does not excuse a wrong nonce (expired_within_leeway + wrong_nonce)', { test_twist: 'expired_within_leeway,wrong_nonce' }, 'OAuthCallbackError'],
    ['clock skew within leeway does not excuse a foreign signature (iat_future_within_leeway + foreign_key)', { test_twist: 'iat_future_within_leeway,foreign_key' }, 'OAuthCallbackError'],
    ['an unsigned token without any time claims (alg_none + no_exp + no_iat)', { test_twist: 'alg_none,no_exp,no_iat' }, 'OAuthCallbackError'],
    ['an algorithm-confusion token without nonce (hs256_pubkey + no_nonce)', { test_twist: 'hs256_pubkey,no_nonce' }, 'OAuthCallbackError'],
    ['an unverified email on an otherwise valid multi-audience token (unverified_email + aud_array_with_azp)', { test_twist: 'unverified_email,aud_array_with_azp' }, 'AccessDenied'],
    ['a string "true" for email_verified within leeway (email_verified_string + iat_future_within_leeway)', { test_twist: 'email_verified_string,iat_future_within_leeway' }, 'OAuthCallbackError'],
    ['an honest token saying email_verified false (test_email_verified=false)', { test_email_verified: 'false' }, 'AccessDenied'],
    ['a token without sub and email (no_sub + no_email)', { test_twist: 'no_sub,no_email' }, 'OAuthCallbackError'],
    ['a made-up authorization code is refused with OAuthCallbackError', {}, 'OAuthCallbackError', async (s) => {
      const url = new URL(s.callbackUrl);
      url.searchParams.set('code', randomCode());
      return { url, cookie: s.stateCookie.value };
    }],
    ['an empty code parameter is refused with OAuthCallbackError', {}, 'OAuthCallbackError', async (s) => {
      const url = new URL(s.callbackUrl);
      url.searchParams.set('code', '');
      return { url, cookie: s.stateCookie.value };
    }],
    ['a code injected from another sign-in (other PKCE verifier and nonce) is refused with OAuthCallbackError', {}, 'OAuthCallbackError', async (s) => {
      // The attacker's code (issued for the attacker's own login) with the victim's state.
      const attacker = await start({ email: uniqueEmail('hostile-attacker') });
      const url = new URL(s.callbackUrl);
      url.searchParams.set('code', attacker.callbackUrl.searchParams.get('code'));
      return { url, cookie: s.stateCookie.value };
    }],
    ['the state parameter of another sign-in is refused with OAuthCallbackError', {}, 'OAuthCallbackError', async (s) => {
      const other = await start({ email: uniqueEmail('hostile-other') });
      const url = new URL(s.callbackUrl);
      url.searchParams.set('state', other.callbackUrl.searchParams.get('state'));
      return { url, cookie: s.stateCookie.value };
    }],
    ['a provider error other than access_denied (server_error) is refused without "cancelled"', {}, 'OAuthCallbackError', async (s) => {
      const url = new URL('/auth/callback/google', stack.base);
      url.searchParams.set('error', 'server_error');
      url.searchParams.set('state', s.callbackUrl.searchParams.get('state'));
      return { url, cookie: s.stateCookie.value };
    }],
    ['a provider error carrying markup is refused and not reflected', {}, 'OAuthCallbackError', async (s) => {
      const url = new URL('/auth/callback/google', stack.base);
      url.searchParams.set('error', '<script>alert(1)</script>');
      url.searchParams.set('error_description', 'panicked at src/app.rs:1:1');
      url.searchParams.set('state', s.callbackUrl.searchParams.get('state'));
      return { url, cookie: s.stateCookie.value };
    }],
  ];
  for (const [title, idpParams, code, mutate] of extras) {
    test(title.includes(' is refused') ? title : `${title} is refused with ${code}`, async () => {
      const r = await hostileSignIn(title, idpParams, mutate);
      refusedEmails.push(r.email);
      const page = await assertRefused(r, code);
      assert.ok(!page.body.includes('<script>alert(1)'), 'no markup from the callback reaches the page');
      assert.doesNotMatch(page.body, /<h1>[^<]*cancelled/i, 'only a cancel is called a cancel');
    });
  }

  // ---- Named cases ---------------------------------------------------------------------

  test('replaying a successful callback (same state cookie and code) gives no second session', async () => {
    const s = await start({ email: uniqueEmail('hostile-replay') });
    const first = await callback(s.callbackUrl, s.stateCookie.value);
    await assertSignedIn(first);
    const replay = await callback(s.callbackUrl, s.stateCookie.value);
    await assertRefused(replay, 'OAuthCallbackError');
  });

  test('a callback without code (?state= only) is refused with OAuthCallbackError', async () => {
    const s = await start({ email: uniqueEmail('hostile-nocode') });
    const url = new URL('/auth/callback/google', stack.base);
    url.searchParams.set('state', s.callbackUrl.searchParams.get('state'));
    await assertRefused(await callback(url, s.stateCookie.value), 'OAuthCallbackError');
    // The code was never sent to the worker, so the browser can still finish with it.
    await assertSignedIn(await callback(s.callbackUrl, s.stateCookie.value));
  });

  test('a callback without state (?code= only) is refused with OAuthCallbackError before the code is redeemed', async () => {
    const s = await start({ email: uniqueEmail('hostile-nostate') });
    const url = new URL('/auth/callback/google', stack.base);
    url.searchParams.set('code', s.callbackUrl.searchParams.get('code'));
    await assertRefused(await callback(url, s.stateCookie.value), 'OAuthCallbackError');
    await assertSignedIn(await callback(s.callbackUrl, s.stateCookie.value));
  });

  test('a callback without code, state or cookie is refused with OAuthCallbackError', async () => {
    await assertRefused(await callback('/auth/callback/google', null), 'OAuthCallbackError', { callbackUrl: null });
  });

  // A state cookie older than 10 minutes would need a 10-minute wait here; its expiry is
  // tested natively (src/oidc/state.rs: state_expires_after_ten_minutes).

  test('pressing Cancel (error=access_denied) ends on OAuthCallbackError with cancelled=1 and a page that says so', async () => {
    const s = await start({ email: uniqueEmail('hostile-cancel') });
    const url = new URL('/auth/callback/google', stack.base);
    url.searchParams.set('error', 'access_denied');
    url.searchParams.set('state', s.callbackUrl.searchParams.get('state'));
    const page = await assertRefused(await callback(url, s.stateCookie.value), 'OAuthCallbackError', { cancelled: true });
    assert.match(page.body, /<h1>[^<]*cancelled/i, page.body);
  });

  test('the provider refusing at its own page (test_deny) ends the same way, cancelled=1', async () => {
    const s = await start({ email: uniqueEmail('hostile-deny'), extraIdpParams: { test_deny: '1' } });
    assert.equal(s.callbackUrl.searchParams.get('error'), 'access_denied', String(s.callbackUrl));
    const page = await assertRefused(await callback(s.callbackUrl, s.stateCookie.value), 'OAuthCallbackError', { cancelled: true });
    assert.match(page.body, /<h1>[^<]*cancelled/i, page.body);
  });

  test('a state cookie signed with another key (another stack) is refused with OAuthCallbackError', async () => {
    const s = await start({ email: uniqueEmail('hostile-otherkey') });
    const { header, payload } = decodeJwt(s.stateCookie.value);
    const forged = signHmac(header, payload, randomBytes(32));
    seen.add(forged);
    const r = await callback(s.callbackUrl, forged);
    // Not our signature: its callbackUrl is not trusted either.
    await assertRefused(r, 'OAuthCallbackError', { callbackUrl: null });
    await assertSignedIn(await callback(s.callbackUrl, s.stateCookie.value));
  });

  test('a state cookie made with our key for another origin is refused with OAuthCallbackError', async () => {
    const s = await start({ email: uniqueEmail('hostile-otherorigin') });
    const { header, payload } = decodeJwt(s.stateCookie.value);
    const forged = signHmac(header, { ...payload, aud: 'http://127.0.0.1:1' }, stackKeyBytes(stack));
    seen.add(forged);
    await assertRefused(await callback(s.callbackUrl, forged), 'OAuthCallbackError', { callbackUrl: null });
  });

  // ---- After all of it -----------------------------------------------------------------

  test('refused sign-ins leave no user in D1; accepted ones leave one each', async () => {
    assert.ok(refusedEmails.length >= 40, `hostile sign-ins: ${refusedEmails.length}`);
    const rows = await stack.d1("SELECT email FROM users WHERE email LIKE 'hostile-%'");
    const stored = new Set(rows.map((r) => r.email));
    for (const e of refusedEmails) assert.ok(!stored.has(e), `a refused sign-in created a user: ${e}`);
    for (const e of acceptedEmails) assert.ok(stored.has(e), `an accepted sign-in has no user: ${e}`);
    const [orphans] = await stack.d1(
      `SELECT COUNT(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email IN (${refusedEmails.map(sqlString).join(',')})`,
    );
    assert.equal(orphans.n, 0);
  });

  test('the worker logged one signin_failed line per refusal, without codes, tokens or secrets', async () => {
    assert.ok(failures >= 40, `refusals seen: ${failures}`);
    await waitForLog(stack, (o) => o.event === 'signin_failed', { count: failures, what: 'signin_failed (one per refusal)' });
    const logs = stack.logs();
    const lines = logs.split('\n').filter((l) => l.includes('"event":"signin_failed"'));
    for (const l of lines) {
      const parsed = JSON.parse(l.slice(l.indexOf('{')));
      assert.equal(parsed.event, 'signin_failed');
      assert.ok(typeof parsed.reason === 'string' && parsed.reason.length > 0, l);
    }
    assert.ok(seen.size > 50, `values checked: ${seen.size}`);
    for (const v of seen) assert.ok(!logs.includes(v), `a secret value appears in the worker log: ${v.slice(0, 24)}…`);
    assert.doesNotMatch(logs, JWT_SHAPED, 'a JWT (ID token, state or session) appears in the worker log');
    assert.ok(!logs.includes(CLIENT_SECRET), 'the client secret appears in the worker log');
    assert.ok(!logs.includes(stack.sessionKeys.keys[0].k), 'the session key appears in the worker log');
  });
});
