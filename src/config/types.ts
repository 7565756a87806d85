// The loaded configuration as the daemon uses it (camelCase, defaults applied), and the loader's inputs.
import type { AdminHttpConfig } from './sections/admin-http.js';
import type { AuditConfig } from './sections/audit.js';
import type { CacheConfig } from './sections/cache.js';
import type { KeystoreConfig } from './sections/keystore.js';
import type { LimitsConfig } from './sections/limits.js';
import type { PolicyRule } from './sections/policy.js';
import type { RootConfig } from './sections/root.js';
import type { SocketConfig } from './sections/socket.js';
import type { LogLevel } from './sections/top-level.js';

export interface DaemonConfig {
  /** Absolute path of the YAML file that was read, if any. */
  configPath?: string;
  dev: boolean;
  allowUnlockedMemory: boolean;
  logLevel: LogLevel;
  stateDir: string;
  socket: SocketConfig;
  root: RootConfig;
  keystore: KeystoreConfig;
  cache: CacheConfig;
  limits: LimitsConfig;
  audit: AuditConfig;
  adminHttp?: AdminHttpConfig;
  /** undefined = the built-in default policy (DESIGN §7). */
  policy?: PolicyRule[];
  defaultKeyId?: string;
  timeoutSecs: number;
  retryAttempts: number;
}

export interface CliOptions {
  stateDir?: string;
  socket?: string;
  dev?: boolean;
  /** Only `true` has an effect (a flag that is absent cannot turn off what the file or environment set). */
  allowUnlockedMemory?: boolean;
  /**
   * SIGHUP: secrets named by the config (passphrase_env, pin_env) were consumed and removed from the
   * environment at start, and a reload only applies policy and log level, so do not require them.
   */
  reload?: boolean;
}

export type ConfigEnv = NodeJS.ProcessEnv | Readonly<Record<string, string | undefined>>;

export interface LoadConfigInput {
  /** --config FILE */
  configPath?: string;
  /** The flag that named configPath, for errors (default "--config"). */
  configFlag?: string;
  env: ConfigEnv;
  cli: CliOptions;
  /** Directory that relative command-line and environment paths resolve against; default process.cwd(). */
  cwd?: string;
  /** Override of /etc/rustfs-kms/config.yaml (for tests). */
  defaultConfigPath?: string;
}

export interface ConfigFromYamlOptions {
  /** Directory that relative paths in the YAML resolve against. Without it, relative paths are errors. */
  baseDir?: string;
  /** Name used in error locations (e.g. the file path). */
  sourceName?: string;
  /** Recorded as configPath in the result. */
  configPath?: string;
  env?: ConfigEnv;
  cli?: CliOptions;
  cwd?: string;
}
