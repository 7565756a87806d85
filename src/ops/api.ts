// The typed operations every front end of the key service offers: KmsClient (over the socket) and
// KmsManager (in-process) both extend KmsOperations and differ only in how invoke() reaches the
// op table. The camelCase request and result types, and the converters from the wire's snake_case,
// live here once.
import { KmsError } from '../errors.js';
import type {
  EncryptionContext, OpArgs, OpName, WireContext, WireKeyInfo, WireStatus,
} from './protocol.js';
import type { DecryptRequest, EncryptRequest, GenerateKeyRequest } from './requests.js';

// ---------------------------------------------------------------------------------------------------
// Options and result types (camelCase)

export interface ReconnectOptions {
  /** Wait after the first failed attempt; doubles after each further failure. Default 50. */
  initialDelayMs?: number;
  /** Cap of the wait between attempts. Default 2000. */
  maxDelayMs?: number;
  /** Attempts per reconnection before the waiting calls fail. Default 10. */
  maxAttempts?: number;
}

export interface KmsClientOptions {
  /** Default deadline of every call, in ms. Default 30000. */
  timeoutMs?: number;
  /**
   * How to get a connection back after it was lost (the first connection is tried once, by
   * `connect`). `false`: never; calls fail with BackendUnavailable until a new client is made.
   */
  reconnect?: ReconnectOptions | false;
  /** Operation context sent with every call (a call's own `ctx` fields override it). */
  ctx?: WireContext;
  /** Largest request body this client sends (the server's `max_frame_bytes`); default 1 MiB. */
  maxFrameBytes?: number;
  /** Largest response body this client accepts; default 16 MiB. */
  maxResponseBytes?: number;
}

/** Per-call options; every method takes them as its last parameter. */
export interface CallOptions {
  /** Deadline of this call in ms (default: the client's `timeoutMs`). */
  timeoutMs?: number;
  /** Operation context of this call; its fields override the client's default `ctx`. */
  ctx?: WireContext;
}

/** One key as the key service describes it (the same type in-process and over the socket). */
export type { KeyInfo, CreateKeyOptions } from '../keys/types.js';
import type { CreateKeyOptions, KeyInfo } from '../keys/types.js';

export interface HealthResult {
  healthy: boolean;
  backend: string;
  version: string;
  /** What is wrong when not healthy. */
  detail?: string;
}

export interface StatusResult {
  rootType: WireStatus['root_type'];
  keystoreType: WireStatus['keystore_type'];
  endpoint: string;
  keyCount: number;
  uptimeMs: number;
  limits: {
    maxFrameBytes: number;
    maxPlaintextBytes: number;
    maxBatchCount: number;
    maxListLimit: number;
    maxConnections: number;
    maxInflightPerConnection: number;
  };
  /** Newest audit line, when the daemon keeps an audit log. */
  auditHead?: { seq: number; hash: string };
}


export interface ListKeysOptions {
  prefix?: string;
  marker?: string;
  limit?: number;
}

export interface ListKeysResult {
  keys: KeyInfo[];
  nextMarker?: string;
  truncated: boolean;
}

export interface ContextOptions {
  context?: EncryptionContext;
}

export interface GenerateDataKeyOptions extends ContextOptions {
  /** Data key length, 16..64; default 32. */
  bytes?: number;
  /** Return only the sealed copy. */
  withoutPlaintext?: boolean;
}

export interface GenerateDataKeyBatchOptions extends ContextOptions {
  bytes?: number;
}

export interface ReEncryptOptions extends ContextOptions {
  /** Seal under this key instead of the blob's own key (at its current version). */
  destinationKeyId?: string;
}

export interface EncryptResult {
  ciphertext: Buffer;
  keyId: string;
  keyVersion: number;
}

export interface DecryptResult {
  plaintext: Buffer;
  keyId: string;
  keyVersion: number;
}

export interface DataKey {
  /** Absent when `withoutPlaintext` was set. */
  plaintext?: Buffer;
  ciphertext: Buffer;
  keyId: string;
  keyVersion: number;
}

