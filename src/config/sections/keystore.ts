// keystore: where the wrapped key records are kept.
import type { Static } from '@sinclair/typebox';
import { int, oneOf, optional, section, str, type CamelKeys } from '../field.js';
import { MOUNT_PATTERN, SECONDS } from '../formats.js';

export const KEYSTORE_TYPES = ['file', 'vault-kv'] as const;
export type KeystoreType = (typeof KEYSTORE_TYPES)[number];
export const DEFAULT_KV_MOUNT = 'secret';

export const KeystoreSection = section(
  {
    type: optional(oneOf(KEYSTORE_TYPES, {
      default: 'file',
      description: '`file`: one JSON file per key in `<state_dir>/keys/`. `vault-kv`: Vault KV v2, shared by every host.',
    })),
    kv_mount: optional(str({
      pattern: MOUNT_PATTERN,
      expected: 'a Vault mount path like "secret"',
      docType: 'mount path',
      docDefault: `\`root.vault.kv_mount\`, else \`${DEFAULT_KV_MOUNT}\``,
      description: 'KV v2 mount (only for `vault-kv`).',
    })),
    prefix: optional(str({
      pattern: MOUNT_PATTERN,
      default: 'rustfs-kms',
      expected: 'a KV path prefix like "rustfs-kms" (no leading or trailing slash)',
      docType: 'path prefix',
      description: 'Records are kept at `<kv_mount>/data/<prefix>/<key_id>`.',
    })),
    sync_interval_s: optional(int({
      min: 1, max: 3600, default: 10, expected: SECONDS,
      description: 'How often the daemon re-reads the shared records, so that changes made on other hosts show up.',
    })),
  },
  { description: 'Where the wrapped key records are kept.' },
);

export type KeystoreConfig = CamelKeys<Required<Static<typeof KeystoreSection>>>;
