// Vault away: cached keys keep serving on every host for the offline window, whatever needs Vault
// fails cleanly with BackendUnavailable naming the address, and everything recovers by itself when
// Vault returns. Slow and failing Vaults: deadlines and retries. All of it needs the test server's
// fault switches, so it skips against a real Vault.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs } from '../helpers/daemon.js';
import { codeOf, startVaultDaemon, waitFor, type VaultDaemon } from './harness.js';
import { NEEDS_TEST_SERVER, REAL_VAULT, openTarget, policyToken, setupBackends, type Backends, type VaultTarget } from './target.js';

afterAll(() => cleanupTempDirs());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(REAL_VAULT)(`Vault down, two hosts${REAL_VAULT ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  let target: VaultTarget;
  let b: Backends;
  let A: VaultDaemon;
  let B: VaultDaemon;
  const ctx = { bucket: 'outage' };
  let sealedOnA: Buffer;
  let dataKeyOnB: { plaintext: Buffer; ciphertext: Buffer };

  beforeAll(async () => {
    target = await openTarget();
    b = await setupBackends(target);
    // idle_ttl_s 1: without the offline window, an unused cached version would be gone within ~2 s.
    const opts = { syncIntervalS: 1, idleTtlS: 1, offlineTtlS: 3600, timeoutSecs: 2, retryAttempts: 1 };
    [A, B] = await Promise.all([
      policyToken(target, b).then((token) => startVaultDaemon({ target, backends: b, auth: { method: 'token', token }, ...opts })),
      policyToken(target, b).then((token) => startVaultDaemon({ target, backends: b, auth: { method: 'token', token }, ...opts })),
    ]);
    await A.kms.createKey('hot');
    await A.kms.createKey('cold');
    await waitFor('B to see both keys', async () => (await B.kms.listKeys()).keys.length === 2);
    sealedOnA = (await A.kms.encrypt('hot', Buffer.from('sealed on A'), { context: ctx })).ciphertext;
    const dk = await B.kms.generateDataKey('hot', { context: ctx }); // B unwraps "hot"; nobody unwraps "cold" on B
    dataKeyOnB = { plaintext: dk.plaintext as Buffer, ciphertext: dk.ciphertext };
  });

  afterAll(async () => {
    await target.server?.up();
    await Promise.all([A?.stop(), B?.stop()]);
    await target?.close();
  });

  it('while Vault is down, both hosts keep serving cached keys past their idle TTL', async () => {
    await target.server!.down();
    await sleep(3500); // > 3 × idle_ttl_s with no use of "hot" anywhere
    for (const host of [A, B]) {
      expect((await host.kms.decrypt(sealedOnA, { context: ctx })).plaintext.toString()).toBe('sealed on A');
      expect((await host.kms.decrypt(dataKeyOnB.ciphertext, { context: ctx })).plaintext.equals(dataKeyOnB.plaintext)).toBe(true);
      const dk = await host.kms.generateDataKey('hot', { context: ctx });
      expect(dk.plaintext).toHaveLength(32);
      expect((await host.kms.encrypt('hot', Buffer.from('still sealing'))).keyId).toBe('hot');
      // A wrong context is still a wrong context, not an outage.
      expect((await codeOf(host.kms.decrypt(sealedOnA, { context: { bucket: 'other' } }))).code).toBe('InvalidCiphertext');
    }
  });

  it('what needs Vault fails cleanly with BackendUnavailable naming the address', async () => {
    const unwrap = await codeOf(B.kms.generateDataKey('cold')); // never unwrapped on B
    expect(unwrap.code).toBe('BackendUnavailable');
    expect(unwrap.message).toContain(target.address);
    expect(unwrap.message).toMatch(/Transit decrypt/);

    const attempts = await Promise.all([codeOf(A.kms.createKey('during-outage')), codeOf(A.kms.rotateKey('hot')), codeOf(B.kms.disableKey('hot'))]);
    for (const r of attempts) {
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toContain(target.address);
    }
    for (const host of [A, B]) expect((await host.kms.health()).healthy).toBe(false);
    // The failed disable did not take effect locally either.
    expect((await B.kms.describeKey('hot')).state).toBe('Enabled');
  });

  it('both hosts recover by themselves when Vault returns', async () => {
    await target.server!.up();
    for (const host of [A, B]) await waitFor('health to turn true', async () => (await host.kms.health()).healthy);
    const dk = await B.kms.generateDataKey('cold');
    expect(dk.keyId).toBe('cold');
    await A.kms.createKey('after-outage');
    await waitFor('B to see a key made after the outage', async () => B.kms.describeKey('after-outage'));
    await A.kms.rotateKey('hot');
    await waitFor('B to see the rotation', async () => (await B.kms.describeKey('hot')).currentVersion === 2);
    expect((await B.kms.decrypt(sealedOnA, { context: ctx })).plaintext.toString()).toBe('sealed on A');
  });
});

describe.skipIf(REAL_VAULT)('the offline window ends', () => {
  let target: VaultTarget;
  let b: Backends;
  let d: VaultDaemon;

  beforeAll(async () => {
    target = await openTarget();
    b = await setupBackends(target);
    d = await startVaultDaemon({
      target, backends: b, auth: { method: 'token', token: await policyToken(target, b) },
      idleTtlS: 1, offlineTtlS: 2, timeoutSecs: 1, retryAttempts: 0,
    });
  });
  afterAll(async () => {
    await target.server?.up();
    await d?.stop();
    await target?.close();
  });

  it('a cached version unused for longer than offline_ttl_s is wiped; it opens again once Vault is back', async () => {
    await d.kms.createKey('brief');
    const sealed = (await d.kms.encrypt('brief', Buffer.from('x'))).ciphertext;
    await target.server!.down();
    await sleep(5000);
    const r = await codeOf(d.kms.decrypt(sealed));
    expect(r.code).toBe('BackendUnavailable');
    expect(r.message).toContain(target.address);
    await target.server!.up();
    await waitFor('the version to unwrap again', async () => (await d.kms.decrypt(sealed)).plaintext.toString() === 'x');
  });
});

describe.skipIf(REAL_VAULT)('slow and failing Vault', () => {
  let target: VaultTarget;
  let b: Backends;
  let d: VaultDaemon;

  beforeAll(async () => {
    target = await openTarget();
    b = await setupBackends(target);
    // No background traffic: sync once an hour, idle TTL long. The deadline and the retries come from
    // RUSTFS_KMS_TIMEOUT_SECS and RUSTFS_KMS_RETRY_ATTEMPTS, which override the file's values.
    d = await startVaultDaemon({
      target, backends: b, auth: { method: 'token', token: await policyToken(target, b) },
      syncIntervalS: 3600, timeoutSecs: 30, retryAttempts: 0,
      env: { RUSTFS_KMS_TIMEOUT_SECS: '1', RUSTFS_KMS_RETRY_ATTEMPTS: '2' },
    });
  });
  afterAll(async () => {
    target.server!.delayMs = 0;
    await d?.stop();
    await target?.close();
  });

  it('transient 5xx answers are retried with back-off and the request succeeds', async () => {
    target.server!.failNext(2, 503);
    const info = await d.kms.createKey('after-two-503s');
    expect(info.keyId).toBe('after-two-503s');
    const failed = target.server!.requests.filter((r) => r.status === 503);
    expect(failed.length).toBe(2);
  });

  it('more failures than retries: BackendUnavailable naming the address and the status', async () => {
    target.server!.failNext(3, 500);
    const r = await codeOf(d.kms.createKey('after-three-500s'));
    expect(r.code).toBe('BackendUnavailable');
    expect(r.message).toContain(target.address);
    expect(r.message).toMatch(/500/);
    await waitFor('Vault to be usable again', async () => (await d.kms.createKey('after-recovery')).keyId === 'after-recovery');
  });

  it('a Vault slower than timeout_secs: every request has a deadline, cached keys are not slowed down', async () => {
    await d.kms.createKey('cached');
    const sealed = (await d.kms.encrypt('cached', Buffer.from('fast'))).ciphertext;
    target.server!.delayMs = 2500; // > RUSTFS_KMS_TIMEOUT_SECS (1)
    try {
      const r = await codeOf(d.kms.createKey('too-slow'));
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toMatch(/no answer within 1000 ms/);
      expect((await d.kms.decrypt(sealed)).plaintext.toString()).toBe('fast');
    } finally {
      target.server!.delayMs = 0;
    }
    await waitFor('Vault to answer in time again', async () => (await d.kms.createKey('in-time')).keyId === 'in-time');
  });

  it('a sealed Vault is unavailable, with Vault\'s reason', async () => {
    target.server!.sealed = true;
    try {
      const r = await codeOf(d.kms.createKey('while-sealed'));
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toMatch(/Vault is sealed/);
      expect((await d.kms.health()).healthy).toBe(false);
    } finally {
      target.server!.sealed = false;
    }
    await waitFor('health after unsealing', async () => (await d.kms.health()).healthy);
  });
});
