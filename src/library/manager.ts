// KmsManager: the key service in your own process, after the RustFS KMS crate's `KmsManager`. Every
// call runs through the daemon's one request pipeline (the op table's argument checks, the handler,
// the hash-chained audit log) with transport 'library' and caller kind 'in-process', and answers in
// the same shapes as KmsClient: the two have the same methods, take the same request types and
// OperationContext, and fail with the same KmsError codes, so moving code between in-process and
// the daemon changes the one line that makes the object.
//
// In-process code holds the root key in its own address space, so no policy limits it: every call
// is allowed, and every call is audited.
import { closeSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Caller } from '../access/identity.js';
import { AuditLog } from '../audit/log.js';
import { KmsError } from '../errors.js';
import { KeyService } from '../keys/service.js';
import { StateDirInUseError, lockStateDir } from '../keystore/state-lock.js';
import { native } from '../native/index.js';
import { assertPrivatePath } from '../permissions.js';
import { validateContext } from '../ops/context.js';
import { NO_AUDIT, Pipeline, type Authorizer } from '../ops/pipeline.js';
import { BATCH_COUNT, LIST_LIMIT_MAX, MAX_PLAINTEXT_BYTES, type OpName, type WireContext } from '../ops/protocol.js';
import { KmsOperations, mergeCtx, type CallOptions, type Converter } from '../ops/api.js';
import { VERSION } from '../package-info.js';
import { BackendOpenError, backendEndpoint, openKeystore, openRoot } from '../ops/backends.js';
import type { Keystore } from '../keystore/types.js';
import type { DaemonConfig } from '../config/index.js';
import type { KmsConfig } from './config.js';
import type { OperationContext } from './context.js';

const ALLOW_ALL: Authorizer = { decide: () => ({ allowed: true, rule: -1, reason: 'in-process caller' }) };

export interface KmsManagerOptions {
  /** Operation context sent with every call (a call's own context fields override it). */
  context?: OperationContext | CallOptions;
}

/** In-process, the backends' operational log goes nowhere: errors reach the caller as KmsError. */
const SILENT_LOGGER = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A failure while opening or loading a remote backend, as a KmsError that names the backend (never a credential). */
function backendError(config: DaemonConfig, err: unknown): unknown {
  if (config.root.type === 'local' && config.keystore.type === 'file') return err; // local errors name their files
  const cause = err instanceof BackendOpenError ? err.cause : err;
  const code = cause instanceof KmsError ? cause.code : 'BackendUnavailable';
  const where = config.root.type === 'pkcs11' ? `pkcs11 module ${backendEndpoint(config)}` : `vault at ${backendEndpoint(config)}`;
  return new KmsError(code, `${where}: ${cause instanceof Error ? cause.message : String(cause)}`);
}

function prepareDir(dir: string, create: boolean, what: string): void {
  if (!existsSync(dir)) {
    if (!create) throw new KmsError('BackendUnavailable', `${what} ${dir} does not exist`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
}

export class KmsManager extends KmsOperations {
  private closed = false;

  private constructor(
    readonly config: KmsConfig,
    private readonly pipeline: Pipeline,
    private readonly service: KeyService,
    private readonly audit: AuditLog | undefined,
    private readonly lockFd: number,
    private readonly caller: Caller,
    private readonly baseCtx: WireContext | undefined,
  ) {
    super();
  }

  /**
   * Opens the root of trust and the keystore, loads every key and proves the root opens them, and
   * takes the state directory's lock (a daemon or another manager on the same directory is refused).
   */
  static async create(config: KmsConfig, options: KmsManagerOptions = {}): Promise<KmsManager> {
    const s = config.settings;
    if (s.allowUnlockedMemory) native.setAllowUnlockedMemory(true);
    prepareDir(s.stateDir, config.create, 'state directory');
    assertPrivatePath(s.stateDir, 'state directory');
    let lockFd: number;
    try {
      lockFd = lockStateDir(s.stateDir);
    } catch (err) {
      if (!(err instanceof StateDirInUseError)) throw err;
      throw new KmsError('Busy', `state directory ${s.stateDir} is in use by a rustfs-kmsd or another KmsManager${err.holder} (${join(s.stateDir, 'lock')}: ${err.reason})`);
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
      const backendOptions = { create: config.create, logger: SILENT_LOGGER };
      const root = await openRoot(s, backendOptions).catch((err: unknown) => { throw backendError(s, err); });
      let keystore: Keystore;
      try {
        keystore = await openKeystore(s, backendOptions);
      } catch (err) {
        await root.close().catch(() => undefined);
        throw backendError(s, err);
      }
      service = new KeyService({ keystore, root, idleTtlMs: s.cache.idleTtlS * 1000, offlineTtlMs: s.cache.offlineTtlS * 1000 });
      try {
        await service.start();
      } catch (err) {
        // A remote backend that cannot be reached or does not open the keys: say which one.
        throw backendError(s, err);
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

  // The typed methods (health … reEncrypt) are KmsOperations', shared with KmsClient.

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

  protected invoke(op: OpName, args: object, options: CallOptions | undefined, convert: Converter | undefined): Promise<unknown> {
    if (this.closed) return Promise.reject(new KmsError('BackendUnavailable', 'the KMS manager was closed'));
    let claimed: WireContext | undefined;
    try {
      const own = options?.ctx;
      claimed = mergeCtx(this.baseCtx, own === undefined ? undefined : validCtx(own));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<unknown>((resolve, reject) => {
      this.pipeline.run(op, args as Record<string, unknown>, this.caller, claimed, 'library', (error, result) => {
        try {
          this.pipeline.flushAudit(); // the audit line is in the file before the caller sees the answer
        } catch (err) {
          reject(err);
          return;
        }
        if (error !== null) {
          reject(error);
          return;
        }
        try {
          resolve(convert === undefined ? result : convert(result));
        } catch (err) {
          reject(err instanceof KmsError ? err : new KmsError('Internal', `malformed ${op} result: ${(err as Error).message}`));
        }
      });
    });
  }
}

/** The same checks of a context as the socket server makes (`ctx` in docs/protocol.md §4). */
function validCtx(ctx: WireContext): WireContext | undefined {
  return validateContext(ctx);
}
