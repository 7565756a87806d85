// The operation table, after MinIO KES's route table: every operation declares how its arguments
// are checked, which policy action and keys it needs, what the audit record takes from it, and
// its handler. The socket server and the admin HTTP API both run requests through this table.
import { KmsError } from '../errors.js';
import { parseEnvelope } from '../crypto/envelope.js';
import type { KeyService } from '../keys/service.js';
import type { DataKeyResult, KeyInfo } from '../keys/types.js';
import { assertKeyId } from '../keys/validation.js';
import type { EncryptionContext } from '../crypto/context.js';
import {
  BATCH_COUNT, DATA_KEY_BYTES, LIST_LIMIT_MAX, MAX_CIPHERTEXT_BYTES, MAX_DESCRIPTION_BYTES, MAX_LIST_PREFIX_BYTES, MAX_PLAINTEXT_BYTES,
  PENDING_DAYS, ROTATION_PERIOD_DAYS, TAG_LIMITS,
  type OpName, type WireKeyInfo, type WireStatusLimits,
} from './protocol.js';

/** What handlers may consult besides the key service. */
export interface OperationEnv {
  service: KeyService;
  version: string;
  limits: WireStatusLimits;
  endpoint: string;
  /** The audit chain's newest line, for `audit verify --head`. */
  auditHead?: () => { seq: number; hash: string };
}

export interface Scope {
  visible?: (keyId: string) => boolean;
}

/** Fields an operation contributes to its audit record. */
export interface AuditKeyFields {
  key_id?: string;
  key_version?: number;
}

export interface Operation<A = unknown> {
  readonly op: OpName;
  /** The action the policy is asked about. */
  readonly action: OpName;
  /** Checks wire arguments; throws InvalidRequest / InvalidKeyId naming the argument and the limit. */
  readonly parse: (args: Record<string, unknown>) => A;
  /** Keys the caller's policy rule must cover, known before the handler runs. */
  readonly keys: (args: A) => readonly string[];
  /** scope: what the deciding policy rule lets the caller see (list_keys filters by it). */
  readonly handle: (env: OperationEnv, args: A, scope: Scope) => unknown;
  /** Key fields for the audit record, from the arguments and (when it succeeded) the result. */
  readonly audit: (args: A, result: unknown) => AuditKeyFields;
  /** The answer holds plaintexts (data keys, decrypted data): its encoded frame is zeroed once written. */
  readonly secretAnswer?: boolean;
  /** Zeroes the plaintexts in the parsed arguments and the result, once the transport has copied them out. */
  readonly wipe?: (args: A, result: unknown) => void;
}

/** Zeroes `result.plaintext` (and each `result.keys[i].plaintext`) when present. */
function wipePlaintexts(result: unknown): void {
  if (typeof result !== 'object' || result === null) return;
  const r = result as { plaintext?: unknown; keys?: unknown };
  if (r.plaintext instanceof Uint8Array) r.plaintext.fill(0);
  if (Array.isArray(r.keys)) for (const k of r.keys) wipePlaintexts(k);
}

type Args = Record<string, unknown>;

// ---- argument readers: one idiom, errors name the argument ----------------------------------

function only(op: string, args: Args, allowed: readonly string[]): void {
  for (const name in args) {
    if (!allowed.includes(name)) {
      throw new KmsError('InvalidRequest', `${op}: unknown argument "${name.slice(0, 64)}" (expected ${allowed.join(', ') || 'none'})`);
    }
  }
}

function keyIdArg(args: Args, name = 'key_id'): string {
  const value = args[name];
  if (value === undefined) throw new KmsError('InvalidRequest', `${name} is required`);
  assertKeyId(value, name);
  return value;
}

function optionalKeyId(args: Args, name: string): string | undefined {
  return args[name] === undefined ? undefined : keyIdArg(args, name);
}

function binArg(args: Args, name: string, maxBytes: number): Buffer {
  const value = args[name];
  if (value === undefined) throw new KmsError('InvalidRequest', `${name} is required`);
  if (!(value instanceof Uint8Array)) throw new KmsError('InvalidRequest', `${name} must be binary (MessagePack bin)`);
  if (value.length > maxBytes) {
    throw new KmsError('InvalidRequest', `${name} is ${value.length} bytes; the limit is ${maxBytes}`);
  }
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length);
}

