// Google Cloud KMS adapter for CloudRoot: Encrypt / Decrypt with one symmetric CryptoKey through the
// official @google-cloud/kms client over its REST transport (no gRPC), the binding sent as
// additionalAuthenticatedData, and Cloud KMS's CRC32C integrity fields checked both ways.
// The SDK is an optional peer dependency, imported only when this root is configured.
import type { KeyManagementServiceClient } from '@google-cloud/kms';
import type { GcpKmsConfig } from '../config/sections/root-gcp-kms.js';
import { assertPrivatePath } from '../permissions.js';
import type { CloudFailure, CloudKeyService } from './cloud.js';
import { crc32c } from './crc32c.js';

const DEFAULT_ENDPOINT = 'https://cloudkms.googleapis.com';

/** gRPC status numbers (google.rpc.Code), which the SDK puts in `err.code`. */
const GRPC_CODES: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];
/** Throttling and transient server states (Google's guidance: retry with back-off). */
const RETRYABLE = new Set(['RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'INTERNAL', 'UNKNOWN', 'CRC32C_MISMATCH']);
/** Network-level failures from the HTTP client, before any answer. */
const NETWORK = /^(E[A-Z]+|UND_ERR_[A-Z_]+|ABORT_ERR)$/;

/** A failure this adapter detects itself (integrity checks, the probe's key checks). */
export class GcpKmsError extends Error {
  constructor(readonly status: string, message: string) {
    super(message);
    this.name = 'GcpKmsError';
  }
}

interface GoogleErrorBody {
  status?: unknown;
  message?: unknown;
}

/**
 * Google's error JSON ({"error":{"code","message","status"}}) when the REST transport's HTTP client
 * rejected a non-2xx answer with the body as its message or response data, instead of decoding it.
 */
function googleErrorBody(err: unknown): GoogleErrorBody | undefined {
  const e = err as { message?: unknown; response?: { data?: unknown } } | null;
  for (const candidate of [e?.response?.data, e?.message]) {
    let json: unknown = candidate;
    if (typeof candidate === 'string') {
      try {
        json = JSON.parse(candidate);
      } catch {
        continue;
      }
    }
    const body = (json as { error?: GoogleErrorBody } | null)?.error;
    if (typeof body === 'object' && body !== null && typeof body.status === 'string') return body;
  }
  return undefined;
}

/** Cloud KMS's error code name for any failure the SDK or its HTTP client throws. */
export function gcpErrorCode(err: unknown): string {
  if (err instanceof GcpKmsError) return err.status;
  const body = googleErrorBody(err);
  if (body !== undefined) return String(body.status);
  const e = err as { code?: unknown; name?: unknown; status?: unknown; response?: { status?: unknown } } | null;
  if (typeof e?.code === 'number' && GRPC_CODES[e.code] !== undefined) return GRPC_CODES[e.code] as string;
  if (typeof e?.code === 'string' && e.code !== '') return e.code;
  if (e?.name === 'AbortError') return 'DEADLINE_EXCEEDED';
  const http = typeof e?.response?.status === 'number' ? e.response.status : typeof e?.status === 'number' ? e.status : undefined;
  if (http === 429) return 'RESOURCE_EXHAUSTED';
  if (http === 401) return 'UNAUTHENTICATED';
  if (http === 403) return 'PERMISSION_DENIED';
  if (http !== undefined && http >= 500) return 'UNAVAILABLE';
  return 'UNKNOWN';
}

export function classifyGcpError(err: unknown): CloudFailure {
  const code = gcpErrorCode(err);
  const body = googleErrorBody(err);
  const raw = typeof body?.message === 'string' ? body.message : err instanceof Error ? err.message : String(err);
  // The SDK prefixes "3 INVALID_ARGUMENT: "; keep the cloud's sentence only, on one line.
  const message = raw.replace(/^[0-9]+ [A-Z_]+: /, '').replace(/\s+/g, ' ').slice(0, 300);
  return {
    code,
    message,
    rejected: code === 'INVALID_ARGUMENT' && /decrypt/i.test(message),
    retryable: RETRYABLE.has(code) || NETWORK.test(code),
  };
}

type Int64 = { value?: unknown } | null | undefined;
const crcOf = (v: Int64): number | undefined => (v?.value === undefined || v.value === null ? undefined : Number(String(v.value)));
const bytes = (v: Uint8Array | string | null | undefined): Uint8Array =>
  typeof v === 'string' ? Buffer.from(v, 'base64') : (v ?? new Uint8Array(0));

/** Resolves with `call`, or rejects when `signal` aborts (and cancels the SDK's request). */
function withSignal<T>(call: Promise<T> & { cancel?: () => void }, signal: AbortSignal): Promise<T> {
  if (signal.aborted) call.cancel?.();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      call.cancel?.();
      reject(new GcpKmsError('DEADLINE_EXCEEDED', 'the deadline passed before Cloud KMS answered'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export interface GcpKmsServiceOptions {
  config: GcpKmsConfig;
  env: NodeJS.ProcessEnv;
}

export class GcpKmsService implements CloudKeyService {
  readonly type = 'gcp-kms' as const;
  readonly origin = 'gcp' as const;
  readonly bindsAad = true;
  readonly keyName: string;
  readonly endpoint: string;
  private readonly credentials: string;

  private constructor(private readonly client: KeyManagementServiceClient, config: GcpKmsConfig, credentials: string) {
    this.keyName = config.keyName;
    this.endpoint = config.endpoint ?? DEFAULT_ENDPOINT;
    this.credentials = credentials;
  }

  /** Loads the SDK and makes its REST client; refuses a credentials file others can read. */
  static async open(options: GcpKmsServiceOptions): Promise<GcpKmsService> {
    const { config, env } = options;
    const adc = env.GOOGLE_APPLICATION_CREDENTIALS;
    if (config.credentialsFile !== undefined) assertPrivatePath(config.credentialsFile, 'root.gcp_kms.credentials_file');
    else if (adc !== undefined && adc !== '') assertPrivatePath(adc, 'GOOGLE_APPLICATION_CREDENTIALS file');
    let sdk: typeof import('@google-cloud/kms');
    try {
      sdk = await import('@google-cloud/kms');
    } catch (err) {
      const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
      throw new Error(`root.type gcp-kms needs the Google Cloud KMS client library: install @google-cloud/kms next to rustfs-kms (npm install @google-cloud/kms@5) (${why})`);
    }
    const url = config.endpoint !== undefined ? new URL(config.endpoint) : undefined;
    const client = new sdk.KeyManagementServiceClient({
      fallback: true, // REST transport: no gRPC, JSON over HTTP/1.1
      ...(config.credentialsFile !== undefined ? { keyFilename: config.credentialsFile } : {}),
      ...(url !== undefined
        ? {
          apiEndpoint: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port !== '' ? Number(url.port) : url.protocol === 'http:' ? 80 : 443,
          protocol: url.protocol === 'http:' ? 'http' : 'https',
        }
        : {}),
    });
    const credentials = config.credentialsFile !== undefined
      ? `service-account key file ${config.credentialsFile}`
      : adc !== undefined && adc !== '' ? `GOOGLE_APPLICATION_CREDENTIALS (${adc})` : 'application default credentials';
    return new GcpKmsService(client, config, credentials);
  }

  /** The SDK's own retries are off: CloudRoot retries within the configured deadline. */
  private readonly callOptions = { retry: { retryCodes: [] as number[] } };

  async wrap(plaintext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<Uint8Array> {
    const [response] = await withSignal(this.client.encrypt({
      name: this.keyName,
      plaintext,
      additionalAuthenticatedData: aad,
      plaintextCrc32c: { value: crc32c(plaintext) },
      additionalAuthenticatedDataCrc32c: { value: crc32c(aad) },
    }, this.callOptions), signal);
    const ciphertext = bytes(response.ciphertext);
    if (response.verifiedPlaintextCrc32c !== true || response.verifiedAdditionalAuthenticatedDataCrc32c !== true) {
      throw new GcpKmsError('CRC32C_MISMATCH', 'Cloud KMS did not verify the request checksums (request corrupted in transit)');
    }
    const crc = crcOf(response.ciphertextCrc32c);
    if (crc !== undefined && crc !== crc32c(ciphertext)) {
      throw new GcpKmsError('CRC32C_MISMATCH', 'the ciphertext from Cloud KMS does not match its checksum (corrupted in transit)');
    }
    if (ciphertext.length === 0) throw new GcpKmsError('DATA_LOSS', 'Cloud KMS returned an empty ciphertext');
    return ciphertext;
  }

  async unwrap(ciphertext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<Uint8Array> {
    const [response] = await withSignal(this.client.decrypt({
      name: this.keyName,
      ciphertext,
      additionalAuthenticatedData: aad,
      ciphertextCrc32c: { value: crc32c(ciphertext) },
      additionalAuthenticatedDataCrc32c: { value: crc32c(aad) },
    }, this.callOptions), signal);
    const plaintext = bytes(response.plaintext);
    const crc = crcOf(response.plaintextCrc32c);
    if (crc !== undefined && crc !== crc32c(plaintext)) {
      plaintext.fill(0);
      throw new GcpKmsError('CRC32C_MISMATCH', 'the plaintext from Cloud KMS does not match its checksum (corrupted in transit)');
    }
    return plaintext;
  }

  /** Gets the CryptoKey: it must exist, be ENCRYPT_DECRYPT and have an enabled primary version. */
  async probe(signal: AbortSignal): Promise<void> {
    const [key] = await withSignal(this.client.getCryptoKey({ name: this.keyName }, this.callOptions), signal);
    if (key.purpose !== 'ENCRYPT_DECRYPT') {
      throw new GcpKmsError('FAILED_PRECONDITION', `key purpose is ${String(key.purpose)}; a symmetric ENCRYPT_DECRYPT key is needed`);
    }
    const state = key.primary?.state;
    if (state !== 'ENABLED') {
      throw new GcpKmsError('FAILED_PRECONDITION', `primary key version ${key.primary?.name ?? '(none)'} is ${String(state ?? 'missing')}, not ENABLED`);
    }
  }

  classify(err: unknown): CloudFailure {
    return classifyGcpError(err);
  }

  describe(): Record<string, unknown> {
    return { credentials: this.credentials };
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
