// Which requests the hot path may decide at all: the same test as `hot_path_may_decide` in
// src/app/forward.rs, which the full route applies; the identity header prefix comes from there
// (the wasm export `identityHeaderPrefix`). A GET or HEAD without `Authorization` (a bearer token
// is never renewed nor remembered) and without any identity header (the full route removes them).

/**
 * @param {string} method
 * @param {Headers} headers
 * @param {string} prefix lower-case identity header prefix, e.g. "x-auth-"
 */
export function hotPathMayDecide(method, headers, prefix) {
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (headers.has('authorization')) return false;
  // Header names come lower-cased from the runtime's Headers.
  for (const name of headers.keys()) if (name.startsWith(prefix)) return false;
  return true;
}
