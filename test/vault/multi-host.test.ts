// Two daemons (separate sockets and state directories, separate tokens) on one Vault: what one host
// does reaches the other within the sync interval, and concurrent writers never lose a write.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs } from '../helpers/daemon.js';
import { codeOf, startVaultDaemon, waitFor, type VaultDaemon } from './harness.js';
import { openTarget, policyToken, setupBackends, teardownBackends, type Backends, type VaultTarget } from './target.js';

let target: VaultTarget;
let b: Backends;
let A: VaultDaemon;
let B: VaultDaemon;

beforeAll(async () => {
  target = await openTarget();
  b = await setupBackends(target);
  [A, B] = await Promise.all([
    policyToken(target, b).then((token) => startVaultDaemon({ target, backends: b, auth: { method: 'token', token }, syncIntervalS: 1 })),
    policyToken(target, b).then((token) => startVaultDaemon({ target, backends: b, auth: { method: 'token', token }, syncIntervalS: 1 })),
  ]);
});

afterAll(async () => {
  await Promise.all([A?.stop(), B?.stop()]);
  if (b !== undefined) await teardownBackends(target, b);
  await target?.close();
  cleanupTempDirs();
});

const ctx = { volume: 'v1' };

describe('two hosts on one Vault', () => {
  it('runs two separate daemons', () => {
    expect(A.daemon.socketPath).not.toBe(B.daemon.socketPath);
    expect(A.daemon.stateDir).not.toBe(B.daemon.stateDir);
  });

  it('a key created on A is used on B; data keys sealed on A open on B and the other way round', async () => {
    await A.kms.createKey('shared', { description: 'made on A' });
    const seen = await waitFor('B to see key "shared"', async () => B.kms.describeKey('shared'));
    expect(seen.description).toBe('made on A');

    const dk = await A.kms.generateDataKey('shared', { context: ctx });
    expect((await B.kms.decrypt(dk.ciphertext, { context: ctx })).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    const sealedOnB = await B.kms.encrypt('shared', Buffer.from('from B'), { context: ctx });
    expect((await A.kms.decrypt(sealedOnB.ciphertext, { context: ctx })).plaintext.toString()).toBe('from B');
  });

  it('rotation on A reaches B within the sync interval', async () => {
    const rotated = await A.kms.rotateKey('shared');
    expect(rotated.currentVersion).toBe(2);
    await waitFor('B to see version 2 of "shared"', async () => (await B.kms.describeKey('shared')).currentVersion === 2);
    expect((await B.kms.encrypt('shared', Buffer.from('v2 on B'))).keyVersion).toBe(2);
  });

  it('disable, enable and scheduled deletion on A reach B', async () => {
    await A.kms.disableKey('shared');
    await waitFor('B to see "shared" disabled', async () => (await codeOf(B.kms.encrypt('shared', Buffer.from('x')))).code === 'KeyDisabled');
    expect((await B.kms.describeKey('shared')).state).toBe('Disabled');

    await A.kms.enableKey('shared');
    await waitFor('B to see "shared" enabled again', async () => (await B.kms.describeKey('shared')).state === 'Enabled');
    expect((await B.kms.encrypt('shared', Buffer.from('x'))).keyId).toBe('shared');

    await A.kms.createKey('doomed');
    await waitFor('B to see "doomed"', async () => B.kms.describeKey('doomed'));
    await A.kms.scheduleKeyDeletion('doomed', 7);
    await waitFor('B to see "doomed" pending deletion', async () => (await B.kms.describeKey('doomed')).state === 'PendingDeletion');
    expect((await codeOf(B.kms.generateDataKey('doomed'))).code).toBe('KeyPendingDeletion');
    // B changes it back; A follows.
    await B.kms.cancelKeyDeletion('doomed');
    await waitFor('A to see the cancellation', async () => (await A.kms.describeKey('doomed')).state === 'Disabled');
  });

  it('check-and-set race: A and B rotate the same key concurrently; no version is lost, every ciphertext opens on both', async () => {
    await A.kms.createKey('race');
    await waitFor('B to see "race"', async () => B.kms.describeKey('race'));
    const rounds = 12;
    const sealed: { host: string; version: number; ciphertext: Buffer; text: string }[] = [];
    const failures: string[] = [];
    const run = async (name: string, host: VaultDaemon) => {
      for (let i = 0; i < rounds; i++) {
        try {
          const info = await host.kms.rotateKey('race');
          const text = `${name}-${i}`;
          const s = await host.kms.encrypt('race', Buffer.from(text));
          expect(s.keyVersion).toBeGreaterThanOrEqual(info.currentVersion);
          sealed.push({ host: name, version: s.keyVersion, ciphertext: s.ciphertext, text });
        } catch (err) {
          failures.push(`${name}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all([run('A', A), run('B', B)]);
    // Both hosts hammer one record: some rotations may give up after the key service's bounded
    // re-reads, but none may be lost or reported as done when it was not.
    const done = 2 * rounds - failures.length;
    expect(done).toBeGreaterThan(rounds);
    for (const f of failures) expect(f).toMatch(/changed concurrently/);

    if (target.server !== undefined) {
      const lost = target.server.requestsTo(`${b.kvMount}/data/${b.prefix}/race`).filter((r) => r.method === 'POST' && r.status === 400);
      console.log(`race: ${done} rotations done, ${failures.length} gave up, ${lost.length} check-and-set writes lost and were retried`);
    }
    const stored = await target.must('GET', `${b.kvMount}/data/${b.prefix}/race`);
    const versions = (stored?.data?.data?.versions as { version: number }[]).map((v) => v.version);
    expect(versions).toEqual(Array.from({ length: done + 1 }, (_, i) => i + 1));
    expect(stored?.data?.data?.current_version).toBe(done + 1);

    for (const host of [A, B]) {
      await waitFor('both hosts to see every version', async () => (await host.kms.describeKey('race')).versions === done + 1);
    }
    const usedVersions = new Set(sealed.map((s) => s.version));
    expect(usedVersions.size).toBe(sealed.length); // every successful rotation made its own version
    for (const s of sealed) {
      expect((await A.kms.decrypt(s.ciphertext)).plaintext.toString()).toBe(s.text);
      expect((await B.kms.decrypt(s.ciphertext)).plaintext.toString()).toBe(s.text);
    }
  });

  it('a ciphertext that outruns the sync still opens: the other host reads that record at once', async () => {
    // C polls only once an hour, so only the on-demand read can explain what it knows.
    const token = await policyToken(target, b);
    const C = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token }, syncIntervalS: 3600 });
    try {
      await A.kms.createKey('fresh');
      const first = await A.kms.encrypt('fresh', Buffer.from('made after C started'));
      expect((await C.kms.decrypt(first.ciphertext)).plaintext.toString()).toBe('made after C started');

      await A.kms.rotateKey('fresh');
      const second = await A.kms.encrypt('fresh', Buffer.from('version 2'));
      expect(second.keyVersion).toBe(2);
      expect((await C.kms.decrypt(second.ciphertext)).plaintext.toString()).toBe('version 2');
      expect((await C.kms.describeKey('fresh')).currentVersion).toBe(2);
    } finally {
      await C.stop();
    }
  });
});
