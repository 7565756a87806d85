// Operational log: pino to stderr, separate from the audit log. Secret-bearing fields are redacted
// by name as a second line of defence; the first is never logging them at all.
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'plaintext', '*.plaintext', 'key', '*.key', 'material', '*.material', 'token', '*.token', 'pin', '*.pin',
  'passphrase', '*.passphrase', 'secret', '*.secret', 'secret_key', '*.secret_key', 'ciphertext', '*.ciphertext',
  'headers.authorization', 'headers["x-vault-token"]',
];

export function createLogger(level: string): Logger {
  return pino(
    { level, base: { service: 'rustfs-kmsd' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    pino.destination({ fd: 2, sync: true }),
  );
}
