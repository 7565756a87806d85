// Fixed-time throughput measurement: warm up, then run fn in batches until the time is up.
import { performance } from 'node:perf_hooks';

export interface Measurement {
  ops: number;
  seconds: number;
  opsPerSecond: number;
}

/** Calls fn repeatedly for `seconds` (after `warmupSeconds` of unmeasured calls). */
export function measure(fn: () => void, seconds: number, warmupSeconds = 0.5): Measurement {
  runFor(fn, warmupSeconds);
  const { ops, elapsed } = runFor(fn, seconds);
  return { ops, seconds: elapsed, opsPerSecond: ops / elapsed };
}

function runFor(fn: () => void, seconds: number): { ops: number; elapsed: number } {
  const budgetMs = seconds * 1000;
  let batch = 1;
  let ops = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = performance.now() - start;
    // Aim for batches of ~10 ms so the clock is read rarely but the deadline is kept.
    if (elapsed < budgetMs && ops > 0) {
      const perOp = elapsed / ops;
      batch = Math.max(1, Math.min(1 << 20, Math.floor(10 / Math.max(perOp, 1e-6))));
    }
  }
  return { ops, elapsed: elapsed / 1000 };
}
