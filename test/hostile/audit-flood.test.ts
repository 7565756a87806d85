// Issue 11 item 3: unauthenticated requests must not be able to fill the audit disk. Unsigned admin
// HTTP requests from one source leave one line and then one summary line per interval with a count;
// every claimed field (user agent, principal, request id, source ip, extra) is cut short with a
// marker. Figures held: 2,268 unsigned requests with 1 KiB user agents write < 4 KiB of audit lines
// (3,164,297 bytes before the fix; about 1.4 KiB after: the first refusal per source and code), and a socket request with every ctx string at its 1 KiB limit and 32
// extra pairs leaves a line of < 2 KiB (70,187 bytes before). health answers throughout.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { freePort } from '../http/clients.js';

const FLOOD_REQUESTS = 2268;
const FLOOD_AUDIT_BUDGET_BYTES = 4 * 1024;
const CLAIM_LINE_BUDGET_BYTES = 2048;

type Line = Record<string, unknown> & { claimed?: Record<string, unknown>; count?: number };

function lines(d: DaemonHandle): Line[] {
  return readFileSync(join(d.stateDir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

/** One unsigned request; resolves with the status code. */
function unsigned(agent: Agent, port: number, path: string, userAgent: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent, headers: { 'user-agent': userAgent } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe('audit flood through unauthenticated requests (issue 11, item 3)', () => {
  let daemon: DaemonHandle;
  let port: number;

  beforeAll(async () => {
    const dir = makeTempDir('kms-hostile-');
    const secretFile = join(dir, 'admin.secret');
    writeFileSync(secretFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
    port = await freePort();
    daemon = await startDaemon({ dir, config: `admin_http: { listen: "127.0.0.1:${port}", access_key: admin, secret_key_file: ${secretFile} }\n` });
  });

  afterAll(async () => {
    if (daemon?.running) await daemon.stop();
  });

  it(`${FLOOD_REQUESTS} unsigned requests with 1 KiB user agents write less than ${FLOOD_AUDIT_BUDGET_BYTES} audit bytes, and every one is counted`, async () => {
    const health = await KmsClient.connect(daemon.socketPath);
    const before = statSync(join(daemon.stateDir, 'audit.log')).size;
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const userAgent = 'flood/' + 'A'.repeat(1018);
    let healthAnswers = 0;
    let flooding = true;
    const prober = (async () => {
      while (flooding) {
        expect((await health.health()).healthy).toBe(true);
        healthAnswers += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const paths = ['/rustfs/admin/v3/kms/status', '/minio/admin/v3/kms/key/list', '/rustfs/admin/v3/nowhere'];
    let sent = 0;
    const statuses = new Map<number, number>();
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (sent < FLOOD_REQUESTS) {
        const i = sent++;
        const status = await unsigned(agent, port, paths[i % paths.length] as string, userAgent);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }));
    flooding = false;
    await prober;
    agent.destroy();
    expect(await health.health()).toMatchObject({ healthy: true });
    await health.close();
    // Signatures are checked before routes: an unsigned request to any path is 403.
    expect(statuses.get(403)).toBe(FLOOD_REQUESTS);
    expect(healthAnswers).toBeGreaterThan(0);
    // The health prober's own lines are legitimate; the budget is for what the flood wrote.
    const added = readFileSync(join(daemon.stateDir, 'audit.log')).subarray(before).toString('utf8').split('\n').filter((l) => l !== '');
    const grown = added.filter((l) => l.includes('"transport":"http"')).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    process.stdout.write(`audit flood: ${FLOOD_REQUESTS} unsigned requests wrote ${grown} audit bytes (${healthAnswers} health answers meanwhile)\n`);
    expect(grown).toBeLessThan(FLOOD_AUDIT_BUDGET_BYTES);

    expect(await daemon.stop()).toBe(0); // pending summaries are written at shutdown
    const refused = lines(daemon).filter((l) => l.transport === 'http');
    const counted = refused.reduce((n, l) => n + (typeof l.count === 'number' ? l.count : 1), 0);
    expect(counted).toBe(FLOOD_REQUESTS);
    for (const l of refused) {
      const ua = String(l.claimed?.user_agent ?? '');
      expect(Buffer.byteLength(ua)).toBeLessThanOrEqual(256);
      expect(l.claimed?.cut).toMatchObject({ user_agent: Buffer.byteLength(userAgent) });
    }
    const verify = await runCli(['audit', 'verify', join(daemon.stateDir, 'audit.log')]);
    expect(verify.code, verify.stderr).toBe(0);
  });
});

describe('claimed ctx fields are cut short in the audit line (issue 11, item 3)', () => {
  it(`a socket request with every ctx string at 1 KiB and 32 extra pairs leaves a line under ${CLAIM_LINE_BUDGET_BYTES} bytes, marked as cut`, async () => {
    const d = await startDaemon();
    const big = (c: string) => c.repeat(1024);
    const extra: Record<string, string> = {};
    for (let i = 0; i < 32; i++) extra[String(i).padStart(2, '0') + big('k').slice(2)] = big('v');
    const client = await KmsClient.connect(d.socketPath, {
      ctx: { principal: big('p'), request_id: big('r'), user_agent: big('u'), source_ip: big('s'), extra },
    });
    expect((await client.health()).healthy).toBe(true);
    await client.close();
    expect(await d.stop()).toBe(0);
    const raw = readFileSync(join(d.stateDir, 'audit.log'), 'utf8').split('\n').filter((l) => l.includes('"op":"health"'));
    expect(raw).toHaveLength(1);
    expect(Buffer.byteLength(raw[0] as string)).toBeLessThan(CLAIM_LINE_BUDGET_BYTES);
    const claimed = (JSON.parse(raw[0] as string) as Line).claimed as Record<string, unknown>;
    expect(claimed.cut).toMatchObject({ principal: 1024, request_id: 1024, user_agent: 1024, source_ip: 1024, extra: 32 });
    expect(String(claimed.principal).startsWith('ppp')).toBe(true);
  });
});
