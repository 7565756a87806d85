// Opens the gcp-kms adapter from the config; its module (and the SDK) load only when configured.
import type { DaemonConfig } from '../config/index.js';
import type { CloudKeyService } from '../roots/cloud.js';

export async function openGcpKms(config: DaemonConfig, options: { env: NodeJS.ProcessEnv }): Promise<CloudKeyService> {
  const gcp = config.root.gcpKms;
  if (gcp === undefined) throw new Error('root.type is gcp-kms but the root.gcp_kms section (key_name) is missing');
  const { GcpKmsService } = await import('../roots/gcp-kms.js');
  return GcpKmsService.open({ config: gcp, env: options.env });
}
