// Defaults, derived values and the cross-field checks, applied once every source is on the Layer.
// Fields are named by their source (env var, flag) or their YAML path with its position.
import * as path from 'node:path';
import { ConfigError, describe, type FieldErrors } from './errors.js';
import { defaultValue, defaultsOf } from './field.js';
import { MAX_SOCKET_PATH_BYTES } from './formats.js';
import type { Layer } from './layer.js';
import { AuditSection, PROD_AUDIT_PATH, type AuditConfig } from './sections/audit.js';
import { CacheSection, type CacheConfig } from './sections/cache.js';
import { DEFAULT_KV_MOUNT, KeystoreSection, type KeystoreConfig } from './sections/keystore.js';
import { LimitsSection, type LimitsConfig } from './sections/limits.js';
import type { RootConfig } from './sections/root.js';
import { RootSection } from './sections/root.js';
import { regionOfArn } from './sections/root-aws-kms.js';
import { RootVaultSection, type VaultConfig } from './sections/root-vault.js';
import type { AzureKeyVaultConfig } from './sections/root-azure-keyvault.js';
import { PROD_SOCKET_GROUP, PROD_SOCKET_PATH, SocketSection } from './sections/socket.js';
import { DEV_STATE_DIR_NAME, PROD_STATE_DIR, topLevelFields } from './sections/top-level.js';
import type { ConfigEnv, DaemonConfig } from './types.js';

export interface FinalizeOptions {
  dev: boolean;
  reload: boolean;
  cwd: string;
  env: ConfigEnv;
  configPath: string | undefined;
  /** For the positions of YAML-sourced fields in errors. */
  yaml: FieldErrors;
}

