// In-worker timing shared by the micro-benchmark workers. performance.now() advances inside a
// synchronous loop in local workerd, with 1 ms resolution, so each sample is a loop long enough
// (≥ MIN_MS) for that resolution to be < 0.5 % of it; the result is the median of REPEATS samples.
const MIN_MS = 250;
const REPEATS = 5;

async function timed(run, n) {
  const t0 = performance.now();
  await run(n);
  return performance.now() - t0;
}

/** µs per operation of `run(n)`, which performs n operations (sync or async). */
export async function measure(run) {
  await run(8); // warm-up: JIT, lazily built state (config, keys) outside the samples
  let n = 8;
  for (;;) {
    const ms = await timed(run, n);
    if (ms >= MIN_MS) break;
    n = Math.ceil(n * Math.min(100, Math.max(2, (MIN_MS * 1.3) / Math.max(ms, 1))));
  }
  const samples = [];
  for (let i = 0; i < REPEATS; i++) samples.push(((await timed(run, n)) * 1000) / n);
  const sorted = [...samples].sort((a, b) => a - b);
  return { us: sorted[Math.floor(sorted.length / 2)], n, samples };
}

export function json(value, status = 200) {
  return new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });
}

/** Throws unless every one of n iterations succeeded: we time the success path only. */
export function expectAll(name, succeeded, n) {
  if (succeeded !== n) throw new Error(`${name}: ${succeeded} of ${n} iterations succeeded`);
}
