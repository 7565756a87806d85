// Daemon configuration: built-in defaults, overlaid by the YAML file, then by RUSTFS_KMS_* environment
// variables, then by command-line flags (DESIGN §8). Every value is validated here, once, so that a bad
// value stops start-up with the field name and what was expected instead of failing later inside a
// subsystem. Secrets never enter the config from the YAML file (only file paths and environment variable
// names do); the one secret value that can arrive from the environment (the Vault token) is hidden by
// redactedConfig().
import { OPERATIONS } from '../rpc/protocol.js';
import { KEY_ID_PATTERN } from '../keys/validation.js';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';

// ---------------------------------------------------------------------------------------------------------
// Public types

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
export type RootType = 'local' | 'pkcs11' | 'vault-transit';
export type KeystoreType = 'file' | 'vault-kv';
export type AuditFsync = 'always' | 'interval' | 'never';
export type Pkcs11Mode = 'wrap' | 'on-token';

export interface Pkcs11Config {
  /** Absolute path of the PKCS#11 module (.so). */
  module: string;
  tokenLabel?: string;
  tokenSerial?: string;
  /** File holding the user PIN (absolute path). Exactly one of pinFile / pinEnv. */
  pinFile?: string;
  /** Name of the environment variable holding the user PIN (the value is read by the root provider). */
  pinEnv?: string;
  keyLabel: string;
  mode: Pkcs11Mode;
  sessions: number;
}

export type VaultAuth =
  | { method: 'token'; token?: string; tokenFile?: string }
  | { method: 'approle'; roleIdFile: string; secretIdFile: string; mount: string }
  | { method: 'kubernetes'; role: string; jwtFile: string; mount: string };

export interface VaultTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
}

export interface VaultConfig {
  /** http(s) origin (plus optional path prefix), no trailing slash. */
  address: string;
  namespace: string;
  transitMount: string;
  transitKey: string;
  kvMount: string;
  auth: VaultAuth;
  tls: VaultTls;
}

export interface PolicyRule {
  /** Exactly one field is set. */
  match: { uid?: number; user?: string; gid?: number; group?: string; accessKey?: string };
  /** Operation names (see POLICY_OPERATIONS) or '*'. */
  allow: string[];
  /** Key id globs ('*' and '?'); ['*'] when omitted in the file. */
  keys: string[];
}

export interface AdminHttpConfig {
  /** host:port, e.g. 127.0.0.1:9000 or [::1]:9000. */
  listen: string;
  accessKey: string;
  secretKeyFile: string;
  region: string;
}

