// One process-wide manager, after the RustFS KMS crate's `init_global_kms` / `get_global_kms` /
// `is_kms_healthy`: storage code asks for "the" KMS without passing a handle around.
import { KmsError } from '../errors.js';
import type { KmsConfig } from './config.js';
import { KmsManager, type KmsManagerOptions } from './manager.js';

let globalKms: KmsManager | undefined;

/**
 * Makes `config` (or an already created manager) the process-wide KMS and returns it. Fails with
 * InvalidRequest when one is already set: call shutdownGlobalKms() first to replace it.
 */
export async function initGlobalKms(config: KmsConfig | KmsManager, options?: KmsManagerOptions): Promise<KmsManager> {
  if (globalKms !== undefined) {
    throw new KmsError('InvalidRequest', 'the global KMS is already initialised; call shutdownGlobalKms() first to replace it');
  }
  const manager = config instanceof KmsManager ? config : await KmsManager.create(config, options);
  if (globalKms !== undefined) {
    // Another initGlobalKms finished while this one was opening.
    if (!(config instanceof KmsManager)) await manager.close();
    throw new KmsError('InvalidRequest', 'the global KMS is already initialised; call shutdownGlobalKms() first to replace it');
  }
  globalKms = manager;
  return manager;
}

/** The process-wide KMS, or undefined before initGlobalKms. */
export function getGlobalKms(): KmsManager | undefined {
  return globalKms;
}

/** True when a global KMS is set and its root and keystore answer their health checks. */
export async function isKmsHealthy(): Promise<boolean> {
  const kms = globalKms;
  if (kms === undefined) return false;
  try {
    return (await kms.healthCheck()).healthy;
  } catch {
    return false;
  }
}

/** Closes and forgets the global KMS (no-op when none is set). */
export async function shutdownGlobalKms(): Promise<void> {
  const kms = globalKms;
  globalKms = undefined;
  await kms?.close();
}
