// The gcp-kms root against the real daemon and the real @google-cloud/kms client: by default on the
// Cloud KMS TEST SERVER (test/gcp-kms-server/, not Google Cloud), on the real service with
// KMS_TEST_CLOUD=real KMS_TEST_GCP_KEY_NAME=projects/…/cryptoKeys/… (npm run test:cloud).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_GCP, codeOf, openGcpTarget, startGcpDaemon, type GcpDaemon, type GcpTarget } from './gcp-target.js';

afterAll(() => cleanupTempDirs());

const ctx = { bucket: 'gcp' };

describe('gcp-kms root: lifecycle on one daemon', () => {
  let dir: string;
  let target: GcpTarget;
  let host: GcpDaemon;

  beforeAll(async () => {
    dir = makeTempDir('kms-gcp-');
    target = await openGcpTarget(dir);
    host = await startGcpDaemon({ target, dir });
  });
  afterAll(async () => {
    await host?.stop();
    await target?.close();
  });

  it('creates and rotates keys wrapped by the cloud key, and data keys open across a restart', async () => {
    const before = target.server !== undefined ? { ...target.server.calls } : undefined;
    const info = await host.kms.createKey('gcp-a');
    expect(info.origin).toBe('gcp');
    if (before !== undefined) expect(target.server!.calls.encrypt).toBe(before.encrypt + 1);
    const dk1 = await host.kms.generateDataKey('gcp-a', { context: ctx });
    await host.kms.rotateKey('gcp-a');
    const dk2 = await host.kms.generateDataKey('gcp-a', { context: ctx });
    expect(dk2.keyVersion).toBe(dk1.keyVersion + 1);
    const sealed = await host.kms.encrypt('gcp-a', Buffer.from('across a restart'), { context: ctx });

    const decryptsBefore = target.server?.calls.decrypt ?? 0;
    await host.stop();
    host = await startGcpDaemon({ target, dir });
    expect((await host.kms.decrypt(dk1.ciphertext, { context: ctx })).plaintext.equals(dk1.plaintext as Buffer)).toBe(true);
    expect((await host.kms.decrypt(dk2.ciphertext, { context: ctx })).plaintext.equals(dk2.plaintext as Buffer)).toBe(true);
    expect((await host.kms.decrypt(sealed.ciphertext, { context: ctx })).plaintext.toString()).toBe('across a restart');
    // Each of the two versions was unwrapped by the cloud once after the restart (start-up or first use).
    if (target.server !== undefined) expect(target.server.calls.decrypt - decryptsBefore).toBe(2);
    expect((await codeOf(host.kms.decrypt(sealed.ciphertext, { context: { bucket: 'other' } }))).code).toBe('InvalidCiphertext');
  });

  it.skipIf(REAL_GCP)(`makes no cloud call per data key once warm${REAL_GCP ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    await host.kms.createKey('gcp-warm');
    await host.kms.generateDataKey('gcp-warm');
    const server = target.server!;
    const calls = { ...server.calls };
    for (let i = 0; i < 50; i++) {
      const dk = await host.kms.generateDataKey('gcp-warm', { context: { n: String(i) } });
      await host.kms.decrypt(dk.ciphertext, { context: { n: String(i) } });
    }
    expect(server.calls).toEqual(calls);
  });

  it('status and health name the backend and its endpoint', async () => {
    const status = await host.kms.status();
    expect(status.rootType).toBe('gcp-kms');
    expect(status.endpoint).toBe(target.endpoint ?? 'https://cloudkms.googleapis.com');
    expect((await host.kms.health()).healthy).toBe(true);
  });
});
