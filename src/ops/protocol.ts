// Wire protocol of the Unix-socket RPC (DESIGN §4): operation names, error codes, the shape of every
// request and response as it travels (snake_case, exactly as on the wire), and the limits both ends
// enforce. No I/O here; docs/protocol.md is the prose version of this file and must agree with it.

// ---------------------------------------------------------------------------------------------------
// Error codes
//
// ERROR_CODES, ErrorCode and KmsError live in src/errors.ts (the bottom of the dependency tree, so
// keys/ and keystore/ can throw protocol codes); they are re-exported here so that there is exactly
// one KmsError class: `instanceof KmsError` holds whichever module it was imported from.
//
// KmsError(code, message): name 'KmsError', readonly code. Thrown by the service layers, turned into
// `{ ok: false, error: { code, message } }` by the server and back into a KmsError by the client.
// Messages name the problem and never contain key material.

import type { ClaimedContext } from '../audit/event.js';
import type { ErrorCode } from '../errors.js';
import { KEY_ID_PATTERN, LIST_LIMIT, MAX_PLAINTEXT_BYTES } from '../keys/validation.js';
import { MAX_CONTEXT_BYTES, MAX_CONTEXT_PAIRS } from '../crypto/context.js';

export { ERROR_CODES, KmsError, isErrorCode, isKmsError, type ErrorCode } from '../errors.js';

// ---------------------------------------------------------------------------------------------------
// Operations

// The operation names are the policy's vocabulary too, so they live with it (access/actions.ts).
export { OPERATIONS, isOpName, type OpName } from '../access/actions.js';
import type { OpName } from '../access/actions.js';

// ---------------------------------------------------------------------------------------------------
// Limits (docs/protocol.md §Limits states every one of these)

/** Default maximum frame body (the N of the length prefix); configurable on the server. */
export const DEFAULT_MAX_FRAME_BYTES = 1_048_576;
export const MAX_KEY_ID_BYTES = 128;
// The key service owns the per-argument limits; the protocol states the same numbers.
export {
  KEY_ID_PATTERN, MAX_PLAINTEXT_BYTES, DATA_KEY_BYTES, BATCH_COUNT, PENDING_DAYS, ROTATION_PERIOD_DAYS,
  MAX_DESCRIPTION_BYTES, TAG_LIMITS,
} from '../keys/validation.js';
/** `decrypt` / `re_encrypt` ciphertext: the largest plaintext plus generous envelope overhead. */
export const MAX_CIPHERTEXT_BYTES = MAX_PLAINTEXT_BYTES + 512;
/** `list_keys` `limit`: 1..LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT when absent. */
export const LIST_LIMIT_MAX = LIST_LIMIT.max;
export const LIST_LIMIT_DEFAULT = LIST_LIMIT.default;
/** `list_keys` `prefix` and `marker`. */
export const MAX_LIST_PREFIX_BYTES = 128;
/** Encryption context (`context` argument): at most 64 pairs and 4096 bytes of canonical encoding. */
export const CONTEXT_LIMITS = { maxPairs: MAX_CONTEXT_PAIRS, maxCanonicalBytes: MAX_CONTEXT_BYTES } as const;
/** Request `op` string. */
export const MAX_OP_BYTES = 64;
/** Request `ctx`: every string at most 1024 bytes, `extra` at most 32 pairs. */
export const CTX_LIMITS = { maxStringBytes: 1024, maxExtraPairs: 32 } as const;
/** Structural limits of any MessagePack value the decoder accepts. */
export const DECODE_LIMITS = { maxDepth: 32, maxMapEntries: 4096, maxArrayLength: 65_536 } as const;

export function isValidKeyId(value: unknown): value is string {
  return typeof value === 'string' && KEY_ID_PATTERN.test(value);
}

// ---------------------------------------------------------------------------------------------------
// Wire types (snake_case, as encoded). Binary values are MessagePack bin (Buffer when decoded,
// Uint8Array or Buffer when encoded); times are integer milliseconds since the Unix epoch.

export type Bytes = Uint8Array;
/** Encryption context: bound into the ciphertext as AAD; the same map must be given to decrypt. */
export type EncryptionContext = Record<string, string>;

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';
/** XAES-256-GCM for everything the daemon seals itself; AES-256-GCM for PKCS#11 on-token keys. */
export type KeyAlgorithm = 'XAES-256-GCM' | 'AES-256-GCM';
export type KeyOrigin = 'local' | 'pkcs11' | 'vault' | 'aws' | 'gcp' | 'azure';

export interface WireKeyInfo {
  key_id: string;
  state: KeyState;
  /** Version that new encryptions use; versions are numbered from 1. */
  current_version: number;
  /** Number of versions the key has. */
  versions: number;
  algorithm: KeyAlgorithm;
  origin: KeyOrigin;
  created_at: number;
  rotated_at?: number;
  deletion_date?: number;
  rotation_period_days?: number;
  description: string;
  tags: Record<string, string>;
}

