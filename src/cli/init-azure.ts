// init for root.type azure-keyvault: the key must exist, be enabled and of a type that wraps, and
// wrap and unwrap a probe of 48 random bytes (the size the daemon wraps: binding tag + key) with the
// daemon's own credential. What is missing is said precisely: the permission, the role, the key.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { DaemonConfig } from '../config/index.js';
import type { AzureKeyVaultConfig } from '../config/sections/root-azure-keyvault.js';
import { openAzureKeyVault, type AzureKeyVaultService } from '../roots/azure-keyvault.js';
import type { InitStep } from './init.js';
import { CliError } from './locate.js';

const PROBE_AAD = Buffer.from('rustfs-kms/v1/init-probe');
const PROBE_BYTES = 48;
const ROLE = 'Key Vault Crypto Service Encryption User';

type Operation = 'get' | 'wrapKey' | 'unwrapKey';

export async function initAzureKeyVault(config: DaemonConfig): Promise<InitStep> {
  const az = config.root.azureKeyvault;
  if (az === undefined) throw new CliError('InitFailed', 'root.type is azure-keyvault but root.azure_keyvault is not configured');
  const where = `key ${az.keyName} in ${az.vaultUrl}`;
  let service: AzureKeyVaultService;
  try {
    service = await openAzureKeyVault(az, process.env);
  } catch (err) {
    throw new CliError('InitFailed', `${where}: ${(err as Error).message}`);
  }
  const timeoutMs = config.timeoutSecs * 1000;
  try {
    const key = await step(service, az, 'get', () => service.key(AbortSignal.timeout(timeoutMs)));
    const probe = randomBytes(PROBE_BYTES);
    const wrapped = await step(service, az, 'wrapKey', () => service.wrap(probe, PROBE_AAD, AbortSignal.timeout(timeoutMs)));
    const back = await step(service, az, 'unwrapKey', () => service.unwrap(wrapped, PROBE_AAD, AbortSignal.timeout(timeoutMs)));
    if (back.length !== PROBE_BYTES || !timingSafeEqual(Buffer.from(back), probe)) {
      throw new CliError('InitFailed', `${where} unwrapped something other than it wrapped`);
    }
    return {
      what: 'Azure Key Vault key', path: `${az.keyName} in ${az.vaultUrl}`, action: 'checked',
      detail: `exists (${String(key.key.keyType)}, version ${key.version}, enabled); wraps and unwraps with ${key.algorithm} using the configured credential (${az.auth.method})`,
    };
  } finally {
    await service.close();
  }
}

async function step<T>(service: AzureKeyVaultService, az: AzureKeyVaultConfig, op: Operation, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw new CliError('InitFailed', explain(service, az, op, err));
  }
}

/** One sentence naming what is missing, with the command that fixes it where there is one. */
function explain(service: AzureKeyVaultService, az: AzureKeyVaultConfig, op: Operation, err: unknown): string {
  const f = service.classify(err);
  const vault = new URL(az.vaultUrl).hostname.split('.')[0] ?? az.vaultUrl;
  const where = `key ${az.keyName} in ${az.vaultUrl}`;
  const said = `${f.code}: ${f.message}`;
  if (/^Forbidden\b|HTTP 403/.test(f.code)) {
    return `${where}: Key Vault refused ${op} (${said}). The daemon's identity needs the keys/${op} permission ` +
      `(access policy: az keyvault set-policy --name ${vault} --spn <client-id> --key-permissions get wrapKey unwrapKey) ` +
      `or the RBAC role "${ROLE}" on the key (az role assignment create --role "${ROLE}" --assignee <client-id> --scope <vault resource id>/keys/${az.keyName})`;
  }
  if (/^KeyNotFound\b|HTTP 404/.test(f.code)) {
    return `${where}: not found (${said}). Check root.azure_keyvault.key_name and vault_url${az.keyVersion !== undefined ? ' and key_version' : ''}, ` +
      `or create it: az keyvault key create --vault-name ${vault} --name ${az.keyName} --kty RSA --size 3072 --ops wrapKey unwrapKey`;
  }
  if (f.code === 'KeyDisabled') return `${where}: ${f.message}`;
  if (f.code === 'UnsupportedKeyType') return `${where}: ${f.message}`;
  if (f.code.startsWith('AuthenticationError') || f.code === 'CredentialUnavailable') {
    return `${where}: the credential (${az.auth.method}) got no token: ${said}`;
  }
  return `${where}: ${op} failed: ${said}`;
}
