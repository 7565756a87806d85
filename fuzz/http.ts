// `npm run fuzz -- --mode http --seconds N`: floods a fresh daemon's admin HTTP API with unsigned
// and badly signed requests (random methods, paths, queries, bodies, user agents up to 8 KiB,
// forged Authorization headers) over many keep-alive connections, while a well-behaved socket
// client keeps working. Fails when the daemon dies, the good client sees an error, or the
// refusals write more audit bytes than the budget (aggregation: one line per source and code and
// interval; issue 11, item 3).
import { rssKiB, waitForSocket } from './process.js';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KmsClient } from '../src/rpc/client.js';
import { PACKAGE_ROOT } from '../src/package-info.js';
import { prng } from './frames.js';

export interface HttpFuzzOptions {
  seconds: number;
  connections: number;
  seed: number;
}

/** Audit bytes the refusals may write: the first lines per source and code, then summaries per minute. */
const AUDIT_BUDGET_BASE_BYTES = 64 * 1024;
const AUDIT_BUDGET_PER_MINUTE_BYTES = 16 * 1024;

const PATHS = [
  '/rustfs/admin/v3/kms/status', '/rustfs/admin/v3/kms/key/create', '/rustfs/admin/v3/kms/key/list',
  '/minio/admin/v3/kms/key/status', '/minio/admin/v3/kms/metrics', '/', '/rustfs/admin/v3/../../etc/passwd',
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}


function text(rand: () => number, max: number): string {
  const n = Math.floor(rand() * max);
  return 'x'.repeat(n).replace(/x/g, () => String.fromCharCode(0x21 + Math.floor(rand() * 94)));
}

/** One hostile request; resolves with its status (0 when the daemon closed the connection). */
function hostile(agent: Agent, port: number, rand: () => number): Promise<number> {
  const path = (PATHS[Math.floor(rand() * PATHS.length)] as string) + (rand() < 0.5 ? `?keyName=${encodeURIComponent(text(rand, 64))}` : '');
  const headers: Record<string, string> = { 'user-agent': text(rand, 8192) };
  if (rand() < 0.5) {
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${encodeURIComponent(text(rand, 300))}/20240101/us-east-1/s3/aws4_request, ` +
      'SignedHeaders=host;x-amz-date, Signature=' + randomBytes(32).toString('hex');
    headers['x-amz-date'] = '20240101T000000Z';
  }
  const body = rand() < 0.3 ? randomBytes(Math.floor(rand() * 4096)) : undefined;
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: METHODS[Math.floor(rand() * METHODS.length)], agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}


/** Runs the whole HTTP flood; returns the process exit code (0: passed). */
export async function runHttpFuzz(options: HttpFuzzOptions): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-fuzz-http-'));
  const socketPath = join(dir, 'kms.sock');
  const secretFile = join(dir, 'admin.secret');
  writeFileSync(secretFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  const port = await freePort();
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, `admin_http: { listen: "127.0.0.1:${port}", access_key: admin, secret_key_file: ${secretFile} }\n`, { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const daemon = spawn(process.execPath, [join(PACKAGE_ROOT, 'dist/src/daemon/main.js'), '--dev', '--state-dir', stateDir, '--socket', socketPath, '--config', configPath],
    { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  let exitCode: number | null = null;
  daemon.on('exit', (code) => { exitCode = code; });
  try {
    await waitForSocket(socketPath);
    const good = await KmsClient.connect(socketPath);
    await good.createKey('fuzz-key');
    const auditPath = join(stateDir, 'audit.log');
    const auditBefore = statSync(auditPath).size;
    const rssBefore = rssKiB(daemon.pid as number);
    let rssPeak = rssBefore;
    const deadline = Date.now() + options.seconds * 1000;
    const errors: string[] = [];
    let goodCalls = 0;
    const goodLoop = (async () => {
      while (Date.now() < deadline) {
        try {
          const dk = await good.generateDataKey('fuzz-key');
          const back = await good.decrypt(dk.ciphertext);
          if (!Buffer.from(back.plaintext).equals(Buffer.from(dk.plaintext as Uint8Array))) errors.push('decrypt returned another key');
          if (!(await good.health()).healthy) errors.push('health answered unhealthy');
          goodCalls += 3;
        } catch (err) {
          errors.push((err as Error).message);
        }
        rssPeak = Math.max(rssPeak, rssKiB(daemon.pid as number));
      }
    })();
    const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
    const statuses = new Map<number, number>();
    let requests = 0;
    process.stdout.write(`HTTP flood for ${options.seconds}s over ${options.connections} connections (seed ${options.seed})\n`);
    await Promise.all(Array.from({ length: options.connections }, async (_, c) => {
      const rand = prng(options.seed + c);
      while (Date.now() < deadline) {
        const status = await hostile(agent, port, rand);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        requests += 1;
      }
    }));
    await goodLoop;
    agent.destroy();
    const health = await good.health();
    await good.close();
    const added = readFileSync(auditPath).subarray(auditBefore).toString('utf8').split('\n');
    const httpAuditBytes = added.filter((l) => l.includes('"transport":"http"')).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const budget = AUDIT_BUDGET_BASE_BYTES + AUDIT_BUDGET_PER_MINUTE_BYTES * Math.ceil(options.seconds / 60);
    const alive = exitCode === null && health.healthy;
    process.stdout.write(JSON.stringify({
      requests, statuses: Object.fromEntries(statuses), httpAuditBytes, auditBudgetBytes: budget, wellBehavedCalls: goodCalls,
      wellBehavedErrors: errors.length, alive, rssBeforeKiB: rssBefore, rssPeakKiB: rssPeak, seed: options.seed,
    }) + '\n');
    if (!alive || errors.length > 0 || httpAuditBytes > budget) {
      process.stderr.write(`FAILED: alive ${alive}, audit ${httpAuditBytes}/${budget} bytes, ${errors.slice(0, 5).join('; ')}\n`);
      return 1;
    }
    return 0;
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (exitCode !== null ? r(undefined) : daemon.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}
