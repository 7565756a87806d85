// Where the AWS KMS tests point: the AWS KMS API TEST SERVER (test/aws-kms-server, not AWS) by default,
// or real AWS KMS with `KMS_TEST_CLOUD=aws` plus AWS credentials in the SDK's usual places and
// KMS_TEST_AWS_KEY_ID (a symmetric key the credentials may Encrypt/Decrypt/DescribeKey) and
// KMS_TEST_AWS_REGION. Tests needing the server's fault switches skip against real AWS.
import { cacheAndDeadlineYaml, codeOf, startCloudDaemon, type CloudDaemon } from './cloud-daemon.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AwsKmsTestServer } from '../aws-kms-server/server.js';
import { makeTempDir, type StartDaemonOptions } from '../helpers/daemon.js';

export const REAL_AWS = (process.env.KMS_TEST_CLOUD === 'aws' || process.env.KMS_TEST_CLOUD === 'real') && (process.env.KMS_TEST_AWS_KEY_ID ?? '') !== '';
export const NEEDS_TEST_SERVER = 'needs the test server\'s fault switches and key administration; skipped against real AWS KMS (KMS_TEST_CLOUD=aws)';

export interface AwsTarget {
  server?: AwsKmsTestServer;
  keyId: string;
  region: string;
  /** undefined = AWS's public endpoint. */
  endpoint?: string;
  /** What the daemon is given to find credentials: env variables (undefined removes one). */
  credentialEnv: Record<string, string | undefined>;
  close(): Promise<void>;
}

/** Variables that could point the SDK somewhere else than the target (a runner's own AWS setup). */
const AWS_ISOLATION: Record<string, string | undefined> = {
  AWS_PROFILE: undefined, AWS_SESSION_TOKEN: undefined, AWS_SHARED_CREDENTIALS_FILE: undefined, AWS_CONFIG_FILE: undefined,
  AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined, AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_KMS: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined, AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
  AWS_EC2_METADATA_DISABLED: 'true',
};

export async function openAwsTarget(): Promise<AwsTarget> {
  if (REAL_AWS) {
    const keyId = process.env.KMS_TEST_AWS_KEY_ID;
    const region = process.env.KMS_TEST_AWS_REGION ?? process.env.AWS_REGION;
    if (keyId === undefined || region === undefined) throw new Error('KMS_TEST_CLOUD=aws needs KMS_TEST_AWS_KEY_ID and KMS_TEST_AWS_REGION (or AWS_REGION)');
    return { keyId, region, credentialEnv: {}, close: async () => undefined };
  }
  const server = await new AwsKmsTestServer().start();
  const { keyId } = server.createKey();
  server.createAlias('alias/rustfs-kms-test', keyId);
  return {
    server, keyId: 'alias/rustfs-kms-test', region: server.region, endpoint: server.endpoint,
    credentialEnv: { ...AWS_ISOLATION, AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
    close: () => server.close(),
  };
}

export function awsYaml(t: AwsTarget, o: { keyId?: string; idleTtlS?: number; offlineTtlS?: number; timeoutSecs?: number; retryAttempts?: number } = {}): string {
  return [
    'root:',
    '  type: aws-kms',
    '  aws_kms:',
    `    key_id: ${JSON.stringify(o.keyId ?? t.keyId)}`,
    `    region: ${t.region}`,
    ...(t.endpoint !== undefined ? [`    endpoint: ${t.endpoint}`] : []),
    ...cacheAndDeadlineYaml(o),
  ].join('\n');
}



/** An AWS shared credentials file in `home`/.aws, as `aws configure` writes it. */
export function writeSharedCredentials(home: string, accessKeyId: string, secretAccessKey: string): void {
  mkdirSync(join(home, '.aws'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, '.aws', 'credentials'), `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n`, { mode: 0o600 });
}


export type AwsDaemon = CloudDaemon;

/** HOME is the daemon's own directory, so no shared AWS files of this machine are read by accident. */
export function startAwsDaemon(o: Omit<StartDaemonOptions, 'socket'> & { dir?: string }): Promise<AwsDaemon> {
  const dir = o.dir ?? makeTempDir('kms-aws-');
  return startCloudDaemon('kms-aws-', { ...o, dir, env: { HOME: dir, ...(o.env ?? {}) } });
}

export { codeOf };
