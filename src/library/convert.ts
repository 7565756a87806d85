// The pipeline answers in wire shapes (snake_case, docs/protocol.md §7); the library answers in the
// same camelCase shapes as KmsClient, so code moves between the two unchanged.
import {
  keyInfoFromWire,
  type DataKey, type DataKeyBatch, type DecryptResult, type EncryptResult, type HealthResult, type KeyInfo,
  type ListKeysResult, type StatusResult,
} from '../rpc/client.js';
import type {
  WireDataKey, WireDataKeyBatch, WireDecryptResult, WireHealth, WireKeyInfo, WireListKeysResult, WireSealResult, WireStatus,
} from '../rpc/protocol.js';

function buffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export const toKeyInfo = (w: unknown): KeyInfo => keyInfoFromWire(w as WireKeyInfo);

export function toHealth(w: unknown): HealthResult {
  const r = w as WireHealth;
  return { healthy: r.healthy, backend: r.backend, version: r.version };
}

export function toStatus(w: unknown): StatusResult {
  const r = w as WireStatus;
  const l = r.limits;
  const out: StatusResult = {
    rootType: r.root_type,
    keystoreType: r.keystore_type,
    endpoint: r.endpoint,
    keyCount: r.key_count,
    uptimeMs: r.uptime_ms,
    limits: {
      maxFrameBytes: l.max_frame_bytes,
      maxPlaintextBytes: l.max_plaintext_bytes,
      maxBatchCount: l.max_batch_count,
      maxListLimit: l.max_list_limit,
      maxConnections: l.max_connections,
      maxInflightPerConnection: l.max_inflight_per_connection,
    },
  };
  if (r.audit_head !== undefined) out.auditHead = { seq: r.audit_head.seq, hash: r.audit_head.hash };
  return out;
}

export function toList(w: unknown): ListKeysResult {
  const r = w as WireListKeysResult;
  const out: ListKeysResult = { keys: r.keys.map((k) => keyInfoFromWire(k)), truncated: r.truncated };
  if (r.next_marker !== undefined) out.nextMarker = r.next_marker;
  return out;
}

export function toSeal(w: unknown): EncryptResult {
  const r = w as WireSealResult;
  return { ciphertext: buffer(r.ciphertext), keyId: r.key_id, keyVersion: r.key_version };
}

export function toDecrypt(w: unknown): DecryptResult {
  const r = w as WireDecryptResult;
  return { plaintext: buffer(r.plaintext), keyId: r.key_id, keyVersion: r.key_version };
}

export function toDataKey(w: unknown): DataKey {
  const r = w as WireDataKey;
  const out: DataKey = { ciphertext: buffer(r.ciphertext), keyId: r.key_id, keyVersion: r.key_version };
  if (r.plaintext !== undefined) out.plaintext = buffer(r.plaintext);
  return out;
}

export function toDataKeyBatch(w: unknown): DataKeyBatch {
  const r = w as WireDataKeyBatch;
  return {
    keyId: r.key_id,
    keyVersion: r.key_version,
    // Views into the service's buffers: no further copies of plaintext keys are made.
    keys: r.keys.map((k) => ({ plaintext: buffer(k.plaintext), ciphertext: buffer(k.ciphertext) })),
  };
}
