// The hot path's memory: recent "admitted" verdicts of this isolate, so a browser's next request
// with the same session cookie (the page's CSS, images, the next page) costs a map lookup
// instead of a call into wasm and a signature check.
//
// Safety (why a remembered verdict is the verdict gateCheck would give again):
// - The key is the exact input gateCheck decides from: the request URL (origin and path) and the
//   whole Cookie header; the only other inputs are the configuration, fixed per isolate (a change
//   of vars or secrets is a new deployment, hence a new isolate; a different `env` clears the
//   memory anyway), and the clock.
// - Only "admitted" is remembered, never a refusal, and only until the moment gateCheck names
//   (the token's `exp`, or the session's end if sooner): from then on the same request takes the
//   full route again (renewal reads D1 for revocation, role and disabled users), exactly as
//   without this memory. So revocation is bounded by SESSION_CHECK_INTERVAL as before.
// - An entry is made only by a full signature check, so nobody can add one without a valid token.
// - Bounded: at most MAX_ENTRIES keys of under MAX_KEY_LENGTH characters (8 MB at worst, about
//   1 MB with ordinary cookies).
//   Two generations, O(1) each way: new keys go to the young one; when it is full it becomes the
//   old one and the previous old one is dropped; a hit in the old generation moves back to the
//   young one, so what is in use stays.

/** Most verdicts kept per isolate (two generations of half as many). */
export const MAX_ENTRIES = 1024;
/** Longest key (URL + Cookie header) remembered; longer requests are simply checked each time. */
export const MAX_KEY_LENGTH = 8192;

export class Verdicts {
  #env = undefined;
  // key → the first millisecond at which the verdict no longer holds
  #young = new Map();
  #old = new Map();
  #half;

  constructor(max = MAX_ENTRIES) {
    this.#half = Math.max(1, Math.floor(max / 2));
  }

  /** The key for a request, or null if it is too long to remember. */
  static key(url, cookie) {
    // Neither a serialized URL nor a header value can hold a line feed: the key is unambiguous.
    return url.length + cookie.length < MAX_KEY_LENGTH ? `${url}\n${cookie}` : null;
  }

  /** Whether `key` was admitted for this `env` and still is at `nowMs`. */
  admitted(env, key, nowMs) {
    if (env !== this.#env) return false;
    let until = this.#young.get(key);
    if (until === undefined) {
      until = this.#old.get(key);
      if (until === undefined) return false;
      this.#old.delete(key);
      if (nowMs < until) this.#add(key, until);
    }
    if (nowMs < until) return true;
    this.#young.delete(key);
    return false;
  }

  /** Remembers that `key` is admitted until `untilSecs` (Unix seconds, from gateCheck). */
  remember(env, key, untilSecs) {
    if (env !== this.#env) {
      this.#env = env;
      this.#young = new Map();
      this.#old = new Map();
    }
    this.#old.delete(key);
    this.#add(key, untilSecs * 1000);
  }

  #add(key, untilMs) {
    if (this.#young.size >= this.#half && !this.#young.has(key)) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, untilMs);
  }

  /** How many verdicts are held. */
  get size() {
    return this.#young.size + this.#old.size;
  }
}

/**
 * A memo for a pure string function of one argument (privateCacheControl: the same upstream
 * Cache-Control value always gives the same answer), bounded to `max` entries.
 */
export function memo(fn, max = 64) {
  const seen = new Map();
  return (value) => {
    let out = seen.get(value);
    if (out === undefined) {
      out = fn(value);
      if (seen.size >= max) seen.clear();
      seen.set(value, out);
    }
    return out;
  };
}
