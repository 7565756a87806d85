// A root of trust wraps key material so that a key record is useless without it. Local files, an
// HSM and Vault Transit all answer to this one interface.
import type { SlotHandle } from '../native/index.js';
import type { KeyOrigin } from '../keystore/types.js';

export interface RootHealth {
  healthy: boolean;
  /** What is wrong, for status output; never secret. */
  detail?: string;
}

export interface RootOfTrust {
  readonly type: 'local' | 'pkcs11' | 'vault-transit' | 'aws-kms' | 'gcp-kms' | 'azure-keyvault';
  /** Recorded as KeyInfo.origin for keys made under this root. */
  readonly origin: KeyOrigin;
  /** Identity of this root (type and a key check value), stored with every version it wraps. */
  readonly ref: string;
  /** Wraps a slot's material under the root, bound to aad. */
  wrap(slot: SlotHandle, aad: Buffer): Promise<Buffer>;
  /**
   * Unwraps into a new slot. KmsError BackendUnavailable when the root cannot be reached; Internal
   * when the blob does not open under this root.
   */
  unwrap(wrapped: Buffer, aad: Buffer): Promise<SlotHandle>;
  health(): Promise<RootHealth>;
  describe(): Record<string, unknown>;
  close(): Promise<void>;
  /**
   * Present when every master-key version is its own non-extractable object in a token (pkcs11
   * `on-token` mode): such versions carry no wrapped material and every seal runs in the token.
   */
  readonly tokenKeys?: TokenKeys;
}

/**
 * Master-key versions that live in a token and never leave it. Seals are AES-256-GCM envelopes
 * (algorithm 0x02, 12-byte random nonce, DESIGN section 5). Failures are KmsErrors:
 * BackendUnavailable when the token cannot be reached, Internal when an object is missing.
 */
export interface TokenKeys {
  /** Makes the object for (keyId, version); returns the root ref naming it. Refuses if it exists. */
  create(keyId: string, version: number): Promise<string>;
  /** Throws unless the object for (keyId, version) is in the token (start-up check). */
  verify(keyId: string, version: number): Promise<void>;
  /** header ‖ nonce(12) ‖ ciphertext ‖ tag, AAD = header ‖ nonce ‖ aad. */
  seal(keyId: string, version: number, header: Buffer, plaintext: Uint8Array, aad: Uint8Array): Promise<Buffer>;
  /** The plaintext of such an envelope, or null when it does not authenticate. */
  open(keyId: string, version: number, envelope: Uint8Array, headerLength: number, aad: Uint8Array): Promise<Buffer | null>;
  /** Destroys the object; a missing object is not an error. */
  destroy(keyId: string, version: number): Promise<void>;
  /** True once a version has sealed so much (random 96-bit nonces) that it must be replaced. */
  rotationDue(keyId: string, version: number): boolean;
}

/** AAD binding wrapped material to its key and version (DESIGN section 6). */
export function keyMaterialAad(keyId: string, version: number): Buffer {
  const prefix = 'rustfs-kms/v1/key';
  const id = Buffer.from(keyId, 'utf8');
  const aad = Buffer.allocUnsafe(prefix.length + id.length + 4);
  aad.write(prefix, 0, 'latin1');
  id.copy(aad, prefix.length);
  aad.writeUInt32BE(version, prefix.length + id.length);
  return aad;
}
