// KmsManager: the key service in your own process, after the RustFS KMS crate's `KmsManager`. Every
// call runs through the daemon's one request pipeline (the op table's argument checks, the handler,
// the hash-chained audit log) with transport 'library' and caller kind 'in-process', and answers in
// the same shapes as KmsClient: the two have the same methods, take the same request types and
// OperationContext, and fail with the same KmsError codes, so moving code between in-process and
// the daemon changes the one line that makes the object.
//
// In-process code holds the root key in its own address space, so no policy limits it: every call
// is allowed, and every call is audited.
import { closeSync, constants as fsc, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Caller } from '../access/identity.js';
import { AuditLog } from '../audit/log.js';
import { KmsError } from '../errors.js';
import { KeyService } from '../keys/service.js';
import { native } from '../native/index.js';
import { assertPrivatePath } from '../roots/permissions.js';
import { validateRequest } from '../rpc/codec.js';
import { NO_AUDIT, Pipeline, type Authorizer } from '../rpc/pipeline.js';
import { BATCH_COUNT, LIST_LIMIT_MAX, MAX_PLAINTEXT_BYTES, type OpName, type WireContext } from '../rpc/protocol.js';
import type {
  BackendInfo, CallOptions, ContextOptions, CreateKeyOptions, DataKey, DataKeyBatch, DecryptResult, EncryptResult,
  GenerateDataKeyBatchOptions, GenerateDataKeyOptions, HealthResult, KeyInfo, ListKeysOptions, ListKeysResult,
  ReEncryptOptions, StatusResult,
} from '../rpc/client.js';
import { VERSION } from '../package-info.js';
import { backendError, openKeystore, openRoot } from './backends.js';
import type { KmsConfig } from './config.js';
import type { OperationContext } from './context.js';
import { toDataKey, toDataKeyBatch, toDecrypt, toHealth, toKeyInfo, toList, toSeal, toStatus } from './convert.js';
import type { DecryptRequest, EncryptRequest, GenerateKeyRequest } from './requests.js';

const ALLOW_ALL: Authorizer = { decide: () => ({ allowed: true, rule: -1, reason: 'in-process caller' }) };

export interface KmsManagerOptions {
  /** Operation context sent with every call (a call's own context fields override it). */
  context?: OperationContext | CallOptions;
}

function mergeCtx(base: WireContext | undefined, own: WireContext | undefined): WireContext | undefined {
  if (base === undefined) return own;
  if (own === undefined) return base;
  const merged: WireContext = { ...base, ...own };
  if (base.extra !== undefined && own.extra !== undefined) merged.extra = { ...base.extra, ...own.extra };
  return merged;
}

