// Opening the root of trust and the keystore for an in-process manager, the way the daemon opens
// them: the local root and file keystore directly, Vault Transit and Vault KV through the same
// wiring as the daemon (src/vault/wiring.ts: one Vault client, one login, shared by both). A PKCS#11
// root is the daemon's business (token sessions, PIN handling); in-process it is used only if the
// daemon module exports its `openRoot`, else the manager says to use the daemon.
import { join } from 'node:path';
import * as daemonModule from '../daemon/daemon.js';
import type { DaemonConfig } from '../config/index.js';
import { KmsError } from '../errors.js';
import { FileKeystore } from '../keystore/file.js';
import type { Keystore } from '../keystore/types.js';
import { LocalRoot } from '../roots/local.js';
import type { RootOfTrust } from '../roots/types.js';
import { openVaultKvKeystore, openVaultTransitRoot } from '../vault/wiring.js';

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Where the backend is, for error messages (never a credential: addresses carry none, see config). */
export function backendName(config: DaemonConfig): string {
  if (config.root.type === 'vault-transit' || config.keystore.type === 'vault-kv') return `vault at ${config.root.vault?.address ?? '(no address)'}`;
  if (config.root.type === 'pkcs11') return `pkcs11 module ${config.root.pkcs11?.module ?? '(none)'}`;
  return `local state ${config.stateDir}`;
}

/** A failure while opening or loading a remote backend, as a KmsError that names the backend. */
export function backendError(config: DaemonConfig, err: unknown): KmsError {
  const code = err instanceof KmsError ? err.code : 'BackendUnavailable';
  return new KmsError(code, `${backendName(config)}: ${errorText(err)}`);
}

export async function openRoot(config: DaemonConfig, create: boolean): Promise<RootOfTrust> {
  switch (config.root.type) {
    case 'local':
      return LocalRoot.open({
        keyFile: config.root.local.keyFile,
        ...(config.root.local.passphraseEnv !== undefined ? { passphraseEnv: config.root.local.passphraseEnv } : {}),
        saltFile: join(config.stateDir, 'root.salt'),
        create,
        env: process.env,
      });
    case 'vault-transit':
      try {
        return openVaultTransitRoot(config);
      } catch (err) {
        throw backendError(config, err);
      }
    default: {
      const fromDaemon = (daemonModule as unknown as Record<string, unknown>).openRoot;
      if (typeof fromDaemon !== 'function') {
        throw new KmsError('BackendUnavailable',
          `the ${config.root.type} root is not available in-process; run rustfs-kmsd with it and use KmsClient`);
      }
      try {
        return await (fromDaemon as (c: DaemonConfig) => RootOfTrust | Promise<RootOfTrust>)(config);
      } catch (err) {
        throw backendError(config, err);
      }
    }
  }
}

export function openKeystore(config: DaemonConfig): Keystore {
  if (config.keystore.type === 'file') return new FileKeystore(config.stateDir);
  try {
    return openVaultKvKeystore(config);
  } catch (err) {
    throw backendError(config, err);
  }
}
