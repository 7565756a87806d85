// npm run fuzz -- [--mode frames|connections|partial|http] [--seconds N] [--connections N] [--seed N]:
// starts a daemon in a temp directory, attacks it, and reports whether it stayed up, bounded and
// correct for the well-behaved client. frames: hostile frames; connections: floods past
// max_connections (set to 8 for the run); partial: frames announced and never finished; http:
// unsigned and forged requests to the admin API (fuzz/http.ts).
import { fdCount, rssKiB, waitForSocket } from './process.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KmsClient } from '../src/rpc/client.js';
import { PACKAGE_ROOT } from '../src/package-info.js';
import { runFuzz } from './frames.js';
import { runConnectionFlood, runPartialFrames } from './floods.js';
import { runHttpFuzz } from './http.js';

const { values } = parseArgs({ options: { mode: { type: 'string' }, seconds: { type: 'string' }, connections: { type: 'string' }, seed: { type: 'string' } } });
const mode = values.mode ?? 'frames';
if (mode !== 'frames' && mode !== 'connections' && mode !== 'partial' && mode !== 'http') {
  process.stderr.write(`--mode must be frames, connections, partial or http, not ${JSON.stringify(mode)}\n`);
  process.exit(2);
}
const seconds = Number(values.seconds ?? 30);
const connections = Number(values.connections ?? 16);
const seed = Number(values.seed ?? Date.now() % 1_000_000);
if (mode === 'http') process.exit(await runHttpFuzz({ seconds, connections, seed })); // fuzz/http.ts




const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-fuzz-'));
const socketPath = join(dir, 'kms.sock');
const configPath = join(dir, 'config.yaml');
// Connection floods only mean something at the limit: 8 slots, the well-behaved client holds one.
writeFileSync(configPath, mode === 'connections' ? 'limits: { max_connections: 8 }\n' : '{}\n', { mode: 0o600 });
const daemon = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist/src/daemon/main.js'), '--dev', '--state-dir', join(dir, 'state'), '--socket', socketPath, '--config', configPath], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
let exitCode: number | null = null;
daemon.on('exit', (code) => { exitCode = code; });
try {
  await waitForSocket(socketPath);
  const admin = await KmsClient.connect(socketPath);
  await admin.createKey('fuzz-key');
  const rssBefore = rssKiB(daemon.pid as number);
  let rssPeak = rssBefore;
  const fdsBefore = fdCount(daemon.pid as number);
  let fdsPeak = fdsBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssKiB(daemon.pid as number));
    fdsPeak = Math.max(fdsPeak, fdCount(daemon.pid as number));
  }, 200);
  process.stdout.write(`fuzzing (${mode}) for ${seconds}s over ${connections} connections (seed ${seed})\n`);
  const options = { socketPath, keyId: 'fuzz-key', seconds, connections, seed };
  const report = mode === 'connections' ? await runConnectionFlood(options)
    : mode === 'partial' ? await runPartialFrames(options)
    : await runFuzz(options);
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 1500)); // refused connections are cut within a second
  const fdsAfter = fdCount(daemon.pid as number);
  const health = await admin.health();
  await admin.close();
  const alive = exitCode === null && health.healthy;
  process.stdout.write(JSON.stringify({ mode, ...report, wellBehavedErrors: report.wellBehavedErrors.length, alive, rssBeforeKiB: rssBefore, rssPeakKiB: rssPeak, fdsBefore, fdsPeak, fdsAfter, seed }) + '\n');
  if (!alive || report.wellBehavedErrors.length > 0) {
    process.stderr.write(`FAILED: ${report.wellBehavedErrors.slice(0, 5).join('; ')}\n`);
    process.exitCode = 1;
  }
} finally {
  daemon.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
