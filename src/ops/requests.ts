// Request types after the RustFS KMS crate (GenerateKeyRequest, EncryptRequest, DecryptRequest,
// ListKeysRequest). KmsManager (in-process) and KmsClient (over the socket) both accept them, so
// code moves between the two by changing the line that makes the object.
//
// Builders mutate and return `this` (like Rust's `with_context(self, …) -> Self` on an owned value);
// make one request per call. Every check of the values (key id, sizes, context limits) is the
// daemon's op table and key service, the same for both transports, so nothing is validated here.
import type { EncryptionContext } from './protocol.js';

/** Data-key specification: `AES_256` → 32 bytes (the default), `AES_128` → 16 bytes. */
export type KeySpec = 'AES_256' | 'AES_128';

const SPEC_BYTES: Readonly<Record<KeySpec, number>> = { AES_256: 32, AES_128: 16 };

/** Positional options the request types turn into (the same shapes KmsClient always took). */
export interface DataKeyRequestOptions {
  context?: EncryptionContext;
  bytes?: number;
  withoutPlaintext?: boolean;
}

abstract class WithContext {
  /** The encryption context bound into the ciphertext (AAD); the same map must be given to decrypt. */
  encryptionContext: Record<string, string> = {};

  /** Adds one pair to the encryption context. */
  withContext(key: string, value: string): this {
    this.encryptionContext[key] = value;
    return this;
  }

  /** Adds every pair of `context` to the encryption context. */
  withEncryptionContext(context: EncryptionContext): this {
    Object.assign(this.encryptionContext, context);
    return this;
  }

  protected contextOption(): { context?: EncryptionContext } {
    return Object.keys(this.encryptionContext).length > 0 ? { context: { ...this.encryptionContext } } : {};
  }
}

/** Generate a data key under master key `keyId` (the protocol's `generate_data_key`). */
export class GenerateKeyRequest extends WithContext {
  /** Explicit data-key length in bytes (16..64); overrides the key spec. */
  length?: number;
  /** Return only the sealed copy of the data key. */
  withoutPlaintext = false;

  constructor(readonly keyId: string, readonly keySpec: KeySpec = 'AES_256') {
    super();
  }

  static new(keyId: string, keySpec: KeySpec = 'AES_256'): GenerateKeyRequest {
    return new GenerateKeyRequest(keyId, keySpec);
  }

  withLength(bytes: number): this {
    this.length = bytes;
    return this;
  }

  withoutPlaintextKey(): this {
    this.withoutPlaintext = true;
    return this;
  }

  /** The positional options this request stands for. */
  toOptions(): DataKeyRequestOptions {
    const options: DataKeyRequestOptions = this.contextOption();
    const bytes = this.length ?? SPEC_BYTES[this.keySpec] ?? Number.NaN;
    // The default length is left to the daemon, exactly as a positional call without `bytes`.
    if (this.length !== undefined || bytes !== SPEC_BYTES.AES_256) options.bytes = bytes;
    if (this.withoutPlaintext) options.withoutPlaintext = true;
    return options;
  }
}

/** Seal up to 64 KiB under master key `keyId` (the protocol's `encrypt`). */
export class EncryptRequest extends WithContext {
  constructor(readonly keyId: string, readonly plaintext: Uint8Array) {
    super();
  }

  static new(keyId: string, plaintext: Uint8Array): EncryptRequest {
    return new EncryptRequest(keyId, plaintext);
  }

  toOptions(): { context?: EncryptionContext } {
    return this.contextOption();
  }
}

/** Open a ciphertext made by `encrypt` or `generateDataKey` (the key id is read from it). */
export class DecryptRequest extends WithContext {
  constructor(readonly ciphertext: Uint8Array) {
    super();
  }

  static new(ciphertext: Uint8Array): DecryptRequest {
    return new DecryptRequest(ciphertext);
  }

  toOptions(): { context?: EncryptionContext } {
    return this.contextOption();
  }
}

/**
 * One page of master keys. Structurally the same as the `ListKeysOptions` KmsClient.listKeys has
 * always taken (`prefix`, `marker`, `limit`), so it is accepted wherever those are.
 */
export class ListKeysRequest {
  prefix?: string;
  marker?: string;
  /** 1..1000; the daemon's default is 100. */
  limit?: number;

  static new(): ListKeysRequest {
    return new ListKeysRequest();
  }

  withLimit(limit: number): this {
    this.limit = limit;
    return this;
  }

  withMarker(marker: string): this {
    this.marker = marker;
    return this;
  }

  withPrefix(prefix: string): this {
    this.prefix = prefix;
    return this;
  }
}
