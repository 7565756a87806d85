// One real daemon with Vault as root (Transit) and keystore (KV v2): every data operation and the key
// lifecycle, checked on the daemon's socket and in Vault itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyMaterialAad } from '../../src/roots/types.js';
import { cleanupTempDirs } from '../helpers/daemon.js';
import { codeOf, startVaultDaemon, type VaultDaemon } from './harness.js';
import { openTarget, policyToken, setupBackends, teardownBackends, type Backends, type VaultTarget } from './target.js';

let target: VaultTarget;
let b: Backends;
let d: VaultDaemon;

beforeAll(async () => {
  target = await openTarget();
  b = await setupBackends(target);
  // The daemon's token holds exactly the policy from docs/operations.md.
  const token = await policyToken(target, b);
  d = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token } });
});

afterAll(async () => {
  await d?.stop();
  if (b !== undefined) await teardownBackends(target, b);
  await target?.close();
  cleanupTempDirs();
});

const ctx = { bucket: 'photos', object: 'a/b.jpg' };

describe('vault-transit root + vault-kv keystore, one daemon', () => {
  it('reports its backends', async () => {
    const health = await d.kms.health();
    expect(health.healthy).toBe(true);
    expect(health.backend).toBe('vault-transit/vault-kv');
    const status = await d.kms.status();
    expect(status.rootType).toBe('vault-transit');
    expect(status.keystoreType).toBe('vault-kv');
  });

  it('creates a key whose record lives in KV v2 and whose material is wrapped by Transit with the key AAD', async () => {
    const info = await d.kms.createKey('objects', { description: 'object keys', tags: { team: 'storage' } });
    expect(info).toMatchObject({ keyId: 'objects', state: 'Enabled', currentVersion: 1, versions: 1, origin: 'vault' });

    const secret = await target.must('GET', `${b.kvMount}/data/${b.prefix}/objects`);
    const data = secret?.data?.data as Record<string, any>;
    expect(secret?.data?.metadata?.version).toBe(1);
    expect(data.key_id).toBe('objects');
    expect(data.state).toBe('Enabled');
    expect(data.tags).toEqual({ team: 'storage' });
    const wrapped = Buffer.from(data.versions[0].wrapped_material as string, 'base64').toString('utf8');
    expect(wrapped).toMatch(/^vault:v1:/);
    expect(data.versions[0].root_ref).toBe(`vault-transit:${b.transitMount}/${b.transitKey}`);

    // The wrapped material opens under Transit only with the AAD of (key id, version).
    const ad = (version: number) => keyMaterialAad('objects', version).toString('base64');
    const good = await target.api('POST', `${b.transitMount}/decrypt/${b.transitKey}`, { ciphertext: wrapped, associated_data: ad(1) });
    expect(good.status).toBe(200);
    expect(Buffer.from(good.body?.data?.plaintext as string, 'base64')).toHaveLength(32);
    const wrongVersion = await target.api('POST', `${b.transitMount}/decrypt/${b.transitKey}`, { ciphertext: wrapped, associated_data: ad(2) });
    expect(wrongVersion.status).toBe(400);
    const noBinding = await target.api('POST', `${b.transitMount}/decrypt/${b.transitKey}`, { ciphertext: wrapped });
    expect(noBinding.status).toBe(400);
  });

  it('refuses a second key with the same id', async () => {
    expect((await codeOf(d.kms.createKey('objects'))).code).toBe('KeyAlreadyExists');
  });

  it('encrypts, decrypts, makes data keys (single and batch) and re-encrypts', async () => {
    const plaintext = Buffer.from('hello from vault');
    const sealed = await d.kms.encrypt('objects', plaintext, { context: ctx });
    expect(sealed.keyVersion).toBe(1);
    const opened = await d.kms.decrypt(sealed.ciphertext, { context: ctx });
    expect(opened.plaintext.equals(plaintext)).toBe(true);
    expect((await codeOf(d.kms.decrypt(sealed.ciphertext, { context: { bucket: 'other' } }))).code).toBe('InvalidCiphertext');

    const dk = await d.kms.generateDataKey('objects', { context: ctx });
    expect(dk.plaintext).toHaveLength(32);
    expect((await d.kms.decrypt(dk.ciphertext, { context: ctx })).plaintext.equals(dk.plaintext as Buffer)).toBe(true);

    const batch = await d.kms.generateDataKeyBatch('objects', 16, { context: ctx });
    expect(batch.keys).toHaveLength(16);
    for (const k of batch.keys) {
      expect((await d.kms.decrypt(k.ciphertext, { context: ctx })).plaintext.equals(k.plaintext)).toBe(true);
    }

    await d.kms.createKey('archive');
    const moved = await d.kms.reEncrypt(sealed.ciphertext, { context: ctx, destinationKeyId: 'archive' });
    expect(moved.keyId).toBe('archive');
    expect((await d.kms.decrypt(moved.ciphertext, { context: ctx })).plaintext.equals(plaintext)).toBe(true);
  });

  it('rotates: a new version in KV (revision = KV version), old ciphertexts keep opening', async () => {
    const before = await d.kms.encrypt('objects', Buffer.from('v1 data'));
    const rotated = await d.kms.rotateKey('objects');
    expect(rotated.currentVersion).toBe(2);
    expect(rotated.versions).toBe(2);
    const after = await d.kms.encrypt('objects', Buffer.from('v2 data'));
    expect(after.keyVersion).toBe(2);
    expect((await d.kms.decrypt(before.ciphertext)).plaintext.toString()).toBe('v1 data');
    expect((await d.kms.decrypt(after.ciphertext)).plaintext.toString()).toBe('v2 data');

    const meta = await target.must('GET', `${b.kvMount}/metadata/${b.prefix}/objects`);
    expect(meta?.data?.current_version).toBe(2); // created (1), rotated (2)
    const secret = await target.must('GET', `${b.kvMount}/data/${b.prefix}/objects`);
    expect(secret?.data?.data?.current_version).toBe(2);
    expect(secret?.data?.data?.versions).toHaveLength(2);
  });

  it('walks the lifecycle: disable, enable, schedule deletion, cancel', async () => {
    await d.kms.createKey('lifecycle');
    const sealed = await d.kms.encrypt('lifecycle', Buffer.from('x'));

    expect((await d.kms.disableKey('lifecycle')).state).toBe('Disabled');
    expect((await codeOf(d.kms.encrypt('lifecycle', Buffer.from('x')))).code).toBe('KeyDisabled');
    expect((await codeOf(d.kms.decrypt(sealed.ciphertext))).code).toBe('KeyDisabled');
    expect((await d.kms.enableKey('lifecycle')).state).toBe('Enabled');
    expect((await d.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('x');

    const pending = await d.kms.scheduleKeyDeletion('lifecycle', 7);
    expect(pending.state).toBe('PendingDeletion');
    expect(pending.deletionDate).toBeGreaterThan(Date.now());
    expect((await codeOf(d.kms.generateDataKey('lifecycle'))).code).toBe('KeyPendingDeletion');
    const stored = await target.must('GET', `${b.kvMount}/data/${b.prefix}/lifecycle`);
    expect(stored?.data?.data?.state).toBe('PendingDeletion');

    expect((await d.kms.cancelKeyDeletion('lifecycle')).state).toBe('Disabled');
    expect((await d.kms.enableKey('lifecycle')).state).toBe('Enabled');
    const meta = await target.must('GET', `${b.kvMount}/metadata/${b.prefix}/lifecycle`);
    expect(meta?.data?.current_version).toBe(6); // create, then 5 check-and-set writes
  });

  it('lists keys in byte order', async () => {
    const list = await d.kms.listKeys();
    expect(list.keys.map((k) => k.keyId)).toEqual(['archive', 'lifecycle', 'objects']);
  });

  it('starts again from Vault alone: a new daemon (new state directory) opens every old ciphertext', async () => {
    const sealed = await d.kms.encrypt('objects', Buffer.from('survives a restart'), { context: ctx });
    const token = await policyToken(target, b);
    const again = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token } });
    try {
      expect((await again.kms.listKeys()).keys.map((k) => k.keyId)).toEqual(['archive', 'lifecycle', 'objects']);
      expect((await again.kms.decrypt(sealed.ciphertext, { context: ctx })).plaintext.toString()).toBe('survives a restart');
      expect((await again.kms.describeKey('objects')).currentVersion).toBe(2);
    } finally {
      await again.stop();
    }
  });
});
