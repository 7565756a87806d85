// The RUSTFS_KMS_* environment overlay (DESIGN §8: the names RustFS operators already use). Errors name
// the variable; secrets are never echoed and only the Vault token's value enters the config.
import { KEY_ID_PATTERN } from '../keys/validation.js';
import { FieldErrors, describe } from './errors.js';
import type { RefineContext } from './field.js';
import { NAMESPACE_PATTERN, NO_SPACE_PRINTABLE, REGION_PATTERN, filePath, vaultAddress } from './formats.js';
import type { Layer } from './layer.js';
import { AZURE_KEY_NAME_PATTERN, azureHttpsUrl } from './sections/root-azure-keyvault.js';
import { AWS_KEY_ID_PATTERN, awsEndpoint } from './sections/root-aws-kms.js';
import type { RootType } from './sections/root.js';
import { GCP_KEY_NAME_PATTERN } from './sections/root-gcp-kms.js';
import { LOG_LEVELS, KEY_ID_TEXT, retryAttemptsField, timeoutSecsField } from './sections/top-level.js';
import type { ConfigEnv } from './types.js';

export interface EnvBinding {
  name: string;
  /** docs: the field(s) it sets. */
  sets: string;
  /** docs: the values it accepts. */
  accepts: string;
}

const range = (f: { minimum?: number; maximum?: number }): string => `integer ${String(f.minimum)}–${String(f.maximum)}`;

/** Every environment variable the config reads, with its docs row. */
export const ENV_BINDINGS: readonly EnvBinding[] = [
  { name: 'RUSTFS_KMS_CONFIG', sets: 'config file path', accepts: 'path (must exist)' },
  { name: 'RUSTFS_KMS_TYPE', sets: '`root.type` and `keystore.type`', accepts: '`local` → `local` + `file`; `vault` → `vault-transit` + `vault-kv`; `aws`/`aws-kms` → `aws-kms`, `azure` → `azure-keyvault`, `gcp` → `gcp-kms` (keystore unchanged: `file` by default)' },
  { name: 'RUSTFS_KMS_BACKEND', sets: 'the same as `RUSTFS_KMS_TYPE` (RustFS\'s name); if both are set they must agree', accepts: 'the values of `RUSTFS_KMS_TYPE`' },
  { name: 'RUSTFS_KMS_AZURE_VAULT_URL', sets: '`root.azure_keyvault.vault_url`', accepts: '`https://<vault>.vault.azure.net` URL' },
  { name: 'RUSTFS_KMS_AZURE_KEY_NAME', sets: '`root.azure_keyvault.key_name`', accepts: 'Key Vault key name (letters, digits, dashes; 1–127)' },
  { name: 'RUSTFS_KMS_AWS_KEY_ID', sets: '`root.aws_kms.key_id`', accepts: 'key id, key ARN, `alias/NAME` or alias ARN' },
  { name: 'RUSTFS_KMS_AWS_REGION', sets: '`root.aws_kms.region`', accepts: 'AWS region, e.g. `eu-west-1`' },
  { name: 'RUSTFS_KMS_AWS_ENDPOINT_URL', sets: '`root.aws_kms.endpoint`', accepts: '`https://` URL (`http://` on loopback only)' },
  { name: 'RUSTFS_KMS_GCP_KEY_NAME', sets: '`root.gcp_kms.key_name`', accepts: '`projects/P/locations/L/keyRings/R/cryptoKeys/K`' },
  { name: 'RUSTFS_KMS_VAULT_ADDRESS', sets: '`root.vault.address`', accepts: '`http(s)://host[:port]` URL' },
  {
    name: 'RUSTFS_KMS_VAULT_TOKEN',
    sets: '`root.vault.auth` = `{ method: token, token }`',
    accepts: 'a Vault token, with no whitespace. Shown as `[redacted]` in logs.',
  },
  { name: 'RUSTFS_KMS_VAULT_NAMESPACE', sets: '`root.vault.namespace`', accepts: 'namespace, or empty for the root namespace' },
  { name: 'RUSTFS_KMS_LOCAL_KEY_DIR', sets: '`state_dir`', accepts: 'directory. If `RUSTFS_KMS_STATE_DIR` is also set, the two must agree.' },
  {
    name: 'RUSTFS_KMS_LOCAL_MASTER_KEY',
    sets: '`root.local.passphrase_env = "RUSTFS_KMS_LOCAL_MASTER_KEY"`',
    accepts: "the passphrase. The config records only the variable's name, never its value.",
  },
  { name: 'RUSTFS_KMS_DEFAULT_KEY_ID', sets: '`default_key_id`', accepts: `key id \`${KEY_ID_PATTERN.source}\`` },
  { name: 'RUSTFS_KMS_TIMEOUT_SECS', sets: '`timeout_secs`', accepts: range(timeoutSecsField) },
  { name: 'RUSTFS_KMS_RETRY_ATTEMPTS', sets: '`retry_attempts`', accepts: range(retryAttemptsField) },
  { name: 'RUSTFS_KMS_SOCKET', sets: '`socket.path`', accepts: 'path (the CLI `rustfs-kms` uses it too)' },
  { name: 'RUSTFS_KMS_STATE_DIR', sets: '`state_dir`', accepts: 'directory' },
  {
    name: 'RUSTFS_KMS_AUDIT_PATH', sets: '`audit.path`',
    accepts: "path of the audit log (its directory must exist outside `--dev`; `rustfs-kms init` creates it). `KmsConfig.fromEnv()` (in-process) defaults to `<state_dir>/audit.log` instead of the daemon's `/var/log/rustfs-kms/audit.log`",
  },
  { name: 'RUSTFS_KMS_LOG_LEVEL', sets: '`log_level`', accepts: LOG_LEVELS.map((l) => `\`${l}\``).join(', ') },
  { name: 'RUSTFS_KMS_ALLOW_UNLOCKED_MEMORY', sets: '`allow_unlocked_memory`', accepts: '`1`/`true` or `0`/`false` (case-insensitive)' },
];

