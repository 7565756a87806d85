// The benchmarks' --json contract (stdout is the one JSON line, nothing else), the rounding of their
// verdicts, and the basic example's output. Shape only: the runs are shortened, figures not judged.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { meets, shownRatio } from '../../bench/lib/report.js';
import { CLI_JS, cleanEnv, distRoot, repoRoot } from '../helpers/daemon.js';

const SHORT = { BENCH_SECONDS: '0.2', BENCH_WARMUP_SECONDS: '0.05', BENCH_RTT_COUNT: '200', BENCH_ROUNDS: '1' };

function run(command: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(command, args, { cwd: repoRoot, encoding: 'utf8', env: cleanEnv({ ...SHORT, ...env }), timeout: 170_000 });
}

describe('bench --json', () => {
  it('bench:rpc: stdout is one JSON line with the echo floor, daemon CPU per answer and batch data keys per second', () => {
    const r = run('npm', ['run', '-s', 'bench:rpc', '--', '--json'], { npm_config_offline: 'true' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines, r.stdout).toHaveLength(1);
    const j = JSON.parse(lines[0] as string) as Record<string, number>;
    for (const k of ['gdk_pipelined_ops', 'gdk_rtt_p50_us', 'gdk_rtt_p99_us', 'echo_rtt_p50_us', 'echo_rtt_p99_us',
      'daemon_cpu_us_per_answer', 'gdk_batch_deks_per_s', 'http_json_ops', 'connections']) {
      expect(typeof j[k], k).toBe('number');
      expect(j[k], k).toBeGreaterThan(0);
    }
    expect(r.stderr).toContain('round trip p50'); // the table went to stderr
  }, 180_000);

  it('bench:crypto: stdout is one JSON line; the table is on stderr', () => {
    const r = run(process.execPath, [join(distRoot, 'dist', 'bench', 'crypto.js'), '--json']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(Object.keys(JSON.parse(lines[0] as string))).toEqual(['gcm_1mib', 'gcm_4kib', 'xaes_32b']);
    expect(r.stderr).toContain('AES-256-GCM seal 1 MiB');
  }, 180_000);

  it('a verdict agrees with the ratio the table shows (0.899 shows as 0.90×, which meets ≥ 0.9×)', () => {
    expect(shownRatio(899, 1000)).toBe(0.9);
    expect(meets(899, 1000, 0.9)).toBe(true);
    expect(meets(894, 1000, 0.9)).toBe(false);
    expect(meets(1, 0, 0.9)).toBe(false);
  });
});

describe('example:basic', () => {
  it('prints no path it then deletes; with --keep the audit log it names is there and verifies', () => {
    const plain = run(process.execPath, [join(distRoot, 'dist', 'examples', 'basic_usage.js')]);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/audit log: \d+ records, removed with the example's temporary directory/);
    expect(plain.stdout).not.toMatch(/\/rustfs-kms-example-/);

    const kept = run(process.execPath, [join(distRoot, 'dist', 'examples', 'basic_usage.js'), '--keep']);
    expect(kept.status, kept.stderr).toBe(0);
    const path = /audit log: \d+ records in (\S+audit\.log)/.exec(kept.stdout)?.[1];
    expect(path, kept.stdout).toBeDefined();
    expect(existsSync(path as string)).toBe(true);
    const verified = spawnSync(process.execPath, [CLI_JS, 'audit', 'verify', path as string], { encoding: 'utf8' });
    expect(verified.status, verified.stderr).toBe(0);
    rmSync(join(path as string, '..', '..'), { recursive: true }); // the example's own temp dir, which --keep left
  });
});
