// The in-process library: the shared behavioural suite over KmsManager and over KmsClient (against
// the real daemon), then what only the library has: KmsConfig's constructors, the global manager,
// the state-directory lock, the audit chain it writes, and the Vault configuration's clear error.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError, GenerateKeyRequest, KmsClient, KmsConfig, KmsError, KmsManager, OperationContext,
  getGlobalKms, initGlobalKms, isKmsHealthy, shutdownGlobalKms, type KmsApi,
} from '../../src/index.js';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon } from '../helpers/daemon.js';
import { behaviourSuite } from './behaviour.js';

afterAll(async () => {
  await shutdownGlobalKms();
  await killAllDaemons();
  cleanupTempDirs();
});

// Both classes satisfy the one interface the suite is written against.
const typeCheck = (m: KmsManager, c: KmsClient): KmsApi[] => [m, c];
void typeCheck;

behaviourSuite('KmsManager (in-process)', async () => {
  const dir = join(makeTempDir('kms-lib-'), 'kms');
  const kms = await KmsManager.create(KmsConfig.local(dir));
  return { kms, auditPath: join(dir, 'audit.log'), transport: 'library', close: () => kms.close() };
});

behaviourSuite('KmsClient (socket, real daemon)', async () => {
  const daemon = await startDaemon();
  const kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
  return {
    kms,
    auditPath: join(daemon.stateDir, 'audit.log'),
    transport: 'socket',
    close: async () => {
      await kms.close();
      expect(await daemon.stop()).toBe(0);
    },
  };
});

describe('KmsConfig', () => {
  it('local(dir): state, root key and audit log in dir, created 0700 on first use', async () => {
    const dir = join(makeTempDir('kms-lib-'), 'fresh', 'kms');
    const config = KmsConfig.local(dir, { defaultKeyId: 'rustfs-default' });
    expect(config.backend).toBe('local');
    expect(config.stateDir).toBe(dir);
    expect(config.defaultKeyId).toBe('rustfs-default');
    const kms = await KmsManager.create(config);
    try {
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, 'root.key')).mode & 0o777).toBe(0o600);
      expect(existsSync(join(dir, 'audit.log'))).toBe(true);
      expect(kms.defaultKeyId).toBe('rustfs-default');
    } finally {
      await kms.close();
    }
    expect(() => KmsConfig.local(dir, { defaultKeyId: 'not valid!' })).toThrow(KmsError);
    await expect(KmsManager.create(KmsConfig.local(join(dir, '..', 'absent'), { create: false }))).rejects.toThrow(/does not exist/);
  });

  it('fromEnv() reads the same RUSTFS_KMS_* variables as the daemon', () => {
    const dir = makeTempDir('kms-lib-env-');
    const config = KmsConfig.fromEnv({ RUSTFS_KMS_LOCAL_KEY_DIR: dir, RUSTFS_KMS_DEFAULT_KEY_ID: 'env-key', RUSTFS_KMS_TIMEOUT_SECS: '12' }, { dev: true });
    expect(config.stateDir).toBe(dir);
    expect(config.defaultKeyId).toBe('env-key');
    expect(config.settings.timeoutSecs).toBe(12);
    expect(config.auditPath).toBe(join(dir, 'audit.log'));
    const vault = KmsConfig.fromEnv({
      RUSTFS_KMS_TYPE: 'vault', RUSTFS_KMS_VAULT_ADDRESS: 'http://127.0.0.1:8200', RUSTFS_KMS_VAULT_TOKEN: 'hvs.test', RUSTFS_KMS_STATE_DIR: dir,
    }, { dev: true });
    expect(vault.backend).toBe('vault');
    // A bad value fails with the variable's name, exactly as the daemon's start-up does.
    expect(() => KmsConfig.fromEnv({ RUSTFS_KMS_TIMEOUT_SECS: '30s' }, { dev: true })).toThrow(ConfigError);
    expect(() => KmsConfig.fromEnv({ RUSTFS_KMS_TIMEOUT_SECS: '30s' }, { dev: true })).toThrow(/RUSTFS_KMS_TIMEOUT_SECS/);
  });

  it('vault(url, token): a Vault configuration; an unreachable Vault fails with an error naming it', async () => {
    const stateDir = makeTempDir('kms-lib-vault-');
    const config = KmsConfig.vault('http://127.0.0.1:9', 'hvs.not-a-token', { stateDir, transitKey: 'rustfs', namespace: 'team', retryAttempts: 0, timeoutSecs: 2 });
    expect(config.settings.retryAttempts).toBe(0);
    expect(config.backend).toBe('vault');
    expect(config.settings.root.vault).toMatchObject({ address: 'http://127.0.0.1:9', transitKey: 'rustfs', namespace: 'team' });
    const err = await KmsManager.create(config).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KmsError);
    expect((err as KmsError).code).toBe('BackendUnavailable');
    expect((err as KmsError).message).toMatch(/^vault at http:\/\/127\.0\.0\.1:9: /);
    expect((err as KmsError).message).not.toContain('hvs.not-a-token');
    // The state directory is released: the next attempt gets the same answer, not "in use".
    await expect(KmsManager.create(config)).rejects.toMatchObject({ code: 'BackendUnavailable' });
    expect(() => KmsConfig.vault('ftp://vault', 't')).toThrow(ConfigError);
  });
});

