// AWS KMS adapter for the shared CloudRoot (cloud.ts): Encrypt on wrap, Decrypt on unwrap, DescribeKey
// to probe, through the official @aws-sdk/client-kms (an optional peer dependency, imported only
// when this root is configured). The binding (key id ‖ version) travels as EncryptionContext, which
// KMS authenticates, so a blob opens only for the key version it was made for (bindsAad = true).
// Credentials: the SDK's default chain. The SDK retries nothing (maxAttempts 1): CloudRoot retries
// within the daemon's deadline, so the two never multiply.
import type { DecryptCommandOutput, DescribeKeyCommandOutput, EncryptCommandOutput, KMSClient } from '@aws-sdk/client-kms';
import type { AwsKmsConfig } from '../config/sections/root-aws-kms.js';
import type { CloudFailure, CloudKeyService } from './cloud.js';

/** The EncryptionContext key that carries the binding (base64 of DESIGN §6's AAD). */
export const AWS_CONTEXT_KEY = 'rustfs-kms/v1/key';

type Sdk = typeof import('@aws-sdk/client-kms');

/** The SDK, or an error that says how to install it. */
async function loadSdk(): Promise<Sdk> {
  try {
    return await import('@aws-sdk/client-kms');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error('root.type aws-kms needs the AWS SDK, which is not installed: install @aws-sdk/client-kms (npm install @aws-sdk/client-kms)');
    }
    throw err;
  }
}

/** A key DescribeKey shows as unusable for wrapping (disabled, pending deletion, wrong usage). */
class KeyUnusableError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = code;
  }
}

/** Errors that mean "this ciphertext does not open here": wrong key, wrong context, damaged blob. */
const REJECTED = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);
/** Errors worth another attempt: throttling, KMS-side and network trouble. */
const RETRYABLE = new Set([
  'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'KMSInternalException',
  'DependencyTimeoutException', 'ServiceUnavailable', 'InternalFailure', 'TimeoutError', 'AbortError',
]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET']);

export class AwsKmsKeyService implements CloudKeyService {
  readonly type = 'aws-kms' as const;
  readonly origin = 'aws' as const;
  readonly bindsAad = true;
  readonly keyName: string;
  readonly endpoint: string;
  /** The key's ARN once KMS has named it (DescribeKey, Encrypt). */
  private keyArn: string | undefined;

  private constructor(private readonly sdk: Sdk, private readonly client: KMSClient, config: AwsKmsConfig, readonly region: string) {
    this.keyName = config.keyId;
    this.endpoint = config.endpoint ?? `https://kms.${region}.amazonaws.com`;
  }

  /** Loads the SDK and resolves the region (config, ARN, then the SDK's AWS_REGION / shared config). */
  static async open(config: AwsKmsConfig): Promise<AwsKmsKeyService> {
    const sdk = await loadSdk();
    const client = new sdk.KMSClient({
      ...(config.region !== undefined ? { region: config.region } : {}),
      ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
      maxAttempts: 1,
    });
    let region: string;
    try {
      region = await client.config.region();
    } catch {
      client.destroy();
      throw new Error('no AWS region for root.aws_kms: set root.aws_kms.region, RUSTFS_KMS_AWS_REGION or AWS_REGION, or use a key ARN');
    }
    return new AwsKmsKeyService(sdk, client, config, region);
  }

  private context(aad: Buffer): Record<string, string> {
    return { [AWS_CONTEXT_KEY]: aad.toString('base64') };
  }

  async wrap(plaintext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<Uint8Array> {
    // The SDK base64-encodes Plaintext into its JSON body: a transient heap string (docs/cloud.md).
    const out: EncryptCommandOutput = await this.client.send(
      new this.sdk.EncryptCommand({ KeyId: this.keyName, Plaintext: plaintext, EncryptionContext: this.context(aad) }),
      { abortSignal: signal },
    );
    if (out.CiphertextBlob === undefined || out.CiphertextBlob.length === 0) throw new Error('KMS Encrypt returned no CiphertextBlob');
    if (out.KeyId !== undefined) this.keyArn = out.KeyId;
    return out.CiphertextBlob;
  }

  async unwrap(ciphertext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<Uint8Array> {
    // KeyId is sent so that a blob made under another key is refused (IncorrectKeyException).
    const out: DecryptCommandOutput = await this.client.send(
      new this.sdk.DecryptCommand({ KeyId: this.keyName, CiphertextBlob: ciphertext, EncryptionContext: this.context(aad) }),
      { abortSignal: signal },
    );
    if (out.Plaintext === undefined) throw new Error('KMS Decrypt returned no Plaintext');
    return out.Plaintext;
  }

  async probe(signal: AbortSignal): Promise<void> {
    const out: DescribeKeyCommandOutput = await this.client.send(new this.sdk.DescribeKeyCommand({ KeyId: this.keyName }), { abortSignal: signal });
    const meta = out.KeyMetadata;
    if (meta === undefined) throw new Error('KMS DescribeKey returned no KeyMetadata');
    if (meta.Arn !== undefined) this.keyArn = meta.Arn;
    if (meta.KeyState !== undefined && meta.KeyState !== 'Enabled') {
      throw new KeyUnusableError(meta.KeyState === 'Disabled' ? 'DisabledException' : 'KMSInvalidStateException', `key ${meta.Arn ?? this.keyName} is ${meta.KeyState}`);
    }
    if (meta.KeyUsage !== undefined && meta.KeyUsage !== 'ENCRYPT_DECRYPT') {
      throw new KeyUnusableError('KeyUsage', `key ${meta.Arn ?? this.keyName} has KeyUsage ${meta.KeyUsage}; expected ENCRYPT_DECRYPT`);
    }
    if (meta.KeySpec !== undefined && meta.KeySpec !== 'SYMMETRIC_DEFAULT') {
      throw new KeyUnusableError('KeySpec', `key ${meta.Arn ?? this.keyName} has KeySpec ${meta.KeySpec}; expected SYMMETRIC_DEFAULT`);
    }
  }

  classify(err: unknown): CloudFailure {
    const e = err as { name?: unknown; code?: unknown; message?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: number } };
    const name = typeof e.name === 'string' ? e.name : 'Error';
    const sysCode = typeof e.code === 'string' ? e.code : undefined;
    const status = e.$metadata?.httpStatusCode;
    const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
    // An SDK error with no HTTP status never reached KMS: network trouble, worth retrying.
    const network = sysCode !== undefined && NETWORK_CODES.has(sysCode);
    const code = network ? sysCode : name === 'Error' && status !== undefined ? `HTTP ${status}` : name;
    const retryable = network || RETRYABLE.has(name) || status === 429 || (status !== undefined && status >= 500) || e.$fault === 'server';
    return { retryable: retryable && !REJECTED.has(name), rejected: REJECTED.has(name), code, message };
  }

  describe(): Record<string, unknown> {
    return { region: this.region, ...(this.keyArn !== undefined ? { key_arn: this.keyArn } : {}) };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
