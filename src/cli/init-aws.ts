// init for root.type aws-kms: the cloud key must exist, be enabled, and Encrypt then Decrypt 32
// random bytes under a probe EncryptionContext with the credentials the SDK finds. Each failure says
// what is missing: the IAM permission (AccessDenied), the key's state, or the key / region.
import { randomFillSync, timingSafeEqual } from 'node:crypto';
import type { DaemonConfig } from '../config/index.js';
import { native } from '../native/index.js';
import { AwsKmsKeyService } from '../roots/aws-kms.js';
import type { InitStep } from './init.js';
import { CliError } from './locate.js';

const PROBE_AAD = Buffer.from('rustfs-kms/v1/init-probe');
const PROBE_TIMEOUT_MS = 15_000;

/** What to do about one failed step, by KMS's error code. */
function advice(code: string, permission: string, key: string, region: string): string {
  switch (code) {
    case 'AccessDeniedException':
      return `the credentials may not call ${permission} on ${key}: allow ${permission} (the daemon needs kms:Encrypt, kms:Decrypt and kms:DescribeKey; policy in docs/cloud.md)`;
    case 'DisabledException':
      return `key ${key} is disabled: aws kms enable-key --key-id ${key} --region ${region}`;
    case 'KMSInvalidStateException':
      return `key ${key} is not usable in its current state (pending deletion or import): aws kms describe-key --key-id ${key} --region ${region}; cancel-key-deletion if it is pending deletion`;
    case 'NotFoundException':
      return `key ${key} does not exist in region ${region}: check root.aws_kms.key_id and root.aws_kms.region (aws kms list-aliases --region ${region})`;
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'CredentialsProviderError':
      return "the AWS credentials are missing or wrong: the SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, web identity, instance role) found none that KMS accepts";
    case 'KeyUsage':
    case 'KeySpec':
      return 'the key must be a symmetric ENCRYPT_DECRYPT key (KeySpec SYMMETRIC_DEFAULT)';
    default:
      return 'see docs/cloud.md';
  }
}

export async function initAwsKms(config: DaemonConfig): Promise<InitStep> {
  const aws = config.root.awsKms;
  if (aws === undefined) throw new CliError('InitFailed', 'root.type is aws-kms but root.aws_kms.key_id is not set');
  let service: AwsKmsKeyService;
  try {
    service = await AwsKmsKeyService.open(aws);
  } catch (err) {
    throw new CliError('InitFailed', (err as Error).message);
  }
  const where = `AWS KMS key ${aws.keyId} (region ${service.region}) at ${service.endpoint}`;
  const step = async <T>(permission: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    try {
      return await run(AbortSignal.timeout(PROBE_TIMEOUT_MS));
    } catch (err) {
      const f = service.classify(err);
      throw new CliError('InitFailed', `${where}: ${permission} failed: ${f.code}: ${f.message}; ${advice(f.code, permission, aws.keyId, service.region)}`);
    }
  };
  const probe = native.secureBuffer(32);
  try {
    await step('kms:DescribeKey', (signal) => service.probe(signal));
    randomFillSync(probe);
    const blob = await step('kms:Encrypt', (signal) => service.wrap(probe, PROBE_AAD, signal));
    const back = await step('kms:Decrypt', (signal) => service.unwrap(blob, PROBE_AAD, signal));
    const same = back.length === probe.length && timingSafeEqual(back, probe);
    back.fill(0);
    if (!same) throw new CliError('InitFailed', `${where}: Decrypt returned other bytes than Encrypt was given`);
    return { what: 'cloud key', path: where, action: 'checked', detail: 'exists and is enabled; Encrypt and Decrypt work with the credentials the AWS SDK found' };
  } finally {
    native.secureRelease(probe);
    await service.close();
  }
}