describe('KmsManager', () => {
  it('holds its state directory: a second manager or a daemon on it is refused', async () => {
    const dir = join(makeTempDir('kms-lib-'), 'kms');
    const first = await KmsManager.create(KmsConfig.local(dir));
    try {
      await expect(KmsManager.create(KmsConfig.local(dir))).rejects.toMatchObject({ code: 'Busy' });
    } finally {
      await first.close();
    }
    const second = await KmsManager.create(KmsConfig.local(dir)); // released on close
    await second.close();
    await expect(second.healthCheck()).rejects.toMatchObject({ code: 'BackendUnavailable' });
  });

  it('writes a hash chain that `rustfs-kms audit verify` accepts, with caller kind in-process', async () => {
    const dir = join(makeTempDir('kms-lib-'), 'kms');
    const kms = await KmsManager.create(KmsConfig.local(dir), { context: OperationContext.new('default-principal') });
    await kms.createKey('chain');
    await kms.generateDataKey(new GenerateKeyRequest('chain'), OperationContext.new().withUserAgent('own'));
    await kms.describeKey('absent').catch(() => undefined);
    await kms.close();
    const verified = await runCli(['audit', 'verify', join(dir, 'audit.log')]);
    expect(verified.code, verified.stderr).toBe(0);
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.op)).toEqual(['library_open', 'create_key', 'generate_data_key', 'describe_key', 'library_close']);
    expect(lines[1]).toMatchObject({ transport: 'library', caller: { kind: 'in-process', pid: process.pid }, claimed: { principal: 'default-principal' } });
    expect(lines[2]).toMatchObject({ claimed: { principal: 'default-principal', user_agent: 'own' } });
    expect(lines[3]).toMatchObject({ outcome: 'failure', error_code: 'KeyNotFound' });
  });

  it('can run without an audit log', async () => {
    const dir = join(makeTempDir('kms-lib-'), 'kms');
    const kms = await KmsManager.create(KmsConfig.local(dir, { auditLog: false }));
    await kms.createKey('quiet');
    expect((await kms.backendInfo()).auditHead).toBeUndefined();
    await kms.close();
    expect(existsSync(join(dir, 'audit.log'))).toBe(false);
  });
});

describe('the global KMS', () => {
  it('initGlobalKms, getGlobalKms, isKmsHealthy, shutdownGlobalKms', async () => {
    expect(getGlobalKms()).toBeUndefined();
    expect(await isKmsHealthy()).toBe(false);
    const dir = join(makeTempDir('kms-lib-'), 'kms');
    const kms = await initGlobalKms(KmsConfig.local(dir));
    expect(getGlobalKms()).toBe(kms);
    expect(await isKmsHealthy()).toBe(true);
    await expect(initGlobalKms(KmsConfig.local(join(dir, 'other')))).rejects.toMatchObject({ code: 'InvalidRequest' });
    await getGlobalKms()?.createKey('global-key');
    expect((await kms.describeKey('global-key')).keyId).toBe('global-key');
    await shutdownGlobalKms();
    expect(getGlobalKms()).toBeUndefined();
    expect(await isKmsHealthy()).toBe(false);
  });
});
