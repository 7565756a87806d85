// root.vault: the Vault server behind the vault-transit root and the vault-kv keystore.
import type { Static } from '@sinclair/typebox';
import type { FieldErrors } from '../errors.js';
import { camelKeys, optional, section, str } from '../field.js';
import { HOSTNAME_PATTERN, MOUNT_PATTERN, NAMESPACE_PATTERN, VAULT_NAME_PATTERN, vaultAddress } from '../formats.js';
import { pathField } from './common.js';
import { SECRET_HINT_TOKEN, VaultAuthSection, readVaultAuth, type VaultAuth } from './vault-auth.js';

const F = 'root.vault';

export const VaultTlsSection = section(
  {
    ca_file: optional(pathField({ description: 'CA bundle used to verify the server.', docDefault: 'system CAs' })),
    cert_file: optional(pathField({ description: 'Client certificate for mTLS. Set both `cert_file` and `key_file` or neither.' })),
    key_file: optional(pathField({ description: 'Client key for mTLS.' })),
    server_name: optional(str({
      pattern: HOSTNAME_PATTERN,
      expected: 'a DNS host name',
      docType: 'host name',
      docDefault: 'host of `address`',
      description: 'Name expected in the server certificate (SNI).',
    })),
  },
  { description: 'TLS settings for the connection to Vault.' },
);

export const RootVaultSection = section(
  {
    address: optional(str({
      expected: vaultAddress.expected,
      refine: vaultAddress,
      docType: 'URL',
      docDefault: '**required** when Vault is used',
      description:
        '`http://` or `https://` URL of the Vault server. Credentials, a query and a fragment are not allowed. A trailing slash is removed.',
    })),
    namespace: optional(str({
      pattern: NAMESPACE_PATTERN,
      default: '',
      expected: 'a Vault namespace like "admin/team" ("" = root namespace)',
      description: 'Vault Enterprise namespace (`X-Vault-Namespace`). `""` is the root namespace.',
    })),
    transit_mount: optional(str({
      pattern: MOUNT_PATTERN,
      default: 'transit',
      expected: 'a Vault mount path like "transit"',
      docType: 'mount path',
      description: 'Mount of the Transit engine.',
    })),
    transit_key: optional(str({
      pattern: VAULT_NAME_PATTERN,
      default: 'rustfs-kms',
      expected: 'a Transit key name like "rustfs-kms"',
      description: 'Name of the Transit key that wraps key material.',
    })),
    kv_mount: optional(str({
      pattern: MOUNT_PATTERN,
      expected: 'a Vault mount path like "secret"',
      docType: 'mount path',
      docDefault: '`keystore.kv_mount`, else `secret`',
      description: 'KV v2 mount. The same setting as `keystore.kv_mount`, so set only one of them. If both are set, they must be equal.',
    })),
    auth: optional(VaultAuthSection),
    tls: optional(VaultTlsSection),
  },
  {
    description:
      'Required, with `address` and an auth method, when `root.type` is `vault-transit` or `keystore.type` is `vault-kv`. ' +
      'A section that neither uses is still checked; without an address or an auth method it is left out of the final config.',
    hints: { token: SECRET_HINT_TOKEN },
  },
);

export interface VaultTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
}

export interface VaultConfig {
  /** http(s) origin (plus optional path prefix), no trailing slash. */
  address: string;
  namespace: string;
  transitMount: string;
  transitKey: string;
  kvMount: string;
  auth: VaultAuth;
  tls: VaultTls;
}

/** What the file and the environment set, before defaults and the cross-checks with the keystore. */
export interface VaultLayer {
  address?: string;
  namespace?: string;
  transitMount?: string;
  transitKey?: string;
  kvMount?: string;
  auth?: VaultAuth;
  tls?: VaultTls;
}

export function readRootVault(s: Static<typeof RootVaultSection>, r: FieldErrors): VaultLayer {
  const { auth, tls, ...scalars } = s;
  const out: VaultLayer = camelKeys(scalars);
  if (auth !== undefined) out.auth = readVaultAuth(auth, r);
  if (tls !== undefined) {
    if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
      const missing = tls.cert_file === undefined ? 'cert_file' : 'key_file';
      r.missing(`${F}.tls.${missing}`, 'the client certificate and its key together (cert_file and key_file go together)');
    }
    out.tls = camelKeys(tls);
  }
  return out;
}
