// KmsConfig: how an in-process KmsManager finds its keys, after the RustFS KMS crate's
// `KmsConfig::local(dir)` / `KmsConfig::vault(url, token)` / `KmsConfig::from_env()`. Every
// constructor goes through the daemon's own config loader (src/config/), so values are
// checked exactly as the daemon checks them and bad ones fail with the field's name.
import { isAbsolute, join, resolve } from 'node:path';
import { configFromYaml, loadConfig, type ConfigEnv, type DaemonConfig } from '../config/index.js';
import { KmsError } from '../errors.js';
import { KEY_ID_PATTERN } from '../ops/protocol.js';

export type BackendKind = 'local' | 'vault';

const PRODUCTION_AUDIT_PATH = '/var/log/rustfs-kms/audit.log';

/** Options every constructor takes. */
export interface CommonKmsOptions {
  /** The key used when a caller names none (RUSTFS_KMS_DEFAULT_KEY_ID). */
  defaultKeyId?: string;
  /**
   * The hash-chained audit log: a path, or `false` for none. Default: the config's `audit.path`
   * (`<dir>/audit.log` for `local(dir)`).
   */
  auditLog?: string | false;
  /** Run even if key memory cannot be mlock()ed (the daemon's --allow-unlocked-memory). */
  allowUnlockedMemory?: boolean;
  /** Key cache: idle TTL and offline window, in seconds. */
  cache?: { idleTtlS?: number; offlineTtlS?: number };
  /** Timeout of each call to a remote root or keystore, in seconds (RUSTFS_KMS_TIMEOUT_SECS). */
  timeoutSecs?: number;
  /** Retries, with back-off, of remote calls that fail (RUSTFS_KMS_RETRY_ATTEMPTS). */
  retryAttempts?: number;
}

export interface LocalKmsOptions extends CommonKmsOptions {
  /** Create the directory and its root key file on first use (default true, like RustFS's local backend). */
  create?: boolean;
}

export interface VaultKmsOptions extends CommonKmsOptions {
  namespace?: string;
  transitMount?: string;
  transitKey?: string;
  kvMount?: string;
  /** Where the lock file and (by default) the audit log live; default `<cwd>/.kms`. */
  stateDir?: string;
}

export interface FromEnvOptions extends CommonKmsOptions {
  /** Development defaults (state under ./.kms, root key created on first use), as `rustfs-kmsd --dev`. */
  dev?: boolean;
  /** Working directory for relative paths; default process.cwd(). */
  cwd?: string;
}

function assertDefaultKeyId(id: string | undefined): void {
  if (id !== undefined && !KEY_ID_PATTERN.test(id)) {
    throw new KmsError('InvalidKeyId', `defaultKeyId ${JSON.stringify(id.slice(0, 64))} is not a valid key id`);
  }
}

export class KmsConfig {
  private constructor(
    /** The daemon-shaped configuration this manager runs with (validated). */
    readonly settings: DaemonConfig,
    /** Whether the state directory and local root key may be created when missing. */
    readonly create: boolean,
    /** Audit log path, or undefined for none. */
    readonly auditPath: string | undefined,
  ) {}

  private static finish(settings: DaemonConfig, create: boolean, options: CommonKmsOptions, cwd: string): KmsConfig {
    assertDefaultKeyId(options.defaultKeyId);
    const s: DaemonConfig = { ...settings, cache: { ...settings.cache }, audit: { ...settings.audit } };
    if (options.defaultKeyId !== undefined) s.defaultKeyId = options.defaultKeyId;
    if (options.allowUnlockedMemory === true) s.allowUnlockedMemory = true;
    if (options.cache?.idleTtlS !== undefined) s.cache.idleTtlS = options.cache.idleTtlS;
    if (options.cache?.offlineTtlS !== undefined) s.cache.offlineTtlS = options.cache.offlineTtlS;
    if (options.timeoutSecs !== undefined) {
      if (!Number.isInteger(options.timeoutSecs) || options.timeoutSecs < 1 || options.timeoutSecs > 3600) {
        throw new KmsError('InvalidRequest', 'timeoutSecs must be an integer from 1 to 3600');
      }
      s.timeoutSecs = options.timeoutSecs;
    }
    if (options.retryAttempts !== undefined) {
      if (!Number.isInteger(options.retryAttempts) || options.retryAttempts < 0 || options.retryAttempts > 20) {
        throw new KmsError('InvalidRequest', 'retryAttempts must be an integer from 0 to 20');
      }
      s.retryAttempts = options.retryAttempts;
    }
    let auditPath: string | undefined = s.audit.path;
    if (options.auditLog === false) auditPath = undefined;
    else if (options.auditLog !== undefined) auditPath = isAbsolute(options.auditLog) ? options.auditLog : resolve(cwd, options.auditLog);
    if (auditPath !== undefined) s.audit.path = auditPath;
    return new KmsConfig(s, create, auditPath);
  }

