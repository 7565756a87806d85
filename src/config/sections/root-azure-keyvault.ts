// root.azure_keyvault: an Azure Key Vault key (RSA or oct-HSM) wraps key material. Secrets never go
// in the file: the client secret is read from client_secret_file; workload and managed identities
// take their settings from the environment the Azure SDK defines (AZURE_*).
import type { Static } from '@sinclair/typebox';
import { quoteList, type FieldErrors } from '../errors.js';
import { oneOf, optional, section, str } from '../field.js';
import type { RefineContext } from '../field.js';
import { pathField } from './common.js';

export const AZURE_AUTH_METHODS = ['client-secret', 'workload-identity', 'managed-identity'] as const;
export type AzureAuthMethod = (typeof AZURE_AUTH_METHODS)[number];
const F = 'root.azure_keyvault';
/** Key Vault object names: 1–127 letters, digits and dashes. */
export const AZURE_KEY_NAME_PATTERN = /^[0-9A-Za-z-]{1,127}$/;
/** A key version as Key Vault prints it: 32 hex digits. */
export const AZURE_KEY_VERSION_PATTERN = /^[0-9a-fA-F]{32}$/;
/** Tenant and client ids are GUIDs (a tenant may also be given by its domain name). */
const AZURE_ID_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.-]{0,252}$/;
const HTTPS_URL = 'an https URL like "https://my-vault.vault.azure.net"';

/** An https origin without credentials, path, query or fragment (Key Vault and AAD refuse http). */
export function azureHttpsUrl(v: string, ctx: RefineContext): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    ctx.errors.fail(ctx.field, HTTPS_URL, v);
  }
  if (url.username !== '' || url.password !== '') {
    ctx.errors.failDetail(ctx.field, HTTPS_URL, `expected ${HTTPS_URL} without user:password (credentials belong in ${F}.auth)`);
  }
  if (url.protocol !== 'https:' || url.hostname === '') ctx.errors.fail(ctx.field, `${HTTPS_URL} (https only: the Azure SDK sends no token over http)`, v);
  if (url.search !== '' || url.hash !== '' || url.pathname.replace(/\/+$/, '') !== '') {
    ctx.errors.fail(ctx.field, `${HTTPS_URL} without a path, query or fragment`, v);
  }
  return `https://${url.host}`;
}
azureHttpsUrl.expected = HTTPS_URL;

export const AzureAuthSection = section(
  {
    method: oneOf(AZURE_AUTH_METHODS, {
      description: 'How the daemon gets an Entra ID token. Each method allows only its own keys.',
      missing: { expected: `one of ${AZURE_AUTH_METHODS.join(', ')}` },
    }),
    tenant_id: optional(str({ pattern: AZURE_ID_PATTERN, expected: 'a tenant id (GUID) or domain', description: 'method `client-secret` (required): the Entra ID tenant.' })),
    client_id: optional(str({
      pattern: AZURE_ID_PATTERN,
      expected: 'a client (application) id (GUID)',
      description: 'method `client-secret` (required): the application id. Method `managed-identity`: a user-assigned identity (default: the system-assigned one).',
    })),
    client_secret_file: optional(pathField({
      description: 'method `client-secret` (required): file (mode 0600, owned by the daemon user) that holds the client secret.',
    })),
    authority_host: optional(str({
      expected: 'an https URL like "https://login.microsoftonline.us"',
      refine: azureHttpsUrl,
      docType: 'URL',
      docDefault: '`AZURE_AUTHORITY_HOST`, else `https://login.microsoftonline.com`',
      description: 'methods `client-secret` and `workload-identity`: the Entra ID authority (sovereign clouds). Setting it turns off MSAL instance discovery.',
    })),
  },
  {
    description:
      'How the daemon authenticates to Key Vault. `workload-identity` reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE` as the Azure SDK defines them.',
    hints: { client_secret: 'client_secret_file (no secrets in the config file)' },
  },
);

