// Cloud roots of trust (AWS KMS, Google Cloud KMS, Azure Key Vault) share this one root: every
// master-key version is generated in a locked slot and stored wrapped by one cloud key, and the cloud
// is called only to wrap (create, rotate) and to unwrap (a cache miss), never per data key. Each
// cloud supplies a small adapter (CloudKeyService) over its official SDK; this file does what is the
// same for all of them: moving the 32 bytes between slots and the SDK, binding the key id and version,
// the stored blob, retries with back-off inside the deadline, and errors that name the cloud's code.
//
// Stored blob: 0x01 ‖ ciphertext from the cloud. The binding (DESIGN §6's AAD, "rustfs-kms/v1/key" ‖
// key id ‖ version) goes to the cloud as encryption context / additional authenticated data where it
// takes one; where it takes none (Azure's key wrap), the adapter says so and the binding's first 16
// bytes of SHA-256 are wrapped together with the material and checked after unwrap.
//
// Where the 32 bytes travel: slot → locked secure buffer → the SDK's request (base64 in a JSON body,
// a transient JS string the SDK makes) → the cloud; back: the SDK's response bytes → a locked secure
// buffer → slot; the response buffer is zeroed at once. docs/cloud.md says so.
import { createHash, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { KmsError } from '../errors.js';
import { KEY_BYTES, native, type SlotHandle } from '../native/index.js';
import type { RootHealth, RootOfTrust } from './types.js';

export type CloudRootType = 'aws-kms' | 'gcp-kms' | 'azure-keyvault';
export type CloudOrigin = 'aws' | 'gcp' | 'azure';

/** What one cloud failure means for a retry, and how to name it. */
export interface CloudFailure {
  /** Throttling, a 5xx, a timeout or a network error: worth another attempt within the deadline. */
  retryable: boolean;
  /** The ciphertext does not open under this key or with this binding (never retried). */
  rejected: boolean;
  /** The cloud's own error code or name, e.g. "ThrottlingException", "PERMISSION_DENIED". */
  code: string;
  /** Never key material; what the cloud said. */
  message: string;
}

/** One cloud's key, through its official SDK. */
export interface CloudKeyService {
  readonly type: CloudRootType;
  readonly origin: CloudOrigin;
  /** The cloud key as configured (ARN, alias, resource name, key URL): stored in every version's ref. */
  readonly keyName: string;
  /** Where requests go (the SDK's endpoint), for status and error messages. */
  readonly endpoint: string;
  /** True when the cloud binds `aad` itself (AWS EncryptionContext, GCP additionalAuthenticatedData). */
  readonly bindsAad: boolean;
  /** Encrypts / wraps `plaintext` (a view of locked memory) under the key. */
  wrap(plaintext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<Uint8Array>;
  /** Decrypts / unwraps; the caller zeroes the returned bytes once copied into a slot. */
  unwrap(ciphertext: Uint8Array, aad: Buffer, signal: AbortSignal): Promise<Uint8Array>;
  /** A cheap call that proves the key is reachable and usable (describe / get key). */
  probe(signal: AbortSignal): Promise<void>;
  classify(err: unknown): CloudFailure;
  /** What `status` shows about the key (never a credential). */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

export interface CloudRootOptions {
  /** Deadline of one wrap or unwrap, retries included (config timeout_secs). */
  timeoutMs: number;
  /** Attempts after the first for retryable failures (config retry_attempts). */
  retryAttempts: number;
  /** First back-off; doubles, with jitter, capped by what is left of the deadline. */
  backoffMs?: number;
}

const BLOB_VERSION = 0x01;
const BINDING_TAG_BYTES = 16;
const PROBE_TIMEOUT_MS = 5000;

/** The first 16 bytes of SHA-256 of the binding: wrapped with the material where the cloud takes no AAD. */
function bindingTag(aad: Buffer): Buffer {
  return createHash('sha256').update(aad).digest().subarray(0, BINDING_TAG_BYTES);
}

export class CloudRoot implements RootOfTrust {
  readonly type: CloudRootType;
  readonly origin: CloudOrigin;
  readonly ref: string;
  /** Calls made to the cloud, by kind: tests and `status` count them (0 per data key once warm). */
  readonly calls = { wrap: 0, unwrap: 0, probe: 0 };
  private lastFailure: string | undefined;

  constructor(private readonly service: CloudKeyService, private readonly options: CloudRootOptions) {
    this.type = service.type;
    this.origin = service.origin;
    this.ref = `${service.type}:${service.keyName}`;
  }

  async wrap(slot: SlotHandle, aad: Buffer): Promise<Buffer> {
    const length = this.service.bindsAad ? KEY_BYTES : BINDING_TAG_BYTES + KEY_BYTES;
    const plaintext = native.secureBuffer(length);
    try {
      if (this.service.bindsAad) {
        native.slotExport(slot, plaintext);
      } else {
        plaintext.set(bindingTag(aad), 0);
        native.slotExport(slot, plaintext.subarray(BINDING_TAG_BYTES));
      }
      const ciphertext = await this.call('wrap', (signal) => this.service.wrap(plaintext, aad, signal));
      const blob = Buffer.allocUnsafe(1 + ciphertext.length);
      blob[0] = BLOB_VERSION;
      blob.set(ciphertext, 1);
      return blob;
    } finally {
      native.secureRelease(plaintext);
    }
  }

  async unwrap(wrapped: Buffer, aad: Buffer): Promise<SlotHandle> {
    if (wrapped.length < 2 || wrapped[0] !== BLOB_VERSION) {
      throw new KmsError('Internal', `wrapped key material is not a ${this.type} blob (format version ${wrapped[0] ?? 'missing'})`);
    }
    const plaintext = await this.call('unwrap', (signal) => this.service.unwrap(wrapped.subarray(1), aad, signal));
    const secure = native.secureBuffer(plaintext.length);
    try {
      secure.set(plaintext);
      plaintext.fill(0);
      if (this.service.bindsAad) {
        if (secure.length !== KEY_BYTES) throw this.badMaterial(secure.length);
        return native.slotImport(secure);
      }
      if (secure.length !== BINDING_TAG_BYTES + KEY_BYTES) throw this.badMaterial(secure.length);
      if (!timingSafeEqual(Buffer.from(secure.buffer, secure.byteOffset, BINDING_TAG_BYTES), bindingTag(aad))) {
        throw new KmsError('Internal', `key material unwrapped by ${this.service.keyName} belongs to another key or version`);
      }
      return native.slotImport(secure.subarray(BINDING_TAG_BYTES));
    } finally {
      native.secureRelease(secure);
    }
  }

  async health(): Promise<RootHealth> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
    try {
      this.calls.probe += 1;
      await this.service.probe(controller.signal);
      this.lastFailure = undefined;
      return { healthy: true };
    } catch (err) {
      const failure = this.service.classify(err);
      this.lastFailure = `${failure.code}: ${failure.message}`;
      return { healthy: false, detail: `${this.type} key ${this.service.keyName} at ${this.service.endpoint}: ${this.lastFailure}` };
    } finally {
      clearTimeout(timer);
    }
  }

  describe(): Record<string, unknown> {
    return {
      type: this.type,
      endpoint: this.service.endpoint,
      key: this.service.keyName,
      ref: this.ref,
      calls: { ...this.calls },
      ...this.service.describe(),
      ...(this.lastFailure !== undefined ? { detail: this.lastFailure } : {}),
    };
  }

  close(): Promise<void> {
    return this.service.close();
  }

  private badMaterial(length: number): KmsError {
    return new KmsError('Internal', `${this.service.keyName} returned ${length} bytes of key material; expected ${this.service.bindsAad ? KEY_BYTES : BINDING_TAG_BYTES + KEY_BYTES}`);
  }

  /**
   * One wrap or unwrap within the deadline: retryable failures (throttling, 5xx, network) are tried
   * again with exponential back-off and jitter; the last failure names the cloud's code.
   */
  private async call<T>(kind: 'wrap' | 'unwrap', run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.options.timeoutMs;
    let backoff = this.options.backoffMs ?? 100;
    for (let attempt = 0; ; attempt++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), Math.max(1, deadline - Date.now()));
      try {
        this.calls[kind] += 1;
        const result = await run(controller.signal);
        this.lastFailure = undefined;
        return result;
      } catch (err) {
        const failure = this.service.classify(err);
        this.lastFailure = `${failure.code}: ${failure.message}`;
        const what = `${this.type} ${kind} with ${this.service.keyName} at ${this.service.endpoint}`;
        if (failure.rejected) throw new KmsError('Internal', `key material does not ${kind} under ${what}: ${failure.code}: ${failure.message}`);
        const left = deadline - Date.now();
        if (!failure.retryable || attempt >= this.options.retryAttempts || left <= backoff) {
          throw new KmsError('BackendUnavailable', `${what} failed after ${attempt + 1} attempt(s): ${failure.code}: ${failure.message}`);
        }
        await sleep(Math.min(left, backoff / 2 + Math.random() * backoff));
        backoff *= 2;
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
