// The store contract worker (tests/e2e/store_contract.test.mjs): the wasm bundle built with the
// cargo feature `contract` (`bash scripts/build --contract`), whose `storeContract(env)` runs
// the suite of src/store/contract.rs on the `DB` binding. Never deployed.
//
//   GET  /run    the suite's results, and every SQL text the D1 store prepared during it
//   POST /plans  {"statements": [SQL, …]} → [{sql, plan: [{id, parent, detail}, …]} | {sql, error}]:
//                `EXPLAIN QUERY PLAN` of each on the same D1, its placeholders bound to NULL
//   POST /ed25519 {"keys": JWK Set, "tokens": [JWT, …]} → per token {webcrypto, native} | null:
//                the hot path's WebCrypto Ed25519 check beside the pure-Rust one
import Contract from '../out/contract/index.js';

const { ed25519Checks, storeContract } = Contract.prototype;

const json = (value) => new Response(typeof value === 'string' ? value : JSON.stringify(value), {
  headers: { 'content-type': 'application/json' },
});

/**
 * How many values `sql` binds: the highest `?N`, or the number of bare `?`, outside string
 * literals and quoted names (the command line writes its values into the SQL as literals).
 */
function placeholders(sql) {
  const code = sql.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"/g, "''");
  const numbered = [...code.matchAll(/\?(\d+)/g)].map((m) => Number(m[1]));
  const bare = [...code.matchAll(/\?(?!\d)/g)].length;
  return Math.max(0, ...numbered) + bare;
}

async function plan(db, sql) {
  try {
    const args = new Array(placeholders(sql)).fill(null);
    const { results } = await db.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...args).all();
    return { sql, plan: results.map(({ id, parent, detail }) => ({ id, parent, detail })) };
  } catch (e) {
    return { sql, error: String(e?.message ?? e) };
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === '/run') return json(await storeContract(env));
    if (pathname === '/plans' && request.method === 'POST') {
      const { statements } = await request.json();
      const plans = [];
      for (const sql of statements) plans.push(await plan(env.DB, sql));
      return json(plans);
    }
    if (pathname === '/ed25519' && request.method === 'POST') {
      const { keys, tokens } = await request.json();
      return json(await ed25519Checks(JSON.stringify(keys), JSON.stringify(tokens)));
    }
    return new Response('store contract worker');
  },
};
