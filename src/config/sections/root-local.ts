// root.local: the root key file, or a passphrase from the environment.
import type { Static } from '@sinclair/typebox';
import { camelKeys, optional, section, type CamelKeys } from '../field.js';
import { envNameField, pathField } from './common.js';

export const RootLocalSection = section(
  {
    key_file: optional(pathField({
      description: '32-byte root key file (mode 0600), made by `rustfs-kms init` (or on first start in dev mode).',
      docDefault: '`<state_dir>/root.key`',
    })),
    passphrase_env: optional(envNameField({
      expected: 'an environment variable name like RUSTFS_KMS_LOCAL_MASTER_KEY',
      description:
        'Use a passphrase, stretched with scrypt, instead of the key file. The value is the **name** of the variable that holds ' +
        'the passphrase, for example `RUSTFS_KMS_LOCAL_MASTER_KEY`. When `root.type` is `local`, that variable must be set.',
    })),
  },
  {
    description: 'The local root: a key file on this host.',
    hints: { passphrase: 'passphrase_env (the name of the environment variable that holds the passphrase)' },
  },
);

export interface RootLocalConfig {
  keyFile: string;
  /** Name of the environment variable holding the passphrase (never the value). */
  passphraseEnv?: string;
}

export type RootLocalLayer = Partial<CamelKeys<Static<typeof RootLocalSection>>>;

export function readRootLocal(raw: Static<typeof RootLocalSection>): RootLocalLayer {
  return camelKeys(raw);
}