export interface DaemonConfig {
  /** Absolute path of the YAML file that was read, if any. */
  configPath?: string;
  dev: boolean;
  allowUnlockedMemory: boolean;
  logLevel: LogLevel;
  stateDir: string;
  socket: {
    path: string;
    /** Permission bits, e.g. 0o660. */
    mode: number;
    /** Group to chown the socket to; undefined keeps the daemon's own group. */
    group?: string;
  };
  root: {
    type: RootType;
    local: {
      keyFile: string;
      /** Name of the environment variable holding the passphrase (never the value). */
      passphraseEnv?: string;
    };
    pkcs11?: Pkcs11Config;
    vault?: VaultConfig;
  };
  keystore: { type: KeystoreType; kvMount: string; prefix: string; syncIntervalS: number };
  cache: { idleTtlS: number; offlineTtlS: number };
  limits: {
    maxFrameBytes: number;
    maxConnections: number;
    maxInflightPerConnection: number;
    idleTimeoutS: number;
    drainTimeoutS: number;
  };
  audit: {
    path: string;
    fsync: AuditFsync;
    fsyncIntervalMs: number;
    /** Rotation size in bytes; 0 = never rotate. */
    maxBytes: number;
  };
  adminHttp?: AdminHttpConfig;
  /** undefined = the built-in default policy (DESIGN §7). */
  policy?: PolicyRule[];
  defaultKeyId?: string;
  timeoutSecs: number;
  retryAttempts: number;
  hardening: { mlockall: boolean };
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

// ---------------------------------------------------------------------------------------------------------
// Constants

export const DEFAULT_CONFIG_PATH = '/etc/rustfs-kms/config.yaml';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
export const ROOT_TYPES: readonly RootType[] = ['local', 'pkcs11', 'vault-transit'];
export const KEYSTORE_TYPES: readonly KeystoreType[] = ['file', 'vault-kv'];
/** Operation names a policy rule may allow (besides '*'): the protocol's operations. */
export const POLICY_OPERATIONS: readonly string[] = OPERATIONS;
export { KEY_ID_PATTERN };

/** Every environment variable this module reads. */
export const CONFIG_ENV_VARS: readonly string[] = [
  'RUSTFS_KMS_CONFIG',
  'RUSTFS_KMS_TYPE',
  'RUSTFS_KMS_VAULT_ADDRESS',
  'RUSTFS_KMS_VAULT_TOKEN',
  'RUSTFS_KMS_VAULT_NAMESPACE',
  'RUSTFS_KMS_LOCAL_KEY_DIR',
  'RUSTFS_KMS_LOCAL_MASTER_KEY',
  'RUSTFS_KMS_DEFAULT_KEY_ID',
  'RUSTFS_KMS_TIMEOUT_SECS',
  'RUSTFS_KMS_RETRY_ATTEMPTS',
  'RUSTFS_KMS_SOCKET',
  'RUSTFS_KMS_STATE_DIR',
  'RUSTFS_KMS_LOG_LEVEL',
  'RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY',
  'RUSTFS_KMS_AUDIT_PATH',
];

/** RUSTFS_KMS_* names that other parts of the project read (not config). */
const OTHER_KNOWN_ENV_VARS: readonly string[] = ['RUSTFS_KMS_NATIVE_TEST_HOOKS', 'RUSTFS_KMS_TEST_PKCS11_SEAL_LIMIT', 'RUSTFS_KMS_SOCKET'];

const PROD_STATE_DIR = '/var/lib/rustfs-kms';
const PROD_SOCKET_PATH = '/run/rustfs-kms/kms.sock';
const PROD_SOCKET_GROUP = 'rustfs-kms';
const PROD_AUDIT_PATH = '/var/log/rustfs-kms/audit.log';
const DEV_STATE_DIR_NAME = '.kms';
const DEFAULT_SOCKET_MODE = 0o660;
const DEFAULT_K8S_JWT_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

const DEFAULTS = {
  logLevel: 'info' as LogLevel,
  keystore: { kvMount: 'secret', prefix: 'rustfs-kms', syncIntervalS: 10 },
  cache: { idleTtlS: 300, offlineTtlS: 3600 },
  limits: {
    maxFrameBytes: 1_048_576,
    maxConnections: 1024,
    maxInflightPerConnection: 256,
    idleTimeoutS: 300,
    drainTimeoutS: 10,
  },
  audit: { fsync: 'interval' as AuditFsync, fsyncIntervalMs: 1000, maxBytes: 104_857_600 },
  timeoutSecs: 30,
  retryAttempts: 3,
  pkcs11: { keyLabel: 'rustfs-kms-root', mode: 'wrap' as Pkcs11Mode, sessions: 4 },
  vault: { namespace: '', transitMount: 'transit', transitKey: 'rustfs-kms', approleMount: 'approle', k8sMount: 'kubernetes' },
  adminRegion: 'us-east-1',
} as const;

// Ranges (inclusive). Shared by the YAML and the environment readers.
const RANGES = {
  maxFrameBytes: [1024, 16_777_216],
  maxConnections: [1, 65_536],
  maxInflightPerConnection: [1, 65_536],
  idleTimeoutS: [0, 86_400],
  drainTimeoutS: [0, 3600],
  idleTtlS: [0, 604_800],
  offlineTtlS: [0, 604_800],
  syncIntervalS: [1, 3600],
  fsyncIntervalMs: [1, 60_000],
  timeoutSecs: [1, 3600],
  retryAttempts: [0, 20],
  sessions: [1, 256],
  id: [0, 4_294_967_294],
} as const satisfies Record<string, readonly [number, number]>;
const MIN_ROTATION_BYTES = 1_048_576;
const SECONDS = 'an integer number of seconds';
const MILLIS = 'an integer number of milliseconds';
const BYTES = 'an integer number of bytes';

// Value patterns.
const MOUNT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;
const VAULT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NAMESPACE_PATTERN = /^[A-Za-z0-9._\/-]*$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** User and group names; all-digit names are refused (use uid / gid for numeric ids). */
const ACCOUNT_NAME_PATTERN = /^(?![0-9]+$)[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?$/;
const ACCESS_KEY_PATTERN = /^[A-Za-z0-9._@+=-]{3,128}$/;
const KEY_GLOB_PATTERN = /^[A-Za-z0-9._*?-]{1,128}$/;
const REGION_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME_PATTERN = new RegExp(`^(?=.{1,253}$)${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
const GROUP_PATTERN = /^(?:[0-9]+|[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?)$/;
const KEY_ID_TEXT = `a key id matching ${KEY_ID_PATTERN.source}`;
/** Printable, no whitespace (labels, role names, tokens). */
const NO_SPACE_PRINTABLE = /^[!-~]+$/;

// ---------------------------------------------------------------------------------------------------------
// Errors

export interface ConfigErrorOptions {
  /** The offending value, already formatted for display (omit for secrets). */
  got?: string;
  /** "FILE:LINE:COL" (or "line L, column C") for values that came from the YAML. */
  location?: string;
  /** Replaces the default "expected …, got …" text after the field name. */
  detail?: string;
}

/** A configuration value that stops start-up. The message names the field and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** Dotted YAML path (e.g. "socket.mode", "policy[0].allow[1]"), environment variable name or CLI flag. */
  readonly field: string;
  readonly expected: string;
  readonly location: string | undefined;

  constructor(field: string, expected: string, options: ConfigErrorOptions = {}) {
    const detail =
      options.detail ?? `expected ${expected}${options.got !== undefined ? `, got ${options.got}` : ''}`;
    super(`config: ${field}: ${detail}${options.location !== undefined ? ` (${options.location})` : ''}`);
    this.field = field;
    this.expected = expected;
    this.location = options.location;
  }
}

/** Formats a value for an error message. */
function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') {
    const shown = v.length > 80 ? `${v.slice(0, 77)}...` : v;
    return JSON.stringify(shown);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}

function quoteList(values: readonly string[]): string {
  return values.join(', ');
}

// ---------------------------------------------------------------------------------------------------------
// YAML → plain values (with source positions for error messages)

interface Pos {
  line: number;
  col: number;
}

type Obj = { [key: string]: unknown };

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const MAX_YAML_ALIASES = 100;
const MAX_YAML_NODES = 100_000;
const MAX_YAML_DEPTH = 64;

function parseYaml(text: string, sourceName: string | undefined): { value: unknown; positions: Map<string, Pos> } {
  const field = sourceName ?? '(yaml)';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.2',
    schema: 'core',
    uniqueKeys: true,
    customTags: [],
    resolveKnownTags: false,
    merge: false,
    strict: true,
    prettyErrors: true,
    lineCounter,
  });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const what =
      problem.code === 'TAG_RESOLVE_FAILED'
        ? 'tags outside the YAML 1.2 core schema are not accepted: '
        : problem.code === 'DUPLICATE_KEY'
          ? 'a key appears twice: '
          : '';
    throw new ConfigError(field, 'valid YAML', { detail: `invalid YAML: ${what}${problem.message.trimEnd()}` });
  }

  const positions = new Map<string, Pos>();
  let aliases = 0;
  let nodes = 0;
  const record = (p: string, range: readonly number[] | null | undefined): void => {
    if (range && typeof range[0] === 'number') {
      const lp = lineCounter.linePos(range[0]);
      positions.set(p, { line: lp.line, col: lp.col });
    }
  };
  const where = (range: readonly number[] | null | undefined): string | undefined => {
    if (!range || typeof range[0] !== 'number') return sourceName;
    const lp = lineCounter.linePos(range[0]);
    return sourceName !== undefined ? `${sourceName}:${lp.line}:${lp.col}` : `line ${lp.line}, column ${lp.col}`;
  };
  const label = (p: string): string => (p === '' ? '(top level)' : p);

  const walk = (node: unknown, p: string, depth: number): unknown => {
    nodes += 1;
    if (nodes > MAX_YAML_NODES || depth > MAX_YAML_DEPTH) {
      throw new ConfigError(label(p), 'a config document of reasonable size', {
        detail: `the document is too large or too deeply nested (at most ${MAX_YAML_NODES} values, depth ${MAX_YAML_DEPTH})`,
      });
    }
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      aliases += 1;
      const target = node.resolve(doc);
      if (aliases > MAX_YAML_ALIASES || target === undefined) {
        throw new ConfigError(label(p), 'an alias to an earlier anchor', {
          detail: target === undefined ? `unresolved alias *${node.source}` : `more than ${MAX_YAML_ALIASES} aliases`,
          location: where(node.range),
        });
      }
      const value = walk(target, p, depth + 1);
      record(p, node.range);
      return value;
    }
    if (isScalar(node)) {
      record(p, node.range);
      const v: unknown = node.value;
      if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      throw new ConfigError(label(p), 'a string, number, boolean or mapping', {
        got: typeof v === 'number' ? String(v) : typeof v,
        location: where(node.range),
      });
    }
    if (isMap(node)) {
      record(p, node.range);
      const out: Obj = Object.create(null) as Obj;
      for (const pair of node.items) {
        const k: unknown = pair.key;
        if (!isScalar(k) || (typeof k.value !== 'string' && typeof k.value !== 'number')) {
          const range = isScalar(k) || isMap(k) || isSeq(k) ? k.range : node.range;
          throw new ConfigError(label(p), 'mapping keys that are plain strings', {
            detail: 'mapping keys must be plain strings',
            location: where(range),
          });
        }
        const key = String(k.value);
        const child = p === '' ? key : `${p}.${key}`;
        const value = walk(pair.value, child, depth + 1);
        if (pair.value === null || pair.value === undefined) record(child, k.range);
        out[key] = value;
      }
      return out;
    }
    if (isSeq(node)) {
      record(p, node.range);
      return node.items.map((item, i) => walk(item, `${p}[${i}]`, depth + 1));
    }
    throw new ConfigError(label(p), 'a YAML scalar, mapping or list', { detail: 'unsupported YAML node' });
  };
  return { value: walk(doc.contents, '', 0), positions };
}

// ---------------------------------------------------------------------------------------------------------
// Validating readers. One Reader per source: the YAML file (fields are dotted YAML paths, with positions),
// the environment (fields are variable names) or the command line (fields are flags).

class Reader {
  constructor(
    private readonly sourceName: string | undefined,
    private readonly positions: ReadonlyMap<string, Pos>,
    /** Relative paths resolve against this; undefined = relative paths are errors. */
    readonly baseDir: string | undefined,
    private readonly isYaml: boolean,
  ) {}

  location(field: string): string | undefined {
    if (!this.isYaml) return undefined;
    const p = this.positions.get(field);
    if (p === undefined) return this.sourceName;
    return this.sourceName !== undefined ? `${this.sourceName}:${p.line}:${p.col}` : `line ${p.line}, column ${p.col}`;
  }

  fail(field: string, expected: string, got: unknown): never {
    throw new ConfigError(field, expected, { got: describe(got), location: this.location(field) });
  }

  failDetail(field: string, expected: string, detail: string): never {
    throw new ConfigError(field, expected, { detail, location: this.location(field) });
  }

  /** A required value is absent: "required[ when]: expected …". */
  missing(field: string, expected: string, when?: string): never {
    this.failDetail(field, expected, `required${when !== undefined ? ` ${when}` : ''}: expected ${expected}`);
  }

  /** A mapping with only the allowed keys; undefined when absent or null. */
  section(field: string, v: unknown, allowed: readonly string[], hints: Readonly<Record<string, string>> = {}): Obj | undefined {
    if (v === null || v === undefined) return undefined;
    if (!isObj(v)) this.fail(field, `a mapping with keys ${quoteList(allowed)}`, v);
    for (const key of Object.keys(v)) {
      if (allowed.includes(key)) continue;
      const child = field === '' ? key : `${field}.${key}`;
      const hint = hints[key];
      if (hint !== undefined) this.failDetail(child, hint, `not accepted here; expected ${hint}`);
      this.failDetail(child, `one of ${quoteList(allowed)}`, `unknown key; expected one of ${quoteList(allowed)}`);
    }
    return v;
  }

  string(field: string, v: unknown, pattern: RegExp, expected: string): string | undefined {
    if (v === null || v === undefined) return undefined;
    if ((typeof v === 'number' || typeof v === 'boolean') && pattern.test(String(v))) {
      // YAML turned it into a number or boolean (e.g. 2024, 0755, yes); a string must be quoted.
      this.failDetail(field, expected, `expected ${expected} as a string (put it in quotes), got the ${typeof v} ${String(v)}`);
    }
    if (typeof v !== 'string' || !pattern.test(v)) this.fail(field, expected, v);
    return v;
  }

  oneOf<T extends string>(field: string, v: unknown, values: readonly T[]): T | undefined {
    if (v === null || v === undefined) return undefined;
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      this.fail(field, `one of ${quoteList(values)}`, v);
    }
    return v as T;
  }

  int(field: string, v: unknown, range: readonly [number, number], what = 'an integer'): number | undefined {
    if (v === null || v === undefined) return undefined;
    const [min, max] = range;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(field, `${what} from ${min} to ${max}`, v);
    }
    return v;
  }

  bool(field: string, v: unknown): boolean | undefined {
    if (v === null || v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(field, 'true or false', v);
    return v;
  }

  /** An absolute, normalized path (relative ones resolve against baseDir). */
  path(field: string, v: unknown): string | undefined {
    if (v === null || v === undefined) return undefined;
    if (typeof v !== 'string' || v === '' || v.includes('\0')) this.fail(field, 'a file system path', v);
    if (path.isAbsolute(v)) return path.resolve(v); // normalized, no trailing slash
    if (this.baseDir === undefined) {
      this.fail(field, 'an absolute path (a relative path needs a config file to resolve against)', v);
    }
    return path.resolve(this.baseDir, v);
  }

  mode(field: string, v: unknown): number | undefined {
    if (v === null || v === undefined) return undefined;
    const expected = 'an octal mode string like "0660"';
    if (typeof v === 'number') {
      this.failDetail(field, expected, `expected ${expected} (in quotes: an unquoted 0660 is the decimal number 660), got ${v}`);
    }
    if (typeof v !== 'string' || !/^0?[0-7]{3}$/.test(v)) this.fail(field, expected, v);
    return Number.parseInt(v, 8);
  }

  vaultAddress(field: string, v: unknown): string | undefined {
    if (v === null || v === undefined) return undefined;
    const expected = 'an http(s) URL like "https://vault.example.com:8200"';
    if (typeof v !== 'string') this.fail(field, expected, v);
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      this.fail(field, expected, v);
    }
    if (url.username !== '' || url.password !== '') {
      // Never echo a URL that carries credentials.
      this.failDetail(field, expected, `expected ${expected} without user:password (credentials belong in root.vault.auth)`);
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') this.fail(field, expected, v);
    if (url.search !== '' || url.hash !== '') this.fail(field, `${expected} without a query or fragment`, v);
    const pathname = url.pathname.replace(/\/+$/, '');
    return `${url.protocol}//${url.host}${pathname}`;
  }

  /**
   * The admin HTTP API listens on loopback or on a Unix socket only: it answers without TLS, and a
   * per-host key manager has no business being reachable from the network.
   */
  listen(field: string, v: unknown): string | undefined {
    if (v === null || v === undefined) return undefined;
    const expected = 'a loopback host:port like "127.0.0.1:9000" or "[::1]:9000", or an absolute Unix socket path';
    if (typeof v !== 'string') this.fail(field, expected, v);
    if (v.startsWith('/')) {
      if (v.length > 107) this.fail(field, `${expected} (at most 107 bytes)`, v);
      return v;
    }
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(v);
    if (m === null) this.fail(field, expected, v);
    const [, v6, host, port] = m;
    const portNumber = Number(port);
    if (portNumber < 1 || portNumber > 65_535) this.fail(field, `${expected} (port 1 to 65535)`, v);
    const loopback = v6 !== undefined ? v6 === '::1' : host === 'localhost' || (isIP(host as string) === 4 && (host as string).startsWith('127.'));
    if (!loopback) this.fail(field, expected, v);
    return v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Layer: everything a source may set, before defaults. Sources are applied in order onto one Layer.

interface VaultAuthLayer {
  method: 'token' | 'approle' | 'kubernetes';
  token?: string;
  tokenFile?: string;
  roleIdFile?: string;
  secretIdFile?: string;
  mount?: string;
  role?: string;
  jwtFile?: string;
}

interface VaultLayer {
  address?: string;
  namespace?: string;
  transitMount?: string;
  transitKey?: string;
  kvMount?: string;
  auth?: VaultAuthLayer;
  tls?: VaultTls;
}

interface Layer {
  stateDir?: string;
  logLevel?: LogLevel;
  allowUnlockedMemory?: boolean;
  /** group: null = explicitly none (keep the daemon's group). */
  socket: { path?: string; mode?: number; group?: string | null };
  root: { type?: RootType; local: { keyFile?: string; passphraseEnv?: string }; pkcs11?: Pkcs11Config; vault?: VaultLayer };
  keystore: { type?: KeystoreType; kvMount?: string; prefix?: string; syncIntervalS?: number };
  cache: { idleTtlS?: number; offlineTtlS?: number };
  limits: {
    maxFrameBytes?: number;
    maxConnections?: number;
    maxInflightPerConnection?: number;
    idleTimeoutS?: number;
    drainTimeoutS?: number;
  };
  audit: { path?: string; fsync?: AuditFsync; fsyncIntervalMs?: number; maxBytes?: number };
  adminHttp?: AdminHttpConfig;
  policy?: PolicyRule[];
  defaultKeyId?: string;
  timeoutSecs?: number;
  retryAttempts?: number;
  hardening: { mlockall?: boolean };
  /** YAML path → the name to use in error messages (the YAML path itself, an env var or a flag). */
  origins: Map<string, string>;
}

function emptyLayer(): Layer {
  return {
    socket: {},
    root: { local: {} },
    keystore: {},
    cache: {},
    limits: {},
    audit: {},
    hardening: {},
    origins: new Map(),
  };
}

/** Assigns only defined values (so that a later source leaves earlier ones alone when it is silent). */
function put<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

const TOP_KEYS = [
  'state_dir',
  'socket',
  'root',
  'keystore',
  'cache',
  'limits',
  'audit',
  'admin_http',
  'policy',
  'default_key_id',
  'timeout_secs',
  'retry_attempts',
  'log_level',
  'allow_unlocked_memory',
  'hardening',
] as const;

const SECRET_HINT_TOKEN = 'token_file or the RUSTFS_KMS_VAULT_TOKEN environment variable (no secrets in the config file)';

function applyYaml(layer: Layer, doc: unknown, r: Reader): void {
  if (doc === null || doc === undefined) return; // empty file
  if (!isObj(doc)) r.fail('(top level)', `a mapping with keys ${quoteList(TOP_KEYS)}`, doc);
  const top = r.section('', doc, TOP_KEYS) ?? {};

  put(layer, 'stateDir', r.path('state_dir', top.state_dir));
  put(layer, 'logLevel', r.oneOf('log_level', top.log_level, LOG_LEVELS));
  put(layer, 'allowUnlockedMemory', r.bool('allow_unlocked_memory', top.allow_unlocked_memory));
  put(layer, 'defaultKeyId', r.string('default_key_id', top.default_key_id, KEY_ID_PATTERN, KEY_ID_TEXT));
  put(layer, 'timeoutSecs', r.int('timeout_secs', top.timeout_secs, RANGES.timeoutSecs, SECONDS));
  put(layer, 'retryAttempts', r.int('retry_attempts', top.retry_attempts, RANGES.retryAttempts));

  const socket = r.section('socket', top.socket, ['path', 'mode', 'group']);
  if (socket) {
    put(layer.socket, 'path', r.path('socket.path', socket.path));
    put(layer.socket, 'mode', r.mode('socket.mode', socket.mode));
    if (socket.group === '') {
      layer.socket.group = null;
    } else if (typeof socket.group === 'number') {
      layer.socket.group = String(r.int('socket.group', socket.group, RANGES.id, 'a numeric gid'));
    } else {
      const text = 'a group name or numeric gid ("" = keep the daemon\'s group)';
      put(layer.socket, 'group', r.string('socket.group', socket.group, GROUP_PATTERN, text));
    }
  }

  const root = r.section('root', top.root, ['type', 'local', 'pkcs11', 'vault']);
  if (root) {
    put(layer.root, 'type', r.oneOf('root.type', root.type, ROOT_TYPES));
    const local = r.section('root.local', root.local, ['key_file', 'passphrase_env'], {
      passphrase: 'passphrase_env (the name of the environment variable that holds the passphrase)',
    });
    if (local) {
      put(layer.root.local, 'keyFile', r.path('root.local.key_file', local.key_file));
      const envText = 'an environment variable name like RUSTFS_KMS_LOCAL_MASTER_KEY';
      const passphraseEnv = r.string('root.local.passphrase_env', local.passphrase_env, ENV_NAME_PATTERN, envText);
      put(layer.root.local, 'passphraseEnv', passphraseEnv);
    }
    const pkcs11 = readPkcs11(r, root.pkcs11);
    if (pkcs11) layer.root.pkcs11 = pkcs11;
    const vault = readVault(r, root.vault);
    if (vault) layer.root.vault = vault;
  }

  const ks = r.section('keystore', top.keystore, ['type', 'kv_mount', 'prefix', 'sync_interval_s']);
  if (ks) {
    const prefixText = 'a KV path prefix like "rustfs-kms" (no leading or trailing slash)';
    put(layer.keystore, 'type', r.oneOf('keystore.type', ks.type, KEYSTORE_TYPES));
    put(layer.keystore, 'kvMount', r.string('keystore.kv_mount', ks.kv_mount, MOUNT_PATTERN, 'a Vault mount path like "secret"'));
    put(layer.keystore, 'prefix', r.string('keystore.prefix', ks.prefix, MOUNT_PATTERN, prefixText));
    put(layer.keystore, 'syncIntervalS', r.int('keystore.sync_interval_s', ks.sync_interval_s, RANGES.syncIntervalS, SECONDS));
  }

  const cache = r.section('cache', top.cache, ['idle_ttl_s', 'offline_ttl_s']);
  if (cache) {
    put(layer.cache, 'idleTtlS', r.int('cache.idle_ttl_s', cache.idle_ttl_s, RANGES.idleTtlS, SECONDS));
    put(layer.cache, 'offlineTtlS', r.int('cache.offline_ttl_s', cache.offline_ttl_s, RANGES.offlineTtlS, SECONDS));
  }

  const lim = r.section('limits', top.limits, [
    'max_frame_bytes',
    'max_connections',
    'max_inflight_per_connection',
    'idle_timeout_s',
    'drain_timeout_s',
  ]);
  if (lim) {
    const l = layer.limits;
    put(l, 'maxFrameBytes', r.int('limits.max_frame_bytes', lim.max_frame_bytes, RANGES.maxFrameBytes, BYTES));
    put(l, 'maxConnections', r.int('limits.max_connections', lim.max_connections, RANGES.maxConnections));
    put(
      l,
      'maxInflightPerConnection',
      r.int('limits.max_inflight_per_connection', lim.max_inflight_per_connection, RANGES.maxInflightPerConnection),
    );
    put(l, 'idleTimeoutS', r.int('limits.idle_timeout_s', lim.idle_timeout_s, RANGES.idleTimeoutS, SECONDS));
    put(l, 'drainTimeoutS', r.int('limits.drain_timeout_s', lim.drain_timeout_s, RANGES.drainTimeoutS, SECONDS));
  }

  const audit = r.section('audit', top.audit, ['path', 'fsync', 'fsync_interval_ms', 'max_bytes']);
  if (audit) {
    const a = layer.audit;
    put(a, 'path', r.path('audit.path', audit.path));
    put(a, 'fsync', r.oneOf('audit.fsync', audit.fsync, ['always', 'interval', 'never'] as const));
    put(a, 'fsyncIntervalMs', r.int('audit.fsync_interval_ms', audit.fsync_interval_ms, RANGES.fsyncIntervalMs, MILLIS));
    if (audit.max_bytes !== null && audit.max_bytes !== undefined) {
      const v = audit.max_bytes;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || (v !== 0 && v < MIN_ROTATION_BYTES)) {
        r.fail('audit.max_bytes', `0 (never rotate) or an integer number of bytes of at least ${MIN_ROTATION_BYTES}`, v);
      }
      a.maxBytes = v;
    }
  }

  const admin = r.section('admin_http', top.admin_http, ['listen', 'access_key', 'secret_key_file', 'region'], {
    secret_key: 'secret_key_file (a file holding the secret key; no secrets in the config file)',
  });
  if (admin) {
    const need = (key: string, what: string): unknown => {
      const v = admin[key];
      if (v === null || v === undefined) r.missing(`admin_http.${key}`, what, 'when admin_http is set');
      return v;
    };
    const accessKeyText = 'an access key of 3 to 128 characters [A-Za-z0-9._@+=-]';
    const listen = r.listen('admin_http.listen', need('listen', 'host:port like "127.0.0.1:9000"'));
    const accessKey = r.string('admin_http.access_key', need('access_key', accessKeyText), ACCESS_KEY_PATTERN, accessKeyText);
    const secretKeyText = 'the path of the file holding the secret key';
    const secretKeyFile = r.path('admin_http.secret_key_file', need('secret_key_file', secretKeyText));
    const region = r.string('admin_http.region', admin.region, REGION_PATTERN, 'a region name like "us-east-1"');
    if (listen !== undefined && accessKey !== undefined && secretKeyFile !== undefined) {
      layer.adminHttp = { listen, accessKey, secretKeyFile, region: region ?? DEFAULTS.adminRegion };
    }
  }

  const policy = readPolicy(r, top.policy);
  if (policy) layer.policy = policy;

  const hardening = r.section('hardening', top.hardening, ['mlockall']);
  if (hardening) put(layer.hardening, 'mlockall', r.bool('hardening.mlockall', hardening.mlockall));
}

function readPkcs11(r: Reader, v: unknown): Pkcs11Config | undefined {
  const f = 'root.pkcs11';
  const keys = ['module', 'token_label', 'token_serial', 'pin_file', 'pin_env', 'key_label', 'mode', 'sessions'];
  const s = r.section(f, v, keys, { pin: 'pin_file or pin_env (no secrets in the config file)' });
  if (!s) return undefined;
  const module = r.path(`${f}.module`, s.module);
  if (module === undefined) r.missing(`${f}.module`, 'the absolute path of the PKCS#11 module (.so)');
  const labelText = 'a token label of 1 to 32 printable characters';
  const serialText = 'a token serial of 1 to 16 printable characters';
  const tokenLabel = r.string(`${f}.token_label`, s.token_label, /^[ -~]{1,32}$/, labelText);
  const tokenSerial = r.string(`${f}.token_serial`, s.token_serial, /^[!-~]{1,16}$/, serialText);
  if (tokenLabel === undefined && tokenSerial === undefined) {
    r.missing(`${f}.token_label`, 'token_label or token_serial to select the token');
  }
  const pinFile = r.path(`${f}.pin_file`, s.pin_file);
  const pinEnv = r.string(`${f}.pin_env`, s.pin_env, ENV_NAME_PATTERN, 'an environment variable name');
  if (pinFile === undefined && pinEnv === undefined) r.missing(`${f}.pin_file`, 'pin_file or pin_env');
  if (pinFile !== undefined && pinEnv !== undefined) {
    r.failDetail(`${f}.pin_file`, 'exactly one of pin_file or pin_env', 'expected exactly one of pin_file or pin_env, got both');
  }
  const keyLabelText = 'a key label of 1 to 255 printable characters';
  const cfg: Pkcs11Config = {
    module,
    keyLabel: r.string(`${f}.key_label`, s.key_label, /^[ -~]{1,255}$/, keyLabelText) ?? DEFAULTS.pkcs11.keyLabel,
    mode: r.oneOf(`${f}.mode`, s.mode, ['wrap', 'on-token'] as const) ?? DEFAULTS.pkcs11.mode,
    sessions: r.int(`${f}.sessions`, s.sessions, RANGES.sessions) ?? DEFAULTS.pkcs11.sessions,
  };
  put(cfg, 'tokenLabel', tokenLabel);
  put(cfg, 'tokenSerial', tokenSerial);
  put(cfg, 'pinFile', pinFile);
  put(cfg, 'pinEnv', pinEnv);
  return cfg;
}

const AUTH_KEYS: Readonly<Record<VaultAuthLayer['method'], readonly string[]>> = {
  token: ['method', 'token_file'],
  approle: ['method', 'role_id_file', 'secret_id_file', 'mount'],
  kubernetes: ['method', 'role', 'jwt_file', 'mount'],
};

function readVault(r: Reader, v: unknown): VaultLayer | undefined {
  const f = 'root.vault';
  const keys = ['address', 'namespace', 'transit_mount', 'transit_key', 'kv_mount', 'auth', 'tls'];
  const s = r.section(f, v, keys, { token: SECRET_HINT_TOKEN });
  if (!s) return undefined;
  const out: VaultLayer = {};
  const nsText = 'a Vault namespace like "admin/team" ("" = root namespace)';
  put(out, 'address', r.vaultAddress(`${f}.address`, s.address));
  put(out, 'namespace', r.string(`${f}.namespace`, s.namespace, NAMESPACE_PATTERN, nsText));
  put(out, 'transitMount', r.string(`${f}.transit_mount`, s.transit_mount, MOUNT_PATTERN, 'a Vault mount path like "transit"'));
  put(out, 'transitKey', r.string(`${f}.transit_key`, s.transit_key, VAULT_NAME_PATTERN, 'a Transit key name like "rustfs-kms"'));
  put(out, 'kvMount', r.string(`${f}.kv_mount`, s.kv_mount, MOUNT_PATTERN, 'a Vault mount path like "secret"'));

  const af = `${f}.auth`;
  const a = r.section(af, s.auth, ['method', 'token_file', 'role_id_file', 'secret_id_file', 'mount', 'role', 'jwt_file'], {
    token: SECRET_HINT_TOKEN,
    secret_id: 'secret_id_file (no secrets in the config file)',
    role_id: 'role_id_file',
  });
  if (a) {
    const method = r.oneOf(`${af}.method`, a.method, ['token', 'approle', 'kubernetes'] as const);
    if (method === undefined) r.missing(`${af}.method`, 'one of token, approle, kubernetes');
    const allowed = AUTH_KEYS[method];
    for (const key of Object.keys(a)) {
      if (!allowed.includes(key) && a[key] !== null && a[key] !== undefined) {
        const list = quoteList(allowed);
        r.failDetail(`${af}.${key}`, `one of ${list}`, `not used by method ${method}; expected one of ${list}`);
      }
    }
    const auth: VaultAuthLayer = { method };
    put(auth, 'tokenFile', r.path(`${af}.token_file`, a.token_file));
    put(auth, 'roleIdFile', r.path(`${af}.role_id_file`, a.role_id_file));
    put(auth, 'secretIdFile', r.path(`${af}.secret_id_file`, a.secret_id_file));
    put(auth, 'jwtFile', r.path(`${af}.jwt_file`, a.jwt_file));
    put(auth, 'role', r.string(`${af}.role`, a.role, /^[!-~]{1,255}$/, 'a Vault role name'));
    put(auth, 'mount', r.string(`${af}.mount`, a.mount, MOUNT_PATTERN, 'a Vault auth mount path'));
    if (method === 'approle') {
      const when = 'for method approle';
      if (auth.roleIdFile === undefined) r.missing(`${af}.role_id_file`, 'the path of the file holding the role id', when);
      if (auth.secretIdFile === undefined) r.missing(`${af}.secret_id_file`, 'the path of the file holding the secret id', when);
    }
    if (method === 'kubernetes' && auth.role === undefined) {
      r.missing(`${af}.role`, 'the Vault role name', 'for method kubernetes');
    }
    out.auth = auth;
  }

  const tf = `${f}.tls`;
  const t = r.section(tf, s.tls, ['ca_file', 'cert_file', 'key_file', 'server_name']);
  if (t) {
    const tls: VaultTls = {};
    put(tls, 'caFile', r.path(`${tf}.ca_file`, t.ca_file));
    put(tls, 'certFile', r.path(`${tf}.cert_file`, t.cert_file));
    put(tls, 'keyFile', r.path(`${tf}.key_file`, t.key_file));
    put(tls, 'serverName', r.string(`${tf}.server_name`, t.server_name, HOSTNAME_PATTERN, 'a DNS host name'));
    if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
      const missing = tls.certFile === undefined ? 'cert_file' : 'key_file';
      r.missing(`${tf}.${missing}`, 'the client certificate and its key together (cert_file and key_file go together)');
    }
    out.tls = tls;
  }
  return out;
}

function readPolicy(r: Reader, v: unknown): PolicyRule[] | undefined {
  if (v === null || v === undefined) return undefined;
  if (!Array.isArray(v)) r.fail('policy', 'a list of rules { match, allow, keys }', v);
  if (v.length === 0) {
    const detail = 'expected at least one rule, got an empty list (omit policy to use the built-in default)';
    r.failDetail('policy', 'at least one rule', detail);
  }
  const opsText = `an operation name (${quoteList(POLICY_OPERATIONS)}) or "*"`;
  const matchKeys = ['uid', 'user', 'gid', 'group', 'access_key'];
  const oneMatch = `exactly one of ${quoteList(matchKeys)}`;
  return v.map((item: unknown, i: number): PolicyRule => {
    const f = `policy[${i}]`;
    const rule = r.section(f, item, ['match', 'allow', 'keys']);
    if (!rule) r.fail(f, 'a rule { match, allow, keys }', item);

    const m = r.section(`${f}.match`, rule.match, matchKeys);
    const given = m ? Object.keys(m).filter((k) => m[k] !== null && m[k] !== undefined) : [];
    if (!m || given.length !== 1) {
      r.failDetail(`${f}.match`, oneMatch, `expected ${oneMatch}, got ${given.length === 0 ? 'none' : quoteList(given)}`);
    }
    const match: PolicyRule['match'] = {};
    const mf = `${f}.match`;
    put(match, 'uid', r.int(`${mf}.uid`, m.uid, RANGES.id, 'a numeric uid'));
    put(match, 'gid', r.int(`${mf}.gid`, m.gid, RANGES.id, 'a numeric gid'));
    put(match, 'user', r.string(`${mf}.user`, m.user, ACCOUNT_NAME_PATTERN, 'a user name (use uid for a numeric id)'));
    put(match, 'group', r.string(`${mf}.group`, m.group, ACCOUNT_NAME_PATTERN, 'a group name (use gid for a numeric id)'));
    put(match, 'accessKey', r.string(`${mf}.access_key`, m.access_key, ACCESS_KEY_PATTERN, 'an admin HTTP access key'));

    if (!Array.isArray(rule.allow) || rule.allow.length === 0) {
      r.fail(`${f}.allow`, 'a non-empty list of operation names or "*"', rule.allow);
    }
    const allow = rule.allow.map((op: unknown, j: number): string => {
      if (typeof op !== 'string' || (op !== '*' && !POLICY_OPERATIONS.includes(op))) r.fail(`${f}.allow[${j}]`, opsText, op);
      return op;
    });

    let keys = ['*'];
    if (rule.keys !== null && rule.keys !== undefined) {
      if (!Array.isArray(rule.keys) || rule.keys.length === 0) {
        r.fail(`${f}.keys`, 'a non-empty list of key id globs like "rustfs-*"', rule.keys);
      }
      const globText = 'a key id glob of 1 to 128 characters [A-Za-z0-9._-*?]';
      keys = rule.keys.map((g: unknown, j: number): string => {
        const glob = r.string(`${f}.keys[${j}]`, g, KEY_GLOB_PATTERN, globText);
        if (glob === undefined) r.fail(`${f}.keys[${j}]`, globText, g);
        return glob;
      });
    }
    return { match, allow, keys };
  });
}

// ---------------------------------------------------------------------------------------------------------
// Environment

function applyEnv(layer: Layer, env: ConfigEnv, cwd: string): void {
  const r = new Reader(undefined, new Map(), cwd, false);
  /** Empty counts as unset (a blank line in an env file), except where noted. */
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const envInt = (name: string, range: readonly [number, number]): number | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    const n = /^[0-9]{1,10}$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < range[0] || n > range[1]) {
      r.fail(name, `an integer from ${range[0]} to ${range[1]}`, v);
    }
    return n;
  };
  const set = (yamlPath: string, name: string): void => {
    layer.origins.set(yamlPath, name);
  };
  const vault = (): VaultLayer => (layer.root.vault ??= {});

  const type = get('RUSTFS_KMS_TYPE');
  if (type !== undefined) {
    if (type === 'local') {
      layer.root.type = 'local';
      layer.keystore.type = 'file';
    } else if (type === 'vault') {
      layer.root.type = 'vault-transit';
      layer.keystore.type = 'vault-kv';
    } else {
      r.fail('RUSTFS_KMS_TYPE', 'one of local, vault', type);
    }
    set('root.type', 'RUSTFS_KMS_TYPE');
    set('keystore.type', 'RUSTFS_KMS_TYPE');
  }

  const address = r.vaultAddress('RUSTFS_KMS_VAULT_ADDRESS', get('RUSTFS_KMS_VAULT_ADDRESS'));
  if (address !== undefined) {
    vault().address = address;
    set('root.vault.address', 'RUSTFS_KMS_VAULT_ADDRESS');
  }
  const token = env.RUSTFS_KMS_VAULT_TOKEN;
  if (token !== undefined) {
    // A secret: set-but-empty is an error (usually a templating mistake), and the value is never echoed.
    if (!NO_SPACE_PRINTABLE.test(token)) {
      const detail =
        token === ''
          ? 'expected a Vault token, got an empty value'
          : 'expected a Vault token without spaces or control characters';
      r.failDetail('RUSTFS_KMS_VAULT_TOKEN', 'a Vault token', detail);
    }
    vault().auth = { method: 'token', token };
    set('root.vault.auth', 'RUSTFS_KMS_VAULT_TOKEN');
  }
  const namespace = env.RUSTFS_KMS_VAULT_NAMESPACE; // empty = the root namespace
  if (namespace !== undefined) {
    const nsText = 'a Vault namespace like "admin/team"';
    vault().namespace = r.string('RUSTFS_KMS_VAULT_NAMESPACE', namespace, NAMESPACE_PATTERN, nsText) ?? '';
    set('root.vault.namespace', 'RUSTFS_KMS_VAULT_NAMESPACE');
  }

  const keyDir = r.path('RUSTFS_KMS_LOCAL_KEY_DIR', get('RUSTFS_KMS_LOCAL_KEY_DIR'));
  const stateDir = r.path('RUSTFS_KMS_STATE_DIR', get('RUSTFS_KMS_STATE_DIR'));
  if (keyDir !== undefined && stateDir !== undefined && keyDir !== stateDir) {
    const expected = 'the same directory as RUSTFS_KMS_LOCAL_KEY_DIR (both set the state directory)';
    r.failDetail('RUSTFS_KMS_STATE_DIR', expected, `expected ${expected}, got ${describe(stateDir)} and ${describe(keyDir)}`);
  }
  if (stateDir !== undefined || keyDir !== undefined) {
    layer.stateDir = stateDir ?? keyDir;
    set('state_dir', stateDir !== undefined ? 'RUSTFS_KMS_STATE_DIR' : 'RUSTFS_KMS_LOCAL_KEY_DIR');
  }

  const masterKey = env.RUSTFS_KMS_LOCAL_MASTER_KEY;
  if (masterKey !== undefined) {
    if (masterKey === '') {
      const detail = 'expected a passphrase, got an empty value (unset the variable to use the root key file)';
      r.failDetail('RUSTFS_KMS_LOCAL_MASTER_KEY', 'a passphrase', detail);
    }
    // Only the variable's name goes into the config; the local root reads the value itself.
    layer.root.local.passphraseEnv = 'RUSTFS_KMS_LOCAL_MASTER_KEY';
    set('root.local.passphrase_env', 'RUSTFS_KMS_LOCAL_MASTER_KEY');
  }

  const keyId = r.string('RUSTFS_KMS_DEFAULT_KEY_ID', get('RUSTFS_KMS_DEFAULT_KEY_ID'), KEY_ID_PATTERN, KEY_ID_TEXT);
  if (keyId !== undefined) {
    layer.defaultKeyId = keyId;
    set('default_key_id', 'RUSTFS_KMS_DEFAULT_KEY_ID');
  }
  const timeout = envInt('RUSTFS_KMS_TIMEOUT_SECS', RANGES.timeoutSecs);
  if (timeout !== undefined) {
    layer.timeoutSecs = timeout;
    set('timeout_secs', 'RUSTFS_KMS_TIMEOUT_SECS');
  }
  const retries = envInt('RUSTFS_KMS_RETRY_ATTEMPTS', RANGES.retryAttempts);
  if (retries !== undefined) {
    layer.retryAttempts = retries;
    set('retry_attempts', 'RUSTFS_KMS_RETRY_ATTEMPTS');
  }

  const socket = r.path('RUSTFS_KMS_SOCKET', get('RUSTFS_KMS_SOCKET'));
  if (socket !== undefined) {
    layer.socket.path = socket;
    set('socket.path', 'RUSTFS_KMS_SOCKET');
  }
  // RUSTFS_KMS_AUDIT_PATH: moves the audit log (issue 16), e.g. for in-process use without /var/log.
  const auditPath = r.path('RUSTFS_KMS_AUDIT_PATH', get('RUSTFS_KMS_AUDIT_PATH'));
  if (auditPath !== undefined) {
    layer.audit.path = auditPath;
    set('audit.path', 'RUSTFS_KMS_AUDIT_PATH');
  }
  const logLevel = r.oneOf('RUSTFS_KMS_LOG_LEVEL', get('RUSTFS_KMS_LOG_LEVEL'), LOG_LEVELS);
  if (logLevel !== undefined) {
    layer.logLevel = logLevel;
    set('log_level', 'RUSTFS_KMS_LOG_LEVEL');
  }
  const unlocked = get('RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY');
  if (unlocked !== undefined) {
    const v = unlocked.toLowerCase();
    if (v === '1' || v === 'true') layer.allowUnlockedMemory = true;
    else if (v === '0' || v === 'false') layer.allowUnlockedMemory = false;
    else r.fail('RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY', 'one of 1, true, 0, false', unlocked);
    set('allow_unlocked_memory', 'RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Command line

function applyCli(layer: Layer, cli: CliOptions, cwd: string): void {
  const r = new Reader(undefined, new Map(), cwd, false);
  const stateDir = r.path('--state-dir', cli.stateDir);
  if (stateDir !== undefined) {
    layer.stateDir = stateDir;
    layer.origins.set('state_dir', '--state-dir');
  }
  const socket = r.path('--socket', cli.socket);
  if (socket !== undefined) {
    layer.socket.path = socket;
    layer.origins.set('socket.path', '--socket');
  }
  if (cli.allowUnlockedMemory === true) {
    layer.allowUnlockedMemory = true;
    layer.origins.set('allow_unlocked_memory', '--allow-unlocked-memory');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Defaults, derived values and cross-field checks

interface FinalizeOptions {
  dev: boolean;
  reload: boolean;
  cwd: string;
  env: ConfigEnv;
  configPath: string | undefined;
  /** For the positions of YAML-sourced fields in errors. */
  yaml: Reader;
}

function finalize(layer: Layer, opts: FinalizeOptions): DaemonConfig {
  const { dev, cwd, env } = opts;
  /** The name to use for a field in an error: its source (env var, flag) or its YAML path. */
  const name = (yamlPath: string): string => layer.origins.get(yamlPath) ?? yamlPath;
  /** " (set by RUSTFS_KMS_TYPE)" when a field's value came from the environment or command line. */
  const setBy = (yamlPath: string): string => (name(yamlPath) === yamlPath ? '' : ` (set by ${name(yamlPath)})`);
  const fail: (yamlPath: string, expected: string, detail: string) => never = (yamlPath, expected, detail) => {
    const field = name(yamlPath);
    const location = field === yamlPath ? opts.yaml.location(yamlPath) : undefined;
    throw new ConfigError(field, expected, { detail, location });
  };
  const missing: (yamlPath: string, expected: string, when: string) => never = (yamlPath, expected, when) =>
    fail(yamlPath, expected, `required ${when}: expected ${expected}`);
  const isSet = (variable: string): boolean => opts.reload || (env[variable] !== undefined && env[variable] !== '');

  const stateDir = layer.stateDir ?? (dev ? path.resolve(cwd, DEV_STATE_DIR_NAME) : PROD_STATE_DIR);
  const socketPath = layer.socket.path ?? (dev ? path.join(stateDir, 'kms.sock') : PROD_SOCKET_PATH);
  const socketBytes = Buffer.byteLength(socketPath);
  if (socketBytes > MAX_SOCKET_PATH_BYTES) {
    const derived = layer.socket.path === undefined;
    const expected = `a socket path of at most ${MAX_SOCKET_PATH_BYTES} bytes (the Unix socket limit)`;
    const from = derived ? ` (derived from ${name('state_dir')}; set socket.path or --socket)` : '';
    throw new ConfigError(derived ? 'socket.path' : name('socket.path'), expected, {
      detail: `expected ${expected}, got ${socketBytes} bytes: ${describe(socketPath)}${from}`,
    });
  }
  const group = layer.socket.group === null ? undefined : (layer.socket.group ?? (dev ? undefined : PROD_SOCKET_GROUP));

  const rootType = layer.root.type ?? 'local';
  const keystoreType = layer.keystore.type ?? 'file';

  // root.local
  const local: DaemonConfig['root']['local'] = { keyFile: layer.root.local.keyFile ?? path.join(stateDir, 'root.key') };
  const passphraseEnv = layer.root.local.passphraseEnv;
  if (passphraseEnv !== undefined) {
    local.passphraseEnv = passphraseEnv;
    if (rootType === 'local' && !isSet(passphraseEnv)) {
      const expected = `the environment variable ${passphraseEnv} to hold the passphrase`;
      fail('root.local.passphrase_env', expected, `expected ${expected}, but it is not set`);
    }
  }

  // root.pkcs11
  const pkcs11 = layer.root.pkcs11;
  if (rootType === 'pkcs11') {
    if (pkcs11 === undefined) {
      const expected = 'a pkcs11 section with module, token_label or token_serial, and pin_file or pin_env';
      missing('root.pkcs11', expected, `when root.type is pkcs11${setBy('root.type')}`);
    }
    if (pkcs11.pinEnv !== undefined && !isSet(pkcs11.pinEnv)) {
      const expected = `the environment variable ${pkcs11.pinEnv} to hold the PIN`;
      fail('root.pkcs11.pin_env', expected, `expected ${expected}, but it is not set`);
    }
  }

  // keystore and root.vault
  const vaultNeeded = rootType === 'vault-transit' || keystoreType === 'vault-kv';
  const when =
    rootType === 'vault-transit'
      ? `when root.type is vault-transit${setBy('root.type')}`
      : `when keystore.type is vault-kv${setBy('keystore.type')}`;
  const vl = layer.root.vault;
  const keystoreKv = layer.keystore.kvMount;
  const vaultKv = vl?.kvMount;
  if (keystoreKv !== undefined && vaultKv !== undefined && keystoreKv !== vaultKv) {
    const expected = `the same mount as root.vault.kv_mount (${describe(vaultKv)}); set only one of them`;
    fail('keystore.kv_mount', expected, `expected ${expected}, got ${describe(keystoreKv)}`);
  }
  const kvMount = keystoreKv ?? vaultKv ?? DEFAULTS.keystore.kvMount;

  let vault: VaultConfig | undefined;
  if (vaultNeeded && vl?.address === undefined) {
    missing('root.vault.address', 'an http(s) URL in root.vault.address or RUSTFS_KMS_VAULT_ADDRESS', when);
  }
  // A vault section that nothing uses is kept only when complete enough to describe a server.
  if (vl?.address !== undefined) {
    const auth = buildAuth(vl.auth);
    if (vaultNeeded && auth === undefined) {
      missing('root.vault.auth', 'root.vault.auth (method token, approle or kubernetes) or RUSTFS_KMS_VAULT_TOKEN', when);
    }
    if (vaultNeeded && auth?.method === 'token' && auth.token === undefined && auth.tokenFile === undefined) {
      const expected = 'root.vault.auth.token_file or RUSTFS_KMS_VAULT_TOKEN';
      fail('root.vault.auth', expected, `method token needs a token: expected ${expected}`);
    }
    if (auth !== undefined) {
      vault = {
        address: vl.address,
        namespace: vl.namespace ?? DEFAULTS.vault.namespace,
        transitMount: vl.transitMount ?? DEFAULTS.vault.transitMount,
        transitKey: vl.transitKey ?? DEFAULTS.vault.transitKey,
        kvMount,
        auth,
        tls: { ...(vl.tls ?? {}) },
      };
    }
  }

  const root: DaemonConfig['root'] = { type: rootType, local };
  if (pkcs11 !== undefined) root.pkcs11 = pkcs11;
  if (vault !== undefined) root.vault = vault;

  const config: DaemonConfig = {
    dev,
    allowUnlockedMemory: layer.allowUnlockedMemory ?? false,
    logLevel: layer.logLevel ?? DEFAULTS.logLevel,
    stateDir,
    socket: { path: socketPath, mode: layer.socket.mode ?? DEFAULT_SOCKET_MODE },
    root,
    keystore: {
      type: keystoreType,
      kvMount,
      prefix: layer.keystore.prefix ?? DEFAULTS.keystore.prefix,
      syncIntervalS: layer.keystore.syncIntervalS ?? DEFAULTS.keystore.syncIntervalS,
    },
    cache: {
      idleTtlS: layer.cache.idleTtlS ?? DEFAULTS.cache.idleTtlS,
      offlineTtlS: layer.cache.offlineTtlS ?? DEFAULTS.cache.offlineTtlS,
    },
    limits: {
      maxFrameBytes: layer.limits.maxFrameBytes ?? DEFAULTS.limits.maxFrameBytes,
      maxConnections: layer.limits.maxConnections ?? DEFAULTS.limits.maxConnections,
      maxInflightPerConnection: layer.limits.maxInflightPerConnection ?? DEFAULTS.limits.maxInflightPerConnection,
      idleTimeoutS: layer.limits.idleTimeoutS ?? DEFAULTS.limits.idleTimeoutS,
      drainTimeoutS: layer.limits.drainTimeoutS ?? DEFAULTS.limits.drainTimeoutS,
    },
    audit: {
      path: layer.audit.path ?? (dev ? path.join(stateDir, 'audit.log') : PROD_AUDIT_PATH),
      fsync: layer.audit.fsync ?? DEFAULTS.audit.fsync,
      fsyncIntervalMs: layer.audit.fsyncIntervalMs ?? DEFAULTS.audit.fsyncIntervalMs,
      maxBytes: layer.audit.maxBytes ?? DEFAULTS.audit.maxBytes,
    },
    timeoutSecs: layer.timeoutSecs ?? DEFAULTS.timeoutSecs,
    retryAttempts: layer.retryAttempts ?? DEFAULTS.retryAttempts,
    hardening: { mlockall: layer.hardening.mlockall ?? false },
  };
  if (opts.configPath !== undefined) config.configPath = opts.configPath;
  if (group !== undefined) config.socket.group = group;
  if (layer.adminHttp !== undefined) config.adminHttp = { ...layer.adminHttp };
  if (layer.policy !== undefined) config.policy = layer.policy;
  if (layer.defaultKeyId !== undefined) config.defaultKeyId = layer.defaultKeyId;
  return config;
}

function buildAuth(a: VaultAuthLayer | undefined): VaultAuth | undefined {
  if (a === undefined) return undefined;
  switch (a.method) {
    case 'token': {
      const auth: VaultAuth = { method: 'token' };
      if (a.token !== undefined) auth.token = a.token;
      else if (a.tokenFile !== undefined) auth.tokenFile = a.tokenFile;
      return auth;
    }
    case 'approle':
      // Presence was checked when the section was read.
      return {
        method: 'approle',
        roleIdFile: a.roleIdFile ?? '',
        secretIdFile: a.secretIdFile ?? '',
        mount: a.mount ?? DEFAULTS.vault.approleMount,
      };
    case 'kubernetes':
      return {
        method: 'kubernetes',
        role: a.role ?? '',
        jwtFile: a.jwtFile ?? DEFAULT_K8S_JWT_FILE,
        mount: a.mount ?? DEFAULTS.vault.k8sMount,
      };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Entry points

const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
  ELOOP: 'too many symbolic links',
};

function resolveCwd(cwd: string | undefined): string {
  const dir = cwd ?? process.cwd();
  if (!path.isAbsolute(dir)) throw new ConfigError('cwd', 'an absolute directory', { got: describe(dir) });
  return path.normalize(dir);
}

function build(
  text: string | undefined,
  source: { configPath: string | undefined; sourceName: string | undefined; baseDir: string | undefined },
  env: ConfigEnv,
  cli: CliOptions,
  cwd: string,
): DaemonConfig {
  const layer = emptyLayer();
  let yamlReader = new Reader(source.sourceName, new Map(), source.baseDir, true);
  if (text !== undefined) {
    const { value, positions } = parseYaml(text, source.sourceName);
    yamlReader = new Reader(source.sourceName, positions, source.baseDir, true);
    applyYaml(layer, value, yamlReader);
  }
  applyEnv(layer, env, cwd);
  applyCli(layer, cli, cwd);
  return finalize(layer, { dev: cli.dev === true, reload: cli.reload === true, cwd, env, configPath: source.configPath, yaml: yamlReader });
}

/**
 * Loads the daemon configuration: defaults → YAML file → RUSTFS_KMS_* environment → command line.
 * The file is `configPath` (--config), else $RUSTFS_KMS_CONFIG, else /etc/rustfs-kms/config.yaml if it
 * exists (never in dev mode). Throws {@link ConfigError} for any bad value.
 */
export function loadConfig(input: LoadConfigInput): DaemonConfig {
  const cwd = resolveCwd(input.cwd);
  const { env, cli } = input;

  let file: string | undefined;
  let field = 'config file';
  let explicit = false;
  if (input.configPath !== undefined) {
    if (input.configPath === '') throw new ConfigError('--config', 'a file path', { got: '""' });
    file = path.resolve(cwd, input.configPath);
    field = '--config';
    explicit = true;
  } else if (env.RUSTFS_KMS_CONFIG !== undefined && env.RUSTFS_KMS_CONFIG !== '') {
    file = path.resolve(cwd, env.RUSTFS_KMS_CONFIG);
    field = 'RUSTFS_KMS_CONFIG';
    explicit = true;
  } else if (cli.dev !== true) {
    file = input.defaultConfigPath ?? DEFAULT_CONFIG_PATH;
  }

  let text: string | undefined;
  if (file !== undefined) {
    try {
      const bytes = readFileSync(file);
      if (bytes.length > MAX_CONFIG_FILE_BYTES) {
        const expected = `a YAML file of at most ${MAX_CONFIG_FILE_BYTES} bytes`;
        throw new ConfigError(field, expected, { detail: `expected ${expected}, got ${describe(file)} (${bytes.length} bytes)` });
      }
      text = bytes.toString('utf8');
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !explicit) {
        file = undefined; // the default file is optional
      } else {
        const reason = FILE_ERRORS[code ?? ''] ?? String(code ?? err);
        const detail = `expected a readable YAML file, got ${describe(file)} (${reason})`;
        throw new ConfigError(field, 'a readable YAML file', { detail });
      }
    }
  }

  return build(
    text,
    { configPath: file, sourceName: file, baseDir: file !== undefined ? path.dirname(file) : undefined },
    env,
    cli,
    cwd,
  );
}

/**
 * Same pipeline as {@link loadConfig}, with the YAML given as text (no file is read). Environment and
 * command line default to empty, so tests are hermetic.
 */
export function configFromYaml(text: string, options: ConfigFromYamlOptions = {}): DaemonConfig {
  const cwd = resolveCwd(options.cwd);
  const baseDir = options.baseDir !== undefined ? path.resolve(cwd, options.baseDir) : undefined;
  return build(
    text,
    { configPath: options.configPath, sourceName: options.sourceName, baseDir },
    options.env ?? {},
    options.cli ?? {},
    cwd,
  );
}

const SECRET_KEY_NAMES = new Set(['token', 'secret', 'secretkey', 'password', 'passphrase', 'pin']);
export const REDACTED = '[redacted]';

/**
 * A JSON-safe deep copy for start-up logging: secret values (today the Vault token) become "[redacted]",
 * undefined fields are dropped. Paths to secret files and names of secret variables are kept.
 */
export function redactedConfig(config: DaemonConfig): DaemonConfig {
  const copy = (v: unknown, key: string): unknown => {
    if (typeof v === 'string' && SECRET_KEY_NAMES.has(key.toLowerCase())) return REDACTED;
    if (Array.isArray(v)) return v.map((item) => copy(item, ''));
    if (isObj(v)) {
      const out: Obj = {};
      for (const [k, item] of Object.entries(v)) {
        if (item !== undefined) out[k] = copy(item, k);
      }
      return out;
    }
    return v;
  };
  return copy(config, '') as DaemonConfig;
}

/**
 * RUSTFS_KMS_* variables in `env` that nothing in this project reads (probably typos); the daemon logs
 * them as a warning at start-up. Not an error: the same environment often feeds RustFS itself.
 */
export function unrecognizedEnvVars(env: ConfigEnv): string[] {
  return Object.keys(env)
    .filter((k) => k.startsWith('RUSTFS_KMS_') && !CONFIG_ENV_VARS.includes(k) && !OTHER_KNOWN_ENV_VARS.includes(k))
    .sort();
}