/** The caller's claimed operation context: audited as claimed, never used for authorization. */
/** The `ctx` of a request: the caller's claims, recorded in the audit log and never trusted. */
export type WireContext = ClaimedContext;

export interface WireRequest {
  id: number;
  /** A string; not necessarily a known operation (the server answers UnknownOperation). */
  op: string;
  args: Record<string, unknown>;
  ctx?: WireContext;
}

export interface WireErrorBody {
  code: ErrorCode;
  message: string;
}

export type WireResponse<R = unknown> =
  | { id: number; ok: true; result: R }
  | { id: number; ok: false; error: WireErrorBody };

export type NoArgs = Record<string, never>;

export interface WireHealth {
  healthy: boolean;
  /** Short description of root and keystore, e.g. "local/file" or "vault-transit/vault-kv". */
  backend: string;
  /** Daemon version. */
  version: string;
  /** What is wrong when not healthy (root or keystore unreachable); never secret. */
  detail?: string;
}

export interface WireStatusLimits {
  max_frame_bytes: number;
  max_plaintext_bytes: number;
  max_batch_count: number;
  max_list_limit: number;
  max_connections: number;
  max_inflight_per_connection: number;
}

export interface WireStatus {
  root_type: 'local' | 'pkcs11' | 'vault-transit' | 'aws-kms' | 'gcp-kms' | 'azure-keyvault';
  keystore_type: 'file' | 'vault-kv';
  /** Where the backend lives: Vault address, PKCS#11 module path, or the state directory. */
  endpoint: string;
  key_count: number;
  uptime_ms: number;
  limits: WireStatusLimits;
  /** Newest audit line (seq and SHA-256), when an audit log is configured. */
  audit_head?: { seq: number; hash: string };
}

export interface WireListKeysResult {
  keys: WireKeyInfo[];
  next_marker?: string;
  truncated: boolean;
}

export interface WireSealResult {
  ciphertext: Bytes;
  key_id: string;
  key_version: number;
}

export interface WireDecryptResult {
  plaintext: Bytes;
  key_id: string;
  key_version: number;
}

export interface WireDataKey {
  /** Absent when `without_plaintext` was true. */
  plaintext?: Bytes;
  ciphertext: Bytes;
  key_id: string;
  key_version: number;
}

export interface WireDataKeyBatch {
  key_id: string;
  key_version: number;
  keys: Array<{ plaintext: Bytes; ciphertext: Bytes }>;
}

export interface OpSpec<A, R> {
  args: A;
  result: R;
}

/** Arguments and result of every operation (DESIGN §4 table). */
export interface WireOps {
  health: OpSpec<NoArgs, WireHealth>;
  status: OpSpec<NoArgs, WireStatus>;
  create_key: OpSpec<
    { key_id: string; description?: string; tags?: Record<string, string>; rotation_period_days?: number },
    WireKeyInfo
  >;
  describe_key: OpSpec<{ key_id: string }, WireKeyInfo>;
  list_keys: OpSpec<{ prefix?: string; marker?: string; limit?: number }, WireListKeysResult>;
  enable_key: OpSpec<{ key_id: string }, WireKeyInfo>;
  disable_key: OpSpec<{ key_id: string }, WireKeyInfo>;
  rotate_key: OpSpec<{ key_id: string }, WireKeyInfo>;
  schedule_key_deletion: OpSpec<{ key_id: string; pending_days: number }, WireKeyInfo>;
  cancel_key_deletion: OpSpec<{ key_id: string }, WireKeyInfo>;
  update_key_description: OpSpec<{ key_id: string; description: string }, WireKeyInfo>;
  /** Adds or overwrites the given tags. */
  tag_key: OpSpec<{ key_id: string; tags: Record<string, string> }, WireKeyInfo>;
  /** Removes the named tags; names the key does not have are ignored. */
  untag_key: OpSpec<{ key_id: string; tag_keys: string[] }, WireKeyInfo>;
  encrypt: OpSpec<{ key_id: string; plaintext: Bytes; context?: EncryptionContext }, WireSealResult>;
  decrypt: OpSpec<{ ciphertext: Bytes; context?: EncryptionContext }, WireDecryptResult>;
  generate_data_key: OpSpec<
    { key_id: string; context?: EncryptionContext; bytes?: number; without_plaintext?: boolean },
    WireDataKey
  >;
  generate_data_key_batch: OpSpec<
    { key_id: string; count: number; context?: EncryptionContext; bytes?: number },
    WireDataKeyBatch
  >;
  re_encrypt: OpSpec<
    { ciphertext: Bytes; context?: EncryptionContext; destination_key_id?: string },
    WireSealResult
  >;
}

export type OpArgs<Op extends OpName> = WireOps[Op]['args'];
export type OpResult<Op extends OpName> = WireOps[Op]['result'];
