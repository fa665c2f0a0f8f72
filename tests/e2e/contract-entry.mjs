// The store contract worker (tests/e2e/store_contract.test.mjs): the wasm bundle built with the
// cargo feature `contract` (`bash scripts/build --contract`), whose `storeContract(env)` runs
// the suite of src/store/contract.rs on the `DB` binding. Never deployed.
import Contract from '../out/contract/index.js';

const { storeContract } = Contract.prototype;

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname !== '/run') return new Response('store contract worker');
    return new Response(await storeContract(env), { headers: { 'content-type': 'application/json' } });
  },
};
