// Marks the response of an admitted request so that it never lands in a shared cache: the hot
// path's half of what the Rust forward (src/runtime/mod.rs, `forward_to_site`) does. Every rule
// comes from the wasm exports (`privateCacheControl`, `privateVary`, `sharedCacheHeaders`), so
// the two forwards never disagree; this file only applies them. Plain JS, tested in tests/js.

/**
 * `response` marked private: `Cache-Control` and `Vary` as `rules.cacheControl(value)` and
 * `rules.vary(value)` say (each given the site's value or `undefined`), and none of the headers
 * in `rules.shared` (lower-case names of CDN caching headers such as `CDN-Cache-Control`).
 */
export function markPrivate(response, rules) {
  const had = response.headers;
  const upstreamCc = had.get('cache-control');
  const upstreamVary = had.get('vary');
  const cc = rules.cacheControl(upstreamCc ?? undefined);
  const v = rules.vary(upstreamVary ?? undefined);
  // Already private, varying on Cookie and without CDN directives (the site says so itself, e.g.
  // in `_headers`): forward it as it is. Both functions are idempotent, so "unchanged" means
  // "already marked". A CDN header left here would let a shared cache keep the page.
  if (cc === upstreamCc && v === upstreamVary && !rules.shared.some((name) => had.has(name))) {
    return response;
  }
  // The runtime's response headers are immutable: mark a copy.
  const out = new Response(response.body, response);
  out.headers.set('cache-control', cc);
  out.headers.set('vary', v);
  for (const name of rules.shared) out.headers.delete(name);
  return out;
}
