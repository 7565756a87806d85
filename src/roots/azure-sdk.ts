// Loading the Azure SDK (optional peer dependencies, imported only when root.type is azure-keyvault)
// and building the credential and client options the config asks for.
import { readFileSync } from 'node:fs';
import type { TokenCredential } from '@azure/identity';
import type { AzureKeyVaultConfig } from '../config/sections/root-azure-keyvault.js';
import { assertPrivatePath } from '../permissions.js';

export type KeysSdk = typeof import('@azure/keyvault-keys');
export type IdentitySdk = typeof import('@azure/identity');

export const AZURE_PACKAGES = '@azure/keyvault-keys @azure/identity';

/** Both SDKs, or an error naming the packages to install. */
export async function loadAzureSdk(): Promise<{ keys: KeysSdk; identity: IdentitySdk }> {
  try {
    const [keys, identity] = await Promise.all([import('@azure/keyvault-keys'), import('@azure/identity')]);
    return { keys, identity };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`root.type azure-keyvault needs the Azure SDK, which is not installed: run "npm install ${AZURE_PACKAGES}" ` +
        `in the rustfs-kms installation (optional peer dependencies) (${(err as Error).message})`);
    }
    throw err;
  }
}

/** Pipeline options shared by the credential and the Key Vault clients. */
export interface AzurePipelineOptions {
  /** CloudRoot retries within its deadline; the SDK's own retries would hide throttling from it. */
  retryOptions: { maxRetries: number };
  tlsOptions?: { ca: string };
}

export function pipelineOptions(config: AzureKeyVaultConfig): AzurePipelineOptions {
  return {
    retryOptions: { maxRetries: 0 },
    ...(config.caFile !== undefined ? { tlsOptions: { ca: readFileSync(config.caFile, 'utf8') } } : {}),
  };
}

/** The SDK's variables for workload identity (the AKS webhook sets them). */
const WORKLOAD_ENV = ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_FEDERATED_TOKEN_FILE'] as const;

export function azureCredential(identity: IdentitySdk, config: AzureKeyVaultConfig, env: NodeJS.ProcessEnv): TokenCredential {
  const pipeline = pipelineOptions(config);
  const auth = config.auth;
  // A named authority (sovereign cloud, test server) is used as given: MSAL's instance discovery
  // would ask login.microsoftonline.com about it.
  const authority = (host: string | undefined) => {
    const h = host ?? (env.AZURE_AUTHORITY_HOST !== '' ? env.AZURE_AUTHORITY_HOST : undefined);
    return h !== undefined ? { authorityHost: h, disableInstanceDiscovery: true } : {};
  };
  switch (auth.method) {
    case 'client-secret': {
      assertPrivatePath(auth.clientSecretFile, 'root.azure_keyvault.auth.client_secret_file');
      const secret = readFileSync(auth.clientSecretFile, 'utf8').replace(/\r?\n$/, '');
      if (secret === '') throw new Error(`root.azure_keyvault.auth.client_secret_file ${auth.clientSecretFile} is empty; expected the client secret`);
      return new identity.ClientSecretCredential(auth.tenantId, auth.clientId, secret, { ...pipeline, ...authority(auth.authorityHost) });
    }
    case 'workload-identity': {
      const missing = WORKLOAD_ENV.filter((name) => env[name] === undefined || env[name] === '');
      if (missing.length > 0) {
        throw new Error(`root.azure_keyvault.auth method workload-identity needs ${WORKLOAD_ENV.join(', ')} in the environment ` +
          `(the AKS workload identity webhook sets them); missing: ${missing.join(', ')}`);
      }
      return new identity.WorkloadIdentityCredential({
        tenantId: env.AZURE_TENANT_ID as string,
        clientId: env.AZURE_CLIENT_ID as string,
        tokenFilePath: env.AZURE_FEDERATED_TOKEN_FILE as string,
        ...pipeline,
        ...authority(auth.authorityHost),
      });
    }
    case 'managed-identity':
      return auth.clientId !== undefined
        ? new identity.ManagedIdentityCredential({ clientId: auth.clientId, ...pipeline })
        : new identity.ManagedIdentityCredential({ ...pipeline });
  }
}

/** Key Vault's own DNS suffixes; the SDK checks a challenge's resource against them. */
const KEY_VAULT_SUFFIXES = ['.vault.azure.net', '.vault.azure.cn', '.vault.usgovcloudapi.net', '.vault.microsoftazure.de', '.managedhsm.azure.net'];

/**
 * The SDK verifies that the resource in Key Vault's 401 challenge is a suffix of the vault's host. A
 * vault under another name (Azure Stack, the test server) cannot pass that; there the check is off:
 * the token still goes only to the configured vault_url, over verified TLS.
 */
export function challengeVerification(vaultUrl: string): { disableChallengeResourceVerification: boolean } {
  const host = new URL(vaultUrl).hostname.toLowerCase();
  return { disableChallengeResourceVerification: !KEY_VAULT_SUFFIXES.some((s) => host.endsWith(s)) };
}
