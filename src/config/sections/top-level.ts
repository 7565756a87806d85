// The top-level scalars of the config file (the sections have their own modules).
import type { Static } from '@sinclair/typebox';
import { KEY_ID_PATTERN } from '../../keys/validation.js';
import { bool, int, oneOf, optional, str, type CamelKeys } from '../field.js';
import { SECONDS } from '../formats.js';
import { pathField } from './common.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const KEY_ID_TEXT = `a key id matching ${KEY_ID_PATTERN.source}`;
export const PROD_STATE_DIR = '/var/lib/rustfs-kms';
export const DEV_STATE_DIR_NAME = '.kms';

export const stateDirField = pathField({
  description: 'State directory. It holds the file keystore (`keys/`), its lock file and the default root key file.',
  docDefault: `\`${PROD_STATE_DIR}\` (dev: \`<cwd>/${DEV_STATE_DIR_NAME}\`)`,
});
export const logLevelField = oneOf(LOG_LEVELS, { default: 'info', description: '`SIGHUP` reloads it.' });
export const allowUnlockedMemoryField = bool({
  default: false,
  description: 'Start even if key slots cannot be `mlock`ed. Without it, the daemon refuses to start in that case.',
});
export const defaultKeyIdField = str({
  pattern: KEY_ID_PATTERN,
  expected: KEY_ID_TEXT,
  description: `The key used when a caller names none. Must match \`${KEY_ID_PATTERN.source}\`.`,
});
export const timeoutSecsField = int({
  min: 1, max: 3600, default: 30, expected: SECONDS,
  description: 'Timeout for each call to a remote root or keystore (Vault, PKCS#11).',
});
export const retryAttemptsField = int({ min: 0, max: 20, default: 3, description: 'Retries, with back-off, for remote calls that fail.' });

/** Top-level scalar fields; schema.ts places them among the sections. */
export const topLevelFields = {
  state_dir: optional(stateDirField),
  default_key_id: optional(defaultKeyIdField),
  timeout_secs: optional(timeoutSecsField),
  retry_attempts: optional(retryAttemptsField),
  log_level: optional(logLevelField),
  allow_unlocked_memory: optional(allowUnlockedMemoryField),
};

type TopLevelFile = { [K in keyof typeof topLevelFields]?: Static<(typeof topLevelFields)[K]> };
export type TopLevelLayer = CamelKeys<TopLevelFile>;
