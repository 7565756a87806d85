// root: the root of trust that wraps key material, and the settings of each root type.
import type { Static } from '@sinclair/typebox';
import type { FieldErrors } from '../errors.js';
import { oneOf, optional, section } from '../field.js';
import { RootGcpKmsSection, readRootGcpKms, type GcpKmsConfig, type GcpKmsLayer } from './root-gcp-kms.js';
import { RootAzureKeyVaultSection, readRootAzureKeyVault, type AzureKeyVaultConfig, type AzureKeyVaultLayer } from './root-azure-keyvault.js';
import { RootAwsKmsSection, readRootAwsKms, type AwsKmsConfig, type AwsKmsLayer } from './root-aws-kms.js';
import { RootLocalSection, readRootLocal, type RootLocalConfig, type RootLocalLayer } from './root-local.js';
import { RootPkcs11Section, readRootPkcs11, type Pkcs11Config } from './root-pkcs11.js';
import { RootVaultSection, readRootVault, type VaultConfig, type VaultLayer } from './root-vault.js';

export const ROOT_TYPES = ['local', 'pkcs11', 'vault-transit', 'aws-kms', 'gcp-kms', 'azure-keyvault'] as const;
export type RootType = (typeof ROOT_TYPES)[number];

export const RootSection = section(
  {
    type: optional(oneOf(ROOT_TYPES, { default: 'local', description: 'Which root wraps key material.' })),
    local: optional(RootLocalSection),
    pkcs11: optional(RootPkcs11Section),
    vault: optional(RootVaultSection),
    gcp_kms: optional(RootGcpKmsSection),
    azure_keyvault: optional(RootAzureKeyVaultSection),
    aws_kms: optional(RootAwsKmsSection),
  },
  { description: 'Root of trust: the thing that wraps key material.' },
);

export interface RootConfig {
  type: RootType;
  local: RootLocalConfig;
  pkcs11?: Pkcs11Config;
  vault?: VaultConfig;
  gcpKms?: GcpKmsConfig;
  azureKeyvault?: AzureKeyVaultConfig;
  awsKms?: AwsKmsConfig;
}

export interface RootLayer {
  type?: RootType;
  local: RootLocalLayer;
  pkcs11?: Pkcs11Config;
  vault?: VaultLayer;
  gcpKms?: GcpKmsLayer;
  azureKeyvault?: AzureKeyVaultLayer;
  awsKms?: AwsKmsLayer;
}

export function readRoot(s: Static<typeof RootSection>, r: FieldErrors): RootLayer {
  const out: RootLayer = { local: s.local !== undefined ? readRootLocal(s.local) : {} };
  if (s.type !== undefined) out.type = s.type;
  if (s.pkcs11 !== undefined) out.pkcs11 = readRootPkcs11(s.pkcs11, r);
  if (s.vault !== undefined) out.vault = readRootVault(s.vault, r);
  if (s.gcp_kms !== undefined) out.gcpKms = readRootGcpKms(s.gcp_kms);
  if (s.azure_keyvault !== undefined) out.azureKeyvault = readRootAzureKeyVault(s.azure_keyvault, r);
  if (s.aws_kms !== undefined) out.awsKms = readRootAwsKms(s.aws_kms, r);
  return out;
}