function prepareDir(dir: string, create: boolean, what: string): void {
  if (!existsSync(dir)) {
    if (!create) throw new KmsError('BackendUnavailable', `${what} ${dir} does not exist`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
}

export class KmsManager {
  private closed = false;

  private constructor(
    readonly config: KmsConfig,
    private readonly pipeline: Pipeline,
    private readonly service: KeyService,
    private readonly audit: AuditLog | undefined,
    private readonly lockFd: number,
    private readonly caller: Caller,
    private readonly baseCtx: WireContext | undefined,
  ) {}

  /**
   * Opens the root of trust and the keystore, loads every key and proves the root opens them, and
   * takes the state directory's lock (a daemon or another manager on the same directory is refused).
   */
  static async create(config: KmsConfig, options: KmsManagerOptions = {}): Promise<KmsManager> {
    const s = config.settings;
    if (s.allowUnlockedMemory) native.setAllowUnlockedMemory(true);
    prepareDir(s.stateDir, config.create, 'state directory');
    assertPrivatePath(s.stateDir, 'state directory');
    const lockPath = join(s.stateDir, 'lock');
    const lockFd = openSync(lockPath, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
    try {
      native.lockFile(lockFd);
    } catch (err) {
      closeSync(lockFd);
      throw new KmsError('Busy', `state directory ${s.stateDir} is in use by a rustfs-kmsd or another KmsManager (${lockPath}: ${(err as Error).message})`);
    }
    let audit: AuditLog | undefined;
    let service: KeyService | undefined;
    try {
      if (config.auditPath !== undefined) {
        prepareDir(dirname(config.auditPath), config.create, 'audit log directory');
        audit = AuditLog.open({
          path: config.auditPath, fsync: s.audit.fsync, fsyncIntervalMs: s.audit.fsyncIntervalMs, maxBytes: s.audit.maxBytes,
        });
        audit.lifecycle('library_open', { version: VERSION, pid: process.pid });
      }
      const root = await openRoot(s, config.create);
      let keystore: ReturnType<typeof openKeystore>;
      try {
        keystore = openKeystore(s);
      } catch (err) {
        await root.close().catch(() => undefined);
        throw err;
      }
      service = new KeyService({ keystore, root, idleTtlMs: s.cache.idleTtlS * 1000, offlineTtlMs: s.cache.offlineTtlS * 1000 });
      try {
        await service.start();
      } catch (err) {
        // A remote backend that cannot be reached or does not open the keys: say which one.
        throw config.backend === 'vault' ? backendError(s, err) : err;
      }
      const auditLog = audit;
      const pipeline = new Pipeline(
        {
          service,
          version: VERSION,
          endpoint: s.root.type === 'vault-transit' ? (s.root.vault?.address ?? s.stateDir) : s.stateDir,
          limits: {
            max_frame_bytes: s.limits.maxFrameBytes,
            max_plaintext_bytes: MAX_PLAINTEXT_BYTES,
            max_batch_count: BATCH_COUNT.max,
            max_list_limit: LIST_LIMIT_MAX,
            max_connections: s.limits.maxConnections,
            max_inflight_per_connection: s.limits.maxInflightPerConnection,
          },
          ...(auditLog !== undefined ? { auditHead: () => auditLog.head } : {}),
        },
        ALLOW_ALL,
        audit ?? NO_AUDIT,
      );
      const caller: Caller = { kind: 'in-process', pid: process.pid };
      const uid = process.getuid?.();
      const gid = process.getgid?.();
      if (uid !== undefined) caller.uid = uid;
      if (gid !== undefined) caller.gid = gid;
      const base = options.context?.ctx;
      return new KmsManager(config, pipeline, service, audit, lockFd, caller, base === undefined ? undefined : validCtx(base));
    } catch (err) {
      if (service !== undefined) await service.close().catch(() => undefined);
      if (audit !== undefined) await audit.close().catch(() => undefined);
      closeSync(lockFd);
      throw err;
    }
  }

  /** The key used when a caller names none (config `default_key_id` / RUSTFS_KMS_DEFAULT_KEY_ID). */
  get defaultKeyId(): string | undefined {
    return this.config.defaultKeyId;
  }

  // ---- the same methods as KmsClient ----------------------------------------------------------------

  health(options?: CallOptions): Promise<HealthResult> {
    return this.call('health', {}, options, toHealth);
  }

  /** Alias of `health()` (RustFS KMS crate: `health_check`). */
  healthCheck(options?: CallOptions): Promise<HealthResult> {
    return this.health(options);
  }

  status(options?: CallOptions): Promise<StatusResult> {
    return this.call('status', {}, options, toStatus);
  }

  /** `health()` and `status()` in one answer (RustFS KMS crate: `backend_info`). */
  async backendInfo(options?: CallOptions): Promise<BackendInfo> {
    const [health, status] = await Promise.all([this.health(options), this.status(options)]);
    return { ...status, backend: health.backend, healthy: health.healthy, version: health.version };
  }

  createKey(keyId: string, opts?: CreateKeyOptions, options?: CallOptions): Promise<KeyInfo> {
    const args: Record<string, unknown> = { key_id: keyId };
    if (opts !== undefined) {
      if (opts.description !== undefined) args.description = opts.description;
      if (opts.tags !== undefined) args.tags = opts.tags;
      if (opts.rotationPeriodDays !== undefined) args.rotation_period_days = opts.rotationPeriodDays;
    }
    return this.call('create_key', args, options, toKeyInfo);
  }

  describeKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.call('describe_key', { key_id: keyId }, options, toKeyInfo);
  }

  /** Accepts a `ListKeysRequest` (it is a `ListKeysOptions`). */
  listKeys(opts?: ListKeysOptions, options?: CallOptions): Promise<ListKeysResult> {
    const args: Record<string, unknown> = {};
    if (opts !== undefined) {
      if (opts.prefix !== undefined) args.prefix = opts.prefix;
      if (opts.marker !== undefined) args.marker = opts.marker;
      if (opts.limit !== undefined) args.limit = opts.limit;
    }
    return this.call('list_keys', args, options, toList);
  }

  enableKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.call('enable_key', { key_id: keyId }, options, toKeyInfo);
  }

  disableKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.call('disable_key', { key_id: keyId }, options, toKeyInfo);
  }

  rotateKey(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.call('rotate_key', { key_id: keyId }, options, toKeyInfo);
  }

  scheduleKeyDeletion(keyId: string, pendingDays: number, options?: CallOptions): Promise<KeyInfo> {
    return this.call('schedule_key_deletion', { key_id: keyId, pending_days: pendingDays }, options, toKeyInfo);
  }

  cancelKeyDeletion(keyId: string, options?: CallOptions): Promise<KeyInfo> {
    return this.call('cancel_key_deletion', { key_id: keyId }, options, toKeyInfo);
  }

  encrypt(keyId: string, plaintext: Uint8Array, opts?: ContextOptions, options?: CallOptions): Promise<EncryptResult>;
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
    const args: Record<string, unknown> = { key_id: keyOrRequest, plaintext: plaintextOrOptions };
    if (contextOptions?.context !== undefined) args.context = contextOptions.context;
    return this.call('encrypt', args, callOptions, toSeal);
  }

  decrypt(ciphertext: Uint8Array, opts?: ContextOptions, options?: CallOptions): Promise<DecryptResult>;
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
    const args: Record<string, unknown> = { ciphertext: blobOrRequest };
    const opts = optsOrOptions as ContextOptions | undefined;
    if (opts?.context !== undefined) args.context = opts.context;
    return this.call('decrypt', args, callOptions, toDecrypt);
  }

  generateDataKey(keyId: string, opts?: GenerateDataKeyOptions, options?: CallOptions): Promise<DataKey>;
  generateDataKey(request: GenerateKeyRequest, options?: CallOptions): Promise<DataKey>;
  generateDataKey(
    keyOrRequest: string | GenerateKeyRequest,
    optsOrOptions?: GenerateDataKeyOptions | CallOptions,
    callOptions?: CallOptions,
  ): Promise<DataKey> {
    if (typeof keyOrRequest !== 'string') {
      return this.generateDataKey(keyOrRequest.keyId, keyOrRequest.toOptions(), optsOrOptions as CallOptions | undefined);
    }
    const args: Record<string, unknown> = { key_id: keyOrRequest };
    const opts = optsOrOptions as GenerateDataKeyOptions | undefined;
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.bytes !== undefined) args.bytes = opts.bytes;
      if (opts.withoutPlaintext !== undefined) args.without_plaintext = opts.withoutPlaintext;
    }
    return this.call('generate_data_key', args, callOptions, toDataKey);
  }

  generateDataKeyBatch(keyId: string, count: number, opts?: GenerateDataKeyBatchOptions, options?: CallOptions): Promise<DataKeyBatch> {
    const args: Record<string, unknown> = { key_id: keyId, count };
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.bytes !== undefined) args.bytes = opts.bytes;
    }
    return this.call('generate_data_key_batch', args, options, toDataKeyBatch);
  }

  reEncrypt(ciphertext: Uint8Array, opts?: ReEncryptOptions, options?: CallOptions): Promise<EncryptResult> {
    const args: Record<string, unknown> = { ciphertext };
    if (opts !== undefined) {
      if (opts.context !== undefined) args.context = opts.context;
      if (opts.destinationKeyId !== undefined) args.destination_key_id = opts.destinationKeyId;
    }
    return this.call('re_encrypt', args, options, toSeal);
  }

  /** Wipes this manager's keys, closes the audit log and releases the state directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.service.close();
    if (this.audit !== undefined) {
      this.audit.lifecycle('library_close', { pid: process.pid });
      await this.audit.close();
    }
    closeSync(this.lockFd);
  }

  // ---------------------------------------------------------------------------------------------------

  private call<T>(op: OpName, args: Record<string, unknown>, options: CallOptions | undefined, convert: (wire: unknown) => T): Promise<T> {
    if (this.closed) return Promise.reject(new KmsError('BackendUnavailable', 'the KMS manager was closed'));
    let claimed: WireContext | undefined;
    try {
      const own = options?.ctx;
      claimed = mergeCtx(this.baseCtx, own === undefined ? undefined : validCtx(own));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      this.pipeline.run(op, args, this.caller, claimed, 'library', (error, result) => {
        this.pipeline.flushAudit(); // the audit line is in the file before the caller sees the answer
        if (error !== null) {
          reject(error);
          return;
        }
        try {
          resolve(convert(result));
        } catch (err) {
          reject(err instanceof KmsError ? err : new KmsError('Internal', `malformed ${op} result: ${(err as Error).message}`));
        }
      });
    });
  }
}

/** The same checks of a context as the socket server makes (`ctx` in docs/protocol.md §4). */
function validCtx(ctx: WireContext): WireContext | undefined {
  return validateRequest({ id: 1, op: 'health', args: {}, ctx }).ctx;
}
