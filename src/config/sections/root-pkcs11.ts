// root.pkcs11: an AES key on a PKCS#11 token (HSM) wraps key material.
import type { Static } from '@sinclair/typebox';
import type { FieldErrors } from '../errors.js';
import { defaultValue, int, oneOf, optional, section, str } from '../field.js';
import { envNameField, pathField } from './common.js';

export const PKCS11_MODES = ['wrap', 'on-token'] as const;
export type Pkcs11Mode = (typeof PKCS11_MODES)[number];
const F = 'root.pkcs11';

export const RootPkcs11Section = section(
  {
    module: pathField({
      description: 'The PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.',
      missing: { expected: 'the absolute path of the PKCS#11 module (.so)' },
    }),
    token_label: optional(str({
      pattern: /^[ -~]{1,32}$/,
      expected: 'a token label of 1 to 32 printable characters',
      docType: 'string (1–32 chars)',
      description: 'Selects the token by label. At least one of `token_label` and `token_serial` is required. If both are given, both must match.',
    })),
    token_serial: optional(str({
      pattern: /^[!-~]{1,16}$/,
      expected: 'a token serial of 1 to 16 printable characters',
      docType: 'string (1–16 chars)',
      description: 'Selects the token by serial number.',
    })),
    pin_file: optional(pathField({ description: 'File that holds the user PIN. Give exactly one of `pin_file` and `pin_env`.' })),
    pin_env: optional(envNameField({
      expected: 'an environment variable name',
      description: 'Name of the environment variable that holds the PIN. The variable must be set when `root.type` is `pkcs11`.',
    })),
    key_label: optional(str({
      pattern: /^[ -~]{1,255}$/,
      default: 'rustfs-kms-root',
      expected: 'a key label of 1 to 255 printable characters',
      docType: 'string (1–255 chars)',
      description: 'Label of the AES-256 wrapping key on the token.',
    })),
    mode: optional(oneOf(PKCS11_MODES, {
      default: 'wrap',
      description:
        '`wrap`: the token key wraps key material, which is then cached in locked memory. `on-token`: every master-key version ' +
        'is a non-extractable token object and every seal runs on the token.',
    })),
    sessions: optional(int({ min: 1, max: 256, default: 4, description: 'Size of the PKCS#11 session pool.' })),
  },
  {
    description: 'Required when `root.type` is `pkcs11`. If this section is present, it must be complete whether or not it is used.',
    hints: { pin: 'pin_file or pin_env (no secrets in the config file)' },
  },
);

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

export function readRootPkcs11(s: Static<typeof RootPkcs11Section>, r: FieldErrors): Pkcs11Config {
  if (s.token_label === undefined && s.token_serial === undefined) {
    r.missing(`${F}.token_label`, 'token_label or token_serial to select the token');
  }
  if (s.pin_file === undefined && s.pin_env === undefined) r.missing(`${F}.pin_file`, 'pin_file or pin_env');
  if (s.pin_file !== undefined && s.pin_env !== undefined) {
    r.failDetail(`${F}.pin_file`, 'exactly one of pin_file or pin_env', 'expected exactly one of pin_file or pin_env, got both');
  }
  const cfg: Pkcs11Config = {
    module: s.module,
    keyLabel: s.key_label ?? defaultValue(RootPkcs11Section.properties.key_label),
    mode: s.mode ?? defaultValue(RootPkcs11Section.properties.mode),
    sessions: s.sessions ?? defaultValue(RootPkcs11Section.properties.sessions),
  };
  if (s.token_label !== undefined) cfg.tokenLabel = s.token_label;
  if (s.token_serial !== undefined) cfg.tokenSerial = s.token_serial;
  if (s.pin_file !== undefined) cfg.pinFile = s.pin_file;
  if (s.pin_env !== undefined) cfg.pinEnv = s.pin_env;
  return cfg;
}
