// What KmsManager (in-process) and KmsClient (over the socket) have in common: code written against
// KmsApi runs on either. Both classes satisfy it structurally (checked in test/library).
import type {
  BackendInfo, CallOptions, ContextOptions, CreateKeyOptions, DataKey, DataKeyBatch, DecryptResult, EncryptResult,
  GenerateDataKeyBatchOptions, GenerateDataKeyOptions, HealthResult, KeyInfo, ListKeysOptions, ListKeysResult,
  ReEncryptOptions, StatusResult,
} from '../rpc/client.js';
import type { DecryptRequest, EncryptRequest, GenerateKeyRequest } from '../ops/requests.js';

export interface KmsApi {
  health(options?: CallOptions): Promise<HealthResult>;
  healthCheck(options?: CallOptions): Promise<HealthResult>;
  status(options?: CallOptions): Promise<StatusResult>;
  backendInfo(options?: CallOptions): Promise<BackendInfo>;
  createKey(keyId: string, opts?: CreateKeyOptions, options?: CallOptions): Promise<KeyInfo>;
  describeKey(keyId: string, options?: CallOptions): Promise<KeyInfo>;
  listKeys(opts?: ListKeysOptions, options?: CallOptions): Promise<ListKeysResult>;
  enableKey(keyId: string, options?: CallOptions): Promise<KeyInfo>;
  disableKey(keyId: string, options?: CallOptions): Promise<KeyInfo>;
  rotateKey(keyId: string, options?: CallOptions): Promise<KeyInfo>;
  scheduleKeyDeletion(keyId: string, pendingDays: number, options?: CallOptions): Promise<KeyInfo>;
  cancelKeyDeletion(keyId: string, options?: CallOptions): Promise<KeyInfo>;
  updateKeyDescription(keyId: string, description: string, options?: CallOptions): Promise<KeyInfo>;
  tagKey(keyId: string, tags: Record<string, string>, options?: CallOptions): Promise<KeyInfo>;
  untagKey(keyId: string, tagKeys: readonly string[], options?: CallOptions): Promise<KeyInfo>;
  encrypt(keyId: string, plaintext: Uint8Array, opts?: ContextOptions, options?: CallOptions): Promise<EncryptResult>;
  encrypt(request: EncryptRequest, options?: CallOptions): Promise<EncryptResult>;
  decrypt(ciphertext: Uint8Array, opts?: ContextOptions, options?: CallOptions): Promise<DecryptResult>;
  decrypt(request: DecryptRequest, options?: CallOptions): Promise<DecryptResult>;
  generateDataKey(keyId: string, opts?: GenerateDataKeyOptions, options?: CallOptions): Promise<DataKey>;
  generateDataKey(request: GenerateKeyRequest, options?: CallOptions): Promise<DataKey>;
  generateDataKeyBatch(keyId: string, count: number, opts?: GenerateDataKeyBatchOptions, options?: CallOptions): Promise<DataKeyBatch>;
  reEncrypt(ciphertext: Uint8Array, opts?: ReEncryptOptions, options?: CallOptions): Promise<EncryptResult>;
  close(): Promise<void>;
}
