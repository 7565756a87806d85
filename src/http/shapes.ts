// Response shapes of RustFS's KMS admin contract (rustfs/rustfs@20d1266496ba, crates/kms/src/
// api_types.rs and types.rs), built from this daemon's wire types. Field names and value spellings
// are the contract; the reference is /work/shared/reference/admin-api-clients.md §1.2.
import type { WireKeyInfo, WireStatus } from '../ops/protocol.js';

/** What the daemon was started with, as the status, config and backup routes report it. */
export interface DeploymentInfo {
  stateDir: string;
  configPath?: string;
  /** SHA-256 (hex) of the redacted configuration. */
  configFingerprint: string;
  rootType: WireStatus['root_type'];
  keystoreType: 'file' | 'vault-kv';
  /** Idle keys leave the cache after this. */
  cacheIdleTtlS: number;
  timeoutS: number;
  retryAttempts: number;
  vault?: { address: string; namespace: string; transitMount: string; kvMount: string; prefix: string; authMethod: string };
}

/** RustFS times: jiff `Zoned` strings with a bracketed zone, e.g. 2026-01-01T00:00:00+00:00[UTC]. */
export function zoned(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00[UTC]');
}

/** A plain RFC 3339 time (RustFS's delete answer uses the backend's own string). */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface KeyMetadata {
  key_id: string;
  key_state: 'Enabled' | 'Disabled' | 'PendingDeletion';
  key_usage: 'EncryptDecrypt';
  description: string | null;
  creation_date: string;
  deletion_date: string | null;
  origin: string;
  key_manager: string;
  tags: Record<string, string>;
}

export function keyMetadata(k: WireKeyInfo): KeyMetadata {
  return {
    key_id: k.key_id,
    key_state: k.state,
    key_usage: 'EncryptDecrypt',
    description: k.description === '' ? null : k.description,
    creation_date: zoned(k.created_at),
    deletion_date: k.deletion_date !== undefined ? zoned(k.deletion_date) : null,
    origin: k.origin,
    key_manager: 'rustfs-kms',
    tags: k.tags,
  };
}

export type KeyStatus = 'Active' | 'Disabled' | 'PendingDeletion';

export interface RustfsKeyInfo {
  key_id: string;
  description: string | null;
  algorithm: string;
  usage: 'EncryptDecrypt';
  status: KeyStatus;
  version: number;
  metadata: Record<string, string>;
  tags: Record<string, string>;
  created_at: string;
  rotated_at: string | null;
  created_by: string | null;
  rotation_due: boolean;
  rotation_due_reason?: 'age';
}

const DAY_MS = 86_400_000;

export function rustfsKeyInfo(k: WireKeyInfo, now = Date.now()): RustfsKeyInfo {
  const due = k.rotation_period_days !== undefined && (k.rotated_at ?? k.created_at) + k.rotation_period_days * DAY_MS <= now;
  return {
    key_id: k.key_id,
    description: k.description === '' ? null : k.description,
    algorithm: 'AES_256',
    usage: 'EncryptDecrypt',
    status: k.state === 'Enabled' ? 'Active' : k.state,
    version: k.current_version,
    // RustFS's free-form metadata map: what this daemon knows beyond the contract's fields.
    metadata: { envelope_algorithm: k.algorithm, origin: k.origin, versions: String(k.versions) },
    tags: k.tags,
    created_at: zoned(k.created_at),
    rotated_at: k.rotated_at !== undefined ? zoned(k.rotated_at) : null,
    created_by: null,
    rotation_due: due,
    ...(due ? { rotation_due_reason: 'age' as const } : {}),
  };
}

/** KeyResult: create, cancel-deletion, enable/disable/rotate, update-description/tag/untag. */
export function keyResult(message: string, k: WireKeyInfo): Record<string, unknown> {
  return { success: true, message, key_id: k.key_id, key_metadata: keyMetadata(k) };
}

export const IMPACT_SCOPES = ['bucket-default-encryption', 'service-default-key', 'object-envelopes', 'in-progress-multipart-uploads'] as const;

/** A standalone daemon sees no buckets or objects: the impact of a key is unknown to it. */
export function unavailableImpact(keyId: string): Record<string, unknown> {
  return { key_id: keyId, completeness: 'unavailable', coverage: { scanned: [], not_scanned: [...IMPACT_SCOPES] }, references: [] };
}

/** RustFS's backend spellings: KmsStatus uses the kebab form, service-status the enum form. */
export function backendKebab(d: DeploymentInfo | undefined): 'local' | 'vault-kv2' | 'vault-transit' | 'aws' | 'unknown' {
  if (d === undefined) return 'unknown';
  if (d.rootType === 'aws-kms') return 'aws';
  if (d.keystoreType === 'vault-kv') return 'vault-kv2';
  if (d.rootType === 'vault-transit') return 'vault-transit';
  return d.rootType === 'local' ? 'local' : 'unknown';
}

export function backendEnum(d: DeploymentInfo | undefined): 'Local' | 'VaultKV2' | 'VaultTransit' | null {
  const k = backendKebab(d);
  return k === 'local' ? 'Local' : k === 'vault-kv2' ? 'VaultKV2' : k === 'vault-transit' ? 'VaultTransit' : null;
}

/** ConfigSummary (service-status), for the backends RustFS has a spelling for. */
export function configSummary(d: DeploymentInfo | undefined, defaultKeyId: string | undefined): Record<string, unknown> | null {
  const type = backendEnum(d);
  if (d === undefined || type === null) return null;
  let backend: Record<string, unknown>;
  if (type === 'Local') {
    backend = { backend_type: 'local', key_dir: `${d.stateDir}/keys`, has_master_key: true, file_permissions: 0o600 };
  } else {
    const v = d.vault;
    backend = {
      backend_type: type === 'VaultKV2' ? 'vault-kv2' : 'vault-transit',
      address: v?.address ?? '', auth_method_type: v?.authMethod ?? 'token', has_stored_credentials: true,
      namespace: v?.namespace === undefined || v.namespace === '' ? null : v.namespace,
      mount_path: v?.transitMount ?? 'transit', skip_tls_verify: false,
      ...(type === 'VaultKV2' ? { kv_mount: v?.kvMount ?? 'secret', key_path_prefix: v?.prefix ?? '' } : {}),
    };
  }
  return {
    backend_type: type, default_key_id: defaultKeyId ?? null, timeout_seconds: d.timeoutS, retry_attempts: d.retryAttempts,
    enable_cache: true, max_cached_keys: 0, cache_ttl_seconds: d.cacheIdleTtlS,
    cache_summary: { max_keys: 0, ttl_seconds: d.cacheIdleTtlS, enable_metrics: true },
    backend_summary: backend,
  };
}
