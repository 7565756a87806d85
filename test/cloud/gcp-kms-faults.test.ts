// Cloud KMS away, throttling and failing: cached versions keep serving through the offline window,
// what needs the cloud fails cleanly with BackendUnavailable naming the endpoint and Google's code,
// and the daemon recovers by itself. Needs the test server's fault switches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_GCP, codeOf, openGcpTarget, startGcpDaemon, waitUntil, type GcpDaemon, type GcpTarget } from './gcp-target.js';

afterAll(() => cleanupTempDirs());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(REAL_GCP)(`gcp-kms root: outage, throttling, errors${REAL_GCP ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  let target: GcpTarget;
  let host: GcpDaemon;
  const ctx = { bucket: 'outage' };

  beforeAll(async () => {
    const dir = makeTempDir('kms-gcp-');
    target = await openGcpTarget(dir);
    // idle_ttl_s 1: without the offline window an unused cached version would be dropped within ~2 s.
    host = await startGcpDaemon({ target, dir, idleTtlS: 1, offlineTtlS: 3600, timeoutSecs: 3, retryAttempts: 3 });
    await host.kms.createKey('hot');
  });
  afterAll(async () => {
    await target?.server?.up();
    await host?.stop();
    await target?.close();
  });

  it('retries throttling (429 RESOURCE_EXHAUSTED) and 503 UNAVAILABLE with back-off inside the deadline', async () => {
    const server = target.server!;
    const before = { ...server.calls };
    server.failNext(2, 429);
    await host.kms.createKey('throttled');
    expect(server.calls.failed - before.failed).toBe(2);
    expect(server.calls.encrypt - before.encrypt).toBe(3);
    server.failNext(1, 503);
    await host.kms.rotateKey('throttled');
    expect(server.calls.failed - before.failed).toBe(3);
    expect((await host.kms.describeKey('throttled')).currentVersion).toBe(2);
  });

  it('gives up after retry_attempts with BackendUnavailable naming the code and the endpoint', async () => {
    const server = target.server!;
    server.failNext(10, 503);
    const r = await codeOf(host.kms.createKey('never'));
    server.failNext(0);
    expect(r.code).toBe('BackendUnavailable');
    expect(r.message).toContain('UNAVAILABLE');
    expect(r.message).toContain(target.endpoint!);
    expect(r.message).toContain('4 attempt(s)');
    expect((await codeOf(host.kms.describeKey('never'))).code).toBe('KeyNotFound');
  });

  it('a slow Cloud KMS is cut off at timeout_secs with DEADLINE_EXCEEDED', async () => {
    const server = target.server!;
    server.delayMs = 5000; // > timeout_secs (3)
    try {
      const r = await codeOf(host.kms.createKey('slow'));
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toContain('DEADLINE_EXCEEDED');
    } finally {
      server.delayMs = 0;
    }
    expect((await codeOf(host.kms.describeKey('slow'))).code).toBe('KeyNotFound');
  });

  it('while Cloud KMS is down, cached versions keep serving past their idle TTL; creates and rotations fail cleanly', async () => {
    const sealed = await host.kms.encrypt('hot', Buffer.from('sealed before'), { context: ctx });
    await target.server!.down();
    await sleep(3500); // > 3 × idle_ttl_s without use of "hot"
    expect((await host.kms.decrypt(sealed.ciphertext, { context: ctx })).plaintext.toString()).toBe('sealed before');
    const dk = await host.kms.generateDataKey('hot', { context: ctx });
    expect((await host.kms.decrypt(dk.ciphertext, { context: ctx })).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    for (const r of await Promise.all([codeOf(host.kms.createKey('during-outage')), codeOf(host.kms.rotateKey('hot'))])) {
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toContain(target.endpoint!);
    }
    const health = await host.kms.health();
    expect(health.healthy).toBe(false);
    expect(health.detail).toContain(target.endpoint!);
    expect((await host.kms.describeKey('hot')).currentVersion).toBe(1);
  });

  it('recovers without a restart when Cloud KMS returns', async () => {
    await target.server!.up();
    await waitUntil('health to turn true', async () => (await host.kms.health()).healthy);
    await host.kms.createKey('after-outage');
    await host.kms.rotateKey('hot');
    expect((await host.kms.describeKey('hot')).currentVersion).toBe(2);
  });

  it('a cloud key version disabled on the cloud side is named with FAILED_PRECONDITION after a restart', async () => {
    const server = target.server!;
    const sealed = await host.kms.encrypt('after-outage', Buffer.from('under cloud version 1'));
    server.rotate(target.keyName); // cloud-side rotation: new records use version 2 …
    await host.kms.createKey('after-cloud-rotation');
    await host.stop();
    host = await startGcpDaemon({ target, dir: host.dir, idleTtlS: 1, timeoutSecs: 3, retryAttempts: 1 });
    // … and records wrapped under version 1 still unwrap while it stays enabled.
    expect((await host.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('under cloud version 1');
    const sealed2 = await host.kms.encrypt('after-cloud-rotation', Buffer.from('under cloud version 2'));
    server.setVersionState(target.keyName, 1, 'DISABLED');
    await host.stop();
    host = await startGcpDaemon({ target, dir: host.dir, idleTtlS: 1, timeoutSecs: 3, retryAttempts: 1 });
    expect((await host.kms.decrypt(sealed2.ciphertext)).plaintext.toString()).toBe('under cloud version 2');
    const r = await codeOf(host.kms.decrypt(sealed.ciphertext));
    expect(r.code).toBe('BackendUnavailable');
    expect(r.message).toMatch(/FAILED_PRECONDITION: .*cryptoKeyVersions\/1 is not enabled, current state is: DISABLED/);
    server.setVersionState(target.keyName, 1, 'ENABLED');
  });
});
