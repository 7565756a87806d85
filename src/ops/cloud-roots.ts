// Opening a cloud root (AWS KMS, Google Cloud KMS, Azure Key Vault): each cloud's adapter and its
// official SDK are imported only when that root is configured, so hosts that do not use a cloud never
// load its SDK (nor need it installed: the SDKs are optional peer dependencies).
import type { DaemonConfig } from '../config/index.js';
import type { Logger } from '../logging.js';
import { CloudRoot, type CloudKeyService } from '../roots/cloud.js';
import type { RootOfTrust } from '../roots/types.js';
import { openGcpKms } from './gcp-kms-wiring.js';

export interface CloudOpenOptions {
  logger: Logger;
  env: NodeJS.ProcessEnv;
}

async function cloudService(config: DaemonConfig, options: CloudOpenOptions): Promise<CloudKeyService> {
  switch (config.root.type) {
    case 'gcp-kms':
      return openGcpKms(config, options);
    case 'azure-keyvault': {
      const azure = config.root.azureKeyvault;
      if (azure === undefined) throw new Error('root.type is azure-keyvault but the root.azure_keyvault section is missing');
      const { openAzureKeyVault } = await import('../roots/azure-keyvault.js');
      return openAzureKeyVault(azure, options.env);
    }
    case 'aws-kms': {
      if (config.root.awsKms === undefined) throw new Error('root.type is aws-kms but root.aws_kms.key_id is not set');
      const { AwsKmsKeyService } = await import('../roots/aws-kms.js');
      return AwsKmsKeyService.open(config.root.awsKms);
    }
    default:
      throw new Error(`root.type ${config.root.type} is not a cloud root`);
  }
}

export async function openCloudRoot(config: DaemonConfig, options: CloudOpenOptions): Promise<RootOfTrust> {
  const service = await cloudService(config, options);
  return new CloudRoot(service, { timeoutMs: config.timeoutSecs * 1000, retryAttempts: config.retryAttempts });
}
