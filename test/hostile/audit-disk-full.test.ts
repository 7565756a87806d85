// Issue 11 item 3: a full audit disk refuses new work with a distinct error and recovers by itself
// when space returns. The audit log sits on a 1 MiB tmpfs; a filler file takes the rest. Figures
// held: while full, health answers BackendUnavailable "audit log cannot be written: disk full
// (ENOSPC)" (never Internal, never a dead socket); within 5 s of freeing space (measured: a few
// ms, the first request after) health answers healthy again; the chain verifies afterwards with the lines of the
// operation caught mid-failure in it; one log line on failure, one on recovery; metrics show it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { KmsError } from '../../src/errors.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { freePort, sdkRequest, type Creds } from '../http/clients.js';
import { parsePrometheus, sampleValue } from '../http/prometheus.js';

const RECOVERY_DEADLINE_MS = 5_000;

let mountDir = '';
let mountRefused = '';

/** Fills the file system holding `dir` with a filler file; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return path;
}

beforeAll(() => {
  assertBuilt();
  const base = makeTempDir('kms-diskfull-');
  mountDir = join(base, 'audit');
  mkdirSync(mountDir, { mode: 0o700 });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mountDir], { stdio: 'pipe' });
  } catch (err) {
    mountRefused = `mount -t tmpfs was refused (${(err as Error).message.split('\n')[0]}): this test needs root in a namespace that may mount`;
  }
});

afterAll(async () => {
  await killAllDaemons();
  if (mountRefused === '') execFileSync('umount', [mountDir], { stdio: 'pipe' });
  cleanupTempDirs();
});

describe('a full audit disk (issue 11, item 3)', () => {
  it('refuses work with BackendUnavailable naming ENOSPC, keeps answering health, and recovers by itself when space returns', async (ctx) => {
    if (mountRefused !== '') ctx.skip(mountRefused);
    const dir = makeTempDir('kms-diskfull-d-');
    const secretFile = join(dir, 'admin.secret');
    const creds: Creds = { accessKey: 'admin', secretKey: randomBytes(24).toString('base64url') };
    writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
    const port = await freePort();
    const auditPath = join(mountDir, 'audit.log');
    const daemon: DaemonHandle = await startDaemon({
      dir,
      config: `audit: { path: ${auditPath}, fsync: always }\n` +
        `admin_http: { listen: "127.0.0.1:${port}", access_key: admin, secret_key_file: ${secretFile} }\n`,
    });
    const metric = async (name: string): Promise<number | undefined> => {
      const r = await sdkRequest(port, creds, { method: 'GET', path: '/rustfs/admin/v3/kms/metrics' });
      expect(r.status, r.text).toBe(200);
      return sampleValue(parsePrometheus(r.text), name);
    };
    const client = await KmsClient.connect(daemon.socketPath, { reconnect: { maxAttempts: 3, initialDelayMs: 10 } });
    await client.createKey('k');
    expect(await metric('rustfs_kms_audit_writable')).toBe(1);

    const filler = fill(mountDir);
    // The last page of audit.log may still have room for a few lines; the operation whose line
    // meets the full disk is not answered as done (it may have taken effect, and is recorded later).
    let answered = 0;
    let caught: unknown;
    while (caught === undefined && answered < 100) {
      caught = await client.generateDataKey('k').then(() => undefined, (e: unknown) => e);
      if (caught === undefined) answered += 1;
    }
    expect(caught).toBeInstanceOf(KmsError);

    // Full: every request is answered, with the distinct error, never Internal and never a cut connection.
    for (let i = 0; i < 20; i++) {
      const err = await client.health().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(KmsError);
      expect((err as KmsError).code).toBe('BackendUnavailable');
      expect((err as KmsError).message).toMatch(/audit log cannot be written: disk full \(ENOSPC\)/);
    }
    const metricsWhileFull = await sdkRequest(port, creds, { method: 'GET', path: '/rustfs/admin/v3/kms/metrics' });
    // The metrics request itself is refused while full: it would be answered unrecorded.
    expect(metricsWhileFull.status).toBe(503);

    rmSync(filler);
    const freedAt = Date.now();
    let healthy = false;
    while (!healthy && Date.now() - freedAt < RECOVERY_DEADLINE_MS) {
      healthy = await client.health().then((h) => h.healthy, () => false);
      if (!healthy) await new Promise((r) => setTimeout(r, 50));
    }
    process.stdout.write(`audit disk full: ${answered} answered before the failure; healthy again ${Date.now() - freedAt} ms after space returned\n`);
    expect(healthy).toBe(true);
    const dk = await client.generateDataKey('k');
    expect(dk.ciphertext.length).toBeGreaterThan(0);
    expect(await metric('rustfs_kms_audit_writable')).toBe(1);
    expect(await metric('rustfs_kms_audit_write_failures_total')).toBeGreaterThan(0);
    await client.close();
    expect(await daemon.stop()).toBe(0);

    const log = daemon.stderr();
    expect(log.match(/audit log cannot be written/g)?.length).toBeGreaterThanOrEqual(1);
    expect(log.match(/"msg":"audit log cannot be written[^"]*"/g)).toHaveLength(1);
    expect(log.match(/"msg":"audit log writable again[^"]*"/g)).toHaveLength(1);
    const verify = await runCli(['audit', 'verify', auditPath]);
    expect(verify.code, verify.stderr + verify.stdout.toString()).toBe(0);
    const ops = readFileSync(auditPath, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { op: string }).op);
    // every answered one, the one caught mid-failure, and the one after recovery
    expect(ops.filter((op) => op === 'generate_data_key')).toHaveLength(answered + 2);
  });
});
