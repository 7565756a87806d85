// root.azure_keyvault and the Azure environment variables: what is required, what is refused and how
// the errors name the field or variable.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, configFromYaml, loadConfig, type DaemonConfig } from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-azure-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const load = (env: Record<string, string>, yaml?: string): DaemonConfig => {
  if (yaml === undefined) return loadConfig({ env, cli: {}, cwd: dir, defaultConfigPath: join(dir, 'none.yaml') });
  return configFromYaml(yaml, { baseDir: dir, env });
};
const error = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

const SECTION = `root:
  type: azure-keyvault
  azure_keyvault:
    vault_url: https://my-vault.vault.azure.net/
    key_name: rustfs-kms
    auth:
      method: client-secret
      tenant_id: 00000000-0000-0000-0000-000000000001
      client_id: 00000000-0000-0000-0000-000000000002
      client_secret_file: /etc/rustfs-kms/azure-secret
`;

describe('root.azure_keyvault', () => {
  it('a complete section is read, the URL normalized, secrets only by path', () => {
    const c = load({}, SECTION);
    expect(c.root.type).toBe('azure-keyvault');
    expect(c.root.azureKeyvault).toEqual({
      vaultUrl: 'https://my-vault.vault.azure.net',
      keyName: 'rustfs-kms',
      auth: { method: 'client-secret', tenantId: '00000000-0000-0000-0000-000000000001', clientId: '00000000-0000-0000-0000-000000000002', clientSecretFile: '/etc/rustfs-kms/azure-secret' },
    });
  });

  it('an inline client_secret is refused with a pointer to client_secret_file', () => {
    const e = error(() => load({}, SECTION.replace('client_secret_file: /etc/rustfs-kms/azure-secret', 'client_secret: hunter2')));
    expect(e.message).toMatch(/client_secret_file/);
    expect(e.message).not.toContain('hunter2');
  });

  it('http is refused: Key Vault and the SDK want TLS', () => {
    const e = error(() => load({}, SECTION.replace('https://my-vault', 'http://my-vault')));
    expect(e.field).toBe('root.azure_keyvault.vault_url');
    expect(e.message).toMatch(/https/);
  });

  it('a key version must be 32 hex digits', () => {
    const e = error(() => load({}, SECTION.replace('key_name: rustfs-kms', 'key_name: rustfs-kms\n    key_version: latest')));
    expect(e.field).toBe('root.azure_keyvault.key_version');
    expect(e.message).toMatch(/32 hex digits/);
  });

  it('each auth method allows only its own keys and names the missing ones', () => {
    expect(error(() => load({}, SECTION.replace('method: client-secret', 'method: managed-identity'))).message).toMatch(/not used by method managed-identity/);
    const e = error(() => load({}, SECTION.replace(/      tenant_id: .*\n/, '')));
    expect(e.field).toBe('root.azure_keyvault.auth.tenant_id');
  });

  it('the section is required when root.type is azure-keyvault, naming the env var that sets it', () => {
    const e = error(() => load({ RUSTFS_KMS_TYPE: 'azure' }));
    expect(e.field).toBe('root.azure_keyvault.vault_url');
    expect(e.message).toMatch(/RUSTFS_KMS_AZURE_VAULT_URL/);
    expect(e.message).toMatch(/set by RUSTFS_KMS_TYPE/);
  });
});

describe('Azure environment variables', () => {
  const yamlAuth = `root:
  azure_keyvault:
    auth:
      method: workload-identity
`;
  it('RUSTFS_KMS_TYPE=azure / RUSTFS_KMS_BACKEND=azure select azure-keyvault with the file keystore', () => {
    for (const name of ['RUSTFS_KMS_TYPE', 'RUSTFS_KMS_BACKEND']) {
      const c = load({ [name]: 'azure', RUSTFS_KMS_AZURE_VAULT_URL: 'https://v.vault.azure.net', RUSTFS_KMS_AZURE_KEY_NAME: 'k1' }, yamlAuth);
      expect(c.root.type).toBe('azure-keyvault');
      expect(c.keystore.type).toBe('file');
      expect(c.root.azureKeyvault).toEqual({ vaultUrl: 'https://v.vault.azure.net', keyName: 'k1', auth: { method: 'workload-identity' } });
    }
  });

  it('RUSTFS_KMS_TYPE and RUSTFS_KMS_BACKEND must agree', () => {
    const e = error(() => load({ RUSTFS_KMS_TYPE: 'azure', RUSTFS_KMS_BACKEND: 'vault' }));
    expect(e.field).toBe('RUSTFS_KMS_BACKEND');
  });

  it('bad values name the variable', () => {
    expect(error(() => load({ RUSTFS_KMS_AZURE_VAULT_URL: 'http://v.vault.azure.net' })).field).toBe('RUSTFS_KMS_AZURE_VAULT_URL');
    const e = error(() => load({ RUSTFS_KMS_AZURE_KEY_NAME: 'no_underscores' }));
    expect(e.field).toBe('RUSTFS_KMS_AZURE_KEY_NAME');
    expect(e.message).toMatch(/1 to 127 letters, digits and dashes/);
  });
});