/** `backendInfo()`: the daemon's health and status in one answer (RustFS crate: `backend_info`). */
export interface BackendInfo extends StatusResult {
  /** `"<root type>/<keystore type>"`, e.g. `"local/file"`. */
  backend: string;
  healthy: boolean;
  version: string;
}

export interface DataKeyBatch {
  keyId: string;
  keyVersion: number;
  keys: Array<{ plaintext: Buffer; ciphertext: Buffer }>;
}

// ---------------------------------------------------------------------------------------------------
// Wire → camelCase

export type Converter = (wire: unknown) => unknown;

function map(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new KmsError('Internal', `malformed ${what} in the server's answer`);
  }
  return v as Record<string, unknown>;
}

function bytes(v: unknown, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new KmsError('Internal', `malformed ${what} in the server's answer: expected bin`);
}

function optional<T>(v: T | null | undefined): T | undefined {
  return v === null ? undefined : v;
}

/** Converts a wire KeyInfo (snake_case) to {@link KeyInfo}; nil optional fields become absent. */
export function keyInfoFromWire(wire: WireKeyInfo): KeyInfo {
  const w = map(wire, 'KeyInfo') as unknown as WireKeyInfo;
  const info: KeyInfo = {
    keyId: w.key_id,
    state: w.state,
    currentVersion: w.current_version,
    versions: w.versions,
    algorithm: w.algorithm,
    origin: w.origin,
    createdAt: w.created_at,
    description: w.description ?? '',
    tags: w.tags ?? {},
  };
  const rotatedAt = optional(w.rotated_at);
  if (rotatedAt !== undefined) info.rotatedAt = rotatedAt;
  const deletionDate = optional(w.deletion_date);
  if (deletionDate !== undefined) info.deletionDate = deletionDate;
  const period = optional(w.rotation_period_days);
  if (period !== undefined) info.rotationPeriodDays = period;
  return info;
}

const toKeyInfo: Converter = (w) => keyInfoFromWire(w as WireKeyInfo);

const toHealth: Converter = (w) => {
  const r = map(w, 'health result');
  const health = { healthy: r.healthy === true, backend: r.backend, version: r.version } as HealthResult;
  if (typeof r.detail === 'string') health.detail = r.detail;
  return health;
};

const toStatus: Converter = (w) => {
  const r = map(w, 'status result');
  const l = r.limits === undefined || r.limits === null ? {} : map(r.limits, 'status limits');
  return {
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
    ...(r.audit_head !== undefined && r.audit_head !== null ? { auditHead: r.audit_head } : {}),
  } as StatusResult;
};

const toList: Converter = (w) => {
  const r = map(w, 'list_keys result');
  if (!Array.isArray(r.keys)) throw new KmsError('Internal', "malformed list_keys result in the server's answer");
  const out: ListKeysResult = { keys: r.keys.map(toKeyInfo) as KeyInfo[], truncated: r.truncated === true };
  const next = optional(r.next_marker);
  if (typeof next === 'string') out.nextMarker = next;
  return out;
};

const toSeal: Converter = (w) => {
  const r = map(w, 'result');
  return { ciphertext: bytes(r.ciphertext, 'ciphertext'), keyId: r.key_id, keyVersion: r.key_version } as EncryptResult;
};

const toDecrypt: Converter = (w) => {
  const r = map(w, 'decrypt result');
  return { plaintext: bytes(r.plaintext, 'plaintext'), keyId: r.key_id, keyVersion: r.key_version } as DecryptResult;
};

const toDataKey: Converter = (w) => {
  const r = map(w, 'generate_data_key result');
  const out: DataKey = {
    ciphertext: bytes(r.ciphertext, 'ciphertext'),
    keyId: r.key_id as string,
    keyVersion: r.key_version as number,
  };
  if (r.plaintext !== undefined && r.plaintext !== null) out.plaintext = bytes(r.plaintext, 'plaintext');
  return out;
};

const toDataKeyBatch: Converter = (w) => {
  const r = map(w, 'generate_data_key_batch result');
  if (!Array.isArray(r.keys)) throw new KmsError('Internal', "malformed generate_data_key_batch result in the server's answer");
  const keys = r.keys.map((k: unknown) => {
    const e = map(k, 'data key');
    return { plaintext: bytes(e.plaintext, 'plaintext'), ciphertext: bytes(e.ciphertext, 'ciphertext') };
  });
  return { keyId: r.key_id, keyVersion: r.key_version, keys } as DataKeyBatch;
};