/** RUSTFS_KMS_TYPE / RUSTFS_KMS_BACKEND values that name a cloud root (RustFS's spellings and ours). */
const CLOUD_BACKENDS: Readonly<Record<string, RootType>> = {
  aws: 'aws-kms',
  'aws-kms': 'aws-kms',
  azure: 'azure-keyvault',
  gcp: 'gcp-kms',
};

/** Every environment variable this module reads. */
export const CONFIG_ENV_VARS: readonly string[] = ENV_BINDINGS.map((b) => b.name);

/** RUSTFS_KMS_* names that other parts of the project read (not config). */
const OTHER_KNOWN_ENV_VARS: readonly string[] = ['RUSTFS_KMS_NATIVE_TEST_HOOKS', 'RUSTFS_KMS_TEST_PKCS11_SEAL_LIMIT', 'RUSTFS_KMS_SOCKET'];

/**
 * RUSTFS_KMS_* variables in `env` that nothing in this project reads (probably typos); the daemon logs
 * them as a warning at start-up. Not an error: the same environment often feeds RustFS itself.
 */
export function unrecognizedEnvVars(env: ConfigEnv): string[] {
  return Object.keys(env)
    .filter((k) => k.startsWith('RUSTFS_KMS_') && !CONFIG_ENV_VARS.includes(k) && !OTHER_KNOWN_ENV_VARS.includes(k))
    .sort();
}

