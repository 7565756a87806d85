// Opening the root of trust and the keystore a configuration names, one way for the daemon and the
// in-process manager alike. Backends other than the local root and the file keystore are imported
// only when configured: most hosts never load them.
import { join } from 'node:path';
import type { DaemonConfig } from '../config/index.js';
import { FileKeystore } from '../keystore/file.js';
import type { Keystore } from '../keystore/types.js';
import type { Logger } from '../logging.js';
import { LocalRoot } from '../roots/local.js';
import type { RootOfTrust } from '../roots/types.js';

/** A backend that did not open; `section` names the config section it came from ("root.vault", …). */
export class BackendOpenError extends Error {
  constructor(readonly section: string, override readonly cause: unknown) {
    super(`${section}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'BackendOpenError';
  }
}

export interface OpenBackendOptions {
  /** Create a missing local root key (dev mode, an in-process manager asked to create). */
  create: boolean;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

async function attemptAsync<T>(section: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    throw new BackendOpenError(section, err);
  }
}

export async function openRoot(config: DaemonConfig, options: OpenBackendOptions): Promise<RootOfTrust> {
  const env = options.env ?? process.env;
  switch (config.root.type) {
    case 'local':
      // The local root's refusals already name the file and the fix.
      return LocalRoot.open({
        keyFile: config.root.local.keyFile,
        ...(config.root.local.passphraseEnv !== undefined ? { passphraseEnv: config.root.local.passphraseEnv } : {}),
        saltFile: join(config.stateDir, 'root.salt'),
        create: options.create,
        env,
      });
    case 'vault-transit':
      return attemptAsync('root.vault', async () => {
        const { openVaultTransitRoot } = await import('./vault-wiring.js');
        return openVaultTransitRoot(config, options.logger);
      });
    case 'pkcs11': {
      const p11 = config.root.pkcs11;
      if (p11 === undefined) throw new BackendOpenError('root.pkcs11', 'root.type is pkcs11 but the root.pkcs11 section is missing');
      // Test hook: a tiny seal budget per on-token version, so a test sees automatic rotation.
      const sealLimit = Number(env.RUSTFS_KMS_TEST_PKCS11_SEAL_LIMIT ?? '');
      return attemptAsync('root.pkcs11', async () => {
        const { Pkcs11Root } = await import('../roots/pkcs11.js');
        return Pkcs11Root.open({
          ...p11, // the config's section is the root's options
          env,
          stateDir: config.stateDir,
          logger: options.logger,
          ...(Number.isSafeInteger(sealLimit) && sealLimit > 0 ? { sealLimit } : {}),
        });
      });
    }
    case 'aws-kms':
    case 'gcp-kms':
    case 'azure-keyvault': {
      const section = `root.${config.root.type.replace('-', '_')}`;
      return attemptAsync(section, async () => {
        const { openCloudRoot } = await import('./cloud-roots.js');
        return openCloudRoot(config, { logger: options.logger, env });
      });
    }
    default:
      throw new BackendOpenError('root.type', `${String(config.root.type)} is not available in this build`);
  }
}

export async function openKeystore(config: DaemonConfig, options: OpenBackendOptions): Promise<Keystore> {
  switch (config.keystore.type) {
    case 'file':
      return new FileKeystore(config.stateDir);
    case 'vault-kv':
      return attemptAsync('keystore (vault-kv)', async () => {
        const { openVaultKvKeystore } = await import('./vault-wiring.js');
        return openVaultKvKeystore(config, options.logger);
      });
    default:
      throw new BackendOpenError('keystore.type', `${String(config.keystore.type)} is not available in this build`);
  }
}

/** Where the keys live, for `status` and error messages: the Vault address, the PKCS#11 module, or the state directory. */
export function backendEndpoint(config: DaemonConfig): string {
  if ((config.root.type === 'vault-transit' || config.keystore.type === 'vault-kv') && config.root.vault !== undefined) return config.root.vault.address;
  if (config.root.type === 'pkcs11' && config.root.pkcs11 !== undefined) return config.root.pkcs11.module;
  if (config.root.type === 'gcp-kms' && config.root.gcpKms !== undefined) return config.root.gcpKms.endpoint ?? 'https://cloudkms.googleapis.com';
  if (config.root.type === 'azure-keyvault' && config.root.azureKeyvault !== undefined) return config.root.azureKeyvault.vaultUrl;
  if (config.root.type === 'aws-kms' && config.root.awsKms !== undefined) {
    const { endpoint, region } = config.root.awsKms;
    return endpoint ?? (region !== undefined ? `https://kms.${region}.amazonaws.com` : 'AWS KMS (the SDK\'s default region)');
  }
  return config.stateDir;
}
