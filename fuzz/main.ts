// npm run fuzz -- [--seconds N] [--connections N] [--seed N] [--mode http]: starts a daemon in a temp directory,
// fuzzes it, and reports whether it stayed up, bounded and correct for the well-behaved client.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KmsClient } from '../src/rpc/client.js';
import { PACKAGE_ROOT } from '../src/package-info.js';
import { runFuzz } from './frames.js';
import { runHttpFuzz } from './http.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, connections: { type: 'string' }, seed: { type: 'string' }, mode: { type: 'string' } } });
const seconds = Number(values.seconds ?? 30);
const connections = Number(values.connections ?? 16);
const seed = Number(values.seed ?? Date.now() % 1_000_000);
if (values.mode === 'http') process.exit(await runHttpFuzz({ seconds, connections, seed })); // fuzz/http.ts

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(path);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('daemon did not start');
}

const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-fuzz-'));
const socketPath = join(dir, 'kms.sock');
const daemon = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist/src/daemon/main.js'), '--dev', '--state-dir', join(dir, 'state'), '--socket', socketPath], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
let exitCode: number | null = null;
daemon.on('exit', (code) => { exitCode = code; });
try {
  await waitForSocket(socketPath);
  const admin = await KmsClient.connect(socketPath);
  await admin.createKey('fuzz-key');
  const rssBefore = rssKiB(daemon.pid as number);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, rssKiB(daemon.pid as number)); }, 200);
  process.stdout.write(`fuzzing for ${seconds}s over ${connections} connections (seed ${seed})\n`);
  const report = await runFuzz({ socketPath, keyId: 'fuzz-key', seconds, connections, seed });
  clearInterval(sampler);
  const health = await admin.health();
  await admin.close();
  const alive = exitCode === null && health.healthy;
  process.stdout.write(JSON.stringify({ ...report, wellBehavedErrors: report.wellBehavedErrors.length, alive, rssBeforeKiB: rssBefore, rssPeakKiB: rssPeak, seed }) + '\n');
  if (!alive || report.wellBehavedErrors.length > 0) {
    process.stderr.write(`FAILED: ${report.wellBehavedErrors.slice(0, 5).join('; ')}\n`);
    process.exitCode = 1;
  }
} finally {
  daemon.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
