// js/filter.mjs: the hot path's request filter, the same cases as the Rust test
// `only_plain_gets_without_credentials_or_identity_headers_take_the_hot_path`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hotPathMayDecide } from '../../js/filter.mjs';

const may = (method, headers) => hotPathMayDecide(method, new Headers(headers), 'x-auth-');

test('plain GET and HEAD requests may take the hot path', () => {
  assert.equal(may('GET', { cookie: 'a=b', accept: 'text/html' }), true);
  assert.equal(may('HEAD', {}), true);
  assert.equal(may('GET', { 'x-authority': '1' }), true, 'not an identity header');
});

test('other methods, credentials and identity headers take the full route', () => {
  for (const [method, headers] of [
    ['POST', { cookie: 'a=b' }],
    ['GET', { Authorization: 'Bearer x' }],
    ['GET', { authorization: 'bearer x', cookie: 'a=b' }],
    ['GET', { 'x-auth-role': 'admin' }],
    ['GET', { 'X-Auth-Anything': '1' }],
    ['HEAD', { 'x-AUTH-email': 'a@b' }],
  ]) {
    assert.equal(may(method, headers), false, `${method} ${JSON.stringify(headers)}`);
  }
});
