// The azure-keyvault root against the REAL daemon and the REAL Azure SDK, talking to the test server
// (test/azure-keyvault-server/, NOT Azure) or to a real Key Vault (npm run test:cloud with
// KMS_TEST_AZURE_VAULT_URL). The cloud is called to wrap on create/rotate and to unwrap on a cache miss
// only; the key id and version are bound by CloudRoot (Key Vault's key wrap takes no AAD).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runDaemonExpectingExit } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_AZURE, azureYaml, openAzureTarget, secretFile, startAzureDaemon, type AzureTarget } from './azure-target.js';

afterAll(() => cleanupTempDirs());

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
    return { code: '', message: '' };
  } catch (err) {
    return { code: String((err as { code?: unknown }).code ?? 'thrown'), message: (err as Error).message };
  }
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last !== undefined ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('azure-keyvault root: lifecycle on the real daemon', () => {
  let t: AzureTarget;
  const dir = makeTempDir('kms-azure-life-');
  beforeAll(async () => {
    t = await openAzureTarget();
  });
  afterAll(async () => t?.close());

  it('creates, rotates, seals and opens across a restart; no cloud call per data key once warm', async () => {
    const ctx = { bucket: 'b1' };
    let d = await startAzureDaemon(t, { dir });
    try {
      const info = await d.kms.createKey('alpha');
      expect(info.origin).toBe('azure');
      const v1 = await d.kms.encrypt('alpha', Buffer.from('under v1'), { context: ctx });
      await d.kms.rotateKey('alpha');
      expect((await d.kms.describeKey('alpha')).currentVersion).toBe(2);
      const dk = await d.kms.generateDataKey('alpha', { context: ctx });

      const health = await d.kms.health();
      expect(health.healthy).toBe(true);
      const status = await d.kms.status();
      expect(JSON.stringify(status)).toContain(t.vaultUrl);

      if (t.server !== undefined) {
        t.server.resetCalls();
        for (let i = 0; i < 50; i++) {
          const k = await d.kms.generateDataKey('alpha', { context: ctx });
          expect((await d.kms.decrypt(k.ciphertext, { context: ctx })).plaintext.equals(k.plaintext as Buffer)).toBe(true);
        }
        expect(t.server.calls.wrapKey + t.server.calls.unwrapKey + t.server.calls.get).toBe(0);
      }
      await d.stop();

      t.server?.resetCalls();
      d = await startAzureDaemon(t, { dir });
      expect((await d.kms.decrypt(v1.ciphertext, { context: ctx })).plaintext.toString()).toBe('under v1');
      expect((await d.kms.decrypt(dk.ciphertext, { context: ctx })).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
      for (let i = 0; i < 10; i++) await d.kms.decrypt(v1.ciphertext, { context: ctx });
      // After a restart each version is unwrapped once (at start or on a cache miss), then served from the cache.
      if (t.server !== undefined) expect(t.server.calls.unwrapKey).toBe(2);
    } finally {
      await d.stop();
    }
  });
});