function stringArg(args: Args, name: string, maxBytes: number): string | undefined {
  const value = args[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new KmsError('InvalidRequest', `${name} must be a string`);
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw new KmsError('InvalidRequest', `${name} is ${bytes} bytes; the limit is ${maxBytes}`);
  return value;
}

function intArg(args: Args, name: string, min: number, max: number, required: boolean): number | undefined {
  const value = args[name];
  if (value === undefined) {
    if (required) throw new KmsError('InvalidRequest', `${name} is required (an integer from ${min} to ${max})`);
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KmsError('InvalidRequest', `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function boolArg(args: Args, name: string): boolean | undefined {
  const value = args[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new KmsError('InvalidRequest', `${name} must be a boolean`);
  return value;
}

/** A map of string to string (context, tags). Sizes are checked where the map is used. */
function stringMapArg(args: Args, name: string): Record<string, string> | undefined {
  const value = args[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new KmsError('InvalidRequest', `${name} must be a map of string to string`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new KmsError('InvalidRequest', `${name}["${k.slice(0, 64)}"] must be a string`);
  }
  return value as Record<string, string>;
}

/** untag_key's tag names: a list of at most TAG_LIMITS.maxPairs strings. */
function tagKeysArg(args: Args): string[] {
  const value = args.tag_keys;
  if (value === undefined) throw new KmsError('InvalidRequest', 'tag_keys is required (a list of tag names)');
  if (!Array.isArray(value)) throw new KmsError('InvalidRequest', 'tag_keys must be a list of strings');
  if (value.length > TAG_LIMITS.maxPairs) {
    throw new KmsError('InvalidRequest', `tag_keys has ${value.length} entries; the limit is ${TAG_LIMITS.maxPairs}`);
  }
  value.forEach((k, i) => {
    if (typeof k !== 'string') throw new KmsError('InvalidRequest', `tag_keys[${i}] must be a string`);
    if (Buffer.byteLength(k) > TAG_LIMITS.maxKeyBytes) {
      throw new KmsError('InvalidRequest', `tag_keys[${i}] is longer than ${TAG_LIMITS.maxKeyBytes} bytes`);
    }
  });
  return value as string[];
}

// ---- results on the wire ----------------------------------------------------------------------

export function wireKeyInfo(info: KeyInfo): WireKeyInfo {
  const wire: WireKeyInfo = {
    key_id: info.keyId,
    state: info.state,
    current_version: info.currentVersion,
    versions: info.versions,
    algorithm: info.algorithm,
    origin: info.origin,
    created_at: info.createdAt,
    description: info.description,
    tags: info.tags,
  };
  if (info.rotatedAt !== undefined) wire.rotated_at = info.rotatedAt;
  if (info.deletionDate !== undefined) wire.deletion_date = info.deletionDate;
  if (info.rotationPeriodDays !== undefined) wire.rotation_period_days = info.rotationPeriodDays;
  return wire;
}

function then<T, R>(value: T | Promise<T>, fn: (v: T) => R): R | Promise<R> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}

/** Key id named inside a ciphertext, for the policy; [] when the blob is not an envelope. */
function ciphertextKeys(ciphertext: Buffer): string[] {
  const header = parseEnvelope(ciphertext);
  return header === null ? [] : [header.keyId];
}

function keyFields(result: unknown): AuditKeyFields {
  const r = result as { key_id?: unknown; key_version?: unknown; current_version?: unknown } | undefined;
  if (r === undefined || r === null || typeof r !== 'object') return {};
  const fields: AuditKeyFields = {};
  if (typeof r.key_id === 'string') fields.key_id = r.key_id;
  if (typeof r.key_version === 'number') fields.key_version = r.key_version;
  else if (typeof r.current_version === 'number') fields.key_version = r.current_version;
  return fields;
}

const byKeyId = (a: { keyId: string }) => [a.keyId];

function auditKeyId(a: { keyId: string }, result: unknown): AuditKeyFields {
  const version = (result as { key_version?: unknown; current_version?: unknown } | undefined);
  const v = version?.key_version ?? version?.current_version;
  return typeof v === 'number' ? { key_id: a.keyId, key_version: v } : { key_id: a.keyId };
}

function wireDataKey(r: DataKeyResult): Record<string, unknown> {
  return r.plaintext === undefined
    ? { ciphertext: r.ciphertext, key_id: r.keyId, key_version: r.keyVersion }
    : { plaintext: r.plaintext, ciphertext: r.ciphertext, key_id: r.keyId, key_version: r.keyVersion };
}

function keyOp(op: OpName, handle: (env: OperationEnv, keyId: string) => Promise<KeyInfo> | KeyInfo): Operation<{ keyId: string }> {
  return {
    op,
    action: op,
    parse: (args) => {
      only(op, args, ['key_id']);
      return { keyId: keyIdArg(args) };
    },
    keys: byKeyId,
    handle: (env, a) => then(handle(env, a.keyId), wireKeyInfo),
    audit: auditKeyId,
  };
}

// ---- the table --------------------------------------------------------------------------------

const operations: Operation<never>[] = [
  {
    op: 'health',
    action: 'health',
    parse: (args) => only('health', args, []),
    keys: () => [],
    handle: async (env) => {
      const health = await env.service.health();
      const backend = `${env.service.root.type}/${env.service.keystore.type}`;
      return health.detail === undefined
        ? { healthy: health.healthy, backend, version: env.version }
        : { healthy: health.healthy, backend, version: env.version, detail: health.detail };
    },
    audit: () => ({}),
  } satisfies Operation<void>,
  {
    op: 'status',
    action: 'status',
    parse: (args) => only('status', args, []),
    keys: () => [],
    handle: (env, _a, scope) => ({
      root_type: env.service.root.type,
      keystore_type: env.service.keystore.type,
      endpoint: env.endpoint,
      // A rule limited to some key globs sees only how many of those exist, not the total.
      key_count: env.service.countKeys(scope.visible),
      uptime_ms: Date.now() - env.service.startedAt,
      limits: env.limits,
      ...(env.auditHead !== undefined ? { audit_head: (({ seq, hash }) => ({ seq, hash }))(env.auditHead()) } : {}),
    }),
    audit: () => ({}),
  } satisfies Operation<void>,
  {
    op: 'create_key',
    action: 'create_key',
    parse: (args) => {
      only('create_key', args, ['key_id', 'description', 'tags', 'rotation_period_days']);
      return {
        keyId: keyIdArg(args),
        description: stringArg(args, 'description', MAX_DESCRIPTION_BYTES),
        tags: stringMapArg(args, 'tags'),
        rotationPeriodDays: intArg(args, 'rotation_period_days', ROTATION_PERIOD_DAYS.min, ROTATION_PERIOD_DAYS.max, false),
      };
    },
    keys: byKeyId,
    handle: (env, a) =>
      env.service
        .createKey(a.keyId, {
          ...(a.description !== undefined ? { description: a.description } : {}),
          ...(a.tags !== undefined ? { tags: a.tags } : {}),
          ...(a.rotationPeriodDays !== undefined ? { rotationPeriodDays: a.rotationPeriodDays } : {}),
        })
        .then(wireKeyInfo),
    audit: auditKeyId,
  } satisfies Operation<{ keyId: string; description?: string; tags?: Record<string, string>; rotationPeriodDays?: number }>,
  keyOp('describe_key', (env, keyId) => env.service.describeKey(keyId)),
  {
    op: 'list_keys',
    action: 'list_keys',
    parse: (args) => {
      only('list_keys', args, ['prefix', 'marker', 'limit']);
      return {
        prefix: stringArg(args, 'prefix', MAX_LIST_PREFIX_BYTES),
        marker: stringArg(args, 'marker', MAX_LIST_PREFIX_BYTES),
        limit: intArg(args, 'limit', 1, LIST_LIMIT_MAX, false),
      };
    },
    keys: () => [],
    handle: (env, a, scope) => {
      const page = env.service.listKeys({
        ...(a.prefix !== undefined ? { prefix: a.prefix } : {}),
        ...(a.marker !== undefined ? { marker: a.marker } : {}),
        ...(a.limit !== undefined ? { limit: a.limit } : {}),
        ...(scope.visible !== undefined ? { filter: scope.visible } : {}),
      });
      return {
        keys: page.keys.map(wireKeyInfo),
        truncated: page.truncated,
        ...(page.nextMarker !== undefined ? { next_marker: page.nextMarker } : {}),
      };
    },
    audit: () => ({}),
  } satisfies Operation<{ prefix?: string; marker?: string; limit?: number }>,
  keyOp('enable_key', (env, keyId) => env.service.enableKey(keyId)),
  keyOp('disable_key', (env, keyId) => env.service.disableKey(keyId)),
  keyOp('rotate_key', (env, keyId) => env.service.rotateKey(keyId)),
  {
    op: 'schedule_key_deletion',
    action: 'schedule_key_deletion',
    parse: (args) => {
      only('schedule_key_deletion', args, ['key_id', 'pending_days']);
      return { keyId: keyIdArg(args), pendingDays: intArg(args, 'pending_days', PENDING_DAYS.min, PENDING_DAYS.max, true) as number };
    },
    keys: byKeyId,
    handle: (env, a) => env.service.scheduleKeyDeletion(a.keyId, a.pendingDays).then(wireKeyInfo),
    audit: auditKeyId,
  } satisfies Operation<{ keyId: string; pendingDays: number }>,
  keyOp('cancel_key_deletion', (env, keyId) => env.service.cancelKeyDeletion(keyId)),
  {
    op: 'update_key_description',
    action: 'update_key_description',
    parse: (args) => {
      only('update_key_description', args, ['key_id', 'description']);
      const description = stringArg(args, 'description', MAX_DESCRIPTION_BYTES);
      if (description === undefined) throw new KmsError('InvalidRequest', 'description is required ("" clears it)');
      return { keyId: keyIdArg(args), description };
    },
    keys: byKeyId,
    handle: (env, a) => env.service.updateKeyDescription(a.keyId, a.description).then(wireKeyInfo),
    audit: auditKeyId,
  } satisfies Operation<{ keyId: string; description: string }>,
  {
    op: 'tag_key',
    action: 'tag_key',
    parse: (args) => {
      only('tag_key', args, ['key_id', 'tags']);
      const tags = stringMapArg(args, 'tags');
      if (tags === undefined) throw new KmsError('InvalidRequest', 'tags is required (a map of tag name to value)');
      return { keyId: keyIdArg(args), tags };
    },
    keys: byKeyId,
    handle: (env, a) => env.service.tagKey(a.keyId, a.tags).then(wireKeyInfo),
    audit: auditKeyId,
  } satisfies Operation<{ keyId: string; tags: Record<string, string> }>,
  {
    op: 'untag_key',
    action: 'untag_key',
    parse: (args) => {
      only('untag_key', args, ['key_id', 'tag_keys']);
      return { keyId: keyIdArg(args), tagKeys: tagKeysArg(args) };
    },
    keys: byKeyId,
    handle: (env, a) => env.service.untagKey(a.keyId, a.tagKeys).then(wireKeyInfo),
    audit: auditKeyId,
  } satisfies Operation<{ keyId: string; tagKeys: string[] }>,
  {
    op: 'encrypt',
    action: 'encrypt',
    parse: (args) => {
      only('encrypt', args, ['key_id', 'plaintext', 'context']);
      return { keyId: keyIdArg(args), plaintext: binArg(args, 'plaintext', MAX_PLAINTEXT_BYTES), context: stringMapArg(args, 'context') };
    },
    keys: byKeyId,
    handle: (env, a) =>
      then(env.service.encrypt(a.keyId, a.plaintext, a.context), (r) => ({ ciphertext: r.ciphertext, key_id: r.keyId, key_version: r.keyVersion })),
    audit: auditKeyId,
    wipe: (a) => a.plaintext.fill(0),
  } satisfies Operation<{ keyId: string; plaintext: Buffer; context: EncryptionContext | undefined }>,
  {
    op: 'decrypt',
    action: 'decrypt',
    parse: (args) => {
      only('decrypt', args, ['ciphertext', 'context']);
      return { ciphertext: binArg(args, 'ciphertext', MAX_CIPHERTEXT_BYTES), context: stringMapArg(args, 'context') };
    },
    keys: (a) => ciphertextKeys(a.ciphertext),
    handle: (env, a) =>
      then(env.service.decrypt(a.ciphertext, a.context), (r) => ({ plaintext: r.plaintext, key_id: r.keyId, key_version: r.keyVersion })),
    secretAnswer: true,
    wipe: (_a, result) => wipePlaintexts(result),
    audit: (a, result) => {
      const header = parseEnvelope(a.ciphertext);
      return header === null ? keyFields(result) : { key_id: header.keyId, key_version: header.keyVersion };
    },
  } satisfies Operation<{ ciphertext: Buffer; context: EncryptionContext | undefined }>,
  {
    op: 'generate_data_key',
    action: 'generate_data_key',
    parse: (args) => {
      only('generate_data_key', args, ['key_id', 'context', 'bytes', 'without_plaintext']);
      return {
        keyId: keyIdArg(args),
        context: stringMapArg(args, 'context'),
        bytes: intArg(args, 'bytes', DATA_KEY_BYTES.min, DATA_KEY_BYTES.max, false),
        withoutPlaintext: boolArg(args, 'without_plaintext'),
      };
    },
    keys: byKeyId,
    // The parsed args are already DataKeyOptions: passed as they are, no copies on the hot path.
    handle: (env, a) => then(env.service.generateDataKey(a.keyId, a), wireDataKey),
    audit: auditKeyId,
    secretAnswer: true,
    wipe: (_a, result) => wipePlaintexts(result),
  } satisfies Operation<{ keyId: string; context?: EncryptionContext; bytes?: number; withoutPlaintext?: boolean }>,
  {
    op: 'generate_data_key_batch',
    action: 'generate_data_key_batch',
    parse: (args) => {
      only('generate_data_key_batch', args, ['key_id', 'count', 'context', 'bytes']);
      return {
        keyId: keyIdArg(args),
        count: intArg(args, 'count', BATCH_COUNT.min, BATCH_COUNT.max, true) as number,
        context: stringMapArg(args, 'context'),
        bytes: intArg(args, 'bytes', DATA_KEY_BYTES.min, DATA_KEY_BYTES.max, false),
      };
    },
    keys: byKeyId,
    handle: (env, a) =>
      then(env.service.generateDataKeyBatch(a.keyId, a.count, a), (r) => ({ key_id: r.keyId, key_version: r.keyVersion, keys: r.keys })),
    audit: auditKeyId,
    secretAnswer: true,
    wipe: (_a, result) => wipePlaintexts(result),
  } satisfies Operation<{ keyId: string; count: number; context?: EncryptionContext; bytes?: number }>,
  {
    op: 're_encrypt',
    action: 're_encrypt',
    parse: (args) => {
      only('re_encrypt', args, ['ciphertext', 'context', 'destination_key_id']);
      return {
        ciphertext: binArg(args, 'ciphertext', MAX_CIPHERTEXT_BYTES),
        context: stringMapArg(args, 'context'),
        destinationKeyId: optionalKeyId(args, 'destination_key_id'),
      };
    },
    // The caller needs the right on the source key and on the destination.
    keys: (a) => [...ciphertextKeys(a.ciphertext), ...(a.destinationKeyId !== undefined ? [a.destinationKeyId] : [])],
    handle: (env, a) =>
      then(env.service.reEncrypt(a.ciphertext, a.context, a.destinationKeyId), (r) => ({
        ciphertext: r.ciphertext, key_id: r.keyId, key_version: r.keyVersion,
      })),
    // The source key from the envelope, even when refused; the key sealed under once it succeeded.
    audit: (a, result) => {
      if (result !== undefined) return keyFields(result);
      const header = parseEnvelope(a.ciphertext);
      if (header !== null) return { key_id: header.keyId, key_version: header.keyVersion };
      return a.destinationKeyId !== undefined ? { key_id: a.destinationKeyId } : {};
    },
  } satisfies Operation<{ ciphertext: Buffer; context: EncryptionContext | undefined; destinationKeyId: string | undefined }>,
] as unknown as Operation<never>[];

/** Operation by name; lookups on the hot path are one Map get. */
export const OPERATION_TABLE: ReadonlyMap<string, Operation<unknown>> = new Map(
  operations.map((o) => [o.op, o as unknown as Operation<unknown>]),
);