  /**
   * Local root key file and file keystore in `dir` (created, 0700, with a fresh root key on first
   * use unless `create: false`); audit log `<dir>/audit.log`.
   */
  static local(dir: string, options: LocalKmsOptions = {}): KmsConfig {
    const cwd = process.cwd();
    const settings = configFromYaml('', { cli: { stateDir: dir, dev: true }, cwd });
    return KmsConfig.finish(settings, options.create ?? true, options, cwd);
  }

  /**
   * Vault Transit root and Vault KV v2 keystore at `url`, token auth, opened through the same wiring
   * as the daemon's (one Vault client shared by root and keystore).
   */
  static vault(url: string, token: string, options: VaultKmsOptions = {}): KmsConfig {
    const cwd = process.cwd();
    const env: Record<string, string> = { RUSTFS_KMS_TYPE: 'vault', RUSTFS_KMS_VAULT_ADDRESS: url, RUSTFS_KMS_VAULT_TOKEN: token };
    if (options.namespace !== undefined) env.RUSTFS_KMS_VAULT_NAMESPACE = options.namespace;
    const settings = configFromYaml('', {
      env, cwd, cli: { dev: true, ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : {}) },
    });
    const vault = settings.root.vault;
    if (vault !== undefined) {
      if (options.transitMount !== undefined) vault.transitMount = options.transitMount;
      if (options.transitKey !== undefined) vault.transitKey = options.transitKey;
      if (options.kvMount !== undefined) {
        vault.kvMount = options.kvMount;
        settings.keystore.kvMount = options.kvMount;
      }
    }
    return KmsConfig.finish(settings, true, options, cwd);
  }

  /**
   * The daemon's configuration sources: `RUSTFS_KMS_CONFIG` (or /etc/rustfs-kms/config.yaml when it
   * exists and `dev` is off) overlaid by the same `RUSTFS_KMS_*` variables (TYPE, VAULT_ADDRESS,
   * VAULT_TOKEN, VAULT_NAMESPACE, LOCAL_KEY_DIR, LOCAL_MASTER_KEY, DEFAULT_KEY_ID, TIMEOUT_SECS,
   * RETRY_ATTEMPTS, AUDIT_PATH, …). Production rules apply unless `dev`: the root key must exist
   * (`rustfs-kms init`). The audit log is RUSTFS_KMS_AUDIT_PATH or the config's `audit.path`, else
   * `<state_dir>/audit.log` (never the daemon's /var/log/rustfs-kms/audit.log); its directory must exist.
   */
  static fromEnv(env: ConfigEnv = process.env, options: FromEnvOptions = {}): KmsConfig {
    const cwd = options.cwd ?? process.cwd();
    const settings = loadConfig({ env, cli: options.dev === true ? { dev: true } : {}, cwd });
    // In-process, the daemon's default log (/var/log/rustfs-kms) would be shared with a daemon: use the state directory's.
    if (settings.audit.path === PRODUCTION_AUDIT_PATH && (env.RUSTFS_KMS_AUDIT_PATH ?? '') === '') {
      settings.audit = { ...settings.audit, path: join(settings.stateDir, 'audit.log') };
    }
    return KmsConfig.finish(settings, options.dev === true, options, cwd);
  }

  /** A configuration the daemon loader produced (e.g. from `loadConfig` with your own sources). */
  static fromDaemonConfig(settings: DaemonConfig, options: CommonKmsOptions & { create?: boolean } = {}): KmsConfig {
    return KmsConfig.finish(settings, options.create ?? settings.dev, options, process.cwd());
  }

  get backend(): BackendKind {
    return this.settings.root.type === 'vault-transit' || this.settings.keystore.type === 'vault-kv' ? 'vault' : 'local';
  }

  get stateDir(): string {
    return this.settings.stateDir;
  }

  get defaultKeyId(): string | undefined {
    return this.settings.defaultKeyId;
  }
}
