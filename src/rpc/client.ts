// KmsClient: the TypeScript client of the socket protocol (docs/protocol.md). One connection, many
// calls in flight (pipelined, answers matched by id), a deadline per call, lazy reconnection with
// exponential back-off after the connection is lost.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  FrameReader,
  FrameTooLargeError,
  decodeMessage,
  encodeFrame,
  validateResponse,
} from './codec.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  KmsError,
  type EncryptionContext,
  type ErrorCode,
  type KeyAlgorithm,
  type KeyOrigin,
  type KeyState,
  type OpArgs,
  type OpName,
  type OpResult,
  type WireContext,
  type WireKeyInfo,
  type WireResponse,
  type WireStatus,
} from './protocol.js';
import type { DecryptRequest, EncryptRequest, GenerateKeyRequest } from '../library/requests.js';

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

export interface KeyInfo {
  keyId: string;
  state: KeyState;
  currentVersion: number;
  versions: number;
  algorithm: KeyAlgorithm;
  origin: KeyOrigin;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  rotatedAt?: number;
  deletionDate?: number;
  rotationPeriodDays?: number;
  description: string;
  tags: Record<string, string>;
}

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

export interface CreateKeyOptions {
  description?: string;
  tags?: Record<string, string>;
  rotationPeriodDays?: number;
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

type Converter = (wire: unknown) => unknown;

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

class PendingCall {
  constructor(
    readonly resolve: (value: unknown) => void,
    readonly reject: (err: Error) => void,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly op: string,
    readonly convert: Converter | undefined,
  ) {}
}

type State = 'idle' | 'connecting' | 'connected' | 'closed';

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const MAX_ID = 0xffffffff;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function mergeCtx(base: WireContext | undefined, own: WireContext): WireContext {
  if (base === undefined) return own;
  const merged: WireContext = { ...base, ...own };
  if (base.extra !== undefined && own.extra !== undefined) merged.extra = { ...base.extra, ...own.extra };
  return merged;
}

export class KmsClient {
  readonly path: string;
  private readonly timeoutMs: number;
  private readonly reconnectOpts: Required<ReconnectOptions> | false;
  private readonly ctx: WireContext | undefined;
  private readonly maxFrameBytes: number;
  private readonly maxResponseBytes: number;

  private state: State = 'idle';
  private socket: net.Socket | undefined;
  private reader: FrameReader | undefined;
  private readonly pending = new Map<number, PendingCall>();
  private nextId = 1;
  /** Frames of calls made while there was no connection, sent once there is one. */
  private queuedIds: number[] = [];
  private queuedFrames: Buffer[] = [];
  private corkedSocket: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffWake: (() => void) | undefined;

