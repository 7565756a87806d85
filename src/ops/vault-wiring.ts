// From the daemon's configuration to a Vault Transit root and a Vault KV keystore that share one
// Vault client (one login, one token, one connection pool).
import { VaultTransitRoot } from '../roots/vault-transit.js';
import { VaultKvKeystore } from '../keystore/vault-kv.js';
import { acquireVaultClient, type VaultAuthOptions, type VaultClientOptions, type VaultLogger } from '../vault/client.js';
import type { TransportTls } from '../vault/transport.js';

/** The parts of DaemonConfig that the Vault backends read (DaemonConfig satisfies it). */
export interface VaultWiringConfig {
  root: {
    vault?: {
      address: string;
      namespace: string;
      transitMount: string;
      transitKey: string;
      kvMount: string;
      auth: VaultAuthOptions;
      tls: TransportTls;
    };
  };
  keystore: { kvMount: string; prefix: string; syncIntervalS: number };
  timeoutSecs: number;
  retryAttempts: number;
}

export function clientOptions(config: VaultWiringConfig, logger: VaultLogger | undefined): VaultClientOptions {
  const vault = config.root.vault;
  if (vault === undefined) throw new Error('root.vault is not configured (address and auth are required for Vault)');
  return {
    address: vault.address,
    namespace: vault.namespace,
    auth: vault.auth,
    tls: vault.tls,
    timeoutMs: config.timeoutSecs * 1000,
    retryAttempts: config.retryAttempts,
    ...(logger !== undefined ? { logger } : {}),
  };
}

export function openVaultTransitRoot(config: VaultWiringConfig, logger?: VaultLogger): VaultTransitRoot {
  const handle = acquireVaultClient(clientOptions(config, logger));
  const vault = config.root.vault as NonNullable<VaultWiringConfig['root']['vault']>;
  return new VaultTransitRoot({ client: handle.client, release: () => handle.release(), mount: vault.transitMount, key: vault.transitKey });
}

export function openVaultKvKeystore(config: VaultWiringConfig, logger?: VaultLogger): VaultKvKeystore {
  const handle = acquireVaultClient(clientOptions(config, logger));
  return new VaultKvKeystore({
    client: handle.client,
    release: () => handle.release(),
    mount: config.keystore.kvMount,
    prefix: config.keystore.prefix,
    syncIntervalMs: config.keystore.syncIntervalS * 1000,
    ...(logger !== undefined ? { logger } : {}),
  });
}
