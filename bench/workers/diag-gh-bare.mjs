// Diagnostic row (BENCH_DIAG=1): extends the release bundle's entrypoint class exactly as
// js/entry.mjs does (worker-build wraps it in Proxies that run on every call), then only forwards.
// Its gap to diag-class-fwd is the worker-build shim's cost per request.
import Gatehouse from '../../build/index.js';

export default class extends Gatehouse {
  async fetch(request) {
    return this.env.ASSETS.fetch(request);
  }
}
