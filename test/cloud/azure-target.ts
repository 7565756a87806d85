// Where the Azure tests run: the test server (test/azure-keyvault-server/, NOT Azure) by default, or
// a real Key Vault when KMS_TEST_CLOUD=real and KMS_TEST_AZURE_VAULT_URL are set (with
// KMS_TEST_AZURE_KEY_NAME and AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET of an app that
// holds "Key Vault Crypto Service Encryption User" on that key). Real daemons either way.
import { cacheAndDeadlineYaml, startCloudDaemon, type CloudDaemon } from './cloud-daemon.js';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestAzure } from '../azure-keyvault-server/server.js';
import { makeTestPki } from '../azure-keyvault-server/tls.js';
import { makeTempDir } from '../helpers/daemon.js';

export const REAL_AZURE = process.env.KMS_TEST_CLOUD === 'real' && (process.env.KMS_TEST_AZURE_VAULT_URL ?? '') !== '';
export const NEEDS_TEST_SERVER = 'needs the test server\'s fault switches and call counts; skipped against real Azure';

export interface AzureTarget {
  vaultUrl: string;
  keyName: string;
  tenantId: string;
  clientId: string;
  secretFile: string;
  /** The test CA (undefined against real Azure: system CAs). */
  caFile?: string;
  /** The fake authority (undefined against real Azure). */
  authorityHost?: string;
  /** Only for the test server. */
  server?: TestAzure;
  close(): Promise<void>;
}

const q = (s: string) => JSON.stringify(s);

export function secretFile(dir: string, name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

export async function openAzureTarget(kty: 'RSA' | 'oct-HSM' = 'RSA'): Promise<AzureTarget> {
  const dir = makeTempDir('kms-azure-');
  if (REAL_AZURE) {
    const env = process.env;
    return {
      vaultUrl: env.KMS_TEST_AZURE_VAULT_URL as string,
      keyName: env.KMS_TEST_AZURE_KEY_NAME ?? 'rustfs-kms-test',
      tenantId: env.AZURE_TENANT_ID ?? '',
      clientId: env.AZURE_CLIENT_ID ?? '',
      secretFile: secretFile(dir, 'client-secret', env.AZURE_CLIENT_SECRET ?? ''),
      close: async () => undefined,
    };
  }
  const pki = makeTestPki(dir);
  const creds = { tenant: 'a1b2c3d4-0000-4000-8000-00000000feed', clientId: 'c1d2e3f4-0000-4000-8000-00000000beef', clientSecret: 'test-secret-not-azure', federatedToken: 'federated.jwt.token' };
  const server = await new TestAzure(pki, creds).start();
  server.createKey('rustfs-kms', kty);
  return {
    vaultUrl: server.url,
    keyName: 'rustfs-kms',
    tenantId: creds.tenant,
    clientId: creds.clientId,
    secretFile: secretFile(dir, 'client-secret', `${creds.clientSecret}\n`),
    caFile: pki.caFile,
    authorityHost: server.url,
    server,
    close: () => server.close(),
  };
}

export interface AzureDaemonOptions {
  idleTtlS?: number;
  offlineTtlS?: number;
  timeoutSecs?: number;
  retryAttempts?: number;
  /** Replaces the auth block (YAML lines under `auth:`). */
  authLines?: string[];
  env?: Record<string, string | undefined>;
  dir?: string;
  keyVersion?: string;
}

export function azureYaml(t: AzureTarget, o: AzureDaemonOptions = {}): string {
  const auth = o.authLines ?? [
    '      method: client-secret',
    `      tenant_id: ${q(t.tenantId)}`,
    `      client_id: ${q(t.clientId)}`,
    `      client_secret_file: ${q(t.secretFile)}`,
    ...(t.authorityHost !== undefined ? [`      authority_host: ${q(t.authorityHost)}`] : []),
  ];
  return [
    'root:',
    '  type: azure-keyvault',
    '  azure_keyvault:',
    `    vault_url: ${q(t.vaultUrl)}`,
    `    key_name: ${q(t.keyName)}`,
    ...(o.keyVersion !== undefined ? [`    key_version: ${q(o.keyVersion)}`] : []),
    ...(t.caFile !== undefined ? [`    ca_file: ${q(t.caFile)}`] : []),
    '    auth:',
    ...auth,
    ...cacheAndDeadlineYaml(o),
  ].join('\n');
}


export type AzureDaemon = CloudDaemon;

export function startAzureDaemon(t: AzureTarget, o: AzureDaemonOptions = {}): Promise<AzureDaemon> {
  return startCloudDaemon('kms-azure-d-', { ...(o.dir !== undefined ? { dir: o.dir } : {}), config: azureYaml(t, o), env: o.env ?? {} });
}
