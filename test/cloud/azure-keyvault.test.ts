// The azure-keyvault root against the REAL daemon and the REAL Azure SDK, talking to the test server
// (test/azure-keyvault-server/, NOT Azure) or to a real Key Vault (npm run test:cloud with
// KMS_TEST_AZURE_VAULT_URL). The cloud is called to wrap on create/rotate and to unwrap on a cache miss
// only; the key id and version are bound by CloudRoot (Key Vault's key wrap takes no AAD).
import { codeOf } from './cloud-daemon.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runDaemonExpectingExit } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_AZURE, azureYaml, openAzureTarget, secretFile, startAzureDaemon, type AzureTarget } from './azure-target.js';

afterAll(() => cleanupTempDirs());


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

describe.skipIf(REAL_AZURE)(`azure-keyvault root: cloud-side rotation, binding, throttling${REAL_AZURE ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  let t: AzureTarget;
  beforeAll(async () => {
    t = await openAzureTarget();
  });
  afterAll(async () => t?.close());

  it('records wrapped before the Key Vault key was rotated unwrap with the version that wrapped them', async () => {
    const dir = makeTempDir('kms-azure-rot-');
    let d = await startAzureDaemon(t, { dir });
    try {
      await d.kms.createKey('before');
      const sealed = await d.kms.encrypt('before', Buffer.from('old cloud version'));
      t.server!.rotateKey(t.keyName);
      await d.kms.createKey('after');
      await d.stop();
      const records = [readFileSync(join(d.daemon.stateDir, 'keys', 'before.json'), 'utf8'), readFileSync(join(d.daemon.stateDir, 'keys', 'after.json'), 'utf8')];
      expect(records[0]).not.toBe(records[1]);
      d = await startAzureDaemon(t, { dir });
      expect((await d.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('old cloud version');
      expect((await d.kms.generateDataKey('after')).keyId).toBe('after');
    } finally {
      await d.stop();
    }
  });

  it('a wrapped blob moved to another key is refused by the binding check', async () => {
    const dir = makeTempDir('kms-azure-swap-');
    let d = await startAzureDaemon(t, { dir });
    await d.kms.createKey('one');
    await d.kms.createKey('two');
    const sealed = await d.kms.encrypt('two', Buffer.from('for two'));
    await d.stop();
    const path = (k: string) => join(d.daemon.stateDir, 'keys', `${k}.json`);
    const wrappedOf = (text: string) => /"wrappedMaterial"\s*:\s*"([^"]+)"/.exec(text)?.[1];
    const one = readFileSync(path('one'), 'utf8');
    const two = readFileSync(path('two'), 'utf8');
    const w1 = wrappedOf(one);
    const w2 = wrappedOf(two);
    expect(w1).toBeDefined();
    writeFileSync(path('two'), two.replace(w2 as string, w1 as string));
    d = await startAzureDaemon(t, { dir });
    try {
      // Not an outage: Key Vault unwrapped the blob, the binding of key id and version did not match.
      for (const r of [await codeOf(d.kms.decrypt(sealed.ciphertext)), await codeOf(d.kms.generateDataKey('two'))]) {
        expect(r.code).toBe('Internal');
        expect(r.message).toMatch(/belongs to another key or version/);
      }
      expect((await d.kms.generateDataKey('one')).keyId).toBe('one');
    } finally {
      await d.stop();
    }
  });

  it('throttling (429 with Retry-After) and 5xx are retried inside the deadline', async () => {
    const d = await startAzureDaemon(t, { timeoutSecs: 10, retryAttempts: 4 });
    try {
      t.server!.resetCalls();
      t.server!.throttleNext(2);
      await d.kms.createKey('throttled');
      // get + wrap, each attempt counted: two 429s then one success.
      expect(t.server!.calls.get + t.server!.calls.wrapKey).toBe(4);
      t.server!.failNext(1);
      await d.kms.rotateKey('throttled');
      expect((await d.kms.describeKey('throttled')).currentVersion).toBe(2);
    } finally {
      await d.stop();
    }
  });

  it('errors name the cloud error code: 403 Forbidden, 404 KeyNotFound, a disabled key', async () => {
    const d = await startAzureDaemon(t, { retryAttempts: 0 });
    try {
      t.server!.deny('wrapKey');
      const forbidden = await codeOf(d.kms.createKey('denied'));
      expect(forbidden.code).toBe('BackendUnavailable');
      expect(forbidden.message).toMatch(/Forbidden \(HTTP 403\)/);
      expect(forbidden.message).toContain(t.vaultUrl);
      t.server!.deny('wrapKey', false);
      await d.kms.createKey('allowed');
      const current = (await t.server!.currentVersion(t.keyName));
      t.server!.setEnabled(t.keyName, current, false);
      const disabled = await codeOf(d.kms.createKey('while-disabled'));
      expect(disabled.message).toMatch(/KeyDisabled/);
      expect(disabled.message).toContain(current);
      t.server!.setEnabled(t.keyName, current, true);
    } finally {
      t.server!.deny('wrapKey', false);
      await d.stop();
    }
    const missing = await startAzureDaemon({ ...t, keyName: 'no-such-key' }, { retryAttempts: 0 });
    try {
      const r = await codeOf(missing.kms.createKey('x'));
      expect(r.message).toMatch(/KeyNotFound \(HTTP 404\)/);
      expect((await missing.kms.health()).healthy).toBe(false);
    } finally {
      await missing.stop();
    }
  });
});

describe.skipIf(REAL_AZURE)(`azure-keyvault root: Key Vault away${REAL_AZURE ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  let t: AzureTarget;
  beforeAll(async () => {
    t = await openAzureTarget();
  });
  afterAll(async () => {
    t?.server?.setDown(false);
    await t?.close();
  });

  it('cached versions keep serving past their idle TTL; creates fail with BackendUnavailable; recovery needs no restart', async () => {
    const d = await startAzureDaemon(t, { idleTtlS: 1, offlineTtlS: 3600, timeoutSecs: 2, retryAttempts: 1 });
    try {
      await d.kms.createKey('hot');
      const sealed = await d.kms.encrypt('hot', Buffer.from('cached'));
      t.server!.setDown(true);
      await new Promise((r) => setTimeout(r, 3500)); // > 3 × idle_ttl_s
      expect((await d.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('cached');
      expect((await d.kms.generateDataKey('hot')).plaintext).toHaveLength(32);
      for (const r of await Promise.all([codeOf(d.kms.createKey('during')), codeOf(d.kms.rotateKey('hot'))])) {
        expect(r.code).toBe('BackendUnavailable');
        expect(r.message).toContain(t.vaultUrl);
      }
      expect((await d.kms.health()).healthy).toBe(false);
      t.server!.setDown(false);
      await waitFor('health to turn true', async () => (await d.kms.health()).healthy);
      await d.kms.createKey('after');
      await d.kms.rotateKey('hot');
      expect((await d.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('cached');
    } finally {
      t.server!.setDown(false);
      await d.stop();
    }
  });
});

describe.skipIf(REAL_AZURE)(`azure-keyvault root: credentials and key types${REAL_AZURE ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  it('workload identity from the SDK\'s AZURE_* variables (a federated token file)', async () => {
    const t = await openAzureTarget();
    const dir = makeTempDir('kms-azure-wi-');
    const tokenFile = secretFile(dir, 'federated-token', 'federated.jwt.token');
    const d = await startAzureDaemon(t, {
      authLines: ['      method: workload-identity'],
      env: { AZURE_TENANT_ID: t.tenantId, AZURE_CLIENT_ID: t.clientId, AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: t.authorityHost },
    });
    try {
      await d.kms.createKey('wi');
      expect((await d.kms.generateDataKey('wi')).keyId).toBe('wi');
    } finally {
      await d.stop();
      await t.close();
    }
  });

  it('a missing AZURE_* variable for workload identity is named at start-up', async () => {
    const t = await openAzureTarget();
    try {
      const r = await runDaemonExpectingExit({ config: azureYaml(t, { authLines: ['      method: workload-identity'] }), env: { AZURE_TENANT_ID: t.tenantId, AZURE_CLIENT_ID: undefined, AZURE_FEDERATED_TOKEN_FILE: undefined } });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/missing: AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE/);
    } finally {
      await t.close();
    }
  });

  it('a client secret file open to others is refused at start-up, naming the file', async () => {
    const t = await openAzureTarget();
    try {
      const loose = join(makeTempDir('kms-azure-loose-'), 'secret');
      writeFileSync(loose, 'test-secret-not-azure', { mode: 0o644 });
      const r = await runDaemonExpectingExit({ config: azureYaml({ ...t, secretFile: loose }) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`client_secret_file ${loose} has mode 0644`);
    } finally {
      await t.close();
    }
  });

  it('a wrong client secret fails with the authority\'s error code', async () => {
    const t = await openAzureTarget();
    const bad = secretFile(makeTempDir('kms-azure-bad-'), 'secret', 'wrong');
    const d = await startAzureDaemon({ ...t, secretFile: bad }, { retryAttempts: 0 });
    try {
      const r = await codeOf(d.kms.createKey('x'));
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toMatch(/invalid_client/);
      expect(r.message).not.toContain('wrong');
    } finally {
      await d.stop();
      await t.close();
    }
  });

  it('an oct-HSM key wraps with A256KW', async () => {
    const t = await openAzureTarget('oct-HSM');
    const dir = makeTempDir('kms-azure-oct-');
    let d = await startAzureDaemon(t, { dir });
    try {
      await d.kms.createKey('oct');
      const sealed = await d.kms.encrypt('oct', Buffer.from('aes-kw'));
      await d.stop();
      d = await startAzureDaemon(t, { dir });
      expect((await d.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('aes-kw');
    } finally {
      await d.stop();
      await t.close();
    }
  });
});
