// Diagnostic row (BENCH_DIAG=1), not a contestant: js-fwd written as a WorkerEntrypoint class,
// as Gatehouse's entry is. Its gap to js-fwd is what a class-based entry costs by itself.
import { WorkerEntrypoint } from 'cloudflare:workers';

export default class extends WorkerEntrypoint {
  fetch(request) {
    return this.env.ASSETS.fetch(request);
  }
}