export function finalize(layer: Layer, opts: FinalizeOptions): DaemonConfig {
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

  const rootType = layer.root.type ?? defaultValue(RootSection.properties.type);
  const keystoreType = layer.keystore.type ?? defaultValue(KeystoreSection.properties.type);

  // root.local
  const local: RootConfig['local'] = { keyFile: layer.root.local.keyFile ?? path.join(stateDir, 'root.key') };
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

  // root.gcp_kms
  const gcpKms = layer.root.gcpKms;
  if (rootType === 'gcp-kms' && gcpKms?.keyName === undefined) {
    missing('root.gcp_kms.key_name', 'a Cloud KMS key name in root.gcp_kms.key_name or RUSTFS_KMS_GCP_KEY_NAME', `when root.type is gcp-kms${setBy('root.type')}`);
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
  const kvMount = keystoreKv ?? vaultKv ?? DEFAULT_KV_MOUNT;

  let vault: VaultConfig | undefined;
  if (vaultNeeded && vl?.address === undefined) {
    missing('root.vault.address', 'an http(s) URL in root.vault.address or RUSTFS_KMS_VAULT_ADDRESS', when);
  }
  // A vault section that nothing uses is kept only when complete enough to describe a server.
  if (vl?.address !== undefined) {
    const auth = vl.auth;
    if (vaultNeeded && auth === undefined) {
      missing('root.vault.auth', 'root.vault.auth (method token, approle or kubernetes) or RUSTFS_KMS_VAULT_TOKEN', when);
    }
    if (vaultNeeded && auth?.method === 'token' && auth.token === undefined && auth.tokenFile === undefined) {
      const expected = 'root.vault.auth.token_file or RUSTFS_KMS_VAULT_TOKEN';
      fail('root.vault.auth', expected, `method token needs a token: expected ${expected}`);
    }
    if (auth !== undefined) {
      const v = RootVaultSection.properties;
      vault = {
        address: vl.address,
        namespace: vl.namespace ?? defaultValue(v.namespace),
        transitMount: vl.transitMount ?? defaultValue(v.transit_mount),
        transitKey: vl.transitKey ?? defaultValue(v.transit_key),
        kvMount,
        auth,
        tls: { ...(vl.tls ?? {}) },
      };
    }
  }

  // root.azure_keyvault: required when it is the root; otherwise kept only when complete.
  const az = layer.root.azureKeyvault;
  let azureKeyvault: AzureKeyVaultConfig | undefined;
  if (rootType === 'azure-keyvault') {
    const azWhen = `when root.type is azure-keyvault${setBy('root.type')}`;
    if (az?.vaultUrl === undefined) missing('root.azure_keyvault.vault_url', 'an https URL in root.azure_keyvault.vault_url or RUSTFS_KMS_AZURE_VAULT_URL', azWhen);
    if (az.keyName === undefined) missing('root.azure_keyvault.key_name', 'a key name in root.azure_keyvault.key_name or RUSTFS_KMS_AZURE_KEY_NAME', azWhen);
    if (az.auth === undefined) missing('root.azure_keyvault.auth', 'root.azure_keyvault.auth (method client-secret, workload-identity or managed-identity)', azWhen);
  }
  if (az?.vaultUrl !== undefined && az.keyName !== undefined && az.auth !== undefined) {
    azureKeyvault = { vaultUrl: az.vaultUrl, keyName: az.keyName, auth: az.auth };
    if (az.keyVersion !== undefined) azureKeyvault.keyVersion = az.keyVersion;
    if (az.caFile !== undefined) azureKeyvault.caFile = az.caFile;
  }
  // root.aws_kms (credentials come from the AWS SDK's chain, never from here)
  const awsLayer = layer.root.awsKms;
  if (rootType === 'aws-kms' && awsLayer?.keyId === undefined) {
    missing('root.aws_kms.key_id', 'a key id, key ARN or alias/NAME in root.aws_kms.key_id or RUSTFS_KMS_AWS_KEY_ID', `when root.type is aws-kms${setBy('root.type')}`);
  }
  const awsRegion = awsLayer?.region ?? (awsLayer?.keyId !== undefined ? regionOfArn(awsLayer.keyId) : undefined);

  const root: RootConfig = { type: rootType, local };
  if (awsLayer?.keyId !== undefined) root.awsKms = { ...awsLayer, keyId: awsLayer.keyId, ...(awsRegion !== undefined ? { region: awsRegion } : {}) };
  if (pkcs11 !== undefined) root.pkcs11 = pkcs11;
  if (vault !== undefined) root.vault = vault;
  if (gcpKms?.keyName !== undefined) root.gcpKms = { ...gcpKms, keyName: gcpKms.keyName };
  if (azureKeyvault !== undefined) root.azureKeyvault = azureKeyvault;

  const limits = { ...defaultsOf(LimitsSection), ...layer.limits } as LimitsConfig;
  if (limits.maxBufferedBytes < limits.maxFrameBytes) {
    // Otherwise a frame of the allowed size could never be received.
    const expected = `an integer number of bytes of at least limits.max_frame_bytes (${limits.maxFrameBytes})`;
    fail('limits.max_buffered_bytes', expected,
      `expected at least limits.max_frame_bytes (${limits.maxFrameBytes}), got ${limits.maxBufferedBytes}: one frame of the largest allowed size must fit`);
  }
  const admin = layer.adminHttp;
  if (admin !== undefined && admin.maxConnectionsPerSource > admin.maxConnections) {
    const expected = `an integer from 1 to admin_http.max_connections (${admin.maxConnections})`;
    fail('admin_http.max_connections_per_source', expected, `expected ${expected}, got ${admin.maxConnectionsPerSource}`);
  }

  const config: DaemonConfig = {
    dev,
    allowUnlockedMemory: layer.allowUnlockedMemory ?? defaultValue(topLevelFields.allow_unlocked_memory),
    logLevel: layer.logLevel ?? defaultValue(topLevelFields.log_level),
    stateDir,
    socket: { path: socketPath, mode: layer.socket.mode ?? Number.parseInt(defaultValue(SocketSection.properties.mode), 8) },
    root,
    keystore: { ...defaultsOf(KeystoreSection), ...layer.keystore, type: keystoreType, kvMount } as KeystoreConfig,
    cache: { ...defaultsOf(CacheSection), ...layer.cache } as CacheConfig,
    limits,
    audit: {
      ...defaultsOf(AuditSection),
      ...layer.audit,
      path: layer.audit.path ?? (dev ? path.join(stateDir, 'audit.log') : PROD_AUDIT_PATH),
    } as AuditConfig,
    timeoutSecs: layer.timeoutSecs ?? defaultValue(topLevelFields.timeout_secs),
    retryAttempts: layer.retryAttempts ?? defaultValue(topLevelFields.retry_attempts),
  };
  if (opts.configPath !== undefined) config.configPath = opts.configPath;
  if (group !== undefined) config.socket.group = group;
  if (layer.adminHttp !== undefined) config.adminHttp = { ...layer.adminHttp };
  if (layer.policy !== undefined) config.policy = layer.policy;
  if (layer.defaultKeyId !== undefined) config.defaultKeyId = layer.defaultKeyId;
  return config;
}
