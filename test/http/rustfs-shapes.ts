// RustFS admin contract shapes (reference §1.2), as field-by-field checks: every field present with
// its type or allowed values, and no field the contract does not name (optional ones marked '?').
import { expect } from 'vitest';

type Type = 'string' | 'string|null' | 'boolean' | 'boolean|null' | 'number' | 'object' | 'object|null' | 'array' | readonly string[];
export type Shape = Readonly<Record<string, Type>>;

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

export function expectShape(value: unknown, shape: Shape, where = 'body'): void {
  expect(typeOf(value), where).toBe('object');
  const obj = value as Record<string, unknown>;
  const required = Object.keys(shape).filter((k) => !k.endsWith('?'));
  const allowed = Object.keys(shape).map((k) => k.replace(/\?$/, ''));
  for (const k of required) expect(Object.hasOwn(obj, k), `${where}.${k} is missing`).toBe(true);
  for (const k of Object.keys(obj)) expect(allowed, `${where}.${k} is not in the contract`).toContain(k);
  for (const [name, t] of Object.entries(shape)) {
    const k = name.replace(/\?$/, '');
    if (!Object.hasOwn(obj, k)) continue;
    const v = obj[k];
    if (Array.isArray(t)) expect(t, `${where}.${k} = ${JSON.stringify(v)}`).toContain(v);
    else expect((t as string).split('|'), `${where}.${k} is ${typeOf(v)}`).toContain(typeOf(v));
  }
}

export const ZONED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00\[UTC\]$/;

export const KEY_METADATA: Shape = {
  key_id: 'string', key_state: ['Enabled', 'Disabled', 'PendingDeletion', 'PendingImport', 'Unavailable'], key_usage: ['EncryptDecrypt', 'SignVerify'],
  description: 'string|null', creation_date: 'string', deletion_date: 'string|null', origin: 'string', key_manager: 'string', tags: 'object',
};

export const KEY_INFO: Shape = {
  key_id: 'string', description: 'string|null', algorithm: 'string', usage: ['EncryptDecrypt', 'SignVerify'],
  status: ['Active', 'Disabled', 'PendingDeletion', 'Deleted'], version: 'number', metadata: 'object', tags: 'object', created_at: 'string',
  rotated_at: 'string|null', created_by: 'string|null', rotation_due: 'boolean', 'rotation_due_reason?': ['age', 'never_rotated', 'wraps', 'unsupported'],
};

export const KEY_RESULT: Shape = { success: 'boolean', message: 'string', key_id: 'string', key_metadata: 'object|null' };
export const SVC_RESULT: Shape = { success: 'boolean', message: 'string', status: 'string' };
export const KMS_STATUS: Shape = {
  backend_type: ['local', 'vault-kv2', 'vault-transit', 'static', 'aws', 'unknown'], backend_status: ['healthy', 'unhealthy', 'error'],
  cache_enabled: 'boolean', cache_stats: 'object|null', default_key_id: 'string|null', 'capabilities?': 'object', 'cluster_config?': 'object',
};
export const CAPABILITIES: Shape = Object.fromEntries(
  ['encrypt', 'decrypt', 'generate_data_key', 'rotate', 'enable_disable', 'schedule_deletion', 'versioning', 'physical_delete', 'update_key_metadata', 'rewrap']
    .map((k) => [k, 'boolean']),
);
export const IMPACT: Shape = { key_id: 'string', completeness: ['exact', 'observed-only', 'unavailable'], coverage: 'object', references: 'array' };
export const LIST_MODERN: Shape = { success: 'boolean', message: 'string', keys: 'array', truncated: 'boolean', next_marker: 'string|null', 'unreadable_key_ids?': 'array' };
export const LIST_LEGACY: Shape = { keys: 'array', truncated: 'boolean', next_marker: 'string|null', 'unreadable_key_ids?': 'array' };
