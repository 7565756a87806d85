// root.aws_kms: the AWS KMS key behind the aws-kms root. Credentials are never configured here: the
// AWS SDK's default chain finds them (environment, shared files, web identity, container and
// instance metadata).
import type { Static } from '@sinclair/typebox';
import type { FieldErrors } from '../errors.js';
import { camelKeys, optional, section, str, type RefineContext } from '../field.js';
import { REGION_PATTERN } from '../formats.js';

/** A key id (UUID or mrk-…), a key ARN, an alias name or an alias ARN (AWS's KeyId forms). */
export const AWS_KEY_ID_PATTERN =
  /^(?:[0-9a-fA-F-]{36}|mrk-[0-9a-f]{32}|alias\/[a-zA-Z0-9:/_-]{1,250}|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(?:key\/[A-Za-z0-9-]{1,64}|alias\/[a-zA-Z0-9:/_-]{1,250}))$/;
const KEY_ID_TEXT = 'an AWS KMS key id, key ARN, "alias/NAME" or alias ARN';
const ENDPOINT_TEXT = 'an https:// URL (http:// only for a loopback host such as 127.0.0.1)';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * An https origin, or http on loopback only: TLS is what keeps the wrapped key material and the
 * request signatures private off the host (tests use a loopback test server).
 */
export function awsEndpoint(v: string, ctx: RefineContext): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    ctx.errors.fail(ctx.field, ENDPOINT_TEXT, v);
  }
  if (url.username !== '' || url.password !== '') {
    ctx.errors.failDetail(ctx.field, ENDPOINT_TEXT, `expected ${ENDPOINT_TEXT} without user:password (credentials come from the AWS SDK's default chain)`);
  }
  if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname) && !/^127\./.test(url.hostname)) {
    ctx.errors.failDetail(ctx.field, ENDPOINT_TEXT,
      `expected ${ENDPOINT_TEXT}, got http:// to the non-loopback host ${url.hostname}: KMS requests must use TLS off this host`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') ctx.errors.fail(ctx.field, ENDPOINT_TEXT, v);
  if (url.search !== '' || url.hash !== '') ctx.errors.fail(ctx.field, `${ENDPOINT_TEXT} without a query or fragment`, v);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}
awsEndpoint.expected = ENDPOINT_TEXT;

export const RootAwsKmsSection = section(
  {
    key_id: optional(str({
      pattern: AWS_KEY_ID_PATTERN,
      expected: KEY_ID_TEXT,
      docType: 'key id / ARN / alias',
      docDefault: '**required** when `root.type` is `aws-kms`',
      description: 'The KMS key that wraps key material: key id, key ARN, `alias/NAME` or alias ARN. Must be a symmetric ENCRYPT_DECRYPT key.',
    })),
    region: optional(str({
      pattern: REGION_PATTERN,
      expected: 'an AWS region like "eu-west-1"',
      docType: 'region',
      docDefault: "the SDK's (AWS_REGION, the shared config file), else the ARN's",
      description: 'AWS region of the key.',
    })),
    endpoint: optional(str({
      expected: ENDPOINT_TEXT,
      refine: awsEndpoint,
      docType: 'URL',
      docDefault: "the region's public endpoint",
      description: 'KMS endpoint override, for VPC/private endpoints and tests. `https://`; `http://` only on a loopback host. TLS is always verified.',
    })),
  },
  {
    description:
      'Required, with `key_id`, when `root.type` is `aws-kms`. Credentials come from the AWS SDK\'s default chain ' +
      '(AWS_* environment, shared credentials/config files, web identity, container and instance metadata), never from this file.',
    hints: {
      access_key_id: "the AWS SDK's default credential chain (AWS_ACCESS_KEY_ID, ~/.aws/credentials, instance roles); no secrets in the config file",
      secret_access_key: "the AWS SDK's default credential chain (AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, instance roles); no secrets in the config file",
    },
  },
);

export interface AwsKmsConfig {
  keyId: string;
  region?: string;
  endpoint?: string;
}

export type AwsKmsLayer = Partial<AwsKmsConfig>;

export function readRootAwsKms(s: Static<typeof RootAwsKmsSection>, r: FieldErrors): AwsKmsLayer {
  void r; // every check is in the schema and the endpoint's refinement
  return camelKeys(s);
}

/** The region an ARN names, when the config sets none (the SDK needs one). */
export function regionOfArn(keyId: string): string | undefined {
  return /^arn:aws[a-z-]*:kms:([a-z0-9-]+):/.exec(keyId)?.[1];
}