export function applyEnv(layer: Layer, env: ConfigEnv, cwd: string): void {
  const r = new FieldErrors();
  const ctx = (field: string): RefineContext => ({ field, baseDir: cwd, errors: r });
  /** Empty counts as unset (a blank line in an env file), except where noted. */
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const envInt = (name: string, field: { minimum?: number; maximum?: number }): number | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    const [min, max] = [field.minimum ?? 0, field.maximum ?? Number.MAX_SAFE_INTEGER];
    const n = /^[0-9]{1,10}$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) r.fail(name, `an integer from ${min} to ${max}`, v);
    return n;
  };
  const envPath = (name: string): string | undefined => {
    const v = get(name);
    return v === undefined ? undefined : filePath(v, ctx(name));
  };
  const set = (yamlPath: string, name: string): void => {
    layer.origins.set(yamlPath, name);
  };
  const vault = (): NonNullable<Layer['root']['vault']> => (layer.root.vault ??= {});

  // RustFS names the backend RUSTFS_KMS_BACKEND; both are accepted, and must agree when both are set.
  const typeName = get('RUSTFS_KMS_TYPE') !== undefined ? 'RUSTFS_KMS_TYPE' : 'RUSTFS_KMS_BACKEND';
  const type = get(typeName);
  const backend = get('RUSTFS_KMS_BACKEND');
  if (type !== undefined && backend !== undefined && backend !== type) {
    r.failDetail('RUSTFS_KMS_BACKEND', `the same value as RUSTFS_KMS_TYPE (${describe(type)})`, `expected the same value as RUSTFS_KMS_TYPE (${describe(type)}), got ${describe(backend)}`);
  }
  if (type !== undefined) {
    if (type === 'local') {
      layer.root.type = 'local';
      layer.keystore.type = 'file';
    } else if (type === 'vault') {
      layer.root.type = 'vault-transit';
      layer.keystore.type = 'vault-kv';
    } else if (Object.hasOwn(CLOUD_BACKENDS, type)) {
      layer.root.type = CLOUD_BACKENDS[type] as RootType; // the keystore stays as configured (file by default)
    } else {
      r.fail(typeName, `one of local, vault, ${Object.keys(CLOUD_BACKENDS).join(', ')}`, type);
    }
    set('root.type', typeName);
    if (type === 'local' || type === 'vault') set('keystore.type', typeName);
  }

  const azure = (): NonNullable<Layer['root']['azureKeyvault']> => (layer.root.azureKeyvault ??= {});
  const azureUrl = get('RUSTFS_KMS_AZURE_VAULT_URL');
  if (azureUrl !== undefined) {
    azure().vaultUrl = azureHttpsUrl(azureUrl, ctx('RUSTFS_KMS_AZURE_VAULT_URL'));
    set('root.azure_keyvault.vault_url', 'RUSTFS_KMS_AZURE_VAULT_URL');
  }
  const azureKey = get('RUSTFS_KMS_AZURE_KEY_NAME');
  if (azureKey !== undefined) {
    if (!AZURE_KEY_NAME_PATTERN.test(azureKey)) r.fail('RUSTFS_KMS_AZURE_KEY_NAME', 'a Key Vault key name of 1 to 127 letters, digits and dashes', azureKey);
    azure().keyName = azureKey;
    set('root.azure_keyvault.key_name', 'RUSTFS_KMS_AZURE_KEY_NAME');
  }
  const gcpKeyName = get('RUSTFS_KMS_GCP_KEY_NAME');
  if (gcpKeyName !== undefined) {
    if (!GCP_KEY_NAME_PATTERN.test(gcpKeyName)) r.fail('RUSTFS_KMS_GCP_KEY_NAME', 'a Cloud KMS key name like "projects/P/locations/L/keyRings/R/cryptoKeys/K"', gcpKeyName);
    (layer.root.gcpKms ??= {}).keyName = gcpKeyName;
    set('root.gcp_kms.key_name', 'RUSTFS_KMS_GCP_KEY_NAME');
  }

  const awsKms = (): NonNullable<Layer['root']['awsKms']> => (layer.root.awsKms ??= {});
  const awsKeyId = get('RUSTFS_KMS_AWS_KEY_ID');
  if (awsKeyId !== undefined) {
    if (!AWS_KEY_ID_PATTERN.test(awsKeyId)) r.fail('RUSTFS_KMS_AWS_KEY_ID', 'an AWS KMS key id, key ARN, "alias/NAME" or alias ARN', awsKeyId);
    awsKms().keyId = awsKeyId;
    set('root.aws_kms.key_id', 'RUSTFS_KMS_AWS_KEY_ID');
  }
  const awsRegion = get('RUSTFS_KMS_AWS_REGION');
  if (awsRegion !== undefined) {
    if (!REGION_PATTERN.test(awsRegion)) r.fail('RUSTFS_KMS_AWS_REGION', 'an AWS region like "eu-west-1"', awsRegion);
    awsKms().region = awsRegion;
    set('root.aws_kms.region', 'RUSTFS_KMS_AWS_REGION');
  }
  const awsEndpointUrl = get('RUSTFS_KMS_AWS_ENDPOINT_URL');
  if (awsEndpointUrl !== undefined) {
    awsKms().endpoint = awsEndpoint(awsEndpointUrl, ctx('RUSTFS_KMS_AWS_ENDPOINT_URL'));
    set('root.aws_kms.endpoint', 'RUSTFS_KMS_AWS_ENDPOINT_URL');
  }


  const address = get('RUSTFS_KMS_VAULT_ADDRESS');
  if (address !== undefined) {
    vault().address = vaultAddress(address, ctx('RUSTFS_KMS_VAULT_ADDRESS'));
    set('root.vault.address', 'RUSTFS_KMS_VAULT_ADDRESS');
  }
  const token = env.RUSTFS_KMS_VAULT_TOKEN;
  if (token !== undefined) {
    // A secret: set-but-empty is an error (usually a templating mistake), and the value is never echoed.
    if (!NO_SPACE_PRINTABLE.test(token)) {
      const detail =
        token === '' ? 'expected a Vault token, got an empty value' : 'expected a Vault token without spaces or control characters';
      r.failDetail('RUSTFS_KMS_VAULT_TOKEN', 'a Vault token', detail);
    }
    vault().auth = { method: 'token', token };
    set('root.vault.auth', 'RUSTFS_KMS_VAULT_TOKEN');
  }
  const namespace = env.RUSTFS_KMS_VAULT_NAMESPACE; // empty = the root namespace
  if (namespace !== undefined) {
    if (!NAMESPACE_PATTERN.test(namespace)) r.fail('RUSTFS_KMS_VAULT_NAMESPACE', 'a Vault namespace like "admin/team"', namespace);
    vault().namespace = namespace;
    set('root.vault.namespace', 'RUSTFS_KMS_VAULT_NAMESPACE');
  }

  const keyDir = envPath('RUSTFS_KMS_LOCAL_KEY_DIR');
  const stateDir = envPath('RUSTFS_KMS_STATE_DIR');
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

  const keyId = get('RUSTFS_KMS_DEFAULT_KEY_ID');
  if (keyId !== undefined) {
    if (!KEY_ID_PATTERN.test(keyId)) r.fail('RUSTFS_KMS_DEFAULT_KEY_ID', KEY_ID_TEXT, keyId);
    layer.defaultKeyId = keyId;
    set('default_key_id', 'RUSTFS_KMS_DEFAULT_KEY_ID');
  }
  const timeout = envInt('RUSTFS_KMS_TIMEOUT_SECS', timeoutSecsField);
  if (timeout !== undefined) {
    layer.timeoutSecs = timeout;
    set('timeout_secs', 'RUSTFS_KMS_TIMEOUT_SECS');
  }
  const retries = envInt('RUSTFS_KMS_RETRY_ATTEMPTS', retryAttemptsField);
  if (retries !== undefined) {
    layer.retryAttempts = retries;
    set('retry_attempts', 'RUSTFS_KMS_RETRY_ATTEMPTS');
  }

  const socket = envPath('RUSTFS_KMS_SOCKET');
  if (socket !== undefined) {
    layer.socket.path = socket;
    set('socket.path', 'RUSTFS_KMS_SOCKET');
  }
  // Moves the audit log, e.g. for in-process use on a host without /var/log/rustfs-kms.
  const auditPath = envPath('RUSTFS_KMS_AUDIT_PATH');
  if (auditPath !== undefined) {
    layer.audit.path = auditPath;
    set('audit.path', 'RUSTFS_KMS_AUDIT_PATH');
  }
  const logLevel = get('RUSTFS_KMS_LOG_LEVEL');
  if (logLevel !== undefined) {
    const level = LOG_LEVELS.find((l) => l === logLevel);
    if (level === undefined) r.fail('RUSTFS_KMS_LOG_LEVEL', `one of ${LOG_LEVELS.join(', ')}`, logLevel);
    layer.logLevel = level;
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
