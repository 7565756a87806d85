// Placing the audit log: RUSTFS_KMS_AUDIT_PATH for the daemon and for KmsConfig.fromEnv(), whose
// in-process default is beside the state (never the daemon's /var/log/rustfs-kms).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsConfig, KmsManager, OperationContext } from '../../src/index.js';
import { createKeyFile } from '../../src/roots/local.js';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon } from '../helpers/daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

/** A production-style state directory (0700, root key made as `rustfs-kms init` makes it). */
function stateDir(): string {
  const dir = join(makeTempDir('kms-audit-path-'), 'state');
  mkdirSync(dir, { mode: 0o700 });
  createKeyFile(join(dir, 'root.key'));
  return dir;
}

describe('RUSTFS_KMS_AUDIT_PATH', () => {
  it('KmsConfig.fromEnv() writes the audit log where the variable says', async () => {
    const dir = stateDir();
    const logDir = join(dir, '..', 'logs');
    mkdirSync(logDir);
    const config = KmsConfig.fromEnv({ RUSTFS_KMS_STATE_DIR: dir, RUSTFS_KMS_AUDIT_PATH: join(logDir, 'kms-audit.log') });
    expect(config.auditPath).toBe(join(logDir, 'kms-audit.log'));
    const kms = await KmsManager.create(config);
    await kms.createKey('placed', {}, OperationContext.new('test'));
    await kms.close();
    expect(readFileSync(join(logDir, 'kms-audit.log'), 'utf8')).toContain('placed');
  });

  it('without it, fromEnv() logs to <state_dir>/audit.log and starts on a host without /var/log/rustfs-kms', async () => {
    const dir = stateDir();
    const config = KmsConfig.fromEnv({ RUSTFS_KMS_STATE_DIR: dir });
    expect(config.auditPath).toBe(join(dir, 'audit.log'));
    const kms = await KmsManager.create(config);
    await kms.createKey('beside', {}, OperationContext.new('test'));
    await kms.close();
    expect(readFileSync(join(dir, 'audit.log'), 'utf8')).toContain('beside');
  });

  it('the daemon takes it too', async () => {
    const dir = makeTempDir('kms-audit-path-');
    const path = join(dir, 'elsewhere.log');
    const d = await startDaemon({ dir, env: { RUSTFS_KMS_AUDIT_PATH: path } });
    expect((await runCli(['key', 'create', 'logged'], { socket: d.socketPath })).code).toBe(0);
    expect(await d.stop()).toBe(0);
    expect(existsSync(join(d.stateDir, 'audit.log'))).toBe(false);
    expect(readFileSync(path, 'utf8')).toContain('logged');
  });
});