export const RootAzureKeyVaultSection = section(
  {
    vault_url: optional(str({
      expected: HTTPS_URL,
      refine: azureHttpsUrl,
      docType: 'URL',
      docDefault: '**required** when `root.type` is `azure-keyvault`',
      description: 'The vault, e.g. `https://my-vault.vault.azure.net` (`RUSTFS_KMS_AZURE_VAULT_URL`). https only.',
    })),
    key_name: optional(str({
      pattern: AZURE_KEY_NAME_PATTERN,
      expected: 'a Key Vault key name of 1 to 127 letters, digits and dashes',
      docDefault: '**required** when `root.type` is `azure-keyvault`',
      description: 'The key that wraps key material (`RUSTFS_KMS_AZURE_KEY_NAME`): RSA / RSA-HSM (RSA-OAEP-256) or oct-HSM (A256KW).',
    })),
    key_version: optional(str({
      pattern: AZURE_KEY_VERSION_PATTERN,
      expected: 'a Key Vault key version of 32 hex digits',
      docDefault: 'the current version',
      description: 'Pins the version new master-key versions are wrapped with. Every stored record names the version that wrapped it and unwraps with that one.',
    })),
    ca_file: optional(pathField({
      description: 'CA bundle that replaces the system CAs for Key Vault and Entra ID (private endpoints behind a TLS-inspecting proxy, tests). Verification is never turned off.',
      docDefault: 'system CAs',
    })),
    auth: optional(AzureAuthSection),
  },
  { description: 'Required, with `vault_url`, `key_name` and `auth`, when `root.type` is `azure-keyvault`.' },
);

export type AzureAuth =
  | { method: 'client-secret'; tenantId: string; clientId: string; clientSecretFile: string; authorityHost?: string }
  | { method: 'workload-identity'; authorityHost?: string }
  | { method: 'managed-identity'; clientId?: string };

export interface AzureKeyVaultConfig {
  /** https origin, no trailing slash. */
  vaultUrl: string;
  keyName: string;
  keyVersion?: string;
  caFile?: string;
  auth: AzureAuth;
}

export interface AzureKeyVaultLayer {
  vaultUrl?: string;
  keyName?: string;
  keyVersion?: string;
  caFile?: string;
  auth?: AzureAuth;
}

const AUTH_KEYS: Readonly<Record<AzureAuthMethod, readonly string[]>> = {
  'client-secret': ['method', 'tenant_id', 'client_id', 'client_secret_file', 'authority_host'],
  'workload-identity': ['method', 'authority_host'],
  'managed-identity': ['method', 'client_id'],
};

function readAzureAuth(a: Static<typeof AzureAuthSection>, r: FieldErrors): AzureAuth {
  const allowed = AUTH_KEYS[a.method];
  for (const key of Object.keys(a)) {
    if (!allowed.includes(key)) {
      const list = quoteList(allowed);
      r.failDetail(`${F}.auth.${key}`, `one of ${list}`, `not used by method ${a.method}; expected one of ${list}`);
    }
  }
  const authority = a.authority_host !== undefined ? { authorityHost: a.authority_host } : {};
  switch (a.method) {
    case 'client-secret': {
      const when = 'for method client-secret';
      if (a.tenant_id === undefined) r.missing(`${F}.auth.tenant_id`, 'the Entra ID tenant id', when);
      if (a.client_id === undefined) r.missing(`${F}.auth.client_id`, 'the application (client) id', when);
      if (a.client_secret_file === undefined) r.missing(`${F}.auth.client_secret_file`, 'the path of the file holding the client secret', when);
      return { method: 'client-secret', tenantId: a.tenant_id, clientId: a.client_id, clientSecretFile: a.client_secret_file, ...authority };
    }
    case 'workload-identity':
      return { method: 'workload-identity', ...authority };
    case 'managed-identity':
      return a.client_id !== undefined ? { method: 'managed-identity', clientId: a.client_id } : { method: 'managed-identity' };
  }
}

export function readRootAzureKeyVault(s: Static<typeof RootAzureKeyVaultSection>, r: FieldErrors): AzureKeyVaultLayer {
  const out: AzureKeyVaultLayer = {};
  if (s.vault_url !== undefined) out.vaultUrl = s.vault_url;
  if (s.key_name !== undefined) out.keyName = s.key_name;
  if (s.key_version !== undefined) out.keyVersion = s.key_version;
  if (s.ca_file !== undefined) out.caFile = s.ca_file;
  if (s.auth !== undefined) out.auth = readAzureAuth(s.auth, r);
  return out;
}
