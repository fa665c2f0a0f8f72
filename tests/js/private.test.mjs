// js/private.mjs: how the hot path marks ASSETS' response for an admitted request. The rules
// themselves are Rust's (wasm exports, tested natively and end to end); stand-ins with the same
// contract (idempotent, "unchanged" = "already marked") are used here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { markPrivate } from '../../js/private.mjs';

const SHARED = ['cdn-cache-control', 'cloudflare-cdn-cache-control', 'surrogate-control'];
const rules = {
  cacheControl: (v) => (v && /^private\b/i.test(v) ? v : 'private'),
  vary: (v) => (v && /\bcookie\b/i.test(v) ? v : v ? `${v}, Cookie` : 'Cookie'),
  shared: SHARED,
};

const response = (headers, body = 'page', status = 200) => new Response(body, { status, headers });

test('a response already private, varying on Cookie and without CDN headers is forwarded as it is', () => {
  const r = response({ 'cache-control': 'private', vary: 'Cookie', 'x-site': '1' });
  assert.equal(markPrivate(r, rules), r);
});

test('a CDN caching header makes even an already private response a marked copy without it', async () => {
  for (const name of ['CDN-Cache-Control', 'Cloudflare-CDN-Cache-Control', 'Surrogate-Control']) {
    const r = response({ 'cache-control': 'private', vary: 'Cookie', [name]: 'max-age=3600', 'x-site': '1' }, 'body', 404);
    const out = markPrivate(r, rules);
    assert.notEqual(out, r, name);
    assert.equal(out.headers.has(name), false, `${name} removed`);
    assert.equal(out.headers.get('cache-control'), 'private');
    assert.equal(out.headers.get('vary'), 'Cookie');
    assert.equal(out.headers.get('x-site'), '1', 'the site\'s other headers stay');
    assert.equal(out.status, 404);
    assert.equal(await out.text(), 'body');
  }
});

test('all CDN caching headers go at once, with the private marking', () => {
  const r = response({
    'cache-control': 'public, max-age=60',
    'cdn-cache-control': 'max-age=3600',
    'cloudflare-cdn-cache-control': 'max-age=7200',
    'surrogate-control': 'max-age=600',
  });
  const out = markPrivate(r, rules);
  for (const name of SHARED) assert.equal(out.headers.get(name), null, name);
  assert.equal(out.headers.get('cache-control'), 'private');
  assert.equal(out.headers.get('vary'), 'Cookie');
});

test('the list of CDN headers is the one given (the wasm export), not a copy of its own', () => {
  const r = response({ 'cache-control': 'private', vary: 'Cookie', 'x-other-cdn': 'max-age=1' });
  const out = markPrivate(r, { ...rules, shared: ['x-other-cdn'] });
  assert.notEqual(out, r);
  assert.equal(out.headers.has('x-other-cdn'), false);
  const kept = markPrivate(response({ 'cache-control': 'private', vary: 'Cookie', 'cdn-cache-control': 'x' }), { ...rules, shared: [] });
  assert.equal(kept.headers.get('cdn-cache-control'), 'x');
});

test('a response that is not yet private is marked on a copy', () => {
  const r = response({ 'cache-control': 'max-age=60', vary: 'Accept-Encoding' });
  const out = markPrivate(r, rules);
  assert.notEqual(out, r);
  assert.equal(out.headers.get('cache-control'), 'private');
  assert.equal(out.headers.get('vary'), 'Accept-Encoding, Cookie');
});
