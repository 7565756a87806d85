// The config layer: declared once per section (src/config/sections/), validated with TypeBox, overlaid by
// the environment and the command line. Every other layer imports config from here.
export { ConfigError, type ConfigErrorOptions } from './errors.js';
export { DEFAULT_CONFIG_PATH, configFromYaml, loadConfig } from './load.js';
export { checkConfigFile, type CheckConfigInput } from './check-file.js';
export { CONFIG_ENV_VARS, unrecognizedEnvVars } from './env.js';
export { REDACTED, redactedConfig } from './redact.js';
export { ConfigFileSchema, type ConfigFile } from './schema.js';
export type { CliOptions, ConfigEnv, ConfigFromYamlOptions, DaemonConfig, LoadConfigInput } from './types.js';
export type { AdminHttpConfig } from './sections/admin-http.js';
export type { AuditConfig, AuditFsync } from './sections/audit.js';
export { KEYSTORE_TYPES, type KeystoreType } from './sections/keystore.js';
export { POLICY_OPERATIONS, type PolicyRule } from './sections/policy.js';
export { ROOT_TYPES, type RootType } from './sections/root.js';
export type { Pkcs11Config, Pkcs11Mode } from './sections/root-pkcs11.js';
export type { VaultConfig, VaultTls } from './sections/root-vault.js';
export type { VaultAuth } from './sections/vault-auth.js';
export { LOG_LEVELS, type LogLevel } from './sections/top-level.js';
export { KEY_ID_PATTERN } from '../keys/validation.js';