  private constructor(path: string, options: KmsClientOptions) {
    this.path = path;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const r = options.reconnect;
    this.reconnectOpts =
      r === false
        ? false
        : {
            initialDelayMs: r?.initialDelayMs ?? 50,
            maxDelayMs: r?.maxDelayMs ?? 2000,
            maxAttempts: r?.maxAttempts ?? 10,
          };
    this.ctx = options.ctx;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /**
   * Connects to the daemon's socket (one attempt: a daemon that is not there fails fast with
   * BackendUnavailable). Later losses of the connection are repaired lazily by the next call.
   */
  static async connect(path: string, options: KmsClientOptions = {}): Promise<KmsClient> {
    const client = new KmsClient(path, options);
    client.state = 'connecting';
    try {
      await client.open();
    } catch (err) {
      client.state = 'idle';
      throw new KmsError('BackendUnavailable', `cannot connect to ${path}: ${errorText(err)}`);
    }
    return client;
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Calls waiting for an answer (sent or waiting for a connection). */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one request and resolves with its wire result (snake_case, binaries as Buffers), or rejects
   * with a KmsError: the server's error code; BackendUnavailable when the connection is lost, cannot be
   * re-established, or no answer came within the deadline; FrameTooLarge when the request exceeds
   * `maxFrameBytes` (not sent) or the server refused a frame.
   */
  call<Op extends OpName>(op: Op, args: OpArgs<Op>, options?: CallOptions): Promise<OpResult<Op>> {
    return this.request(op, args, options, undefined) as Promise<OpResult<Op>>;
  }

  health(options?: CallOptions): Promise<HealthResult> {
    return this.request('health', {}, options, toHealth) as Promise<HealthResult>;
  }

  status(options?: CallOptions): Promise<StatusResult> {
    return this.request('status', {}, options, toStatus) as Promise<StatusResult>;
  }

  createKey(keyId: string, opts?: CreateKeyOptions, options?: CallOptions): Promise<KeyInfo> {
    const args: OpArgs<'create_key'> = { key_id: keyId };
    if (opts !== undefined) {
      if (opts.description !== undefined) args.description = opts.description;
      if (opts.tags !== undefined) args.tags = opts.tags;
      if (opts.rotationPeriodDays !== undefined) args.rotation_period_days = opts.rotationPeriodDays;
    }
    return this.request('create_key', args, options, toKeyInfo) as Promise<KeyInfo>;
  }

  describeKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.request('describe_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  listKeys(opts?: ListKeysOptions, options?: CallOptions): Promise<ListKeysResult> {
    const args: OpArgs<'list_keys'> = {};
    if (opts !== undefined) {
      if (opts.prefix !== undefined) args.prefix = opts.prefix;
      if (opts.marker !== undefined) args.marker = opts.marker;
      if (opts.limit !== undefined) args.limit = opts.limit;
    }
    return this.request('list_keys', args, options, toList) as Promise<ListKeysResult>;
  }

  enableKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.request('enable_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  disableKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.request('disable_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  rotateKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.request('rotate_key', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
  }

  scheduleKeyDeletion(keyId: string, pendingDays: number, options?: CallOptions): Promise<KeyInfo> {
    const args: OpArgs<'schedule_key_deletion'> = { key_id: keyId, pending_days: pendingDays };
    return this.request('schedule_key_deletion', args, options, toKeyInfo) as Promise<KeyInfo>;
  }

  cancelKeyDeletion(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.request('cancel_key_deletion', { key_id: keyId }, options, toKeyInfo) as Promise<KeyInfo>;
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
    return this.request('encrypt', args, options, toSeal) as Promise<EncryptResult>;
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
    return this.request('decrypt', args, options, toDecrypt) as Promise<DecryptResult>;
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
    return this.request('generate_data_key', args, options, toDataKey) as Promise<DataKey>;
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
    return this.request('generate_data_key_batch', args, options, toDataKeyBatch) as Promise<DataKeyBatch>;
  }

  reEncrypt(ciphertext: Uint8Array, opts?: ReEncryptOptions, options?: CallOptions): Promise<EncryptResult> {
    const args: OpArgs<'re_encrypt'> = { ciphertext };
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.destinationKeyId !== undefined) args.destination_key_id = opts.destinationKeyId;
    }
    return this.request('re_encrypt', args, options, toSeal) as Promise<EncryptResult>;
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

  /** Fails every outstanding call with BackendUnavailable and closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.wakeBackoff();
    this.queuedIds = [];
    this.queuedFrames = [];
    this.rejectAll('BackendUnavailable', `client for ${this.path} was closed`);
    const s = this.socket;
    this.socket = undefined;
    this.reader = undefined;
    if (s !== undefined && !s.destroyed) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    }
  }

  // -------------------------------------------------------------------------------------------------

  private request(op: string, args: object, options: CallOptions | undefined, convert: Converter | undefined): Promise<unknown> {
    if (this.state === 'closed') {
      return Promise.reject(new KmsError('BackendUnavailable', `client for ${this.path} was closed`));
    }
    if (this.state === 'idle' && this.reconnectOpts === false) {
      return Promise.reject(
        new KmsError('BackendUnavailable', `not connected to ${this.path} (the connection was lost; reconnect is disabled)`),
      );
    }
    let timeoutMs = this.timeoutMs;
    let ctx = this.ctx;
    if (options !== undefined) {
      if (options.timeoutMs !== undefined) timeoutMs = options.timeoutMs;
      if (options.ctx !== undefined) ctx = mergeCtx(ctx, options.ctx);
    }
    const id = this.allocId();
    let frame: Buffer;
    try {
      frame = encodeFrame(ctx === undefined ? { id, op, args } : { id, op, args, ctx });
    } catch (err) {
      return Promise.reject(new KmsError('InvalidRequest', `cannot encode the ${op} request: ${errorText(err)}`));
    }
    if (frame.length - 4 > this.maxFrameBytes) {
      return Promise.reject(
        new KmsError('FrameTooLarge', `${op} request is ${frame.length - 4} bytes; the limit is ${this.maxFrameBytes}`),
      );
    }
    return new Promise<unknown>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.pending.set(id, new PendingCall(resolve, reject, deadline, timeoutMs, op, convert));
      if (deadline < this.timerAt) this.armTimer(deadline);
      if (this.state === 'connected') {
        this.write(frame);
      } else {
        this.queuedIds.push(id);
        this.queuedFrames.push(frame);
        if (this.state === 'idle') void this.reconnect();
      }
    });
  }

  private allocId(): number {
    let id = this.nextId;
    while (this.pending.has(id)) id = id === MAX_ID ? 1 : id + 1;
    this.nextId = id === MAX_ID ? 1 : id + 1;
    return id;
  }

  private write(frame: Buffer): void {
    const s = this.socket as net.Socket;
    if (this.corkedSocket === undefined) {
      // Everything written in this tick leaves in one writev.
      this.corkedSocket = s;
      s.cork();
      process.nextTick(this.uncork);
    }
    s.write(frame);
  }

  private readonly uncork = (): void => {
    const s = this.corkedSocket;
    this.corkedSocket = undefined;
    s?.uncork();
  };

  // -- deadlines: one timer for all calls, armed for the earliest deadline --------------------------

  private armTimer(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = deadline;
    // setTimeout takes at most 2^31-1 ms; a later deadline is simply re-armed when that fires.
    this.timer = setTimeout(this.onTimer, Math.min(0x7fffffff, Math.max(0, Math.ceil(deadline - performance.now()))));
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.reject(new KmsError('BackendUnavailable', `no answer within ${p.timeoutMs} ms (${p.op})`));
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next !== Infinity) this.armTimer(next);
  };

  // -- connection -----------------------------------------------------------------------------------

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = net.createConnection({ path: this.path });
      const onError = (err: Error): void => {
        s.destroy();
        reject(err);
      };
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        if (this.state === 'closed') {
          s.destroy();
          reject(new Error('client was closed'));
          return;
        }
        this.attach(s);
        resolve();
      });
    });
  }

  private attach(s: net.Socket): void {
    const reader = new FrameReader(this.maxResponseBytes);
    this.socket = s;
    this.reader = reader;
    this.state = 'connected';
    let lastError: Error | undefined;
    s.on('data', (chunk: Buffer) => this.onData(s, reader, chunk));
    s.on('error', (err: Error) => {
      lastError = err;
    });
    s.on('close', () => {
      if (this.socket !== s) return;
      this.socket = undefined;
      this.reader = undefined;
      if (this.state === 'closed') return;
      this.state = 'idle';
      const why = lastError !== undefined ? lastError.message : 'the server closed the connection';
      this.rejectAll('BackendUnavailable', `connection to ${this.path} lost: ${why}`);
    });
    // Calls made while there was no connection.
    const ids = this.queuedIds;
    const frames = this.queuedFrames;
    this.queuedIds = [];
    this.queuedFrames = [];
    for (let i = 0; i < ids.length; i++) {
      if (this.pending.has(ids[i])) this.write(frames[i]);
    }
  }

  private onData(s: net.Socket, reader: FrameReader, chunk: Buffer): void {
    if (this.socket !== s) return;
    let bodies: Buffer[];
    try {
      bodies = reader.push(chunk);
    } catch (err) {
      if (err instanceof FrameTooLargeError) {
        for (const body of err.frames) if (!this.handleBody(s, body)) return;
      }
      this.drop(s, `answer frame refused: ${errorText(err)}`);
      return;
    }
    for (let i = 0; i < bodies.length; i++) if (!this.handleBody(s, bodies[i])) return;
  }

  /** Returns false when the connection was dropped. */
  private handleBody(s: net.Socket, body: Buffer): boolean {
    let resp: WireResponse;
    try {
      resp = validateResponse(decodeMessage(body));
    } catch (err) {
      this.drop(s, `malformed answer: ${errorText(err)}`);
      return false;
    }
    const id = resp.id;
    if (!resp.ok && id === 0) {
      // A connection-level refusal (FrameTooLarge, Busy, or a request the server could not read):
      // it cannot be matched to a call, so every call in flight fails with it.
      this.rejectAll(resp.error.code, resp.error.message);
      if (resp.error.code === 'FrameTooLarge') {
        this.drop(s, resp.error.message);
        return false;
      }
      return true;
    }
    const p = this.pending.get(id);
    if (p === undefined) return true; // late answer to a call that timed out
    this.pending.delete(id);
    if (!resp.ok) {
      p.reject(new KmsError(resp.error.code, resp.error.message));
      return true;
    }
    if (p.convert === undefined) {
      p.resolve(resp.result);
      return true;
    }
    let value: unknown;
    try {
      value = p.convert(resp.result);
    } catch (err) {
      p.reject(err instanceof KmsError ? err : new KmsError('Internal', `malformed ${p.op} result: ${errorText(err)}`));
      return true;
    }
    p.resolve(value);
    return true;
  }

  /** Abandons a connection that cannot be trusted any more; in-flight calls fail with `reason`. */
  private drop(s: net.Socket, reason: string): void {
    if (this.socket === s) {
      this.socket = undefined;
      this.reader = undefined;
      if (this.state !== 'closed') this.state = 'idle';
      this.rejectAll('BackendUnavailable', `connection to ${this.path} lost: ${reason}`);
    }
    s.destroy();
  }

  private rejectAll(code: ErrorCode, message: string): void {
    if (this.pending.size === 0) return;
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const p of calls) p.reject(new KmsError(code, message));
  }

  private async reconnect(): Promise<void> {
    const opts = this.reconnectOpts;
    if (opts === false) return;
    this.state = 'connecting';
    let delay = opts.initialDelayMs;
    let lastError: unknown;
    for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
      if (this.state !== 'connecting') return;
      try {
        await this.open();
        return;
      } catch (err) {
        lastError = err;
      }
      if (attempt < opts.maxAttempts) {
        await this.backoff(delay);
        delay = Math.min(delay * 2, opts.maxDelayMs);
      }
    }
    if (this.state !== 'connecting') return;
    this.state = 'idle';
    const message = `cannot reconnect to ${this.path} after ${opts.maxAttempts} attempts: ${errorText(lastError)}`;
    const ids = this.queuedIds;
    this.queuedIds = [];
    this.queuedFrames = [];
    for (const id of ids) {
      const p = this.pending.get(id);
      if (p === undefined) continue;
      this.pending.delete(id);
      p.reject(new KmsError('BackendUnavailable', message));
    }
  }

  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.backoffWake = resolve;
      this.backoffTimer = setTimeout(() => {
        this.backoffTimer = undefined;
        this.backoffWake = undefined;
        resolve();
      }, ms);
    });
  }

  private wakeBackoff(): void {
    if (this.backoffTimer !== undefined) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    const wake = this.backoffWake;
    this.backoffWake = undefined;
    wake?.();
  }
}