// ---------------------------------------------------------------------------------------------------
// The client


/** A call's own ctx fields over the ones set for every call (extra maps merged). */
export function mergeCtx(base: WireContext | undefined, own: WireContext | undefined): WireContext | undefined {
  if (base === undefined) return own;
  if (own === undefined) return base;
  const merged: WireContext = { ...base, ...own };
  if (base.extra !== undefined && own.extra !== undefined) merged.extra = { ...base.extra, ...own.extra };
  return merged;
}

export abstract class KmsOperations {
  /** Runs one operation and converts its wire result; rejects with KmsError. */
  protected abstract invoke(op: OpName, args: object, options: CallOptions | undefined, convert: Converter | undefined): Promise<unknown>;

  health(options?: CallOptions): Promise<HealthResult> {
    return this.invoke('health', {}, options, toHealth) as Promise<HealthResult>;
  }

  status(options?: CallOptions): Promise<StatusResult> {
    return this.invoke('status', {}, options, toStatus) as Promise<StatusResult>;
  }

  createKey(keyId: string, opts?: CreateKeyOptions, options?: CallOptions): Promise<KeyInfo> {
    const args: OpArgs<'create_key'> = { key_id: keyId };
    if (opts !== undefined) {
      if (opts.description !== undefined) args.description = opts.description;
      if (opts.tags !== undefined) args.tags = opts.tags;
      if (opts.rotationPeriodDays !== undefined) args.rotation_period_days = opts.rotationPeriodDays;
    }
    return this.invoke('create_key', args, options, toKeyInfo) as Promise<KeyInfo>;
  }

  describeKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('describe_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  listKeys(opts?: ListKeysOptions, options?: CallOptions): Promise<ListKeysResult> {
    const args: OpArgs<'list_keys'> = {};
    if (opts !== undefined) {
      if (opts.prefix !== undefined) args.prefix = opts.prefix;
      if (opts.marker !== undefined) args.marker = opts.marker;
      if (opts.limit !== undefined) args.limit = opts.limit;
    }
    return this.invoke('list_keys', args, options, toList) as Promise<ListKeysResult>;
  }

  enableKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('enable_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  disableKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('disable_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  rotateKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('rotate_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  scheduleKeyDeletion(keyId: string, pendingDays: number, options?: CallOptions): Promise<KeyInfo> {
    const args: OpArgs<'schedule_key_deletion'> = { key_id: keyId, pending_days: pendingDays };
    return this.invoke('schedule_key_deletion', args, options, toKeyInfo) as Promise<KeyInfo>;
  }

  cancelKeyDeletion(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('cancel_key_deletion', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  /** Replaces the key's description ("" clears it). */
  updateKeyDescription(keyId: string, description: string, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('update_key_description', { key_id: keyId, description }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  /** Adds or overwrites tags. */
  tagKey(keyId: string, tags: Record<string, string>, options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('tag_key', { key_id: keyId, tags }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  /** Removes tags by name; names the key does not carry are ignored. */
  untagKey(keyId: string, tagKeys: readonly string[], options?: CallOptions): Promise<KeyInfo> {
    return this.invoke('untag_key', { key_id: keyId, tag_keys: [...tagKeys] }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  encrypt(keyId: string, plaintext: Uint8Array, opts?: ContextOptions, options?: CallOptions): Promise<EncryptResult>;
  /** The library's request type (src/library); an OperationContext is a CallOptions. */
  encrypt(request: EncryptRequest, options?: CallOptions): Promise<EncryptResult>;
  encrypt(
    keyOrRequest: string | EncryptRequest,
    plaintextOrOptions?: Uint8Array | CallOptions,
    contextOptions?: ContextOptions,
    callOptions?: CallOptions,
  ): Promise<EncryptResult> {
    if (typeof keyOrRequest !== 'string') {
      const r = keyOrRequest;
      return this.encrypt(r.keyId, r.plaintext, r.toOptions(), plaintextOrOptions as CallOptions | undefined);
    }
    const keyId = keyOrRequest;
    const plaintext = plaintextOrOptions as Uint8Array;
    const opts = contextOptions;
    const options = callOptions;
    const args: OpArgs<'encrypt'> = { key_id: keyId, plaintext };
    if (opts?.context !== undefined) args.context = opts.context;
    return this.invoke('encrypt', args, options, toSeal) as Promise<EncryptResult>;
  }

  decrypt(ciphertext: Uint8Array, opts?: ContextOptions, options?: CallOptions): Promise<DecryptResult>;
  /** The library's request type (src/library); an OperationContext is a CallOptions. */
  decrypt(request: DecryptRequest, options?: CallOptions): Promise<DecryptResult>;
  decrypt(
    blobOrRequest: Uint8Array | DecryptRequest,
    optsOrOptions?: ContextOptions | CallOptions,
    callOptions?: CallOptions,
  ): Promise<DecryptResult> {
    if (!(blobOrRequest instanceof Uint8Array)) {
      const r = blobOrRequest;
      return this.decrypt(r.ciphertext, r.toOptions(), optsOrOptions as CallOptions | undefined);
    }
    const ciphertext = blobOrRequest;
    const opts = optsOrOptions as ContextOptions | undefined;
    const options = callOptions;
    const args: OpArgs<'decrypt'> = { ciphertext };
    if (opts?.context !== undefined) args.context = opts.context;
    return this.invoke('decrypt', args, options, toDecrypt) as Promise<DecryptResult>;
  }

  generateDataKey(keyId: string, opts?: GenerateDataKeyOptions, options?: CallOptions): Promise<DataKey>;
  /** The library's request type (src/library); an OperationContext is a CallOptions. */
  generateDataKey(request: GenerateKeyRequest, options?: CallOptions): Promise<DataKey>;
  generateDataKey(
    keyOrRequest: string | GenerateKeyRequest,
    optsOrOptions?: GenerateDataKeyOptions | CallOptions,
    callOptions?: CallOptions,
  ): Promise<DataKey> {
    if (typeof keyOrRequest !== 'string') {
      return this.generateDataKey(keyOrRequest.keyId, keyOrRequest.toOptions(), optsOrOptions as CallOptions | undefined);
    }
    const keyId = keyOrRequest;
    const opts = optsOrOptions as GenerateDataKeyOptions | undefined;
    const options = callOptions;
    const args: OpArgs<'generate_data_key'> = { key_id: keyId };
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.bytes !== undefined) args.bytes = opts.bytes;
      if (opts.withoutPlaintext !== undefined) args.without_plaintext = opts.withoutPlaintext;
    }
    return this.invoke('generate_data_key', args, options, toDataKey) as Promise<DataKey>;
  }

  generateDataKeyBatch(
    keyId: string,
    count: number,
    opts?: GenerateDataKeyBatchOptions,
    options?: CallOptions,
  ): Promise<DataKeyBatch> {
    const args: OpArgs<'generate_data_key_batch'> = { key_id: keyId, count };
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.bytes !== undefined) args.bytes = opts.bytes;
    }
    return this.invoke('generate_data_key_batch', args, options, toDataKeyBatch) as Promise<DataKeyBatch>;
  }

  reEncrypt(ciphertext: Uint8Array, opts?: ReEncryptOptions, options?: CallOptions): Promise<EncryptResult> {
    const args: OpArgs<'re_encrypt'> = { ciphertext };
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.destinationKeyId !== undefined) args.destination_key_id = opts.destinationKeyId;
    }
    return this.invoke('re_encrypt', args, options, toSeal) as Promise<EncryptResult>;
  }

  /** Alias of `health()`, by the RustFS KMS crate's name (`health_check`). */
  healthCheck(options?: CallOptions): Promise<HealthResult> {
    return this.health(options);
  }

  /** `health()` and `status()` in one answer (RustFS KMS crate: `backend_info`). */
  async backendInfo(options?: CallOptions): Promise<BackendInfo> {
    const [health, status] = await Promise.all([this.health(options), this.status(options)]);
    return { ...status, backend: health.backend, healthy: health.healthy, version: health.version };
  }
}
