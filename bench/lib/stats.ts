// Small helpers shared by the benchmarks: percentiles, CPU time of a process, sleeping in slices.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Nearest-rank percentile (p in 0..100) of the values; sorts a copy. */
export function percentiles(values: Float64Array, ps: number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  return ps.map((p) => {
    if (sorted.length === 0) return NaN;
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
  });
}

export function mean(values: Float64Array): number {
  let s = 0;
  for (const v of values) s += v;
  return values.length === 0 ? NaN : s / values.length;
}

let clockTicks: number | undefined;

/** User + system CPU seconds a process has used so far (Linux /proc), or NaN where unavailable. */
export function processCpuSeconds(pid: number): number {
  try {
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return NaN;
  }
}

/** This process's CPU seconds (user + system). */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Sleeps `ms`, calling `check` every `sliceMs` (it throws to abort, e.g. when a child died). */
export async function sleepChecked(ms: number, check: () => void, sliceMs = 100): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    check();
    const left = end - Date.now();
    if (left <= 0) return;
    await new Promise((r) => setTimeout(r, Math.min(sliceMs, left)));
  }
}
