// rustfs-kmsd --check-config FILE, run as the built daemon: validates with the environment and flags,
// prints the effective config (redacted) or the error, and starts nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_JS, assertBuilt, cleanEnv, cleanupTempDirs, makeTempDir, repoRoot } from '../helpers/daemon.js';

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [DAEMON_JS, ...args], { env: cleanEnv(env), encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('rustfs-kmsd --check-config', () => {
  beforeAll(() => assertBuilt());
  afterAll(() => cleanupTempDirs());

  it('accepts the systemd example and prints the effective config', () => {
    const file = join(repoRoot, 'systemd', 'config.example.yaml');
    const r = run(['--check-config', file]);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(`${file}: ok\n`)).toBe(true);
    const config = JSON.parse(r.stdout.slice(r.stdout.indexOf('\n') + 1)) as { socket: { path: string }; root: { type: string } };
    expect(config.socket.path).toBe('/run/rustfs-kms/kms.sock');
    expect(config.root.type).toBe('local');
  });

  it('applies the environment and flags as the daemon would, redacts secrets, and starts nothing', () => {
    const dir = makeTempDir('kms-check-');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'state_dir: state\nsocket: { path: kms.sock }\nroot: { type: vault-transit, vault: { address: "https://vault:8200" } }\n');
    const r = run(['--check-config', file, '--allow-unlocked-memory'], { RUSTFS_KMS_VAULT_TOKEN: 'hvs.secret-token', RUSTFS_KMS_LOG_LEVEL: 'debug' });
    expect(r.code).toBe(0);
    const config = JSON.parse(r.stdout.slice(r.stdout.indexOf('\n') + 1)) as Record<string, unknown>;
    expect(config).toMatchObject({ logLevel: 'debug', allowUnlockedMemory: true, stateDir: join(dir, 'state') });
    expect(r.stdout).toContain('[redacted]');
    expect(r.stdout).not.toContain('hvs.secret-token');
    expect(readdirSync(dir)).toEqual(['config.yaml']); // no state directory, no socket
    expect(existsSync(join(dir, 'kms.sock'))).toBe(false);
  });

  it('a bad value exits 1 with the field and file:line:col', () => {
    const dir = makeTempDir('kms-check-');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'log_level: info\nsocket:\n  mode: "abc"\n');
    const r = run(['--check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`rustfs-kmsd: config: socket.mode: expected an octal mode string like "0660", got "abc" (${file}:3:9)\n`);
  });

  it('a cross-check that depends on the environment fails as at start-up', () => {
    const dir = makeTempDir('kms-check-');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'root: { type: vault-transit }\n');
    const r = run(['--check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('root.vault.address: required when root.type is vault-transit');
  });

  it('a missing file names --check-config', () => {
    const r = run(['--check-config', '/nonexistent/config.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('config: --check-config: expected a readable YAML file, got "/nonexistent/config.yaml" (no such file)');
  });

  it('usage errors exit 2', () => {
    expect(run(['--check-config']).code).toBe(2);
    const both = run(['--check-config', '/a.yaml', '--config', '/b.yaml']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('do not combine it with --config');
  });
});
