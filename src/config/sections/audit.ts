// audit: the hash-chained audit log.
import { Type, type Static } from '@sinclair/typebox';
import { annotate, int, oneOf, optional, section, type CamelKeys } from '../field.js';
import { MILLIS } from '../formats.js';
import { pathField } from './common.js';

export const PROD_AUDIT_PATH = '/var/log/rustfs-kms/audit.log';
const MIN_ROTATION_BYTES = 1_048_576;

const maxBytes = annotate(
  Type.Union([Type.Literal(0), Type.Integer({ minimum: MIN_ROTATION_BYTES, maximum: Number.MAX_SAFE_INTEGER })], {
    default: 104_857_600,
    description: `Rotate the log when it reaches this size. \`0\` means never rotate. Any other value must be at least ${MIN_ROTATION_BYTES}.`,
  }),
  { expected: `0 (never rotate) or an integer number of bytes of at least ${MIN_ROTATION_BYTES}`, docType: 'int' },
);

export const AuditSection = section(
  {
    path: optional(pathField({
      description: "The audit log: JSON lines, hash-chained. Its directory must be owned by the daemon's user or root and not writable by group or others; an existing file must be the daemon's, `0600`, and not a symlink (start-up refuses otherwise).",
      docDefault: `\`${PROD_AUDIT_PATH}\` (dev: \`<state_dir>/audit.log\`)`,
    })),
    fsync: optional(oneOf(['always', 'interval', 'never'] as const, {
      default: 'interval',
      description: '`always` (fsync after every record), `interval`, or `never` (leave it to the OS).',
    })),
    fsync_interval_ms: optional(int({ min: 1, max: 60_000, default: 1000, expected: MILLIS, description: 'fsync period when `fsync` is `interval`.' })),
    max_bytes: optional(maxBytes),
  },
  { description: 'The hash-chained audit log.' },
);

export type AuditConfig = CamelKeys<Required<Static<typeof AuditSection>>>;
export type AuditFsync = AuditConfig['fsync'];
