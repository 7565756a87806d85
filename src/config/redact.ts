// A loggable copy of the config: the one secret value it can hold (the Vault token) is hidden.
import type { DaemonConfig } from './types.js';

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
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) {
        if (item !== undefined) out[k] = copy(item, k);
      }
      return out;
    }
    return v;
  };
  return copy(config, '') as DaemonConfig;
}
