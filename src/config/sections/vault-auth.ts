// root.vault.auth: how the daemon logs in to Vault. One mapping for all methods (so editors complete
// every key); each method then allows only its own keys.
import type { Static } from '@sinclair/typebox';
import { quoteList, type FieldErrors } from '../errors.js';
import { oneOf, optional, section, str } from '../field.js';
import { MOUNT_PATTERN } from '../formats.js';
import { pathField } from './common.js';

export const VAULT_AUTH_METHODS = ['token', 'approle', 'kubernetes'] as const;
export type VaultAuthMethod = (typeof VAULT_AUTH_METHODS)[number];
export const DEFAULT_K8S_JWT_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const APPROLE_MOUNT = 'approle';
const K8S_MOUNT = 'kubernetes';
export const SECRET_HINT_TOKEN = 'token_file or the RUSTFS_KMS_VAULT_TOKEN environment variable (no secrets in the config file)';
const F = 'root.vault.auth';

export const VaultAuthSection = section(
  {
    method: oneOf(VAULT_AUTH_METHODS, {
      description: 'Login method. Each method allows only its own keys.',
      missing: { expected: `one of ${VAULT_AUTH_METHODS.join(', ')}` },
    }),
    token_file: optional(pathField({
      description: 'method `token`: file that holds the token. Without it, `RUSTFS_KMS_VAULT_TOKEN` must be set. An inline `token:` is refused.',
    })),
    role_id_file: optional(pathField({ description: 'method `approle` (required): file that holds the role id.' })),
    secret_id_file: optional(pathField({ description: 'method `approle` (required): file that holds the secret id.' })),
    mount: optional(str({
      pattern: MOUNT_PATTERN,
      expected: 'a Vault auth mount path',
      docType: 'mount path',
      docDefault: `\`${APPROLE_MOUNT}\` / \`${K8S_MOUNT}\``,
      description: 'methods `approle` and `kubernetes`: mount of the auth method.',
    })),
    role: optional(str({ pattern: /^[!-~]{1,255}$/, expected: 'a Vault role name', description: 'method `kubernetes` (required): Vault role name.' })),
    jwt_file: optional(pathField({
      description: 'method `kubernetes`: file that holds the service account token.',
      docDefault: `\`${DEFAULT_K8S_JWT_FILE}\``,
    })),
  },
  {
    description: 'How the daemon logs in to Vault. `RUSTFS_KMS_VAULT_TOKEN` replaces the whole section with `{ method: token }` and that token.',
    hints: {
      token: SECRET_HINT_TOKEN,
      secret_id: 'secret_id_file (no secrets in the config file)',
      role_id: 'role_id_file',
    },
  },
);

export type VaultAuth =
  | { method: 'token'; token?: string; tokenFile?: string }
  | { method: 'approle'; roleIdFile: string; secretIdFile: string; mount: string }
  | { method: 'kubernetes'; role: string; jwtFile: string; mount: string };

const AUTH_KEYS: Readonly<Record<VaultAuthMethod, readonly string[]>> = {
  token: ['method', 'token_file'],
  approle: ['method', 'role_id_file', 'secret_id_file', 'mount'],
  kubernetes: ['method', 'role', 'jwt_file', 'mount'],
};

export function readVaultAuth(a: Static<typeof VaultAuthSection>, r: FieldErrors): VaultAuth {
  const allowed = AUTH_KEYS[a.method];
  for (const key of Object.keys(a)) {
    if (!allowed.includes(key)) {
      const list = quoteList(allowed);
      r.failDetail(`${F}.${key}`, `one of ${list}`, `not used by method ${a.method}; expected one of ${list}`);
    }
  }
  switch (a.method) {
    case 'token':
      return a.token_file !== undefined ? { method: 'token', tokenFile: a.token_file } : { method: 'token' };
    case 'approle': {
      const when = 'for method approle';
      if (a.role_id_file === undefined) r.missing(`${F}.role_id_file`, 'the path of the file holding the role id', when);
      if (a.secret_id_file === undefined) r.missing(`${F}.secret_id_file`, 'the path of the file holding the secret id', when);
      return { method: 'approle', roleIdFile: a.role_id_file, secretIdFile: a.secret_id_file, mount: a.mount ?? APPROLE_MOUNT };
    }
    case 'kubernetes':
      if (a.role === undefined) r.missing(`${F}.role`, 'the Vault role name', 'for method kubernetes');
      return { method: 'kubernetes', role: a.role, jwtFile: a.jwt_file ?? DEFAULT_K8S_JWT_FILE, mount: a.mount ?? K8S_MOUNT };
  }
}
