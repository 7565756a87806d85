// The in-process library API (the RustFS KMS crate's surface, in TypeScript).
export { KmsConfig, type BackendKind, type CommonKmsOptions, type LocalKmsOptions, type VaultKmsOptions, type FromEnvOptions } from './config.js';
export { KmsManager, type KmsManagerOptions } from './manager.js';
export { OperationContext, isOperationContext } from './context.js';
export { GenerateKeyRequest, EncryptRequest, DecryptRequest, ListKeysRequest, type KeySpec, type DataKeyRequestOptions } from '../ops/requests.js';
export { initGlobalKms, getGlobalKms, isKmsHealthy, shutdownGlobalKms } from './global.js';
export type { KmsApi } from './api.js';
