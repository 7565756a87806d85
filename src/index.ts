// rustfs-kms public API: the socket client (KmsClient), the in-process library (KmsManager and
// friends), the error type, and the protocol's types.
export {
  KmsClient, keyInfoFromWire,
  type KmsClientOptions, type ReconnectOptions, type CallOptions, type KeyInfo, type HealthResult, type StatusResult,
  type BackendInfo, type CreateKeyOptions, type ListKeysOptions, type ListKeysResult, type ContextOptions,
  type GenerateDataKeyOptions, type GenerateDataKeyBatchOptions, type ReEncryptOptions, type EncryptResult,
  type DecryptResult, type DataKey, type DataKeyBatch,
} from './rpc/client.js';
export { KmsError, ERROR_CODES, isErrorCode, isKmsError, type ErrorCode } from './errors.js';
export {
  OPERATIONS, KEY_ID_PATTERN, isValidKeyId,
  type OpName, type OpArgs, type OpResult, type EncryptionContext, type KeyState, type KeyAlgorithm, type KeyOrigin,
  type WireContext, type WireKeyInfo,
} from './ops/protocol.js';
export {
  KmsConfig, KmsManager, OperationContext, isOperationContext,
  GenerateKeyRequest, EncryptRequest, DecryptRequest, ListKeysRequest,
  initGlobalKms, getGlobalKms, isKmsHealthy, shutdownGlobalKms,
  type KmsApi, type KmsManagerOptions, type BackendKind, type CommonKmsOptions, type LocalKmsOptions, type VaultKmsOptions,
  type FromEnvOptions, type KeySpec, type DataKeyRequestOptions,
} from './library/index.js';
export { ConfigError } from './config/index.js';
