// The ASSETS stand-in: the same ~1 KB HTML page for every path, bound to every contestant as
// `ASSETS` (a service binding), so each contestant pays exactly one forward to it. Its headers
// are those of a site behind a gate that marks its pages private itself, as the demo's
// public/_headers does (`Cache-Control: private`, `Vary: Cookie`), except under /plain/, which
// answers like a static site that says nothing about it (Gatehouse then marks a copy private).
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Members area</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header><nav><a href="/">Home</a> <a href="/docs/">Docs</a> <a href="/account/">Account</a></nav></header>
<main>
<h1>Welcome back</h1>
<p>This page stands in for a static site behind a gate. It is about one kilobyte of HTML, the
size of a small landing page, so the benchmark measures the gate and the forward, not the
transfer of a large body over loopback.</p>
<ul>
<li><a href="/docs/getting-started">Getting started</a></li>
<li><a href="/docs/configuration">Configuration</a></li>
<li><a href="/docs/deploy">Deploy</a></li>
<li><a href="/changelog">Changelog</a></li>
</ul>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut
labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.</p>
</main>
<footer><p>&copy; 2026 Example</p></footer>
</body>
</html>
`;

const PRIVATE = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'private', vary: 'Cookie' };
const PLAIN = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=60' };

export default {
  fetch(request) {
    return new Response(PAGE, { headers: request.url.endsWith('/plain/') ? PLAIN : PRIVATE });
  },
};
